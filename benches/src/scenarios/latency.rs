//! Latency: a 3-step `echo` chain, one run at a time. End to end is from the submit call
//! to the run's `run_finished` event arriving here; the engine's share is the record's
//! finished − created (stream timestamps, 1 ms resolution). A last pass times
//! `WeftClient::run` itself (submit, watch, final status), as a Rust caller sees it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;
use weft_protocol::wire::RunStatus;

use super::Ctx;
use crate::cluster::Cluster;
use crate::report::{Metric, ScenarioReport};
use crate::stats::{P50P99, ms};
use crate::tracker::Tracker;
use crate::workflows;

/// Runs before measuring.
const WARM_UP: usize = 10;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (runs, repeats, client_runs) = ctx.scale.latency;
    report.scale = format!(
        "a 3-step `echo` chain at concurrency 1: {runs} runs × {repeats} repeats, then {client_runs} through \
         `WeftClient::run`"
    );
    if runs < 500 {
        report.scaled_down = Some(format!("{runs} runs per repeat instead of 500"));
    }
    let cluster = Cluster::start(&ctx.bins, ctx.settings(None)).await?;
    let client = cluster.client().await?;
    let tracker = Tracker::start(&cluster.nats.url, false).await?;
    let def = workflows::echo_chain(3);
    let limit = Duration::from_secs(30);

    let mut e2e = Vec::new();
    let mut submits = Vec::new();
    let mut engine = Vec::new();
    for repeat in 0..repeats {
        tracker.clear();
        let count = if repeat == 0 { WARM_UP + runs } else { runs };
        let mut times = Vec::with_capacity(runs);
        let mut submit_times = Vec::with_capacity(runs);
        let mut ids = Vec::with_capacity(runs);
        for i in 0..count {
            let id = Uuid::now_v7();
            let started = Instant::now();
            client.submit_with_id(id, &def, Value::Null).await?;
            let submitted = started.elapsed();
            let finish = tracker.wait_run(id, limit).await.with_context(|| format!("run {id} did not finish"))?;
            if finish.status != RunStatus::Completed {
                bail!("run {id} ended {:?}", finish.status);
            }
            if i >= count - runs {
                times.push(ms(finish.at - started));
                submit_times.push(ms(submitted));
                ids.push(id);
            }
        }
        // The records, after the timed runs.
        let engine_times: Vec<f64> = futures::stream::iter(ids)
            .map(|id| {
                let client = &client;
                async move {
                    let r = client.status(id).await.ok()?;
                    Some(r.finished_ms?.saturating_sub(r.created_ms) as f64)
                }
            })
            .buffer_unordered(16)
            .filter_map(|t| async move { t })
            .collect()
            .await;
        let (t, s, en) = (P50P99::of(&times), P50P99::of(&submit_times), P50P99::of(&engine_times));
        report.repeats.push(json!({"end_to_end_ms": t, "submit_ms": s, "engine_ms": en}));
        e2e.push(t);
        submits.push(s);
        engine.push(en);
    }

    let mut run_times = Vec::with_capacity(client_runs);
    for _ in 0..client_runs {
        let started = Instant::now();
        let record = client.run(&def, Value::Null).await?;
        if record.status != RunStatus::Completed {
            bail!("run {} ended {:?}", record.run_id, record.status);
        }
        run_times.push(ms(started.elapsed()));
    }
    let client_run = P50P99::of(&run_times);
    report.repeats.push(json!({"weft_client_run_ms": client_run}));

    let (t, s, en) = (P50P99::median_of(&e2e), P50P99::median_of(&submits), P50P99::median_of(&engine));
    report.metrics.push(Metric::new("end to end p50", t.p50, "ms").vs(ctx.floor_p50()));
    report.metrics.push(Metric::new("end to end p99", t.p99, "ms").vs(ctx.floor_p99()));
    report.metrics.push(Metric::new("submit answered p50", s.p50, "ms").vs(ctx.floor_p50()));
    report.metrics.push(Metric::new("engine (record) p50", en.p50, "ms").vs(ctx.floor_p50()));
    report.metrics.push(Metric::new("`WeftClient::run` p50", client_run.p50, "ms").vs(ctx.floor_p50()));
    report.metrics.push(Metric::new("`WeftClient::run` p99", client_run.p99, "ms").vs(ctx.floor_p99()));
    report.notes.push(
        "End to end: submit call to `run_finished` received (a core subscription on `weft.events.>`). Engine: \
         the record's finished_ms − created_ms, both JetStream storage times, so it leaves out the submit's own \
         record write and the final record store. Three steps are at least three floors."
            .to_owned(),
    );
    report.services(&cluster);
    Ok(())
}
