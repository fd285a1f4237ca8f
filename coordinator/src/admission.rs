//! Admission: the one way a run comes to exist, whether a client submits it or a
//! `workflow` step starts it as a child.
//!
//! 1. The definition's plan: from the cache, or validated and compiled off the async
//!    runtime (a blocking task: validation is CPU work, and one large workflow must not
//!    hold the API's other requests). A submitted workflow is checked against the tool
//!    catalogue workers advertise; a child's was checked when it was deployed.
//! 2. Sub-workflows it calls must be registered; its input must fit its `input_schema`
//!    (compiled once, in the plan).
//! 3. Its first record is created in `weft_runs`, only if the id has none: a run is
//!    created once.
//! 4. Its `created` entry is appended to its log. A submit waits for the append (accepted
//!    means stored) and removes the record again if it fails; a child's is retried in the
//!    background, as any entry a run's actor writes.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Mutex;
use uuid::Uuid;
use weft_lang::catalogue::{Catalogue, ToolSpec};
use weft_lang::definition::WorkflowDef;
use weft_lang::limits::{Limits, RunLimits, exceeded};
use weft_lang::plan::{Kind, PLANNER_TOOL, Plan};
use weft_lang::validate::{self, Code, Problem};
use weft_protocol::definitions;
use weft_protocol::wire::{Advertisement, IndexEntry, RunRecord, now_ms};

use crate::config::Prices;
use crate::log::{self, Entry};
use crate::machine::{ParentLink, Run};
use crate::nats::{Nats, NatsError, StoreError};
use crate::plans::Plans;
use crate::pools::Pools;

/// Why a run was not admitted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmitError {
    /// The workflow or its input is invalid: every problem, with its place.
    #[error("workflow `{name}` is invalid:\n{}", list(problems))]
    Invalid {
        /// The workflow.
        name: String,
        /// What is wrong.
        problems: Vec<Problem>,
    },
    /// The input does not fit the workflow's `input_schema`.
    #[error("the input does not fit workflow `{name}`'s input_schema:\n{}", list(problems))]
    InvalidInput {
        /// The workflow.
        name: String,
        /// What is wrong, each at its place under `input`.
        problems: Vec<Problem>,
    },
    /// The id names a run already.
    #[error(
        "run {run_id} exists already and {why}: a run id (or business key) names one run; use another for a new run"
    )]
    Taken {
        /// The run.
        run_id: Uuid,
        /// Its status, or why it cannot be read.
        why: String,
    },
    /// A limit of the run tree (depth, children) was reached.
    #[error("{0}")]
    Limit(String),
    /// JetStream cannot be reached for now: nothing was admitted.
    #[error("{0}")]
    Unavailable(String),
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

impl From<StoreError> for AdmitError {
    fn from(e: StoreError) -> AdmitError {
        AdmitError::Unavailable(e.to_string())
    }
}

/// What a run is admitted from.
#[derive(Debug)]
pub(crate) struct Request {
    /// Its id.
    pub run_id: Uuid,
    /// Its workflow.
    pub definition: WorkflowDef,
    /// Its input.
    pub input: Value,
    /// The `traceparent` its spans join.
    pub trace: Option<String>,
    /// The step that starts it, for a child run.
    pub parent: Option<ParentLink>,
    /// Its limits: the coordinator's for a submit, the parent's for a child.
    pub limits: RunLimits,
    /// The specs of the tools its `plan` steps may call (filled in by admission).
    pub tools: Vec<ToolSpec>,
    /// The prices its model calls are costed at (filled in by admission).
    pub prices: Prices,
    /// What it carries over from another run (a redrive's, a rerun's).
    pub seed: Option<Box<crate::machine::Seed>>,
}

/// A catalogue settled this recently is not read again for a tool it lacks.
const FRESH: Duration = Duration::from_millis(100);

/// The tool catalogue as last read.
#[derive(Debug)]
struct Catalogued {
    at: Instant,
    /// Goes up each time a read finds the catalogue changed.
    generation: u64,
    catalogue: Arc<Catalogue>,
    /// Two reads in a row found it the same.
    settled: bool,
}

impl Catalogued {
    /// `catalogue` as just read, after `before`: the same generation if nothing changed
    /// (and then settled), the next one otherwise.
    fn read(before: Option<&Catalogued>, catalogue: Catalogue) -> Catalogued {
        let (generation, settled) = match before {
            Some(c) if *c.catalogue == catalogue => (c.generation, true),
            Some(c) => (c.generation + 1, false),
            None => (0, false),
        };
        Catalogued { at: Instant::now(), generation, catalogue: Arc::new(catalogue), settled }
    }
}

/// Admits runs; one per coordinator, shared by the API and the run actors.
#[derive(Debug)]
pub(crate) struct Admission {
    nats: Arc<Nats>,
    pools: Arc<Pools>,
    catalogue: Mutex<Option<Catalogued>>,
    catalogue_ttl: Duration,
    /// Plans validated against the catalogue of the generation they are kept with.
    plans: std::sync::Mutex<(u64, Plans)>,
    /// Plans of children (validated without the catalogue, at deploy).
    children: std::sync::Mutex<Plans>,
    /// What a workflow may ask.
    limits: Limits,
    /// Model prices, for budgets.
    prices: Prices,
}

impl Admission {
    /// Admission over `nats`, reading the catalogue again when older than `catalogue_ttl`.
    pub(crate) fn new(nats: Arc<Nats>, pools: Arc<Pools>, catalogue_ttl: Duration, limits: Limits) -> Admission {
        Admission {
            nats,
            pools,
            catalogue: Mutex::new(None),
            catalogue_ttl,
            plans: std::sync::Mutex::new((0, Plans::default())),
            children: std::sync::Mutex::new(Plans::default()),
            limits,
            prices: Prices::new(),
        }
    }

    /// Costs model calls at `prices`.
    pub(crate) fn with_prices(mut self, prices: Prices) -> Admission {
        self.prices = prices;
        self
    }

    /// The limits of a submitted run.
    pub(crate) fn run_limits(&self) -> RunLimits {
        self.limits.run
    }

    /// The tools workers advertise and the catalogue's generation. A failed read keeps the
    /// last good catalogue (a stream electing a leader is no reason to refuse every
    /// submit); with none to keep, it is `Unavailable`, never an empty catalogue.
    async fn live_catalogue(&self) -> Result<(u64, Arc<Catalogue>), AdmitError> {
        let mut cached = self.catalogue.lock().await;
        if let Some(c) = cached.as_ref()
            && c.at.elapsed() < self.catalogue_ttl
        {
            return Ok((c.generation, c.catalogue.clone()));
        }
        let catalogue = match read_catalogue(&self.nats).await {
            Ok(catalogue) => catalogue,
            Err(e) => {
                return match cached.as_ref() {
                    Some(c) => {
                        tracing::warn!(error = %e, "tool catalogue not read; using the last one read");
                        Ok((c.generation, c.catalogue.clone()))
                    }
                    None => Err(AdmitError::Unavailable(format!("the tool catalogue cannot be read: {e}"))),
                };
            }
        };
        let c = Catalogued::read(cached.as_ref(), catalogue);
        let found = (c.generation, c.catalogue.clone());
        *cached = Some(c);
        Ok(found)
    }

    /// `def` validated against the live catalogue and compiled, or its plan from the last
    /// time, if the catalogue has not changed since. A tool the cached catalogue lacks sends
    /// it to be read again before the submit is refused: a worker that has just started
    /// (or advertised half its tools when the cache was filled) is no reason to refuse.
    pub(crate) async fn plan(&self, def: &WorkflowDef) -> Result<Arc<Plan>, AdmitError> {
        match self.plan_once(def).await {
            Err(AdmitError::Invalid { problems, .. }) if problems.iter().any(|p| p.code == Code::UnknownTool) => {
                self.settle_catalogue().await?;
                self.plan_once(def).await
            }
            other => other,
        }
    }

    /// Reads the catalogue until two reads agree (workers still advertising make them
    /// differ), for at most a second; a catalogue settled less than [`FRESH`] ago is not
    /// read again, so a burst of submits naming a tool nobody offers costs one read.
    async fn settle_catalogue(&self) -> Result<(), AdmitError> {
        let mut cached = self.catalogue.lock().await;
        if let Some(c) = cached.as_ref()
            && c.settled
            && c.at.elapsed() < FRESH
        {
            return Ok(());
        }
        for _ in 0..20 {
            let catalogue = match read_catalogue(&self.nats).await {
                Ok(catalogue) => catalogue,
                // Whether the tool is offered is not known: not a reason to call it invalid.
                Err(e) => return Err(AdmitError::Unavailable(format!("the tool catalogue cannot be read: {e}"))),
            };
            let c = Catalogued::read(cached.as_ref(), catalogue);
            let settled = c.settled;
            *cached = Some(c);
            if settled {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn plan_once(&self, def: &WorkflowDef) -> Result<Arc<Plan>, AdmitError> {
        let (generation, catalogue) = self.live_catalogue().await?;
        {
            let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
            if plans.0 < generation {
                plans.0 = generation;
                plans.1.clear();
            }
            if plans.0 == generation
                && let Some(plan) = plans.1.get(def)
            {
                return Ok(plan);
            }
        }
        let plan = compile(def.clone(), Some(catalogue), self.limits).await?;
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if plans.0 == generation {
            plans.1.insert(plan.clone());
        }
        Ok(plan)
    }

    /// A child's plan: its definition was validated against the tools when deployed.
    async fn child_plan(&self, def: &WorkflowDef) -> Result<Arc<Plan>, AdmitError> {
        if let Some(plan) = self.children.lock().unwrap_or_else(PoisonError::into_inner).get(def) {
            return Ok(plan);
        }
        let plan = compile(def.clone(), None, self.limits).await?;
        self.children.lock().unwrap_or_else(PoisonError::into_inner).insert(plan.clone());
        Ok(plan)
    }

    /// The plan of a submitted (or redriven) run's definition, checked as a submit is: valid,
    /// its tools live, its sub-workflows registered, its costs priced, its pools there; the
    /// request gets the tool specs and prices its run needs.
    async fn checked(&self, request: &mut Request) -> Result<Arc<Plan>, AdmitError> {
        let plan = self.plan(&request.definition).await?;
        request.tools = self.plan_tools(&plan).await;
        request.prices = self.prices_for(&plan);
        let mut problems = self.unregistered(&plan).await;
        problems.extend(self.unpriced(&plan));
        problems.extend(self.unpooled(&plan).await?);
        if !problems.is_empty() {
            return Err(AdmitError::Invalid { name: plan.name.clone(), problems });
        }
        Ok(plan)
    }

    /// Admits a submitted run: answered once its record and its creation are stored, or at
    /// once when its id names a run submitted with the same definition and input (then
    /// `existing`).
    pub(crate) async fn submit(&self, mut request: Request) -> Result<Admitted, AdmitError> {
        let plan = self.checked(&mut request).await?;
        let problems = plan.check_input(&request.input);
        if !problems.is_empty() {
            return Err(AdmitError::InvalidInput { name: plan.name.clone(), problems });
        }
        let run_id = request.run_id;
        let record = first_record(&request, plan);
        let Some(revision) = self.nats.store_new(&record).await? else {
            return self.taken(run_id, record.fingerprint.as_deref()).await;
        };
        self.nats.index(&index_entry(&request, &record)).await;
        let (subject, id) =
            (log::subject(log::partition_of(run_id, self.nats.partitions), run_id), creation_id(run_id));
        if let Err(e) = log::append(&self.nats.js, subject, &creation(request), &id).await {
            // Not accepted: the record goes, so the id can be submitted again.
            if let Err(undo) = self.nats.unstore(run_id, revision).await {
                tracing::warn!(%run_id, error = %undo, "the record of a run that was not created stays");
            }
            return Err(AdmitError::Unavailable(format!("the run could not be stored: {e}")));
        }
        Ok(Admitted { run_id, existing: false })
    }

    /// Admits the redrive of a run that ended (`request.seed` says what it had done): its
    /// definition is checked against the live tools as a submit's is, then its creation is appended (deduplicated by
    /// `id`, which names the ending it continues, so a redrive repeated is one).
    pub(crate) async fn redrive(&self, mut request: Request, id: &str) -> Result<(), AdmitError> {
        self.checked(&mut request).await?;
        let run_id = request.run_id;
        let subject = log::subject(log::partition_of(run_id, self.nats.partitions), run_id);
        log::append(&self.nats.js, subject, &creation(request), id)
            .await
            .map_err(|e| AdmitError::Unavailable(format!("the redrive could not be stored: {e}")))
    }

    /// Admits a child run. Starting it again (a new owner of its parent resuming the step)
    /// is harmless: its record is created once, and a second creation is ignored. The
    /// creation is appended in the background if it cannot be at once.
    pub(crate) async fn child(&self, mut request: Request) -> Result<(), AdmitError> {
        if let Some(parent) = &request.parent {
            self.within_tree(request.run_id, parent, &request.limits).await?;
        }
        let plan = self.child_plan(&request.definition).await?;
        request.tools = self.plan_tools(&plan).await;
        request.prices = self.prices_for(&plan);
        let problems = self.unpooled(&plan).await?;
        if !problems.is_empty() {
            return Err(AdmitError::Invalid { name: plan.name.clone(), problems });
        }
        let problems = plan.check_input(&request.input);
        if !problems.is_empty() {
            return Err(AdmitError::InvalidInput { name: plan.name.clone(), problems });
        }
        let run_id = request.run_id;
        let record = first_record(&request, plan);
        match self.nats.store_new(&record).await {
            Ok(Some(_)) => self.nats.index(&index_entry(&request, &record)).await,
            Ok(None) => {} // started before: indexed then
            Err(e) => tracing::warn!(%run_id, error = %e, "a child's first record not stored; its creation goes on"),
        }
        let subject = log::subject(log::partition_of(run_id, self.nats.partitions), run_id);
        crate::run_actor::append_reliably(&self.nats, subject, creation(request), creation_id(run_id)).await;
        Ok(())
    }

    /// The price table, for a run that calls models or has a budget.
    fn prices_for(&self, plan: &Plan) -> Prices {
        let models = plan.budget.is_some()
            || plan.all_steps().iter().any(|s| matches!(&s.kind, Kind::Plan(_)) || s.tool() == Some(PLANNER_TOOL));
        if models { self.prices.clone() } else { Prices::new() }
    }

    /// A `cost` budget cannot be kept without prices.
    fn unpriced(&self, plan: &Plan) -> Option<Problem> {
        (plan.budget.is_some_and(|b| b.cost.is_some()) && self.prices.is_empty()).then(|| Problem {
            path: "budget.cost".into(),
            step: None,
            code: Code::InvalidValue,
            message: "a cost budget needs the coordinator's price table (WEFT_PRICES); give a `tokens` budget \
                      instead, or configure prices"
                .into(),
        })
    }

    /// The specs of the tools `plan`'s `plan` steps may call, from the live catalogue
    /// (none if it has no `plan` step; names alone, for the model, if it cannot be read).
    async fn plan_tools(&self, plan: &Plan) -> Vec<ToolSpec> {
        let names: BTreeSet<&str> = plan
            .all_steps()
            .iter()
            .filter_map(|s| match &s.kind {
                Kind::Plan(spec) => Some(spec.tools.iter().map(String::as_str)),
                _ => None,
            })
            .flatten()
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        match self.live_catalogue().await {
            Ok((_, catalogue)) => names.into_iter().filter_map(|n| catalogue.get(n).cloned()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the tools of plan steps are shown to their model by name only");
                Vec::new()
            }
        }
    }

    /// A child run may start: it is not deeper than the run's limit, and the tree of runs
    /// under its root has not started as many children as it may (a counter per root in
    /// the runs bucket, counted once per child by compare-and-set). Recursion between
    /// workflows, or versions of one, ends here.
    async fn within_tree(&self, child: Uuid, parent: &ParentLink, limits: &RunLimits) -> Result<(), AdmitError> {
        if parent.depth > limits.max_depth {
            let message = exceeded("the depth of sub-workflows", parent.depth, limits.max_depth, "WEFT_MAX_DEPTH");
            return Err(AdmitError::Limit(message));
        }
        let Some(root) = parent.root else { return Ok(()) };
        let key = format!("tree.{root}");
        let store = &self.nats.infra.runs;
        for _ in 0..50 {
            let entry = store.entry(&key).await.map_err(|e| AdmitError::Unavailable(e.to_string()))?;
            let (mut started, revision): (Vec<Uuid>, Option<u64>) = match entry {
                Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => {
                    // Unreadable is not empty: that would let the tree start its children again.
                    let started = serde_json::from_slice(&e.value).map_err(|err| {
                        AdmitError::Unavailable(format!("weft_runs/{key} is corrupt (not a list of run ids): {err}"))
                    })?;
                    (started, Some(e.revision))
                }
                Some(e) => (Vec::new(), Some(e.revision)),
                None => (Vec::new(), None),
            };
            if started.contains(&child) {
                return Ok(()); // started before: this is the same child again
            }
            if started.len() >= limits.max_children as usize {
                let what = format!("the number of child runs under run {root}");
                return Err(AdmitError::Limit(exceeded(
                    &what,
                    started.len() + 1,
                    limits.max_children,
                    "WEFT_MAX_CHILDREN",
                )));
            }
            started.push(child);
            let bytes = serde_json::to_vec(&started).expect("ids serialise");
            let written = match revision {
                Some(r) => store.update(&key, bytes.into(), r).await.is_ok(),
                None => store.create(&key, bytes.into()).await.is_ok(),
            };
            if written {
                return Ok(());
            }
        }
        Err(AdmitError::Unavailable(format!("the count of child runs under {root} kept changing")))
    }

    /// A submit of `run_id` when a record of that id exists: the same run if it was
    /// submitted with the same definition and input (`fingerprint`), else refused, saying why.
    async fn taken(&self, run_id: Uuid, fingerprint: Option<&str>) -> Result<Admitted, AdmitError> {
        let why = match self.nats.stored(run_id).await {
            Ok(Some(record)) if fingerprint.is_some() && record.fingerprint.as_deref() == fingerprint => {
                return Ok(Admitted { run_id, existing: true });
            }
            Ok(Some(record)) if record.fingerprint.is_some() => format!(
                "is {} (workflow `{}`), submitted with another definition or input",
                record.status.as_str(),
                record.workflow
            ),
            Ok(Some(record)) => format!("is {} (workflow `{}`)", record.status.as_str(), record.workflow),
            Ok(None) => "was removed a moment ago".to_owned(),
            Err(e) => format!("has a record that cannot be read: {e}"),
        };
        Err(AdmitError::Taken { run_id, why })
    }

    /// Steps asking for a pool that has no capacity (or less than they need) could never
    /// run: refused at submit, with how to set one.
    async fn unpooled(&self, plan: &Plan) -> Result<Vec<Problem>, AdmitError> {
        let mut problems = Vec::new();
        let mut capacities: std::collections::BTreeMap<String, u32> = Default::default();
        for step in plan.all_steps() {
            for (pool, units) in &step.resources {
                let capacity = match capacities.get(pool) {
                    Some(c) => *c,
                    None => {
                        let read = self.pools.read(pool).await.map_err(|e| AdmitError::Unavailable(e.to_string()))?;
                        let c = read.map_or(0, |p| p.capacity);
                        capacities.insert(pool.clone(), c);
                        c
                    }
                };
                let message = if capacity == 0 {
                    format!("pool `{pool}` has no capacity: set one with `weft pools set {pool} N`")
                } else if *units > capacity {
                    format!("needs {units} units of pool `{pool}`, which has {capacity}: it could never run")
                } else {
                    continue;
                };
                problems.push(Problem {
                    path: format!("resources.{pool}"),
                    step: Some(step.id.clone()),
                    code: Code::InvalidValue,
                    message,
                });
            }
        }
        Ok(problems)
    }

    /// Sub-workflows that are not registered are refused at submit, not discovered mid-run.
    async fn unregistered(&self, plan: &Plan) -> Vec<Problem> {
        let mut problems = Vec::new();
        for step in plan.all_steps() {
            let Kind::SubWorkflow { name, version, .. } = &step.kind else { continue };
            let store = &self.nats.infra.definitions;
            let found = match version {
                Some(v) => store.get(weft_protocol::subjects::definition_key(name, *v)).await.map(|d| d.is_some()),
                None => Ok(definitions::latest(store, name).await.is_ok()),
            };
            if let Ok(false) = found {
                let which = version.map_or(String::new(), |v| format!(" version {v}"));
                problems.push(Problem {
                    path: "workflow.name".to_owned(),
                    step: Some(step.id.clone()),
                    code: Code::InvalidValue,
                    message: format!("no workflow `{name}`{which} is registered (register it with `weft deploy`)"),
                });
            }
        }
        problems
    }
}

/// Validates and compiles on the blocking pool, off the async runtime.
///
/// At most one fewer at a time than the machine has cores (and at least one): a burst of
/// large definitions queues here and leaves the runtime's threads a core for status,
/// cancels and the runs already going.
async fn compile(def: WorkflowDef, catalogue: Option<Arc<Catalogue>>, limits: Limits) -> Result<Arc<Plan>, AdmitError> {
    static VALIDATIONS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let validations = VALIDATIONS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    });
    let name = def.name.clone();
    let _permit = validations.acquire().await.map_err(|e| AdmitError::Unavailable(e.to_string()))?;
    let compiled =
        tokio::task::spawn_blocking(move || validate::compile_within(&def, catalogue.as_deref(), &limits)).await;
    match compiled {
        Ok(Ok(plan)) => Ok(Arc::new(plan)),
        Ok(Err(problems)) => Err(AdmitError::Invalid { name, problems: problems.0 }),
        Err(e) => Err(AdmitError::Unavailable(format!("validation of `{name}` did not finish: {e}"))),
    }
}

/// Every advertised tool, or why the bucket could not be read. An advertisement that is
/// not one is left out, with a warning naming its key.
async fn read_catalogue(nats: &Nats) -> Result<Catalogue, NatsError> {
    let tools = &nats.infra.tools;
    let fail = |e: async_nats::Error| NatsError::new("read the tool catalogue", e);
    let mut catalogue = Catalogue::default();
    let mut keys = tools.keys().await.map_err(|e| fail(e.into()))?;
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| fail(e.into()))?;
        let Some(bytes) = tools.get(&key).await.map_err(|e| fail(e.into()))? else { continue };
        match serde_json::from_slice::<Advertisement>(&bytes) {
            Ok(ad) => catalogue.insert(ad.spec),
            Err(e) => tracing::warn!(key = %key, error = %e, "an unreadable tool advertisement left out"),
        }
    }
    Ok(catalogue)
}

/// The record a run starts with: `running`, its steps pending.
/// A submit's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The run.
    pub(crate) run_id: Uuid,
    /// It had been submitted before, with the same definition and input: no new run.
    pub(crate) existing: bool,
}

fn first_record(request: &Request, plan: Arc<Plan>) -> RunRecord {
    Run::new(request.run_id, plan, request.input.clone(), now_ms())
        .with_parent(request.parent.clone())
        .with_fingerprint(weft_protocol::wire::fingerprint(&request.definition, &request.input))
        .with_seed(request.seed.as_deref().cloned())
        .record()
}

fn index_entry(request: &Request, record: &RunRecord) -> IndexEntry {
    IndexEntry {
        run_id: request.run_id,
        workflow: record.workflow.clone(),
        created_ms: record.created_ms,
        parent: request.parent.as_ref().map(|p| p.run_id),
    }
}

fn creation(request: Request) -> Entry {
    Entry::Created {
        definition: Box::new(request.definition),
        input: request.input,
        trace: request.trace,
        parent: request.parent,
        limits: request.limits,
        tools: request.tools,
        prices: request.prices,
        // Fresh for each creation: a worker cannot read the log, so cannot derive a token.
        secret: Uuid::new_v4(),
        seed: request.seed,
    }
}

fn creation_id(run_id: Uuid) -> String {
    format!("create:{run_id}")
}
