//! The state machine of one run: a pure function of inputs to effects, with no I/O.
//!
//! [`Run::apply`] takes an [`Input`] (start, a task result, a timer firing, a cancel, a
//! child run's end) and returns the [`Effect`]s to carry out (publish a task, schedule a
//! timer, tell workers to stop, start a child run, publish an event, finish). The run actor
//! carries them out; tests drive the machine synchronously.
//!
//! A run is a tree of *frames*: the top-level steps are the root frame, and every construct
//! instance opens frames for its bodies (one per `for_each` item, per `loop` iteration, one
//! for a switch's case, a race's branches...). Each step instance has a *path* that names
//! it across the run (`charge`, `pages[3].ocr`, `poll[2].check`): tasks, results, timers,
//! events and the record all use it. See `frame.rs` and `constructs.rs`.
//!
//! Scheduling: a step is dispatched the moment its dependencies are finished, the skip
//! rule lets it through ([`weft_lang::plan::Step::gate`]) and its `when` holds, up to
//! `max_parallel` tasks running at once (higher `priority` first, then document order). A
//! result is applied once, and only to the attempt of a tool call the machine dispatched
//! and waits for.
//!
//! # Transitions
//!
//! Run status × input → what happens. After every input that changes something, the
//! frames that changed are advanced (`Running`) or the saga moves on (`Compensating`).
//! Anything not applied is an [`Effect::Ignored`], which the actor logs with the entry's
//! log sequence.
//!
//! | status | input | handler |
//! |---|---|---|
//! | running, paused | `Start` | `run_started`; the run's timeout is armed |
//! | running, paused | `Result` | `on_result`: the attempt in flight of a tool call completes, retries or fails (`awaited` says which results are) |
//! | running, paused | `Timer` | `take_timer` (armed and due, else ignored or armed again); `Retry`: the step is pending again; `StepTimeout`: `on_step_timeout`; `RunTimeout`: ends `timed_out`; `WaitOver`, `SignalTimeout`: `on_waiting_timer` |
//! | running, paused | `Cancel` | ends `cancelled` |
//! | running | `Pause` | becomes `paused`: nothing new is dispatched |
//! | paused | `Resume` | becomes `running`: every frame is looked at again |
//! | running, paused | `Signal` | `on_signal`: the waiting step takes it, or it is kept for the one that will |
//! | running, paused | `Child` | `on_child`: the `workflow` (or `plan`) step waiting for that child completes or fails its attempt |
//! | running, paused | `PlanChecked` | `on_plan_checked`: a `plan` step's plan is run, awaits approval, is repaired or fails the step (see `planning`) |
//! | compensating | `Result` | `on_compensation_result` for a compensation, `on_drained_result` for a step running when the saga began |
//! | compensating | `Timer` | `CompensationRetry`, `CompensationTimeout`, `Drain`, a drained step's `StepTimeout`; others are ignored |
//! | compensating | `Cancel` | ends `cancelled` where the saga is |
//! | compensating | `Start`, `Pause`, `Resume`, `Signal`, `Child`, `PlanChecked` | ignored |
//! | ended (any terminal status) | anything | ignored: the run has ended |

mod budget;
mod child;
mod constructs;
mod frame;
mod ids;
mod planning;
mod redrive;
mod saga;
mod schedule;
mod spans;
mod step;
mod units;
mod waiting;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use weft_lang::catalogue::ToolSpec;
use weft_lang::definition::FailurePolicy;
use weft_lang::limits::RunLimits;
use weft_lang::plan::Plan;
use weft_protocol::wire::{
    CancelTask, Event, EventKind, Millis, RunRecord, RunStatus, RunSummary, StepRecord, StepStatus, Task, TaskResult,
    ToolError, codes,
};

pub(crate) use child::{ChildResult, ChildStart, ParentLink};
pub(crate) use planning::PlanCheck;
pub(crate) use step::StepState;
pub(crate) use units::PoolClaim;

use constructs::Construct;
use frame::Frame;
use ids::{FrameId, InstId};
pub(crate) use redrive::Seed;

/// Something that happens to a run. Inputs are what a run's history records: replaying
/// them in order rebuilds the run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub(crate) enum Input {
    /// Begin.
    Start,
    /// A worker answered.
    Result {
        /// The answer.
        result: TaskResult,
    },
    /// A timer the run asked for fired.
    Timer {
        /// Which.
        timer: Timer,
    },
    /// Someone cancelled the run.
    Cancel {
        /// Why.
        reason: String,
        /// Undo what completed first, as a failure under `on_failure: compensate` would
        /// (the run then ends `cancelled`, or `compensation_failed`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compensate: bool,
    },
    /// Dispatch nothing new until resumed.
    Pause,
    /// Carry on (after a pause, or out of budget), with more budget if given.
    Resume {
        /// Tokens added to the budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add_tokens: Option<u64>,
        /// Cost added to the budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add_cost: Option<f64>,
    },
    /// Data for `signal` steps waiting for `name`.
    Signal {
        /// The signal.
        name: String,
        /// Its data.
        data: Value,
    },
    /// A resource pool granted units to a step attempt waiting for them.
    Granted {
        /// The step instance.
        step: String,
        /// Its attempt.
        attempt: u32,
        /// The pool.
        pool: String,
        /// The ask it answers (absent in entries logged before asks were numbered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ask: Option<u64>,
    },
    /// A child run started by a `workflow` step ended (or could not start).
    Child {
        /// How it ended.
        result: ChildResult,
    },
    /// The coordinator checked plan `round` of `plan` step `step`.
    PlanChecked {
        /// The step instance.
        step: String,
        /// Which of its plans (1-based).
        round: u32,
        /// What is wrong with it (none: it is valid).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        problems: Vec<String>,
    },
}

impl Input {
    /// A plain resume, with no more budget.
    pub(crate) fn resume() -> Input {
        Input::Resume { add_tokens: None, add_cost: None }
    }

    /// How the input reads in a log line.
    pub(crate) fn describe(&self) -> String {
        match self {
            Input::Start => "start".to_owned(),
            Input::Result { result } => describe_result(result),
            Input::Timer { timer } => {
                format!("timer {}", serde_json::to_string(timer).unwrap_or_else(|_| format!("{timer:?}")))
            }
            Input::Cancel { .. } => "cancel".to_owned(),
            Input::Pause => "pause".to_owned(),
            Input::Resume { .. } => "resume".to_owned(),
            Input::Signal { name, .. } => format!("signal `{name}`"),
            Input::Child { result } => {
                format!("end of child run {} of `{}` attempt {}", result.child_id, result.step, result.attempt)
            }
            Input::Granted { step, attempt, pool, .. } => {
                format!("units of pool `{pool}` for `{step}` attempt {attempt}")
            }
            Input::PlanChecked { step, round, .. } => format!("check of plan {round} of `{step}`"),
        }
    }
}

/// An input as the run's log holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Logged {
    /// The input.
    pub input: Input,
    /// When the log stored it: the `now` it is applied at.
    pub at: Millis,
    /// Its log sequence.
    pub seq: u64,
}

/// Timers a run asks for. `step` is a step instance's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "timer", rename_all = "snake_case")]
pub(crate) enum Timer {
    /// Time for the next attempt of a step.
    Retry {
        /// The step.
        step: String,
        /// The attempt that failed.
        attempt: u32,
    },
    /// An attempt ran out of time.
    StepTimeout {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
    },
    /// The run ran out of time.
    RunTimeout,
    /// Time for the next attempt of a compensation.
    CompensationRetry {
        /// The step being undone.
        step: String,
        /// The attempt that failed.
        attempt: u32,
    },
    /// A compensation attempt ran out of time.
    CompensationTimeout {
        /// The step being undone.
        step: String,
        /// The attempt.
        attempt: u32,
    },
    /// Steps cancelled by a saga had their time to answer.
    Drain,
    /// A `wait` step's time is up.
    WaitOver {
        /// The step.
        step: String,
    },
    /// A `signal` step waited long enough.
    SignalTimeout {
        /// The step.
        step: String,
    },
}

impl Timer {
    /// The step instance the timer is about, if any.
    fn step(&self) -> Option<&str> {
        match self {
            Timer::Retry { step, .. }
            | Timer::StepTimeout { step, .. }
            | Timer::CompensationRetry { step, .. }
            | Timer::CompensationTimeout { step, .. }
            | Timer::WaitOver { step }
            | Timer::SignalTimeout { step } => Some(step),
            Timer::RunTimeout | Timer::Drain => None,
        }
    }
}

/// What the run actor must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Publish a task for a worker.
    Dispatch(Task),
    /// Deliver `Input::Timer(timer)` after `after`.
    Schedule {
        /// Which timer.
        timer: Timer,
        /// When.
        after: Duration,
    },
    /// Tell workers to stop tools of this run.
    Cancel(CancelTask),
    /// Start a child run for a `workflow` step (idempotent by the child's id).
    StartChild(ChildStart),
    /// Check a `plan` step's plan and log the verdict as `Input::PlanChecked`.
    CheckPlan(planning::PlanCheck),
    /// Ask a resource pool for units for a step attempt; the grant comes back as an
    /// `Input::Granted` on the run's log.
    Acquire(PoolClaim),
    /// This coordinator holds these units (renew their lease; after a takeover, claim them
    /// again).
    Hold(PoolClaim),
    /// Return the units a step attempt held or asked for.
    Release(PoolClaim),
    /// Cancel a child run.
    CancelChild {
        /// The child.
        child_id: Uuid,
        /// Why.
        reason: String,
    },
    /// Publish a lifecycle event.
    Emit(Event),
    /// The run is over: store its record, tell its parent, and stop.
    Finished,
    /// An input was not applied: the actor logs it with the entry's log sequence.
    Ignored(Ignored),
}

/// An input the machine did not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ignored {
    /// What the input was (`result of `a` attempt 2`).
    pub input: String,
    /// Why it was not applied.
    pub reason: String,
    /// No honest participant sends such an input: a result for a step that was never sent
    /// as a task, an attempt never dispatched, an unknown path. Late and repeated inputs,
    /// which redeliveries and timeouts produce all the time, are not unexpected.
    pub unexpected: bool,
}

impl Ignored {
    /// A late or repeated input.
    fn stale(input: impl Into<String>, reason: impl Into<String>) -> Ignored {
        Ignored { input: input.into(), reason: reason.into(), unexpected: false }
    }

    /// An input no honest participant sends.
    fn unexpected(input: impl Into<String>, reason: impl Into<String>) -> Ignored {
        Ignored { input: input.into(), reason: reason.into(), unexpected: true }
    }
}

/// Tasks on workers: one more at each dispatch, one less when an attempt's result,
/// timeout or cancel ends it. It cannot go below zero: a release without a task in flight
/// is a no-op (the property tests check that the count always equals the attempts in
/// flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct InFlight(usize);

impl InFlight {
    fn add(&mut self) {
        self.0 = self.0.saturating_add(1);
    }

    fn release(&mut self) {
        self.0 = self.0.saturating_sub(1);
    }

    fn count(self) -> usize {
        self.0
    }

    fn any(self) -> bool {
        self.0 > 0
    }

    fn clear(&mut self) {
        self.0 = 0;
    }
}

/// How a timer input compares with the timers the run armed.
enum Armed {
    /// It was armed and its time has come: apply it.
    Due,
    /// It was not armed (it fired before, or what it was for ended).
    Not,
    /// It was armed for later (a clock ahead of the log's, or a forged entry): armed again
    /// for the time left.
    Early(Duration),
}

/// One step instance: a step of the plan, run once in one frame.
#[derive(Debug, Clone)]
struct Inst {
    /// Its name across the run (`pages[3].ocr`).
    path: String,
    /// The frame it belongs to.
    frame: FrameId,
    /// Its position in the frame's body.
    index: usize,
    /// Where it is.
    state: StepState,
    /// A construct's own progress, once it started.
    construct: Option<Construct>,
}

/// One run's state.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    id: Uuid,
    /// Shared by every run of the same definition.
    plan: Arc<Plan>,
    status: RunStatus,
    /// Every step instance, in creation order.
    insts: Vec<Inst>,
    /// Every frame; frame 0 holds the top-level steps.
    frames: Vec<Frame>,
    /// Instance by path (results and timers find their step without a scan).
    positions: HashMap<String, InstId>,
    /// Frames where something changed since they were last advanced.
    dirty: BTreeSet<FrameId>,
    /// Frames with a ready task held back by `max_parallel`.
    blocked: BTreeSet<FrameId>,
    /// Tasks running on workers.
    running: InFlight,
    created_ms: Millis,
    finished_ms: Option<Millis>,
    errors: Vec<String>,
    output: Option<Value>,
    seq: u64,
    /// Pool asks made so far: each ask's number ([`units`]).
    asks: u64,
    /// Timers asked for and not fired yet, with their deadlines: what a restarted
    /// coordinator must arm again.
    timers: Vec<(Timer, Millis)>,
    /// How many steps completed so far (orders completions for the saga).
    completions: u64,
    /// Bytes of the step outputs it holds, as JSON (see `RunLimits::max_output_bytes`).
    output_bytes: usize,
    /// Where workers publish results: the run's log subject.
    reply_to: String,
    /// Signals that arrived before a step waited for them.
    signals: BTreeMap<String, Value>,
    /// The saga, once a failure under `on_failure: compensate` started it.
    saga: Option<saga::Saga>,
    /// The run that started this one as a sub-workflow.
    parent: Option<ParentLink>,
    /// What it was submitted with (`wire::fingerprint`), to tell a repeated submit apart.
    fingerprint: Option<String>,
    /// What it carries over from the run it continues, if it was redriven.
    seed: Option<Arc<Seed>>,
    /// What the run may do (fixed at admission, logged with its creation).
    limits: RunLimits,
    /// The specs of the tools its `plan` steps may call, as the catalogue had them at
    /// admission (logged with its creation, so a replay asks the model the same).
    tools: Arc<BTreeMap<String, ToolSpec>>,
    /// Model prices its spending is costed at (logged with its creation).
    prices: Arc<budget::Prices>,
    /// Its tasks' tokens derive from it (logged with its creation, which workers cannot
    /// read): only a worker that took a task knows what its result must carry.
    secret: Uuid,
    /// What it spent on models and holds for calls in flight.
    ledger: budget::Ledger,
}

impl Run {
    /// A run of `plan` with `input`, not started yet.
    pub(crate) fn new(id: Uuid, plan: impl Into<Arc<Plan>>, input: Value, created_ms: Millis) -> Run {
        let plan = plan.into();
        let workflow = json!({"id": id, "name": plan.name, "version": plan.version});
        let mut run = Run {
            id,
            plan,
            status: RunStatus::Running,
            insts: Vec::new(),
            frames: Vec::new(),
            positions: HashMap::new(),
            dirty: BTreeSet::new(),
            blocked: BTreeSet::new(),
            running: InFlight::default(),
            created_ms,
            finished_ms: None,
            errors: Vec::new(),
            output: None,
            seq: 0,
            asks: 0,
            timers: Vec::new(),
            completions: 0,
            output_bytes: 0,
            saga: None,
            reply_to: weft_protocol::subjects::input(0, id),
            signals: BTreeMap::new(),
            parent: None,
            fingerprint: None,
            seed: None,
            limits: RunLimits::default(),
            tools: Arc::default(),
            prices: Arc::default(),
            secret: Uuid::nil(),
            ledger: budget::Ledger::default(),
        };
        run.open_frame(
            None,
            Vec::new(),
            String::new(),
            [("input".to_owned(), input), ("workflow".to_owned(), workflow)],
        );
        run
    }

    /// Where workers publish its results: its log's results subject.
    pub(super) fn results_to(&self) -> String {
        format!("{}.{}", self.reply_to, weft_protocol::subjects::RESULT_TOKEN)
    }

    pub(crate) fn with_reply_to(mut self, subject: String) -> Run {
        self.reply_to = subject;
        self
    }

    /// Makes the run a child of a `workflow` step of another run.
    pub(crate) fn with_parent(mut self, parent: Option<ParentLink>) -> Run {
        self.parent = parent;
        self
    }

    /// Makes the run carry on from the run that ended as `seed` says (see [`redrive`]): it
    /// keeps that run's creation time and event sequence.
    pub(crate) fn with_seed(mut self, seed: Option<Seed>) -> Run {
        if let Some(seed) = seed {
            self.created_ms = seed.created_ms;
            self.seq = seed.events;
            self.seed = Some(Arc::new(seed));
        }
        self
    }

    /// Records what the run was submitted with (`wire::fingerprint`).
    pub(crate) fn with_fingerprint(mut self, fingerprint: String) -> Run {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Makes the run run under `limits`.
    pub(crate) fn with_limits(mut self, limits: RunLimits) -> Run {
        self.limits = limits;
        self
    }

    /// Gives its `plan` steps these tool specs.
    pub(crate) fn with_tools(mut self, tools: Vec<ToolSpec>) -> Run {
        self.tools = Arc::new(tools.into_iter().map(|t| (t.name.clone(), t)).collect());
        self
    }

    /// Derives its tasks' tokens from `secret`.
    pub(crate) fn with_secret(mut self, secret: Uuid) -> Run {
        self.secret = secret;
        self
    }

    /// The token of `path`'s attempt `attempt` (of its compensation if `compensation`).
    pub(super) fn token(&self, path: &str, attempt: u32, compensation: bool) -> String {
        let kind = if compensation { "comp" } else { "task" };
        Uuid::new_v5(&self.secret, format!("{kind}:{path}#{attempt}").as_bytes()).simple().to_string()
    }

    /// Whether a result carries the token of the task it answers.
    pub(super) fn carries_token(&self, r: &TaskResult) -> bool {
        r.token == self.token(&r.step_id, r.attempt, r.compensation)
    }

    /// Costs its model calls at `prices`.
    pub(crate) fn with_prices(mut self, prices: budget::Prices) -> Run {
        self.prices = Arc::new(prices);
        self
    }

    /// What the run may do.
    pub(crate) fn limits(&self) -> RunLimits {
        self.limits
    }

    /// The run that started this one, if it is a sub-workflow.
    pub(crate) fn parent(&self) -> Option<&ParentLink> {
        self.parent.as_ref()
    }

    /// Its workflow's name.
    pub(crate) fn workflow(&self) -> &str {
        &self.plan.name
    }

    /// Its id.
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// Where it is.
    pub(crate) fn status(&self) -> RunStatus {
        self.status
    }

    /// When it was accepted.
    pub(crate) fn created_ms(&self) -> Millis {
        self.created_ms
    }

    /// Tasks dispatched to workers and not answered yet.
    pub(crate) fn tasks_in_flight(&self) -> usize {
        self.running.count()
    }

    /// Whether the run waits only for inputs from outside (a signal, a child run's end, a
    /// resume): no task on a worker, no timer armed. Such a run needs no actor until its
    /// next input arrives.
    pub(crate) fn can_park(&self) -> bool {
        matches!(self.status, RunStatus::Running | RunStatus::Paused | RunStatus::BudgetExceeded)
            && !self.running.any()
            && self.timers.is_empty()
    }

    /// Rebuilds a run from its log: `Start` at `started` (when its creation was stored),
    /// then every later input at the time it was stored, in log order. Returns the run
    /// and the inputs it did not apply, with their log sequences, for the caller to log.
    /// The effects are not returned: [`Run::resume`] says what a new owner must do again.
    pub(crate) fn replay(
        mut self,
        started: Millis,
        inputs: impl IntoIterator<Item = Logged>,
    ) -> (Run, Vec<(u64, Ignored)>) {
        let mut ignored = Vec::new();
        self.apply(Input::Start, started);
        for Logged { input, at, seq } in inputs {
            for effect in self.apply(input, at) {
                if let Effect::Ignored(i) = effect {
                    ignored.push((seq, i));
                }
            }
        }
        (self, ignored)
    }

    /// Applies one input at time `now`; returns what to do.
    pub(crate) fn apply(&mut self, input: Input, now: Millis) -> Vec<Effect> {
        let mut out = Vec::new();
        match self.status {
            RunStatus::Running | RunStatus::Paused | RunStatus::BudgetExceeded => {
                self.apply_running(input, now, &mut out)
            }
            RunStatus::Compensating => self.apply_compensating(input, now, &mut out),
            _ => out.push(Effect::Ignored(Ignored::stale(input.describe(), "the run has ended"))),
        }
        out
    }

    fn apply_running(&mut self, input: Input, now: Millis, out: &mut Vec<Effect>) {
        match input {
            Input::Start => {
                self.emit(out, now, EventKind::RunStarted { workflow: self.plan.name.clone() });
                if let Some(after) = self.plan.timeout {
                    self.schedule(out, Timer::RunTimeout, after, now);
                }
            }
            Input::Result { result } if result.compensation => {
                let what = describe_result(&result);
                out.push(Effect::Ignored(Ignored::unexpected(
                    what,
                    "no compensation runs: the run is not compensating",
                )));
            }
            Input::Result { result } => self.on_result(result, now, out),
            Input::Timer { timer } => {
                if !self.take_timer(&timer, now, out) {
                    return self.advance_after(now, out);
                }
                match timer {
                    Timer::Retry { step, attempt } => {
                        if let Some(i) = self.index(&step)
                            && self.insts[i].state.status == StepStatus::Retrying
                            && self.insts[i].state.attempt == attempt
                        {
                            // Ready again; `advance` dispatches it when a slot is free.
                            self.insts[i].state.status = StepStatus::Pending;
                            self.dirty.insert(self.insts[i].frame);
                        }
                    }
                    Timer::StepTimeout { step, attempt } => self.on_step_timeout(&step, attempt, now, out),
                    Timer::RunTimeout => {
                        let limit = self.plan.timeout.unwrap_or_default();
                        self.errors.push(format!("the run timed out after {limit:?}"));
                        // A saga undoes what a timeout leaves half done, as a failure.
                        if self.plan.on_failure == FailurePolicy::Compensate {
                            self.begin_saga(RunStatus::TimedOut, now, out);
                        } else {
                            self.finish(RunStatus::TimedOut, now, out);
                        }
                    }
                    Timer::WaitOver { .. } | Timer::SignalTimeout { .. } => self.on_waiting_timer(&timer, now, out),
                    Timer::CompensationRetry { .. } | Timer::CompensationTimeout { .. } | Timer::Drain => {}
                }
            }
            Input::Cancel { reason, compensate } => {
                self.errors.push(format!("cancelled: {reason}"));
                if compensate {
                    self.begin_saga(RunStatus::Cancelled, now, out);
                } else {
                    self.finish(RunStatus::Cancelled, now, out);
                }
            }
            Input::Pause => {
                if self.status == RunStatus::Running {
                    self.status = RunStatus::Paused;
                    self.emit(out, now, EventKind::RunPaused);
                }
            }
            Input::Resume { add_tokens, add_cost } => {
                self.add_budget(add_tokens, add_cost);
                if matches!(self.status, RunStatus::Paused | RunStatus::BudgetExceeded) {
                    self.status = RunStatus::Running;
                    self.dirty.extend(self.frame_ids());
                    self.emit(out, now, EventKind::RunResumed);
                }
            }
            Input::Signal { name, data } => self.on_signal(name, data, now, out),
            Input::Child { result } => self.on_child(result, now, out),
            Input::Granted { step, attempt, pool, ask } => self.on_granted(&step, attempt, &pool, ask, out),
            Input::PlanChecked { step, round, problems } => self.on_plan_checked(&step, round, problems, now, out),
        }
        self.advance_after(now, out);
    }

    /// Moves the run on after an input, whatever it led to.
    fn advance_after(&mut self, now: Millis, out: &mut Vec<Effect>) {
        match self.status {
            RunStatus::Running => self.advance(now, out),
            RunStatus::Compensating => self.saga_advance(now, out),
            _ => {}
        }
    }

    /// While compensating, only the saga moves: the run's timeout no longer applies, and a
    /// cancel stops the saga where it is.
    fn apply_compensating(&mut self, input: Input, now: Millis, out: &mut Vec<Effect>) {
        match input {
            Input::Start => {}
            Input::Result { result } if result.compensation => self.on_compensation_result(result, now, out),
            Input::Result { result } => self.on_drained_result(result, now, out),
            Input::Timer { timer } => {
                if !self.take_timer(&timer, now, out) {
                    return self.saga_advance(now, out);
                }
                match timer {
                    Timer::CompensationRetry { step, attempt } => self.on_compensation_retry(&step, attempt),
                    Timer::CompensationTimeout { step, attempt } => {
                        self.on_compensation_timeout(&step, attempt, now, out);
                    }
                    Timer::Drain => self.on_drain_over(now),
                    Timer::StepTimeout { step, attempt } => {
                        if let Some(i) = self.index(&step)
                            && self.insts[i].state.is_running(attempt)
                            && self.is_task(i)
                        {
                            self.running.release();
                            self.return_units(i, out);
                            let error = ToolError::new("timed out while the saga waited").with_code(codes::TIMEOUT);
                            self.insts[i].state.end_attempt(None, None, now, Err(error));
                            self.insts[i].state.cancel("the saga gave it up");
                        }
                    }
                    Timer::Retry { .. } | Timer::RunTimeout | Timer::WaitOver { .. } | Timer::SignalTimeout { .. } => {}
                }
            }
            Input::Cancel { reason, .. } => {
                self.errors.push(format!("cancelled while compensating: {reason}"));
                self.finish(RunStatus::Cancelled, now, out);
                return;
            }
            Input::Pause
            | Input::Resume { .. }
            | Input::Signal { .. }
            | Input::Child { .. }
            | Input::PlanChecked { .. } => {}
            // The saga dispatches nothing that needs units: return them.
            Input::Granted { step, attempt, pool, .. } => {
                out.push(Effect::Release(PoolClaim { step, attempt, pool, units: 0, priority: 0, ask: 0 }));
            }
        }
        if self.status == RunStatus::Compensating {
            self.saga_advance(now, out);
        }
    }

    fn index(&self, path: &str) -> Option<InstId> {
        self.positions.get(path).copied()
    }

    /// Every step instance, in creation order.
    fn inst_ids(&self) -> impl Iterator<Item = InstId> + use<> {
        (0..self.insts.len()).map(InstId::at)
    }

    /// Every frame, in opening order.
    fn frame_ids(&self) -> impl Iterator<Item = FrameId> + use<> {
        (0..self.frames.len()).map(FrameId::at)
    }

    fn schedule(&mut self, out: &mut Vec<Effect>, timer: Timer, after: Duration, now: Millis) {
        self.timers.push((timer.clone(), now.saturating_add(millis(after))));
        out.push(Effect::Schedule { timer, after });
    }

    fn fired(&mut self, timer: &Timer) {
        if let Some(i) = self.timers.iter().position(|(t, _)| t == timer) {
            self.timers.remove(i);
        }
    }

    /// Whether a timer input is one the run armed and is due at `now`; if so it is no
    /// longer armed. Otherwise the input is ignored (an early one is armed again for the
    /// time left), so no forged timer ends a `wait`, a signal's wait or a step before its
    /// time.
    fn take_timer(&mut self, timer: &Timer, now: Millis, out: &mut Vec<Effect>) -> bool {
        let armed = match self.timers.iter().find(|(t, _)| t == timer) {
            None => Armed::Not,
            Some((_, deadline)) if *deadline > now => Armed::Early(Duration::from_millis(deadline - now)),
            Some(_) => Armed::Due,
        };
        let what = || Input::Timer { timer: timer.clone() }.describe();
        match armed {
            Armed::Due => {
                self.fired(timer);
                true
            }
            Armed::Not => {
                out.push(Effect::Ignored(Ignored::stale(
                    what(),
                    "not armed (it fired before, or what it timed ended)",
                )));
                false
            }
            Armed::Early(left) => {
                let reason = format!("due in {} ms: armed again for then", left.as_millis());
                out.push(Effect::Ignored(Ignored::stale(what(), reason)));
                out.push(Effect::Schedule { timer: timer.clone(), after: left });
                false
            }
        }
    }

    /// Forgets every timer of a step instance (it was cancelled).
    fn drop_timers(&mut self, path: &str) {
        self.timers.retain(|(t, _)| t.step() != Some(path));
    }

    /// What a coordinator taking the run over (after a restart, from its history) must do
    /// again: publish the tasks of running attempts (deduplicated by message id if they
    /// were sent), start running children again (idempotent by their id), and arm the
    /// timers that have not fired, for the time they have left. A run that is already over
    /// announces its end again (the same event, deduplicated by its sequence number), so
    /// whoever waits for it hears it even if the previous owner died before telling.
    pub(crate) fn resume(&self, now: Millis) -> Vec<Effect> {
        if self.status.is_terminal() {
            let at_ms = self.finished_ms.unwrap_or(now);
            let kind = EventKind::RunFinished { status: self.status };
            return vec![Effect::Emit(Event { run_id: self.id, seq: self.seq, at_ms, kind }), Effect::Finished];
        }
        let mut out = Vec::new();
        for i in self.inst_ids() {
            let state = &self.insts[i].state;
            if state.status == StepStatus::Running {
                if let Some(task) = self.task(i) {
                    out.push(Effect::Dispatch(task));
                } else if let Some(start) = self.child_start(i) {
                    out.push(Effect::StartChild(start));
                } else if let Some(check) = self.plan_check(i) {
                    out.push(Effect::CheckPlan(check));
                }
            }
            self.resume_units(i, &mut out);
            if state.compensation.as_ref().is_some_and(|c| c.status == StepStatus::Running)
                && let Some(task) = self.compensation_task(i)
            {
                out.push(Effect::Dispatch(task));
            }
        }
        out.extend(self.timers.iter().map(|(timer, deadline)| Effect::Schedule {
            timer: timer.clone(),
            after: Duration::from_millis(deadline.saturating_sub(now)),
        }));
        out
    }

    fn emit(&mut self, out: &mut Vec<Effect>, now: Millis, kind: EventKind) {
        self.seq += 1;
        out.push(Effect::Emit(Event { run_id: self.id, seq: self.seq, at_ms: now, kind }));
    }

    fn finish(&mut self, status: RunStatus, now: Millis, out: &mut Vec<Effect>) {
        self.status = status;
        self.timers.clear();
        self.finished_ms = Some(now);
        if self.running.any() {
            out.push(Effect::Cancel(CancelTask { run_id: self.id, step_id: None, attempt: None }));
            self.running.clear();
        }
        for i in self.inst_ids() {
            self.return_units(i, out);
            if self.insts[i].state.status == StepStatus::Running
                && let Some(child_id) = self.running_child(i)
            {
                out.push(Effect::CancelChild { child_id, reason: "its parent run ended".to_owned() });
            }
            if !self.insts[i].state.status.is_terminal() {
                self.insts[i].state.cancel("the run ended first");
                let step_id = self.insts[i].path.clone();
                self.emit(out, now, EventKind::StepCancelled { step_id, reason: "the run ended first".to_owned() });
            }
        }
        self.emit(out, now, EventKind::RunFinished { status });
        out.push(Effect::Finished);
    }

    /// The run's line in a listing (without building its record).
    pub(crate) fn summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.id,
            workflow: self.plan.name.clone(),
            status: self.status,
            created_ms: self.created_ms,
            finished_ms: self.finished_ms,
        }
    }

    /// Everything known about the run. Steps are keyed by instance path.
    pub(crate) fn record(&self) -> RunRecord {
        let steps: BTreeMap<String, StepRecord> = self
            .inst_ids()
            .map(|i| {
                let mut record = self.insts[i].state.record(self.def(i));
                if let Some(waiting) = self.waiting_for_units(i) {
                    record.reason = Some(waiting);
                }
                record.within = self.frames[self.insts[i].frame].owner.map(|o| self.insts[o].path.clone());
                record.child = self.started_child(i);
                (self.insts[i].path.clone(), record)
            })
            .collect();
        RunRecord {
            run_id: self.id,
            workflow: self.plan.name.clone(),
            version: self.plan.version,
            status: self.status,
            parent: self
                .parent
                .as_ref()
                .map(|p| weft_protocol::wire::ParentRef { run_id: p.run_id, step: p.step.clone() }),
            input: self.frames[FrameId::TOP].ctx.values.get("input").cloned().unwrap_or(Value::Null),
            output: self.output.clone(),
            steps,
            order: self.insts.iter().map(|s| s.path.clone()).collect(),
            errors: self.errors.clone(),
            created_ms: self.created_ms,
            finished_ms: self.finished_ms,
            abridged: None,
            fingerprint: self.fingerprint.clone(),
            rerun_of: self.seed.as_ref().and_then(|s| s.rerun_of.clone()),
            signals: self.signal_records(),
            spent: self.spend(),
            budget: self.budget(),
        }
    }
}

/// What a pending step turned out to be.
enum Prepared {
    Wait,
    Skip(String),
    Fail(ToolError),
    Ready(Value),
}

/// A number in `[0, 1)` fixed by the run, step and attempt, so jitter is reproducible:
/// the top 53 bits of a UUID v5 (SHA-1, a specified algorithm, unlike `std`'s
/// `DefaultHasher`, which may change between Rust releases and with it a replay's retry
/// times).
fn jitter_unit(run: Uuid, step: &str, attempt: u32) -> f64 {
    let hash = Uuid::new_v5(&run, format!("jitter/{step}#{attempt}").as_bytes()).as_u128();
    (hash >> 75) as f64 / (1u64 << 53) as f64
}

/// A duration in ms, saturating (a definition may ask for centuries).
fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// How a result reads in a log line.
fn describe_result(r: &TaskResult) -> String {
    let kind = if r.compensation { "compensation result" } else { "result" };
    format!("{kind} of `{}` attempt {} from {}", r.step_id, r.attempt, r.worker)
}

/// The failure of a step that reached one of the run's limits: never retried (the next
/// attempt would reach it again). `message` is `weft_lang::limits::exceeded`'s.
pub(crate) fn limit_error(message: String) -> ToolError {
    ToolError::new(message).with_code(weft_lang::limits::LIMIT_EXCEEDED).permanent()
}

/// The output a failed step hands on under `continue_on_error` (and a failed `for_each`
/// item within its `max_failures`).
fn error_value(error: &ToolError) -> Value {
    json!({"error": {"message": error.message, "code": error.code}})
}

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod construct_tests;
#[cfg(test)]
mod corner_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
