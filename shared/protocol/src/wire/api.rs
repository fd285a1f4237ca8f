//! Requests to the coordinators' API and their answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use weft_lang::definition::WorkflowDef;
use weft_lang::validate::Problem;

use super::{PoolView, RunRecord, RunSummary};

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
        /// Undo what completed first (compensations in reverse order of completion).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compensate: bool,
    },
    /// Every resource pool: capacity, holders, waiters.
    Pools,
    /// Set a resource pool's capacity (creating the pool).
    SetPool {
        /// The pool.
        name: String,
        /// Its units.
        capacity: u32,
    },
    /// Validate and register a definition under its name and version.
    Deploy {
        /// The workflow.
        definition: Box<WorkflowDef>,
    },
    /// Carry on a failed, timed-out or cancelled run from where it stopped: its completed
    /// steps keep their outputs, the others run again.
    Redrive {
        /// Which run.
        run_id: Uuid,
        /// Its definition, when it was submitted inline (a registered one is found by name
        /// and version); it must be the one the run was submitted with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        definition: Option<Box<WorkflowDef>>,
    },
    /// Start a new run of an ended run's workflow that reuses the outputs of the steps
    /// before `from`: `from` and what waits for it run again, the rest is carried over.
    Rerun {
        /// The run that ended.
        run_id: Uuid,
        /// A top-level step: it and what waits for it run again.
        from: String,
        /// The new run's id (chosen by the client, as a submit's; default: a new one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_run_id: Option<Uuid>,
        /// The new run's input (default: the old run's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<Value>,
        /// The old run's definition, when it was submitted inline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        definition: Option<Box<WorkflowDef>>,
    },
    /// Dispatch nothing new until resumed.
    Pause {
        /// Which run.
        run_id: Uuid,
    },
    /// Carry on after a pause, or after running out of budget (with more).
    Resume {
        /// Which run.
        run_id: Uuid,
        /// Tokens added to its budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add_tokens: Option<u64>,
        /// Cost added to its budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add_cost: Option<f64>,
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

/// What a submit asked for, as a short stable text: the same definition and input give the
/// same fingerprint, whatever the order of their objects' keys (and no input, `null`, is
/// the empty object, as the CLI sends it). A run's record keeps it, so
/// a submit repeated with the run's id is told apart from a different one under that id.
pub fn fingerprint(definition: &WorkflowDef, input: &Value) -> String {
    /// The value with every object's keys sorted (serde_json keeps insertion order here).
    fn sorted(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    /// A namespace of its own, so fingerprints are not mistaken for ids of anything else.
    const NAMESPACE: Uuid = Uuid::from_u128(0x5f1c_9a8e_2b47_4c1d_9e36_0a7b_d4e2_f813);
    let definition = serde_json::to_value(definition).unwrap_or(Value::Null);
    let input = if input.is_null() { serde_json::json!({}) } else { input.clone() };
    let both = sorted(serde_json::json!({"definition": definition, "input": input}));
    Uuid::new_v5(&NAMESPACE, both.to_string().as_bytes()).simple().to_string()
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn the_same_submit_has_one_fingerprint_whatever_its_key_order() {
        let def = |json: &str| WorkflowDef::from_json(json).expect("parses");
        let a = def(r#"{"name": "w", "steps": [{"id": "a", "tool": "t", "params": {"x": 1, "y": 2}}]}"#);
        let b = def(r#"{"steps": [{"params": {"y": 2, "x": 1}, "tool": "t", "id": "a"}], "name": "w"}"#);
        let input: Value = serde_json::from_str(r#"{"p": 1, "q": {"r": 2, "s": 3}}"#).expect("json");
        let reordered: Value = serde_json::from_str(r#"{"q": {"s": 3, "r": 2}, "p": 1}"#).expect("json");
        assert_eq!(fingerprint(&a, &input), fingerprint(&b, &reordered));
        assert_ne!(fingerprint(&a, &input), fingerprint(&a, &serde_json::json!({"p": 2})));
        assert_eq!(fingerprint(&a, &Value::Null), fingerprint(&a, &serde_json::json!({})));
        let other = def(r#"{"name": "w", "steps": [{"id": "a", "tool": "u"}]}"#);
        assert_ne!(fingerprint(&a, &input), fingerprint(&other, &input));
    }
}

/// The coordinators' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiReply {
    /// A run was accepted (or had already been).
    Accepted {
        /// Its id.
        run_id: Uuid,
        /// The id named a run submitted before with the same definition and input: this
        /// submit made no new run (a retry, a repeated business key).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        existing: bool,
    },
    /// A run's record.
    Run(Box<RunRecord>),
    /// Runs, newest first.
    Runs(Vec<RunSummary>),
    /// Resource pools, by name.
    Pools(Vec<PoolView>),
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
