//! Commands that talk to a Weft deployment over NATS.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::exit;
use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;
use weft_client::WeftClient;
use weft_client::timeline;
use weft_lang::definition::{LoadError, WorkflowDef};
use weft_protocol::wire::{Event, EventKind, RunRecord, RunStatus, now_ms};

/// Where the run's input comes from. Input that is not JSON is a usage error, named as
/// the input's fault.
pub(crate) fn read_input(inline: Option<&str>, file: Option<&Path>) -> anyhow::Result<Value> {
    match (inline, file) {
        (Some(text), _) => {
            serde_json::from_str(text).map_err(|e| exit::usage(format!("--input is not JSON ({e}): {text}")))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| exit::usage(format!("cannot read the input file {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| exit::usage(format!("the input file {} is not JSON: {e}", path.display())))
        }
        (None, None) => Ok(Value::Object(Default::default())),
    }
}

/// A workflow file (`-`: standard input): unreadable is a usage error, not a workflow is
/// invalid.
pub(crate) fn load(file: &Path) -> anyhow::Result<WorkflowDef> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| exit::usage(format!("cannot read the workflow from standard input: {e}")))?;
        return WorkflowDef::from_json(&text).map_err(|e| exit::invalid(format!("standard input: {e}")));
    }
    WorkflowDef::load(file).map_err(|e| match e {
        LoadError::Io { .. } => exit::usage(e.to_string()),
        LoadError::Parse { .. } => exit::invalid(e.to_string()),
    })
}

/// The workflow to run: a file, or a registered definition.
pub(crate) async fn workflow(
    client: &WeftClient,
    file: Option<&Path>,
    name: Option<&str>,
    version: Option<u32>,
) -> anyhow::Result<WorkflowDef> {
    match (file, name) {
        (Some(file), _) => load(file),
        (None, Some(name)) => Ok(client.definition(name, version).await?),
        (None, None) => Err(exit::usage("give a workflow file or --name")),
    }
}

/// `weft deploy`.
pub(crate) async fn deploy(client: &WeftClient, files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    for file in files {
        let def = load(file)?;
        client.deploy(&def).await.with_context(|| format!("{}", file.display()))?;
        outln!("registered {} v{}", def.name, def.version);
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft definitions`.
pub(crate) async fn definitions(client: &WeftClient) -> anyhow::Result<ExitCode> {
    for (name, version) in client.definitions().await? {
        outln!("{name} v{version}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn parse_id(id: &str) -> anyhow::Result<Uuid> {
    id.parse().map_err(|_| exit::usage(format!("`{id}` is not a run id (a UUID such as 0193c1c4-...)")))
}

fn describe(event: &Event) -> String {
    match &event.kind {
        EventKind::RunStarted { workflow } => format!("run started ({workflow})"),
        EventKind::StepStarted { step_id, attempt } if *attempt > 1 => format!("{step_id}: started, attempt {attempt}"),
        EventKind::StepStarted { step_id, .. } => format!("{step_id}: started"),
        EventKind::StepCompleted { step_id, worker, tokens: Some(tokens), cost } => {
            let cost = cost.filter(|c| *c > 0.0).map(|c| format!(", cost {c:.4}")).unwrap_or_default();
            format!("{step_id}: completed on {worker} ({tokens} tokens{cost})")
        }
        EventKind::StepCompleted { step_id, worker, .. } => format!("{step_id}: completed on {worker}"),
        EventKind::StepRetrying { step_id, attempt, delay_ms, error } => {
            format!("{step_id}: attempt {attempt} failed ({error}); retrying in {delay_ms}ms")
        }
        EventKind::StepFailed { step_id, error } => format!("{step_id}: failed: {error}"),
        EventKind::StepSkipped { step_id, reason } => format!("{step_id}: skipped ({reason})"),
        EventKind::StepCancelled { step_id, reason } => format!("{step_id}: cancelled ({reason})"),
        EventKind::CompensationStarted { step_id, attempt } if *attempt > 1 => {
            format!("{step_id}: compensating, attempt {attempt}")
        }
        EventKind::CompensationStarted { step_id, .. } => format!("{step_id}: compensating"),
        EventKind::CompensationCompleted { step_id } => format!("{step_id}: compensated"),
        EventKind::CompensationFailed { step_id, error, attempt, retrying: true } => {
            format!("{step_id}: compensation attempt {attempt} failed ({error}); retrying")
        }
        EventKind::CompensationFailed { step_id, error, .. } => format!("{step_id}: compensation failed: {error}"),
        EventKind::RunPaused => "run paused".to_owned(),
        EventKind::RunResumed => "run resumed".to_owned(),
        EventKind::PlanProposed { step_id, attempt, round } => {
            format!("{step_id}: the model proposed plan {round} (attempt {attempt}); checking it")
        }
        EventKind::BudgetExceeded { step_id, tokens, cost } => format!(
            "{step_id}: out of budget ({tokens} tokens, cost {cost:.4} spent and held); \
             resume with `weft resume {} --add-tokens N`",
            event.run_id
        ),
        EventKind::SignalReceived { name } => format!("signal `{name}` received"),
        EventKind::RunFinished { status } => format!("run finished: {}", status.as_str()),
    }
}

pub(crate) fn print_record(record: &RunRecord, gantt: bool) {
    outln!("run {} ({} v{}): {}", record.run_id, record.workflow, record.version, record.status.as_str());
    for e in &record.errors {
        outln!("  error: {e}");
    }
    if let Some(note) = &record.abridged {
        outln!("  abridged: {note}");
    }
    if let Some(spent) = &record.spent {
        outln!("  spent: {}", timeline::spend_text(spent, record.budget.as_ref()));
    }
    for (path, step) in record.steps.iter().filter(|(_, s)| !s.plans.is_empty()) {
        for (n, round) in step.plans.iter().enumerate() {
            let by = if round.attempt == 0 { "an approver" } else { "the model" };
            let verdict = match (round.checked, round.problems.len()) {
                (false, _) => "not checked yet".to_owned(),
                (true, 0) => "valid".to_owned(),
                (true, k) => format!("{k} problem(s): {}", round.problems.join("; ")),
            };
            outln!("  {path}: plan {} (by {by}): {verdict}", n + 1);
        }
    }
    if let Some(output) = &record.output {
        outln!("output: {}", serde_json::to_string_pretty(output).unwrap_or_default());
    }
    outln!();
    out!("{}", timeline::table(record));
    if gantt {
        outln!();
        out!("{}", timeline::gantt(record, 50));
    }
    outln!();
    out!("{}", timeline::summary_text(record, now_ms()));
}

pub(crate) fn exit_for(record: &RunRecord) -> ExitCode {
    ExitCode::from(if record.status == RunStatus::Completed { exit::OK } else { exit::FAILED })
}

/// `weft run`: submit, follow, print the outcome; exit 0 only if the run completed.
pub(crate) async fn run(
    client: &WeftClient,
    def: &WorkflowDef,
    input: Value,
    key: Option<(&str, weft_client::Reuse)>,
    json: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let (run_id, made) = submit_once(client, def, input, key).await?;
    let _ = FOLLOWED.set(run_id);
    if !json && !quiet {
        if made {
            eprintln!("submitted run {run_id}");
        } else {
            let key = key.map_or("", |(key, _)| key);
            eprintln!("run {run_id} was submitted before with key {key:?}: following it");
        }
    }
    let mut events = Box::pin(client.watch(run_id).await?);
    while let Some(event) = events.next().await {
        let event = event?;
        if !json && !quiet {
            eprintln!("  {}", describe(&event));
        }
    }
    let record = client.status(run_id).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        eprintln!();
        print_record(&record, true);
    }
    Ok(exit_for(&record))
}

/// The run `weft run` or `weft watch` follows, for what Ctrl-C says.
static FOLLOWED: std::sync::OnceLock<Uuid> = std::sync::OnceLock::new();

/// Ctrl-C: a run being followed goes on; say so, and how to reach it again.
pub(crate) fn interrupted() -> ExitCode {
    match FOLLOWED.get() {
        Some(run) => eprintln!(
            "\ninterrupted: run {run} goes on without this command. Follow it with `weft watch {run}`, stop it with `weft cancel {run}`."
        ),
        None => eprintln!("\ninterrupted"),
    }
    ExitCode::from(exit::INTERRUPTED)
}

/// `weft submit`: print the run id at once (with a key: the key's run, made once).
pub(crate) async fn submit(
    client: &WeftClient,
    def: &WorkflowDef,
    input: Value,
    key: Option<(&str, weft_client::Reuse)>,
) -> anyhow::Result<ExitCode> {
    outln!("{}", submit_once(client, def, input, key).await?.0);
    Ok(ExitCode::SUCCESS)
}

/// A submit, or with a business key the key's one run; whether this call made it.
async fn submit_once(
    client: &WeftClient,
    def: &WorkflowDef,
    input: Value,
    key: Option<(&str, weft_client::Reuse)>,
) -> anyhow::Result<(Uuid, bool)> {
    Ok(match key {
        Some((key, reuse)) => client.submit_keyed_with(def, input, key, reuse).await?,
        None => (client.submit(def, input).await?, true),
    })
}

/// `weft status`.
pub(crate) async fn status(client: &WeftClient, id: &str, json: bool, gantt: bool) -> anyhow::Result<ExitCode> {
    let record = client.status(parse_id(id)?).await?;
    if json {
        // The record, and the summary people read below the timeline.
        let mut value = serde_json::to_value(&record)?;
        if let Value::Object(fields) = &mut value {
            fields.insert("summary".to_owned(), serde_json::to_value(timeline::summary(&record, now_ms()))?);
        }
        outln!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_record(&record, gantt);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a piece of streamed model text (or, with `json`, the delta as a JSON line).
fn print_delta(delta: &weft_protocol::wire::Delta, json: bool, writing: &mut bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string(delta)?);
    } else if delta.done {
        if *writing {
            eprintln!();
        }
        *writing = false;
    } else {
        if !*writing {
            eprint!("  {} writes: ", delta.step_id);
        }
        eprint!("{}", delta.text);
        *writing = true;
    }
    Ok(())
}

/// `weft watch`: events as they happen, from the run's start.
pub(crate) async fn watch(client: &WeftClient, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let run_id = parse_id(id)?;
    let _ = FOLLOWED.set(run_id);
    // Fail with "not found" rather than wait forever on a run that does not exist.
    client.status(run_id).await?;
    // Model text streamed by `llm` steps (`stream: true`) is printed as it comes, on
    // standard error, between the events.
    let mut deltas = Box::pin(client.deltas(run_id).await?);
    let mut events = Box::pin(client.watch(run_id).await?);
    let mut last = None;
    let mut writing = false;
    loop {
        // Deltas first when both are ready: a step's text is sent before its result, so
        // before any event that follows from it.
        let event = tokio::select! {
            biased;
            Some(delta) = deltas.next() => {
                print_delta(&delta, json, &mut writing)?;
                continue;
            }
            event = events.next() => match event {
                Some(event) => event?,
                None => break,
            },
        };
        // Mid-text, an attempt's end came first by another path (events go through the
        // coordinator and JetStream, deltas straight from the worker, before the result):
        // the rest of the text is on its way, so let it finish (briefly) before the event.
        let ends_an_attempt = matches!(
            event.kind,
            EventKind::StepCompleted { .. }
                | EventKind::StepFailed { .. }
                | EventKind::StepRetrying { .. }
                | EventKind::StepCancelled { .. }
                | EventKind::RunFinished { .. }
        );
        while writing && ends_an_attempt {
            match tokio::time::timeout(std::time::Duration::from_millis(250), deltas.next()).await {
                Ok(Some(delta)) => print_delta(&delta, json, &mut writing)?,
                _ => break,
            }
        }
        if writing {
            eprintln!();
            writing = false;
        }
        if json {
            outln!("{}", serde_json::to_string(&event)?);
        } else {
            outln!("{} {}", event.seq, describe(&event));
        }
        if let EventKind::RunFinished { status } = event.kind {
            last = Some(status);
        }
    }
    Ok(ExitCode::from(if last == Some(RunStatus::Completed) { exit::OK } else { exit::FAILED }))
}

/// `weft cancel`.
pub(crate) async fn cancel(
    client: &WeftClient,
    id: &str,
    reason: Option<String>,
    compensate: bool,
) -> anyhow::Result<ExitCode> {
    if compensate {
        client.cancel_and_compensate(parse_id(id)?, reason).await?;
        outln!("cancelling {id}: its compensations run first");
    } else {
        client.cancel(parse_id(id)?, reason).await?;
        outln!("cancelling {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft pause`.
/// `weft terminate`: a cancel that never compensates (a cancel of a compensating run
/// stops its saga too), its reason marked as a termination.
pub(crate) async fn terminate(client: &WeftClient, id: &str, reason: Option<String>) -> anyhow::Result<ExitCode> {
    let reason = format!("terminated: {}", reason.as_deref().unwrap_or("by request"));
    client.cancel(parse_id(id)?, Some(reason)).await?;
    outln!("terminating {id}: it ends at once, undoing nothing");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn pause(client: &WeftClient, id: &str) -> anyhow::Result<ExitCode> {
    client.pause(parse_id(id)?).await?;
    outln!("pausing {id}");
    Ok(ExitCode::SUCCESS)
}

/// `weft resume`.
pub(crate) async fn resume(
    client: &WeftClient,
    id: &str,
    tokens: Option<u64>,
    cost: Option<f64>,
) -> anyhow::Result<ExitCode> {
    client.resume_with(parse_id(id)?, tokens, cost).await?;
    outln!("resuming {id}");
    Ok(ExitCode::SUCCESS)
}

/// `weft signal`.
pub(crate) async fn signal(client: &WeftClient, id: &str, name: &str, data: Option<&str>) -> anyhow::Result<ExitCode> {
    let data = match data {
        Some(text) => serde_json::from_str(text).with_context(|| format!("the signal's data is not JSON: {text}"))?,
        None => Value::Object(Default::default()),
    };
    client.signal(parse_id(id)?, name, data).await?;
    outln!("signal `{name}` sent to {id}");
    Ok(ExitCode::SUCCESS)
}

/// `weft list`.
pub(crate) async fn list(client: &WeftClient, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let runs = client.list(Some(limit)).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<36}  {:<24}  {:<10}  TOOK", "RUN", "WORKFLOW", "STATUS");
    for r in runs {
        let took = r.finished_ms.map_or_else(|| "-".to_owned(), |f| format!("{}ms", f.saturating_sub(r.created_ms)));
        outln!("{:<36}  {:<24}  {:<10}  {took}", r.run_id, r.workflow, r.status.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft tools`.
pub(crate) async fn tools(client: &WeftClient, json: bool, functions: bool) -> anyhow::Result<ExitCode> {
    let ads = client.tools().await?;
    if functions {
        let mut seen = std::collections::BTreeMap::new();
        for ad in &ads {
            seen.entry(ad.spec.name.clone()).or_insert_with(|| ad.spec.to_function_schema());
        }
        outln!("{}", serde_json::to_string_pretty(&seen.into_values().collect::<Vec<_>>())?);
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&ads)?);
        return Ok(ExitCode::SUCCESS);
    }
    if ads.is_empty() {
        bail!("no tools are advertised: is a weft-worker running against this NATS server?");
    }
    let mut by_tool: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for ad in &ads {
        by_tool.entry(&ad.spec.name).or_default().push(&ad.worker);
    }
    for (tool, workers) in by_tool {
        let description = ads.iter().find(|a| a.spec.name == tool).map(|a| a.spec.description.as_str()).unwrap_or("");
        let first_line = description.lines().next().unwrap_or("");
        outln!("{tool:<28} {} worker(s)  {first_line}", workers.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft pools`.
pub(crate) async fn pools(client: &WeftClient, json: bool) -> anyhow::Result<ExitCode> {
    let pools = client.pools().await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&pools)?);
        return Ok(ExitCode::SUCCESS);
    }
    if pools.is_empty() {
        outln!("no pools: `weft pools set NAME N` sets one");
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<20}  {:>8}  {:>6}  {:>7}", "POOL", "CAPACITY", "HELD", "WAITING");
    for p in &pools {
        outln!("{:<20}  {:>8}  {:>6}  {:>7}", p.name, p.pool.capacity, p.pool.held(), p.pool.waiters.len());
        for h in &p.pool.holders {
            outln!("  held by {} {} (attempt {}): {} unit(s)", h.run_id, h.step, h.attempt, h.units);
        }
        for w in &p.pool.waiters {
            outln!(
                "  waited for by {} {} (attempt {}, priority {}): {} unit(s)",
                w.run_id,
                w.step,
                w.attempt,
                w.priority,
                w.units
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft pools set`.
pub(crate) async fn set_pool(client: &WeftClient, name: &str, capacity: u32) -> anyhow::Result<ExitCode> {
    client.set_pool(name, capacity).await?;
    outln!("pool {name}: {capacity} unit(s)");
    Ok(ExitCode::SUCCESS)
}
