//! The wire protocol: every message between clients, coordinators and workers, as JSON.
//!
//! A worker in any language with a NATS client can take part: pull [`Task`]s from its
//! tool's subject, publish a [`TaskResult`] on the result subject, and ack the task (see
//! `docs/protocol.md`). Subjects are in [`crate::subjects`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::definition::WorkflowDef;
use crate::validate::Problem;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

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

/// Well-known error codes set by Weft itself.
pub mod codes {
    /// The attempt ran past its timeout.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// Params did not resolve or did not fit the tool.
    pub const BAD_PARAMS: &str = "BAD_PARAMS";
    /// No such tool on the worker that took the task.
    pub const UNKNOWN_TOOL: &str = "UNKNOWN_TOOL";
    /// The tool panicked.
    pub const PANIC: &str = "PANIC";
    /// The output is larger than a message may be.
    pub const OUTPUT_TOO_LARGE: &str = "OUTPUT_TOO_LARGE";
    /// The resolved params are larger than a message may be.
    pub const PARAMS_TOO_LARGE: &str = "PARAMS_TOO_LARGE";
    /// The run was cancelled while the tool ran.
    pub const CANCELLED: &str = "CANCELLED";
    /// A condition could not be evaluated.
    pub const CONDITION: &str = "CONDITION";
    /// A task was delivered more times than a worker allows (workers kept dying on it).
    pub const WORKER_LOST: &str = "WORKER_LOST";
    /// The `http` tool could not reach the server.
    pub const NETWORK: &str = "NETWORK";
    /// The `transform` tool's jq filter failed.
    pub const FILTER_ERROR: &str = "FILTER_ERROR";
    /// A sub-workflow did not complete (or could not start).
    pub const CHILD_FAILED: &str = "CHILD_FAILED";
    /// A `loop` reached `max_iterations` before its `until` held.
    pub const MAX_ITERATIONS: &str = "MAX_ITERATIONS";
    /// A construct's body failed (the message says which step and why).
    pub const BODY_FAILED: &str = "BODY_FAILED";
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

/// A request to the coordinators' API (`weft.api.<verb>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum ApiRequest {
    /// Start a run.
    Submit(Box<Submit>),
    /// A run's record.
    Status {
        /// Which run.
        run_id: Uuid,
    },
    /// Recent runs.
    List {
        /// At most this many (newest first).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Stop a run.
    Cancel {
        /// Which run.
        run_id: Uuid,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Validate and register a definition under its name and version.
    Deploy {
        /// The workflow.
        definition: Box<WorkflowDef>,
    },
    /// Dispatch nothing new until resumed.
    Pause {
        /// Which run.
        run_id: Uuid,
    },
    /// Carry on after a pause.
    Resume {
        /// Which run.
        run_id: Uuid,
    },
    /// Send data to the run's `signal` steps waiting for `name`.
    Signal {
        /// Which run.
        run_id: Uuid,
        /// The signal.
        name: String,
        /// Its data (the waiting step's output).
        #[serde(default)]
        data: Value,
    },
}

/// Start a run of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submit {
    /// Chosen by the client so a retried submit is recognised (default: a new id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    /// The workflow.
    pub definition: WorkflowDef,
    /// The run's input.
    #[serde(default)]
    pub input: Value,
}

/// The coordinators' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiReply {
    /// A run was accepted (or had already been).
    Accepted {
        /// Its id.
        run_id: Uuid,
    },
    /// A run's record.
    Run(Box<RunRecord>),
    /// Runs, newest first.
    Runs(Vec<RunSummary>),
    /// Done.
    Ok,
    /// The request failed.
    Error(ApiError),
}

/// Why an API request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Kind of failure.
    pub code: ApiErrorCode,
    /// What happened.
    pub message: String,
    /// Validation problems, for `invalid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// Kinds of API failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// The request could not be read.
    BadRequest,
    /// The workflow or its input is invalid.
    Invalid,
    /// No such run.
    NotFound,
    /// The request cannot apply to the run as it is (e.g. cancel a finished run, submit
    /// an id that names a run already).
    Conflict,
    /// What is stored cannot be read (a record or definition that is not what Weft
    /// writes); the message names the bucket and key.
    Corrupt,
    /// JetStream cannot be reached for now (a leader election, a restart): nothing was
    /// done, and the same request may succeed in a moment.
    Unavailable,
    /// Something failed inside the coordinator.
    Internal,
}

impl ApiError {
    /// An error of `code`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), problems: Vec::new() }
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Steps are running or waiting.
    Running,
    /// Every step finished; none failed the run.
    Completed,
    /// A step failed for good (or the output could not be built).
    Failed,
    /// The run's timeout fired.
    TimedOut,
    /// Someone cancelled it.
    Cancelled,
    /// A step failed under `on_failure: compensate`; completed steps are being undone.
    Compensating,
    /// A step failed and every compensation succeeded.
    Compensated,
    /// A step failed and at least one compensation failed for good (see `errors`).
    CompensationFailed,
    /// Paused: running steps finish, nothing new starts until resumed.
    Paused,
}

impl RunStatus {
    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Compensating | RunStatus::Paused)
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for dependencies (or a free slot).
    Pending,
    /// Dispatched to a worker.
    Running,
    /// Waiting before the next attempt.
    Retrying,
    /// Returned an output.
    Completed,
    /// Failed for good.
    Failed,
    /// Did not run (condition false, or an input it needs is missing).
    Skipped,
    /// Stopped because the run ended.
    Cancelled,
}

impl StepStatus {
    /// Whether the step is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, StepStatus::Completed | StepStatus::Failed | StepStatus::Skipped | StepStatus::Cancelled)
    }
}

/// One attempt of a step, for the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    /// When the coordinator dispatched it.
    pub dispatched_ms: Millis,
    /// Worker that ran it, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When the tool started, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<Millis>,
    /// When it ended, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<Millis>,
    /// How it ended, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolError>,
    /// Whether it succeeded.
    #[serde(default)]
    pub ok: bool,
}

/// A step in a run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Where it is.
    pub status: StepStatus,
    /// Tool it calls, if a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Output, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every attempt so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Its compensation, once the saga started undoing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<CompensationRecord>,
}

/// How a step was undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationRecord {
    /// `pending`, `running`, `retrying`, `completed` or `failed`.
    pub status: StepStatus,
    /// The compensating tool.
    pub tool: String,
    /// Its attempts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// Everything known about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its id.
    pub run_id: Uuid,
    /// Workflow name.
    pub workflow: String,
    /// Workflow version.
    pub version: u32,
    /// Where it is.
    pub status: RunStatus,
    /// Its input.
    pub input: Value,
    /// The output template resolved, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Steps by id, in document order.
    pub steps: BTreeMap<String, StepRecord>,
    /// Document order of the steps.
    pub order: Vec<String>,
    /// Why the run failed, if it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// When it was accepted.
    pub created_ms: Millis,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<Millis>,
    /// What was left out to fit the record in one NATS message, if anything was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abridged: Option<String>,
}

/// A line of `weft list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Its id.
    pub run_id: Uuid,
    /// Workflow name.
    pub workflow: String,
    /// Where it is.
    pub status: RunStatus,
    /// When it was accepted.
    pub created_ms: Millis,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<Millis>,
}

impl RunRecord {
    /// The record as JSON of at most `limit` bytes, leaving out the least useful details
    /// first when the whole does not fit (a run of 10,000 steps does not fit in the default
    /// 1 MiB): step outputs, then every attempt but the last, then the steps that
    /// completed, then every step, then the run's output. What was left out is said in
    /// `abridged`. Only the JSON of a record with a huge input can still exceed `limit`.
    pub fn to_json_within(&self, limit: usize) -> Vec<u8> {
        let full = serde_json::to_vec(self).unwrap_or_default();
        if full.len() <= limit {
            return full;
        }
        self.clone().abridge(limit, full.len())
    }

    /// The record, abridged as [`RunRecord::to_json_within`] does if its JSON is longer
    /// than `limit` bytes: for a reply that wraps it.
    pub fn within(mut self, limit: usize) -> RunRecord {
        let whole = serde_json::to_vec(&self).map_or(0, |b| b.len());
        if whole > limit {
            self.abridge(limit, whole);
        }
        self
    }

    /// Leaves details out until the JSON fits in `limit` (or nothing more can go); returns
    /// that JSON.
    fn abridge(&mut self, limit: usize, whole: usize) -> Vec<u8> {
        type Cut = (&'static str, fn(&mut RunRecord));
        let cuts: [Cut; 5] = [
            ("step outputs", |r| r.steps.values_mut().for_each(|s| s.output = None)),
            ("attempts before each step's last", |r| {
                r.steps.values_mut().for_each(|s| {
                    let keep = s.attempts.len().saturating_sub(1);
                    s.attempts.drain(..keep);
                })
            }),
            ("completed steps", |r| {
                r.steps.retain(|_, s| s.status != StepStatus::Completed);
                let steps = std::mem::take(&mut r.steps);
                r.order.retain(|id| steps.contains_key(id));
                r.steps = steps;
            }),
            ("every step", |r| {
                r.steps.clear();
                r.order.clear();
            }),
            ("the run's output", |r| r.output = None),
        ];
        let mut left_out = Vec::new();
        let mut bytes = Vec::new();
        for (what, cut) in cuts {
            cut(self);
            left_out.push(what);
            self.abridged = Some(format!(
                "left out to fit the server's message size of {limit} bytes (the whole record is {whole} bytes): {}",
                left_out.join(", ")
            ));
            bytes = serde_json::to_vec(self).unwrap_or_default();
            if bytes.len() <= limit {
                break;
            }
        }
        bytes
    }

    /// The one-line summary.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.run_id,
            workflow: self.workflow.clone(),
            status: self.status,
            created_ms: self.created_ms,
            finished_ms: self.finished_ms,
        }
    }
}

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
    /// A compensation failed for good.
    CompensationFailed {
        /// The step.
        step_id: String,
        /// Why.
        error: String,
    },
    /// The run was paused.
    RunPaused,
    /// The run was resumed.
    RunResumed,
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

/// A tool advertised by a worker (KV `weft_tools`, key `<tool>.<worker>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advertisement {
    /// The tool's contract.
    pub spec: crate::catalogue::ToolSpec,
    /// The worker offering it.
    pub worker: String,
    /// Its concurrency limit on that worker.
    pub concurrency: usize,
    /// When it was (re)advertised.
    pub at_ms: Millis,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn big_record(steps: usize) -> RunRecord {
        let step = |status| StepRecord {
            status,
            tool: Some("echo".into()),
            output: Some(json!({"text": "x".repeat(100)})),
            reason: None,
            attempts: (1..=2)
                .map(|attempt| Attempt {
                    attempt,
                    dispatched_ms: 1,
                    worker: Some("w".into()),
                    started_ms: Some(2),
                    finished_ms: Some(3),
                    error: None,
                    ok: attempt == 2,
                })
                .collect(),
            compensation: None,
        };
        let ids: Vec<String> = (0..steps).map(|i| format!("s{i}")).collect();
        RunRecord {
            run_id: Uuid::nil(),
            workflow: "big".into(),
            version: 1,
            status: RunStatus::Failed,
            input: json!({}),
            output: Some(json!("done")),
            steps: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), step(if i == 0 { StepStatus::Failed } else { StepStatus::Completed })))
                .collect(),
            order: ids,
            errors: vec!["s0 failed".into()],
            created_ms: 1,
            finished_ms: Some(9),
            abridged: None,
        }
    }

    #[test]
    fn a_record_that_fits_is_whole() {
        let record = big_record(3);
        let bytes = record.to_json_within(1 << 20);
        let back: RunRecord = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(back, record);
    }

    #[test]
    fn a_record_too_large_leaves_out_details_first_and_says_so() {
        let record = big_record(2000);
        let whole = serde_json::to_vec(&record).expect("json").len();
        // Without outputs, 2,000 steps still take more than 200 KB; without the completed
        // ones only the failed step is left.
        let bytes = record.to_json_within(100_000);
        assert!(bytes.len() <= 100_000, "{} bytes", bytes.len());
        let back: RunRecord = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(back.status, RunStatus::Failed);
        assert_eq!(back.output, Some(json!("done")));
        assert_eq!(back.order, vec!["s0".to_owned()]);
        assert_eq!(back.steps["s0"].attempts.len(), 1);
        let note = back.abridged.expect("says what was left out");
        assert!(note.contains(&format!("{whole} bytes")), "{note}");
        assert!(note.ends_with("step outputs, attempts before each step's last, completed steps"), "{note}");
        // The same, as a record to wrap in a reply.
        assert_eq!(record.clone().within(100_000), back_with(&bytes));
        assert_eq!(big_record(3).within(100_000), big_record(3), "a record that fits is whole");
    }

    fn back_with(bytes: &[u8]) -> RunRecord {
        serde_json::from_slice(bytes).expect("json")
    }
}
