//! Parked: many runs waiting in a `signal` step. Memory per parked run is the growth of
//! the coordinator's resident memory (VmRSS) from before the submits to when every run
//! waits, divided by the runs; then every run is signalled and the release timed until
//! the last `run_finished` arrives.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;
use weft_client::WeftClient;

use super::Ctx;
use crate::cluster::Cluster;
use crate::load::{self, Retries};
use crate::procfs::{self, CpuMeter};
use crate::report::{Metric, ScenarioReport};
use crate::stats::median;
use crate::tracker::Tracker;
use crate::workflows::{self, SIGNAL, SIGNAL_STEP};

/// Requests in flight while submitting or signalling.
pub const CONCURRENCY: usize = 64;

/// What the records of runs not seen to finish say (the first few).
pub async fn diagnose(client: &WeftClient, tracker: &Tracker, ids: &[Uuid]) -> String {
    let unfinished = tracker.unfinished(ids);
    let mut out = format!("{} runs without `run_finished`", unfinished.len());
    for id in unfinished.iter().take(5) {
        let what = match client.status(*id).await {
            Ok(r) => {
                format!("{:?}, step {:?}", r.status, r.steps.get(SIGNAL_STEP).map(|s| (s.status, s.attempts.len())))
            }
            Err(e) => e.to_string(),
        };
        out.push_str(&format!("; {id}: {what}"));
    }
    // What the events stream holds for the first of them.
    if let Some(id) = unfinished.first()
        && let Ok(events) = client.watch(*id).await
    {
        let mut events = Box::pin(events);
        let mut seen = Vec::new();
        while let Ok(Some(Ok(event))) = tokio::time::timeout(Duration::from_secs(2), events.next()).await {
            seen.push(format!(
                "{}:{}",
                event.seq,
                serde_json::to_value(&event.kind)
                    .map_or_else(|_| "?".to_owned(), |v| v["event"].as_str().unwrap_or("?").to_owned())
            ));
        }
        out.push_str(&format!("; stored events of {id}: [{}]", seen.join(", ")));
    }
    out
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (n, repeats) = ctx.scale.parked;
    report.scale = format!(
        "{n} runs of one `signal` step, submitted {CONCURRENCY} at a time, then all signalled {CONCURRENCY} at a time; \
         × {repeats} repeat(s), each on a fresh cluster"
    );
    if n < 20_000 {
        report.scaled_down = Some(format!("{n} runs instead of 20,000"));
    }
    let mut per_run = Vec::new();
    let mut nats_per_run = Vec::new();
    let mut releases = Vec::new();
    let mut submit_rates = Vec::new();
    let mut silent_total = 0;
    for _ in 0..repeats {
        let cluster = Cluster::start(&ctx.bins, ctx.settings(None)).await?;
        let clients = load::clients(&cluster.nats.url, 4).await?;
        let tracker = Tracker::start(&cluster.nats.url, false).await?;
        let pid = cluster.coordinator.pid().context("coordinator pid")?;
        let nats_pid = cluster.nats.pid().context("nats-server pid")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let base = procfs::memory(pid).unwrap_or_default();
        let nats_base = procfs::memory(nats_pid).unwrap_or_default();

        let retries = Retries::default();
        let started = Instant::now();
        let ids = load::submit_many(&clients, &workflows::parked(), n, CONCURRENCY, &retries).await?;
        let submitted = started.elapsed();
        let limit = ctx.scale.patience(Duration::from_secs(300));
        let (counts, all) = tracker.wait_until(SIGNAL_STEP, limit, |c| c.started >= n).await;
        if !all {
            bail!("only {} of {n} runs reached their signal step in {limit:?}", counts.started);
        }
        let parked = started.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let held = procfs::memory(pid).unwrap_or_default();
        let nats_held = procfs::memory(nats_pid).unwrap_or_default();
        let bytes = (held.rss_kb.saturating_sub(base.rss_kb) * 1024) as f64 / n as f64;
        let nats_bytes = (nats_held.rss_kb.saturating_sub(nats_base.rss_kb) * 1024) as f64 / n as f64;

        let meter = CpuMeter::start(cluster.pids());
        let release = Instant::now();
        load::signal_many(&clients, &ids, SIGNAL, &json!({"ok": true}), CONCURRENCY, &retries).await?;
        let sent = release.elapsed();
        let silent = match load::wait_finished(&tracker, &clients[0], &ids, &AtomicBool::new(true), limit).await {
            Ok(silent) => silent,
            Err(e) => {
                let stuck = diagnose(&clients[0], &tracker, &ids).await;
                bail!("{e} after their signal; {stuck}; services: {:?}", cluster.warnings());
            }
        };
        // Runs found finished only by their record have no arrival time: the release then
        // ends when they were found.
        let released = if silent.is_empty() {
            tracker.last_finish(&ids).map_or_else(|| release.elapsed(), |at| at - release)
        } else {
            release.elapsed()
        };
        let cpu = meter.stop();
        report.repeats.push(json!({
            "runs": n, "submit_s": submitted.as_secs_f64(), "all_parked_s": parked.as_secs_f64(),
            "coordinator_rss_before_kb": base.rss_kb, "coordinator_rss_parked_kb": held.rss_kb,
            "coordinator_bytes_per_run": bytes, "nats_rss_before_kb": nats_base.rss_kb,
            "nats_rss_parked_kb": nats_held.rss_kb, "nats_bytes_per_run": nats_bytes,
            "signals_sent_s": sent.as_secs_f64(), "release_s": released.as_secs_f64(),
            "retried_requests": retries.count(), "slow_consumer_notices": tracker.slow_consumer_notices(),
            "release_cpu": cpu, "finished_without_event": silent.len(),
        }));
        per_run.push(bytes);
        nats_per_run.push(nats_bytes);
        releases.push(released.as_secs_f64());
        submit_rates.push(n as f64 / parked.as_secs_f64());
        silent_total += silent.len();
        report.services(&cluster);
    }
    if silent_total > 0 {
        report.notes.push(format!(
            "{silent_total} of {} runs ended without a `run_finished` event (found by their records; the release \
             time then runs to when they were found).",
            n * repeats
        ));
    }
    let kb = median(&per_run) / 1024.0;
    report.metrics.push(
        Metric::new("coordinator memory per parked run", kb, "KiB").target("under 4 KB per parked workflow", kb < 4.0),
    );
    report.metrics.push(Metric::new("nats-server memory per parked run", median(&nats_per_run) / 1024.0, "KiB"));
    let release = median(&releases);
    report.metrics.push(Metric::new(format!("time to release all {n}"), release, "s"));
    report.metrics.push(Metric::new("release rate", n as f64 / release, "runs/s"));
    report.metrics.push(Metric::new("submit until parked rate", median(&submit_rates), "runs/s"));
    report.notes.push(
        "Memory: VmRSS growth from before the submits to 1 s after the last run reached its signal step (it \
         includes allocator slack). Release: from the first signal sent to the last `run_finished` received; each \
         signal is a request to the coordinator, which checks the run and appends the signal to its log."
            .to_owned(),
    );
    Ok(())
}
