//! The distributed runtime end to end: a real nats-server, a coordinator process and two
//! worker processes with the demo tools. Order and overlap are asserted from the
//! timestamps the run records, never from a stopwatch.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunRecord, RunStatus, StepStatus};
use weft_tests::cluster::Cluster;
use weft_tests::repo_root;

fn example(name: &str) -> WorkflowDef {
    WorkflowDef::load(&repo_root().join("examples").join(name)).expect("example parses")
}

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// (start, end) of a step's last attempt, as recorded by the worker that ran it.
fn span(record: &RunRecord, step: &str) -> (u64, u64) {
    let a = record.steps[step].attempts.last().expect("an attempt");
    (a.started_ms.expect("started"), a.finished_ms.expect("finished"))
}

fn workers(records: &[&RunRecord]) -> BTreeSet<String> {
    records
        .iter()
        .flat_map(|r| r.steps.values())
        .flat_map(|s| s.attempts.iter())
        .filter_map(|a| a.worker.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_run_over_nats() {
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    let logs = || cluster.logs();

    // The chain: the notification carries the seed's expected text.
    let chain = client.run(&example("chain_notify.json"), json!({"user_id": "123"})).await.expect("chain runs");
    assert_eq!(chain.status, RunStatus::Completed, "{chain:#?}\n{}", logs());
    let note = chain.steps["notification"].output.as_ref().expect("notification output");
    assert_eq!(note["message"], "Weather in London: 15°C, Cloudy");

    // Parallel aggregation: the three fetches overlap in time.
    let agg = client.run(&example("parallel_aggregate.json"), json!({"user_id": "123"})).await.expect("aggregate runs");
    assert_eq!(agg.status, RunStatus::Completed, "{agg:#?}");
    let spans: Vec<(u64, u64)> = ["profile", "orders", "reviews"].iter().map(|s| span(&agg, s)).collect();
    let latest_start = spans.iter().map(|s| s.0).max().unwrap_or_default();
    let earliest_end = spans.iter().map(|s| s.1).min().unwrap_or_default();
    assert!(latest_start < earliest_end, "fetches did not overlap: {spans:?}");
    assert_eq!(agg.steps["aggregate"].output.as_ref().expect("aggregate")["order_count"], 2);

    // Conditional order: each branch, the other skipped.
    let branch = |in_stock: bool| {
        inline(json!({"name": "conditional", "steps": [
            {"id": "inventory", "tool": "echo", "params": {"in_stock": in_stock}},
            {"id": "payment", "tool": "echo", "params": {"total": 20.0}, "when": {"eq": ["{inventory.in_stock}", true]}},
            {"id": "error_notification", "tool": "echo", "params": {"reason": "out_of_stock"},
             "when": {"eq": ["{inventory.in_stock}", false]}}
        ]}))
    };
    for (in_stock, ran, skipped) in [(true, "payment", "error_notification"), (false, "error_notification", "payment")]
    {
        let r = client.run(&branch(in_stock), Value::Null).await.expect("branch runs");
        assert_eq!(r.status, RunStatus::Completed);
        assert_eq!(r.steps[ran].status, StepStatus::Completed, "{r:#?}");
        assert_eq!(r.steps[skipped].status, StepStatus::Skipped, "{r:#?}");
    }
    let seed_branch =
        client.run(&example("conditional_order.json"), json!({"product_id": "PROD123", "quantity": 2})).await;
    let seed_branch = seed_branch.expect("seed conditional runs");
    assert_eq!(seed_branch.status, RunStatus::Completed, "{seed_branch:#?}");

    // The a-to-e DAG: c starts as soon as a is done, while b still runs.
    let dag = inline(json!({"name": "dag", "steps": [
        {"id": "a", "tool": "sleep", "params": {"ms": 100}},
        {"id": "b", "tool": "sleep", "params": {"ms": 1500}},
        {"id": "c", "tool": "echo", "params": {"a": "{a}"}},
        {"id": "d", "tool": "echo", "params": {"a": "{a}", "b": "{b}"}},
        {"id": "e", "tool": "echo", "params": {"c": "{c}", "d": "{d}"}}
    ]}));
    let dag = client.run(&dag, Value::Null).await.expect("dag runs");
    assert_eq!(dag.status, RunStatus::Completed);
    assert!(span(&dag, "c").1 < span(&dag, "b").1, "c waited for b: c {:?} b {:?}", span(&dag, "c"), span(&dag, "b"));
    assert!(span(&dag, "d").0 >= span(&dag, "b").1, "d started before b ended");
    let seed_dag = client.run(&example("dag_a_to_e.json"), Value::Null).await.expect("seed dag runs");
    assert_eq!(
        seed_dag.steps["e"].output,
        Some(json!("E done (after C done (after A done) and D done (after A done and B done))"))
    );

    // Retries reach success with fail.times; the idempotency key does not change.
    let flaky = inline(json!({"name": "flaky", "steps": [
        {"id": "f", "tool": "fail", "params": {"message": "not yet", "times": 2},
         "retry": {"max_attempts": 3, "backoff": "50ms"}}
    ]}));
    let flaky = client.run(&flaky, Value::Null).await.expect("flaky runs");
    assert_eq!(flaky.status, RunStatus::Completed, "{flaky:#?}");
    assert_eq!(flaky.steps["f"].attempts.len(), 3);
    assert_eq!(flaky.steps["f"].output, Some(json!({"attempt": 3})));

    // A timeout fires.
    let slow = inline(
        json!({"name": "slow", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 10000}, "timeout": "300ms"}]}),
    );
    let slow = client.run(&slow, Value::Null).await.expect("slow runs");
    assert_eq!(slow.status, RunStatus::Failed);
    let error = slow.steps["s"].attempts[0].error.as_ref().expect("an error");
    assert_eq!(error.code.as_deref(), Some("TIMEOUT"), "{error:?}");

    // Cancel stops a long run.
    let long = inline(json!({"name": "long", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 60000}}]}));
    let run_id = client.submit(&long, Value::Null).await.expect("submitted");
    loop {
        let r = client.status(run_id).await.expect("status");
        if r.steps["s"].status == StepStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client.cancel(run_id, Some("test".into())).await.expect("cancelled");
    let cancelled = client.wait(run_id).await.expect("ends");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.steps["s"].status, StepStatus::Cancelled);

    // Both workers did work.
    let all = [&chain, &agg, &seed_branch, &dag, &seed_dag, &flaky];
    assert_eq!(workers(&all), BTreeSet::from(["w1".to_owned(), "w2".to_owned()]), "{}", logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_and_nothing_goes_down() {
    let mut cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let nats = client.nats().clone();

    // Garbage to the API: an error answer naming the problem.
    let reply = nats.request("weft.api.submit", "{not json".into()).await.expect("an answer");
    let reply: Value = serde_json::from_slice(&reply.payload).expect("json answer");
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap_or("").contains("cannot read the request"), "{reply}");

    // Garbage on task and run-log subjects: logged, nobody crashes.
    let js = async_nats::jetstream::new(nats.clone());
    let partitions = 8;
    let nil = uuid::Uuid::nil();
    let log_subject = weft_protocol::subjects::input(weft_protocol::subjects::partition_of(nil, partitions), nil);
    for subject in ["weft.task.echo".to_owned(), log_subject, "weft.in.3.not-a-run".to_owned()] {
        js.publish(subject, vec![0xff, 0x00, 0x13].into()).await.expect("published").await.expect("stored");
    }

    // Unknown run: not found.
    let missing = client.status(uuid::Uuid::nil()).await.expect_err("not found");
    assert!(missing.is_not_found(), "{missing}");

    // Unknown tool and bad params: rejected at submit with every problem.
    let bad = inline(json!({"name": "bad", "steps": [
        {"id": "x", "tool": "no_such_tool"},
        {"id": "y", "tool": "sleep", "params": {"ms": "soon"}}
    ]}));
    let rejected = client.submit(&bad, Value::Null).await.expect_err("rejected").to_string();
    assert!(rejected.contains("no worker offers a tool `no_such_tool`"), "{rejected}");
    assert!(rejected.contains("steps[1].params.ms"), "{rejected}");

    // A sub-workflow nobody registered: refused at submit, not discovered mid-run.
    let orphan = inline(json!({"name": "orphan", "steps": [
        {"id": "each", "for_each": {"items": [1], "do": [{"id": "child", "workflow": {"name": "nowhere"}}]}}
    ]}));
    let rejected = client.submit(&orphan, Value::Null).await.expect_err("rejected").to_string();
    assert!(rejected.contains("(step `child`): no workflow `nowhere` is registered"), "{rejected}");

    // Input that breaks the input schema.
    let rejected = client.submit(&example("chain_notify.json"), json!({"user": 1})).await.expect_err("bad input");
    assert!(rejected.to_string().contains("user_id"), "{rejected}");

    // A tool output larger than a message may be: the step fails with a clear error.
    let huge = inline(json!({"name": "huge", "steps": [
        {"id": "big", "tool": "transform", "params": {"input": null, "filter": "[range(0; 400000)]"}}
    ]}));
    let huge = client.run(&huge, Value::Null).await.expect("huge runs");
    assert_eq!(huge.status, RunStatus::Failed);
    let error = huge.steps["big"].attempts[0].error.clone().expect("an error");
    assert_eq!(error.code.as_deref(), Some("OUTPUT_TOO_LARGE"), "{error:?}");

    // Params that grow past the limit once resolved: refused by the coordinator, with the sizes.
    let swell = inline(json!({"name": "swell", "steps": [
        {"id": "a", "tool": "transform", "params": {"input": null, "filter": "[range(0; 90000)]"}},
        {"id": "b", "tool": "echo", "params": {"x": "{a}", "y": "{a}"}}
    ]}));
    let swell = client.run(&swell, Value::Null).await.expect("swell runs");
    assert_eq!(swell.status, RunStatus::Failed);
    let error = swell.steps["b"].attempts[0].error.clone().expect("an error");
    assert_eq!(error.code.as_deref(), Some("PARAMS_TOO_LARGE"), "{error:?}");
    assert!(error.message.contains("max_payload"), "{error:?}");

    // A run whose record is larger than a message may be: stored abridged, saying so, and
    // its status is final (not `running` for ever).
    let text = "x".repeat(1000);
    let wide = inline(json!({"name": "wide", "steps": [
        {"id": "list", "tool": "transform", "params": {"input": null, "filter": "[range(0; 1500)]"}},
        {"id": "each", "for_each": {"items": "{list}", "as": "n", "concurrency": 64,
         "do": [{"id": "e", "tool": "echo", "params": {"n": "{n}", "text": text}}]}}
    ], "output": {"last": "{each[-1].n}"}}));
    let wide = client.run(&wide, Value::Null).await.expect("wide runs");
    assert_eq!(wide.status, RunStatus::Completed);
    assert_eq!(wide.output, Some(json!({"last": 1499})));
    let note = wide.abridged.clone().expect("abridged");
    assert!(note.contains("step outputs"), "{note}");
    assert_eq!(wide.steps["each[1499].e"].status, StepStatus::Completed, "{note}");
    assert!(wide.steps["each[1499].e"].output.is_none());

    // The same while the run still runs (held by a signal step): its status is abridged
    // too, never refused for its size.
    let held = inline(json!({"name": "held", "steps": [
        {"id": "list", "tool": "transform", "params": {"input": null, "filter": "[range(0; 1500)]"}},
        {"id": "each", "for_each": {"items": "{list}", "as": "n", "concurrency": 64,
         "do": [{"id": "e", "tool": "echo", "params": {"n": "{n}", "text": text}}]}},
        {"id": "hold", "signal": {"name": "go", "timeout": "5m"}, "depends_on": ["each"]}
    ]}));
    let run = client.submit(&held, Value::Null).await.expect("accepted");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let live = loop {
        let live = client.status(run).await.expect("a live record of any size is answered");
        if live.steps.get("hold").is_some_and(|s| s.status == StepStatus::Running) {
            break live;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reached its signal step: {:?}", live.status);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(live.status, RunStatus::Running);
    assert!(live.abridged.as_deref().is_some_and(|a| a.contains("step outputs")), "{:?}", live.abridged);
    client.cancel(run, None).await.expect("cancelled");

    // After all that, everything still works.
    let ok = client.run(&example("chain_notify.json"), json!({"user_id": "123"})).await.expect("still runs");
    assert_eq!(ok.status, RunStatus::Completed);
    assert!(cluster.coordinator.alive(), "{}", cluster.logs());
    assert!(cluster.workers.iter_mut().all(|w| w.alive()), "{}", cluster.logs());
}

/// A tool that panics, served by a worker embedded in the test process.
struct Panics;

#[async_trait::async_trait]
impl weft_worker::Tool for Panics {
    fn spec(&self) -> weft_lang::catalogue::ToolSpec {
        weft_lang::catalogue::ToolSpec {
            name: "panics".into(),
            version: "1".into(),
            description: "panics, always".into(),
            params: json!({"type": "object"}),
        }
    }

    async fn call(
        &self,
        _params: Value,
        ctx: weft_worker::ToolContext,
    ) -> Result<Value, weft_protocol::wire::ToolError> {
        panic!("tool bug on attempt {}", ctx.attempt)
    }
}

/// Most attempts running at one instant, from their recorded start and end.
fn most_at_once(record: &RunRecord) -> usize {
    let mut edges: Vec<(u64, i64)> = record
        .steps
        .values()
        .flat_map(|s| s.attempts.iter())
        .filter_map(|a| Some([(a.started_ms?, 1), (a.finished_ms?, -1)]))
        .flatten()
        .collect();
    edges.sort(); // an end (-1) sorts before a start at the same millisecond
    let (mut running, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        running += d;
        most = most.max(running);
    }
    usize::try_from(most).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_wider_than_a_thousand_runs_all_at_once() {
    // JetStream's default consumer limit (1,000 tasks delivered and not acked) would hold
    // a tool to 1,000 running at once however many workers serve it. Two workers run up
    // to 1,024 sleeps each here.
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    let steps: Vec<Value> =
        (0..1500).map(|i| json!({"id": format!("s{i}"), "tool": "sleep", "params": {"ms": 4000}})).collect();
    let def = inline(json!({"name": "wide", "steps": steps}));
    let record = client.run(&def, Value::Null).await.expect("runs");
    assert_eq!(record.status, RunStatus::Completed, "{:?}", record.errors);
    assert_eq!(record.abridged, None);
    let at_once = most_at_once(&record);
    assert!(at_once > 1000, "at most {at_once} of 1,500 sleeps ran at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_accepted_before_is_checked_again_when_its_tool_changes() {
    // The API reuses the plan of a definition it validated before, but only against the
    // same tools: a tool whose params schema changes makes it validate again.
    let cluster = Cluster::start(0).await;
    let client = cluster.client().await;
    let js = async_nats::jetstream::new(client.nats().clone());
    let tools = js.get_key_value(weft_protocol::subjects::TOOLS_BUCKET).await.expect("tools bucket");
    let advertise = |kind: &str| {
        let ad = json!({"spec": {"name": "count", "params": {"type": "object", "required": ["n"],
                        "properties": {"n": {"type": kind}}}},
                        "worker": "test", "concurrency": 1, "at_ms": weft_protocol::wire::now_ms()});
        serde_json::to_vec(&ad).expect("json")
    };
    tools.put("count.test", advertise("integer").into()).await.expect("advertised");
    let def = inline(json!({"name": "counting", "steps": [{"id": "c", "tool": "count", "params": {"n": 3}}]}));
    let first = client.submit(&def, Value::Null).await.expect("valid against an integer n");
    client.submit(&def, Value::Null).await.expect("valid again (the cached plan)");
    client.cancel(first, Some("no worker serves `count`".into())).await.expect("cancelled");

    tools.put("count.test", advertise("string").into()).await.expect("advertised again");
    // The API reads the catalogue again once its copy is older than 2 s.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let refused = loop {
        match client.submit(&def, Value::Null).await {
            Err(e) => break e,
            Ok(run) => {
                let _ = client.cancel(run, None).await;
                assert!(tokio::time::Instant::now() < deadline, "still accepted against a string `n`");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    };
    let message = refused.to_string();
    assert!(message.contains("invalid") && message.contains("steps[0].params.n"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_panics_fails_its_step_and_the_worker_lives_on() {
    let cluster = Cluster::start(0).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut registry = weft_worker::Registry::with_builtins();
    registry.register(std::sync::Arc::new(Panics)).expect("registered");
    let config = weft_worker::Config {
        nats_url: cluster.nats.url.clone(),
        worker_id: "embedded".into(),
        ..weft_worker::Config::default()
    };
    let worker = tokio::spawn(weft_worker::run_with_registry(config, registry, shutdown.clone()));
    let client = cluster.client().await;
    while !client.tools().await.unwrap_or_default().iter().any(|a| a.spec.name == "panics") {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let def = inline(json!({"name": "panic", "steps": [
        {"id": "p", "tool": "panics", "retry": {"max_attempts": 2, "backoff": "10ms"}}
    ]}));
    let record = client.run(&def, Value::Null).await.expect("runs");
    assert_eq!(record.status, RunStatus::Failed);
    let attempts = &record.steps["p"].attempts;
    assert_eq!(attempts.len(), 2, "a panic is retryable like any failure");
    let error = attempts[1].error.clone().expect("an error");
    assert_eq!(error.code.as_deref(), Some("PANIC"));
    assert!(error.message.contains("tool bug on attempt 2"), "{error:?}");
    let next = inline(json!({"name": "next", "steps": [{"id": "e", "tool": "echo", "params": {"ok": true}}]}));
    let next = client.run(&next, Value::Null).await.expect("runs");
    assert_eq!(next.steps["e"].attempts[0].worker.as_deref(), Some("embedded"), "the worker lives on");
    shutdown.cancel();
    worker.await.expect("joined").expect("worker stopped cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_saga_compensates_through_workers_in_reverse_order() {
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    let input = json!({"order_id": "ORD123", "product_id": "PROD123", "quantity": 2, "amount": 100.0});
    let record = client.run(&example("order_saga.json"), input).await.expect("saga runs");
    assert_eq!(record.status, RunStatus::Compensated, "{record:#?}\n{}", cluster.logs());
    assert_eq!(record.steps["shipping"].status, StepStatus::Failed);
    // Each compensation ran on a worker, after the failure, refund before release.
    let undo = |step: &str| {
        let c = record.steps[step].compensation.as_ref().expect("compensated");
        assert_eq!(c.status, StepStatus::Completed);
        let a = c.attempts.last().expect("an attempt");
        assert!(a.worker.as_deref().is_some_and(|w| w.starts_with('w')), "ran on a worker: {a:?}");
        (a.started_ms.expect("started"), a.finished_ms.expect("finished"))
    };
    let (refund, release) = (undo("payment"), undo("reserve"));
    let failed_at = record.steps["shipping"].attempts.last().and_then(|a| a.finished_ms).expect("shipping ended");
    assert!(failed_at <= refund.0 && refund.1 <= release.0, "refund {refund:?} then release {release:?}");
    // The timeline shows the compensations, in order.
    let table = weft_client::timeline::table(&record);
    let refund_line = table.find("undo payment").expect("refund in the timeline");
    let release_line = table.find("undo reserve").expect("release in the timeline");
    assert!(refund_line < release_line, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_definitions_by_name_and_version() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let version = |v: u32, ms: u64| {
        inline(json!({"name": "order", "version": v, "steps": [
            {"id": "wait", "tool": "sleep", "params": {"ms": ms}},
            {"id": "out", "tool": "echo", "params": {"v": v, "after": "{wait.slept_ms}"}}
        ]}))
    };
    client.deploy(&version(1, 800)).await.expect("v1 registered");
    client.deploy(&version(1, 800)).await.expect("the same content again is fine");
    let clash = client.deploy(&version(1, 5)).await.expect_err("other content under v1");
    assert!(clash.to_string().contains("give this one a new version"), "{clash}");
    let bad = inline(json!({"name": "bad", "steps": [{"id": "x", "tool": "nope"}]}));
    assert!(client.deploy(&bad).await.is_err(), "validated before it is stored");

    // Started on v1; v2 is registered meanwhile; the run keeps v1.
    let latest = client.definition("order", None).await.expect("latest");
    let first = client.submit(&latest, Value::Null).await.expect("submitted");
    client.deploy(&version(2, 10)).await.expect("v2 registered");
    let first = client.wait(first).await.expect("ends");
    assert_eq!(first.steps["out"].output.as_ref().map(|o| o["v"].clone()), Some(json!(1)));
    assert_eq!(client.definitions().await.expect("listed"), [("order".to_owned(), 1), ("order".to_owned(), 2)]);
    let latest = client.definition("order", None).await.expect("latest");
    assert_eq!(latest.version, 2);
    // The CLI runs by name and version.
    let out = std::process::Command::new(weft_tests::bin("weft"))
        .args(["run", "--name", "order", "--version", "1", "--json", "-q"])
        .env("NATS_URL", &cluster.nats.url)
        .output()
        .expect("weft runs");
    let record: RunRecord = serde_json::from_slice(&out.stdout).expect("a record");
    assert_eq!((record.version, record.status), (1, RunStatus::Completed));
}

/// What each example ends as with the demo tools and its sample input.
fn expected_outcome(file: &str) -> &'static str {
    match file {
        // The seed's sagas: shipping (or the last step) always fails, so they compensate.
        "order_saga.json" | "patterns/saga.json" => "compensated",
        // Waits for a human approval (`weft signal`).
        "patterns/wait_and_signal.json" => "running",
        _ => "completed",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_with_the_demo_tools() {
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    // The sub-workflow example runs this one as a child.
    let child = WorkflowDef::load(&repo_root().join("examples/chain_notify.json")).expect("parses");
    client.deploy(&child).await.expect("registered");
    // The pools the examples hold units of (deploy/local.sh sets the same).
    for (pool, capacity) in [("api", 2), ("cpu", 2), ("gpu", 1)] {
        client.set_pool(pool, capacity).await.expect("pool set");
    }
    // Submit every example with its sample input, all at once.
    let mut submitted = Vec::new();
    let mut outputs = std::collections::BTreeMap::new();
    let mut report = Vec::new();
    for path in weft_tests::example_files() {
        let rel = path.strip_prefix(repo_root().join("examples")).expect("under examples").display().to_string();
        let input_file = repo_root().join("examples/inputs").join(rel.replace("patterns/", "patterns_"));
        let input: Value =
            std::fs::read_to_string(&input_file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(json!({}));
        let def = WorkflowDef::load(&path).expect("example parses");
        match client.submit(&def, input).await {
            Ok(id) => {
                // The state machine's `start` event.
                if rel == "patterns/state_machine.json" {
                    client.signal(id, "start", json!({})).await.expect("signalled");
                }
                submitted.push((rel, id));
            }
            Err(e) => report.push((rel, format!("error: {e}"))),
        }
    }
    // Wait for them to end; a run still going at the deadline is reported `running`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    let mut pending = submitted;
    let waiting = |p: &[(String, uuid::Uuid)]| p.iter().all(|(rel, _)| expected_outcome(rel) == "running");
    while !pending.is_empty() && !waiting(&pending) && std::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for (rel, id) in pending {
            match client.status(id).await {
                Ok(r) if r.status.is_terminal() => {
                    report.push((rel.clone(), r.status.as_str().to_owned()));
                    outputs.insert(rel, r.output.unwrap_or(Value::Null));
                }
                _ => still.push((rel, id)),
            }
        }
        pending = still;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    report.extend(pending.into_iter().map(|(rel, _)| (rel, "running".to_owned())));
    report.sort();
    let wrong: Vec<String> = report
        .iter()
        .filter(|(file, outcome)| outcome != expected_outcome(file))
        .map(|(file, outcome)| format!("{file}: {outcome} (expected {})", expected_outcome(file)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What the constructs computed, read at a JSON pointer of each run's output.
    let wrong: Vec<String> = EXPECTED_OUTPUTS
        .iter()
        .filter_map(|(file, pointer, expected)| {
            let expected: Value = serde_json::from_str(expected).expect("expected value is JSON");
            let found = outputs.get(*file).and_then(|o| o.pointer(pointer)).cloned();
            (found.as_ref() != Some(&expected)).then(|| format!("{file} {pointer}: {found:?}, expected {expected}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Outputs of the examples built on constructs, with the demo tools and sample inputs.
const EXPECTED_OUTPUTS: &[(&str, &str, &str)] = &[
    // Parallel OCR and metadata, a switch on the type, a loop over pages, quality checked.
    ("document_processing.json", "/doc_type", r#""invoice""#),
    ("document_processing.json", "/pages/2/page_number", "3"),
    ("document_processing.json", "/quality/passed", "true"),
    // for_each: results in input order, each with its index.
    ("patterns/for_each.json", "/2", r#"{"position": 2, "product_id": "P3", "in_stock": true, "quantity": 5}"#),
    ("patterns/map_reduce.json", "/count", "3"),
    // switch: the `medium` case of a 91% disk.
    ("patterns/switch_case.json", "/severity", r#""medium""#),
    // loop: polled until done.
    ("patterns/while_loop.json", "", r#"{"status": "done", "progress": 100, "polls": 2}"#),
    ("patterns/pagination.json", "/total", "5"),
    // race: the fastest branch, and the best score among all.
    ("patterns/scatter_gather.json", "", r#"{"fastest": "beta", "best": "gamma", "best_score": 0.9}"#),
    // fallback: the primary fails, the backup answers.
    ("patterns/fallback_chain.json", "/source", r#""backup""#),
    ("patterns/parallel_min_successes.json", "/notify_all/sms/sent", "true"),
    ("patterns/pipeline.json", "", "[7, 9, 11]"),
    // A registered workflow run as a child per user, in order.
    ("patterns/sub_workflow.json", "/1/user/id", r#""456""#),
    ("patterns/sub_workflow.json", "/1/notification/sent", "true"),
    ("patterns/state_machine.json", "/state", r#""done""#),
    ("patterns/dynamic_workflow.json", "/type", r#""simple""#),
];

/// Deduplication rests on `Nats-Msg-Id`: a result published twice (a worker that died
/// after publishing, before acking) and an event published again are stored once only if
/// the stored messages carry their ids, trace headers or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_events_are_stored_with_their_message_ids() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "ids", "steps": [
        {"id": "a", "tool": "echo", "params": {"x": 1}},
        {"id": "nap", "tool": "sleep", "params": {"ms": 60000}, "depends_on": ["a"]}
    ]}));
    let run = client.submit(&def, Value::Null).await.expect("submitted");
    weft_tests::wait::record(&client, run, "napping", |r| {
        r.steps.get("nap").is_some_and(|s| s.status == StepStatus::Running)
    })
    .await;
    let js = async_nats::jetstream::new(client.nats().clone());
    let id_of =
        |m: &async_nats::jetstream::message::StreamMessage| m.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned());
    // The run log lives while the run does.
    let inputs = js.get_stream("WEFT_INPUTS").await.expect("inputs stream");
    let partition = weft_protocol::subjects::partition_of(run, 8);
    let result = inputs
        .get_last_raw_message_by_subject(&weft_protocol::subjects::results(partition, run))
        .await
        .expect("a's result in the run log");
    assert_eq!(id_of(&result).as_deref(), Some(format!("result:task:{run}:a:1").as_str()), "{:?}", result.headers);
    let events = js.get_stream("WEFT_EVENTS").await.expect("events stream");
    let started = events
        .get_first_raw_message_by_subject(weft_protocol::subjects::events(run), 1)
        .await
        .expect("the run's first event");
    assert_eq!(id_of(&started).as_deref(), Some(format!("event:{run}:1").as_str()), "{:?}", started.headers);
    client.cancel(run, None).await.expect("cancelled");
}
