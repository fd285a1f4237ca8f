//! `weft ui` in a real headless Chromium: pages of real runs on real services, asserted by
//! what they show; and the server's refusals (foreign hosts and origins, bad ids) over HTTP.

use std::time::Duration;

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::RunStatus;
use weft_tests::browser::{Browser, is_red};
use weft_tests::cluster::Cluster;
use weft_tests::process::Proc;
use weft_tests::wait::free_port;

/// How long the page may take to show a state it reaches by itself.
const SHOWN: Duration = Duration::from_secs(20);

fn def(json: Value) -> WorkflowDef {
    serde_json::from_value(json).expect("a workflow")
}

/// A registered workflow with a failed step and a skipped one.
fn broken() -> WorkflowDef {
    def(json!({
        "name": "ui_broken", "version": 1,
        "steps": [
            {"id": "greet", "tool": "echo", "params": {"text": "hello"}},
            {"id": "cold", "tool": "echo", "params": {"text": "never"}, "when": {"eq": ["{input.cold}", true]}},
            {"id": "brew", "tool": "fail", "params": {"message": "out of coffee", "code": "EMPTY"},
             "retry": {"max_attempts": 1}, "depends_on": ["greet"]}
        ]
    }))
}

/// A registered workflow that waits for an approval, then acts on it.
fn approval() -> WorkflowDef {
    def(json!({
        "name": "ui_approval", "version": 1,
        "steps": [
            {"id": "ask", "tool": "echo", "params": {"text": "approve?"}},
            {"id": "approval", "depends_on": ["ask"], "signal": {
                "name": "approve",
                "schema": {"type": "object", "required": ["approved"], "properties": {"approved": {"type": "boolean"}}}
            }},
            {"id": "act", "tool": "echo", "params": {"text": "approved: {approval.approved}"}}
        ],
        "output": {"said": "{act.text}"}
    }))
}

/// Starts `weft ui` against the cluster; returns it and its base URL.
fn start_ui(cluster: &Cluster, dir: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let ui = Proc::start(
        "weft-ui",
        &weft_tests::bin("weft"),
        &["--nats", &cluster.nats.url, "ui", "--addr", &addr, "--jaeger", "http://jaeger.test:16686"],
        &[],
        dir,
    )
    .expect("weft ui starts");
    weft_tests::wait::listening(port).unwrap_or_else(|e| panic!("weft ui does not listen: {e}\n{}", ui.logs()));
    (ui, format!("http://{addr}"))
}

/// The browser's view of real runs: a failed step in red and a skipped one marked, the
/// graph of the registered plan, the run list filtered by workflow, and a waiting run
/// whose approval, sent from the signal form, makes its steps and status turn complete
/// live, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_shows_real_runs_and_sends_a_signal() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    for d in [broken(), approval()] {
        weft_tests::wait::until_ok("deploy", Duration::from_secs(30), || client.deploy(&d)).await;
    }
    let failed = client.run(&broken(), json!({"cold": false})).await.expect("the run ends");
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let dir = tempfile::tempdir().expect("dir");
    let (ui, base) = start_ui(&cluster, dir.path());
    let browser = Browser::start().await;

    // A failed run: the failed step is red in the table and the graph; the skipped one is marked.
    browser.goto(&format!("{base}/#/runs/{}", failed.run_id)).await;
    browser.find("[data-testid=\"run-status\"][data-status=\"failed\"]", SHOWN).await;
    browser.find("tr[data-step=\"brew\"][data-status=\"failed\"]", SHOWN).await;
    // Read in one go: the live stream may draw the table again between two reads.
    let colours = browser
        .script(
            "const s = getComputedStyle(document.querySelector('tr[data-step=\"brew\"]')); return [s.color, s.backgroundColor];",
            json!([]),
        )
        .await;
    let (colour, background) = (colours[0].as_str().unwrap_or_default(), colours[1].as_str().unwrap_or_default());
    assert!(is_red(colour) || is_red(background), "the failed row is not red: color {colour}, background {background}");
    browser.find("tr[data-step=\"cold\"][data-status=\"skipped\"]", SHOWN).await;
    browser.find("tr[data-step=\"greet\"][data-status=\"completed\"]", SHOWN).await;
    let node = browser.find("g.node[data-step=\"brew\"]", SHOWN).await;
    assert_eq!(node.attribute("data-status").await.as_deref(), Some("failed"));
    let page = browser.find("body", SHOWN).await.text().await;
    assert!(page.contains("out of coffee"), "the failure's message is shown:\n{page}");
    let jaeger = browser.find("a[href^=\"http://jaeger.test:16686/search\"]", SHOWN).await;
    assert!(jaeger.attribute("href").await.is_some_and(|h| h.contains(&failed.run_id.to_string())));
    browser.screenshot("failed-run").await;

    // Redriven from the page: the run carries on from `brew` (which fails again, with a
    // new attempt); `greet`, which had completed, is not run again.
    browser.script("window.confirm = () => true; return true;", json!([])).await;
    browser.find("[data-testid=\"redrive\"]", SHOWN).await.click().await;
    let again = weft_tests::wait::record(&client, failed.run_id, "redriven, and failed again", |r| {
        r.status == RunStatus::Failed && r.steps["brew"].attempts.len() > failed.steps["brew"].attempts.len()
    })
    .await;
    assert_eq!(again.steps["greet"].attempts, failed.steps["greet"].attempts, "a completed step is not run again");
    browser.find("[data-testid=\"run-status\"][data-status=\"failed\"]", SHOWN).await;

    // A waiting run, opened while it waits; approved from the form; it completes live.
    let waiting = client.submit(&approval(), json!({})).await.expect("submitted");
    weft_tests::wait::record(&client, waiting, "waiting for the approval", |r| {
        r.steps.get("approval").is_some_and(|s| s.status == weft_protocol::wire::StepStatus::Running)
    })
    .await;
    browser.goto(&format!("{base}/#/runs/{waiting}")).await;
    browser.find("[data-testid=\"run-status\"][data-status=\"running\"]", SHOWN).await;
    let act = browser.find("tr[data-step=\"act\"]", SHOWN).await;
    assert_eq!(act.attribute("data-status").await.as_deref(), Some("pending"));
    browser.find("form[data-signal=\"approve\"] input[name=\"approved\"]", SHOWN).await.click().await;
    browser.screenshot("signal-form").await;
    browser.find("form[data-signal=\"approve\"] [data-testid=\"send-signal\"]", SHOWN).await.click().await;
    browser.find("tr[data-step=\"act\"][data-status=\"completed\"]", SHOWN).await;
    browser.find("[data-testid=\"run-status\"][data-status=\"completed\"]", SHOWN).await;
    let done = client.status(waiting).await.expect("status");
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.output, Some(json!({"said": "approved: true"})), "the form sent `approved: true`");
    browser.screenshot("signalled-run").await;

    // The list, filtered by workflow: this workflow's runs and no other.
    browser.goto(&format!("{base}/#/?workflow=ui_approval")).await;
    browser.find(&format!("a[href=\"#/runs/{waiting}\"]"), SHOWN).await;
    let links = browser.all(&format!("a[href=\"#/runs/{}\"]", failed.run_id)).await;
    assert!(links.is_empty(), "the filter left out other workflows' runs");
    browser.screenshot("runs-list").await;
    drop(browser);
    drop(ui);
}

/// What the server refuses, over plain HTTP: a host it does not serve, an action from
/// another origin or not in JSON, a run id that is not one, a run that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_server_refuses_foreign_hosts_and_origins() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_ui, base) = start_ui(&cluster, dir.path());
    weft_worker::tls::install_provider();
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();

    let page = http.get(&base).send().await.expect("the page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("html").contains("app.js"), "the page loads its script");

    let rebound = http.get(format!("{base}/api/runs")).header("Host", "evil.example").send().await.expect("answer");
    assert_eq!(status(rebound), 403, "a foreign Host is refused");
    let run = uuid::Uuid::now_v7();
    let forged = http
        .post(format!("{base}/api/runs/{run}/cancel"))
        .header("Origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    assert_eq!(status(forged), 403, "an action from another origin is refused");
    let plain = http
        .post(format!("{base}/api/runs/{run}/cancel"))
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(status(plain), 400, "an action not in JSON is refused");
    let bad = http.get(format!("{base}/api/runs/not-a-run")).send().await.expect("answer");
    assert_eq!(status(bad), 400);
    let missing = http.get(format!("{base}/api/runs/{run}")).send().await.expect("answer");
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let runs: Value =
        http.get(format!("{base}/api/runs?limit=5")).send().await.expect("answer").json().await.expect("json");
    assert!(runs["runs"].is_array() && runs["counts"].is_object(), "{runs}");
}
