//! Budgets, driven synchronously: holds before model calls, settlement, waiting for room,
//! `budget_exceeded` and a resume with more, children within their parent's budget.

use serde_json::{Value, json};
use weft_protocol::wire::{Outcome, Spend, Usage};

use super::tests::{answer, dispatched, events, ids, run, take};
use super::*;
use crate::config::Price;

fn spent(task: &Task, prompt: u64, completion: u64) -> Input {
    let mut input = answer(task, Outcome::Ok(json!({"content": "ok"})));
    if let Input::Result { result } = &mut input {
        result.usage = Some(Usage { model: "m".into(), prompt_tokens: prompt, completion_tokens: completion });
    }
    input
}

fn llm(id: &str, max_tokens: u64, after: &[&str]) -> Value {
    json!({"id": id, "tool": "llm", "params": {"prompt": "hi", "max_tokens": max_tokens}, "depends_on": after})
}

#[test]
fn calls_hold_their_worst_case_and_a_run_out_of_budget_waits_for_more() {
    let mut r = run(
        json!({"name": "b", "budget": {"tokens": 5000}, "steps": [
            llm("a", 2000, &[]), llm("b", 2000, &[]), llm("c", 2000, &["a", "b"])
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["a", "b"], "two holds of about 2,000 fit in 5,000");
    assert!(r.record().spent.is_some_and(|s| s.reserved_tokens > 4000 && s.tokens == 0));
    r.apply(spent(&take(&t, "a"), 900, 600), 1);
    let effects = r.apply(spent(&take(&t, "b"), 900, 600), 2);
    // 3,000 spent: `c` would hold about 2,000 more, over 5,000, with nothing in flight.
    assert!(dispatched(&effects).is_empty());
    assert_eq!(r.status(), RunStatus::BudgetExceeded);
    assert!(
        events(&effects)
            .iter()
            .any(|e| matches!(e, EventKind::BudgetExceeded { step_id, tokens: 3000, .. } if step_id == "c"))
    );
    let record = r.record();
    assert_eq!(record.spent.map(|s| s.tokens), Some(3000));
    assert_eq!(record.steps["a"].attempts[0].usage.as_ref().map(Usage::total), Some(1500));
    // More budget: `c` goes.
    let t = dispatched(&r.apply(Input::Resume { add_tokens: Some(1000), add_cost: None }, 3));
    assert_eq!(ids(&t), ["c"]);
    assert_eq!(r.record().budget.and_then(|b| b.tokens), Some(6000));
    r.apply(spent(&t[0], 100, 100), 4);
    assert_eq!(r.status(), RunStatus::Completed);
}

#[test]
fn a_call_that_does_not_fit_waits_for_those_in_flight() {
    let mut r = run(
        json!({"name": "b", "budget": {"tokens": 5000}, "steps": [llm("a", 3000, &[]), llm("b", 3000, &[])]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!(ids(&t), ["a"], "`b` waits: `a` holds 3,000 of 5,000");
    assert_eq!(r.status(), RunStatus::Running);
    let t = dispatched(&r.apply(spent(&t[0], 500, 500), 1));
    assert_eq!(ids(&t), ["b"], "`a` spent 1,000: room for `b`");
}

#[test]
fn a_timed_out_call_spends_its_whole_hold_and_costs_follow_the_price_table() {
    let prices = BTreeMap::from([("m".to_owned(), Price { prompt: 1.0, completion: 2.0 })]);
    let mut r = run(
        json!({"name": "b", "budget": {"cost": 1.0}, "steps": [
            {"id": "a", "tool": "llm", "params": {"prompt": "hi", "max_tokens": 1000, "model": "m"}, "timeout": "1s"},
            llm("b", 1000, &["a"])
        ]}),
        Value::Null,
    )
    .with_prices(prices);
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(Input::Timer { timer: Timer::StepTimeout { step: "a".into(), attempt: 1 } }, 1000);
    assert!(effects.iter().any(|e| matches!(e, Effect::Finished)) || r.status().is_terminal());
    let held = r.record().spent.expect("spent");
    assert!(held.tokens > 1000 && held.cost > 0.002, "the hold is spent: {held:?}");
    drop(t);
    // A result with usage is costed by the table.
    let mut r = run(json!({"name": "b", "budget": {"cost": 1.0}, "steps": [llm("a", 1000, &[])]}), Value::Null)
        .with_prices(BTreeMap::from([("m".to_owned(), Price { prompt: 1.0, completion: 2.0 })]));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(spent(&t[0], 1_000_000, 500_000), 1);
    let record = r.record();
    assert_eq!(record.steps["a"].attempts[0].cost, Some(2.0));
    assert_eq!(record.spent.map(|s| s.cost), Some(2.0), "one call may overspend; none starts after");
}

#[test]
fn a_child_runs_within_what_its_parent_has_left() {
    let mut r = run(
        json!({"name": "b", "budget": {"tokens": 10000}, "steps": [
            llm("a", 1000, &[]),
            {"id": "sub", "workflow": {"name": "child"}, "depends_on": ["a"]}
        ]}),
        Value::Null,
    );
    let t = dispatched(&r.apply(Input::Start, 0));
    let effects = r.apply(spent(&t[0], 1500, 500), 1);
    let Some(Effect::StartChild(start)) = effects.iter().find(|e| matches!(e, Effect::StartChild(_))) else {
        panic!("a child: {effects:?}")
    };
    assert_eq!(start.parent.budget.and_then(|b| b.tokens), Some(8000), "what is left");
    let ended = ChildResult {
        step: start.parent.step.clone(),
        attempt: start.parent.attempt,
        child_id: start.child_id,
        status: RunStatus::Completed,
        output: Some(json!({})),
        error: None,
        spent: Some(Spend { tokens: 3000, cost: 0.0, reserved_tokens: 0 }),
    };
    r.apply(Input::Child { result: ended }, 2);
    assert_eq!(r.record().spent.map(|s| (s.tokens, s.reserved_tokens)), Some((5000, 0)));
    // A child's own budget is kept within its grant.
    let child = run(json!({"name": "child", "budget": {"tokens": 9000}, "steps": [llm("x", 10, &[])]}), Value::Null)
        .with_parent(Some(start.parent.clone()));
    assert_eq!(child.budget().and_then(|b| b.tokens), Some(8000));
}
