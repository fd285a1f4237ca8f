//! Plans written by a model, checked as data, then run: the seeds' dynamic examples with
//! the scripted model in the loop, on a real nats-server, coordinator and worker.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::RunStatus;
use weft_tests::cluster::Cluster;
use weft_tests::model::{Received, Reply, ScriptedModel};
use weft_tests::{bin, repo_root};

/// A workflow of `examples/llm/`.
fn example(file: &str) -> WorkflowDef {
    WorkflowDef::load(&repo_root().join("examples/llm").join(file)).expect("the example parses")
}

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// The seed's first plan is wrong twice over (a tool it may not call, a step that does not
/// exist); the repaired one is `examples/dynamic_planned.json`'s.
fn orders_plan(repaired: bool) -> Value {
    if !repaired {
        return json!({"name": "orders_summary", "steps": [
            {"id": "user", "tool": "get_user", "params": {"user_id": "{input.user_id}"}},
            {"id": "orders", "tool": "get_orders", "params": {"user_id": "{profile.id}"}}
        ]});
    }
    json!({"name": "orders_summary", "steps": [
        {"id": "user", "tool": "get_user_contact", "params": {"user_id": "{input.user_id}"}},
        {"id": "orders", "tool": "get_orders", "params": {"user_id": "{user.id}"}},
        {"id": "total", "tool": "calculate_total", "params": {"orders": "{orders.orders}"}},
        {"id": "email", "tool": "send_email", "params": {"email": "{user.email}",
            "message": "Hi {user.name}, your orders {orders.orders} come to a total of {total.total}."}}
    ], "output": {"sent_to": "{email.to}", "total": "{total.total}"}})
}

fn weather_plan() -> Value {
    json!({"name": "weather_alert", "steps": [
        {"id": "weather", "tool": "get_current_weather", "params": {"location": "London"}},
        {"id": "rain_alert", "tool": "send_email", "when": {"eq": ["{weather.condition}", "rainy"]},
         "params": {"email": "{input.email}", "message": "Rain in {weather.location}: take an umbrella."}}
    ], "output": {"alerted": "{rain_alert.to}", "condition": "{weather.condition}"}})
}

/// Answers by the goal in the task message; a repair request (four messages) gets the fix.
fn planner(request: &Received, _: usize) -> Reply {
    let task = request.body["messages"][1]["content"].as_str().unwrap_or_default();
    let repair = request.body["messages"].as_array().is_some_and(|m| m.len() > 2);
    if task.contains("Goal: Get user's orders") {
        Reply::json(&orders_plan(repair), 900, 120)
    } else if task.contains("Goal: Get weather for London") {
        Reply::json(&weather_plan(), 700, 80)
    } else {
        Reply::error(400, "the script knows no such goal", None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_dynamic_workflows_are_planned_checked_repaired_and_run() {
    let model = ScriptedModel::start(planner);
    let env = [("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_MODEL", "planner-1")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;

    // "Get the user's orders, calculate the total, and email them a summary."
    let def = example("planned_orders.json");
    let record = client.run(&def, json!({"user_id": "42"})).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
    assert_eq!(record.output, Some(json!({"sent_to": "alice@example.com", "total": 100.0})));
    assert!(record.spent.is_some_and(|s| s.tokens == 2040), "its budget counted both calls: {:?}", record.spent);
    let step = &record.steps["plan"];
    assert_eq!(step.plans.len(), 2, "{step:#?}");
    let first = step.plans[0].problems.join("\n");
    assert!(first.contains("tool `get_user` is not allowed"), "{first}");
    assert!(first.contains("profile"), "the unknown step is named: {first}");
    assert!(step.plans[1].problems.is_empty() && step.plans[1].checked);
    // Two model calls, each with its usage, then the child run.
    assert_eq!(step.attempts.len(), 3, "{step:#?}");
    assert!(step.attempts[..2].iter().all(|a| a.usage.as_ref().is_some_and(|u| u.prompt_tokens > 0)));
    let child = step.attempts[2].worker.clone().unwrap_or_default();
    let child_id = child.strip_prefix("run ").and_then(|id| id.parse().ok()).expect("the child run");
    let child = client.status(child_id).await.expect("the child's record");
    assert_eq!((child.workflow.as_str(), child.status), ("orders_summary", RunStatus::Completed));
    // `weft status` lists the plans and their problems.
    let out = Command::new(bin("weft"))
        .args(["status", &record.run_id.to_string(), "--nats", &cluster.nats.url])
        .output()
        .expect("weft runs");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("plan: plan 1 (by the model): 2 problem(s)"), "{status}");
    assert!(status.contains("plan: plan 2 (by the model): valid"), "{status}");
    // The repair request carried the problems; every request the workflow format's schema.
    let asks = model.received();
    assert_eq!(asks.len(), 2);
    assert!(asks[1].last_message().contains("tool `get_user` is not allowed"), "{}", asks[1].last_message());
    assert!(asks.iter().all(|a| a.body["response_format"]["json_schema"]["schema"]["title"] == "Weft workflow"));
    assert!(asks[0].body["messages"][1]["content"].as_str().is_some_and(|t| t.contains("\"name\":\"get_orders\"")));

    // "Get weather for London, and if it's raining, send me an email alert", approved first.
    let def = example("planned_weather_alert.json");
    let run_id = client.submit(&def, json!({"email": "me@example.com"})).await.expect("submitted");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = client.status(run_id).await.expect("status");
        if record.steps.get("plan").is_some_and(|s| s.plans.first().is_some_and(|p| p.checked)) {
            assert!(record.signals.contains_key("plan.approve"), "{record:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "the plan was never checked: {record:#?}\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing of the plan ran before its approval.
    assert!(client.status(run_id).await.expect("status").steps["plan"].attempts.len() == 1);
    client.signal(run_id, "plan.approve", json!(true)).await.expect("approved");
    let record = client.wait(run_id).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
    assert_eq!(record.output, Some(json!({"alerted": "me@example.com", "condition": "rainy"})));

    // The same from the command line: `weft plan` prints the checked plan, `--run` runs it.
    let weft = |extra: &[&str]| {
        let mut args = vec!["plan", "Get weather for London, and if it's raining, send me an email alert"];
        args.extend_from_slice(extra);
        let out = Command::new(bin("weft"))
            .args(&args)
            .args(["--nats", &cluster.nats.url])
            .current_dir(repo_root())
            .output()
            .expect("weft runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = weft(&["--tools", "get_current_weather,send_email"]);
    assert_eq!(code, Some(0), "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("the plan as JSON");
    assert_eq!(printed, weather_plan(), "{stdout}");
    assert!(stderr.contains("plan 1: `weather_alert` is valid"), "{stderr}");
    let (code, stdout, stderr) =
        weft(&["--tools", "get_current_weather,send_email", "--run", "--input", r#"{"email": "cli@example.com"}"#]);
    assert_eq!(code, Some(0), "{stderr}");
    let output: Value = serde_json::from_str(&stdout).expect("the output as JSON");
    assert_eq!(output, json!({"alerted": "cli@example.com", "condition": "rainy"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_stays_invalid_fails_with_every_problem_and_runs_nothing() {
    // The model never learns: the same wrong plan every time.
    let model = ScriptedModel::start(|_, _| Reply::json(&orders_plan(false), 100, 10));
    let env = [("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_MODEL", "planner-1")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "stubborn", "steps": [{"id": "p", "plan": {
        "goal": "Get user's orders", "tools": ["get_orders"], "max_repairs": 2}}]}));
    let record = client.run(&def, Value::Null).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Failed);
    let step = &record.steps["p"];
    assert_eq!((step.plans.len(), model.received().len()), (3, 3), "the first ask and two repairs");
    let reason = step.reason.clone().unwrap_or_default();
    assert!(reason.contains("PLAN_INVALID") && reason.contains("after 2 repair(s)"), "{reason}");
    assert!(reason.contains("get_user") && reason.contains("profile"), "every problem: {reason}");
    assert!(step.attempts.iter().all(|a| a.worker.as_deref().is_none_or(|w| !w.starts_with("run "))), "no child ran");

    // A plan step naming a tool no worker offers is refused at submit.
    let bad = inline(json!({"name": "bad", "steps": [{"id": "p", "plan": {"goal": "x", "tools": ["no_such_tool"]}}]}));
    let e = client.submit(&bad, Value::Null).await.expect_err("refused");
    assert!(e.to_string().contains("steps[0].plan.tools[0]") && e.to_string().contains("no_such_tool"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_while_a_plan_awaits_approval_asks_the_model_nothing_again() {
    let model = ScriptedModel::start(planner);
    let env: Vec<(&str, &str)> = weft_tests::cluster::FAST
        .iter()
        .copied()
        .chain([("WEFT_LLM_BASE_URL", model.base_url.as_str()), ("WEFT_LLM_MODEL", "planner-1")])
        .collect();
    let mut cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    let run_id = client
        .submit(&example("planned_weather_alert.json"), json!({"email": "me@example.com"}))
        .await
        .expect("submitted");
    weft_tests::wait::record(&client, run_id, "the plan checked", |r| {
        r.steps.get("plan").is_some_and(|s| s.plans.first().is_some_and(|p| p.checked))
    })
    .await;
    // The run's owner dies with the plan proposed, checked and waiting for its approval.
    cluster.crash_coordinator(&env);
    let replayed = weft_tests::wait::record(&client, run_id, "the run owned again", |r| {
        r.steps.get("plan").is_some_and(|s| s.plans.len() == 1 && s.plans[0].checked)
    })
    .await;
    assert_eq!(replayed.status, RunStatus::Running, "{replayed:#?}");
    client.signal(run_id, "plan.approve", json!(true)).await.expect("approved");
    let record = client.wait(run_id).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
    assert_eq!(record.output, Some(json!({"alerted": "me@example.com", "condition": "rainy"})));
    assert_eq!(model.received().len(), 1, "the model was asked once: the replay read its answer from the log");
}
