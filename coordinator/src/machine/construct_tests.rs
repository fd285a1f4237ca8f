//! Constructs, driven synchronously: what each dispatches, in which order, and what it
//! hands on.

use serde_json::{Value, json};
use weft_protocol::wire::{RunStatus, StepStatus, ToolError};

use super::tests::{dispatched, err, events, ids, ok, only_ignored, run, take};
use super::*;

fn cancelled(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Cancel(c) => c.step_id.clone(),
            _ => None,
        })
        .collect()
}

fn status_of(r: &Run, path: &str) -> StepStatus {
    r.record().steps.get(path).map(|s| s.status).expect("step in the record")
}

#[test]
fn for_each_keeps_input_order_under_a_concurrency_limit() {
    let mut r = run(
        json!({"name": "fe", "steps": [
            {"id": "users", "tool": "list", "params": {}},
            {"id": "profiles", "for_each": {"items": "{users.ids}", "as": "uid", "concurrency": 2,
              "do": [{"id": "profile", "tool": "fetch", "params": {"id": "{uid}", "n": "{index}", "who": "{input.who}"}}]}},
            {"id": "total", "tool": "sum", "params": {"all": "{profiles}"}}
        ]}),
        json!({"who": "me"}),
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let t = dispatched(&r.apply(ok(&t[0], json!({"ids": ["a", "b", "c"]})), 1));
    assert_eq!(ids(&t), ["profiles[0].profile", "profiles[1].profile"]);
    assert_eq!(t[1].params, json!({"id": "b", "n": 1, "who": "me"}));
    assert_eq!(t[1].idempotency_key, format!("{}/profiles[1].profile", Uuid::nil()));
    // The second answers first; the third item starts in the freed slot.
    let third = dispatched(&r.apply(ok(&t[1], json!("B")), 2));
    assert_eq!(ids(&third), ["profiles[2].profile"]);
    assert!(dispatched(&r.apply(ok(&third[0], json!("C")), 3)).is_empty());
    let sum = dispatched(&r.apply(ok(&t[0], json!("A")), 4));
    assert_eq!(ids(&sum), ["total"]);
    assert_eq!(sum[0].params, json!({"all": ["A", "B", "C"]}));
}

#[test]
fn for_each_tolerates_max_failures_then_fails_and_cancels_the_rest() {
    let def = |max: u32| {
        json!({"name": "fe", "steps": [
            {"id": "each", "for_each": {"items": [1, 2, 3, 4], "max_failures": max,
              "do": [{"id": "work", "tool": "w", "params": {"n": "{item}"}}]}}
        ]})
    };
    let mut r = run(def(1), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(t.len(), 4);
    r.apply(err(&t[0], ToolError::new("boom").permanent()), 1);
    for (n, task) in t.iter().enumerate().skip(1) {
        r.apply(ok(task, json!(n)), 2);
    }
    let record = r.record();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(
        record.output,
        Some(json!({"each": [{"error": {"message": "`each[0].work` failed: boom", "code": "BODY_FAILED"}}, 1, 2, 3]}))
    );

    let mut r = run(def(0), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(err(&t[2], ToolError::new("boom").permanent()), 1);
    let mut stopped = cancelled(&effects);
    stopped.sort();
    assert_eq!(stopped, ["each[0].work", "each[1].work", "each[3].work"]);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].contains("item 2: `each[2].work` failed: boom"), "{:?}", record.errors);
    assert_eq!(status_of(&r, "each[0].work"), StepStatus::Cancelled);
}

#[test]
fn an_empty_list_completes_at_once() {
    let mut r = run(
        json!({"name": "fe", "steps": [{"id": "each", "for_each": {"items": [], "do": [{"id": "x", "tool": "t"}]}}]}),
        json!({}),
    );
    assert!(r.apply(Input::Start, 0).contains(&Effect::Finished));
    assert_eq!(r.record().output, Some(json!({"each": []})));
}

#[test]
fn for_each_of_something_else_fails_with_what_it_found() {
    let mut r = run(
        json!({"name": "fe", "steps": [{"id": "each", "for_each": {"items": "{input.x}", "do": [{"id": "x", "tool": "t"}]}}]}),
        json!({"x": {"not": "a list"}}),
    );
    r.apply(Input::Start, 0);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].contains("needs a list, found an object"), "{:?}", record.errors);
}

fn poll_def() -> Value {
    json!({"name": "poll", "steps": [
        {"id": "poll", "loop": {"max_iterations": 3,
          "until": {"eq": ["{check.status}", "done"]},
          "do": [{"id": "check", "tool": "status", "params": {"n": "{iteration}", "last": "{previous}"}}]}}
    ]})
}

#[test]
fn a_loop_feeds_each_iteration_the_previous_until_it_holds() {
    let mut r = run(poll_def(), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["poll[0].check"]);
    assert_eq!(t[0].params, json!({"n": 0, "last": null}));
    let t = dispatched(&r.apply(ok(&t[0], json!({"status": "busy"})), 1));
    assert_eq!(ids(&t), ["poll[1].check"]);
    assert_eq!(t[0].params, json!({"n": 1, "last": {"status": "busy"}}));
    let effects = r.apply(ok(&t[0], json!({"status": "done", "v": 7})), 2);
    assert!(effects.contains(&Effect::Finished));
    assert_eq!(r.record().output, Some(json!({"poll": {"status": "done", "v": 7}})));
}

#[test]
fn a_loop_that_never_holds_fails_at_max_iterations() {
    let mut r = run(poll_def(), json!({}));
    let mut t = dispatched(&r.apply(Input::Start, 0));
    for n in 0..3 {
        t = dispatched(&r.apply(ok(&t[0], json!({"status": "busy"})), n + 1));
    }
    assert!(t.is_empty());
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].contains("`until` did not hold within 3 iterations"), "{:?}", record.errors);
    assert_eq!(
        record.steps["poll"].attempts[0].error.as_ref().and_then(|e| e.code.clone()).as_deref(),
        Some("MAX_ITERATIONS")
    );
}

#[test]
fn switch_takes_the_first_matching_case_or_the_default() {
    let def = json!({"name": "sw", "steps": [
        {"id": "route", "switch": {"on": "{input.kind}", "cases": [
            {"value": "invoice", "do": [{"id": "inv", "tool": "invoice", "params": {}}]},
            {"when": {"gt": ["{input.pages}", 50]}, "do": [{"id": "long", "tool": "summarize", "params": {}}]}
          ], "default": [{"id": "generic", "tool": "generic", "params": {}}]}},
        {"id": "after", "tool": "file", "params": {"result": "{route}"}}
    ]});
    for (input, expected) in [
        (json!({"kind": "invoice", "pages": 90}), "inv"),
        (json!({"kind": "letter", "pages": 90}), "long"),
        (json!({"kind": "letter", "pages": 2}), "generic"),
    ] {
        let mut r = run(def.clone(), input);
        let t = dispatched(&r.apply(Input::Start, 0));
        assert_eq!(ids(&t), [expected]);
        let t = dispatched(&r.apply(ok(&t[0], json!({"by": expected})), 1));
        assert_eq!(t[0].params, json!({"result": {"by": expected}}));
    }
    let mut r = run(
        json!({"name": "sw", "steps": [{"id": "route", "switch": {"on": "{input.kind}", "cases": [
            {"value": "invoice", "do": [{"id": "inv", "tool": "invoice", "params": {}}]}]}}]}),
        json!({"kind": "memo"}),
    );
    assert!(r.apply(Input::Start, 0).contains(&Effect::Finished));
    assert_eq!(r.record().output, Some(json!({"route": null})));
}

fn race_def(winner: Value) -> Value {
    json!({"name": "race", "steps": [
        {"id": "quote", "race": {"winner": winner, "branches": [
            {"id": "a", "tool": "qa", "params": {}},
            {"id": "b", "tool": "qb", "params": {}},
            {"id": "c", "tool": "qc", "params": {}}
        ]}}
    ]})
}

#[test]
fn the_first_success_wins_a_race_and_the_others_are_cancelled() {
    let mut r = run(race_def(json!("first")), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["a", "b", "c"]);
    r.apply(err(&take(&t, "a"), ToolError::new("down").permanent()), 1);
    let effects = r.apply(ok(&take(&t, "c"), json!({"price": 3})), 2);
    assert_eq!(cancelled(&effects), ["b"]);
    assert!(events(&effects).iter().any(|e| matches!(e, EventKind::StepCancelled { step_id, reason }
        if step_id == "b" && reason.contains("`c` won"))));
    assert!(effects.contains(&Effect::Finished));
    assert_eq!(r.record().output, Some(json!({"quote": {"price": 3}})));
    // The loser's late answer changes nothing.
    assert!(only_ignored(&r.apply(ok(&take(&t, "b"), json!({"price": 1})), 3)));
}

#[test]
fn a_race_by_field_waits_for_all_and_takes_the_best() {
    let mut r = run(race_def(json!({"min": "price"})), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&take(&t, "a"), json!({"price": 5})), 1);
    r.apply(ok(&take(&t, "b"), json!({"price": 2})), 2);
    assert_eq!(r.status(), RunStatus::Running);
    r.apply(err(&take(&t, "c"), ToolError::new("down").permanent()), 3);
    assert_eq!(r.record().output, Some(json!({"quote": {"price": 2}})));
    // Every branch failing fails the race, saying why each did.
    let mut r = run(race_def(json!("first")), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    for task in &t {
        r.apply(err(task, ToolError::new(format!("{} down", task.tool)).permanent()), 1);
    }
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].contains("every branch failed: `a`: qa down; `b`: qb down"), "{:?}", record.errors);
}

#[test]
fn fallback_tries_alternatives_in_order() {
    let mut r = run(
        json!({"name": "fb", "steps": [
            {"id": "weather", "fallback": {"alternatives": [
                {"id": "primary", "tool": "api", "params": {}},
                {"id": "backup", "tool": "backup", "params": {}},
                {"id": "cache", "tool": "cache", "params": {}}
            ]}}
        ]}),
        json!({}),
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["primary"]);
    let t = dispatched(&r.apply(err(&t[0], ToolError::new("down").permanent()), 1));
    assert_eq!(ids(&t), ["backup"]);
    let effects = r.apply(ok(&t[0], json!({"temp": 12})), 2);
    assert!(effects.contains(&Effect::Finished));
    assert_eq!(r.record().output, Some(json!({"weather": {"temp": 12}})));
    assert_eq!(status_of(&r, "cache"), StepStatus::Skipped);
}

#[test]
fn parallel_succeeds_with_enough_successes_and_fails_when_it_cannot() {
    let def = json!({"name": "par", "steps": [
        {"id": "notify", "parallel": {"min_successes": 2, "steps": [
            {"id": "email", "tool": "email", "params": {}},
            {"id": "sms", "tool": "sms", "params": {}},
            {"id": "push", "tool": "push", "params": {}}
        ]}}
    ]});
    let mut r = run(def.clone(), json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], json!("e")), 1);
    r.apply(err(&t[1], ToolError::new("no signal").permanent()), 2);
    r.apply(ok(&t[2], json!("p")), 3);
    let record = r.record();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.output, Some(json!({"notify": {"email": "e", "push": "p"}})));

    let mut r = run(def, json!({}));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(err(&t[0], ToolError::new("x").permanent()), 1);
    let effects = r.apply(err(&t[1], ToolError::new("y").permanent()), 2);
    assert_eq!(cancelled(&effects), ["push"]);
    assert!(r.record().errors[0].contains("2 of 3 steps cannot succeed and 2 must"), "{:?}", r.record().errors);
}

#[test]
fn a_pipeline_hands_each_stage_the_previous_output() {
    let mut r = run(
        json!({"name": "etl", "steps": [
            {"id": "etl", "pipeline": {"input": "{input.raw}", "stages": [
                {"id": "clean", "tool": "clean", "params": {"data": "{previous}"}},
                {"id": "load", "tool": "load", "params": {"data": "{previous}"}}
            ]}}
        ]}),
        json!({"raw": [1, 2]}),
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(t[0].params, json!({"data": [1, 2]}));
    let t = dispatched(&r.apply(ok(&t[0], json!([1])), 1));
    assert_eq!((ids(&t), &t[0].params), (vec!["load"], &json!({"data": [1]})));
    r.apply(ok(&t[0], json!({"loaded": 1})), 2);
    assert_eq!(r.record().output, Some(json!({"etl": {"loaded": 1}})));
}

#[test]
fn a_sub_workflow_is_a_child_run_retried_with_a_new_child() {
    let mut r = run(
        json!({"name": "parent", "steps": [
            {"id": "ship", "workflow": {"name": "shipping", "version": 2, "input": {"order": "{input.order}"}},
             "retry": {"max_attempts": 2, "backoff": "1s"}}
        ]}),
        json!({"order": 7}),
    );
    let effects = r.apply(Input::Start, 0);
    let Some(Effect::StartChild(first)) = effects.iter().find(|e| matches!(e, Effect::StartChild(_))) else {
        panic!("no child started: {effects:?}")
    };
    assert_eq!((first.workflow.as_str(), first.version), ("shipping", Some(2)));
    assert_eq!(first.input, json!({"order": 7}));
    assert_eq!(first.parent.step, "ship");
    assert_eq!(first.child_id, r.child_id("ship", 1));
    let failed = ChildResult {
        step: "ship".into(),
        attempt: 1,
        child_id: first.child_id,
        status: RunStatus::Failed,
        output: None,
        error: Some(ToolError::new("carrier down")),
        spent: None,
    };
    r.apply(Input::Child { result: failed.clone() }, 1);
    let effects = r.apply(Input::Timer { timer: Timer::Retry { step: "ship".into(), attempt: 1 } }, 1000);
    let Some(Effect::StartChild(second)) = effects.iter().find(|e| matches!(e, Effect::StartChild(_))) else {
        panic!("no retry: {effects:?}")
    };
    assert_ne!(second.child_id, first.child_id);
    // The first child's result again is ignored; the second's completes the step.
    assert!(only_ignored(&r.apply(Input::Child { result: failed }, 1001)));
    let done = ChildResult {
        attempt: 2,
        child_id: second.child_id,
        status: RunStatus::Completed,
        output: Some(json!({"tracking": "T1"})),
        error: None,
        step: "ship".into(),
        spent: None,
    };
    assert!(r.apply(Input::Child { result: done }, 1002).contains(&Effect::Finished));
    assert_eq!(r.record().output, Some(json!({"ship": {"tracking": "T1"}})));
}

#[test]
fn nested_constructs_replay_and_resume_inside_their_frames() {
    let def = json!({"name": "nest", "steps": [
        {"id": "docs", "for_each": {"items": "{input.docs}", "as": "doc", "do": [
            {"id": "kind", "tool": "classify", "params": {"doc": "{doc}"}},
            {"id": "route", "switch": {"on": "{kind.type}", "cases": [
                {"value": "scan", "do": [{"id": "ocr", "tool": "ocr", "params": {"doc": "{doc}", "type": "{kind.type}"}}]}
            ], "default": [{"id": "plain", "tool": "read", "params": {"doc": "{doc}"}}]}}
        ], "output": {"doc": "{doc}", "text": "{route}"}}}
    ]});
    let input = json!({"docs": ["d1", "d2"]});
    let mut r = run(def.clone(), input.clone());
    let mut log = vec![(Input::Start, 0)];
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["docs[0].kind", "docs[1].kind"]);
    let mut step = |r: &mut Run, input: Input, at: Millis| {
        log.push((input.clone(), at));
        dispatched(&r.apply(input, at))
    };
    let ocr = step(&mut r, ok(&t[0], json!({"type": "scan"})), 1);
    assert_eq!(ids(&ocr), ["docs[0].ocr"]);
    assert_eq!(ocr[0].params, json!({"doc": "d1", "type": "scan"}));
    let plain = step(&mut r, ok(&t[1], json!({"type": "text"})), 2);
    assert_eq!(ids(&plain), ["docs[1].plain"]);
    step(&mut r, ok(&plain[0], json!("hello")), 3);

    // A new owner replays the log and re-sends exactly the task still running.
    let mut replayed = run(def, input);
    for (input, at) in log.clone() {
        replayed.apply(input, at);
    }
    let resumed: Vec<Task> = replayed
        .resume(4)
        .into_iter()
        .filter_map(|e| if let Effect::Dispatch(t) = e { Some(t) } else { None })
        .collect();
    assert_eq!(resumed, ocr);
    replayed.apply(ok(&ocr[0], json!("scanned")), 5);
    let record = replayed.record();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(
        record.output,
        Some(json!({"docs": [{"doc": "d1", "text": "scanned"}, {"doc": "d2", "text": "hello"}]}))
    );
    assert_eq!(record.steps["docs[0].route"].status, StepStatus::Completed);
}

#[test]
fn a_saga_undoes_steps_inside_bodies_too() {
    let mut r = run(
        json!({"name": "saga", "on_failure": "compensate", "steps": [
            {"id": "each", "for_each": {"items": [1, 2], "do": [
                {"id": "reserve", "tool": "reserve", "params": {"n": "{item}"},
                 "compensate": {"tool": "release", "params": {"n": "{item}", "id": "{reserve.id}"}}}
            ]}},
            {"id": "charge", "tool": "charge", "params": {"all": "{each}"}}
        ]}),
        json!({}),
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], json!({"id": "r1"})), 1);
    let charge = dispatched(&r.apply(ok(&t[1], json!({"id": "r2"})), 2));
    let undo = dispatched(&r.apply(err(&charge[0], ToolError::new("declined").permanent()), 3));
    assert_eq!(ids(&undo), ["each[1].reserve"]);
    assert!(undo[0].compensation);
    assert_eq!(undo[0].params, json!({"n": 2, "id": "r2"}));
    let undo2 = dispatched(&r.apply(ok(&undo[0], json!({})), 4));
    assert_eq!(undo2[0].params, json!({"n": 1, "id": "r1"}));
    r.apply(ok(&undo2[0], json!({})), 5);
    assert_eq!(r.record().status, RunStatus::Compensated);
}
