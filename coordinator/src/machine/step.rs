//! One step's state inside a run: status, attempts, resolved params, output.

use serde_json::Value;
use weft_lang::plan::Step;
use weft_protocol::wire::{Attempt, CompensationRecord, Millis, StepRecord, StepStatus, ToolError};

/// A step as the run sees it.
#[derive(Debug, Clone)]
pub(crate) struct StepState {
    /// Where it is.
    pub status: StepStatus,
    /// Last attempt dispatched (0 before the first).
    pub attempt: u32,
    /// Attempts made before the run was redriven: its retry policy counts the others.
    pub carried: u32,
    /// Every attempt, for the timeline.
    pub attempts: Vec<Attempt>,
    /// Params, resolved once when the step first became ready; retries reuse them.
    pub params: Option<Value>,
    /// Output once completed.
    pub output: Option<Value>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// It failed under `continue_on_error`: steps after it run.
    pub continued: bool,
    /// Position among completions (1 = first to complete): sagas undo in reverse.
    pub completed_order: Option<u64>,
    /// Its compensation, once the saga reaches it.
    pub compensation: Option<Compensating>,
    /// Its claim on resource pools.
    pub units: super::units::Units,
    /// A `plan` step's plans and phase.
    pub planning: Option<Box<super::planning::Planning>>,
}

/// A compensation's progress.
#[derive(Debug, Clone)]
pub(crate) struct Compensating {
    /// `Pending`, `Running`, `Retrying`, `Completed` or `Failed`.
    pub status: StepStatus,
    /// Last attempt dispatched.
    pub attempt: u32,
    /// Every attempt.
    pub attempts: Vec<Attempt>,
    /// Params, resolved at its first attempt.
    pub params: Option<Value>,
}

impl Compensating {
    /// Not started.
    pub(crate) fn new() -> Compensating {
        Compensating { status: StepStatus::Pending, attempt: 0, attempts: Vec::new(), params: None }
    }

    /// Whether `attempt` is the one running.
    pub(crate) fn is_running(&self, attempt: u32) -> bool {
        self.status == StepStatus::Running && self.attempt == attempt
    }
}

impl Default for Compensating {
    fn default() -> Compensating {
        Compensating::new()
    }
}

/// Records how the last of `attempts` ended.
pub(super) fn end_attempt(
    attempts: &mut [Attempt],
    worker: Option<String>,
    started_ms: Option<Millis>,
    finished_ms: Millis,
    outcome: Result<(), ToolError>,
) {
    if let Some(a) = attempts.last_mut() {
        a.worker = worker.or(a.worker.take());
        a.started_ms = started_ms.or(a.started_ms);
        a.finished_ms = Some(finished_ms);
        match outcome {
            Ok(()) => a.ok = true,
            Err(e) => a.error = Some(e),
        }
    }
}

/// Records how the last of `attempts` ended, as worker `worker` reported at `now` (when
/// the result was logged). The worker's times are clamped into what the coordinator knows:
/// a tool cannot start before its dispatch, nor end before it started or after its result
/// was logged; so a clock that is off, or a forged `u64::MAX`, cannot bend the timeline.
pub(super) fn end_reported(
    attempts: &mut [Attempt],
    worker: String,
    (started_ms, finished_ms): (Millis, Millis),
    now: Millis,
    outcome: Result<(), ToolError>,
) {
    let dispatched = attempts.last().map_or(now, |a| a.dispatched_ms).min(now);
    let started = started_ms.clamp(dispatched, now);
    let finished = finished_ms.clamp(started, now);
    end_attempt(attempts, Some(worker), Some(started), finished, outcome);
}

/// A late answer (after its attempt timed out or was cancelled) says which worker ran
/// attempt `attempt` and when it started, if the record does not know yet; nothing else
/// of the attempt changes.
pub(crate) fn fill_in(attempts: &mut [Attempt], attempt: u32, worker: &str, started_ms: Millis) {
    let Some(a) = attempt.checked_sub(1).and_then(|k| attempts.get_mut(k as usize)) else { return };
    if a.worker.is_none() {
        a.worker = Some(worker.to_owned());
    }
    if a.started_ms.is_none() {
        let end = a.finished_ms.unwrap_or(a.dispatched_ms).max(a.dispatched_ms);
        a.started_ms = Some(started_ms.clamp(a.dispatched_ms, end));
    }
}

/// A new attempt, dispatched at `now`.
pub(super) fn new_attempt(attempt: u32, now: Millis) -> Attempt {
    Attempt {
        attempt,
        dispatched_ms: now,
        worker: None,
        started_ms: None,
        finished_ms: None,
        error: None,
        ok: false,
        usage: None,
        cost: None,
    }
}

impl Default for StepState {
    fn default() -> StepState {
        StepState::new()
    }
}

impl StepState {
    /// A pending step.
    pub(crate) fn new() -> StepState {
        StepState {
            status: StepStatus::Pending,
            attempt: 0,
            carried: 0,
            attempts: Vec::new(),
            params: None,
            output: None,
            reason: None,
            continued: false,
            completed_order: None,
            compensation: None,
            units: super::units::Units::None,
            planning: None,
        }
    }

    /// Whether `attempt` is the one running now.
    pub(crate) fn is_running(&self, attempt: u32) -> bool {
        self.status == StepStatus::Running && self.attempt == attempt
    }

    /// Records how the current attempt ended.
    pub(crate) fn end_attempt(
        &mut self,
        worker: Option<String>,
        started_ms: Option<Millis>,
        finished_ms: Millis,
        outcome: Result<(), ToolError>,
    ) {
        end_attempt(&mut self.attempts, worker, started_ms, finished_ms, outcome);
    }

    /// Records how the current attempt ended, as a worker reported it (see [`end_reported`]).
    pub(crate) fn end_reported(
        &mut self,
        worker: String,
        times: (Millis, Millis),
        now: Millis,
        outcome: Result<(), ToolError>,
    ) {
        end_reported(&mut self.attempts, worker, times, now, outcome);
    }

    /// Tokens and cost its attempts spent on models, if any did.
    pub(crate) fn spent(&self) -> (Option<u64>, Option<f64>) {
        let used: Vec<&Attempt> = self.attempts.iter().filter(|a| a.usage.is_some()).collect();
        if used.is_empty() {
            return (None, None);
        }
        let tokens = used.iter().filter_map(|a| a.usage.as_ref()).map(|u| u.total()).sum();
        let costs: Vec<f64> = used.iter().filter_map(|a| a.cost).collect();
        (Some(tokens), (!costs.is_empty()).then(|| costs.iter().sum()))
    }

    /// The step produced `output`, as the `order`-th completion of the run.
    pub(crate) fn complete(&mut self, output: Value, order: u64) {
        self.status = StepStatus::Completed;
        self.output = Some(output);
        self.completed_order = Some(order);
    }

    /// The step failed for good.
    pub(crate) fn fail(&mut self, reason: String, continued: bool) {
        self.status = StepStatus::Failed;
        self.reason = Some(reason);
        self.continued = continued;
    }

    /// The step will not run.
    pub(crate) fn skip(&mut self, reason: String) {
        self.status = StepStatus::Skipped;
        self.reason = Some(reason);
    }

    /// The step was stopped before it finished (the run ended, a race was won...).
    pub(crate) fn cancel(&mut self, reason: &str) {
        if self.status == StepStatus::Running
            && let Some(a) = self.attempts.last_mut()
            && a.finished_ms.is_none()
        {
            let error = ToolError::new(format!("cancelled: {reason}")).with_code(weft_protocol::wire::codes::CANCELLED);
            a.error = Some(error.permanent());
        }
        self.status = StepStatus::Cancelled;
        self.reason.get_or_insert_with(|| reason.to_owned());
    }

    /// The step's part of the run record.
    pub(crate) fn record(&self, step: &Step) -> StepRecord {
        StepRecord {
            status: self.status,
            tool: step.tool().map(str::to_owned),
            params: self.params.clone(),
            output: self.output.clone(),
            reason: self.reason.clone(),
            attempts: self.attempts.clone(),
            compensation: self.compensation.as_ref().map(|c| CompensationRecord {
                status: c.status,
                tool: step.compensate.as_ref().map(|p| p.tool.clone()).unwrap_or_default(),
                attempts: c.attempts.clone(),
            }),
            within: None,
            plans: self.planning.as_ref().map(|p| p.rounds.clone()).unwrap_or_default(),
            child: None,
        }
    }
}
