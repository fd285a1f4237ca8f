//! One trace per run, proven with a real OTLP receiver: the `weft` CLI, a coordinator and
//! two workers as separate processes export their spans to it.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_protocol::wire::RunRecord;
use weft_tests::cluster::Cluster;
use weft_tests::otlp::{Receiver, Span};
use weft_tests::{bin, repo_root};

/// Runs an example with the CLI (which starts the trace); returns its final record.
fn run_with_cli(cluster: &Cluster, otlp: &Receiver, example: &str, input: &str) -> RunRecord {
    let out = Command::new(bin("weft"))
        .args(["run", "--json", "-q", example, "--input", input])
        .current_dir(repo_root())
        .env("NATS_URL", &cluster.nats.url)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .output()
        .expect("weft runs");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no record ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// Waits until the receiver holds the span ending the run, then returns the run's trace.
async fn trace_of(otlp: &Receiver, record: &RunRecord) -> Vec<Span> {
    let run_id = record.run_id.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = otlp.spans();
        let ended = spans.iter().any(|s| s.attr("weft.run_id") == Some(run_id.as_str()) && s.name.starts_with("run "));
        let traces: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.attr("weft.run_id") == Some(run_id.as_str()))
            .map(|s| s.trace_id.as_str())
            .collect();
        if ended && traces.len() == 1 {
            let trace = traces.into_iter().next().unwrap_or_default().to_owned();
            // Give the workers' batches a moment to land too.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return otlp.spans().into_iter().filter(|s| s.trace_id == trace).collect();
        }
        assert!(Instant::now() < deadline, "no complete trace for run {run_id}: {traces:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(trace: &'a [Span], service: &str, name: &str) -> Vec<&'a Span> {
    trace.iter().filter(|s| s.service == service && s.name == name).collect()
}

/// Every step has a dispatch span and, from the worker that ran it, a tool span parented
/// to that dispatch.
fn check_steps(trace: &[Span], record: &RunRecord) {
    for (id, step) in &record.steps {
        let Some(tool) = &step.tool else { continue };
        for attempt in &step.attempts {
            let Some(worker) = &attempt.worker else { continue };
            let dispatches: Vec<&Span> = find(trace, "weft-coordinator", &format!("dispatch {id}"))
                .into_iter()
                .filter(|s| s.attr("weft.attempt") == Some(&attempt.attempt.to_string()))
                .collect();
            assert_eq!(dispatches.len(), 1, "dispatch span of {id} attempt {}: {trace:#?}", attempt.attempt);
            assert_eq!(dispatches[0].kind, 4, "dispatch is a producer span");
            let tools = find(trace, "weft-worker", &format!("tool {tool}"));
            let child = tools.iter().find(|t| t.parent_span_id == dispatches[0].span_id);
            let child = child.unwrap_or_else(|| panic!("no tool span under dispatch {id}: {tools:#?}"));
            assert_eq!(child.attr("weft.worker"), Some(worker.as_str()), "from the worker that ran it");
            assert_eq!(child.attr("weft.step_id"), Some(id.as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_trace_from_the_cli_through_workers() {
    let otlp = Receiver::start().await;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let cluster = Cluster::start_with(1, 2, &env).await;

    // A fan-out.
    let record = run_with_cli(&cluster, &otlp, "examples/parallel_aggregate.json", r#"{"user_id": "123"}"#);
    let trace = trace_of(&otlp, &record).await;
    // The root: the run as the CLI saw it, named for its workflow.
    let root = find(&trace, "weft", "run parallel_aggregate");
    assert_eq!(root.len(), 1, "the run's root span: {trace:#?}");
    assert!(root[0].parent_span_id.is_empty(), "and it is the root");
    assert_eq!(root[0].attr("weft.run_id"), Some(record.run_id.to_string().as_str()));
    assert_eq!(root[0].attr("weft.workflow"), Some("parallel_aggregate"));
    let submit = find(&trace, "weft", "weft submit");
    assert_eq!(submit.len(), 1, "the CLI's submit: {trace:#?}");
    assert_eq!(submit[0].parent_span_id, root[0].span_id, "under the root");
    let api = find(&trace, "weft-coordinator", "weft.api submit");
    assert_eq!(api.len(), 1, "{trace:#?}");
    assert_eq!(api[0].parent_span_id, submit[0].span_id, "the coordinator continues the client's trace");
    assert_eq!(api[0].attr("weft.workflow"), Some("parallel_aggregate"));
    check_steps(&trace, &record);
    // Each step is a span from its dispatch to its end, under the run; its dispatch under it.
    for id in ["profile", "orders", "reviews", "aggregate"] {
        let step = find(&trace, "weft-coordinator", &format!("step {id}"));
        assert_eq!(step.len(), 1, "step span of {id}: {trace:#?}");
        assert_eq!(step[0].parent_span_id, api[0].span_id, "a top-level step is under the run's submit");
        let dispatch = find(&trace, "weft-coordinator", &format!("dispatch {id}"));
        assert_eq!(dispatch[0].parent_span_id, step[0].span_id, "the dispatch of {id} is under its step");
        let tool = trace.iter().find(|t| t.parent_span_id == dispatch[0].span_id).expect("the tool span");
        // The step's span starts at the dispatch (ms precision), the tool's when a worker took
        // the task: the gap is its time in the queue.
        let ms = 1_000_000;
        assert!(step[0].start_ns <= tool.start_ns + ms && tool.start_ns <= step[0].end_ns + ms, "{step:?} {tool:?}");
    }
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["weft", "weft-coordinator", "weft-worker"]));
    // Only what Weft records: no busy/idle times, thread or source-code attributes; every
    // resource says its version, and a worker's says which worker.
    for span in &trace {
        let noise: Vec<&String> = span
            .attributes
            .keys()
            .filter(|k| {
                ["busy_ns", "idle_ns"].contains(&k.as_str()) || k.starts_with("thread.") || k.starts_with("code.")
            })
            .collect();
        assert!(noise.is_empty(), "{} carries {noise:?}", span.name);
        assert!(span.resource.contains_key("service.version"), "{span:?}");
    }
    let worker_ids: BTreeSet<&str> = trace
        .iter()
        .filter(|s| s.service == "weft-worker")
        .filter_map(|s| s.resource.get("service.instance.id").map(String::as_str))
        .collect();
    assert!(!worker_ids.is_empty() && worker_ids.is_subset(&BTreeSet::from(["w1", "w2"])), "{worker_ids:?}");

    // A saga: compensation spans link to the steps they undo; the failure is an error.
    let input = r#"{"order_id": "ORD123", "product_id": "PROD123", "quantity": 2, "amount": 100.0}"#;
    let saga = run_with_cli(&cluster, &otlp, "examples/order_saga.json", input);
    let trace = trace_of(&otlp, &saga).await;
    check_steps(&trace, &saga);
    for (step, tool) in [("payment", "refund_payment"), ("reserve", "release_inventory")] {
        let comp = find(&trace, "weft-coordinator", &format!("compensate {step}"));
        assert_eq!(comp.len(), 1, "compensation span of {step}: {trace:#?}");
        let undone = find(&trace, "weft-coordinator", &format!("dispatch {step}"));
        assert!(comp[0].links.iter().any(|(_, span)| *span == undone[0].span_id), "links to the step it undoes");
        let worker = find(&trace, "weft-worker", &format!("compensation {tool}"));
        assert_eq!(worker.first().map(|s| s.parent_span_id.as_str()), Some(comp[0].span_id.as_str()));
    }
    let failed = find(&trace, "weft-worker", "tool ship_order");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, 2, "a failing step's span has error status");
    assert!(failed[0].status_message.contains("Shipping service unavailable"), "{:?}", failed[0]);
    let end = trace.iter().find(|s| s.name == "run order_saga compensated").expect("the run's end");
    assert_eq!(end.attr("weft.run_id"), Some(saga.run_id.to_string().as_str()));

    // A sub-workflow: the child run's spans are in the parent's trace, under the span of
    // the step that started it.
    let deployed = Command::new(bin("weft"))
        .args(["deploy", "examples/chain_notify.json"])
        .current_dir(repo_root())
        .env("NATS_URL", &cluster.nats.url)
        .output()
        .expect("weft deploys");
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    let parent = run_with_cli(&cluster, &otlp, "examples/patterns/sub_workflow.json", r#"{"user_ids": ["123"]}"#);
    assert_eq!(parent.status, weft_protocol::wire::RunStatus::Completed, "{parent:#?}");
    let trace = trace_of(&otlp, &parent).await;
    // A construct is a span, each item a span under it, each step of an item under the item.
    let each = find(&trace, "weft-coordinator", "for_each notify_each");
    assert_eq!(each.len(), 1, "the for_each's span: {trace:#?}");
    let item = find(&trace, "weft-coordinator", "notify_each[0]");
    assert_eq!(item.len(), 1, "the item's span: {trace:#?}");
    assert_eq!(item[0].parent_span_id, each[0].span_id, "the item is under its construct");
    let step = find(&trace, "weft-coordinator", "workflow notify_each[0].notify");
    assert_eq!(step.len(), 1, "the workflow step's span: {trace:#?}");
    assert_eq!(step[0].parent_span_id, item[0].span_id, "the step is under its item");
    let started = find(&trace, "weft-coordinator", "workflow notify_each[0].notify chain_notify");
    assert_eq!(started.len(), 1, "the span starting the child: {trace:#?}");
    assert_eq!(started[0].parent_span_id, step[0].span_id, "starting the child is part of the step");
    let child_id = started[0].attr("weft.child_run_id").expect("names the child").to_owned();
    let child = cluster.client().await.status(child_id.parse().expect("a run id")).await.expect("child record");
    let child_steps: Vec<&Span> = trace
        .iter()
        .filter(|s| s.attr("weft.run_id") == Some(child_id.as_str()) && s.name.starts_with("step "))
        .collect();
    assert_eq!(child_steps.len(), child.steps.len(), "every child step in this trace: {trace:#?}");
    let child_api: BTreeSet<&str> = child_steps.iter().map(|s| s.parent_span_id.as_str()).collect();
    assert_eq!(
        child_api,
        BTreeSet::from([started[0].span_id.as_str()]),
        "the child's steps are under the starting span"
    );
    check_steps(&trace, &child);

    // Reading commands make no traces.
    let before = otlp.spans().len();
    let listed = Command::new(bin("weft"))
        .args(["list"])
        .env("NATS_URL", &cluster.nats.url)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.endpoint)
        .output()
        .expect("weft lists");
    assert!(listed.status.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<Span> = otlp.spans().into_iter().skip(before).filter(|s| s.service == "weft").collect();
    assert!(after.is_empty(), "weft list made spans: {after:#?}");
    let _ = Value::Null;
}
