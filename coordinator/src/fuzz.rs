//! Entry points for `weft-fuzz` (`tests/fuzz/`): the decoder of the run log, and the run
//! state machine driven by whatever a log may hold. Not an API: it follows the fuzzer.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;
use weft_lang::definition::WorkflowDef;
use weft_lang::limits::{Limits, RunLimits};
use weft_lang::validate;
use weft_protocol::wire::{Millis, Outcome, Task, TaskResult, ToolError};

use crate::log::{self, Decoded};
use crate::machine::{Effect, Input, Logged, Run, Timer};

/// Decodes `payload` as an entry of a run's log; whether it decoded.
pub fn log_entry(payload: &[u8]) -> bool {
    log::decode("weft.in.0.00000000-0000-0000-0000-000000000000", payload).is_ok()
}

/// Runs `definition` (if it compiles without a catalogue, within small limits) with
/// `input`. Each byte of `choices` picks the next input: an answer (ok, or an error, retryable
/// or not) to a task in flight, a timer the run armed (fired at or before its time), a
/// cancel, pause or resume, a signal, or the next entry of `forged` applied as it decodes
/// (results for any path and attempt, timers never armed, grants, children's ends). Ends with
/// a replay of every input applied. Returns how many inputs were applied; panics are what
/// the fuzzer looks for.
pub fn machine(definition: &str, input: Value, choices: &[u8], forged: &[Vec<u8>]) -> usize {
    let Ok(def) = WorkflowDef::from_json(definition) else { return 0 };
    let limits =
        Limits { run: RunLimits { max_instances: 5_000, max_items: 500, ..RunLimits::default() }, ..Limits::default() };
    let Ok(plan) = validate::compile_within(&def, None, &limits) else { return 0 };
    let plan = Arc::new(plan);
    let id = Uuid::from_u128(0x1d);
    let mut run = Run::new(id, plan.clone(), input.clone(), 0).with_limits(limits.run);
    let mut tasks: Vec<Task> = Vec::new();
    let mut timers: Vec<(Timer, Millis)> = Vec::new();
    let mut applied = Vec::new();
    let mut forged = forged.iter();
    let mut now: Millis = 1;
    let effects = run.apply(Input::Start, 0);
    take(effects, &mut tasks, &mut timers, 0);
    for &choice in choices {
        now += u64::from(choice % 7) * 250;
        let input = match choice % 8 {
            0..=2 if !tasks.is_empty() => {
                let task = tasks.remove(usize::from(choice) % tasks.len());
                let outcome = match choice % 3 {
                    0 => Outcome::Ok(Value::from(u64::from(choice))),
                    1 => Outcome::Err(ToolError::new("fuzzed")),
                    _ => Outcome::Err(ToolError::new("fuzzed").permanent()),
                };
                Input::Result {
                    result: TaskResult {
                        run_id: id,
                        step_id: task.step_id,
                        attempt: task.attempt,
                        compensation: task.compensation,
                        worker: "fuzz".into(),
                        started_ms: now.saturating_sub(u64::from(choice)),
                        finished_ms: now,
                        outcome,
                        usage: None,
                        token: task.token,
                    },
                }
            }
            3 if !timers.is_empty() => {
                let (timer, at) = timers.remove(usize::from(choice) % timers.len());
                // Mostly at its time; now and then early.
                if choice % 5 != 0 {
                    now = now.max(at);
                }
                Input::Timer { timer }
            }
            4 => match choice % 3 {
                0 => Input::Cancel { reason: "fuzz".into(), compensate: choice % 2 == 0 },
                1 => Input::Pause,
                _ => Input::resume(),
            },
            5 => {
                Input::Signal { name: ["go", "approve", ""][usize::from(choice) % 3].into(), data: Value::from(choice) }
            }
            _ => match forged.next().map(|bytes| log::decode("weft.in.0.x", bytes)) {
                Some(Ok(Decoded::Input(input))) => input,
                _ => continue,
            },
        };
        applied.push(Logged { input: input.clone(), at: now, seq: applied.len() as u64 + 1 });
        let effects = run.apply(input, now);
        take(effects, &mut tasks, &mut timers, now);
    }
    let count = applied.len();
    let (_replayed, _ignored) = Run::new(id, plan, input, 0).with_limits(limits.run).replay(0, applied);
    let _ = run.record();
    count
}

/// Keeps the tasks dispatched and the timers armed by `effects`, for the next choices.
fn take(effects: Vec<Effect>, tasks: &mut Vec<Task>, timers: &mut Vec<(Timer, Millis)>, now: Millis) {
    for effect in effects {
        match effect {
            Effect::Dispatch(task) => tasks.push(task),
            Effect::Schedule { timer, after } => {
                timers.push((timer, now.saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))));
            }
            _ => {}
        }
    }
}
