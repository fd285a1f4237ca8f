//! Tasks for workers and their results: what a worker of any language reads and writes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Millis;

/// A tool call for a worker (`weft.task.<tool>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The run the call belongs to.
    pub run_id: Uuid,
    /// The step (or, for a compensation, the compensated step).
    pub step_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Tool to call.
    pub tool: String,
    /// Resolved params.
    pub params: Value,
    /// Stable across redeliveries and retries of the same step: `<run_id>/<step_id>`.
    pub idempotency_key: String,
    /// Time limit of this attempt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Whether this undoes a step.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compensation: bool,
    /// Subject (on JetStream) to publish the [`TaskResult`] to: the run's log.
    pub reply_to: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Task {
    /// The message id that makes a re-published task a duplicate.
    pub fn message_id(&self) -> String {
        let kind = if self.compensation { "comp" } else { "task" };
        format!("{kind}:{}:{}:{}", self.run_id, self.step_id, self.attempt)
    }
}

/// How a tool call ended (published to the task's `reply_to`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The run.
    pub run_id: Uuid,
    /// The step.
    pub step_id: String,
    /// The attempt this answers.
    pub attempt: u32,
    /// Whether this answers a compensation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compensation: bool,
    /// Which worker ran it.
    pub worker: String,
    /// When the tool started.
    pub started_ms: Millis,
    /// When it ended.
    pub finished_ms: Millis,
    /// Output or error.
    pub outcome: Outcome,
}

impl TaskResult {
    /// The message id that makes a re-published result a duplicate.
    pub fn message_id(&self) -> String {
        let kind = if self.compensation { "comp" } else { "task" };
        format!("result:{kind}:{}:{}:{}", self.run_id, self.step_id, self.attempt)
    }
}

/// Output or error of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The tool returned this output.
    Ok(Value),
    /// The tool failed.
    Err(ToolError),
}

/// A tool's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}{}", code.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default())]
pub struct ToolError {
    /// What went wrong.
    pub message: String,
    /// Machine-readable code; retry policies may list codes that are not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// False when retrying cannot help (bad params, unknown tool...).
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

impl ToolError {
    /// A retryable error.
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError { message: message.into(), code: None, retryable: true }
    }

    /// With a code.
    pub fn with_code(mut self, code: impl Into<String>) -> ToolError {
        self.code = Some(code.into());
        self
    }

    /// An error no retry can fix.
    pub fn permanent(mut self) -> ToolError {
        self.retryable = false;
        self
    }
}

/// Tells workers to stop running tools (`weft.cancel.<run_id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelTask {
    /// The run.
    pub run_id: Uuid,
    /// One step, or every step of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// One attempt, or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}
