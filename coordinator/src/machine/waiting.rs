//! Steps that wait inside the coordinator instead of running on a worker: `wait` (a
//! duration or a time) and `signal` (data sent to the run, e.g. a human approval). Their
//! deadlines are timers like any other, so they survive a coordinator restart.

use std::time::Duration;

use serde_json::{Value, json};
use weft_shared::plan::{Kind, WaitFor};
use weft_shared::wire::{EventKind, Millis, StepStatus, ToolError, codes};

use super::{Effect, Run, Timer, step};

impl Run {
    /// Starts a waiting step: arms its timer, or completes it at once with a signal that
    /// arrived before it was reached.
    pub(super) fn start_waiting(&mut self, i: usize, now: Millis, out: &mut Vec<Effect>) {
        let step = &self.plan.steps[i];
        let id = step.id.clone();
        let kind = step.kind.clone();
        let state = &mut self.steps[i];
        state.attempt = 1;
        state.status = StepStatus::Running;
        state.attempts.push(step::new_attempt(1, now));
        self.emit(out, now, EventKind::StepStarted { step_id: id.clone(), attempt: 1 });
        match kind {
            Kind::Wait(WaitFor::Duration(d)) => self.schedule(out, Timer::WaitOver { step: id }, d, now),
            Kind::Wait(WaitFor::Until(template)) => {
                let until = template.resolve(&self.context).map_err(|e| e.to_string()).and_then(|v| match v {
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
        self.emit(out, now, EventKind::SignalReceived { name: name.clone() });
        let waiting = (0..self.steps.len()).find(|&i| {
            self.steps[i].status == StepStatus::Running
                && matches!(&self.plan.steps[i].kind, Kind::Signal { name: n, .. } if *n == name)
        });
        match waiting {
            Some(i) => {
                let id = self.plan.steps[i].id.clone();
                self.fired(&Timer::SignalTimeout { step: id });
                self.end_waiting(i, Ok(data), now, out);
            }
            None => {
                self.signals.insert(name, data);
            }
        }
    }

    /// A waiting step's timer fired.
    pub(super) fn on_waiting_timer(&mut self, timer: &Timer, now: Millis, out: &mut Vec<Effect>) {
        let (Timer::WaitOver { step } | Timer::SignalTimeout { step }) = timer else { return };
        let Some(i) = self.index(step) else { return };
        if self.steps[i].status != StepStatus::Running {
            return;
        }
        let started = self.steps[i].attempts.last().map_or(now, |a| a.dispatched_ms);
        let outcome = match (&self.plan.steps[i].kind, timer) {
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

    fn end_waiting(&mut self, i: usize, outcome: Result<Value, ToolError>, now: Millis, out: &mut Vec<Effect>) {
        let id = self.plan.steps[i].id.clone();
        match outcome {
            Ok(output) => {
                self.steps[i].end_attempt(Some("coordinator".into()), None, now, Ok(()));
                self.completions += 1;
                self.steps[i].complete(output.clone(), self.completions);
                self.context.set(id.clone(), output);
                self.emit(out, now, EventKind::StepCompleted { step_id: id, worker: "coordinator".into() });
            }
            Err(error) => {
                self.steps[i].end_attempt(Some("coordinator".into()), None, now, Err(error.clone()));
                self.fail_step(i, error, now, out);
            }
        }
    }
}
