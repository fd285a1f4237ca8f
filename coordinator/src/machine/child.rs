//! Sub-workflows: a `workflow` step starts a child run of a registered definition and
//! takes its output.
//!
//! The child's id is derived from the parent's id, the step's path and the attempt, so
//! starting it again (after a takeover) names the same run. The child is a run like any
//! other, on whichever partition its id falls; it knows its parent through a
//! [`ParentLink`] and, when it ends, appends a [`ChildResult`] to the parent's log, which
//! the parent applies like a task result: a completed child completes the step, anything
//! else is the attempt's failure (retried under the step's policy with a new child).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use weft_lang::definition::{Budget, WorkflowDef};
use weft_lang::plan::Kind;
use weft_protocol::wire::{Millis, RunStatus, Spend, StepStatus, ToolError};

use super::ids::InstId;
use super::planning::Phase;
use super::{Effect, Ignored, Input, Run, Timer};

/// Where a child run reports its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ParentLink {
    /// The parent run.
    pub run_id: Uuid,
    /// The parent's `workflow` step instance.
    pub step: String,
    /// The step's attempt that started the child.
    pub attempt: u32,
    /// The parent's log subject.
    pub reply_to: String,
    /// The root of the tree of runs it belongs to (its parent's root, or its parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Uuid>,
    /// How deep below the root it is (1 for a child of the root).
    #[serde(default)]
    pub depth: u32,
    /// What it may spend on models: what its parent had left, held for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// A child run to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChildStart {
    /// Its id.
    pub child_id: Uuid,
    /// Registered workflow name (a `plan` step's: its plan's name).
    pub workflow: String,
    /// Version; the latest stored if none.
    pub version: Option<u32>,
    /// Its input.
    pub input: Value,
    /// Who to tell when it ends.
    pub parent: ParentLink,
    /// The definition itself, for a plan a model wrote (checked already): nothing to load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Box<WorkflowDef>>,
}

/// How a child run ended, as its parent's log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChildResult {
    /// The parent's step instance.
    pub step: String,
    /// The attempt that started the child.
    pub attempt: u32,
    /// The child.
    pub child_id: Uuid,
    /// Its final status.
    pub status: RunStatus,
    /// Its output, if it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why it did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolError>,
    /// What it spent on models, its own children included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<Spend>,
}

impl Run {
    /// The id of the child run started by `path`'s attempt `attempt`.
    pub(crate) fn child_id(&self, path: &str, attempt: u32) -> Uuid {
        Uuid::new_v5(&self.id, format!("{path}#{attempt}").as_bytes())
    }

    /// The child run instance `i` is waiting for, if it is a running `workflow` step.
    pub(super) fn running_child(&self, i: InstId) -> Option<Uuid> {
        self.started_child(i).filter(|_| self.insts[i].state.status == StepStatus::Running)
    }

    /// The child run instance `i`'s current attempt started, if it is a `workflow` step (or
    /// a `plan` step running its plan) that got as far as an attempt.
    pub(super) fn started_child(&self, i: InstId) -> Option<Uuid> {
        let state = &self.insts[i].state;
        let runs_child =
            matches!(self.def(i).kind, Kind::SubWorkflow { .. }) || self.plan_phase(i) == Some(Phase::Running);
        (runs_child && state.attempt > 0).then(|| self.child_id(&self.insts[i].path, state.attempt))
    }

    /// What starting instance `i`'s current child takes.
    pub(super) fn child_start(&self, i: InstId) -> Option<ChildStart> {
        let inst = &self.insts[i];
        let (workflow, version, input, definition) = match &self.def(i).kind {
            Kind::SubWorkflow { name, version, .. } => {
                (name.clone(), *version, inst.state.params.clone().unwrap_or(Value::Null), None)
            }
            Kind::Plan(_) if self.plan_phase(i) == Some(Phase::Running) => {
                // Checked when it was accepted: it parses.
                let def: WorkflowDef = serde_json::from_value(self.accepted_plan(i)?.clone()).ok()?;
                let input = inst.state.params.as_ref().and_then(|p| p.get("input")).cloned().unwrap_or(Value::Null);
                (def.name.clone(), Some(def.version), input, Some(Box::new(def)))
            }
            _ => return None,
        };
        Some(ChildStart {
            child_id: self.child_id(&inst.path, inst.state.attempt),
            workflow,
            version,
            input,
            definition,
            parent: ParentLink {
                run_id: self.id,
                step: inst.path.clone(),
                attempt: inst.state.attempt,
                reply_to: self.reply_to.clone(),
                root: Some(self.parent.as_ref().and_then(|p| p.root).unwrap_or(self.id)),
                depth: self.parent.as_ref().map_or(0, |p| p.depth) + 1,
                budget: self.child_grant(i),
            },
        })
    }

    pub(super) fn start_child(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) {
        let mut started = Vec::new();
        self.begin_attempt(i, now, &mut started);
        self.grant_for_child(i);
        if let Some(start) = self.child_start(i) {
            out.push(Effect::StartChild(start));
        }
        out.extend(started);
    }

    pub(super) fn on_child(&mut self, r: ChildResult, now: Millis, out: &mut Vec<Effect>) {
        let what = || Input::Child { result: r.clone() }.describe();
        let Some(i) = self.index(&r.step) else {
            let ignored = Ignored::unexpected(what(), "the run has no step instance of that path");
            return out.push(Effect::Ignored(ignored));
        };
        if !matches!(self.def(i).kind, Kind::SubWorkflow { .. } | Kind::Plan(_))
            || r.attempt == 0
            || r.attempt > self.insts[i].state.attempt
        {
            let ignored = Ignored::unexpected(what(), "no such child run was started");
            return out.push(Effect::Ignored(ignored));
        }
        if self.running_child(i) != Some(r.child_id) {
            // An earlier attempt's child, or a repeat.
            let ignored = Ignored::stale(what(), "the step no longer waits for that child");
            return out.push(Effect::Ignored(ignored));
        }
        self.fired(&Timer::StepTimeout { step: r.step.clone(), attempt: r.attempt });
        self.settle_child(i, r.attempt, r.spent.as_ref());
        let worker = format!("run {}", r.child_id);
        if r.status == RunStatus::Completed {
            self.insts[i].state.end_attempt(Some(worker.clone()), None, now, Ok(()));
            self.complete_inst(i, r.output.unwrap_or(Value::Null), worker, now, out);
            return;
        }
        let error = r.error.unwrap_or_else(|| ToolError::new("the sub-workflow did not complete"));
        self.insts[i].state.end_attempt(Some(worker), None, now, Err(error.clone()));
        self.on_failure(i, error, now, out);
    }
}
