//! What a run's spans (and metrics) say, as data: the machine knows when each attempt,
//! construct and `for_each` item or `loop` iteration began and ended, and where it sits in
//! the run's tree; the actor tells those spans once they are over (`run_actor/spans.rs`)
//! and counts what they cost (`metrics`).
//!
//! Every such span is named by a *label* (`step/charge#2`, `frame/pages[3].`) from which
//! every coordinator derives the same span id, so a dispatch made before a restart and the
//! step span told after it agree on their parent.

use weft_lang::plan::Kind;
use weft_protocol::wire::Millis;

use super::Run;
use super::frame::Frame;
use super::ids::{FrameId, InstId};

/// A span that ended, told by the machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanFacts {
    /// Where its id comes from.
    pub label: String,
    /// What it is called.
    pub name: String,
    /// When it began and ended.
    pub start_ms: Millis,
    /// When it ended.
    pub end_ms: Millis,
    /// The label of the span it is under; none: under the run's own context.
    pub parent: Option<String>,
    /// Its attributes.
    pub attributes: Vec<(&'static str, String)>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Run {
    /// The tool of the task step at `path`.
    pub(crate) fn tool_of(&self, path: &str) -> Option<&str> {
        match &self.def(self.index(path)?).kind {
            Kind::Task { tool, .. } => Some(tool),
            _ => None,
        }
    }

    /// The tool and dispatch time of attempt `attempt` of the task step at `path`, while
    /// that attempt waits for its result (none once it is answered, timed out or gone).
    pub(crate) fn awaiting(&self, path: &str, attempt: u32) -> Option<(&str, Millis)> {
        let i = self.index(path)?;
        let a = self.insts[i].state.attempts.get(attempt.checked_sub(1)? as usize)?;
        match &self.def(i).kind {
            Kind::Task { tool, .. } if a.finished_ms.is_none() => Some((tool, a.dispatched_ms)),
            _ => None,
        }
    }

    /// The label of attempt `attempt` of the step instance at `path`.
    pub(crate) fn attempt_label(path: &str, attempt: u32) -> String {
        format!("step/{path}#{attempt}")
    }

    fn frame_label(frame: &Frame) -> String {
        format!("frame/{}", frame.prefix)
    }

    /// The label of the span instance `i`'s spans go under: an item's or iteration's, the
    /// construct's for other bodies, none at the top level.
    fn parent_label(&self, i: InstId) -> Option<String> {
        let f = self.insts[i].frame;
        let o = self.frames[f].owner?;
        Some(match self.def(o).kind {
            Kind::ForEach { .. } | Kind::Loop { .. } => Run::frame_label(&self.frames[f]),
            _ => Run::attempt_label(&self.insts[o].path, self.insts[o].state.attempt),
        })
    }

    /// The label of the span a dispatch of (or a child run started by) `path`'s current
    /// attempt goes under.
    pub(crate) fn current_label(&self, path: &str) -> Option<String> {
        let i = self.index(path)?;
        Some(Run::attempt_label(path, self.insts[i].state.attempt))
    }

    /// The current attempt of the step at `path` (0 before its first).
    pub(crate) fn attempt_of(&self, path: &str) -> u32 {
        self.index(path).map_or(0, |i| self.insts[i].state.attempt)
    }

    /// The spans that end with attempt `attempt` of the step at `path`: its own, and for a
    /// `for_each` or a `loop`, one per item or iteration it opened.
    pub(crate) fn ended_spans(&self, path: &str, attempt: u32, now: Millis) -> Vec<SpanFacts> {
        let Some(i) = self.index(path) else { return Vec::new() };
        let state = &self.insts[i].state;
        let Some(a) = attempt.checked_sub(1).and_then(|k| state.attempts.get(k as usize)) else { return Vec::new() };
        let step = self.def(i);
        let end_ms = a.finished_ms.unwrap_or(now).max(a.dispatched_ms);
        let mut attributes = vec![
            ("weft.run_id", self.id.to_string()),
            ("weft.workflow", self.plan.name.clone()),
            ("weft.step_id", path.to_owned()),
            ("weft.attempt", attempt.to_string()),
            ("weft.kind", step.kind.keyword().to_owned()),
        ];
        if let Some(tool) = step.tool() {
            attributes.push(("weft.tool", tool.to_owned()));
        }
        if let Some(worker) = &a.worker {
            attributes.push(("weft.worker", worker.clone()));
        }
        if let Some(started) = a.started_ms {
            attributes.push(("weft.queue_ms", started.saturating_sub(a.dispatched_ms).to_string()));
        }
        // OpenTelemetry's GenAI conventions, so trace UIs that know them show the tokens.
        if let Some(usage) = &a.usage {
            attributes.push(("gen_ai.response.model", usage.model.clone()));
            attributes.push(("gen_ai.usage.input_tokens", usage.prompt_tokens.to_string()));
            attributes.push(("gen_ai.usage.output_tokens", usage.completion_tokens.to_string()));
        }
        if let Some(cost) = a.cost {
            attributes.push(("weft.cost", cost.to_string()));
        }
        let name = match step.tool() {
            Some(_) => format!("step {path}"),
            None => format!("{} {path}", step.kind.keyword()),
        };
        let label = Run::attempt_label(path, attempt);
        let mut spans = Vec::new();
        if matches!(step.kind, Kind::ForEach { .. } | Kind::Loop { .. }) {
            for f in self.opened_by(i) {
                spans.push(self.frame_span(f, &label, a.dispatched_ms, end_ms));
            }
        }
        spans.push(SpanFacts {
            label,
            name,
            start_ms: a.dispatched_ms,
            end_ms,
            parent: self.parent_label(i),
            attributes,
            error: a.error.as_ref().map(ToString::to_string),
        });
        spans
    }

    /// The span of an item or iteration: from its first step's dispatch to its last one's
    /// end (within its construct's).
    fn frame_span(&self, f: FrameId, construct: &str, from: Millis, to: Millis) -> SpanFacts {
        let frame = &self.frames[f];
        let attempts = frame.insts.iter().flat_map(|&i| self.insts[i].state.attempts.iter());
        let (mut start, mut end) = (Millis::MAX, 0);
        for a in attempts {
            start = start.min(a.dispatched_ms);
            end = end.max(a.finished_ms.unwrap_or(to));
        }
        let (start, end) = if start == Millis::MAX { (from, from) } else { (start.max(from), end.clamp(start, to)) };
        let name = frame.prefix.trim_end_matches('.').to_owned();
        SpanFacts {
            label: Run::frame_label(frame),
            name,
            start_ms: start,
            end_ms: end,
            parent: Some(construct.to_owned()),
            attributes: vec![
                ("weft.run_id", self.id.to_string()),
                ("weft.step_id", frame.prefix.trim_end_matches('.').to_owned()),
            ],
            error: None,
        }
    }
}
