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
    /// This attempt's secret: its result must carry it, so only a worker that took the
    /// task can answer it (the coordinator ignores a result without it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
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
    /// What the call spent on a model, for tools that call one (`llm`): budgets settle on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The task's `token`, echoed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// Tokens a model call used, as the provider reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// The model that answered (as the provider named it).
    pub model: String,
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the completion.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt and completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Adds `other`'s tokens (a call that took several requests); the model is the last one's.
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        if !other.model.is_empty() {
            self.model.clone_from(&other.model);
        }
    }
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
    /// Wait at least this long before retrying (a provider's `Retry-After`); the step's
    /// backoff applies when it is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

impl ToolError {
    /// A retryable error.
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError { message: message.into(), code: None, retryable: true, retry_after_ms: None }
    }

    /// Retry no sooner than `after`.
    pub fn retry_after(mut self, after: std::time::Duration) -> ToolError {
        self.retry_after_ms = Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
        self
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

/// Part of a model's answer as it is written, on core NATS `weft.stream.<run_id>` (not
/// durable: whoever listens sees it live; the step's result holds the whole answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The run.
    pub run_id: Uuid,
    /// The step.
    pub step_id: String,
    /// Its attempt.
    pub attempt: u32,
    /// 0, 1, 2...: a listener can tell what it missed.
    pub seq: u64,
    /// The text added.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// The answer is complete (no text).
    #[serde(default, skip_serializing_if = "is_false")]
    pub done: bool,
}
