//! Constructs at run time: each opens frames for its bodies and decides, as they move,
//! when it is over and with what output.
//!
//! - `for_each`: one frame per item (at most `concurrency` at once); the output lists the
//!   items' results in input order. A failed item's result is `{"error": ...}`; the
//!   construct fails once more than `max_failures` items failed, cancelling the rest.
//! - `loop`: one frame per iteration, binding `iteration` and `previous`; after each,
//!   `until` is read in the iteration's frame. Reaching `max_iterations` without it is a
//!   failure (`MAX_ITERATIONS`).
//! - `switch`: the first matching case's body (or `default`) in one frame; no match and no
//!   default gives `null`.
//! - `race`: all branches at once; `first` takes the first success and cancels the rest,
//!   `max`/`min` wait for every branch and take the best success by the field.
//! - `fallback`: alternatives one at a time until one succeeds.
//! - `parallel`: its steps at once; succeeds with `min_successes`, fails as soon as that
//!   cannot be reached.
//! - `pipeline`: stages one at a time, `previous` bound to the last stage's output.
//!
//! In `race`, `fallback` and `parallel` a failing step is counted, not fatal (the frame is
//! *tolerant*). In the other bodies the first failure ends the body at once: its other
//! steps are cancelled and the construct decides.

use serde_json::{Value, json};
use weft_lang::limits;
use weft_lang::plan::{CaseMatch, Kind};
use weft_lang::reference::resolve::resolve_path;
use weft_lang::reference::{Path, SkippedAsNull};
use weft_protocol::wire::{Millis, StepStatus, ToolError, codes};

use super::frame::FrameState;
use super::ids::{FrameId, InstId};
use super::{Effect, Run, error_value};

/// A construct's own progress.
#[derive(Debug, Clone)]
pub(super) enum Construct {
    /// A `for_each`.
    ForEach(ForEach),
    /// A `loop`, at `iteration`, running `frame`.
    Loop { iteration: u32, frame: FrameId },
    /// Any other construct: one frame.
    Single { frame: FrameId },
}

/// A `for_each`'s progress.
#[derive(Debug, Clone)]
pub(super) struct ForEach {
    items: Vec<Value>,
    /// Frames opened so far, by item.
    frames: Vec<FrameId>,
    active: usize,
    done: usize,
    failures: u32,
    results: Vec<Value>,
}

impl Construct {
    fn frames(&self) -> Vec<FrameId> {
        match self {
            Construct::ForEach(s) => s.frames.clone(),
            Construct::Loop { frame, .. } | Construct::Single { frame } => vec![*frame],
        }
    }
}

/// What decides a construct's end.
enum Rule {
    /// A `for_each`, `loop` or `switch`: its body finishing.
    Body,
    Race(weft_lang::definition::Winner),
    Fallback,
    Parallel(u32),
    Pipeline,
}

impl Run {
    /// Frames construct instance `i` opened.
    pub(super) fn opened_by(&self, i: InstId) -> Vec<FrameId> {
        self.insts[i].construct.as_ref().map(Construct::frames).unwrap_or_default()
    }

    fn owner_kind(&self, f: FrameId) -> Option<&Kind> {
        self.frames[f].owner.map(|o| &self.def(o).kind)
    }

    /// Whether a failing step leaves frame `f` going (its construct counts failures).
    pub(super) fn tolerant(&self, f: FrameId) -> bool {
        matches!(self.owner_kind(f), Some(Kind::Race { .. } | Kind::Fallback { .. } | Kind::Parallel { .. }))
    }

    /// Whether frame `f` runs its steps one at a time, up to its cursor.
    pub(super) fn one_at_a_time(&self, f: FrameId) -> bool {
        matches!(self.owner_kind(f), Some(Kind::Fallback { .. } | Kind::Pipeline { .. }))
    }

    /// Starts construct instance `i`, whose input `prepare` resolved into its params.
    pub(super) fn start_construct(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) {
        self.begin_attempt(i, now, out);
        let input = self.insts[i].state.params.clone().unwrap_or(Value::Null);
        let prefix = self.frames[self.insts[i].frame].prefix.clone();
        let single = |run: &mut Run, n: usize, bindings: Vec<(String, Value)>, out: &mut Vec<Effect>| {
            if let Err(e) = run.room_for_body(i, n) {
                return run.finish_construct(i, Err(e), now, out);
            }
            let loc = run.body_of(i, n);
            let frame = run.open_frame(Some(i), loc, prefix.clone(), bindings);
            run.insts[i].construct = Some(Construct::Single { frame });
        };
        match &self.def(i).kind {
            Kind::ForEach { .. } => {
                let items = match input {
                    Value::Array(items) => items,
                    _ => Vec::new(),
                };
                let most = self.limits.max_items;
                if items.len() > most {
                    let message = limits::exceeded("the number of items", items.len(), most, "WEFT_MAX_ITEMS");
                    return self.finish_construct(i, Err(super::limit_error(message)), now, out);
                }
                let results = vec![Value::Null; items.len()];
                let state = ForEach { items, frames: Vec::new(), active: 0, done: 0, failures: 0, results };
                self.insts[i].construct = Some(Construct::ForEach(state));
                self.feed(i, now, out);
            }
            Kind::Loop { .. } => self.open_iteration(i, 0, Value::Null, now, out),
            Kind::Switch { on, cases, default } => {
                let view = self.view(self.insts[i].frame);
                let mut chosen = None;
                for (n, case) in cases.iter().enumerate() {
                    let hit = match &case.matcher {
                        CaseMatch::Value(v) => Ok(on.is_some() && *v == input),
                        CaseMatch::When(condition) => condition.eval(&view),
                    };
                    match hit {
                        Ok(true) => {
                            chosen = Some(n);
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            let error = ToolError::new(format!("cases[{n}]: {e}")).with_code(codes::CONDITION);
                            self.finish_construct(i, Err(error.permanent()), now, out);
                            return;
                        }
                    }
                }
                match chosen.or(default.is_some().then_some(cases.len())) {
                    Some(n) => single(self, n, Vec::new(), out),
                    None => self.finish_construct(i, Ok(Value::Null), now, out),
                }
            }
            Kind::Pipeline { .. } => single(self, 0, vec![("previous".to_owned(), input)], out),
            _ => single(self, 0, Vec::new(), out),
        }
    }

    /// Whether the run may open body `n` of construct `i`: its steps would not take it
    /// past its limit of step instances.
    fn room_for_body(&self, i: InstId, n: usize) -> Result<(), ToolError> {
        let steps = super::frame::body(&self.plan, &self.body_of(i, n)).len();
        let most = self.limits.max_instances;
        if self.insts.len().saturating_add(steps) <= most {
            return Ok(());
        }
        let message =
            limits::exceeded("the number of step instances", self.insts.len() + steps, most, "WEFT_MAX_INSTANCES");
        Err(super::limit_error(message))
    }

    fn open_iteration(&mut self, i: InstId, iteration: u32, previous: Value, now: Millis, out: &mut Vec<Effect>) {
        if let Err(e) = self.room_for_body(i, 0) {
            return self.finish_construct(i, Err(e), now, out);
        }
        let loc = self.body_of(i, 0);
        let prefix = format!("{}[{iteration}].", self.insts[i].path);
        let bindings = [("iteration".to_owned(), json!(iteration)), ("previous".to_owned(), previous)];
        let frame = self.open_frame(Some(i), loc, prefix, bindings);
        self.insts[i].construct = Some(Construct::Loop { iteration, frame });
    }

    /// Opens `for_each` items while the concurrency limit allows; completes it when every
    /// item is done.
    fn feed(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) {
        let Kind::ForEach { bind, index_bind, concurrency, .. } = &self.def(i).kind else { return };
        let (bind, index_bind) = (bind.clone(), index_bind.clone());
        let limit = concurrency.map_or(usize::MAX, |c| c.max(1) as usize);
        loop {
            let Some(Construct::ForEach(s)) = &self.insts[i].construct else { return };
            if s.done == s.items.len() {
                let results = Value::Array(s.results.clone());
                self.finish_construct(i, Ok(results), now, out);
                return;
            }
            if s.frames.len() == s.items.len() || s.active >= limit {
                return;
            }
            let k = s.frames.len();
            if let Err(e) = self.room_for_body(i, 0) {
                // No room for another item: the others stop, and the construct fails.
                let frames = s.frames.clone();
                for other in frames {
                    if self.frames[other].state == FrameState::Active {
                        self.cancel_frame(other, "the run reached its limit of step instances", now, out);
                    }
                }
                return self.finish_construct(i, Err(e), now, out);
            }
            let Some(Construct::ForEach(s)) = &self.insts[i].construct else { return };
            let bindings = [(bind.clone(), s.items[k].clone()), (index_bind.clone(), json!(k))];
            let loc = self.body_of(i, 0);
            let prefix = format!("{}[{k}].", self.insts[i].path);
            let frame = self.open_frame(Some(i), loc, prefix, bindings);
            if let Some(Construct::ForEach(s)) = &mut self.insts[i].construct {
                s.frames.push(frame);
                s.active += 1;
            }
        }
    }

    /// Something changed in frame `f`: see whether it, or the construct that opened it,
    /// is over.
    pub(super) fn settle(&mut self, f: FrameId, now: Millis, out: &mut Vec<Effect>) {
        if self.frames[f].state != FrameState::Active {
            return;
        }
        let Some(o) = self.frames[f].owner else {
            if self.frame_finished(f) {
                self.complete(now, out);
            }
            return;
        };
        let rule = match &self.def(o).kind {
            Kind::Race { winner, .. } => Rule::Race(winner.clone()),
            Kind::Fallback { .. } => Rule::Fallback,
            Kind::Parallel { min_successes, .. } => Rule::Parallel(*min_successes),
            Kind::Pipeline { .. } => Rule::Pipeline,
            _ => Rule::Body,
        };
        match rule {
            Rule::Body => {
                if self.frame_finished(f) {
                    self.frames[f].state = FrameState::Over;
                    let result = self.body_result(o, f);
                    self.body_over(o, f, result, now, out);
                }
            }
            Rule::Race(winner) => self.settle_race(o, f, winner, now, out),
            Rule::Fallback => self.settle_fallback(o, f, now, out),
            Rule::Parallel(min) => self.settle_parallel(o, f, min, now, out),
            Rule::Pipeline => self.settle_pipeline(o, f, now, out),
        }
    }

    /// A body's result: the construct's `output` template read in the body's frame, or
    /// what the body produced.
    fn body_result(&self, o: InstId, f: FrameId) -> Result<Value, ToolError> {
        let template = match &self.def(o).kind {
            Kind::ForEach { output, .. } | Kind::Loop { output, .. } => output.as_ref(),
            _ => None,
        };
        match template {
            Some(t) => t
                .resolve(&SkippedAsNull(&self.view(f)))
                .map_err(|e| ToolError::new(format!("output: {e}")).with_code(codes::BAD_PARAMS).permanent()),
            None => Ok(self.body_value(f)),
        }
    }

    /// A step of strict frame `f` failed for good: the body ends now.
    pub(super) fn body_failed(&mut self, f: FrameId, path: &str, error: ToolError, now: Millis, out: &mut Vec<Effect>) {
        self.cancel_frame(f, &format!("`{path}` failed"), now, out);
        let Some(o) = self.frames[f].owner else { return };
        let mut wrapped = ToolError::new(format!("`{path}` failed: {}", error.message)).permanent();
        wrapped.code = error.code.or_else(|| Some(codes::BODY_FAILED.to_owned()));
        self.body_over(o, f, Err(wrapped), now, out);
    }

    /// Body frame `f` of construct `o` ended with `result`.
    fn body_over(
        &mut self,
        o: InstId,
        f: FrameId,
        result: Result<Value, ToolError>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        // Matched by kind, not cloned: a `for_each`'s state is as large as its items.
        let iteration = match &self.insts[o].construct {
            Some(Construct::ForEach(_)) => return self.item_over(o, f, result, now, out),
            Some(Construct::Single { .. }) => return self.finish_construct(o, result, now, out),
            Some(Construct::Loop { iteration, .. }) => *iteration,
            None => return,
        };
        let value = match result {
            Ok(v) => v,
            Err(mut e) => {
                e.message = format!("iteration {iteration}: {}", e.message);
                return self.finish_construct(o, Err(e), now, out);
            }
        };
        let Kind::Loop { until, max_iterations, .. } = &self.def(o).kind else { return };
        let max = *max_iterations;
        match until.eval(&self.view(f)) {
            Ok(true) => self.finish_construct(o, Ok(value), now, out),
            Ok(false) if iteration + 1 >= max => {
                let message = format!("`until` did not hold within {max} iterations");
                let error = ToolError::new(message).with_code(codes::MAX_ITERATIONS).permanent();
                self.finish_construct(o, Err(error), now, out);
            }
            Ok(false) => self.open_iteration(o, iteration + 1, value, now, out),
            Err(e) => {
                let error = ToolError::new(format!("until: {e}")).with_code(codes::CONDITION).permanent();
                self.finish_construct(o, Err(error), now, out);
            }
        }
    }

    fn item_over(
        &mut self,
        o: InstId,
        f: FrameId,
        result: Result<Value, ToolError>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Kind::ForEach { max_failures, .. } = &self.def(o).kind else { return };
        let max_failures = *max_failures;
        let Some(Construct::ForEach(s)) = &mut self.insts[o].construct else { return };
        // Frames are numbered in the order they open, so items' frames are sorted.
        let Ok(k) = s.frames.binary_search(&f) else { return };
        s.active -= 1;
        s.done += 1;
        match result {
            Ok(value) => s.results[k] = value,
            Err(error) => {
                s.failures += 1;
                s.results[k] = error_value(&error);
                if s.failures > max_failures {
                    let frames = s.frames.clone();
                    let reason = format!("item {k} failed");
                    for other in frames {
                        if self.frames[other].state == FrameState::Active {
                            self.cancel_frame(other, &reason, now, out);
                        }
                    }
                    let mut e = error;
                    e.message = format!("item {k}: {}", e.message);
                    if max_failures > 0 {
                        e.message = format!("{} (more than {max_failures} items failed)", e.message);
                    }
                    return self.finish_construct(o, Err(e), now, out);
                }
            }
        }
        self.feed(o, now, out);
    }

    fn settle_race(
        &mut self,
        o: InstId,
        f: FrameId,
        winner: weft_lang::definition::Winner,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        use weft_lang::definition::Winner;
        let branches = self.frames[f].insts.clone();
        let completed = |run: &Run, i: &InstId| run.insts[*i].state.status == StepStatus::Completed;
        let best = match &winner {
            Winner::First => branches
                .iter()
                .copied()
                .filter(|i| completed(self, i))
                .min_by_key(|&i| self.insts[i].state.completed_order),
            Winner::Max(field) | Winner::Min(field) => {
                if !self.frame_finished(f) {
                    return;
                }
                let scored = branches.iter().filter(|i| completed(self, i)).filter_map(|&i| {
                    let output = self.insts[i].state.output.as_ref()?;
                    Some((field_number(output, field)?, i))
                });
                let pick = if matches!(winner, Winner::Max(_)) {
                    scored.max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
                } else {
                    scored.min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                };
                pick.map(|(_, i)| i)
            }
        };
        if let Some(w) = best {
            let reason = format!("`{}` won the race", self.insts[w].path);
            self.cancel_frame(f, &reason, now, out);
            let output = self.insts[w].state.output.clone().unwrap_or(Value::Null);
            return self.finish_construct(o, Ok(output), now, out);
        }
        if self.frame_finished(f) {
            self.frames[f].state = FrameState::Over;
            let why = match &winner {
                Winner::First => "every branch failed".to_owned(),
                Winner::Max(field) | Winner::Min(field) => format!("no branch succeeded with a number at `{field}`"),
            };
            let error = ToolError::new(format!("{why}: {}", self.failures(f))).with_code(codes::BODY_FAILED);
            self.finish_construct(o, Err(error.permanent()), now, out);
        }
    }

    fn settle_fallback(&mut self, o: InstId, f: FrameId, now: Millis, out: &mut Vec<Effect>) {
        let cursor = self.frames[f].cursor;
        let Some(&i) = self.frames[f].insts.get(cursor) else { return };
        match self.insts[i].state.status {
            StepStatus::Completed => {
                self.frames[f].state = FrameState::Over;
                let reason = format!("`{}` succeeded", self.insts[i].path);
                let later: Vec<InstId> = self.frames[f].insts[cursor + 1..].to_vec();
                for rest in later {
                    self.skip_inst(rest, reason.clone(), now, out);
                }
                let output = self.insts[i].state.output.clone().unwrap_or(Value::Null);
                self.finish_construct(o, Ok(output), now, out);
            }
            status if status.is_terminal() => {
                self.frames[f].cursor += 1;
                if self.frames[f].cursor < self.frames[f].insts.len() {
                    self.dirty.insert(f);
                    return;
                }
                self.frames[f].state = FrameState::Over;
                let message = format!("every alternative failed: {}", self.failures(f));
                self.finish_construct(
                    o,
                    Err(ToolError::new(message).with_code(codes::BODY_FAILED).permanent()),
                    now,
                    out,
                );
            }
            _ => {}
        }
    }

    fn settle_parallel(&mut self, o: InstId, f: FrameId, min: u32, now: Millis, out: &mut Vec<Effect>) {
        let insts = &self.frames[f].insts;
        let total = insts.len();
        let ok = insts.iter().filter(|&&i| self.insts[i].state.status == StepStatus::Completed).count();
        let lost = insts
            .iter()
            .filter(|&&i| {
                self.insts[i].state.status.is_terminal() && self.insts[i].state.status != StepStatus::Completed
            })
            .count();
        let min = (min as usize).min(total);
        if total - lost < min {
            let message = format!("{} of {total} steps cannot succeed and {min} must: {}", lost, self.failures(f));
            self.cancel_frame(f, "the group can no longer succeed", now, out);
            self.finish_construct(o, Err(ToolError::new(message).with_code(codes::BODY_FAILED).permanent()), now, out);
        } else if ok + lost == total {
            self.frames[f].state = FrameState::Over;
            let output = self.body_outputs(f);
            self.finish_construct(o, Ok(output), now, out);
        }
    }

    fn settle_pipeline(&mut self, o: InstId, f: FrameId, now: Millis, out: &mut Vec<Effect>) {
        let cursor = self.frames[f].cursor;
        let Some(&i) = self.frames[f].insts.get(cursor) else { return };
        if !self.insts[i].state.status.is_terminal() {
            return;
        }
        // A skipped stage passes `previous` on unchanged.
        let id = self.def(i).id.clone();
        if let Some(value) = self.frames[f].ctx.values.get(&id).cloned() {
            self.frames[f].ctx.set("previous", value);
        }
        self.frames[f].cursor += 1;
        if self.frames[f].cursor < self.frames[f].insts.len() {
            self.dirty.insert(f);
            return;
        }
        self.frames[f].state = FrameState::Over;
        let output = self.frames[f].ctx.values.get("previous").cloned().unwrap_or(Value::Null);
        self.finish_construct(o, Ok(output), now, out);
    }

    /// "`a`: why; `b`: why" for the steps of frame `f` that did not succeed.
    fn failures(&self, f: FrameId) -> String {
        let parts: Vec<String> = self.frames[f]
            .insts
            .iter()
            .filter(|&&i| self.insts[i].state.status != StepStatus::Completed)
            .map(|&i| {
                let reason = self.insts[i].state.reason.as_deref().unwrap_or("no reason recorded");
                format!("`{}`: {reason}", self.insts[i].path)
            })
            .collect();
        parts.join("; ")
    }

    /// Construct `o` is over: it completes with the value or fails with the error.
    fn finish_construct(&mut self, o: InstId, result: Result<Value, ToolError>, now: Millis, out: &mut Vec<Effect>) {
        let path = self.insts[o].path.clone();
        self.drop_timers(&path);
        let worker = Some("coordinator".to_owned());
        match result {
            Ok(value) => {
                self.insts[o].state.end_attempt(worker, None, now, Ok(()));
                self.complete_inst(o, value, "coordinator".to_owned(), now, out);
            }
            Err(error) => {
                self.insts[o].state.end_attempt(worker, None, now, Err(error.clone()));
                self.fail_inst(o, error, now, out);
            }
        }
    }
}

/// The number at `field` (`score`, `quote.price`, `[0].n`) of a branch's output.
fn field_number(output: &Value, field: &str) -> Option<f64> {
    let path = Path::parse(&format!("x.{field}")).or_else(|_| Path::parse(&format!("x{field}"))).ok()?;
    let scope: serde_json::Map<String, Value> = [("x".to_owned(), output.clone())].into_iter().collect();
    resolve_path(&path, &scope).ok()?.as_f64()
}
