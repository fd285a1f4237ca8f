//! Lifecycle events of a run (`weft.events.<run_id>`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Millis, RunStatus};

/// A lifecycle event (`weft.events.<run_id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The run.
    pub run_id: Uuid,
    /// Position in the run's event sequence, from 1.
    pub seq: u64,
    /// When.
    pub at_ms: Millis,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run was accepted and started.
    RunStarted {
        /// Workflow name.
        workflow: String,
    },
    /// A step's attempt was dispatched to the workers.
    StepStarted {
        /// The step.
        step_id: String,
        /// Attempt.
        attempt: u32,
    },
    /// A step completed.
    StepCompleted {
        /// The step.
        step_id: String,
        /// Which worker.
        worker: String,
        /// Tokens its attempts spent on a model, if it called one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<u64>,
        /// Their cost, by the coordinator's price table.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<f64>,
    },
    /// An attempt failed and another will follow.
    StepRetrying {
        /// The step.
        step_id: String,
        /// The failed attempt.
        attempt: u32,
        /// Wait before the next.
        delay_ms: u64,
        /// Why it failed.
        error: String,
    },
    /// A `plan` step's model proposed a plan (its attempt ended); the coordinator checks it.
    PlanProposed {
        /// The step.
        step_id: String,
        /// The attempt whose model call wrote it.
        attempt: u32,
        /// Which of the step's plans it is (1-based).
        round: u32,
    },
    /// A step failed for good.
    StepFailed {
        /// The step.
        step_id: String,
        /// Why.
        error: String,
    },
    /// A step was skipped.
    StepSkipped {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// A step was stopped before it finished: a race was won by another branch, or the
    /// construct it belongs to failed.
    StepCancelled {
        /// The step.
        step_id: String,
        /// Why.
        reason: String,
    },
    /// A compensation's attempt was dispatched.
    CompensationStarted {
        /// The step being undone.
        step_id: String,
        /// Attempt.
        attempt: u32,
    },
    /// A step was undone.
    CompensationCompleted {
        /// The step.
        step_id: String,
    },
    /// A compensation's attempt failed (or it could not start: its params did not
    /// resolve); `retrying` says whether another attempt follows, else it failed for good.
    CompensationFailed {
        /// The step being undone.
        step_id: String,
        /// The attempt that failed.
        #[serde(default)]
        attempt: u32,
        /// Why.
        error: String,
        /// Another attempt follows.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retrying: bool,
    },
    /// The run was paused.
    RunPaused,
    /// The run was resumed.
    RunResumed,
    /// A model call would spend more than the run's budget: the run waits for more.
    BudgetExceeded {
        /// The step that would have overspent.
        step_id: String,
        /// Tokens spent and held when it stopped.
        tokens: u64,
        /// Cost spent and held when it stopped.
        cost: f64,
    },
    /// Data arrived for the run's `signal` steps.
    SignalReceived {
        /// The signal's name.
        name: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunStatus,
    },
}
