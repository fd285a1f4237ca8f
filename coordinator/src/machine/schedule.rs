//! Moving a run forward: which pending steps can go (the skip rule, `when`, the
//! concurrency limit), dispatching tasks, applying results, retries and failures.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde_json::Value;
use weft_lang::definition::FailurePolicy;
use weft_lang::limits;
use weft_lang::plan::{DepState, Gate, Kind, PLANNER_TOOL};
use weft_lang::reference::{Layered, SkippedAsNull, Template};
use weft_protocol::wire::{
    CancelTask, EventKind, Millis, Outcome, RunStatus, StepStatus, Task, TaskResult, ToolError, codes,
};

use super::frame::FrameState;
use super::ids::{FrameId, InstId};
use super::planning::Phase;
use super::{Effect, Ignored, Prepared, Run, Timer, describe_result, error_value, jitter_unit, millis, step};

/// How a step is started once ready.
enum Start {
    Task,
    Waiting,
    Child,
    Construct,
}

impl Run {
    /// Moves every frame where something changed, in creation order (so items and
    /// iterations start in order), until nothing moves; a frame that ends marks its
    /// parent, which is then looked at again.
    pub(super) fn advance(&mut self, now: Millis, out: &mut Vec<Effect>) {
        loop {
            self.wake_blocked();
            while self.status == RunStatus::Running {
                let Some(f) = self.dirty.pop_first() else { break };
                self.advance_frame(f, now, out);
                if self.status == RunStatus::Running {
                    self.settle(f, now, out);
                }
            }
            // A woken frame that did not take its slot (its step waits for pool units)
            // leaves the slot to the next blocked one.
            if self.status != RunStatus::Running || self.blocked.is_empty() || !self.has_slot() {
                break;
            }
        }
    }

    /// Frames waiting for a task slot, oldest first, as many as there are free slots.
    /// Waking them all would look at every blocked frame for each slot that frees: a
    /// 100,000-item `for_each` under a limit of 10,000 in flight was quadratic, 90,000
    /// frames looked at per result.
    fn wake_blocked(&mut self) {
        for _ in 0..self.free_slots() {
            let Some(f) = self.blocked.pop_first() else { break };
            self.dirty.insert(f);
        }
    }

    fn free_slots(&self) -> usize {
        let most = self.plan.max_parallel.map_or(usize::MAX, |m| m as usize).min(self.limits.max_in_flight);
        most.saturating_sub(self.running.count())
    }

    fn has_slot(&self) -> bool {
        self.free_slots() > 0
    }

    /// Whether instance `i` is a tool call (the only steps that run as tasks).
    pub(super) fn is_task(&self, i: InstId) -> bool {
        // A `plan` step asking its model is a task too: an `llm` call.
        matches!(self.def(i).kind, Kind::Task { .. }) || self.plan_phase(i) == Some(Phase::Asking)
    }

    /// The instance whose attempt in flight a worker's result answers; otherwise why the
    /// result is not applied. Only an attempt of a tool step that was dispatched as a
    /// task and has not ended takes a result: a `wait`, a `signal`, a construct or a
    /// `workflow` step never does, whatever the log says.
    pub(super) fn awaited(&self, r: &TaskResult) -> Result<InstId, Ignored> {
        let what = || describe_result(r);
        let Some(i) = self.index(&r.step_id) else {
            return Err(Ignored::unexpected(what(), "the run has no step instance of that path"));
        };
        if !self.is_task(i) {
            let reason = "the step is not a tool call: no task was ever dispatched for it";
            return Err(Ignored::unexpected(what(), reason));
        }
        let state = &self.insts[i].state;
        if r.attempt == 0 || r.attempt > state.attempt {
            let reason = format!("that attempt was never dispatched (the last one is {})", state.attempt);
            return Err(Ignored::unexpected(what(), reason));
        }
        if !self.carries_token(r) {
            let reason = "it does not carry its task's token: no worker that took the task sent it";
            return Err(Ignored::unexpected(what(), reason));
        }
        if !state.is_running(r.attempt) {
            let reason = format!("that attempt is no longer in flight (the step is {:?})", state.status);
            return Err(Ignored::stale(what(), reason.to_lowercase()));
        }
        Ok(i)
    }

    /// Dispatches, skips or fails every pending step of frame `f` that can move.
    fn advance_frame(&mut self, f: FrameId, now: Millis, out: &mut Vec<Effect>) {
        loop {
            let mut moved = false;
            for i in self.ready_order(f) {
                if self.status != RunStatus::Running || self.frames[f].state != FrameState::Active {
                    return;
                }
                if self.insts[i].state.status != StepStatus::Pending {
                    continue;
                }
                if self.insts[i].state.params.is_none() {
                    match self.prepare(i) {
                        Prepared::Wait => continue,
                        Prepared::Skip(reason) => {
                            self.skip_inst(i, reason, now, out);
                            moved = true;
                            continue;
                        }
                        Prepared::Fail(error) => {
                            self.fail_inst(i, error, now, out);
                            moved = true;
                            continue;
                        }
                        Prepared::Ready(params) => self.insts[i].state.params = Some(params),
                    }
                }
                // Redriven: what the run that ended had completed is not done again.
                if self.carry_over(i, now, out) {
                    moved = true;
                    continue;
                }
                let start = match self.def(i).kind {
                    Kind::Task { .. } => Start::Task,
                    Kind::Plan(_) if self.plan_phase(i) == Some(Phase::Running) => Start::Child,
                    Kind::Plan(_) => Start::Task,
                    Kind::Wait(_) | Kind::Signal { .. } => Start::Waiting,
                    Kind::SubWorkflow { .. } => Start::Child,
                    _ => Start::Construct,
                };
                match start {
                    Start::Task if !self.has_slot() => {
                        self.blocked.insert(f);
                        continue;
                    }
                    // A model call that does not fit the budget waits for room, or stops the run.
                    Start::Task if !self.hold_for_call(i, now, out) => continue,
                    // Waiting for units of its pools: a grant makes the frame move again.
                    Start::Task if !self.units_ready(i, out) => continue,
                    Start::Task => self.dispatch(i, now, out),
                    Start::Waiting => self.start_waiting(i, now, out),
                    Start::Child => self.start_child(i, now, out),
                    Start::Construct => self.start_construct(i, now, out),
                }
                moved = true;
            }
            if !moved {
                break;
            }
        }
        // Moved as far as it goes; only a change from outside makes it worth another look.
        self.dirty.remove(&f);
    }

    /// Pending steps of frame `f` that may start, higher priority first, then document order.
    fn ready_order(&self, f: FrameId) -> Vec<InstId> {
        let frame = &self.frames[f];
        let limit = if self.one_at_a_time(f) { frame.cursor } else { usize::MAX };
        let steps = super::frame::body(&self.plan, &frame.body);
        let mut order: Vec<InstId> = frame
            .insts
            .iter()
            .copied()
            .filter(|&i| self.insts[i].state.status == StepStatus::Pending && self.insts[i].index <= limit)
            .collect();
        order.sort_by_key(|&i| (Reverse(steps[self.insts[i].index].priority), self.insts[i].index));
        order
    }

    fn dep_state(&self, f: FrameId, id: &str) -> DepState {
        let Some(i) = self.sibling(f, id) else { return DepState::Unfinished };
        let s = &self.insts[i].state;
        match s.status {
            StepStatus::Completed => DepState::Completed,
            StepStatus::Failed if s.continued => DepState::Completed,
            StepStatus::Failed | StepStatus::Cancelled => DepState::Failed,
            StepStatus::Skipped => DepState::Skipped,
            StepStatus::Pending | StepStatus::Running | StepStatus::Retrying => DepState::Unfinished,
        }
    }

    /// Decides a pending step: wait, skip, fail, or go with its resolved params (a tool's
    /// params, a construct's input: the `for_each` list, the `switch` value...).
    fn prepare(&self, i: InstId) -> Prepared {
        let f = self.insts[i].frame;
        let step = self.def(i);
        match step.gate(|d| self.dep_state(f, d)) {
            Gate::Wait => return Prepared::Wait,
            Gate::Skip(reason) => return Prepared::Skip(reason),
            Gate::Go => {}
        }
        // `{step.…}` reads the attempt about to start.
        let local = self.step_binding(i, self.insts[i].state.attempt + 1, false);
        let frame_view = self.view(f);
        let view = Layered { local: &local, outer: &frame_view };
        if let Some(when) = &step.when {
            match when.eval(&view) {
                Ok(true) => {}
                Ok(false) => return Prepared::Skip("its condition is false".to_owned()),
                Err(e) => {
                    return Prepared::Fail(
                        ToolError::new(format!("condition: {e}")).with_code(codes::CONDITION).permanent(),
                    );
                }
            }
        }
        let resolve = |template: &Template, what: &str| match template.resolve(&view) {
            Ok(value) => Prepared::Ready(value),
            Err(e) => Prepared::Fail(ToolError::new(format!("{what}: {e}")).with_code(codes::BAD_PARAMS).permanent()),
        };
        match &step.kind {
            Kind::Task { params, .. } => resolve(params, "params"),
            Kind::ForEach { items, .. } => match resolve(items, "items") {
                Prepared::Ready(other) if !other.is_array() => Prepared::Fail(
                    ToolError::new(format!("items: a `for_each` needs a list, found {}", kind_of(&other)))
                        .with_code(codes::BAD_PARAMS)
                        .permanent(),
                ),
                other => other,
            },
            Kind::Switch { on: Some(on), .. } => resolve(on, "on"),
            Kind::Pipeline { input: Some(input), .. } => resolve(input, "input"),
            Kind::SubWorkflow { input, .. } => resolve(input, "input"),
            Kind::Plan(spec) => resolve(&spec.request, "plan"),
            _ => Prepared::Ready(Value::Null),
        }
    }

    /// The task of instance `i`'s current attempt, if it is a tool call.
    pub(super) fn task(&self, i: InstId) -> Option<Task> {
        let step = self.def(i);
        let inst = &self.insts[i];
        let (tool, params) = match &step.kind {
            Kind::Task { tool, .. } => (tool.clone(), inst.state.params.clone().unwrap_or(Value::Null)),
            Kind::Plan(_) if self.plan_phase(i) == Some(Phase::Asking) => {
                (PLANNER_TOOL.to_owned(), self.planner_params(i)?)
            }
            _ => return None,
        };
        Some(Task {
            run_id: self.id,
            step_id: inst.path.clone(),
            attempt: inst.state.attempt,
            tool,
            params,
            idempotency_key: self.idempotency_key(i, false),
            timeout_ms: step.timeout.map(millis),
            compensation: false,
            reply_to: self.results_to(),
            token: self.token(&inst.path, inst.state.attempt, false),
        })
    }

    /// A late answer to an attempt that ended without it (timed out, cancelled) says who ran
    /// it and when it started; a result never asked for says nothing.
    pub(super) fn late_answer(&mut self, r: &TaskResult, ignored: &Ignored) {
        if ignored.unexpected {
            return;
        }
        if let Some(i) = self.index(&r.step_id) {
            step::fill_in(&mut self.insts[i].state.attempts, r.attempt, &r.worker, r.started_ms);
        }
    }

    /// A step's idempotency key: `<run>/<path>` (a compensation's `<run>/<path>/compensate`),
    /// the same on every attempt and redelivery.
    pub(super) fn idempotency_key(&self, i: InstId, compensation: bool) -> String {
        let path = &self.insts[i].path;
        if compensation { format!("{}/{path}/compensate", self.id) } else { format!("{}/{path}", self.id) }
    }

    /// What `{step.…}` reads in instance `i`'s templates for attempt `attempt`: its
    /// `idempotency_key`, `attempt`, `path` and `run_id`.
    pub(super) fn step_binding(&self, i: InstId, attempt: u32, compensation: bool) -> BTreeMap<String, Value> {
        let step = serde_json::json!({
            "idempotency_key": self.idempotency_key(i, compensation),
            "attempt": attempt,
            "path": self.insts[i].path,
            "run_id": self.id,
        });
        BTreeMap::from([("step".to_owned(), step)])
    }

    /// Starts the next attempt of instance `i` (`Running`, attempt recorded); returns it.
    pub(super) fn begin_attempt(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) -> u32 {
        let state = &mut self.insts[i].state;
        state.attempt += 1;
        state.status = StepStatus::Running;
        state.attempts.push(step::new_attempt(state.attempt, now));
        let attempt = state.attempt;
        let path = self.insts[i].path.clone();
        if let Some(after) = self.def(i).timeout {
            self.schedule(out, Timer::StepTimeout { step: path.clone(), attempt }, after, now);
        }
        self.emit(out, now, EventKind::StepStarted { step_id: path, attempt });
        attempt
    }

    fn dispatch(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) {
        let mut started = Vec::new();
        let attempt = self.begin_attempt(i, now, &mut started);
        // Params were resolved for the first attempt; a retry's `{step.attempt}` is its own.
        if attempt > 1
            && let Kind::Task { params, .. } = &self.def(i).kind
            && params.references().iter().any(|p| p.root == "step")
        {
            let local = self.step_binding(i, attempt, false);
            let frame_view = self.view(self.insts[i].frame);
            if let Ok(value) = params.resolve(&Layered { local: &local, outer: &frame_view }) {
                self.insts[i].state.params = Some(value);
            }
        }
        self.running.add();
        if let Some(task) = self.task(i) {
            out.push(Effect::Dispatch(task));
        }
        out.extend(started);
    }

    pub(super) fn on_result(&mut self, r: TaskResult, now: Millis, out: &mut Vec<Effect>) {
        // Late, duplicated, timed out, cancelled or never asked for: applied at most once,
        // and only to what it answers.
        let i = match self.awaited(&r) {
            Ok(i) => i,
            Err(ignored) => {
                self.late_answer(&r, &ignored);
                return out.push(Effect::Ignored(ignored));
            }
        };
        self.running.release();
        self.return_units(i, out);
        self.fired(&Timer::StepTimeout { step: r.step_id.clone(), attempt: r.attempt });
        let cost = self.settle_call(i, r.attempt, r.usage.as_ref());
        if let Some(a) = self.insts[i].state.attempts.last_mut() {
            a.cost = cost.filter(|_| r.usage.is_some());
            a.usage = r.usage;
        }
        match r.outcome {
            Outcome::Ok(output) => {
                let times = (r.started_ms, r.finished_ms);
                self.insts[i].state.end_reported(r.worker.clone(), times, now, Ok(()));
                if self.plan_spec(i).is_some() {
                    // A model's plan: checked before anything runs.
                    return self.on_proposal(i, output, now, out);
                }
                self.complete_inst(i, output, r.worker, now, out);
            }
            Outcome::Err(error) => {
                let times = (r.started_ms, r.finished_ms);
                self.insts[i].state.end_reported(r.worker, times, now, Err(error.clone()));
                self.on_failure(i, error, now, out);
            }
        }
    }

    pub(super) fn on_step_timeout(&mut self, path: &str, attempt: u32, now: Millis, out: &mut Vec<Effect>) {
        let Some(i) = self.index(path) else { return };
        if !self.insts[i].state.is_running(attempt) {
            return;
        }
        let limit = self.def(i).timeout.unwrap_or_default();
        // The tool is named: a hung tool is most often a server behind it (an MCP server).
        let what = match &self.def(i).kind {
            Kind::Task { tool, .. } => format!("attempt {attempt} of tool `{tool}`"),
            _ => format!("attempt {attempt}"),
        };
        let error = ToolError::new(format!("{what} timed out after {limit:?}")).with_code(codes::TIMEOUT);
        match self.def(i).kind {
            _ if self.is_task(i) => {
                self.settle_call(i, attempt, None);
                out.push(Effect::Cancel(CancelTask {
                    run_id: self.id,
                    step_id: Some(path.to_owned()),
                    attempt: Some(attempt),
                }));
                self.running.release();
                self.return_units(i, out);
            }
            Kind::SubWorkflow { .. } | Kind::Plan(_) => {
                if let Some(child_id) = self.running_child(i) {
                    out.push(Effect::CancelChild { child_id, reason: error.message.clone() });
                }
            }
            Kind::Wait(_) | Kind::Signal { .. } => {}
            _ => {
                // A construct out of time: what it runs stops, and it fails for good.
                for f in self.opened_by(i) {
                    self.cancel_frame(f, "its construct timed out", now, out);
                }
                self.insts[i].state.end_attempt(None, None, now, Err(error.clone()));
                self.fail_inst(i, error, now, out);
                return;
            }
        }
        self.insts[i].state.end_attempt(None, None, now, Err(error.clone()));
        self.on_failure(i, error, now, out);
    }

    /// An attempt failed: retry, or fail the step for good.
    pub(super) fn on_failure(&mut self, i: InstId, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        let step = self.def(i);
        let retry = step.retry.clone();
        let attempt = self.insts[i].state.attempt;
        let path = self.insts[i].path.clone();
        // A `plan` step's answered model calls are not failures: its policy counts the rest.
        let answered = self.insts[i].state.planning.as_ref().map_or(0, |p| p.answered());
        // Attempts before a redrive are not counted: a redriven step has its retries anew.
        let counted = attempt.saturating_sub(answered).saturating_sub(self.insts[i].state.carried);
        if error.retryable && retry.should_retry(counted, error.code.as_deref()) {
            let backoff = attempt.saturating_sub(self.insts[i].state.carried).max(1);
            let delay = retry.delay(backoff, jitter_unit(self.id, &path, attempt)).max(retry_after(&error));
            self.insts[i].state.status = StepStatus::Retrying;
            self.schedule(out, Timer::Retry { step: path.clone(), attempt }, delay, now);
            self.emit(
                out,
                now,
                EventKind::StepRetrying { step_id: path, attempt, delay_ms: millis(delay), error: error.to_string() },
            );
            return;
        }
        self.fail_inst(i, error, now, out);
    }

    /// Instance `i` produced `output`.
    pub(super) fn complete_inst(
        &mut self,
        i: InstId,
        output: Value,
        worker: String,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let bytes = json_len(&output);
        let most = self.limits.max_output_bytes;
        if self.output_bytes.saturating_add(bytes) > most {
            let held = format!("{} bytes", self.output_bytes.saturating_add(bytes));
            let message = limits::exceeded("the step outputs the run holds", held, most, "WEFT_MAX_OUTPUT_BYTES");
            return self.fail_inst(i, super::limit_error(message), now, out);
        }
        self.output_bytes += bytes;
        let f = self.insts[i].frame;
        let id = self.def(i).id.clone();
        let path = self.insts[i].path.clone();
        self.completions += 1;
        self.insts[i].state.complete(output.clone(), self.completions);
        self.frames[f].ctx.set(id, output);
        self.dirty.insert(f);
        let (tokens, cost) = self.insts[i].state.spent();
        self.emit(out, now, EventKind::StepCompleted { step_id: path, worker, tokens, cost });
    }

    /// Instance `i` will not run.
    pub(super) fn skip_inst(&mut self, i: InstId, reason: String, now: Millis, out: &mut Vec<Effect>) {
        let f = self.insts[i].frame;
        let id = self.def(i).id.clone();
        let path = self.insts[i].path.clone();
        self.insts[i].state.skip(reason.clone());
        self.frames[f].ctx.skip(id);
        self.dirty.insert(f);
        self.emit(out, now, EventKind::StepSkipped { step_id: path, reason });
    }

    /// Instance `i` failed for good. Under `continue_on_error` its output is the error;
    /// otherwise a top-level failure applies the run's `on_failure`, and one inside a body
    /// is the body's failure (which its construct handles: see `constructs`).
    pub(super) fn fail_inst(&mut self, i: InstId, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        let f = self.insts[i].frame;
        let step = self.def(i);
        let id = step.id.clone();
        let continued = step.continue_on_error;
        let path = self.insts[i].path.clone();
        self.insts[i].state.fail(error.to_string(), continued);
        self.drop_timers(&path);
        self.dirty.insert(f);
        self.emit(out, now, EventKind::StepFailed { step_id: path.clone(), error: error.to_string() });
        if continued {
            self.frames[f].ctx.set(id, error_value(&error));
            return;
        }
        // Steps that only watch it see it as absent.
        self.frames[f].ctx.skip(id);
        if f != FrameId::TOP {
            if !self.tolerant(f) {
                self.body_failed(f, &path, error, now, out);
            }
            return;
        }
        match self.plan.on_failure {
            FailurePolicy::Continue => {}
            FailurePolicy::Fail => {
                self.errors.push(format!("step `{path}` failed: {error}"));
                self.finish(RunStatus::Failed, now, out);
            }
            FailurePolicy::Compensate => {
                self.errors.push(format!("step `{path}` failed: {error}"));
                self.begin_saga(RunStatus::Compensated, now, out);
            }
        }
    }

    /// Every top-level step is finished: the run completes, or fails if a step failed.
    pub(super) fn complete(&mut self, now: Millis, out: &mut Vec<Effect>) {
        self.frames[FrameId::TOP].state = FrameState::Over;
        let failed: Vec<&str> = self.frames[FrameId::TOP]
            .insts
            .iter()
            .filter(|&&i| self.insts[i].state.status == StepStatus::Failed && !self.insts[i].state.continued)
            .map(|&i| self.insts[i].path.as_str())
            .collect();
        if !failed.is_empty() {
            self.errors.push(format!("failed steps: {}", failed.join(", ")));
            self.finish(RunStatus::Failed, now, out);
            return;
        }
        let output = match &self.plan.output {
            // A step whose condition was false reads as null here, as in a construct's body.
            Some(template) => template.resolve(&SkippedAsNull(&self.view(FrameId::TOP))),
            // Every top-level step's output by id, in document order.
            None => Ok(Value::Object(
                self.plan
                    .steps
                    .iter()
                    .filter_map(|p| self.frames[FrameId::TOP].ctx.values.get(&p.id).map(|v| (p.id.clone(), v.clone())))
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
}

/// How a value's kind reads in an error.
pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The length of `value` as JSON, without writing it anywhere.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The wait a failure asks for before its retry (a provider's `Retry-After`), bounded so a
/// worker cannot park a step for ever.
fn retry_after(error: &ToolError) -> std::time::Duration {
    const LONGEST: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    error.retry_after_ms.map_or(std::time::Duration::ZERO, |ms| std::time::Duration::from_millis(ms).min(LONGEST))
}
