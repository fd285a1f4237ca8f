//! Run records: everything known about a run, as stored and shown, and how a record too
//! large for one message is abridged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Millis, ToolError};

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
    /// Out of budget: a model call would spend more than the run may; running steps
    /// finish, nothing new starts until resumed with more (`weft resume ID --add-tokens N`).
    BudgetExceeded,
}

impl RunStatus {
    /// Its name on the wire (`timed_out`), for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Compensating => "compensating",
            RunStatus::Compensated => "compensated",
            RunStatus::CompensationFailed => "compensation_failed",
            RunStatus::Paused => "paused",
            RunStatus::BudgetExceeded => "budget_exceeded",
        }
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Compensating | RunStatus::Paused | RunStatus::BudgetExceeded)
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
    /// Tokens it spent on a model, if it called one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::Usage>,
    /// What those tokens cost, by the coordinator's price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// A step in a run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Where it is.
    pub status: StepStatus,
    /// Tool it calls, if a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Its params as resolved for its current attempt, once it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
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
    /// The construct instance whose body it is in (`pages`, `route`); none at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// A `plan` step's plans: each one proposed, with its problems, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<PlanRound>,
    /// The child run its current attempt started (a `workflow` step, a `plan` step's plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<Uuid>,
}

/// A plan a `plan` step considered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRound {
    /// The step's attempt whose model call wrote it (0 for a plan an approver sent).
    pub attempt: u32,
    /// The workflow proposed, as written.
    pub plan: Value,
    /// What is wrong with it; empty once checked and found valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Whether the check is done (a plan is checked once, by the coordinator owning the run).
    #[serde(default)]
    pub checked: bool,
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
    /// The run and step that started it, if it is a child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
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
    /// The run it reruns, and the step it reruns from (`weft rerun --from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RerunOf>,
    /// The [`fingerprint`](super::fingerprint) of the definition and input it was submitted
    /// with: a submit repeated under its id with the same is the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The signals the workflow's `signal` steps wait for, by name: what a sender must know.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signals: BTreeMap<String, SignalRecord>,
    /// What it spent on models (its children's and plans' included), once it spent any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<Spend>,
    /// What it may spend, if it has a budget (its own, within its parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<weft_lang::definition::Budget>,
}

/// The run a rerun reruns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerunOf {
    /// That run.
    pub run_id: Uuid,
    /// The top-level step it runs again from.
    pub from: String,
}

/// The step of another run that started a child run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// The parent run.
    pub run_id: Uuid,
    /// Its step instance (path) that started the child.
    pub step: String,
}

/// Tokens and cost spent on models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// Prompt and completion tokens.
    pub tokens: u64,
    /// Their cost, by the coordinator's price table (0 without one).
    #[serde(default)]
    pub cost: f64,
    /// Held for model calls and child runs in flight, not spent yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reserved_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A signal a workflow's `signal` steps wait for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// The JSON Schema its data must fit, if the step declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Data sent for it is held, waiting for its step to start (a second is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// A run's entry in the index of runs (`weft.index.<run>`), written once when it is
/// created: what a listing needs before it reads the run's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The run.
    pub run_id: Uuid,
    /// Its workflow.
    pub workflow: String,
    /// When it was accepted.
    pub created_ms: Millis,
    /// The run that started it, if it is a child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Uuid>,
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
    /// 1 MiB): step outputs and params, then every attempt but the last, then the steps that
    /// completed, then every step, then the run's output. What was left out is said in
    /// `abridged`. Only the JSON of a record with a huge input can still exceed `limit`.
    pub fn to_json_within(&self, limit: usize) -> Vec<u8> {
        let full = serde_json::to_vec(self).expect("a record is plain data and serialises");
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
            ("step outputs and params", |r| {
                r.steps.values_mut().for_each(|s| {
                    s.output = None;
                    s.params = None;
                })
            }),
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
            bytes = serde_json::to_vec(self).expect("a record is plain data and serialises");
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
                    usage: None,
                    cost: None,
                })
                .collect(),
            compensation: None,
            within: None,
            plans: Vec::new(),
            params: None,
            child: None,
        };
        let ids: Vec<String> = (0..steps).map(|i| format!("s{i}")).collect();
        RunRecord {
            run_id: Uuid::nil(),
            workflow: "big".into(),
            version: 1,
            status: RunStatus::Failed,
            parent: None,
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
            fingerprint: None,
            rerun_of: None,
            signals: BTreeMap::new(),
            spent: None,
            budget: None,
        }
    }

    #[test]
    fn status_names_are_the_wire_names() {
        for status in [
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::TimedOut,
            RunStatus::Cancelled,
            RunStatus::Compensating,
            RunStatus::Compensated,
            RunStatus::CompensationFailed,
            RunStatus::Paused,
            RunStatus::BudgetExceeded,
        ] {
            assert_eq!(serde_json::to_value(status).expect("json"), json!(status.as_str()));
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
        assert!(note.ends_with("step outputs and params, attempts before each step's last, completed steps"), "{note}");
        // The same, as a record to wrap in a reply.
        assert_eq!(record.clone().within(100_000), back_with(&bytes));
        assert_eq!(big_record(3).within(100_000), big_record(3), "a record that fits is whole");
    }

    fn back_with(bytes: &[u8]) -> RunRecord {
        serde_json::from_slice(bytes).expect("json")
    }
}
