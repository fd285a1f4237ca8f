//! The state machine of one run: a pure function of inputs to effects, with no I/O.
//!
//! [`Run::apply`] takes an [`Input`] (start, a task result, a timer firing, a cancel) and
//! returns the [`Effect`]s to carry out (publish a task, schedule a timer, tell workers to
//! stop, publish an event, finish). The run actor carries them out; tests drive the
//! machine synchronously.
//!
//! Scheduling: a step is dispatched the moment its dependencies are finished, the skip
//! rule lets it through ([`weft_shared::plan::Step::gate`]) and its `when` holds, up to
//! `max_parallel` running at once (higher `priority` first, then document order). A result
//! is applied once: one for an attempt that is not running (late, duplicated, timed out)
//! is ignored.

mod saga;
mod step;
mod waiting;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use weft_shared::definition::FailurePolicy;
use weft_shared::plan::{DepState, Gate, Kind, Plan};
use weft_shared::reference::Context;
use weft_shared::wire::{
    CancelTask, Event, EventKind, Millis, Outcome, RunRecord, RunStatus, StepRecord, StepStatus, Task, TaskResult,
    ToolError, codes,
};

pub use step::StepState;

/// Something that happens to a run. Inputs are what a run's history records: replaying
/// them in order rebuilds the run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
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
    },
    /// Dispatch nothing new until resumed.
    Pause,
    /// Carry on.
    Resume,
    /// Data for `signal` steps waiting for `name`.
    Signal {
        /// The signal.
        name: String,
        /// Its data.
        data: Value,
    },
}

/// Timers a run asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "timer", rename_all = "snake_case")]
pub enum Timer {
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

/// What the run actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
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
    /// Publish a lifecycle event.
    Emit(Event),
    /// The run is over: store its record and stop.
    Finished,
}

/// One run's state.
#[derive(Debug, Clone)]
pub struct Run {
    id: Uuid,
    plan: Plan,
    status: RunStatus,
    steps: Vec<StepState>,
    context: Context,
    running: usize,
    created_ms: Millis,
    finished_ms: Option<Millis>,
    errors: Vec<String>,
    output: Option<Value>,
    seq: u64,
    /// Timers asked for and not fired yet, with their deadlines: what a restarted
    /// coordinator must arm again.
    timers: Vec<(Timer, Millis)>,
    /// How many steps completed so far (orders completions for the saga).
    completions: u64,
    /// Where workers publish results: the run's log subject.
    reply_to: String,
    /// Signals that arrived before a step waited for them.
    signals: BTreeMap<String, Value>,
    /// Position of each top-level step by id (results find their step without a scan).
    positions: std::collections::HashMap<String, usize>,
    /// The saga, once a failure under `on_failure: compensate` started it.
    saga: Option<saga::Saga>,
}

impl Run {
    /// A run of `plan` with `input`, not started yet.
    pub fn new(id: Uuid, plan: Plan, input: Value, created_ms: Millis) -> Run {
        let mut context = Context::with_input(input);
        context.set("workflow", json!({"id": id, "name": plan.name, "version": plan.version}));
        let steps = plan.steps.iter().map(StepState::new).collect();
        let positions = plan.steps.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        Run {
            id,
            plan,
            status: RunStatus::Running,
            steps,
            context,
            running: 0,
            created_ms,
            finished_ms: None,
            errors: Vec::new(),
            output: None,
            seq: 0,
            timers: Vec::new(),
            completions: 0,
            saga: None,
            reply_to: weft_shared::subjects::input(0, id),
            signals: BTreeMap::new(),
            positions,
        }
    }

    /// Sets where workers publish this run's results.
    pub fn with_reply_to(mut self, subject: String) -> Run {
        self.reply_to = subject;
        self
    }

    /// Its workflow's name.
    pub fn workflow(&self) -> &str {
        &self.plan.name
    }

    /// Its id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Where it is.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Applies one input at time `now`; returns what to do.
    pub fn apply(&mut self, input: Input, now: Millis) -> Vec<Effect> {
        let mut out = Vec::new();
        match self.status {
            RunStatus::Running | RunStatus::Paused => self.apply_running(input, now, &mut out),
            RunStatus::Compensating => self.apply_compensating(input, now, &mut out),
            _ => {} // over: late inputs change nothing
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
            Input::Result { result } if result.compensation => {}
            Input::Result { result } => self.on_result(result, now, out),
            Input::Timer { timer } => {
                self.fired(&timer);
                match timer {
                    Timer::Retry { step, attempt } => {
                        if let Some(i) = self.index(&step)
                            && self.steps[i].status == StepStatus::Retrying
                            && self.steps[i].attempt == attempt
                        {
                            // Ready again; `advance` dispatches it when a slot is free.
                            self.steps[i].status = StepStatus::Pending;
                        }
                    }
                    Timer::StepTimeout { step, attempt } => self.on_step_timeout(&step, attempt, now, out),
                    Timer::RunTimeout => {
                        let limit = self.plan.timeout.unwrap_or_default();
                        self.errors.push(format!("the run timed out after {limit:?}"));
                        self.finish(RunStatus::TimedOut, now, out);
                    }
                    Timer::WaitOver { .. } | Timer::SignalTimeout { .. } => self.on_waiting_timer(&timer, now, out),
                    Timer::CompensationRetry { .. } | Timer::CompensationTimeout { .. } | Timer::Drain => {}
                }
            }
            Input::Cancel { reason } => {
                self.errors.push(format!("cancelled: {reason}"));
                self.finish(RunStatus::Cancelled, now, out);
            }
            Input::Pause => {
                if self.status == RunStatus::Running {
                    self.status = RunStatus::Paused;
                    self.emit(out, now, EventKind::RunPaused);
                }
            }
            Input::Resume => {
                if self.status == RunStatus::Paused {
                    self.status = RunStatus::Running;
                    self.emit(out, now, EventKind::RunResumed);
                }
            }
            Input::Signal { name, data } => self.on_signal(name, data, now, out),
        }
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
                self.fired(&timer);
                match timer {
                    Timer::CompensationRetry { step, attempt } => self.on_compensation_retry(&step, attempt),
                    Timer::CompensationTimeout { step, attempt } => {
                        self.on_compensation_timeout(&step, attempt, now, out);
                    }
                    Timer::Drain => self.on_drain_over(now),
                    Timer::StepTimeout { step, attempt } => {
                        if let Some(i) = self.index(&step)
                            && self.steps[i].is_running(attempt)
                        {
                            self.running -= 1;
                            let error = ToolError::new("timed out while the saga waited").with_code(codes::TIMEOUT);
                            self.steps[i].end_attempt(None, None, now, Err(error));
                            self.steps[i].cancel();
                        }
                    }
                    Timer::Retry { .. } | Timer::RunTimeout | Timer::WaitOver { .. } | Timer::SignalTimeout { .. } => {}
                }
            }
            Input::Cancel { reason } => {
                self.errors.push(format!("cancelled while compensating: {reason}"));
                self.finish(RunStatus::Cancelled, now, out);
                return;
            }
            Input::Pause | Input::Resume | Input::Signal { .. } => {}
        }
        if self.status == RunStatus::Compensating {
            self.saga_advance(now, out);
        }
    }

    fn on_step_timeout(&mut self, step: &str, attempt: u32, now: Millis, out: &mut Vec<Effect>) {
        let Some(i) = self.index(step) else { return };
        if !self.steps[i].is_running(attempt) {
            return;
        }
        let limit = self.plan.steps[i].timeout.unwrap_or_default();
        let error = ToolError::new(format!("attempt {attempt} timed out after {limit:?}")).with_code(codes::TIMEOUT);
        out.push(Effect::Cancel(CancelTask {
            run_id: self.id,
            step_id: Some(step.to_owned()),
            attempt: Some(attempt),
        }));
        self.running -= 1;
        self.steps[i].end_attempt(None, None, now, Err(error.clone()));
        self.on_failure(i, error, now, out);
    }

    fn index(&self, step: &str) -> Option<usize> {
        self.positions.get(step).copied()
    }

    fn schedule(&mut self, out: &mut Vec<Effect>, timer: Timer, after: Duration, now: Millis) {
        self.timers.push((timer.clone(), now.saturating_add(after.as_millis() as Millis)));
        out.push(Effect::Schedule { timer, after });
    }

    fn fired(&mut self, timer: &Timer) {
        if let Some(i) = self.timers.iter().position(|(t, _)| t == timer) {
            self.timers.remove(i);
        }
    }

    /// What a coordinator taking the run over (after a restart, from its history) must do
    /// again: publish the tasks of running attempts (deduplicated by message id if they
    /// were sent) and arm the timers that have not fired, for the time they have left.
    pub fn resume(&self, now: Millis) -> Vec<Effect> {
        if self.status.is_terminal() {
            return vec![Effect::Finished];
        }
        let mut out: Vec<Effect> = (0..self.steps.len())
            .filter(|&i| self.steps[i].status == StepStatus::Running)
            .filter_map(|i| self.task(i).map(Effect::Dispatch))
            .collect();
        out.extend(
            (0..self.steps.len())
                .filter(|&i| self.steps[i].compensation.as_ref().is_some_and(|c| c.status == StepStatus::Running))
                .filter_map(|i| self.compensation_task(i).map(Effect::Dispatch)),
        );
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

    fn on_result(&mut self, r: TaskResult, now: Millis, out: &mut Vec<Effect>) {
        let Some(i) = self.index(&r.step_id) else { return };
        if r.compensation || !self.steps[i].is_running(r.attempt) {
            return; // late, duplicated or timed out: applied at most once
        }
        self.running -= 1;
        let step_id = r.step_id.clone();
        self.fired(&Timer::StepTimeout { step: step_id.clone(), attempt: r.attempt });
        match r.outcome {
            Outcome::Ok(output) => {
                self.steps[i].end_attempt(Some(r.worker.clone()), Some(r.started_ms), r.finished_ms, Ok(()));
                self.completions += 1;
                self.steps[i].complete(output.clone(), self.completions);
                self.context.set(step_id.clone(), output);
                self.emit(out, now, EventKind::StepCompleted { step_id, worker: r.worker });
            }
            Outcome::Err(error) => {
                self.steps[i].end_attempt(Some(r.worker), Some(r.started_ms), r.finished_ms, Err(error.clone()));
                self.on_failure(i, error, now, out);
            }
        }
    }

    /// An attempt failed: retry, or fail the step for good.
    fn on_failure(&mut self, i: usize, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        let plan_step = &self.plan.steps[i];
        let attempt = self.steps[i].attempt;
        let id = plan_step.id.clone();
        if error.retryable && plan_step.retry.should_retry(attempt, error.code.as_deref()) {
            let delay = plan_step.retry.delay(attempt, jitter_unit(self.id, &id, attempt));
            self.steps[i].status = StepStatus::Retrying;
            self.schedule(out, Timer::Retry { step: id.clone(), attempt }, delay, now);
            self.emit(
                out,
                now,
                EventKind::StepRetrying {
                    step_id: id,
                    attempt,
                    delay_ms: delay.as_millis() as u64,
                    error: error.to_string(),
                },
            );
            return;
        }
        self.fail_step(i, error, now, out);
    }

    fn fail_step(&mut self, i: usize, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        let plan_step = &self.plan.steps[i];
        let id = plan_step.id.clone();
        let continued = plan_step.continue_on_error;
        self.steps[i].fail(error.to_string(), continued);
        self.emit(out, now, EventKind::StepFailed { step_id: id.clone(), error: error.to_string() });
        if continued {
            // Its output is the error, for steps that want to handle it.
            let value = json!({"error": {"message": error.message, "code": error.code}});
            self.context.set(id, value);
            return;
        }
        // Steps that only watch it see it as absent.
        self.context.skip(id.clone());
        match self.plan.on_failure {
            FailurePolicy::Continue => {}
            FailurePolicy::Fail => {
                self.errors.push(format!("step `{id}` failed: {error}"));
                self.finish(RunStatus::Failed, now, out);
            }
            FailurePolicy::Compensate => {
                self.errors.push(format!("step `{id}` failed: {error}"));
                self.begin_saga(now, out);
            }
        }
    }

    fn dep_state(&self, id: &str) -> DepState {
        let Some(i) = self.index(id) else { return DepState::Unfinished };
        let s = &self.steps[i];
        match s.status {
            StepStatus::Completed => DepState::Completed,
            StepStatus::Failed if s.continued => DepState::Completed,
            StepStatus::Failed | StepStatus::Cancelled => DepState::Failed,
            StepStatus::Skipped => DepState::Skipped,
            StepStatus::Pending | StepStatus::Running | StepStatus::Retrying => DepState::Unfinished,
        }
    }

    /// Dispatches, skips or fails every pending step that can move, until none can.
    fn advance(&mut self, now: Millis, out: &mut Vec<Effect>) {
        loop {
            let mut moved = false;
            for i in self.ready_order() {
                if self.status.is_terminal() {
                    return;
                }
                if self.steps[i].status != StepStatus::Pending {
                    continue;
                }
                if self.steps[i].params.is_none() {
                    match self.prepare(i) {
                        Prepared::Wait => continue,
                        Prepared::Skip(reason) => {
                            let id = self.plan.steps[i].id.clone();
                            self.steps[i].skip(reason.clone());
                            self.context.skip(id.clone());
                            self.emit(out, now, EventKind::StepSkipped { step_id: id, reason });
                            moved = true;
                            continue;
                        }
                        Prepared::Fail(error) => {
                            self.fail_step(i, error, now, out);
                            moved = true;
                            continue;
                        }
                        Prepared::Ready(params) => self.steps[i].params = Some(params),
                    }
                }
                let is_task = matches!(self.plan.steps[i].kind, Kind::Task { .. });
                if !is_task {
                    self.start_waiting(i, now, out);
                    moved = true;
                    continue;
                }
                if self.plan.max_parallel.is_some_and(|m| self.running >= m as usize) {
                    continue;
                }
                self.dispatch(i, now, out);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        if self.steps.iter().all(|s| s.status.is_terminal()) {
            self.complete(now, out);
        }
    }

    /// Pending steps, higher priority first, then document order.
    fn ready_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> =
            (0..self.steps.len()).filter(|&i| self.steps[i].status == StepStatus::Pending).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.plan.steps[i].priority), i));
        order
    }

    fn prepare(&self, i: usize) -> Prepared {
        let step = &self.plan.steps[i];
        match step.gate(|d| self.dep_state(d)) {
            Gate::Wait => return Prepared::Wait,
            Gate::Skip(reason) => return Prepared::Skip(reason),
            Gate::Go => {}
        }
        if let Some(when) = &step.when {
            match when.eval(&self.context) {
                Ok(true) => {}
                Ok(false) => return Prepared::Skip("its condition is false".to_owned()),
                Err(e) => {
                    return Prepared::Fail(
                        ToolError::new(format!("condition: {e}")).with_code(codes::CONDITION).permanent(),
                    );
                }
            }
        }
        match &step.kind {
            Kind::Task { params, .. } => match params.resolve(&self.context) {
                Ok(params) => Prepared::Ready(params),
                Err(e) => {
                    Prepared::Fail(ToolError::new(format!("params: {e}")).with_code(codes::BAD_PARAMS).permanent())
                }
            },
            Kind::Wait(_) | Kind::Signal { .. } => Prepared::Ready(Value::Null),
            other => Prepared::Fail(
                ToolError::new(format!("`{}` steps are not run by this coordinator yet", other.keyword())).permanent(),
            ),
        }
    }

    /// The task of step `i`'s current attempt.
    fn task(&self, i: usize) -> Option<Task> {
        let step = &self.plan.steps[i];
        let Kind::Task { tool, .. } = &step.kind else { return None };
        let state = &self.steps[i];
        Some(Task {
            run_id: self.id,
            step_id: step.id.clone(),
            attempt: state.attempt,
            tool: tool.clone(),
            params: state.params.clone().unwrap_or(Value::Null),
            idempotency_key: format!("{}/{}", self.id, step.id),
            timeout_ms: step.timeout.map(|t| t.as_millis() as u64),
            compensation: false,
            reply_to: self.reply_to.clone(),
        })
    }

    fn dispatch(&mut self, i: usize, now: Millis, out: &mut Vec<Effect>) {
        let state = &mut self.steps[i];
        state.attempt += 1;
        state.status = StepStatus::Running;
        state.attempts.push(step::new_attempt(state.attempt, now));
        self.running += 1;
        let attempt = state.attempt;
        let Some(task) = self.task(i) else { return };
        out.push(Effect::Dispatch(task));
        let step = &self.plan.steps[i];
        let step_id = step.id.clone();
        if let Some(after) = step.timeout {
            self.schedule(out, Timer::StepTimeout { step: step_id.clone(), attempt }, after, now);
        }
        self.emit(out, now, EventKind::StepStarted { step_id, attempt });
    }

    /// Every step is finished: the run completes, or fails if a step failed.
    fn complete(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let failed: Vec<&str> = self
            .steps
            .iter()
            .zip(&self.plan.steps)
            .filter(|(s, _)| s.status == StepStatus::Failed && !s.continued)
            .map(|(_, p)| p.id.as_str())
            .collect();
        if !failed.is_empty() {
            self.errors.push(format!("failed steps: {}", failed.join(", ")));
            self.finish(RunStatus::Failed, now, out);
            return;
        }
        let output = match &self.plan.output {
            Some(template) => template.resolve(&self.context),
            // Every step's output by id, in document order.
            None => Ok(Value::Object(
                self.plan
                    .steps
                    .iter()
                    .filter_map(|p| self.context.values.get(&p.id).map(|v| (p.id.clone(), v.clone())))
                    .collect(),
            )),
        };
        match output {
            Ok(v) => {
                self.output = Some(v);
                self.finish(RunStatus::Completed, now, out);
            }
            Err(e) => {
                self.errors.push(format!("output: {e}"));
                self.finish(RunStatus::Failed, now, out);
            }
        }
    }

    fn finish(&mut self, status: RunStatus, now: Millis, out: &mut Vec<Effect>) {
        self.status = status;
        self.timers.clear();
        self.finished_ms = Some(now);
        if self.running > 0 {
            out.push(Effect::Cancel(CancelTask { run_id: self.id, step_id: None, attempt: None }));
            self.running = 0;
        }
        for s in &mut self.steps {
            if !s.status.is_terminal() {
                s.cancel();
            }
        }
        self.emit(out, now, EventKind::RunFinished { status });
        out.push(Effect::Finished);
    }

    /// Everything known about the run.
    pub fn record(&self) -> RunRecord {
        let steps: BTreeMap<String, StepRecord> =
            self.plan.steps.iter().zip(&self.steps).map(|(p, s)| (p.id.clone(), s.record(p))).collect();
        RunRecord {
            run_id: self.id,
            workflow: self.plan.name.clone(),
            version: self.plan.version,
            status: self.status,
            input: self.context.values.get("input").cloned().unwrap_or(Value::Null),
            output: self.output.clone(),
            steps,
            order: self.plan.steps.iter().map(|s| s.id.clone()).collect(),
            errors: self.errors.clone(),
            created_ms: self.created_ms,
            finished_ms: self.finished_ms,
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

/// A number in `[0, 1)` fixed by the run, step and attempt, so jitter is reproducible.
fn jitter_unit(run: Uuid, step: &str, attempt: u32) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (run, step, attempt).hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
