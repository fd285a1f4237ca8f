//! The actor layer in one process: a coordinator and a worker as tasks against a real
//! nats-server. Runs that park and wake, children, cancels, and a graceful stop that
//! leaves nothing running.

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunStatus, StepStatus};
use weft_tests::in_process::InProcess;
use weft_tests::wait;

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_park_wake_start_children_and_stop_with_the_services() {
    let services = InProcess::start().await;
    let client = services.client().await;

    // A chain through the actor and the worker.
    let chain = inline(json!({"name": "chain", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "b", "tool": "echo", "params": {"n": "{a.n}"}}
    ], "output": "{b.n}"}));
    let done = client.run(&chain, Value::Null).await.expect("runs");
    assert_eq!((done.status, done.output), (RunStatus::Completed, Some(json!(1))));

    // A run waiting for a signal parks (no actor), and a signal wakes it.
    let held = inline(json!({"name": "held", "steps": [
        {"id": "hold", "signal": {"name": "go"}},
        {"id": "after", "tool": "echo", "params": {"go": "{hold}"}}
    ], "output": "{after.go}"}));
    let run = client.submit(&held, Value::Null).await.expect("accepted");
    wait::record(&client, run, "waiting", |r| r.steps["hold"].status == StepStatus::Running).await;
    client.signal(run, "go", json!("yes")).await.expect("signalled");
    let woken = client.wait(run).await.expect("ends");
    assert_eq!((woken.status, woken.output), (RunStatus::Completed, Some(json!("yes"))));

    // A registered child, started by a `workflow` step through the same admission.
    let child = inline(json!({"name": "child", "version": 1, "input_schema": {"type": "object", "required": ["x"]},
        "steps": [{"id": "c", "tool": "echo", "params": {"x": "{input.x}"}}], "output": "{c.x}"}));
    client.deploy(&child).await.expect("registered");
    let parent = inline(json!({"name": "parent", "steps": [
        {"id": "call", "workflow": {"name": "child", "input": {"x": 7}}}
    ], "output": "{call}"}));
    let done = client.run(&parent, Value::Null).await.expect("runs");
    assert_eq!((done.status, done.output.clone()), (RunStatus::Completed, Some(json!(7))), "{done:#?}");
    // A child whose input does not fit its schema fails the step, naming why.
    let misfit =
        inline(json!({"name": "misfit", "steps": [{"id": "call", "workflow": {"name": "child", "input": {}}}]}));
    let failed = client.run(&misfit, Value::Null).await.expect("runs");
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.steps["call"].attempts[0].error.clone().expect("an error");
    assert!(error.message.contains("\"x\" is a required property"), "{error:?}");

    // A cancel stops a long tool; then the services stop cleanly with runs still waiting.
    let long = inline(json!({"name": "long", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 60000}}]}));
    let run = client.submit(&long, Value::Null).await.expect("accepted");
    wait::record(&client, run, "sleeping", |r| r.steps["s"].status == StepStatus::Running).await;
    client.cancel(run, None).await.expect("cancelled");
    assert_eq!(client.wait(run).await.expect("ends").status, RunStatus::Cancelled);
    client.submit(&held, Value::Null).await.expect("one more waits");
    services.stop().await;
}
