//! Tools from elsewhere: what serving an MCP server's tool through Weft costs over calling
//! the server directly, and how a Python worker (the SDK in `python/`) compares with the
//! Rust worker.
//!
//! - One call at a time: `tools/call echo` on `server-everything` (stdio) from an MCP client
//!   here; the same tool as a one-step workflow (`everything.echo`, served by a Rust worker
//!   started with `--mcp`) through `WeftClient::run`; and one-step workflows of the built-in
//!   `echo` and of the Python worker's `py_echo`, the same way.
//! - Throughput: 10-step chains of `echo` and of `py_echo`, many at once, steps per second
//!   from the first submit to the last `run_finished`.
//!
//! The parts that need the npm server or the Python SDK are skipped, with a note, when
//! deploy/setup.sh has not installed them.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use serde_json::{Map, Value, json};
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::RunStatus;

use super::Ctx;
use crate::cluster::{Cluster, Proc};
use crate::load::{self, Retries};
use crate::report::{Metric, ScenarioReport};
use crate::stats::{P50P99, ms};
use crate::tracker::Tracker;
use crate::workflows;

/// Calls before measuring.
const WARM_UP: usize = 10;
/// Steps of the throughput chains.
const CHAIN: usize = 10;
/// Submits in flight at once in the throughput part.
const IN_FLIGHT: usize = 32;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (calls, chains) = ctx.scale.tools;
    report.scale = format!(
        "{calls} calls one at a time of each kind; {chains} {CHAIN}-step chains of each worker's echo, \
         {IN_FLIGHT} submits at a time"
    );
    if calls < 300 {
        report.scaled_down = Some(format!("{calls} calls instead of 300, {chains} chains instead of 1,000"));
    }
    let everything = weft_tests::npm_bin("mcp-server-everything");
    let python = weft_tests::repo_root().join(".weft/venv/bin/python");
    let has_mcp = everything.exists();
    let has_python = python.exists();
    for (missing, what) in [(!has_mcp, "server-everything (npm)"), (!has_python, "the Python SDK's venv")] {
        if missing {
            report.notes.push(format!("{what} not installed (deploy/setup.sh installs it): its part was skipped"));
        }
    }

    let mut settings = ctx.settings(None);
    settings.workers = 1;
    if has_mcp {
        settings.worker_args = vec!["--mcp".to_owned(), format!("everything={} stdio", everything.display())];
    }
    let cluster = Cluster::start(&ctx.bins, settings).await?;
    let client = cluster.client().await?;
    let _python_worker = if has_python { Some(start_python_worker(&cluster, &python)?) } else { None };
    let mut wanted = vec!["echo"];
    wanted.extend(has_mcp.then_some("everything.echo"));
    wanted.extend(has_python.then_some("py_echo"));
    until_advertised(&client, &wanted).await?;

    let floor = ctx.floor_p50();
    let message = json!({"message": "hello"});
    let builtin = time_runs(&client, &workflows::one_step("echo", message.clone()), calls).await?;
    report.metrics.push(Metric::new("built-in `echo` step, `WeftClient::run` p50", builtin.p50, "ms").vs(floor));
    if has_mcp {
        let direct = direct_mcp_calls(&everything, &message, calls).await?;
        let through = time_runs(&client, &workflows::one_step("everything.echo", message.clone()), calls).await?;
        report.metrics.push(Metric::new("MCP `tools/call echo`, direct p50", direct.p50, "ms"));
        report
            .metrics
            .push(Metric::new("MCP `echo` as a Weft step, `WeftClient::run` p50", through.p50, "ms").vs(floor));
        report.metrics.push(Metric::new("MCP through Weft − built-in step p50", through.p50 - builtin.p50, "ms"));
        report.repeats.push(json!({"direct_mcp_ms": direct, "mcp_step_ms": through}));
    }
    if has_python {
        let py = time_runs(&client, &workflows::one_step("py_echo", json!({"i": 1})), calls).await?;
        report.metrics.push(Metric::new("Python `py_echo` step, `WeftClient::run` p50", py.p50, "ms").vs(floor));
        report.repeats.push(json!({"python_step_ms": py}));
    }
    report.repeats.push(json!({"builtin_step_ms": builtin}));

    let tracker = Tracker::start(&cluster.nats.url, false).await?;
    let clients = load::clients(&cluster.nats.url, 4).await?;
    let rust_rate = chain_rate(&tracker, &clients, &workflows::chain_of("echo", CHAIN), chains).await?;
    report.metrics.push(Metric::new("Rust worker: chain steps/s", rust_rate, "steps/s"));
    if has_python {
        let py_rate = chain_rate(&tracker, &clients, &workflows::chain_of("py_echo", CHAIN), chains).await?;
        report.metrics.push(Metric::new("Python worker: chain steps/s", py_rate, "steps/s"));
        report.metrics.push(Metric::new("Python / Rust steps/s", py_rate / rust_rate, "×"));
    }
    report.notes.push(
        "Direct: an rmcp client here calling `echo` of server-everything over stdio, one call at a time (the \
         server's own time plus JSON-RPC over pipes). Through Weft: the same call as a one-step workflow, so it \
         adds the whole run (submit, record, dispatch, result, final record); the built-in step is that run \
         with a Rust tool, so MCP through Weft − built-in is what the MCP adapter and the server add. The chains \
         run on one worker of each kind: the Rust worker (with the MCP server) and one Python process."
            .to_owned(),
    );
    report.services(&cluster);
    Ok(())
}

/// The Python worker serving `py_echo` (benches/fixtures/py_tools.py).
fn start_python_worker(cluster: &Cluster, python: &std::path::Path) -> anyhow::Result<Proc> {
    let fixtures = weft_tests::repo_root().join("benches/fixtures").display().to_string();
    let env = [("NATS_URL", cluster.nats.url.as_str()), ("PYTHONPATH", fixtures.as_str()), ("WEFT_WORKER_ID", "py")];
    Proc::start("python-worker", python, &["-m", "weft", "worker", "py_tools:worker"], &env, cluster.log_dir())
        .context("the Python worker did not start")
}

async fn until_advertised(client: &WeftClient, names: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ads = client.tools().await.unwrap_or_default();
        let missing: Vec<&&str> = names.iter().filter(|n| !ads.iter().any(|a| a.spec.name == **n)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("tools {missing:?} not advertised after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `calls` runs of `def` one after another through `WeftClient::run` (after a warm-up).
async fn time_runs(client: &WeftClient, def: &WorkflowDef, calls: usize) -> anyhow::Result<P50P99> {
    let mut times = Vec::with_capacity(calls);
    for i in 0..WARM_UP + calls {
        let started = Instant::now();
        let record = client.run(def, Value::Null).await?;
        if record.status != RunStatus::Completed {
            bail!("a run of `{}` ended {:?}: {:?}", def.name, record.status, record.errors);
        }
        if i >= WARM_UP {
            times.push(ms(started.elapsed()));
        }
    }
    Ok(P50P99::of(&times))
}

/// `calls` `tools/call echo` one after another on a server-everything of its own.
async fn direct_mcp_calls(everything: &PathBuf, arguments: &Value, calls: usize) -> anyhow::Result<P50P99> {
    let mut command = tokio::process::Command::new(everything);
    command.arg("stdio").kill_on_drop(true);
    // Its banner and logs are not the benchmark's output.
    let (transport, _) =
        rmcp::transport::TokioChildProcess::builder(command).stderr(std::process::Stdio::null()).spawn()?;
    let peer = ().serve(transport).await.context("server-everything did not initialize")?;
    let arguments: Map<String, Value> = arguments.as_object().cloned().unwrap_or_default();
    let mut times = Vec::with_capacity(calls);
    for i in 0..WARM_UP + calls {
        let request = CallToolRequestParams::new("echo").with_arguments(arguments.clone());
        let started = Instant::now();
        let result = peer.call_tool(request).await.context("tools/call echo")?;
        if result.is_error == Some(true) {
            bail!("echo answered an error: {result:?}");
        }
        if i >= WARM_UP {
            times.push(ms(started.elapsed()));
        }
    }
    let _ = peer.cancel().await;
    Ok(P50P99::of(&times))
}

/// Steps per second of `n` runs of the chain `def`, [`IN_FLIGHT`] submits at a time.
async fn chain_rate(tracker: &Tracker, clients: &[WeftClient], def: &WorkflowDef, n: usize) -> anyhow::Result<f64> {
    tracker.clear();
    let retries = Retries::default();
    let started = Instant::now();
    let ids = load::submit_many(clients, def, n, IN_FLIGHT, &retries).await?;
    let done = AtomicBool::new(true);
    load::wait_finished(tracker, &clients[0], &ids, &done, Duration::from_secs(600)).await?;
    let last = tracker.last_finish(&ids).unwrap_or_else(Instant::now);
    let seconds = last.saturating_duration_since(started).as_secs_f64().max(1e-3);
    Ok((n * CHAIN) as f64 / seconds)
}
