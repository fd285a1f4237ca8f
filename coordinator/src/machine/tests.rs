//! The run state machine, driven synchronously.

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_lang::validate::compile;
use weft_protocol::wire::{Outcome, Usage};

use super::*;

pub(super) fn run(def: Value, input: Value) -> Run {
    let def = WorkflowDef::from_json(&def.to_string()).expect("parses");
    let plan = compile(&def, None).expect("valid");
    Run::new(Uuid::nil(), plan, input, 0)
}

pub(super) fn dispatched(effects: &[Effect]) -> Vec<Task> {
    effects.iter().filter_map(|e| if let Effect::Dispatch(t) = e { Some(t.clone()) } else { None }).collect()
}

pub(super) fn ids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.step_id.as_str()).collect()
}

pub(super) fn events(effects: &[Effect]) -> Vec<EventKind> {
    effects.iter().filter_map(|e| if let Effect::Emit(ev) = e { Some(ev.kind.clone()) } else { None }).collect()
}

pub(super) fn answer(task: &Task, outcome: Outcome) -> Input {
    Input::Result {
        result: TaskResult {
            run_id: task.run_id,
            step_id: task.step_id.clone(),
            attempt: task.attempt,
            compensation: task.compensation,
            worker: "w1".into(),
            started_ms: 1,
            finished_ms: 2,
            outcome,
            usage: None,
            token: task.token.clone(),
        },
    }
}

pub(super) fn ok(task: &Task, output: Value) -> Input {
    answer(task, Outcome::Ok(output))
}

pub(super) fn err(task: &Task, error: ToolError) -> Input {
    answer(task, Outcome::Err(error))
}

/// Whether the effects do nothing but report an ignored input.
pub(super) fn only_ignored(effects: &[Effect]) -> bool {
    !effects.is_empty() && effects.iter().all(|e| matches!(e, Effect::Ignored(_)))
}

pub(super) fn take(tasks: &[Task], id: &str) -> Task {
    tasks.iter().find(|t| t.step_id == id).cloned().expect("dispatched")
}

#[test]
fn a_chain_passes_outputs_forward() {
    let mut r = run(
        json!({"name": "chain", "steps": [
            {"id": "user", "tool": "get_user", "params": {"user_id": "{input.id}"}},
            {"id": "weather", "tool": "get_weather", "params": {"location": "{user.city}"}},
            {"id": "note", "tool": "notify", "params": {"message": "Weather in {weather.location}: {weather.temp}°C"}}
        ], "output": {"message": "{note.message}"}}),
        json!({"id": "123"}),
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["user"]);
    assert_eq!(t[0].params, json!({"user_id": "123"}));
    assert_eq!(t[0].idempotency_key, format!("{}/user", Uuid::nil()));
    let t = dispatched(&r.apply(ok(&t[0], json!({"city": "London"})), 1));
    assert_eq!(t[0].params, json!({"location": "London"}));
    let t = dispatched(&r.apply(ok(&t[0], json!({"location": "London", "temp": 15})), 2));
    assert_eq!(t[0].params, json!({"message": "Weather in London: 15°C"}));
    let effects = r.apply(ok(&t[0], json!({"message": "sent"})), 3);
    assert!(effects.contains(&Effect::Finished));
    let record = r.record();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.output, Some(json!({"message": "sent"})));
    assert_eq!(record.order, ["user", "weather", "note"]);
}

#[test]
fn steps_start_the_moment_their_dependencies_finish() {
    let mut r = run(
        json!({"name": "dag", "steps": [
            {"id": "a", "tool": "t"}, {"id": "b", "tool": "t"},
            {"id": "c", "tool": "t", "params": {"a": "{a}"}},
            {"id": "d", "tool": "t", "params": {"a": "{a}", "b": "{b}"}},
            {"id": "e", "tool": "t", "params": {"c": "{c}", "d": "{d}"}}
        ]}),
        Value::Null,
    );
    let first = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&first), ["a", "b"]);
    // a finishes while b still runs: c starts at once, d waits for b.
    let next = dispatched(&r.apply(ok(&take(&first, "a"), json!("A")), 1));
    assert_eq!(ids(&next), ["c"]);
    let next = dispatched(&r.apply(ok(&take(&first, "b"), json!("B")), 2));
    assert_eq!(ids(&next), ["d"]);
}

#[test]
fn max_parallel_and_priority() {
    let mut r = run(
        json!({"name": "p", "max_parallel": 2, "steps": [
            {"id": "low", "tool": "t"}, {"id": "mid", "tool": "t", "priority": 1}, {"id": "high", "tool": "t", "priority": 5}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["high", "mid"]);
    let t2 = dispatched(&r.apply(ok(&t[0], json!(1)), 1));
    assert_eq!(ids(&t2), ["low"]);
}

#[test]
fn conditions_skip_and_the_rule_propagates() {
    let def = json!({"name": "cond", "steps": [
        {"id": "inventory", "tool": "check"},
        {"id": "price", "tool": "price", "when": {"eq": ["{inventory.in_stock}", true]}},
        {"id": "payment", "tool": "pay", "params": {"total": "{price.total}"}},
        {"id": "error", "tool": "notify", "when": {"eq": ["{inventory.in_stock}", false]}},
        {"id": "else", "tool": "notify", "when": {"not": {"exists": "{price}"}}},
        {"id": "join", "tool": "log", "depends_on": ["payment", "error"]}
    ]});
    // In stock: price and payment run, error and else are skipped, join runs.
    let mut r = run(def.clone(), Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(ok(&t[0], json!({"in_stock": true})), 1);
    assert_eq!(ids(&dispatched(&effects)), ["price"]);
    assert!(events(&effects).iter().any(|e| matches!(e, EventKind::StepSkipped { step_id, .. } if step_id == "error")));
    // Out of stock: price skipped, so payment (needs it) skipped; error and else run.
    let mut r = run(def, Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(ok(&t[0], json!({"in_stock": false})), 1);
    assert_eq!(ids(&dispatched(&effects)), ["error", "else"]);
    let record = r.record();
    assert_eq!(record.steps["price"].status, StepStatus::Skipped);
    assert_eq!(record.steps["payment"].status, StepStatus::Skipped);
    assert!(record.steps["payment"].reason.as_deref().unwrap_or("").contains("`price`, which was skipped"));
    let t = dispatched(&effects);
    let effects = r.apply(ok(&take(&t, "error"), json!({})), 2);
    assert_eq!(ids(&dispatched(&effects)), ["join"], "join follows skipped and completed steps alike");
}

#[test]
fn retries_back_off_then_succeed() {
    let mut r = run(
        json!({"name": "r", "steps": [{"id": "flaky", "tool": "fail",
            "retry": {"max_attempts": 3, "backoff": "100ms", "multiplier": 2, "jitter": 0}}]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(err(&t[0], ToolError::new("boom")), 1);
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::Retry { step: "flaky".into(), attempt: 1 },
        after: Duration::from_millis(100)
    }));
    assert!(dispatched(&effects).is_empty());
    let t = dispatched(&r.apply(Input::Timer { timer: Timer::Retry { step: "flaky".into(), attempt: 1 } }, 101));
    assert_eq!(t[0].attempt, 2);
    assert_eq!(t[0].idempotency_key, format!("{}/flaky", Uuid::nil()), "the key is stable across attempts");
    let effects = r.apply(err(&t[0], ToolError::new("boom")), 102);
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::Retry { step: "flaky".into(), attempt: 2 },
        after: Duration::from_millis(200)
    }));
    let t = dispatched(&r.apply(Input::Timer { timer: Timer::Retry { step: "flaky".into(), attempt: 2 } }, 303));
    r.apply(ok(&t[0], json!({"attempt": 3})), 304);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.steps["flaky"].attempts.len(), 3);
}

#[test]
fn non_retryable_codes_fail_at_once() {
    let mut r = run(
        json!({"name": "r", "steps": [{"id": "pay", "tool": "fail", "retry": {"max_attempts": 5, "non_retryable": ["CARD_DECLINED"]}}]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(err(&t[0], ToolError::new("declined").with_code("CARD_DECLINED")), 1);
    assert!(effects.contains(&Effect::Finished));
    assert_eq!(r.status(), RunStatus::Failed);
    assert_eq!(r.record().errors, ["step `pay` failed: declined [CARD_DECLINED]"]);
}

#[test]
fn timeouts_cancel_the_attempt_and_ignore_its_late_result() {
    let mut r = run(
        json!({"name": "t", "steps": [{"id": "slow", "tool": "sleep", "timeout": "1s",
            "retry": {"max_attempts": 2, "backoff": "10ms", "jitter": 0}}]}),
        Value::Null,
    );
    let effects = r.apply(Input::Start, 0);
    let t = dispatched(&effects);
    assert_eq!(t[0].timeout_ms, Some(1000));
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::StepTimeout { step: "slow".into(), attempt: 1 },
        after: Duration::from_secs(1)
    }));
    let effects = r.apply(Input::Timer { timer: Timer::StepTimeout { step: "slow".into(), attempt: 1 } }, 1000);
    assert!(effects.contains(&Effect::Cancel(CancelTask {
        run_id: Uuid::nil(),
        step_id: Some("slow".into()),
        attempt: Some(1)
    })));
    // The first attempt answers late: ignored.
    assert!(only_ignored(&r.apply(ok(&t[0], json!("late")), 1001)));
    let t2 = dispatched(&r.apply(Input::Timer { timer: Timer::Retry { step: "slow".into(), attempt: 1 } }, 1010));
    assert_eq!(t2[0].attempt, 2);
    let effects = r.apply(Input::Timer { timer: Timer::StepTimeout { step: "slow".into(), attempt: 2 } }, 2010);
    assert!(effects.contains(&Effect::Finished));
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].contains("timed out after 1s [TIMEOUT]"), "{:?}", record.errors);
}

#[test]
fn results_apply_once() {
    let mut r = run(
        json!({"name": "d", "steps": [{"id": "a", "tool": "t"}, {"id": "b", "tool": "t", "params": {"x": "{a}"}}]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let first = r.apply(ok(&t[0], json!(1)), 1);
    assert_eq!(ids(&dispatched(&first)), ["b"]);
    assert!(only_ignored(&r.apply(ok(&t[0], json!(2)), 2)), "a duplicate result changes nothing");
    assert_eq!(r.record().steps["a"].output, Some(json!(1)));
}

#[test]
fn continue_on_error_hands_the_error_downstream() {
    let mut r = run(
        json!({"name": "c", "steps": [
            {"id": "risky", "tool": "fail", "continue_on_error": true},
            {"id": "finally", "tool": "log", "params": {"what": "{risky.error.message}"}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let t = dispatched(&r.apply(err(&t[0], ToolError::new("nope").permanent()), 1));
    assert_eq!(t[0].params, json!({"what": "nope"}));
    r.apply(ok(&t[0], json!({})), 2);
    assert_eq!(r.status(), RunStatus::Completed);
    assert_eq!(r.record().steps["risky"].status, StepStatus::Failed);
}

#[test]
fn policy_continue_runs_what_does_not_need_the_failure() {
    let mut r = run(
        json!({"name": "c", "on_failure": "continue", "steps": [
            {"id": "bad", "tool": "fail"}, {"id": "good", "tool": "t"},
            {"id": "needs_bad", "tool": "t", "params": {"x": "{bad}"}},
            {"id": "needs_good", "tool": "t", "params": {"x": "{good}"}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(err(&take(&t, "bad"), ToolError::new("x").permanent()), 1);
    let next = dispatched(&r.apply(ok(&take(&t, "good"), json!(1)), 2));
    assert_eq!(ids(&next), ["needs_good"]);
    r.apply(ok(&next[0], json!(2)), 3);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.steps["needs_bad"].status, StepStatus::Skipped);
    assert_eq!(record.steps["needs_good"].status, StepStatus::Completed);
}

#[test]
fn policy_fail_cancels_the_rest() {
    let mut r = run(
        json!({"name": "f", "steps": [{"id": "bad", "tool": "fail"}, {"id": "long", "tool": "sleep"}]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(err(&take(&t, "bad"), ToolError::new("x")), 1);
    assert!(effects.contains(&Effect::Cancel(CancelTask { run_id: Uuid::nil(), step_id: None, attempt: None })));
    assert_eq!(r.record().steps["long"].status, StepStatus::Cancelled);
    assert!(only_ignored(&r.apply(ok(&take(&t, "long"), json!(1)), 2)), "nothing moves after the end");
}

#[test]
fn run_timeout_and_cancel() {
    let mut r = run(json!({"name": "t", "timeout": "2s", "steps": [{"id": "a", "tool": "sleep"}]}), Value::Null);
    let effects = r.apply(Input::Start, 0);
    assert!(effects.contains(&Effect::Schedule { timer: Timer::RunTimeout, after: Duration::from_secs(2) }));
    r.apply(Input::Timer { timer: Timer::RunTimeout }, 2000);
    assert_eq!(r.status(), RunStatus::TimedOut);

    let mut r = run(json!({"name": "c", "steps": [{"id": "a", "tool": "sleep"}]}), Value::Null);
    r.apply(Input::Start, 0);
    let effects = r.apply(Input::Cancel { reason: "user asked".into(), compensate: false }, 5);
    assert!(events(&effects).contains(&EventKind::RunFinished { status: RunStatus::Cancelled }));
    assert_eq!(r.record().errors, ["cancelled: user asked"]);
}

#[test]
fn missing_data_fails_the_step_with_the_path() {
    let mut r = run(
        json!({"name": "m", "steps": [{"id": "w", "tool": "t"}, {"id": "n", "tool": "t", "params": {"t": "{w.temperature}"}}]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], json!({"temp": 15})), 1);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    let reason = record.steps["n"].reason.clone().unwrap_or_default();
    assert!(reason.contains("`{w.temperature}`: `w` has no field `temperature` (its fields: `temp`)"), "{reason}");
}

#[test]
fn events_are_numbered_in_order() {
    let mut r = run(json!({"name": "e", "steps": [{"id": "a", "tool": "t"}]}), Value::Null);
    let mut all = r.apply(Input::Start, 0);
    let t = dispatched(&all);
    all.extend(r.apply(ok(&t[0], json!(1)), 1));
    let seqs: Vec<u64> =
        all.iter().filter_map(|e| if let Effect::Emit(ev) = e { Some(ev.seq) } else { None }).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(
        events(&all),
        [
            EventKind::RunStarted { workflow: "e".into() },
            EventKind::StepStarted { step_id: "a".into(), attempt: 1 },
            EventKind::StepCompleted { step_id: "a".into(), worker: "w1".into(), tokens: None, cost: None },
            EventKind::RunFinished { status: RunStatus::Completed },
        ]
    );
}

#[test]
fn replaying_the_inputs_rebuilds_the_run_and_what_to_resume() {
    let def = json!({"name": "resume", "timeout": "1m", "steps": [
        {"id": "a", "tool": "t", "timeout": "10s"},
        {"id": "b", "tool": "t", "retry": {"max_attempts": 3, "backoff": "1s", "jitter": 0}},
        {"id": "c", "tool": "t", "params": {"a": "{a}", "b": "{b}"}}
    ]});
    let mut live = run(def.clone(), Value::Null);
    let mut history: Vec<(Input, Millis)> = Vec::new();
    let feed = |r: &mut Run, input: Input, now: Millis, history: &mut Vec<(Input, Millis)>| {
        history.push((input.clone(), now));
        r.apply(input, now)
    };
    let t = dispatched(&feed(&mut live, Input::Start, 1000, &mut history));
    feed(&mut live, err(&take(&t, "b"), ToolError::new("flaky")), 1500, &mut history);

    // A new coordinator replays the history (as stored: through JSON).
    let stored = serde_json::to_string(&history).expect("serialises");
    let replayed_inputs: Vec<(Input, Millis)> = serde_json::from_str(&stored).expect("deserialises");
    let mut replayed = run(def, Value::Null);
    for (input, now) in replayed_inputs {
        replayed.apply(input, now);
    }
    assert_eq!(replayed.record(), live.record());

    // What it must do again: re-publish a's task, arm a's timeout, b's retry, the run timeout.
    let resume = replayed.resume(2000);
    assert_eq!(ids(&dispatched(&resume)), ["a"]);
    let timers: Vec<(Timer, Duration)> = resume
        .iter()
        .filter_map(|e| if let Effect::Schedule { timer, after } = e { Some((timer.clone(), *after)) } else { None })
        .collect();
    assert!(timers.contains(&(Timer::RunTimeout, Duration::from_secs(59))), "{timers:?}");
    assert!(
        timers.contains(&(Timer::StepTimeout { step: "a".into(), attempt: 1 }, Duration::from_secs(9))),
        "{timers:?}"
    );
    assert!(
        timers.contains(&(Timer::Retry { step: "b".into(), attempt: 1 }, Duration::from_millis(500))),
        "{timers:?}"
    );

    // Fired and finished timers are not armed again.
    replayed.apply(ok(&take(&t, "a"), json!(1)), 2100);
    let after = replayed.resume(2200);
    assert!(!after.iter().any(|e| matches!(e, Effect::Schedule { timer: Timer::StepTimeout { .. }, .. })), "{after:?}");
}

fn saga_def() -> Value {
    json!({"name": "order_saga", "on_failure": "compensate", "steps": [
        {"id": "reserve", "tool": "reserve_inventory", "params": {"product_id": "P", "quantity": 2},
         "compensate": {"tool": "release_inventory", "params": {"reservation_id": "{reserve.reservation_id}"}}},
        {"id": "payment", "tool": "charge_payment", "params": {"amount": 100.0}, "depends_on": ["reserve"],
         "compensate": {"tool": "refund_payment", "params": {"payment_id": "{payment.payment_id}"},
                        "retry": {"max_attempts": 2, "backoff": "10ms", "jitter": 0}}},
        {"id": "shipping", "tool": "ship_order", "params": {"order_id": "O"}, "depends_on": ["payment"]}
    ]})
}

#[test]
fn a_saga_undoes_completed_steps_in_reverse_order() {
    let mut r = run(saga_def(), Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    let t = dispatched(&r.apply(ok(&t[0], json!({"reservation_id": "RES123"})), 1));
    let t = dispatched(&r.apply(ok(&t[0], json!({"payment_id": "PAY123"})), 2));
    // Shipping fails for good: the refund goes out first, as a task for a worker.
    let effects = r.apply(err(&t[0], ToolError::new("Shipping service unavailable").permanent()), 3);
    assert_eq!(r.status(), RunStatus::Compensating);
    let comp = dispatched(&effects);
    assert_eq!(comp.len(), 1);
    assert!(comp[0].compensation);
    assert_eq!((comp[0].step_id.as_str(), comp[0].tool.as_str()), ("payment", "refund_payment"));
    assert_eq!(comp[0].params, json!({"payment_id": "PAY123"}), "reads the step's own output");
    assert_eq!(comp[0].message_id(), format!("comp:{}:payment:1", Uuid::nil()));
    // The refund fails once and is retried under its own policy.
    let effects = r.apply(err(&comp[0], ToolError::new("bank timeout")), 4);
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::CompensationRetry { step: "payment".into(), attempt: 1 },
        after: Duration::from_millis(10)
    }));
    let comp = dispatched(
        &r.apply(Input::Timer { timer: Timer::CompensationRetry { step: "payment".into(), attempt: 1 } }, 14),
    );
    assert_eq!(comp[0].attempt, 2);
    let next = dispatched(&r.apply(ok(&comp[0], json!({"refunded": true})), 15));
    assert_eq!((next[0].step_id.as_str(), next[0].tool.as_str()), ("reserve", "release_inventory"));
    assert_eq!(next[0].params, json!({"reservation_id": "RES123"}));
    let effects = r.apply(ok(&next[0], json!({"released": true})), 16);
    assert!(events(&effects).contains(&EventKind::RunFinished { status: RunStatus::Compensated }));
    let record = r.record();
    assert_eq!(record.status, RunStatus::Compensated);
    assert_eq!(record.errors, ["step `shipping` failed: Shipping service unavailable"]);
    let refund = record.steps["payment"].compensation.as_ref().expect("compensated");
    assert_eq!((refund.status, refund.attempts.len()), (StepStatus::Completed, 2));
    assert!(record.steps["shipping"].compensation.is_none(), "a failed step has nothing to undo");
}

#[test]
fn a_failed_compensation_is_a_distinct_ending_and_the_others_still_run() {
    let mut r = run(saga_def(), Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    let t = dispatched(&r.apply(ok(&t[0], json!({"reservation_id": "RES123"})), 1));
    let t = dispatched(&r.apply(ok(&t[0], json!({"payment_id": "PAY123"})), 2));
    let comp = dispatched(&r.apply(err(&t[0], ToolError::new("down").permanent()), 3));
    let next = dispatched(&r.apply(err(&comp[0], ToolError::new("refund refused").permanent()), 4));
    assert_eq!(next[0].step_id, "reserve", "the release still runs");
    r.apply(ok(&next[0], json!({})), 5);
    let record = r.record();
    assert_eq!(record.status, RunStatus::CompensationFailed);
    assert!(
        record.errors.iter().any(|e| e == "compensation of `payment` (refund_payment) failed: refund refused"),
        "{:?}",
        record.errors
    );
}

#[test]
fn steps_running_at_the_failure_are_cancelled_and_undone_if_they_complete() {
    let mut r = run(
        json!({"name": "s", "on_failure": "compensate", "steps": [
            {"id": "slow", "tool": "book", "compensate": {"tool": "unbook", "params": {"id": "{slow.id}"}}},
            {"id": "fast", "tool": "charge", "compensate": {"tool": "refund", "params": {}}},
            {"id": "bad", "tool": "fail", "params": {"after": "{fast}"}},
            {"id": "never", "tool": "t", "params": {"b": "{bad}"}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let bad = dispatched(&r.apply(ok(&take(&t, "fast"), json!({})), 1));
    let effects = r.apply(err(&bad[0], ToolError::new("no").permanent()), 2);
    assert!(effects.contains(&Effect::Cancel(CancelTask { run_id: Uuid::nil(), step_id: None, attempt: None })));
    assert!(dispatched(&effects).is_empty(), "the saga waits for the running step");
    assert_eq!(r.record().steps["never"].status, StepStatus::Cancelled);
    // The slow step completes anyway: it completed last, so it is undone first.
    let comp = dispatched(&r.apply(ok(&take(&t, "slow"), json!({"id": "B1"})), 3));
    assert_eq!((comp[0].tool.as_str(), comp[0].params.clone()), ("unbook", json!({"id": "B1"})));
    let comp = dispatched(&r.apply(ok(&comp[0], json!({})), 4));
    assert_eq!(comp[0].tool, "refund");
    r.apply(ok(&comp[0], json!({})), 5);
    assert_eq!(r.status(), RunStatus::Compensated);
}

#[test]
fn a_saga_does_not_wait_forever_for_a_silent_step() {
    let mut r = run(
        json!({"name": "s", "on_failure": "compensate", "steps": [
            {"id": "hangs", "tool": "t", "compensate": {"tool": "undo", "params": {}}},
            {"id": "bad", "tool": "fail"}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(err(&take(&t, "bad"), ToolError::new("no").permanent()), 1);
    assert!(effects.iter().any(|e| matches!(e, Effect::Schedule { timer: Timer::Drain, .. })));
    r.apply(Input::Timer { timer: Timer::Drain }, 30_001);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Compensated, "nothing completed, nothing to undo");
    assert_eq!(record.steps["hangs"].status, StepStatus::Cancelled);
}

#[test]
fn pause_lets_running_steps_finish_and_starts_nothing_until_resumed() {
    let mut r = run(
        json!({"name": "p", "steps": [
            {"id": "a", "tool": "t"}, {"id": "b", "tool": "t", "params": {"a": "{a}"}}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(Input::Pause, 1);
    assert!(events(&effects).contains(&EventKind::RunPaused));
    assert_eq!(r.status(), RunStatus::Paused);
    // a finishes while paused: recorded, but b does not start.
    let effects = r.apply(ok(&t[0], json!(1)), 2);
    assert!(dispatched(&effects).is_empty());
    assert_eq!(r.record().steps["a"].status, StepStatus::Completed);
    let effects = r.apply(Input::resume(), 3);
    assert_eq!(ids(&dispatched(&effects)), ["b"]);
    assert_eq!(r.status(), RunStatus::Running);
}

#[test]
fn signals_feed_waiting_steps_early_late_or_by_default() {
    let def = json!({"name": "approve", "steps": [
        {"id": "draft", "tool": "t"},
        {"id": "approval", "signal": {"name": "approve", "timeout": "1h", "default": {"approved": false}},
         "depends_on": ["draft"]},
        {"id": "publish", "tool": "t", "params": {"ok": "{approval.approved}"}}
    ]});
    // The signal arrives while the step waits.
    let mut r = run(def.clone(), Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(ok(&t[0], json!({})), 1);
    assert!(effects.iter().any(|e| matches!(e, Effect::Schedule { timer: Timer::SignalTimeout { .. }, .. })));
    assert_eq!(r.record().steps["approval"].status, StepStatus::Running);
    let next = dispatched(&r.apply(Input::Signal { name: "approve".into(), data: json!({"approved": true}) }, 2));
    assert_eq!(next[0].params, json!({"ok": true}));
    // The signal arrives before the step is reached: kept for it.
    let mut r = run(def.clone(), Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(Input::Signal { name: "approve".into(), data: json!({"approved": true}) }, 1);
    let next = dispatched(&r.apply(ok(&t[0], json!({})), 2));
    assert_eq!(next[0].params, json!({"ok": true}));
    // Nobody answers: the default path.
    let mut r = run(def, Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], json!({})), 1);
    let next =
        dispatched(&r.apply(Input::Timer { timer: Timer::SignalTimeout { step: "approval".into() } }, 3_600_001));
    assert_eq!(next[0].params, json!({"ok": false}));
}

#[test]
fn waits_are_timers() {
    let mut r = run(
        json!({"name": "w", "steps": [
            {"id": "pause", "wait": {"duration": "10s"}},
            {"id": "until", "wait": {"until": "1970-01-01T00:00:30Z"}},
            {"id": "after", "tool": "t", "params": {"w": "{pause.waited_ms}"}}
        ]}),
        Value::Null,
    );
    let effects = r.apply(Input::Start, 5_000);
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::WaitOver { step: "pause".into() },
        after: Duration::from_secs(10)
    }));
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::WaitOver { step: "until".into() },
        after: Duration::from_secs(25)
    }));
    let next = dispatched(&r.apply(Input::Timer { timer: Timer::WaitOver { step: "pause".into() } }, 15_000));
    assert_eq!(next[0].params, json!({"w": 10_000}));
}

#[test]
fn a_run_can_park_only_while_it_waits_for_outside_input() {
    let def = json!({"name": "q", "steps": [
        {"id": "draft", "tool": "t"},
        {"id": "approval", "signal": {"name": "approve"}, "depends_on": ["draft"]},
        {"id": "timed", "signal": {"name": "late", "timeout": "1h"}, "depends_on": ["approval"]},
        {"id": "publish", "tool": "t", "depends_on": ["timed"]}
    ]});
    let mut r = run(def, Value::Null);
    let t = dispatched(&r.apply(Input::Start, 0));
    assert!(!r.can_park(), "a task is on a worker");
    r.apply(ok(&t[0], json!({})), 1);
    assert!(r.can_park(), "only a signal can move it");
    r.apply(Input::Pause, 2);
    assert!(r.can_park(), "paused and waiting");
    r.apply(Input::resume(), 3);
    r.apply(Input::Signal { name: "approve".into(), data: json!({}) }, 4);
    assert!(!r.can_park(), "the next signal has a timeout armed");
    let t = dispatched(&r.apply(Input::Signal { name: "late".into(), data: json!({}) }, 5));
    assert!(!r.can_park());
    r.apply(ok(&t[0], json!({})), 6);
    assert_eq!(r.status(), RunStatus::Completed);
    assert!(!r.can_park(), "over");
}

#[test]
fn jitter_is_pinned_so_a_new_toolchain_replays_the_same_retry_times() {
    let run: Uuid = "0193c8a0-0000-7000-8000-000000000000".parse().expect("uuid");
    let units: Vec<f64> = [("charge", 1), ("charge", 2), ("pages[3].ocr", 1)]
        .iter()
        .map(|(step, attempt)| jitter_unit(run, step, *attempt))
        .collect();
    // SHA-1 (UUID v5) of the run, step and attempt: these values never change.
    assert_eq!(units, [0.635086392713338, 0.8296906678250633, 0.03379792506299262]);
}

#[test]
fn a_worker_s_times_are_kept_within_what_the_coordinator_knows() {
    for (started, finished, logged_at) in
        [(u64::MAX, u64::MAX, 50), (0, u64::MAX, 50), (0, 0, 50), (40, 20, 50), (9, 9, 3)]
    {
        let mut r = run(json!({"name": "t", "steps": [{"id": "a", "tool": "t"}]}), Value::Null);
        let t = dispatched(&r.apply(Input::Start, 10));
        let mut result = ok(&t[0], json!(1));
        if let Input::Result { result } = &mut result {
            (result.started_ms, result.finished_ms) = (started, finished);
        }
        r.apply(result, logged_at);
        let record = r.record();
        let a = &record.steps["a"].attempts[0];
        let (s, f) = (a.started_ms.expect("start"), a.finished_ms.expect("end"));
        let floor = a.dispatched_ms.min(logged_at);
        assert!(floor <= s && s <= f && f <= logged_at, "{started} {finished} at {logged_at}: {a:?}");
        let _ = weft_client::timeline::gantt(&record, 30);
        let _ = weft_client::timeline::summary_text(&record, 0);
    }
}

#[test]
fn a_retry_waits_as_long_as_the_failure_asks_and_usage_is_recorded() {
    let mut r = run(
        json!({"name": "t", "steps": [{"id": "ask", "tool": "llm",
            "retry": {"max_attempts": 3, "backoff": "10ms", "jitter": 0}}]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let limited = ToolError::new("rate limited").with_code("RATE_LIMITED").retry_after(Duration::from_secs(7));
    let mut answered = err(&t[0], limited);
    if let Input::Result { result } = &mut answered {
        result.usage = Some(Usage { model: "m".into(), prompt_tokens: 3, completion_tokens: 0 });
    }
    let effects = r.apply(answered, 1);
    assert!(
        effects.contains(&Effect::Schedule {
            timer: Timer::Retry { step: "ask".into(), attempt: 1 },
            after: Duration::from_secs(7)
        }),
        "{effects:?}"
    );
    let usage = r.record().steps["ask"].attempts[0].usage.clone();
    assert_eq!(usage.map(|u| u.prompt_tokens), Some(3));
    // A worker asking for a day waits a quarter of an hour at most.
    let t = dispatched(&r.apply(Input::Timer { timer: Timer::Retry { step: "ask".into(), attempt: 1 } }, 7001));
    let effects = r.apply(err(&t[0], ToolError::new("later").retry_after(Duration::from_secs(86_400))), 7002);
    assert!(effects.contains(&Effect::Schedule {
        timer: Timer::Retry { step: "ask".into(), attempt: 2 },
        after: Duration::from_secs(900)
    }));
}

#[test]
fn a_result_without_its_task_s_token_is_ignored() {
    let mut r =
        run(json!({"name": "t", "steps": [{"id": "a", "tool": "t"}]}), Value::Null).with_secret(Uuid::from_u128(7));
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(t[0].token.len(), 32, "each task carries its attempt's token");
    let mut forged = ok(&t[0], json!({"forged": true}));
    if let Input::Result { result } = &mut forged {
        result.token = Uuid::new_v5(&Uuid::nil(), b"task:a#1").simple().to_string();
    }
    let effects = r.apply(forged, 1);
    assert!(only_ignored(&effects), "{effects:?}");
    assert!(matches!(&effects[0], Effect::Ignored(i) if i.unexpected && i.reason.contains("token")));
    assert!(r.apply(ok(&t[0], json!("real")), 2).contains(&Effect::Finished), "the worker's own result applies");
}
