//! `plan` steps, driven synchronously: ask, check, repair, approve, run, fail.

use serde_json::{Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::codes;

use super::tests::{dispatched, ok, run};
use super::*;

fn planned(step: Value) -> Run {
    let mut step = step;
    step["id"] = json!("p");
    let def = json!({"name": "planner", "steps": [step], "output": {"answer": "{p}"}});
    run(def, json!({"goal": "email alice her total", "user_id": "7"})).with_tools(vec![ToolSpec {
        name: "get_user".into(),
        version: "1".into(),
        description: "Looks a user up.".into(),
        params: json!({"type": "object", "properties": {"user_id": {"type": "string"}}}),
    }])
}

fn plan_step(extra: Value) -> Value {
    let mut plan = json!({"goal": "{input.goal}", "tools": ["get_user"], "input": {"user_id": "{input.user_id}"}});
    if let (Some(plan), Some(extra)) = (plan.as_object_mut(), extra.as_object()) {
        plan.extend(extra.clone());
    }
    json!({"plan": plan})
}

fn proposal(n: u32) -> Value {
    json!({"name": format!("proposal_{n}"), "steps": [{"id": "u", "tool": "get_user", "params": {"user_id": "{input.user_id}"}}]})
}

fn checks(effects: &[Effect]) -> Vec<PlanCheck> {
    effects.iter().filter_map(|e| if let Effect::CheckPlan(c) = e { Some(c.clone()) } else { None }).collect()
}

fn children(effects: &[Effect]) -> Vec<ChildStart> {
    effects.iter().filter_map(|e| if let Effect::StartChild(c) = e { Some(c.clone()) } else { None }).collect()
}

fn checked(round: u32, problems: &[&str]) -> Input {
    Input::PlanChecked { step: "p".into(), round, problems: problems.iter().map(|p| (*p).to_owned()).collect() }
}

fn child_ended(start: &ChildStart, output: Value) -> Input {
    Input::Child {
        result: ChildResult {
            step: start.parent.step.clone(),
            attempt: start.parent.attempt,
            child_id: start.child_id,
            status: RunStatus::Completed,
            output: Some(output),
            error: None,
            spent: None,
        },
    }
}

#[test]
fn a_plan_is_asked_for_checked_repaired_and_run_as_a_child() {
    let mut r = planned(plan_step(json!({"model": "big-1"})));
    let t = dispatched(&r.apply(Input::Start, 0));
    assert_eq!((t[0].tool.as_str(), t[0].step_id.as_str(), t[0].attempt), ("llm", "p", 1));
    let params = &t[0].params;
    assert_eq!(params["model"], "big-1");
    assert_eq!(params["response_format"]["json_schema"]["name"], "weft_workflow");
    assert_eq!(params["response_format"]["json_schema"]["schema"]["title"], "Weft workflow");
    let ask = params["messages"][1]["content"].as_str().expect("the task");
    assert!(ask.contains("Goal: email alice her total"), "{ask}");
    assert!(ask.contains(r#""name":"get_user""#) && ask.contains("Looks a user up."), "tools as functions: {ask}");
    assert!(ask.contains(r#"{"user_id":"7"}"#), "the planned run's input: {ask}");

    // The first plan has problems: the model is asked again with them.
    let effects = r.apply(ok(&t[0], proposal(1)), 1);
    assert!(dispatched(&effects).is_empty(), "nothing runs before the check");
    let proposed = EventKind::PlanProposed { step_id: "p".into(), attempt: 1, round: 1 };
    assert!(super::tests::events(&effects).contains(&proposed), "{effects:?}");
    let check = checks(&effects).pop().expect("a check");
    assert_eq!((check.step.as_str(), check.round, check.tools.clone()), ("p", 1, vec!["get_user".to_owned()]));
    assert_eq!(check.input, json!({"user_id": "7"}));
    let t = dispatched(&r.apply(checked(1, &["steps[0].tool: no worker offers a tool `x`"]), 2));
    assert_eq!((t[0].tool.as_str(), t[0].attempt), ("llm", 2));
    let messages = t[0].params["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4, "system, task, the plan, its problems");
    assert_eq!(messages[2]["role"], "assistant");
    assert!(messages[3]["content"].as_str().is_some_and(|m| m.contains("no worker offers a tool `x`")));

    // The second is valid: it runs as a child of the step, with the step's input.
    let effects = r.apply(ok(&t[0], proposal(2)), 3);
    assert_eq!(checks(&effects)[0].round, 2);
    let effects = r.apply(checked(2, &[]), 4);
    let start = children(&effects).pop().expect("a child");
    assert_eq!(
        (start.workflow.as_str(), start.parent.attempt, start.input.clone()),
        ("proposal_2", 3, json!({"user_id": "7"}))
    );
    assert_eq!(start.definition.as_ref().map(|d| d.name.as_str()), Some("proposal_2"));
    let effects = r.apply(child_ended(&start, json!({"total": 100})), 5);
    assert!(effects.contains(&Effect::Finished));
    let record = r.record();
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");
    assert_eq!(record.output, Some(json!({"answer": {"total": 100}})));
    let plans = &record.steps["p"].plans;
    assert_eq!(plans.len(), 2);
    assert_eq!((plans[0].attempt, plans[0].problems.len(), plans[1].problems.len()), (1, 1, 0));
    assert!(plans.iter().all(|p| p.checked));
}

#[test]
fn a_replay_reads_the_verdicts_and_a_takeover_checks_again() {
    let mut r = planned(plan_step(json!({})));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], proposal(1)), 1);
    // A coordinator taking over while the plan waits for its check checks it again.
    let again = checks(&r.resume(2));
    assert_eq!(again.len(), 1, "the check is asked for again");
    // The verdict twice (the check ran on both coordinators): the second is stale.
    r.apply(checked(1, &[]), 3);
    let effects = r.apply(checked(1, &[]), 3);
    assert!(effects.iter().all(|e| matches!(e, Effect::Ignored(_))), "{effects:?}");
}

#[test]
fn a_plan_still_invalid_after_its_repairs_fails_the_step_with_every_problem() {
    let mut r = planned(plan_step(json!({"max_repairs": 1})));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], proposal(1)), 1);
    let t = dispatched(&r.apply(checked(1, &["first problem"]), 2));
    r.apply(ok(&t[0], proposal(2)), 3);
    let effects = r.apply(checked(2, &["steps[0]: second problem", "steps[1]: third problem"]), 4);
    assert!(effects.contains(&Effect::Finished));
    let record = r.record();
    assert_eq!(record.status, RunStatus::Failed);
    let reason = record.steps["p"].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("after 1 repair(s)") && reason.contains("second problem; steps[1]: third problem"),
        "{reason}"
    );
    assert!(reason.contains(codes::PLAN_INVALID), "{reason}");
}

#[test]
fn a_failed_model_call_is_retried_without_counting_the_answered_ones() {
    let mut r = planned(plan_step(json!({})));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], proposal(1)), 1);
    let t = dispatched(&r.apply(checked(1, &["bad"]), 2));
    // Attempt 2 meets a busy provider: retried (the default policy of a plan is 3 attempts,
    // of which the answered call is not one).
    let effects = r.apply(super::tests::err(&t[0], ToolError::new("busy").with_code(codes::RATE_LIMITED)), 3);
    assert!(effects.iter().any(|e| matches!(e, Effect::Schedule { timer: Timer::Retry { .. }, .. })), "{effects:?}");
}

#[test]
fn an_approval_runs_the_plan_and_an_edit_is_checked_again() {
    let mut r = planned(plan_step(json!({"approve": true})));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], proposal(1)), 1);
    let effects = r.apply(checked(1, &[]), 2);
    assert!(children(&effects).is_empty(), "it waits for its approval");
    assert!(r.record().signals.contains_key("p.approve"));
    // An edited plan is checked before it runs, and needs no second approval.
    let edited = json!({"plan": proposal(9)});
    let effects = r.apply(Input::Signal { name: "p.approve".into(), data: edited }, 3);
    let check = checks(&effects).pop().expect("the edit is checked");
    assert_eq!((check.round, check.plan["name"].as_str()), (2, Some("proposal_9")));
    let start = children(&r.apply(checked(2, &[]), 4)).pop().expect("it runs");
    assert_eq!(start.workflow, "proposal_9");
    assert_eq!(r.record().steps["p"].plans[1].attempt, 0, "an approver's plan");
}

#[test]
fn a_refused_plan_fails_the_step_and_run_false_returns_the_plan() {
    let mut r = planned(plan_step(json!({"approve": true})));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], proposal(1)), 1);
    r.apply(checked(1, &[]), 2);
    let refusal = json!({"approve": false, "reason": "too risky"});
    r.apply(Input::Signal { name: "p.approve".into(), data: refusal }, 3);
    assert_eq!(r.status(), RunStatus::Failed);
    assert!(r.record().steps["p"].reason.clone().unwrap_or_default().contains("not approved: too risky"));

    let mut r = planned(plan_step(json!({"run": false})));
    let t = dispatched(&r.apply(Input::Start, 0));
    r.apply(ok(&t[0], proposal(1)), 1);
    let effects = r.apply(checked(1, &[]), 2);
    assert!(children(&effects).is_empty());
    assert_eq!(r.record().output, Some(json!({"answer": proposal(1)})));
}
