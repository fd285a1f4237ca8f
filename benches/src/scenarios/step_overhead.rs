//! Step overhead: a chain of `echo` steps, each needing the one before, run alone. The
//! time of one step is the gap between two consecutive `step_started` events as they
//! arrive here (microseconds); the run record's attempt dispatch times give the same gaps
//! at millisecond resolution, and (finished − created) / steps the mean.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Ctx;
use crate::cluster::Cluster;
use crate::report::{Metric, ScenarioReport};
use crate::stats::{P50P99, median, ms};
use crate::tracker::Tracker;
use crate::workflows;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (steps, repeats) = ctx.scale.chain;
    report.scale = format!("a {steps}-step chain of `echo`, run alone, × {repeats} repeats (after one to warm up)");
    if steps < 100 {
        report.scaled_down = Some(format!("{steps} steps instead of 100"));
    }
    let cluster = Cluster::start(&ctx.bins, ctx.settings(None)).await?;
    let client = cluster.client().await?;
    let tracker = Tracker::start(&cluster.nats.url, true).await?;
    let def = workflows::echo_chain(steps);
    let limit = Duration::from_secs(120);

    let mut events = Vec::new();
    let mut means = Vec::new();
    for repeat in 0..=repeats {
        tracker.clear();
        let id = Uuid::now_v7();
        client.submit_with_id(id, &def, Value::Null).await?;
        tracker.wait_run(id, limit).await.with_context(|| format!("the chain did not finish in {limit:?}"))?;
        if repeat == 0 {
            continue; // warm-up
        }
        let track = tracker.track(id).context("no events seen")?;
        let mut started: Vec<(usize, std::time::Instant)> = track
            .started
            .iter()
            .filter_map(|(step, at)| step.strip_prefix('s').and_then(|i| i.parse().ok()).map(|i| (i, *at)))
            .collect();
        started.sort_by_key(|(i, _)| *i);
        let gaps: Vec<f64> = started.windows(2).map(|w| ms(w[1].1 - w[0].1)).collect();
        let record = client.status(id).await?;
        let mut dispatched: Vec<(usize, u64)> = record
            .steps
            .iter()
            .filter_map(|(step, r)| {
                let i = step.strip_prefix('s')?.parse().ok()?;
                Some((i, r.attempts.first()?.dispatched_ms))
            })
            .collect();
        dispatched.sort_by_key(|(i, _)| *i);
        let record_gaps: Vec<f64> = dispatched.windows(2).map(|w| w[1].1.saturating_sub(w[0].1) as f64).collect();
        let mean =
            record.finished_ms.unwrap_or(record.created_ms).saturating_sub(record.created_ms) as f64 / steps as f64;
        let (e, r) = (P50P99::of(&gaps), P50P99::of(&record_gaps));
        report.repeats.push(json!({"per_step_events_ms": e, "per_step_record_ms": r, "mean_per_step_ms": mean,
                                   "status": record.status}));
        events.push(e);
        means.push(mean);
    }
    let e = P50P99::median_of(&events);
    let floor = ctx.floor_p50();
    let met = floor.is_some_and(|f| e.p50 <= 2.0 * f);
    report.metrics.push(Metric::new("per-step p50", e.p50, "ms").vs(floor).target("p50 within 2× the floor", met));
    report.metrics.push(Metric::new("per-step p99", e.p99, "ms").vs(ctx.floor_p99()));
    report.metrics.push(Metric::new("per-step mean (record)", median(&means), "ms").vs(floor));
    report.notes.push(
        "Per-step time: gap between consecutive `step_started` events as received by the benchmark (one step = \
         dispatch, worker, result stored, applied, next dispatch). p99 is of each run's gaps, median over repeats; \
         the ratio to the floor divides p50 by the floor's p50 and p99 by its p99. The repeats also hold the \
         same gaps from the records' dispatch times (1 ms resolution); the mean is (finished − created) / steps."
            .to_owned(),
    );
    if tracker.slow_consumer_notices() > 0 {
        report.notes.push(format!("{} slow-consumer notices: events may be missing", tracker.slow_consumer_notices()));
    }
    report.services(&cluster);
    Ok(())
}
