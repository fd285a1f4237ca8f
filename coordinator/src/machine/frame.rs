//! Frames: the running instances of step lists.
//!
//! Frame 0 holds the workflow's top-level steps. A construct opens a frame for each body it
//! runs: one per `for_each` item and per `loop` iteration (their steps' paths get the
//! item's or iteration's number: `pages[3].ocr`), one for the chosen case of a `switch`, and
//! one for the branches, alternatives, steps or stages of a `race`, `fallback`, `parallel`
//! or `pipeline` (ids are unique across a workflow, so these keep their parent's prefix).
//!
//! A frame's context holds what its steps produced and the names the construct bound
//! (`item`, `index`, `iteration`, `previous`); a reference looks there first and then in
//! the enclosing frames ([`View`]), which is how a body reads the steps around it without
//! copying them.

use serde_json::Value;
use weft_lang::plan::{Kind, Plan, Step};
use weft_lang::reference::{Context, Lookup, Scope};
use weft_protocol::wire::{EventKind, Millis, StepStatus};

use super::ids::{FrameId, InstId};
use super::{Effect, Inst, Run, StepState};

/// Where a body is in the plan: from the top-level list, (step index, body number) pairs.
pub(super) type BodyLoc = Vec<(u32, u32)>;

/// The step list at `loc`.
pub(super) fn body<'p>(plan: &'p Plan, loc: &[(u32, u32)]) -> &'p [Step] {
    let mut list: &[Step] = &plan.steps;
    for &(step, n) in loc {
        list = list.get(step as usize).and_then(|s| s.body(n as usize)).unwrap_or(&[]);
    }
    list
}

/// Where a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameState {
    /// Its steps are running or waiting.
    Active,
    /// It ended: its construct has taken (or given up) its result.
    Over,
}

/// One running step list.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    /// The enclosing frame (none for the top level).
    pub parent: Option<FrameId>,
    /// The construct instance that opened it (none for the top level).
    pub owner: Option<InstId>,
    /// Its steps in the plan.
    pub body: BodyLoc,
    /// Prepended to its steps' ids to make their paths.
    pub prefix: String,
    /// Its step instances, in body order.
    pub insts: Vec<InstId>,
    /// Outputs of its steps and the names bound by its construct.
    pub ctx: Context,
    /// For one-at-a-time constructs (`fallback`, `pipeline`): the step that may run now.
    pub cursor: usize,
    /// Where it is.
    pub state: FrameState,
}

/// A frame's view of the run's values: its own, then its ancestors'.
pub(super) struct View<'a> {
    pub run: &'a Run,
    pub frame: FrameId,
}

impl Scope for View<'_> {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        let mut at = Some(self.frame);
        while let Some(f) = at {
            let frame = &self.run.frames[f];
            match frame.ctx.lookup(root) {
                Lookup::Missing => at = frame.parent,
                found => return found,
            }
        }
        Lookup::Missing
    }
}

impl Run {
    /// The plan step of instance `i`.
    pub(super) fn def(&self, i: InstId) -> &Step {
        let inst = &self.insts[i];
        &body(&self.plan, &self.frames[inst.frame].body)[inst.index]
    }

    /// What references in frame `f` see.
    pub(super) fn view(&self, f: FrameId) -> View<'_> {
        View { run: self, frame: f }
    }

    /// The instance of sibling `id` in frame `f`.
    pub(super) fn sibling(&self, f: FrameId, id: &str) -> Option<InstId> {
        let prefix = &self.frames[f].prefix;
        if prefix.is_empty() { self.index(id) } else { self.index(&format!("{prefix}{id}")) }
    }

    /// Opens a frame running the steps at `body`, with `bindings` in its context; its
    /// steps start pending and the next `advance` looks at them.
    pub(super) fn open_frame(
        &mut self,
        owner: Option<InstId>,
        body_loc: BodyLoc,
        prefix: String,
        bindings: impl IntoIterator<Item = (String, Value)>,
    ) -> FrameId {
        let f = FrameId::at(self.frames.len());
        let mut ctx = Context::default();
        for (name, value) in bindings {
            ctx.set(name, value);
        }
        let steps = body(&self.plan, &body_loc);
        let mut insts = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            let i = InstId::at(self.insts.len());
            let path = format!("{prefix}{}", step.id);
            self.positions.insert(path.clone(), i);
            self.insts.push(Inst { path, frame: f, index, state: StepState::new(), construct: None });
            insts.push(i);
        }
        let parent = owner.map(|o| self.insts[o].frame);
        self.frames.push(Frame {
            parent,
            owner,
            body: body_loc,
            prefix,
            insts,
            ctx,
            cursor: 0,
            state: FrameState::Active,
        });
        self.dirty.insert(f);
        f
    }

    /// Where the body `n` of construct instance `i` is in the plan.
    pub(super) fn body_of(&self, i: InstId, n: usize) -> BodyLoc {
        let inst = &self.insts[i];
        let mut loc = self.frames[inst.frame].body.clone();
        loc.push((inst.index as u32, n as u32));
        loc
    }

    /// Stops everything still going in frame `f` and the frames under it: running tasks
    /// are told to stop, children are cancelled, timers dropped, and every unfinished step
    /// ends `cancelled` with `reason`.
    pub(super) fn cancel_frame(&mut self, f: FrameId, reason: &str, now: Millis, out: &mut Vec<Effect>) {
        self.frames[f].state = FrameState::Over;
        for i in self.frames[f].insts.clone() {
            self.cancel_inst(i, reason, now, out);
        }
    }

    /// Stops one step instance (and what it opened) if it has not finished.
    pub(super) fn cancel_inst(&mut self, i: InstId, reason: &str, now: Millis, out: &mut Vec<Effect>) {
        let status = self.insts[i].state.status;
        if status.is_terminal() {
            return;
        }
        if status == StepStatus::Running {
            let attempt = self.insts[i].state.attempt;
            match &self.def(i).kind {
                _ if self.is_task(i) => {
                    self.settle_call(i, attempt, None);
                    out.push(Effect::Cancel(weft_protocol::wire::CancelTask {
                        run_id: self.id,
                        step_id: Some(self.insts[i].path.clone()),
                        attempt: Some(attempt),
                    }));
                    self.running.release();
                }
                Kind::SubWorkflow { .. } | Kind::Plan(_) => {
                    if let Some(child_id) = self.running_child(i) {
                        out.push(Effect::CancelChild { child_id, reason: reason.to_owned() });
                    }
                }
                _ => {
                    for f in self.opened_by(i) {
                        if self.frames[f].state == FrameState::Active {
                            self.cancel_frame(f, reason, now, out);
                        }
                    }
                }
            }
        }
        let path = self.insts[i].path.clone();
        self.drop_timers(&path);
        self.return_units(i, out);
        self.insts[i].state.cancel(reason);
        self.emit(out, now, EventKind::StepCancelled { step_id: path, reason: reason.to_owned() });
    }

    /// Whether every step of frame `f` has finished.
    pub(super) fn frame_finished(&self, f: FrameId) -> bool {
        self.frames[f].insts.iter().all(|&i| self.insts[i].state.status.is_terminal())
    }

    /// What a body produced when its construct declares no `output`: a body of one step
    /// gives that step's output (`null` if it has none); several give an object by id.
    pub(super) fn body_value(&self, f: FrameId) -> Value {
        let frame = &self.frames[f];
        let steps = body(&self.plan, &frame.body);
        if let [only] = steps {
            return frame.ctx.values.get(&only.id).cloned().unwrap_or(Value::Null);
        }
        self.body_outputs(f)
    }

    /// Outputs of frame `f`'s steps that have one, by id, in body order.
    pub(super) fn body_outputs(&self, f: FrameId) -> Value {
        let frame = &self.frames[f];
        let steps = body(&self.plan, &frame.body);
        Value::Object(
            steps.iter().filter_map(|s| frame.ctx.values.get(&s.id).map(|v| (s.id.clone(), v.clone()))).collect(),
        )
    }
}
