//! Throughput: submitters each looping over a 10-step `echo` chain for a fixed time; runs
//! that completed inside the window count. Two passes, each on a fresh cluster: the
//! engine's (submit, then wait for `run_finished` on the benchmark's one subscription),
//! and `WeftClient::run` as the issue asks (submit, watch through an ordered consumer,
//! read the final record). CPU time of every process over the window, from
//! `/proc/<pid>/stat`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::RunStatus;

use super::Ctx;
use crate::cluster::Cluster;
use crate::procfs::{CpuMeter, CpuShares};
use crate::report::{Metric, ScenarioReport};
use crate::stats::{P50P99, median, ms};
use crate::tracker::Tracker;
use crate::{load, workflows};

/// Steps per workflow.
const STEPS: usize = 10;

/// How a submitter waits for its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// `submit_with_id`, then the tracker's `run_finished`.
    Engine,
    /// `WeftClient::run`.
    ClientRun,
}

/// One pass's figures.
struct Figures {
    rate: f64,
    latency: P50P99,
    cpu: CpuShares,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (seconds, submitters, repeats) = ctx.scale.throughput;
    report.scale = format!(
        "{submitters} submitters each looping over a {STEPS}-step `echo` chain for {seconds} s, waiting through the \
         benchmark's event subscription, then through `WeftClient::run`; × {repeats} repeats, each pass on a fresh \
         cluster; workers' concurrency 64"
    );
    if seconds < 30 || submitters < 64 {
        report.scaled_down = Some(format!("{submitters} submitters for {seconds} s instead of 64 for 30 s"));
    }
    let def = Arc::new(workflows::echo_chain(STEPS));
    let mut engine = Vec::new();
    let mut client_run = Vec::new();
    for _ in 0..repeats {
        for pass in [Pass::Engine, Pass::ClientRun] {
            let figures = one_pass(ctx, report, pass, &def, seconds, submitters).await?;
            match pass {
                Pass::Engine => engine.push(figures),
                Pass::ClientRun => client_run.push(figures),
            }
        }
    }
    let rate = median(&engine.iter().map(|f| f.rate).collect::<Vec<_>>());
    let steps = rate * STEPS as f64;
    report.metrics.push(Metric::new("steps/s", steps, "steps/s").target("10,000 steps/s", steps >= 10_000.0));
    if let Some(floor) = ctx.floor.filter(|f| f.round_trips_per_s > 0.0) {
        report.metrics.push(Metric::new("steps/s / the floor's round trips/s", steps / floor.round_trips_per_s, "×"));
    }
    report.metrics.push(Metric::new("workflows/s", rate, "runs/s"));
    let latency = P50P99::median_of(&engine.iter().map(|f| f.latency).collect::<Vec<_>>());
    report.metrics.push(Metric::new("run p50 under load", latency.p50, "ms"));
    for (i, name) in cpu_names(&engine).iter().enumerate() {
        let values: Vec<f64> = engine.iter().filter_map(|f| cpu_by_role(&f.cpu).get(i).map(|(_, v)| *v)).collect();
        report.metrics.push(Metric::new(format!("CPU: {name}"), median(&values), "% of a core"));
    }
    let rate = median(&client_run.iter().map(|f| f.rate).collect::<Vec<_>>());
    report.metrics.push(Metric::new("`WeftClient::run`: workflows/s", rate, "runs/s"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.notes.push(format!(
        "CPU is user + system time over the window from /proc/<pid>/stat, in % of one core (the machine has \
         {cores} cores, so {}% is all of it); 'other work' is the machine's busy time minus these processes.",
        100 * cores
    ));
    report.notes.push(
        "`WeftClient::run` subscribes to the run's events before it submits (a plain subscription, nothing \
         created on the server), waits for `run_finished`, then asks for the final record: two API requests and \
         one subscription per run. Failed calls, if any, are counted in the repeats' `error_messages`."
            .to_owned(),
    );
    Ok(())
}

/// Runs one pass on a fresh cluster.
async fn one_pass(
    ctx: &Ctx,
    report: &mut ScenarioReport,
    pass: Pass,
    def: &Arc<WorkflowDef>,
    seconds: u64,
    submitters: usize,
) -> anyhow::Result<Figures> {
    let cluster = Cluster::start(&ctx.bins, ctx.settings(Some(64))).await?;
    let clients = load::clients(&cluster.nats.url, 8.min(submitters)).await?;
    let tracker = Arc::new(Tracker::start(&cluster.nats.url, false).await?);
    let completed = Arc::new(AtomicUsize::new(0));
    let errors: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let meter = CpuMeter::start(cluster.pids());
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..submitters {
        let client = clients[i % clients.len()].clone();
        let (def, tracker, completed, errors) = (def.clone(), tracker.clone(), completed.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < end {
                let began = Instant::now();
                let outcome = match pass {
                    Pass::Engine => engine_run(&client, &tracker, &def).await,
                    Pass::ClientRun => client.run(&def, Value::Null).await.map(|r| r.status).map_err(|e| e.to_string()),
                };
                match outcome {
                    Ok(RunStatus::Completed) if Instant::now() <= end => {
                        completed.fetch_add(1, Ordering::Relaxed);
                        times.push(ms(began.elapsed()));
                    }
                    Ok(RunStatus::Completed) => {}
                    other => {
                        let text = match other {
                            Ok(status) => format!("run ended {status:?}"),
                            Err(e) => e.chars().take(160).collect(),
                        };
                        *errors.lock().unwrap_or_else(PoisonError::into_inner).entry(text).or_default() += 1;
                        // A failing call returns at once: do not spin on it.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            times
        }));
    }
    tokio::time::sleep_until(end.into()).await;
    let cpu = meter.stop();
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await?);
    }
    let done = completed.load(Ordering::Relaxed);
    let rate = done as f64 / seconds as f64;
    let latency = P50P99::of(&times);
    let errors = errors.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let name = if pass == Pass::Engine { "engine" } else { "WeftClient::run" };
    report.repeats.push(json!({"pass": name, "workflows": done, "workflows_per_s": rate,
        "steps_per_s": rate * STEPS as f64, "run_ms": latency, "cpu": cpu, "error_messages": errors}));
    report.services(&cluster);
    Ok(Figures { rate, latency, cpu })
}

/// Submits a run and waits for its `run_finished`.
async fn engine_run(client: &WeftClient, tracker: &Tracker, def: &WorkflowDef) -> Result<RunStatus, String> {
    let id = Uuid::now_v7();
    client.submit_with_id(id, def, Value::Null).await.map_err(|e| e.to_string())?;
    match tracker.wait_run(id, Duration::from_secs(60)).await {
        Some(finish) => Ok(finish.status),
        None => Err("no run_finished within 60 s".to_owned()),
    }
}

/// CPU by role: nats-server, coordinator, the workers together, the benchmark, the rest.
fn cpu_by_role(cpu: &CpuShares) -> Vec<(String, f64)> {
    let workers: f64 = cpu.processes.iter().filter(|(n, _)| n.starts_with('w')).map(|(_, p)| p).sum();
    let mut out: Vec<(String, f64)> =
        cpu.processes.iter().filter(|(n, _)| !n.starts_with('w')).map(|(n, p)| (n.clone(), *p)).collect();
    out.push(("workers".to_owned(), workers));
    out.push(("benchmark (clients)".to_owned(), cpu.bench));
    out.push(("other work on the machine".to_owned(), cpu.other));
    out
}

fn cpu_names(figures: &[Figures]) -> Vec<String> {
    figures.first().map(|f| cpu_by_role(&f.cpu).into_iter().map(|(n, _)| n).collect()).unwrap_or_default()
}
