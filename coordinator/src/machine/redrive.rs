//! Redrive: a run that failed, timed out or was cancelled carries on from where it stopped.
//!
//! A redrive is a new creation of the same run id whose entry carries a [`Seed`]: what the
//! run that ended had done, by step path. The run starts over from its definition, and each
//! step instance, when it is about to start, looks itself up in the seed: one that
//! completed completes at once with its output (no task, no wait, no child run), and one
//! that did not keeps its earlier attempts, so its next attempt has the next number (its
//! task, result and child ids are new) and its retry policy counts only the new ones.
//! Constructs are not carried over: their bodies run again, and the instances in them are
//! looked up the same way, so a `for_each` redoes only the items that did not complete.
//! The idempotency key of a step (`<run>/<path>`) is the same as before. The seed is in the
//! log entry, so a replay rebuilds a redriven run exactly.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_protocol::wire::{Attempt, Millis, RerunOf, RunRecord, StepStatus};

use super::ids::InstId;
use super::{Effect, Run};

/// What a redriven run carries over from the run that ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seed {
    /// When the run was first accepted: a redrive does not make it newer.
    pub created_ms: Millis,
    /// The sequence of the last event the run published: its events go on from there
    /// (events are deduplicated by run and sequence).
    pub events: u64,
    /// Its steps, by path.
    pub steps: BTreeMap<String, SeedStep>,
    /// A rerun (a new run, carrying over another's outputs): which run, from which step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RerunOf>,
}

/// One step of the run that ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SeedStep {
    /// Its output, if it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its attempts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

impl Seed {
    /// What `record` (of a run that ended, not abridged) carries over; `events` is the
    /// sequence of its last event.
    pub(crate) fn of(record: &RunRecord, events: u64) -> Seed {
        let steps = record
            .steps
            .iter()
            .map(|(path, step)| {
                let output = (step.status == StepStatus::Completed).then(|| step.output.clone().unwrap_or(Value::Null));
                (path.clone(), SeedStep { output, attempts: step.attempts.clone() })
            })
            .collect();
        Seed { created_ms: record.created_ms, events, steps, rerun_of: None }
    }

    /// What a rerun of `record`'s run from top-level step `from` carries over: the outputs
    /// of the completed steps outside `again` (the top-level steps that run again), whose
    /// top-level step is found by following `within`; no attempts (it is a new run).
    pub(crate) fn rerun(record: &RunRecord, from: &str, again: &BTreeSet<&str>, created_ms: Millis) -> Seed {
        let top = |path: &str| {
            let mut path = path.to_owned();
            while let Some(up) = record.steps.get(&path).and_then(|s| s.within.clone()) {
                path = up;
            }
            path
        };
        let steps = record
            .steps
            .iter()
            .filter(|(path, step)| step.status == StepStatus::Completed && !again.contains(top(path).as_str()))
            .map(|(path, step)| {
                let output = Some(step.output.clone().unwrap_or(Value::Null));
                (path.clone(), SeedStep { output, attempts: Vec::new() })
            })
            .collect();
        Seed { created_ms, events: 0, steps, rerun_of: Some(RerunOf { run_id: record.run_id, from: from.to_owned() }) }
    }
}

impl Run {
    /// Before instance `i` starts: if the run it continues had completed it (and it is not a
    /// construct, whose body runs again), it completes now with that output, and this
    /// returns true; if it had attempts, they are kept and the next one follows them.
    pub(super) fn carry_over(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) -> bool {
        let Some(seed) = self.seed.clone() else { return false };
        let Some(before) = seed.steps.get(&self.insts[i].path) else { return false };
        let state = &mut self.insts[i].state;
        if state.attempt == 0 && state.attempts.is_empty() && !before.attempts.is_empty() {
            state.attempts = before.attempts.clone();
            state.attempt = before.attempts.iter().map(|a| a.attempt).max().unwrap_or(0);
            state.carried = state.attempt;
        }
        if self.def(i).is_construct() {
            return false;
        }
        let Some(output) = before.output.clone() else { return false };
        let worker = before.attempts.last().and_then(|a| a.worker.clone()).unwrap_or_default();
        self.complete_inst(i, output, worker, now, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_protocol::wire::{EventKind, ToolError};

    use super::super::Input;
    use super::super::tests::{dispatched, err, events, ids, ok, run};
    use super::*;

    fn def() -> Value {
        json!({"name": "r", "steps": [
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t", "params": {"x": "{a.v}"}, "retry": {"max_attempts": 2, "backoff": "1ms"}}
        ], "output": "{b}"})
    }

    /// The run as it failed: `a` completed, `b` failed both its attempts.
    fn failed() -> RunRecord {
        let mut r = run(def(), json!({}));
        let first = dispatched(&r.apply(Input::Start, 0));
        let b = dispatched(&r.apply(ok(&first[0], json!({"v": 7})), 1));
        r.apply(err(&b[0], ToolError::new("down")), 2);
        let retried = dispatched(
            &r.apply(Input::Timer { timer: super::super::Timer::Retry { step: "b".into(), attempt: 1 } }, 3),
        );
        r.apply(err(&retried[0], ToolError::new("down")), 4);
        let record = r.record();
        assert_eq!(record.status, weft_protocol::wire::RunStatus::Failed, "{record:?}");
        record
    }

    #[test]
    fn a_redriven_run_does_not_redo_what_completed_and_numbers_attempts_on() {
        let before = failed();
        let seed = Seed::of(&before, 9);
        let mut r = run(def(), json!({})).with_seed(Some(seed));
        let effects = r.apply(Input::Start, 100);
        let tasks = dispatched(&effects);
        assert_eq!(ids(&tasks), ["b"], "only the failed step is dispatched");
        assert_eq!(tasks[0].attempt, 3, "its attempts go on from the two before");
        assert_eq!(tasks[0].params, json!({"x": 7}), "from the carried-over output of `a`");
        assert!(events(&effects).contains(&EventKind::RunStarted { workflow: "r".into() }));
        // Its retry budget is its own: attempt 3 fails and attempt 4 is still allowed.
        let retry = r.apply(err(&tasks[0], ToolError::new("down")), 101);
        assert!(
            events(&retry).iter().any(|e| matches!(e, EventKind::StepRetrying { attempt: 3, .. })),
            "{:?}",
            events(&retry)
        );
        let record = r.record();
        assert_eq!(record.created_ms, before.created_ms);
        assert_eq!(record.steps["a"].attempts, before.steps["a"].attempts);
        assert_eq!(record.steps["b"].attempts.len(), 3);
    }
}
