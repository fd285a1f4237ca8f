//! What a new user trips over, on the live services and through the `weft` binary: the
//! newest runs listed first, checked signals and commands, bad input skipped or named,
//! and a command line that says what happened once, with an exit code per meaning.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use weft_client::{Reuse, WeftClient};
use weft_lang::definition::WorkflowDef;
use weft_protocol::subjects;
use weft_protocol::wire::{RunStatus, StepStatus};
use weft_tests::cluster::Cluster;
use weft_tests::{bin, repo_root, text, wait};

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

/// `weft` with `args` against `url`, its standard input from `stdin`.
fn weft_at(url: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(bin("weft"))
        .args(args)
        .args(["--nats", url])
        .current_dir(repo_root())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("stdin written");
    }
    child.wait_with_output().expect("weft ends")
}

/// Exactly one `error:` line, no terminal colours, and the message given.
fn one_error(stderr: &str, says: &str) {
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colours in a pipe: {stderr:?}");
    assert!(stderr.contains(says), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_runs_are_listed_first_and_limits_are_checked() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    // A parent with a child run: the child's id is a UUID v5, which sorts above v7 ids.
    let child = inline(json!({"name": "child", "version": 1, "steps": [{"id": "c", "tool": "echo"}]}));
    client.deploy(&child).await.expect("registered");
    let parent = inline(json!({"name": "parent", "steps": [{"id": "call", "workflow": {"name": "child"}}]}));
    client.run(&parent, Value::Null).await.expect("parent runs");
    let echo = inline(json!({"name": "later", "steps": [{"id": "e", "tool": "echo"}]}));
    let mut newest = Vec::new();
    for _ in 0..3 {
        newest.push(client.run(&echo, Value::Null).await.expect("runs").run_id);
    }
    newest.reverse();
    let listed: Vec<_> = client.list(Some(3)).await.expect("listed").into_iter().map(|r| r.run_id).collect();
    assert_eq!(listed, newest, "the three newest, newest first");
    let five: Vec<String> = client.list(Some(5)).await.expect("listed").into_iter().map(|r| r.workflow).collect();
    assert_eq!(five, ["later", "later", "later", "child", "parent"]);

    // A limit out of range is refused, by the API and by the command line.
    let reply = client
        .nats()
        .request("weft.api.list", json!({"verb": "list", "limit": u64::MAX}).to_string().into())
        .await
        .expect("an answer");
    let reply: Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    let out = weft_at(&cluster.nats.url, &["list", "--limit", "0"], None);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_and_commands_that_would_not_apply_are_refused() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "approval", "steps": [
        {"id": "draft", "tool": "echo"},
        {"id": "review", "signal": {"name": "approve", "schema": {"type": "object", "required": ["by"]}},
         "depends_on": ["draft"]},
        {"id": "later", "signal": {"name": "publish"}, "depends_on": ["review"]}
    ]}));
    let run = client.submit(&def, Value::Null).await.expect("accepted");
    wait::record(&client, run, "waiting", |r| r.steps["review"].status == StepStatus::Running).await;

    let refused = |e: weft_client::ClientError| e.to_string();
    let unknown = refused(client.signal(run, "aprove", json!({})).await.expect_err("no such signal"));
    assert!(unknown.contains("waits for no signal `aprove`") && unknown.contains("`approve`, `publish`"), "{unknown}");
    let misfit = refused(client.signal(run, "approve", json!({"who": "me"})).await.expect_err("breaks the schema"));
    assert!(misfit.contains("\"by\" is a required property"), "{misfit}");
    let nameless = refused(client.signal(run, " ", json!({})).await.expect_err("no name"));
    assert!(nameless.contains("needs a name"), "{nameless}");
    let not_paused = refused(client.resume(run).await.expect_err("not paused"));
    assert!(not_paused.contains("is not paused"), "{not_paused}");
    client.pause(run).await.expect("paused");
    wait::record(&client, run, "paused", |r| r.status == RunStatus::Paused).await;
    let twice = refused(client.pause(run).await.expect_err("paused twice"));
    assert!(twice.contains("paused already"), "{twice}");
    client.resume(run).await.expect("resumed");
    wait::record(&client, run, "running again", |r| r.status == RunStatus::Running).await;

    // `publish` arrives before its step starts: held. A second is refused, not kept.
    client.signal(run, "publish", json!({"n": 1})).await.expect("held for its step");
    wait::record(&client, run, "holding it", |r| r.signals["publish"].held).await;
    let second = refused(client.signal(run, "publish", json!({"n": 2})).await.expect_err("a second"));
    assert!(second.contains("held for its step"), "{second}");
    client.signal(run, "approve", json!({"by": "ada"})).await.expect("approved");
    let done = client.wait(run).await.expect("ends");
    assert_eq!(done.status, RunStatus::Completed, "{done:#?}");
    assert_eq!(done.steps["later"].output, Some(json!({"n": 1})), "the first signal, not the second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_events_records_definitions_and_the_run_log_is_named_and_skipped() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let js = async_nats::jetstream::new(client.nats().clone());

    // An undecodable event on a run's subject: `weft watch` warns and goes on to the end.
    let def = inline(json!({"name": "held", "steps": [{"id": "hold", "signal": {"name": "go"}}]}));
    let run = client.submit(&def, Value::Null).await.expect("accepted");
    wait::record(&client, run, "waiting", |r| r.steps["hold"].status == StepStatus::Running).await;
    js.publish(subjects::events(run), "{not an event".into()).await.expect("published").await.expect("stored");
    client.signal(run, "go", json!(true)).await.expect("signalled");
    client.wait(run).await.expect("ends");
    let out = weft_at(&cluster.nats.url, &["watch", &run.to_string()], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("run finished: completed"), "{stdout}");
    assert!(stderr.contains("an unreadable event skipped"), "{stderr}");

    // A garbage definition: `weft run --name` names it corrupt, with its key.
    let definitions = js.get_key_value(subjects::DEFINITIONS_BUCKET).await.expect("bucket");
    definitions.put("broken.1", "{1: 2}".into()).await.expect("stored");
    let out = weft_at(&cluster.nats.url, &["run", "--name", "broken"], None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    one_error(&stderr, "weft_definitions/broken.1 is corrupt");

    // An entry of a run log that cannot be read goes to the dead letters, with the reason.
    let log = subjects::input(subjects::partition_of(run, 8), run);
    js.publish(log.clone(), vec![0xff, 0x00].into()).await.expect("published").await.expect("stored");
    let dead = js.get_stream(subjects::DEAD_STREAM).await.expect("dead letters");
    let message = wait::until_ok("a dead letter", wait::PATIENCE, || async {
        dead.get_raw_message(1).await.map_err(|e| e.to_string())
    })
    .await;
    let headers = message.headers;
    assert_eq!(headers.get("Weft-Subject").map(|v| v.as_str()), Some(log.as_str()));
    assert!(headers.get("Weft-Reason").is_some_and(|r| r.as_str().contains("unreadable")), "{headers:?}");
    // Logged once the dead letter is stored, so it may come just after the stream has it.
    wait::log_lines(&cluster.coordinator, &["moved to the dead letters"], 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_says_what_happened_once_with_an_exit_code_per_meaning() {
    // No NATS at all: at once, exit 4, with what to do.
    let out = weft_at("nats://127.0.0.1:9", &["list"], None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    one_error(&stderr, "cannot connect to NATS");
    assert!(stderr.contains("hint: is NATS running?"), "{stderr}");

    // `--help` never shows a password from the environment.
    let help = Command::new(bin("weft"))
        .args(["run", "--help"])
        .env("NATS_URL", "nats://client:hunter2@127.0.0.1:4222")
        .output()
        .expect("weft runs");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2"), "{:?}", text(&help));

    // NATS without a coordinator: exit 4 within the timeout, not a 30 s hang.
    let nats = weft_tests::nats_server::NatsServer::start();
    let out = weft_at(&nats.url, &["list", "--timeout", "1s"], None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    one_error(&stderr, "no coordinator answers");
    drop(nats);

    let cluster = Cluster::start(1).await;
    let url = cluster.nats.url.clone();
    // A workflow from standard input that completes: 0.
    let chain = json!({"name": "stdin", "steps": [{"id": "e", "tool": "echo", "params": {"x": 1}}]}).to_string();
    let out = weft_at(&url, &["run", "-", "-q"], Some(&chain));
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // One that fails: 1. An unknown run: 3. An invalid workflow, or input: 5. A bad id: 2.
    let failing = json!({"name": "f", "steps": [{"id": "f", "tool": "fail", "params": {"message": "no"}}]}).to_string();
    assert_eq!(weft_at(&url, &["run", "-", "-q"], Some(&failing)).status.code(), Some(1));
    let out = weft_at(&url, &["status", &uuid::Uuid::now_v7().to_string()], None);
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out));
    let invalid = json!({"name": "bad", "steps": [{"id": "x", "tool": "no_such_tool"}]}).to_string();
    let out = weft_at(&url, &["run", "-"], Some(&invalid));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    one_error(&stderr, "no worker offers a tool `no_such_tool`");
    let out = weft_at(&url, &["run", "examples/chain_notify.json", "--input", r#"{"user": 1}"#], None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    one_error(&stderr, "the input does not fit");
    assert_eq!(weft_at(&url, &["status", "not-a-uuid"], None).status.code(), Some(2));

    // Ctrl-C on `weft run`: the run goes on, and the command says how to reach it.
    let long = json!({"name": "long", "steps": [{"id": "s", "tool": "sleep", "params": {"ms": 60000}}]}).to_string();
    let mut child = Command::new(bin("weft"))
        .args(["run", "-", "--nats", &url])
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    child.stdin.take().expect("stdin").write_all(long.as_bytes()).expect("written");
    let client = cluster.client().await;
    wait::until_ok("the run is submitted", wait::PATIENCE, || async {
        let runs = client.list(Some(1)).await.map_err(|e| e.to_string())?;
        if runs.first().is_some_and(|r| r.workflow == "long") { Ok(()) } else { Err("not yet".to_owned()) }
    })
    .await;
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
    let out = child.wait_with_output().expect("weft ends");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("goes on without this command") && stderr.contains("weft cancel"), "{stderr}");
    let run = client.list(Some(1)).await.expect("listed")[0].clone();
    assert_eq!(run.status, RunStatus::Running, "the run went on");
    client.cancel(run.run_id, None).await.expect("cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_pools_hold_across_runs_and_a_coordinator_crash() {
    // Every pool update is logged, for the failure message should this ever fail again
    // (issue 13: once in ~15 runs under the full suite's load, three steps overlapped).
    let env: Vec<(&str, &str)> =
        weft_tests::cluster::FAST.iter().copied().chain([("RUST_LOG", "info,weft_coordinator::pools=debug")]).collect();
    let mut cluster = Cluster::start_with(1, 2, &env).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "gpu_pair", "steps": [
        {"id": "a", "tool": "sleep", "params": {"ms": 1200}, "resources": {"gpu": 1}},
        {"id": "b", "tool": "sleep", "params": {"ms": 1200}, "resources": {"gpu": 1}}
    ]}));
    // No capacity set: refused, saying how to set one.
    let refused = client.submit(&def, Value::Null).await.expect_err("no pool").to_string();
    assert!(refused.contains("pool `gpu` has no capacity") && refused.contains("weft pools set gpu"), "{refused}");
    let out = weft_at(&cluster.nats.url, &["pools", "set", "gpu", "2"], None);
    assert!(out.status.success(), "{:?}", text(&out));

    // Six steps of one unit each, in three runs at once, against two units.
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(client.submit(&def, Value::Null).await.expect("accepted"));
    }
    let listed = weft_at(&cluster.nats.url, &["pools"], None);
    let (stdout, _) = text(&listed);
    assert!(stdout.contains("gpu") && stdout.contains("waited for by"), "{stdout}");
    // A coordinator crash while units are held: its leases are kept by the new owner.
    wait::until_ok("units held", wait::PATIENCE, || async {
        let pools = client.pools().await.map_err(|e| e.to_string())?;
        if pools.iter().any(|p| p.pool.held() == 2) { Ok(()) } else { Err("not yet".to_owned()) }
    })
    .await;
    cluster.crash_coordinator(&env);
    let mut spans = Vec::new();
    for run in runs {
        let record = client.wait(run).await.unwrap_or_else(|e| panic!("{run} did not end: {e}\n{}", cluster.logs()));
        assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
        for step in record.steps.values() {
            let a = step.attempts.last().expect("an attempt");
            spans.push((a.started_ms.expect("started"), a.finished_ms.expect("finished")));
        }
    }
    let mut edges: Vec<(u64, i64)> = spans.iter().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    edges.sort();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert!(most <= 2, "{most} steps of the gpu pool ran at once: {spans:?}\n{}", cluster.logs());
    assert_eq!(most, 2, "two ran at once: the pool's two units were used");
    let pools = client.pools().await.expect("pools");
    let gpu = pools.iter().find(|p| p.name == "gpu").expect("the gpu pool");
    assert!(gpu.pool.holders.is_empty() && gpu.pool.waiters.is_empty(), "every unit came back: {gpu:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_key_makes_one_run_however_often_it_is_submitted() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let def = inline(json!({"name": "keyed", "steps": [{"id": "nap", "tool": "sleep", "params": {"ms": 300}}]}));
    let (first, made) = client.submit_keyed(&def, Value::Null, "ORDER-7").await.expect("submitted");
    assert!(made);
    let (again, made_again) = client.submit_keyed(&def, Value::Null, "ORDER-7").await.expect("submitted again");
    assert_eq!((again, made_again), (first, false), "the key's run, not a second one");
    // The command line: `weft submit --key` prints the same id; `weft run --key` follows it.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), def.to_json_pretty()).expect("written");
    let path = file.path().display().to_string();
    let out = weft_at(&cluster.nats.url, &["submit", &path, "--key", "ORDER-7"], None);
    assert_eq!(text(&out).0.trim(), first.to_string(), "{:?}", text(&out));
    let out = weft_at(&cluster.nats.url, &["run", &path, "--key", "ORDER-7"], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("run {first} was submitted before with key \"ORDER-7\"")), "{stderr}");
    let listed = client.list(Some(50)).await.expect("listed");
    assert_eq!(listed.iter().filter(|r| r.workflow == "keyed").count(), 1, "{listed:?}");
    // Another key is another run.
    let (other, made) = client.submit_keyed(&def, Value::Null, "ORDER-8").await.expect("submitted");
    assert!(made && other != first);

    // The key with another input is not silently the first run: refused, saying why.
    let refused = client.submit_keyed(&def, json!({"changed": true}), "ORDER-7").await.expect_err("refused");
    assert!(refused.to_string().contains("another definition or input"), "{refused}");
    let out = weft_at(&cluster.nats.url, &["submit", &path, "--id", "ORDER-7", "--input", "{\"changed\": 1}"], None);
    assert!(!out.status.success() && text(&out).1.contains("another definition or input"), "{:?}", text(&out));
    // An ended run: `refuse` (the default) keeps following it, `allow-if-ended` starts the
    // key's next run, which later submits then follow, whichever policy they name.
    assert_eq!(client.wait(first).await.expect("ended").status, RunStatus::Completed);
    let (still, made) = client.submit_keyed(&def, Value::Null, "ORDER-7").await.expect("submitted");
    assert_eq!((still, made), (first, false));
    let (next, made) = client
        .submit_keyed_with(&def, json!({"changed": true}), "ORDER-7", Reuse::AllowIfEnded)
        .await
        .expect("a new run for the key");
    assert!(made && next != first, "{next} {first}");
    assert_eq!(next, WeftClient::keyed_id_at("keyed", "ORDER-7", 1));
    let (same, made) = client
        .submit_keyed_with(&def, json!({"changed": true}), "ORDER-7", Reuse::AllowIfEnded)
        .await
        .expect("the running one");
    assert_eq!((same, made), (next, false), "while it runs, the key's run is the new one");
    let out =
        weft_at(&cluster.nats.url, &["submit", &path, "--key", "ORDER-7", "--input", "{\"changed\": true}"], None);
    assert_eq!(text(&out).0.trim(), next.to_string(), "{:?}", text(&out));
    // A chosen id, submitted again the same, is the same run (a retry after a lost answer).
    let id = uuid::Uuid::now_v7();
    assert_eq!(client.submit_with_id(id, &def, Value::Null).await.expect("submitted"), id);
    assert_eq!(client.submit_with_id(id, &def, Value::Null).await.expect("the same again"), id);
}

/// `--profile` (and a config file's `default`) connects where the profile says; a flag
/// beats it; a profile that does not exist is a usage error naming the file and the
/// profiles there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_of_the_config_file_say_where_to_connect() {
    let cluster = Cluster::start(0).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    let contents = format!(
        "default = \"here\"\n[profiles.here]\nnats = \"{}\"\ntimeout = \"5s\"\n[profiles.nowhere]\nnats = \"nats://127.0.0.1:9\"\n",
        cluster.nats.url
    );
    std::fs::write(&config, contents).expect("config written");
    let weft = |args: &[&str]| {
        Command::new(bin("weft"))
            .args(args)
            .env_remove("NATS_URL")
            .env_remove("WEFT_TIMEOUT")
            .env_remove("WEFT_PROFILE")
            .env("WEFT_CONFIG", &config)
            .output()
            .expect("weft runs")
    };
    let by_default = weft(&["list"]);
    assert_eq!(by_default.status.code(), Some(0), "{:?}", text(&by_default));
    let elsewhere = weft(&["--profile", "nowhere", "list", "--timeout", "1s"]);
    assert_eq!(elsewhere.status.code(), Some(4), "{:?}", text(&elsewhere));
    let flag_wins = weft(&["--profile", "nowhere", "--nats", &cluster.nats.url, "list"]);
    assert_eq!(flag_wins.status.code(), Some(0), "{:?}", text(&flag_wins));
    let missing = weft(&["--profile", "prod", "list"]);
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no profile `prod`") && stderr.contains("profiles: here, nowhere"), "{stderr}");
}
