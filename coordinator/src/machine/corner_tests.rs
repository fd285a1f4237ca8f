//! The corners a new user found (issue "Right in every corner"), each driven through the
//! machine: a skipped step in the output, sagas on timeout and cancel, and a record that
//! tells the truth about timed-out, cancelled and never-started steps.

use serde_json::{Value, json};
use weft_protocol::wire::{RunStatus, StepStatus, ToolError};

use super::tests::{dispatched, err, events, ok, only_ignored, run, take};
use super::*;

#[test]
fn a_skipped_step_in_the_output_reads_as_null() {
    let mut r = run(
        json!({"name": "alerts", "steps": [
            {"id": "weather", "tool": "t"},
            {"id": "cold_alert", "tool": "t", "when": {"lt": ["{weather.temp}", 0]}},
            {"id": "each", "for_each": {"items": [1], "output": {"alert": "{cold}"},
             "do": [{"id": "cold", "tool": "t", "when": {"lt": ["{weather.temp}", 0]}}]}}
        ], "output": {"temp": "{weather.temp}", "alert": "{cold_alert}", "items": "{each}"}}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(ok(&take(&t, "weather"), json!({"temp": 12})), 1);
    assert!(effects.contains(&Effect::Finished), "{effects:?}");
    let record = r.record();
    assert_eq!(record.status, RunStatus::Completed, "{:?}", record.errors);
    assert_eq!(record.output, Some(json!({"temp": 12, "alert": null, "items": [{"alert": null}]})));
}

fn saga(timeout: Option<&str>) -> Run {
    let mut def = json!({"name": "trip", "on_failure": "compensate", "steps": [
        {"id": "flight", "tool": "book", "compensate": {"tool": "cancel_flight", "params": {"id": "{flight.id}"}}},
        {"id": "hotel", "tool": "book", "params": {"after": "{flight.id}"}}
    ]});
    if let Some(t) = timeout {
        def["timeout"] = json!(t);
    }
    run(def, Value::Null)
}

#[test]
fn a_run_that_times_out_under_compensate_undoes_what_completed_and_ends_timed_out() {
    let mut r = saga(Some("5s"));
    let t = dispatched(&r.apply(Input::Start, 0));
    let t = dispatched(&r.apply(ok(&take(&t, "flight"), json!({"id": "F1"})), 10));
    assert_eq!(t[0].step_id, "hotel");
    // The hotel hangs; the run's time is up.
    r.apply(Input::Timer { timer: Timer::RunTimeout }, 5000);
    assert_eq!(r.status(), RunStatus::Compensating);
    // The hotel answers the cancel; then the flight is undone.
    let effects = r.apply(err(&t[0], ToolError::new("cancelled")), 5001);
    let undo = dispatched(&effects);
    assert_eq!((undo[0].tool.as_str(), undo[0].params.clone()), ("cancel_flight", json!({"id": "F1"})));
    let effects = r.apply(ok(&undo[0], json!({})), 5002);
    assert!(effects.contains(&Effect::Finished));
    let record = r.record();
    assert_eq!(record.status, RunStatus::TimedOut);
    assert_eq!(record.steps["flight"].compensation.as_ref().map(|c| c.status), Some(StepStatus::Completed));
}

#[test]
fn a_cancel_with_compensate_undoes_what_completed_and_ends_cancelled() {
    let mut r = saga(None);
    let t = dispatched(&r.apply(Input::Start, 0));
    let t = dispatched(&r.apply(ok(&take(&t, "flight"), json!({"id": "F1"})), 10));
    r.apply(Input::Cancel { reason: "changed my mind".into(), compensate: true }, 20);
    let undo = dispatched(&r.apply(err(&t[0], ToolError::new("cancelled")), 21));
    assert_eq!(undo[0].tool, "cancel_flight");
    r.apply(ok(&undo[0], json!({})), 22);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(record.errors, ["cancelled: changed my mind"]);
    assert_eq!(record.steps["flight"].compensation.as_ref().map(|c| c.status), Some(StepStatus::Completed));
}

#[test]
fn timed_out_and_cancelled_attempts_keep_their_worker_and_start_and_are_not_retryable() {
    let mut r = run(
        json!({"name": "slow", "steps": [
            {"id": "slow", "tool": "sleep", "timeout": "1s", "retry": {"max_attempts": 2, "backoff": "10ms"}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(Input::Timer { timer: Timer::StepTimeout { step: "slow".into(), attempt: 1 } }, 1000);
    // The worker answers after the cancel, while the run goes on: its name and start are
    // kept, nothing else.
    let mut late = err(&t[0], ToolError::new("cancelled"));
    if let Input::Result { result } = &mut late {
        (result.worker, result.started_ms) = ("w7".into(), 3);
    }
    r.apply(late, 1001);
    let record = r.record();
    let a = &record.steps["slow"].attempts[0];
    assert_eq!((a.worker.as_deref(), a.started_ms, a.finished_ms), (Some("w7"), Some(3), Some(1000)));
    assert_eq!(a.error.as_ref().and_then(|e| e.code.as_deref()), Some("TIMEOUT"));

    // A run cancelled while a step runs: the attempt's error is CANCELLED, not retryable,
    // and the step that never started gets its own `step_cancelled`.
    let mut r = run(
        json!({"name": "c", "steps": [{"id": "a", "tool": "t"}, {"id": "b", "tool": "t", "params": {"x": "{a}"}}]}),
        Value::Null,
    );
    r.apply(Input::Start, 0);
    let effects = r.apply(Input::Cancel { reason: "stop".into(), compensate: false }, 5);
    let record = r.record();
    let error = record.steps["a"].attempts[0].error.clone().expect("an error");
    assert_eq!((error.code.as_deref(), error.retryable), (Some("CANCELLED"), false));
    let cancelled: Vec<String> = events(&effects)
        .into_iter()
        .filter_map(|e| if let EventKind::StepCancelled { step_id, .. } = e { Some(step_id) } else { None })
        .collect();
    assert_eq!(cancelled, ["a", "b"]);
}

#[test]
fn a_compensation_that_cannot_start_and_each_failed_attempt_are_in_the_record_and_the_events() {
    let mut r = run(
        json!({"name": "undo", "on_failure": "compensate", "steps": [
            {"id": "a", "tool": "t", "compensate": {"tool": "undo_a", "params": {"x": "{a.missing.deep}"}}},
            {"id": "b", "tool": "t", "compensate": {"tool": "undo_b", "retry": {"max_attempts": 2, "backoff": "10ms"}}},
            {"id": "c", "tool": "t", "params": {"after": ["{a}", "{b}"]}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&take(&t, "a"), json!({})), 1);
    let t2 = dispatched(&r.apply(ok(&take(&t, "b"), json!({})), 2));
    // `c` fails: `b` is undone first (it completed last), and its first try fails.
    let undo = dispatched(&r.apply(err(&t2[0], ToolError::new("no").permanent()), 3));
    assert_eq!(undo[0].tool, "undo_b");
    let effects = r.apply(err(&undo[0], ToolError::new("flaky")), 4);
    let failed = |effects: &[Effect]| -> Vec<(String, u32, bool)> {
        events(effects)
            .into_iter()
            .filter_map(|e| match e {
                EventKind::CompensationFailed { step_id, attempt, retrying, .. } => Some((step_id, attempt, retrying)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(failed(&effects), [("b".to_owned(), 1, true)]);
    let again =
        dispatched(&r.apply(Input::Timer { timer: Timer::CompensationRetry { step: "b".into(), attempt: 1 } }, 100));
    // `b` is undone; `a`'s compensation cannot resolve its params: an attempt that says so.
    let effects = r.apply(ok(&again[0], json!({})), 101);
    assert_eq!(failed(&effects), [("a".to_owned(), 1, false)]);
    let record = r.record();
    assert_eq!(record.status, RunStatus::CompensationFailed);
    let undo_a = record.steps["a"].compensation.clone().expect("a's compensation");
    assert_eq!(undo_a.attempts.len(), 1);
    assert_eq!(undo_a.attempts[0].error.as_ref().and_then(|e| e.code.as_deref()), Some("BAD_PARAMS"));
    assert_eq!(record.steps["b"].compensation.as_ref().map(|c| c.attempts.len()), Some(2));
}

#[test]
fn templates_read_the_step_s_idempotency_key_and_attempt() {
    let mut r = run(
        json!({"name": "hook", "steps": [
            {"id": "notify", "tool": "http", "retry": {"max_attempts": 2, "backoff": "10ms"},
             "params": {"headers": {"X-Key": "{step.idempotency_key}"}, "json": {"try": "{step.attempt}"}},
             "compensate": {"tool": "http", "params": {"key": "{step.idempotency_key}"}}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let key = format!("{}/notify", Uuid::nil());
    assert_eq!(t[0].params, json!({"headers": {"X-Key": key}, "json": {"try": 1}}));
    r.apply(err(&t[0], ToolError::new("flaky")), 1);
    let again = dispatched(&r.apply(Input::Timer { timer: Timer::Retry { step: "notify".into(), attempt: 1 } }, 100));
    assert_eq!(again[0].params["json"], json!({"try": 2}), "a retry reads its own attempt");
    assert_eq!(again[0].idempotency_key, key, "the key stays");
}

/// The grant of an earlier ask, applied again while the step waits for the same pool (a
/// duplicate entry, a stray told once more), is not the answer to the ask that waits: the
/// step would run without units (found by the property test: a pool of two let a third in).
#[test]
fn a_grant_answers_only_the_ask_it_was_made_for() {
    let mut r = run(
        json!({"name": "gpu", "steps": [{"id": "a", "tool": "t", "resources": {"cpu": 1, "gpu": 1}}]}),
        Value::Null,
    );
    let asks = |effects: &[Effect]| -> Vec<PoolClaim> {
        effects.iter().filter_map(|e| if let Effect::Acquire(c) = e { Some(c.clone()) } else { None }).collect()
    };
    let cpu = asks(&r.apply(Input::Start, 0)).pop().expect("asks for cpu");
    let granted = |claim: &PoolClaim, ask: u64| Input::Granted {
        step: claim.step.clone(),
        attempt: claim.attempt,
        pool: claim.pool.clone(),
        ask: Some(ask),
    };
    let gpu = asks(&r.apply(granted(&cpu, cpu.ask), 1)).pop().expect("then for gpu");
    assert_ne!(gpu.ask, cpu.ask, "each ask has its number");
    // A gpu grant carrying the cpu ask's number: the answer to another ask.
    let stale = r.apply(granted(&PoolClaim { pool: "gpu".into(), ..cpu.clone() }, cpu.ask), 2);
    assert!(only_ignored(&stale), "not dispatched, and its place in the queue kept (no release): {stale:?}");
    let go = r.apply(granted(&gpu, gpu.ask), 3);
    assert_eq!(super::tests::ids(&dispatched(&go)), ["a"], "the answer to its ask: dispatched");
}

#[test]
fn a_step_with_resources_waits_for_its_units_and_returns_them() {
    let mut r = run(
        json!({"name": "gpu", "steps": [
            {"id": "a", "tool": "t", "resources": {"gpu": 1, "mem": 2}, "priority": 3,
             "retry": {"max_attempts": 2, "backoff": "10ms"}},
            {"id": "b", "tool": "t"}
        ]}),
        Value::Null,
    );
    let effects = r.apply(Input::Start, 0);
    assert_eq!(super::tests::ids(&dispatched(&effects)), ["b"], "`a` waits for its pools");
    let asked: Vec<PoolClaim> =
        effects.iter().filter_map(|e| if let Effect::Acquire(c) = e { Some(c.clone()) } else { None }).collect();
    assert_eq!(asked.len(), 1, "one pool at a time, in name order");
    assert_eq!((asked[0].pool.as_str(), asked[0].units, asked[0].priority), ("gpu", 1, 3));
    assert_eq!(r.record().steps["a"].reason.as_deref(), Some("waiting for 1 unit(s) of pool `gpu`"));
    // A grant for another pool, or another attempt, is returned at once.
    let stray = r.apply(Input::Granted { step: "a".into(), attempt: 1, pool: "mem".into(), ask: None }, 1);
    assert!(stray.iter().any(|e| matches!(e, Effect::Release(c) if c.pool == "mem")), "{stray:?}");
    let next = r.apply(Input::Granted { step: "a".into(), attempt: 1, pool: "gpu".into(), ask: None }, 2);
    assert!(next.iter().any(|e| matches!(e, Effect::Acquire(c) if c.pool == "mem")), "then the next pool: {next:?}");
    let go = r.apply(Input::Granted { step: "a".into(), attempt: 1, pool: "mem".into(), ask: None }, 3);
    let t = dispatched(&go);
    assert_eq!(super::tests::ids(&t), ["a"], "every pool granted: dispatched");
    // A grant told again (a takeover re-telling it) is not a stray: the running attempt
    // keeps its units. Returning them let a third step into a pool of two.
    for pool in ["gpu", "mem"] {
        let repeat = r.apply(Input::Granted { step: "a".into(), attempt: 1, pool: pool.into(), ask: None }, 3);
        assert!(!repeat.iter().any(|e| matches!(e, Effect::Release(_))), "{pool}: {repeat:?}");
        assert!(only_ignored(&repeat), "{repeat:?}");
    }
    // It fails: both pools come back, and the retry asks again.
    let failed = r.apply(err(&t[0], ToolError::new("flaky")), 4);
    let released: Vec<String> =
        failed.iter().filter_map(|e| if let Effect::Release(c) = e { Some(c.pool.clone()) } else { None }).collect();
    assert_eq!(released, ["gpu", "mem"]);
    let retry = r.apply(Input::Timer { timer: Timer::Retry { step: "a".into(), attempt: 1 } }, 100);
    assert!(retry.iter().any(|e| matches!(e, Effect::Acquire(c) if c.pool == "gpu" && c.attempt == 2)), "{retry:?}");
    // A cancel while it waits takes it out of the queue.
    let cancelled = r.apply(Input::Cancel { reason: "stop".into(), compensate: false }, 101);
    assert!(
        cancelled.iter().any(|e| matches!(e, Effect::Release(c) if c.pool == "gpu" && c.attempt == 2)),
        "{cancelled:?}"
    );
}
