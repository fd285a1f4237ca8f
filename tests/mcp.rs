//! MCP servers as Weft tools: a worker process serving real MCP servers (the npm
//! `server-everything` over stdio and over Streamable HTTP, and a fixture server whose
//! tools misbehave on purpose), with a real nats-server and coordinator.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunRecord, RunStatus, StepStatus, ToolError};
use weft_tests::cluster::Cluster;
use weft_tests::process::Proc;
use weft_tests::wait::free_port;

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// The error of the step's last attempt.
fn last_error(record: &RunRecord, step: &str) -> ToolError {
    let attempts = &record.steps[step].attempts;
    attempts.last().and_then(|a| a.error.clone()).unwrap_or_else(|| panic!("`{step}` has no error: {record:#?}"))
}

/// Waits until every tool of `names` is advertised, or none of `gone`.
async fn until_tools(client: &WeftClient, cluster: &Cluster, names: &[&str], gone: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ads = client.tools().await.unwrap_or_default();
        let has = |n: &str| ads.iter().any(|a| a.spec.name == n);
        if names.iter().all(|n| has(n)) && !gone.iter().any(|n| has(n)) {
            return ads.into_iter().map(|a| serde_json::to_value(a).expect("advertisement as JSON")).collect();
        }
        assert!(
            Instant::now() < deadline,
            "tools {names:?} never advertised (or {gone:?} never gone):\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_servers_tools_are_weft_tools_that_fail_clearly_and_come_back() {
    let mut cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().expect("dir");
    let everything = weft_tests::npm_bin("mcp-server-everything");
    let port = free_port();
    let port_text = port.to_string();
    let _http_server =
        Proc::start("everything-http", &everything, &["streamableHttp"], &[("PORT", port_text.as_str())], dir.path())
            .expect("server-everything over HTTP starts");
    weft_tests::wait::listening(port).expect("server-everything listens");
    let fixture = weft_tests::repo_root().join("tests/fixtures/mcp_server.py");
    let calls_log = dir.path().join("fixture-calls.log");
    let stdio = format!("everything={} stdio", everything.display());
    let http = format!("remote=http://127.0.0.1:{port}/mcp");
    let fix = format!("fix=python3 {}", fixture.display());
    let calls = calls_log.display().to_string();
    cluster.add_worker_with(
        "mcp",
        &["--mcp", &stdio, "--mcp", &http, "--mcp", &fix],
        &[("MCP_FIXTURE_LOG", calls.as_str())],
    );
    let client = cluster.client().await;
    let ads = until_tools(&client, &cluster, &["everything.get-sum", "remote.echo", "fix.greet"], &[]).await;

    // Advertised with the server's schema; a tool whose schema is not JSON Schema, or
    // whose name cannot be a Weft tool's, is not served, and the log says which and why.
    let sum = ads.iter().find(|a| a["spec"]["name"] == "everything.get-sum").expect("get-sum advertised");
    assert_eq!(sum["spec"]["params"]["required"], json!(["a", "b"]), "{sum}");
    assert!(ads.iter().all(|a| a["spec"]["name"] != "fix.bad_schema" && a["spec"]["name"] != "fix.bad name"));
    let worker = cluster.workers.last().expect("the MCP worker");
    weft_tests::wait::log_lines(worker, &["fix.bad_schema", "invalid params schema"], 1).await;
    weft_tests::wait::log_lines(worker, &["fix.bad name", "cannot be a Weft tool name"], 1).await;

    // Submit-time checks use the server's schema.
    let wrong = inline(json!({"name": "mcp_wrong", "steps": [
        {"id": "sum", "tool": "everything.get-sum", "params": {"a": "two"}}]}));
    let refused = client.submit(&wrong, Value::Null).await.expect_err("params that do not fit are refused");
    let message = refused.to_string();
    assert!(message.contains("everything.get-sum") && message.contains("\"b\" is a required property"), "{message}");

    // Data through stdio, HTTP, the Rust worker and the fixture.
    let flow = inline(json!({"name": "mcp_flow", "steps": [
        {"id": "sum", "tool": "everything.get-sum", "params": {"a": 2, "b": 40}},
        {"id": "weather", "tool": "everything.get-structured-content", "params": {"location": "Chicago"}},
        {"id": "say", "tool": "remote.echo", "params": {"message": "{sum.text} / {weather.temperature}"}},
        {"id": "relay", "tool": "echo", "params": {"said": "{say.text}"}},
        {"id": "greet", "tool": "fix.greet", "params": {"name": "{relay.said}"}}
    ], "output": {"greeting": "{greet.text}", "weather": "{weather}"}}));
    let record = client.run(&flow, Value::Null).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
    let output = record.output.clone().expect("output");
    let greeting = output["greeting"].as_str().expect("greeting text");
    assert!(greeting.starts_with("Hello, Echo: The sum of 2 and 40 is 42. / "), "{output:#}");
    assert!(output["weather"]["temperature"].is_number(), "structuredContent is the output: {output:#}");
    assert_eq!(record.steps["say"].attempts[0].worker.as_deref(), Some("mcp"));
    assert_eq!(record.steps["relay"].attempts[0].worker.as_deref(), Some("w1"));

    // A tool's own failure, a hang and garbage: each names the tool (and so its server).
    let bad = inline(json!({"name": "mcp_bad", "steps": [
        {"id": "fail", "tool": "fix.fail", "params": {}, "retry": {"max_attempts": 3, "backoff": "10ms"},
         "continue_on_error": true},
        {"id": "hang", "tool": "fix.hang", "params": {}, "timeout": "1s", "continue_on_error": true},
        {"id": "garbage", "tool": "fix.garbage", "params": {}, "timeout": "1s", "continue_on_error": true}
    ]}));
    let record = client.run(&bad, Value::Null).await.expect("the run ends");
    let fail = &record.steps["fail"];
    assert_eq!(fail.status, StepStatus::Failed, "{record:#?}");
    assert_eq!(fail.attempts.len(), 1, "an MCP tool error is not retried: {fail:#?}");
    let error = last_error(&record, "fail");
    assert_eq!(error.code.as_deref(), Some("MCP_TOOL_ERROR"));
    assert!(error.message.contains("`fix.fail` failed: the tool failed on purpose"), "{error:?}");
    for step in ["hang", "garbage"] {
        let error = last_error(&record, step);
        assert_eq!(error.code.as_deref(), Some("TIMEOUT"), "{step}: {error:?}");
        assert!(error.message.contains(&format!("tool `fix.{step}`")), "{step}: {error:?}");
    }
    // The timed-out call was cancelled on the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&calls_log).unwrap_or_default().contains("notifications/cancelled") {
        assert!(Instant::now() < deadline, "the server never heard the cancel:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A tool list that changes is advertised again.
    let grow = inline(json!({"name": "mcp_grow", "steps": [{"id": "grow", "tool": "fix.grow", "params": {}}]}));
    assert_eq!(client.run(&grow, Value::Null).await.expect("grows").status, RunStatus::Completed);
    until_tools(&client, &cluster, &["fix.extra"], &[]).await;
    let extra = inline(json!({"name": "mcp_extra", "steps": [{"id": "x", "tool": "fix.extra", "params": {"n": 21}}],
        "output": "{x.n}"}));
    let record = client.run(&extra, Value::Null).await.expect("the run ends");
    assert_eq!(record.output, Some(json!(42)), "{record:#?}");

    // A server that dies fails its call in flight retryably and is started again: the
    // next step's retry finds it back (and, restarted, it lists no `extra` any more).
    let crash = inline(json!({"name": "mcp_crash", "steps": [
        {"id": "crash", "tool": "fix.crash", "params": {}, "continue_on_error": true},
        {"id": "after", "tool": "fix.greet", "params": {"name": "again"}, "depends_on": ["crash"],
         "retry": {"max_attempts": 20, "backoff": "100ms"}}
    ], "output": "{after.text}"}));
    let record = client.run(&crash, Value::Null).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
    let error = last_error(&record, "crash");
    assert_eq!(error.code.as_deref(), Some("MCP_UNAVAILABLE"), "{error:?}");
    assert!(error.retryable, "{error:?}");
    assert_eq!(record.output, Some(json!("Hello, again!")));
    weft_tests::wait::log_lines(cluster.workers.last().expect("worker"), &["mcp_server=fix", "starting it again"], 1)
        .await;
    until_tools(&client, &cluster, &["fix.greet"], &["fix.extra"]).await;
}

/// A step on an MCP server, one on a Python worker and one on the Rust worker, feeding each
/// other (examples/three_worlds), with the Python worker SIGKILLed mid-tool: its task is
/// redelivered to a second Python worker, and the run is one trace, Python's span in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workflow_across_three_worlds() {
    let otlp = weft_tests::otlp::Receiver::start().await;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let mut cluster = Cluster::start_with(1, 0, &env).await;
    let dir = tempfile::tempdir().expect("dir");
    let memory_file = dir.path().join("memory.jsonl");
    let memory = format!("memory={}", weft_tests::npm_bin("mcp-server-memory").display());
    let memory_env = memory_file.display().to_string();
    let mut worker_env = env.to_vec();
    worker_env.push(("MEMORY_FILE_PATH", memory_env.as_str()));
    cluster.add_worker_with("rust", &["--mcp", &memory], &worker_env);

    let python = weft_tests::repo_root().join(".weft/venv/bin/python");
    let example = weft_tests::repo_root().join("examples/three_worlds");
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    let (example_dir, marks_dir) = (example.display().to_string(), marks.display().to_string());
    let python_env = |id: &'static str| {
        let mut e = env.to_vec();
        e.extend([
            ("NATS_URL", cluster.nats.url.as_str()),
            ("WEFT_WORKER_ID", id),
            ("PYTHONPATH", example_dir.as_str()),
            ("MARK_DIR", marks_dir.as_str()),
            // Short, so the killed worker's task comes back soon.
            ("WEFT_ACK_WAIT_S", "2"),
        ]);
        e.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<Vec<_>>()
    };
    let start_python = |id: &'static str| {
        let vars = python_env(id);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Proc::start(id, &python, &["-m", "weft", "worker", "describe:worker"], &vars, dir.path())
            .expect("the Python worker starts")
    };
    let mut py1 = start_python("py1");
    let client = cluster.client().await;
    until_tools(
        &client,
        &cluster,
        &["memory.create_entities", "memory.read_graph", "describe_graph", "transform"],
        &[],
    )
    .await;

    let def = WorkflowDef::load(&example.join("workflow.json")).expect("the example parses");
    let run = client.submit(&def, json!({"city": "Lisbon", "fact": "has trams"})).await.expect("submitted");
    // py1 is in the middle of the call: kill it, then start the worker that takes over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = format!("started-{}-1", py1.pid().expect("py1 runs"));
    while !marks.join(&first).exists() {
        assert!(Instant::now() < deadline, "py1 never started the call:\n{}\n{}", py1.logs(), cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    py1.kill();
    let py2 = start_python("py2");
    let record = client.wait(run).await.expect("the run ends");
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}\n{}", py2.logs(), cluster.logs());
    let output = record.output.clone().expect("output");
    assert_eq!(output["sentence"], "THE GRAPH KNOWS 1: LISBON (HAS TRAMS)", "{output:#}");
    assert_eq!(output["described_by"], "py2");
    let describe = &record.steps["describe"];
    assert_eq!(describe.attempts.len(), 1, "redelivered, not retried: {describe:#?}");
    assert!(describe.output.as_ref().is_some_and(|o| o["delivered"].as_u64() >= Some(2)), "{describe:#?}");

    // One trace: the coordinator's spans, the Rust worker's (MCP and transform) and Python's.
    let run_id = run.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = otlp.spans();
        let of_run: Vec<_> = spans.iter().filter(|s| s.attr("weft.run_id") == Some(run_id.as_str())).collect();
        let traces: std::collections::BTreeSet<&str> = of_run.iter().map(|s| s.trace_id.as_str()).collect();
        let services: std::collections::BTreeSet<&str> = of_run.iter().map(|s| s.service.as_str()).collect();
        let python_span = of_run.iter().any(|s| s.service == "weft-python-worker" && s.name == "tool describe_graph");
        let mcp_span = of_run.iter().any(|s| s.name == "tool memory.read_graph");
        if traces.len() == 1 && python_span && mcp_span && services.contains("weft-coordinator") {
            break;
        }
        assert!(Instant::now() < deadline, "no single trace with every world: {traces:?} {services:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the Python SDK's client script (tests/fixtures/mcp_client.py) with `args`; its
/// lines by `op`.
fn mcp_client(args: &[&str]) -> std::collections::BTreeMap<String, Value> {
    let python = weft_tests::repo_root().join(".weft/venv/bin/python");
    let script = weft_tests::repo_root().join("tests/fixtures/mcp_client.py");
    let output = std::process::Command::new(python).arg(script).args(args).output().expect("the MCP client runs");
    let (stdout, stderr) = weft_tests::text(&output);
    assert!(output.status.success(), "the MCP client failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (value["op"].as_str().expect("an op").to_owned(), value)
        })
        .collect()
}

/// What an MCP client sees of the registered workflows, and what became of the runs it
/// started; the same over stdio and Streamable HTTP.
fn check_mcp_client_view(ops: &std::collections::BTreeMap<String, Value>) {
    let tools = ops["list"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["broken", "greet", "slow"], "{tools:#?}");
    let greet = &tools[1];
    assert_eq!(greet["description"], "Greets twice (v2).", "the latest version: {greet}");
    assert_eq!(greet["input_schema"]["required"], json!(["name"]), "{greet}");

    let call = &ops["call"];
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(call["structured"], json!({"greeting": "hello Ada, again"}), "{call}");
    let progress = call["progress"].as_array().expect("progress");
    let messages: Vec<&str> = progress.iter().filter_map(|p| p["message"].as_str()).collect();
    assert_eq!(messages, ["step `a` completed", "step `b` completed"], "{call}");

    let bad = &ops["bad_input"];
    assert_eq!(bad["is_error"], true, "{bad}");
    assert!(bad["text"][0].as_str().is_some_and(|t| t.contains("name")), "says which input: {bad}");
    let failed = &ops["failed"];
    assert_eq!(failed["is_error"], true, "{failed}");
    let text = failed["text"][0].as_str().unwrap_or_default();
    assert!(text.contains("ended failed") && text.contains("out of coffee"), "says how and why: {failed}");
    let unknown = ops["unknown"]["error"].as_str().unwrap_or_default();
    assert!(unknown.contains("no registered workflow is named `no_such_workflow`"), "{unknown}");
    let slow = ops["slow"]["error"].as_str().unwrap_or_default();
    assert!(!slow.is_empty(), "the slow call timed out on the client: {}", ops["slow"]);
}

/// The runs of `workflow`, newest first.
async fn runs_of(client: &WeftClient, workflow: &str) -> Vec<weft_protocol::wire::RunSummary> {
    let runs = client.list(Some(100)).await.expect("runs listed");
    runs.into_iter().filter(|r| r.workflow == workflow).collect()
}

/// `weft mcp`: an MCP client (the official Python SDK) lists the registered workflows as
/// tools, runs one with progress, gets bad input, a failed run and an unknown name back as
/// errors it can read, and cancels a slow run by abandoning the call; over stdio and over
/// Streamable HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_the_tools_of_weft_mcp() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let greet = |version: u32, description: &str| {
        inline(json!({
            "name": "greet", "version": version, "description": description,
            "input_schema": {"type": "object", "required": ["name"],
                             "properties": {"name": {"type": "string"}}, "additionalProperties": false},
            "steps": [
                {"id": "a", "tool": "echo", "params": {"text": "hello {input.name}"}},
                {"id": "b", "tool": "echo", "params": {"text": "{a.text}, again"}}
            ],
            "output": {"greeting": "{b.text}"}
        }))
    };
    let broken = inline(json!({
        "name": "broken", "version": 1,
        "steps": [{"id": "brew", "tool": "fail", "params": {"message": "out of coffee", "code": "EMPTY"},
                   "retry": {"max_attempts": 1}}]
    }));
    let slow = inline(json!({
        "name": "slow", "version": 1, "description": "Sleeps a minute.",
        "steps": [{"id": "nap", "tool": "sleep", "params": {"ms": 60000}}]
    }));
    for def in [greet(1, "Greets (v1)."), greet(2, "Greets twice (v2)."), broken, slow] {
        weft_tests::wait::until_ok("deploy", Duration::from_secs(30), || client.deploy(&def)).await;
    }

    let weft = weft_tests::bin("weft").display().to_string();
    let over_stdio = mcp_client(&["stdio", &weft, &cluster.nats.url]);
    check_mcp_client_view(&over_stdio);

    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("dir");
    let _server = Proc::start(
        "weft-mcp",
        &weft_tests::bin("weft"),
        &["--nats", &cluster.nats.url, "mcp", "--http", &addr],
        &[],
        dir.path(),
    )
    .expect("weft mcp --http starts");
    weft_tests::wait::listening(port.parse().expect("a port")).expect("weft mcp listens");
    let over_http = mcp_client(&["http", &format!("http://{addr}/mcp")]);
    check_mcp_client_view(&over_http);

    // Each abandoned call cancelled its run.
    let slow_runs = weft_tests::wait::until_ok("the slow runs cancelled", Duration::from_secs(30), || async {
        let runs = runs_of(&client, "slow").await;
        if runs.len() == 2 && runs.iter().all(|r| r.status == RunStatus::Cancelled) {
            Ok(runs)
        } else {
            Err(format!("{runs:?}"))
        }
    })
    .await;
    assert_eq!(slow_runs.len(), 2);
    assert_eq!(runs_of(&client, "greet").await.len(), 2, "bad input started no run");
}
