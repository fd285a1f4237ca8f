//! The saga: under `on_failure: compensate`, a step failing for good undoes what the run
//! did, as tasks for workers.
//!
//! 1. Nothing new is dispatched; pending and retrying steps are cancelled; running steps
//!    are told to stop and the saga waits for their answers (at most [`DRAIN`]): one that
//!    completes anyway is undone too.
//! 2. The completed steps that have a `compensate` are undone one at a time, in reverse
//!    order of completion, each with its own retry policy and timeout; params resolve
//!    against the run's context, so they can read the step's own output.
//! 3. The run ends `compensated`, or `compensation_failed` naming every compensation that
//!    failed for good and why (the others are still attempted).
//!
//! A run that times out under `on_failure: compensate`, or is cancelled with `compensate`,
//! runs the same saga and ends `timed_out` or `cancelled` once every compensation
//! succeeded (`compensation_failed` if one did not).

use std::time::Duration;

use serde_json::Value;
use weft_lang::plan::Kind;
use weft_lang::reference::{Layered, ResolveError, Template};
use weft_protocol::wire::{
    CancelTask, EventKind, Millis, Outcome, RunStatus, StepStatus, Task, TaskResult, ToolError, codes,
};

use super::ids::InstId;
use super::step::{Compensating, end_attempt, end_reported, fill_in, new_attempt};
use super::{Effect, Ignored, Run, Timer, describe_result, jitter_unit, millis};

/// How long running steps have to answer a cancel before the saga goes on without them.
pub(super) const DRAIN: Duration = Duration::from_secs(30);

/// Where the saga is.
#[derive(Debug, Clone)]
pub(super) struct Saga {
    /// How the run ends if every compensation succeeds.
    ends_as: RunStatus,
    /// Steps to undo, next first; fixed once draining is over.
    queue: Option<Vec<InstId>>,
    /// The drain period ended.
    drained: bool,
    /// Compensations that failed for good.
    failures: Vec<String>,
}

impl Run {
    /// Start undoing (a step failed for good, the run timed out, a cancel asked for it);
    /// the run ends `ends_as` if every compensation succeeds.
    pub(super) fn begin_saga(&mut self, ends_as: RunStatus, now: Millis, out: &mut Vec<Effect>) {
        self.status = RunStatus::Compensating;
        self.saga = Some(Saga { ends_as, queue: None, drained: false, failures: Vec::new() });
        // Nothing new starts: what has not begun is cancelled, and what runs inside the
        // coordinator (waits, constructs) or in a child run stops here; tasks on workers
        // are told to stop and drained below.
        for i in self.inst_ids() {
            let state = &self.insts[i].state;
            let in_coordinator = state.status == StepStatus::Running && !matches!(self.def(i).kind, Kind::Task { .. });
            if in_coordinator && let Some(child_id) = self.running_child(i) {
                out.push(Effect::CancelChild { child_id, reason: "the run is compensating".to_owned() });
            }
            if matches!(state.status, StepStatus::Pending | StepStatus::Retrying) || in_coordinator {
                self.return_units(i, out);
                self.insts[i].state.cancel("the run is compensating");
                let step_id = self.insts[i].path.clone();
                self.emit(out, now, EventKind::StepCancelled { step_id, reason: "the run is compensating".to_owned() });
            }
        }
        self.timers.retain(|(t, _)| {
            !matches!(t, Timer::Retry { .. } | Timer::RunTimeout | Timer::WaitOver { .. } | Timer::SignalTimeout { .. })
        });
        if self.running.any() {
            out.push(Effect::Cancel(CancelTask { run_id: self.id, step_id: None, attempt: None }));
            self.schedule(out, Timer::Drain, DRAIN, now);
        }
        self.saga_advance(now, out);
    }

    /// A step that was running when the saga began answered.
    pub(super) fn on_drained_result(&mut self, r: TaskResult, now: Millis, out: &mut Vec<Effect>) {
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
        let state = &mut self.insts[i].state;
        match r.outcome {
            Outcome::Ok(output) => {
                state.end_reported(r.worker.clone(), (r.started_ms, r.finished_ms), now, Ok(()));
                self.complete_inst(i, output, r.worker, now, out);
            }
            Outcome::Err(error) => {
                state.end_reported(r.worker, (r.started_ms, r.finished_ms), now, Err(error));
                state.cancel("the run is compensating");
            }
        }
    }

    /// The drain period is over: steps that did not answer are given up.
    pub(super) fn on_drain_over(&mut self, now: Millis) {
        if let Some(saga) = &mut self.saga {
            saga.drained = true;
        }
        for inst in &mut self.insts {
            let s = &mut inst.state;
            if s.status == StepStatus::Running {
                let error = ToolError::new("no answer to the cancel").with_code(codes::CANCELLED).permanent();
                s.end_attempt(None, None, now, Err(error));
                s.cancel("it did not answer the cancel");
                let step = &inst.path;
                self.timers.retain(|(t, _)| !matches!(t, Timer::StepTimeout { step: s2, .. } if s2 == step));
            }
        }
        self.running.clear();
    }

    /// Moves the saga on: dispatch the next compensation, or finish.
    pub(super) fn saga_advance(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let Some(saga) = &self.saga else { return };
        if self.running.any() && !saga.drained {
            return; // still waiting for cancelled steps to answer
        }
        if saga.queue.is_none() {
            let mut done: Vec<(u64, InstId)> = self
                .inst_ids()
                .filter(|&i| self.def(i).compensate.is_some())
                .filter_map(|i| self.insts[i].state.completed_order.map(|o| (o, i)))
                .collect();
            done.sort_by_key(|d| std::cmp::Reverse(d.0));
            let queue: Vec<InstId> = done.into_iter().map(|(_, i)| i).collect();
            for &i in &queue {
                self.insts[i].state.compensation = Some(Compensating::new());
            }
            if let Some(saga) = &mut self.saga {
                saga.queue = Some(queue);
            }
        }
        // One at a time: the first unfinished compensation in the queue.
        let queue = self.saga.as_ref().and_then(|s| s.queue.clone()).unwrap_or_default();
        for i in queue {
            let Some(c) = &self.insts[i].state.compensation else { continue };
            match c.status {
                StepStatus::Completed | StepStatus::Failed => continue,
                StepStatus::Pending => {
                    self.dispatch_compensation(i, now, out);
                    // One that could not even start (its params did not resolve) failed at
                    // once: go on to the next, rather than wait for an input that never comes.
                    if self.insts[i].state.compensation.as_ref().is_some_and(|c| c.status == StepStatus::Failed) {
                        continue;
                    }
                    return;
                }
                _ => return, // running or waiting to retry
            }
        }
        let (failures, ends_as) =
            self.saga.as_ref().map_or((Vec::new(), RunStatus::Compensated), |s| (s.failures.clone(), s.ends_as));
        let status = if failures.is_empty() { ends_as } else { RunStatus::CompensationFailed };
        self.errors.extend(failures);
        self.finish(status, now, out);
    }

    /// The task of step `i`'s current compensation attempt.
    pub(super) fn compensation_task(&self, i: InstId) -> Option<Task> {
        let spec = self.def(i).compensate.as_ref()?;
        let inst = &self.insts[i];
        let c = inst.state.compensation.as_ref()?;
        Some(Task {
            run_id: self.id,
            step_id: inst.path.clone(),
            attempt: c.attempt,
            tool: spec.tool.clone(),
            params: c.params.clone().unwrap_or_default(),
            idempotency_key: self.idempotency_key(i, true),
            timeout_ms: spec.timeout.map(millis),
            compensation: true,
            reply_to: self.results_to(),
            token: self.token(&inst.path, c.attempt, true),
        })
    }

    /// A compensation's params for its first attempt (retries reuse them).
    fn compensation_params(&self, i: InstId, template: &Template) -> Result<Value, ResolveError> {
        let attempt = self.insts[i].state.compensation.as_ref().map_or(0, |c| c.attempt) + 1;
        let local = self.step_binding(i, attempt, true);
        let frame_view = self.view(self.insts[i].frame);
        template.resolve(&Layered { local: &local, outer: &frame_view })
    }

    fn dispatch_compensation(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) {
        let id = self.insts[i].path.clone();
        let Some(spec) = self.def(i).compensate.clone() else { return };
        let params = match self.insts[i].state.compensation.as_ref().and_then(|c| c.params.clone()) {
            Some(p) => p,
            None => match self.compensation_params(i, &spec.params) {
                Ok(p) => p,
                Err(e) => {
                    // It could not start: an attempt that ended at once says so in the record.
                    let error = ToolError::new(format!("params: {e}")).with_code(codes::BAD_PARAMS).permanent();
                    if let Some(c) = self.insts[i].state.compensation.as_mut() {
                        c.attempt += 1;
                        c.attempts.push(new_attempt(c.attempt, now));
                        end_attempt(&mut c.attempts, Some("coordinator".to_owned()), None, now, Err(error.clone()));
                    }
                    self.compensation_failed(i, error, now, out);
                    return;
                }
            },
        };
        let Some(c) = self.insts[i].state.compensation.as_mut() else { return };
        c.params = Some(params);
        c.attempt += 1;
        c.status = StepStatus::Running;
        c.attempts.push(new_attempt(c.attempt, now));
        let attempt = c.attempt;
        if let Some(task) = self.compensation_task(i) {
            out.push(Effect::Dispatch(task));
        }
        if let Some(after) = spec.timeout {
            self.schedule(out, Timer::CompensationTimeout { step: id.clone(), attempt }, after, now);
        }
        self.emit(out, now, EventKind::CompensationStarted { step_id: id, attempt });
    }

    /// A worker answered a compensation.
    pub(super) fn on_compensation_result(&mut self, r: TaskResult, now: Millis, out: &mut Vec<Effect>) {
        let what = || describe_result(&r);
        let Some(i) = self.index(&r.step_id) else {
            let ignored = Ignored::unexpected(what(), "the run has no step instance of that path");
            return out.push(Effect::Ignored(ignored));
        };
        let Some(c) = self.insts[i].state.compensation.as_ref() else {
            let ignored = Ignored::unexpected(what(), "the step is not being compensated");
            return out.push(Effect::Ignored(ignored));
        };
        if r.attempt == 0 || r.attempt > c.attempt {
            let reason = format!("that attempt was never dispatched (the last one is {})", c.attempt);
            return out.push(Effect::Ignored(Ignored::unexpected(what(), reason)));
        }
        if !self.carries_token(&r) {
            let reason = "it does not carry its task's token: no worker that took the task sent it";
            return out.push(Effect::Ignored(Ignored::unexpected(what(), reason)));
        }
        if !c.is_running(r.attempt) {
            if let Some(c) = self.insts[i].state.compensation.as_mut() {
                fill_in(&mut c.attempts, r.attempt, &r.worker, r.started_ms);
            }
            return out.push(Effect::Ignored(Ignored::stale(what(), "that attempt is no longer in flight")));
        }
        self.fired(&Timer::CompensationTimeout { step: r.step_id.clone(), attempt: r.attempt });
        let Some(c) = self.insts[i].state.compensation.as_mut() else { return };
        match r.outcome {
            Outcome::Ok(_) => {
                end_reported(&mut c.attempts, r.worker, (r.started_ms, r.finished_ms), now, Ok(()));
                c.status = StepStatus::Completed;
                self.emit(out, now, EventKind::CompensationCompleted { step_id: r.step_id });
            }
            Outcome::Err(error) => {
                let times = (r.started_ms, r.finished_ms);
                end_reported(&mut c.attempts, r.worker, times, now, Err(error.clone()));
                self.compensation_attempt_failed(i, error, now, out);
            }
        }
    }

    /// A compensation attempt ran out of time.
    pub(super) fn on_compensation_timeout(&mut self, step: &str, attempt: u32, now: Millis, out: &mut Vec<Effect>) {
        let Some(i) = self.index(step) else { return };
        let limit = self.def(i).compensate.as_ref().and_then(|c| c.timeout).unwrap_or_default();
        let Some(c) = self.insts[i].state.compensation.as_mut() else { return };
        if !c.is_running(attempt) {
            return;
        }
        let error = ToolError::new(format!("compensation attempt {attempt} timed out after {limit:?}"))
            .with_code(codes::TIMEOUT);
        end_attempt(&mut c.attempts, None, None, now, Err(error.clone()));
        out.push(Effect::Cancel(CancelTask {
            run_id: self.id,
            step_id: Some(step.to_owned()),
            attempt: Some(attempt),
        }));
        self.compensation_attempt_failed(i, error, now, out);
    }

    fn compensation_attempt_failed(&mut self, i: InstId, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        let id = self.insts[i].path.clone();
        let Some(policy) = self.def(i).compensate.as_ref().map(|c| c.retry.clone()) else { return };
        let attempt = self.insts[i].state.compensation.as_ref().map_or(0, |c| c.attempt);
        if error.retryable && policy.should_retry(attempt, error.code.as_deref()) {
            let delay = policy.delay(attempt, jitter_unit(self.id, &format!("{id}/compensate"), attempt));
            if let Some(c) = self.insts[i].state.compensation.as_mut() {
                c.status = StepStatus::Retrying;
            }
            let failed = EventKind::CompensationFailed {
                step_id: id.clone(),
                attempt,
                error: error.to_string(),
                retrying: true,
            };
            self.emit(out, now, failed);
            self.schedule(out, Timer::CompensationRetry { step: id, attempt }, delay, now);
            return;
        }
        self.compensation_failed(i, error, now, out);
    }

    fn compensation_failed(&mut self, i: InstId, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        let id = self.insts[i].path.clone();
        let tool = self.def(i).compensate.as_ref().map(|c| c.tool.clone()).unwrap_or_default();
        let mut attempt = 0;
        if let Some(c) = self.insts[i].state.compensation.as_mut() {
            c.status = StepStatus::Failed;
            attempt = c.attempt;
        }
        if let Some(saga) = &mut self.saga {
            saga.failures.push(format!("compensation of `{id}` ({tool}) failed: {error}"));
        }
        let failed = EventKind::CompensationFailed { step_id: id, attempt, error: error.to_string(), retrying: false };
        self.emit(out, now, failed);
    }

    /// Time for the next attempt of a compensation.
    pub(super) fn on_compensation_retry(&mut self, step: &str, attempt: u32) {
        let Some(i) = self.index(step) else { return };
        if let Some(c) = self.insts[i].state.compensation.as_mut()
            && c.status == StepStatus::Retrying
            && c.attempt == attempt
        {
            // Pending again: `saga_advance` dispatches it (params are kept).
            c.status = StepStatus::Pending;
        }
    }
}
