//! Nothing lost: real processes killed with SIGKILL, a NATS server stopped and started,
//! and every accepted run still reaches the outcome it would have reached undisturbed.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunRecord, RunStatus, StepStatus};
use weft_tests::cluster::{Cluster, FAST};
use weft_tests::{repo_root, wait};

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// A random number in `0..n` (no crate for this).
fn random(n: u64) -> u64 {
    RandomState::new().hash_one(Instant::now()) % n.max(1)
}

/// What a run must end as.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Chain,
    FanOut,
    Saga,
    Retries,
    Timeout,
    Constructs,
    Child,
}

/// The registered workflow the `Child` shape runs as a sub-workflow.
fn napper() -> WorkflowDef {
    inline(json!({"name": "napper", "version": 1, "steps": [
        {"id": "nap", "tool": "sleep", "params": {"ms": "{input.ms}"}},
        {"id": "say", "tool": "echo", "params": {"slept": "{nap.slept_ms}"}}
    ], "output": "{say}"}))
}

fn workflow(shape: Shape) -> (WorkflowDef, Value) {
    match shape {
        Shape::Chain => (
            inline(json!({"name": "chain", "steps": [
                {"id": "s1", "tool": "sleep", "params": {"ms": 400}},
                {"id": "e2", "tool": "echo", "params": {"n": "{s1.slept_ms}"}},
                {"id": "s3", "tool": "sleep", "params": {"ms": 400}, "depends_on": ["e2"]},
                {"id": "e4", "tool": "echo", "params": {"final": "{e2.n}", "after": "{s3.slept_ms}"}}
            ], "output": {"result": "{e4.final}"}})),
            Value::Null,
        ),
        Shape::FanOut => {
            let mut steps: Vec<Value> = (1..=6)
                .map(|i| json!({"id": format!("f{i}"), "tool": "sleep", "params": {"ms": 300 + 100 * i}}))
                .collect();
            steps.push(json!({"id": "join", "tool": "echo", "params": {"a": "{f1.slept_ms}", "f": "{f6.slept_ms}"}}));
            (inline(json!({"name": "fanout", "steps": steps})), Value::Null)
        }
        Shape::Saga => {
            let def = WorkflowDef::load(&repo_root().join("examples/order_saga.json")).expect("example");
            (def, json!({"order_id": "ORD123", "product_id": "PROD123", "quantity": 2, "amount": 100.0}))
        }
        Shape::Retries => (
            inline(json!({"name": "retries", "steps": [
                {"id": "f", "tool": "fail", "params": {"message": "not yet", "times": 2},
                 "retry": {"max_attempts": 3, "backoff": "700ms", "multiplier": 1, "jitter": 0}}
            ]})),
            Value::Null,
        ),
        Shape::Constructs => (
            inline(json!({"name": "constructs", "steps": [
                {"id": "each", "for_each": {"items": [300, 500, 400], "as": "ms", "concurrency": 2,
                  "do": [{"id": "nap", "tool": "sleep", "params": {"ms": "{ms}"}}]}},
                {"id": "quick", "race": {"branches": [
                    {"id": "fast", "tool": "sleep", "params": {"ms": 200}},
                    {"id": "slow", "tool": "sleep", "params": {"ms": 4000}}
                ]}},
                {"id": "poll", "loop": {"max_iterations": 5, "until": {"eq": ["{iteration}", 2]},
                  "do": [{"id": "tick", "tool": "echo", "params": {"n": "{iteration}", "prev": "{previous}"}}]},
                 "depends_on": ["each"]}
            ], "output": {"naps": "{each}", "race": "{quick}", "poll": "{poll}"}})),
            Value::Null,
        ),
        Shape::Child => (
            inline(json!({"name": "parent", "steps": [
                {"id": "kids", "for_each": {"items": [500, 900],
                  "do": [{"id": "kid", "workflow": {"name": "napper", "input": {"ms": "{item}"}}}]}}
            ], "output": "{kids}"})),
            Value::Null,
        ),
        Shape::Timeout => (
            inline(json!({"name": "timeout", "steps": [
                {"id": "slow", "tool": "sleep", "params": {"ms": 20000}, "timeout": "1500ms"}
            ]})),
            Value::Null,
        ),
    }
}

/// Checks a final record against what its shape must give, attempt counts included: a
/// result applied twice or a task dispatched again as a new attempt would show here.
fn check(shape: Shape, r: &RunRecord) -> Result<(), String> {
    let attempts = |step: &str| r.steps[step].attempts.len();
    let ok = match shape {
        Shape::Chain => {
            r.status == RunStatus::Completed
                && r.output == Some(json!({"result": 400}))
                && ["s1", "e2", "s3", "e4"].iter().all(|s| attempts(s) == 1)
        }
        Shape::FanOut => {
            r.status == RunStatus::Completed
                && r.steps["join"].output == Some(json!({"a": 400, "f": 900}))
                && r.steps.keys().all(|s| attempts(s) == 1)
        }
        Shape::Saga => {
            r.status == RunStatus::Compensated
                && ["payment", "reserve"].iter().all(|s| {
                    r.steps[*s]
                        .compensation
                        .as_ref()
                        .is_some_and(|c| c.status == StepStatus::Completed && c.attempts.len() == 1)
                })
        }
        Shape::Retries => {
            r.status == RunStatus::Completed && attempts("f") == 3 && r.steps["f"].output == Some(json!({"attempt": 3}))
        }
        Shape::Timeout => {
            r.status == RunStatus::Failed
                && attempts("slow") == 1
                && r.steps["slow"].attempts[0].error.as_ref().and_then(|e| e.code.as_deref()) == Some("TIMEOUT")
        }
        Shape::Child => {
            r.status == RunStatus::Completed
                && r.output == Some(json!([{"slept": 500}, {"slept": 900}]))
                && r.steps.values().all(|s| s.attempts.len() == 1)
        }
        Shape::Constructs => {
            let naps = json!([{"slept_ms": 300}, {"slept_ms": 500}, {"slept_ms": 400}]);
            r.status == RunStatus::Completed
                && r.output
                    == Some(
                        json!({"naps": naps, "race": {"slept_ms": 200}, "poll": {"n": 2, "prev": {"n": 1, "prev": {"n": 0, "prev": null}}}}),
                    )
                && r.steps["slow"].status == StepStatus::Cancelled
                && r.steps.values().all(|s| s.attempts.len() == 1)
                && r.steps.contains_key("poll[2].tick")
        }
    };
    if ok { Ok(()) } else { Err(format!("{shape:?} ended wrong: {r:#?}")) }
}

/// Waits until every run has ended; returns the records.
async fn wait_all(
    client: &WeftClient,
    runs: &[(Uuid, Shape)],
    limit: Duration,
) -> Result<HashMap<Uuid, RunRecord>, String> {
    let deadline = Instant::now() + limit;
    let mut done = HashMap::new();
    while done.len() < runs.len() {
        for (id, _) in runs {
            if done.contains_key(id) {
                continue;
            }
            if let Ok(record) = client.status(*id).await
                && record.status.is_terminal()
            {
                done.insert(*id, record);
            }
        }
        if Instant::now() > deadline {
            let stuck: Vec<String> =
                runs.iter().filter(|(id, _)| !done.contains_key(id)).map(|(id, s)| format!("{id} {s:?}")).collect();
            return Err(format!("{} runs stuck: {stuck:?}", stuck.len()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_crashes_lose_nothing() {
    let mut cluster = Cluster::start_with(1, 2, FAST).await;
    let client = cluster.client().await;
    client.deploy(&napper()).await.expect("registered");
    let shapes =
        [Shape::Chain, Shape::FanOut, Shape::Saga, Shape::Retries, Shape::Timeout, Shape::Constructs, Shape::Child];
    let mut runs = Vec::new();
    for i in 0..50 {
        let shape = shapes[i % shapes.len()];
        let (def, input) = workflow(shape);
        runs.push((client.submit(&def, input).await.expect("accepted"), shape));
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    // SIGKILL the coordinator at random moments while runs are in flight (the first soon
    // after the last submit, when every run still is), restarting it each time.
    for crash in 0..3 {
        let delay = if crash == 0 { 100 + random(400) } else { 300 + random(1500) };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        cluster.crash_coordinator(FAST);
    }
    let records = match wait_all(&client, &runs, Duration::from_secs(120)).await {
        Ok(r) => r,
        Err(e) => panic!("{e}\n{}", cluster.logs()),
    };
    let wrong: Vec<String> = runs.iter().filter_map(|(id, shape)| check(*shape, &records[id]).err()).collect();
    assert!(wrong.is_empty(), "{} runs ended differently:\n{}", wrong.len(), wrong.join("\n"));
    // The crashes did hit runs in flight: restarted coordinators resumed some.
    let logs = cluster.logs();
    assert!(logs.matches("resuming").count() > 0, "no run was in flight at a crash:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_share_runs_and_one_takes_over_when_the_other_dies() {
    let mut cluster = Cluster::start_with(2, 2, FAST).await;
    let client = cluster.client().await;
    let submit = |client: WeftClient, n: usize| async move {
        let mut runs = Vec::new();
        for i in 0..n {
            let shape = [Shape::Chain, Shape::Retries, Shape::FanOut][i % 3];
            let (def, input) = workflow(shape);
            runs.push((client.submit(&def, input).await.expect("accepted"), shape));
        }
        runs
    };
    // Both run at once: every run is applied by one of them, once.
    let first = submit(client.clone(), 12).await;
    let records =
        wait_all(&client, &first, Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    for (id, shape) in &first {
        check(*shape, &records[id]).unwrap_or_else(|e| panic!("{e}"));
    }
    // Runs in flight when the first coordinator dies for good: the other takes them over.
    let second = submit(client.clone(), 12).await;
    running(&client, &second).await;
    // Kill one that owns partitions (the server may have pinned them all to either).
    let first_owns = cluster.coordinator.logs().contains("partition owned");
    let (dead, survivor) = if first_owns {
        cluster.coordinator.kill();
        (cluster.coordinator.name.clone(), &cluster.more_coordinators[0])
    } else {
        cluster.more_coordinators[0].kill();
        (cluster.more_coordinators[0].name.clone(), &cluster.coordinator)
    };
    let survivor_logs = survivor.logs();
    let records =
        wait_all(&client, &second, Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    for (id, shape) in &second {
        check(*shape, &records[id]).unwrap_or_else(|e| panic!("{e}"));
    }
    // The runs may all have lived on the survivor's partitions and ended before the dead
    // one's pins expired; ticks make the survivor take those partitions over regardless.
    let before = survivor_logs.matches("partition owned").count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while survivor.logs().matches("partition owned").count() <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the survivor took nothing over from {dead}:\n{}",
            survivor.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_task_is_redelivered_and_a_live_long_tool_keeps_its_task() {
    let mut cluster = Cluster::start_with(1, 1, FAST).await;
    let client = cluster.client().await;
    // A tool running five times the ack wait on a live worker keeps its task.
    let long = inline(json!({"name": "long", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 15000}}]}));
    let long_run = client.submit(&long, Value::Null).await.expect("accepted");
    // Another, on the worker about to die.
    let doomed = inline(json!({"name": "doomed", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 4000}}]}));
    let doomed_run = client.submit(&doomed, Value::Null).await.expect("accepted");
    for run in [long_run, doomed_run] {
        wait::record(&client, run, "picked up by w1", |r| r.steps["s"].status == StepStatus::Running).await;
    }
    cluster.add_worker("w2", FAST);
    cluster.wait_ready().await;
    cluster.workers[0].kill();
    let doomed = client.wait(doomed_run).await.expect("doomed run ends");
    assert_eq!(doomed.status, RunStatus::Completed, "{doomed:#?}");
    let a = &doomed.steps["s"].attempts;
    assert_eq!(a.len(), 1, "a redelivery is the same attempt");
    assert_eq!(a[0].worker.as_deref(), Some("w2"), "redelivered to the live worker");
    // The long one was on the killed worker too: redelivered; now run it on a live worker
    // and check nothing redelivers it while it runs.
    let long = client.wait(long_run).await.expect("long run ends");
    assert_eq!(long.status, RunStatus::Completed);
    let long2 = inline(json!({"name": "long2", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 12000}}]}));
    let again = client.run(&long2, Value::Null).await.expect("long run on a live worker");
    assert_eq!(again.status, RunStatus::Completed);
    let js = async_nats::jetstream::new(client.nats().clone());
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("WEFT_TASKS")
        .await
        .expect("tasks stream")
        .get_consumer("tool-sleep")
        .await
        .expect("sleep consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.num_redelivered, 0, "a live tool's task was redelivered: {info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_complete_across_a_nats_restart() {
    let mut cluster = Cluster::start_with(1, 2, FAST).await;
    let client = cluster.client().await;
    let mut runs = Vec::new();
    for i in 0..10 {
        let shape = [Shape::Chain, Shape::FanOut, Shape::Retries][i % 3];
        let (def, input) = workflow(shape);
        runs.push((client.submit(&def, input).await.expect("accepted"), shape));
    }
    running(&client, &runs).await;
    cluster.nats.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.nats.restart();
    let client = cluster.client().await;
    let records = match wait_all(&client, &runs, Duration::from_secs(90)).await {
        Ok(r) => r,
        Err(e) => panic!("{e}\n{}", cluster.logs()),
    };
    for (id, shape) in &runs {
        check(*shape, &records[id]).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(cluster.coordinator.alive() && cluster.workers.iter_mut().all(|w| w.alive()), "{}", cluster.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_signals_and_waits_across_a_crash() {
    let mut cluster = Cluster::start_with(1, 1, FAST).await;
    let client = cluster.client().await;

    // Pause: the running step finishes, the next one does not start until resumed.
    let chain = inline(json!({"name": "pausable", "steps": [
        {"id": "first", "tool": "sleep", "params": {"ms": 800}},
        {"id": "second", "tool": "echo", "params": {"after": "{first.slept_ms}"}}
    ]}));
    let run = client.submit(&chain, Value::Null).await.expect("accepted");
    wait::record(&client, run, "running", |r| r.steps["first"].status == StepStatus::Running).await;
    client.pause(run).await.expect("paused");
    let paused =
        wait::record(&client, run, "first done while paused", |r| r.steps["first"].status == StepStatus::Completed)
            .await;
    assert_eq!(paused.status, RunStatus::Paused);
    assert_eq!(paused.steps["second"].status, StepStatus::Pending, "nothing starts while paused");
    let resumed_at = weft_protocol::wire::now_ms();
    client.resume(run).await.expect("resumed");
    let done = client.wait(run).await.expect("ends");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.steps["second"].output, Some(json!({"after": 800})));
    let second_at = done.steps["second"].attempts[0].dispatched_ms;
    assert!(second_at >= resumed_at, "`second` started at {second_at}, before the resume at {resumed_at}");

    // Human approval: a signal step waits for `weft signal`, across a coordinator crash.
    let approval = inline(json!({"name": "approval", "steps": [
        {"id": "draft", "tool": "echo", "params": {"text": "release notes"}},
        {"id": "review", "signal": {"name": "approve", "timeout": "5m"}, "depends_on": ["draft"]},
        {"id": "publish", "tool": "echo", "params": {"by": "{review.by}", "text": "{draft.text}"}}
    ]}));
    let run = client.submit(&approval, Value::Null).await.expect("accepted");
    wait::record(&client, run, "waiting for approval", |r| r.steps["review"].status == StepStatus::Running).await;
    cluster.crash_coordinator(FAST);
    client.signal(run, "approve", json!({"by": "alice"})).await.expect("signal sent");
    let done = client.wait(run).await.expect("ends");
    assert_eq!(done.status, RunStatus::Completed, "{done:#?}\n{}", cluster.logs());
    assert_eq!(done.steps["publish"].output, Some(json!({"by": "alice", "text": "release notes"})));

    // A wait's timer fires after a crash, on time.
    let waiting = inline(json!({"name": "waiting", "steps": [
        {"id": "nap", "wait": {"duration": "3s"}},
        {"id": "after", "tool": "echo", "params": {"waited": "{nap.waited_ms}"}}
    ]}));
    let run = client.submit(&waiting, Value::Null).await.expect("accepted");
    wait::record(&client, run, "waiting", |r| r.steps["nap"].status == StepStatus::Running).await;
    cluster.crash_coordinator(FAST);
    let done = client.wait(run).await.expect("ends");
    assert_eq!(done.status, RunStatus::Completed, "{done:#?}\n{}", cluster.logs());
    let waited = done.steps["after"].output.as_ref().and_then(|o| o["waited"].as_u64()).unwrap_or(0);
    assert!(waited >= 3000, "the wait was cut short: {waited}ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_leave_nothing_behind_but_their_record_for_the_retention() {
    // A retention long enough that a run's final record outlives the client's last read of
    // it on a loaded machine (3 s did not, beside a CPU-heavy test).
    let env = [("WEFT_PIN_TIMEOUT", "2"), ("WEFT_RETENTION", "8s")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "brief", "steps": [{"id": "e", "tool": "echo", "params": {"x": 1}}]}));
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(client.run(&def, Value::Null).await.expect("runs").run_id);
    }
    // The run log behind finished runs is compacted (each second, in the background): only
    // their records remain.
    let js = async_nats::jetstream::new(client.nats().clone());
    let stream = js.get_stream("WEFT_INPUTS").await.expect("inputs stream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for id in &ids {
        let partition = weft_protocol::subjects::partition_of(*id, 8);
        for subject in
            [weft_protocol::subjects::input(partition, *id), weft_protocol::subjects::results(partition, *id)]
        {
            while stream.get_last_raw_message_by_subject(&subject).await.is_ok() {
                assert!(tokio::time::Instant::now() < deadline, "{subject} still holds entries");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // Nothing of them stays in the coordinator: no active run.
    let active: Vec<_> =
        client.list(Some(100)).await.expect("list").into_iter().filter(|r| !r.status.is_terminal()).collect();
    assert!(active.is_empty(), "{active:?}");
    // Records go after the retention.
    assert!(client.status(ids[0]).await.is_ok());
    let gone = wait::until_ok("the record expires", Duration::from_secs(40), || async {
        match client.status(ids[0]).await {
            Err(e) => Ok(e),
            Ok(r) => Err(format!("still stored: {:?}", r.status)),
        }
    })
    .await;
    assert!(gone.is_not_found(), "{gone}");
}

/// Waits until one of `runs` has a step running.
async fn running(client: &WeftClient, runs: &[(Uuid, Shape)]) {
    wait::until_ok("a run in flight", Duration::from_secs(30), || async {
        for (id, _) in runs {
            if client.status(*id).await.is_ok_and(|r| r.steps.values().any(|s| s.status == StepStatus::Running)) {
                return Ok(());
            }
        }
        Err("none yet")
    })
    .await;
}

/// When a coordinator logged a line containing every one of `needles`, from the timestamp
/// that starts it.
fn logged_at(logs: &str, needles: &[&str]) -> Option<std::time::SystemTime> {
    let line = logs.lines().find(|l| needles.iter().all(|n| l.contains(n)))?;
    humantime::parse_rfc3339_weak(line.split_whitespace().next()?.trim_end_matches('Z')).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_while_a_partition_of_ten_thousand_runs_is_replayed() {
    // Two partitions: 10,000 runs waiting for a signal in partition 0, one in partition 1.
    let env = [("WEFT_PIN_TIMEOUT", "2"), ("WEFT_PARTITIONS", "2")];
    let mut cluster = Cluster::start_with(1, 0, &env).await;
    let client = cluster.client().await;
    let held = inline(json!({"name": "held", "steps": [{"id": "hold", "signal": {"name": "go"}}]}));
    let id_in = |partition: u128| loop {
        let id = Uuid::now_v7();
        if id.as_u128() % 2 == partition {
            break id;
        }
    };
    let probe = id_in(1);
    client.submit_with_id(probe, &held, Value::Null).await.expect("probe accepted");
    let ids: Vec<Uuid> = (0..10_000).map(|_| id_in(0)).collect();
    futures::stream::iter(ids.iter().copied())
        .map(|id| {
            let (client, held) = (&client, &held);
            async move { client.submit_with_id(id, held, Value::Null).await }
        })
        .buffer_unordered(64)
        .for_each(|accepted| async move {
            accepted.expect("accepted");
        })
        .await;

    // A new coordinator takes both partitions over; the probe's status is asked for all
    // along, and each answer's time is noted.
    cluster.crash_coordinator(&env);
    let mut answered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cluster.coordinator.logs().contains("partition owned partition=0") {
        let sent = std::time::SystemTime::now();
        if client.status(probe).await.is_ok() {
            answered.push((sent, std::time::SystemTime::now()));
        }
        assert!(Instant::now() < deadline, "partition 0 never owned:\n{}", cluster.coordinator.logs());
    }
    let logs = cluster.coordinator.logs();
    let began = logged_at(&logs, &["claiming the partition", "partition=0"]).expect("claim began");
    let ended = logged_at(&logs, &["partition read, its runs rebuilt", "partition=0"]).expect("replay ended");
    assert!(logs.contains("partition owned partition=0 runs=10000"), "{logs}");
    // A status asked after the replay began and answered before it ended.
    let during = answered.iter().filter(|(sent, got)| *sent > began && *got < ended).count();
    assert!(during > 0, "no status answered while partition 0 was replayed ({began:?} to {ended:?}): {answered:?}");
    // Every run is still there, and goes on: the probe and one of the 10,000 complete.
    for run in [probe, ids[0]] {
        client.signal(run, "go", json!(true)).await.expect("signalled");
        assert_eq!(client.wait(run).await.expect("ends").status, RunStatus::Completed);
    }
}

/// A coordinator that just died may still hold its API subscription on the server: a read
/// sent to it is never answered. The client asks again after a short wait and gets its
/// answer from a live coordinator, instead of failing after its whole timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_lost_with_a_dead_coordinator_is_asked_again() {
    let nats = weft_tests::nats_server::NatsServer::start();
    // The dead coordinator: in the API's queue group, answering nothing.
    let dead = async_nats::connect(&nats.url).await.expect("connects");
    let silent = dead
        .queue_subscribe(weft_protocol::subjects::api("status"), weft_protocol::subjects::API_QUEUE.to_owned())
        .await
        .expect("subscribed");
    dead.flush().await.expect("flushed");
    let client = WeftClient::connect_with(&nats.url, weft_client::ClientOptions { timeout: Duration::from_secs(20) })
        .await
        .expect("client connects");
    let asked = Instant::now();
    let status = tokio::spawn({
        let client = client.clone();
        async move { client.status(Uuid::now_v7()).await }
    });
    // The first try has gone to the silent one; then it is gone, and a live one starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(silent);
    dead.flush().await.expect("flushed");
    let dir = tempfile::tempdir().expect("dir");
    let _live = weft_tests::cluster::spawn("coordinator", "weft-coordinator", &["--nats", &nats.url], &[], dir.path());
    let answer = status.await.expect("the status task ends");
    assert!(
        matches!(&answer, Err(e) if e.is_not_found()),
        "a live coordinator's answer (no such run), not a timeout: {answer:?} after {:?}",
        asked.elapsed()
    );
}
