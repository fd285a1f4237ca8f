//! Hostile and malformed input on the live services: entries on a run's log that no
//! honest participant writes, and garbage where records and events are read. Each is
//! refused or ignored, named where it is, and nothing else changes.

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::subjects;
use weft_protocol::wire::{Outcome, RunStatus, StepStatus, TaskResult};
use weft_tests::cluster::Cluster;
use weft_tests::{text, wait};

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// A result nobody dispatched, for `step` attempt `attempt` of `run`.
fn forged(run: uuid::Uuid, step: &str, attempt: u32, started_ms: u64) -> Vec<u8> {
    let result = TaskResult {
        run_id: run,
        step_id: step.to_owned(),
        attempt,
        compensation: false,
        worker: "mallory".into(),
        started_ms,
        finished_ms: 0,
        outcome: Outcome::Ok(json!({"forged": true})),
        usage: None,
        token: String::new(),
    };
    serde_json::to_vec(&result).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_nobody_asked_for_end_no_step() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let js = async_nats::jetstream::new(client.nats().clone());
    let def = inline(json!({"name": "held", "steps": [
        {"id": "approval", "signal": {"name": "approve"}},
        {"id": "pause", "wait": {"duration": "1h"}},
        {"id": "each", "for_each": {"items": [1], "do": [{"id": "nap", "tool": "sleep", "params": {"ms": 60000}}]}},
        {"id": "after", "tool": "echo", "params": {"approved": "{approval}"}}
    ]}));
    let run = client.submit(&def, Value::Null).await.expect("accepted");
    wait::record(&client, run, "napping", |r| {
        r.steps.get("each[0].nap").is_some_and(|s| s.status == StepStatus::Running)
    })
    .await;

    // Results for a signal step, a wait, a construct, an attempt never dispatched and a
    // path the run does not have: each ignored, and logged with its log sequence.
    let log = subjects::input(subjects::partition_of(run, 8), run);
    // The last is the attempt in flight itself, without its task's token.
    let forgeries =
        [("approval", 1), ("pause", 1), ("each", 1), ("each[0].nap", 7), ("nowhere", 1), ("each[0].nap", 1)];
    for (step, attempt) in forgeries {
        js.publish(log.clone(), forged(run, step, attempt, 0).into()).await.expect("published").await.expect("stored");
    }
    let warned = wait::log_lines(&cluster.coordinator, &["unexpected input ignored", "mallory", "seq="], 6).await;
    assert!(warned.iter().any(|l| l.contains("does not carry its task's token")), "{warned:#?}");
    assert!(warned.iter().any(|l| l.contains("not a tool call")), "{warned:#?}");
    assert!(warned.iter().any(|l| l.contains("never dispatched")), "{warned:#?}");
    assert!(warned.iter().any(|l| l.contains("no step instance")), "{warned:#?}");

    // The signal arrives after them: the approval takes its data, the rest still waits.
    client.signal(run, "approve", json!({"approved": true})).await.expect("signalled");
    let record = wait::record(&client, run, "approved", |r| r.steps["approval"].status == StepStatus::Completed).await;
    assert_eq!(record.steps["approval"].output, Some(json!({"approved": true})));
    assert_eq!(record.steps["pause"].status, StepStatus::Running, "{record:#?}");
    assert_eq!(record.steps["each"].status, StepStatus::Running, "{record:#?}");
    assert_eq!(record.steps["each[0].nap"].status, StepStatus::Running, "{record:#?}");

    // A worker's start time of u64::MAX is kept within the run: the Gantt chart draws. The
    // answer is a worker's that took the task: it carries the task's token, read here from
    // the task still in the work queue.
    let tasks = js.get_stream(subjects::TASKS_STREAM).await.expect("the task stream");
    let raw = tasks.get_last_raw_message_by_subject(&subjects::task("sleep")).await.expect("the nap's task");
    let task: weft_protocol::wire::Task = serde_json::from_slice(&raw.payload).expect("a task");
    let mut answer: TaskResult = serde_json::from_slice(&forged(run, "each[0].nap", 1, u64::MAX)).expect("result");
    answer.token = task.token;
    js.publish(log.clone(), serde_json::to_vec(&answer).expect("json").into())
        .await
        .expect("published")
        .await
        .expect("stored");
    wait::record(&client, run, "nap ended", |r| r.steps["each[0].nap"].status == StepStatus::Completed).await;
    let out = weft_tests::weft(&["status", &run.to_string(), "--gantt", "--nats", &cluster.nats.url]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("each[0].nap"), "{stdout}");

    client.cancel(run, None).await.expect("cancelled");
    assert_eq!(client.wait(run).await.expect("ends").status, RunStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_created_once() {
    // The run log forgets message ids after a second here, not two minutes: a second
    // creation of a live run gets past JetStream's deduplication as a late resubmit would.
    let nats = weft_tests::nats_server::NatsServer::start();
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.expect("connects"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: subjects::INPUTS_STREAM.into(),
        subjects: vec![subjects::INPUTS_ALL.into()],
        duplicate_window: std::time::Duration::from_secs(1),
        allow_message_ttl: true,
        ..Default::default()
    })
    .await
    .expect("run log");
    let mut cluster = Cluster::start_on(nats, 1, 1, weft_tests::cluster::FAST).await;
    let client = cluster.client().await;

    let first = inline(json!({"name": "first", "steps": [
        {"id": "hold", "signal": {"name": "go"}},
        {"id": "say", "tool": "echo", "params": {"n": "{input.n}", "go": "{hold}"}}
    ], "output": "{say}"}));
    let run = uuid::Uuid::now_v7();
    client.submit_with_id(run, &first, json!({"n": 1})).await.expect("accepted");
    let before = wait::record(&client, run, "waiting", |r| r.steps["hold"].status == StepStatus::Running).await;

    // The same id again: the same run if submitted the same (a retry), else refused,
    // naming the run and its status.
    assert_eq!(client.submit_with_id(run, &first, json!({"n": 1})).await.expect("the same run"), run);
    let refused = client.submit_with_id(run, &first, json!({"n": 3})).await.expect_err("refused").to_string();
    assert!(refused.contains(&run.to_string()) && refused.contains("running"), "{refused}");

    // A second creation appended past the duplicate window, as anyone but the API could:
    // ignored, and logged with its sequence.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let other = json!({"entry": "created", "definition": {"name": "other", "steps": [{"id": "x", "tool": "echo"}]},
                       "input": {"n": 2, "late": 2}});
    let log = subjects::input(subjects::partition_of(run, 8), run);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("create:{run}").as_str());
    let ack = js.publish_with_headers(log, headers, other.to_string().into()).await.expect("published");
    let seq = ack.await.expect("stored past the window").sequence;
    wait::log_lines(&cluster.coordinator, &["second creation", &format!("seq={seq}")], 1).await;
    let same = |r: &weft_protocol::wire::RunRecord| {
        r.workflow == "first" && r.input == json!({"n": 1}) && r.created_ms == before.created_ms
    };
    assert!(same(&client.status(run).await.expect("status")), "the run changed");

    // A new owner rebuilds it from the log: still the first creation.
    cluster.crash_coordinator(weft_tests::cluster::FAST);
    wait::log_lines(&cluster.coordinator, &["second creation", &format!("seq={seq}")], 1).await;
    let after = wait::record(&client, run, "owned again", |r| r.steps["hold"].status == StepStatus::Running).await;
    assert!(same(&after), "the run changed after a takeover: {after:#?}");
    client.signal(run, "go", json!(true)).await.expect("signalled");
    let done = client.wait(run).await.expect("ends");
    assert_eq!(done.status, RunStatus::Completed, "{done:#?}");
    assert_eq!(done.output, Some(json!({"n": 1, "go": true})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_is_reported_as_corrupt_never_as_absent() {
    let cluster = Cluster::start(0).await;
    let client = cluster.client().await;
    let js = async_nats::jetstream::new(client.nats().clone());
    let runs = js.get_key_value(subjects::RUNS_BUCKET).await.expect("runs bucket");
    let run = uuid::Uuid::now_v7();
    runs.put(run.to_string(), "garbage".into()).await.expect("stored");

    let def = inline(json!({"name": "w", "steps": [{"id": "hold", "signal": {"name": "go"}}]}));
    let refused = client.submit_with_id(run, &def, Value::Null).await.expect_err("refused").to_string();
    assert!(refused.contains("exists already") && refused.contains(&format!("weft_runs/{run}")), "{refused}");
    let status = client.status(run).await.expect_err("corrupt");
    assert!(status.to_string().contains("not a run record"), "{status}");
    assert!(!status.is_not_found(), "{status}");
}

/// Every step error of `record`, flattened: where a limit was met shows in one of them.
fn errors(record: &weft_protocol::wire::RunRecord) -> String {
    let mut all = record.errors.join("\n");
    for (path, step) in &record.steps {
        all.push_str(&format!("\n{path}: {}", step.reason.as_deref().unwrap_or("")));
        for attempt in &step.attempts {
            if let Some(e) = &attempt.error {
                all.push_str(&format!("\n{path}: {:?} {}", e.code, e.message));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursion_between_workflows_ends_at_the_run_tree_limits() {
    let limits = [("WEFT_MAX_DEPTH", "3"), ("WEFT_MAX_CHILDREN", "10")];
    let cluster = Cluster::start_with(1, 1, &limits).await;
    let client = cluster.client().await;

    // `rec` v1 runs v2, which runs v1: a chain that only the depth limit ends.
    for (version, calls) in [(1, 2), (2, 1)] {
        let def = inline(json!({"name": "rec", "version": version,
            "steps": [{"id": "down", "workflow": {"name": "rec", "version": calls}}]}));
        client.deploy(&def).await.expect("registered");
    }
    let top = inline(json!({"name": "top", "steps": [{"id": "call", "workflow": {"name": "rec", "version": 1}}]}));
    let done = client.run(&top, Value::Null).await.expect("ends");
    assert_eq!(done.status, RunStatus::Failed, "{done:#?}");
    let listed = client.list(Some(1000)).await.expect("listed");
    let chain = listed.iter().filter(|r| r.workflow == "rec").count();
    assert_eq!(chain, 3, "one child per level down to the depth limit: {listed:#?}");
    let failed = finals(&client, listed.iter().filter(|r| r.workflow == "rec").map(|r| r.run_id)).await;
    assert!(
        failed.iter().any(|r| errors(r).contains("LIMIT_EXCEEDED") && errors(r).contains("WEFT_MAX_DEPTH")),
        "{failed:#?}"
    );

    // `fan` v1 runs twelve of v2, each of which runs twelve of v1: the count of children
    // under the root ends it (past ten, before the depth of four), on every branch.
    for (version, calls) in [(1, 2), (2, 1)] {
        let def = inline(json!({"name": "fan", "version": version, "steps": [{"id": "each", "for_each": {
            "items": (0..12).collect::<Vec<_>>(), "do": [{"id": "down", "workflow": {"name": "fan", "version": calls}}]}}]}));
        client.deploy(&def).await.expect("registered");
    }
    let top = inline(json!({"name": "top", "steps": [{"id": "call", "workflow": {"name": "fan", "version": 1}}]}));
    let done = client.run(&top, Value::Null).await.expect("ends");
    assert_eq!(done.status, RunStatus::Failed, "{done:#?}");
    let fans: Vec<_> =
        client.list(Some(1000)).await.expect("listed").into_iter().filter(|r| r.workflow == "fan").collect();
    assert!(fans.len() <= 10, "no more children than the limit: {}", fans.len());
    let records = finals(&client, fans.iter().map(|r| r.run_id)).await;
    assert!(records.iter().all(|r| r.status.is_terminal()), "every child ends: {records:#?}");
    assert!(
        records.iter().any(|r| errors(r).contains("LIMIT_EXCEEDED") && errors(r).contains("WEFT_MAX_CHILDREN")),
        "{records:#?}"
    );
}

/// The final records of `runs`.
async fn finals(
    client: &weft_client::WeftClient,
    runs: impl Iterator<Item = uuid::Uuid>,
) -> Vec<weft_protocol::wire::RunRecord> {
    let mut records = Vec::new();
    for run in runs {
        records.push(client.wait(run).await.expect("ends"));
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_busy_with_a_wide_for_each_answers_cancels_and_runs_a_canary() {
    // 30,000 items, three times the default limit: in a debug build, beside the other tests,
    // 100,000 starve them of CPU for a minute (weft-bench's `busy` runs 100,000 in release).
    let env = [("WEFT_MAX_ITEMS", "30000"), ("WEFT_MAX_INSTANCES", "60000")];
    let cluster = Cluster::start_with(1, 1, &env).await;
    let client = cluster.client().await;
    // A tool makes the items: a small definition, a large run.
    let wide = inline(json!({"name": "wide", "steps": [
        {"id": "make", "tool": "echo", "params": {"xs": "{input.xs}"}},
        {"id": "each", "for_each": {"items": "{make.xs}", "as": "x", "do": [
            {"id": "one", "tool": "echo", "params": {"x": "{x}"}}
        ]}}
    ]}));
    let xs: Vec<u32> = (0..30_000).collect();
    let big = client.submit(&wide, json!({ "xs": xs })).await.expect("accepted");
    let fanned = std::time::Instant::now();
    // Fanned out once workers run its items (a record of 100,000 steps is slow to build in
    // a debug build: the workers' logs say it sooner).
    wait::until_ok("the run fanned out", wait::PATIENCE, || async {
        if cluster.logs().contains("weft.step_id=each[") { Ok(()) } else { Err("no item ran yet") }
    })
    .await;
    let fanned = fanned.elapsed();

    // While it runs: another run completes, status answers, a cancel takes effect.
    let canary = inline(json!({"name": "canary", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "b", "tool": "echo", "params": {"n": "{a.n}"}}
    ], "output": "{b.n}"}));
    let timed = std::time::Instant::now();
    let done = client.run(&canary, Value::Null).await.expect("the canary runs");
    assert_eq!((done.status, done.output), (RunStatus::Completed, Some(json!(1))));
    let canary_took = timed.elapsed();
    let timed = std::time::Instant::now();
    let status = client.status(big).await.expect("status answers");
    assert_eq!(status.status, RunStatus::Running, "{:?}", status.errors);
    let status_took = timed.elapsed();
    let timed = std::time::Instant::now();
    client.cancel(big, Some("enough".into())).await.expect("cancelled");
    let ended = client.wait(big).await.expect("ends");
    assert_eq!(ended.status, RunStatus::Cancelled, "{:?}", ended.errors);
    let cancel_took = timed.elapsed();
    // Figures, not assertions: weft-bench's `busy` scenario measures them in release.
    eprintln!(
        "busy with 30,000 items: fanned out {fanned:?}, canary {canary_took:?}, \
         status {status_took:?}, cancel {cancel_took:?}"
    );
}
