//! Steps that wait inside the coordinator instead of running on a worker: `wait` (a
//! duration or a time) and `signal` (data sent to the run, e.g. a human approval). Their
//! deadlines are timers like any other, so they survive a coordinator restart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use weft_lang::plan::{Kind, WaitFor};
use weft_protocol::wire::{EventKind, Millis, SignalRecord, StepStatus, ToolError, codes};

use super::ids::InstId;
use super::{Effect, Ignored, Run, Timer};

impl Run {
    /// Starts a waiting step: arms its timer, or completes it at once with a signal that
    /// arrived before it was reached.
    pub(super) fn start_waiting(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) {
        self.begin_attempt(i, now, out);
        let id = self.insts[i].path.clone();
        let kind = self.def(i).kind.clone();
        let f = self.insts[i].frame;
        match kind {
            Kind::Wait(WaitFor::Duration(d)) => self.schedule(out, Timer::WaitOver { step: id }, d, now),
            Kind::Wait(WaitFor::Until(template)) => {
                let until = template.resolve(&self.view(f)).map_err(|e| e.to_string()).and_then(|v| match v {
                    Value::String(text) => humantime::parse_rfc3339_weak(&text)
                        .map_err(|e| format!("`until` is not a time: {text:?}: {e}"))
                        .map(|t| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)),
                    other => Err(format!("`until` must be a time such as \"2026-12-01T09:00:00Z\", found {other}")),
                });
                match until {
                    Ok(at) => {
                        let after = Duration::from_millis(at.saturating_sub(now));
                        self.schedule(out, Timer::WaitOver { step: id }, after, now);
                    }
                    Err(message) => self.end_waiting(i, Err(ToolError::new(message).permanent()), now, out),
                }
            }
            Kind::Signal { name, timeout, .. } => {
                if let Some(data) = self.signals.remove(&name) {
                    self.end_waiting(i, Ok(data), now, out);
                } else if let Some(after) = timeout {
                    self.schedule(out, Timer::SignalTimeout { step: id }, after, now);
                }
            }
            _ => {}
        }
    }

    /// A signal arrived: the first step waiting for it takes it, or it is kept for the
    /// step that will.
    pub(super) fn on_signal(&mut self, name: String, data: Value, now: Millis, out: &mut Vec<Effect>) {
        let what = || format!("signal `{name}`");
        if self.on_approval(&name, &data, now, out) {
            return;
        }
        if !self.plan.all_steps().iter().any(|s| matches!(&s.kind, Kind::Signal { name: n, .. } if *n == name)) {
            let ignored = Ignored::unexpected(what(), "no `signal` step of the workflow waits for that name");
            return out.push(Effect::Ignored(ignored));
        }
        if self.signals.contains_key(&name) {
            // The first one is kept for the step that will take it, not overwritten.
            let ignored = Ignored::stale(what(), "one of that name already waits for its step");
            return out.push(Effect::Ignored(ignored));
        }
        self.emit(out, now, EventKind::SignalReceived { name: name.clone() });
        let waiting = self.inst_ids().find(|&i| {
            self.insts[i].state.status == StepStatus::Running
                && matches!(&self.def(i).kind, Kind::Signal { name: n, .. } if *n == name)
        });
        match waiting {
            Some(i) => {
                let id = self.insts[i].path.clone();
                self.fired(&Timer::SignalTimeout { step: id });
                self.end_waiting(i, Ok(data), now, out);
            }
            None => {
                self.signals.insert(name, data);
            }
        }
    }

    /// The signals the workflow's `signal` steps wait for, with their schemas and whether
    /// data sent for one is held for its step.
    pub(super) fn signal_records(&self) -> BTreeMap<String, SignalRecord> {
        let mut signals = BTreeMap::new();
        for step in self.plan.all_steps() {
            if let Kind::Signal { name, schema, .. } = &step.kind {
                let held = self.signals.contains_key(name);
                signals.entry(name.clone()).or_insert(SignalRecord { schema: schema.clone(), held });
            }
        }
        for (name, schema) in self.approval_signals() {
            signals.entry(name).or_insert(SignalRecord { schema: Some(schema), held: false });
        }
        signals
    }

    /// A waiting step's timer fired.
    pub(super) fn on_waiting_timer(&mut self, timer: &Timer, now: Millis, out: &mut Vec<Effect>) {
        let (Timer::WaitOver { step } | Timer::SignalTimeout { step }) = timer else { return };
        let Some(i) = self.index(step) else { return };
        if self.insts[i].state.status != StepStatus::Running {
            return;
        }
        let started = self.insts[i].state.attempts.last().map_or(now, |a| a.dispatched_ms);
        let outcome = match (&self.def(i).kind, timer) {
            (Kind::Wait(_), _) => Ok(json!({"waited_ms": now.saturating_sub(started)})),
            (Kind::Signal { default: Some(default), .. }, _) => Ok(default.clone()),
            (Kind::Signal { name, timeout, .. }, _) => {
                Err(ToolError::new(format!("no signal `{name}` within {:?}", timeout.unwrap_or_default()))
                    .with_code(codes::TIMEOUT)
                    .permanent())
            }
            _ => return,
        };
        self.end_waiting(i, outcome, now, out);
    }

    fn end_waiting(&mut self, i: InstId, outcome: Result<Value, ToolError>, now: Millis, out: &mut Vec<Effect>) {
        let worker = "coordinator".to_owned();
        match outcome {
            Ok(output) => {
                self.insts[i].state.end_attempt(Some(worker.clone()), None, now, Ok(()));
                self.complete_inst(i, output, worker, now, out);
            }
            Err(error) => {
                self.insts[i].state.end_attempt(Some(worker), None, now, Err(error.clone()));
                self.fail_inst(i, error, now, out);
            }
        }
    }
}
