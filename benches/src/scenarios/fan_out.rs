//! Fan-out: one run of many independent steps. `sleep 200 ms` steps against the critical
//! path of 200 ms (makespan from the record: finished − created), then `echo` steps for
//! the wall time and the coordinator's peak memory (VmHWM, reset before each repeat).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use uuid::Uuid;
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;

use super::Ctx;
use crate::cluster::Cluster;
use crate::procfs::{self, PeakSampler};
use crate::report::{Metric, ScenarioReport};
use crate::stats::{median, ms};
use crate::tracker::{Finish, Tracker};
use crate::workflows;

/// The sleep of each step, and so the critical path.
const SLEEP_MS: u64 = 200;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (sleeps, echoes, sleep_repeats, echo_repeats) = ctx.scale.fan_out;
    report.scale = format!(
        "a {sleeps}-way fan-out of `sleep {SLEEP_MS} ms` × {sleep_repeats} repeats (workers' own limit: 1,024 sleeps \
         each); a {echoes}-way fan-out of `echo` × {echo_repeats} repeats (workers' concurrency 256)"
    );
    if sleeps < 1000 || echoes < 10_000 {
        report.scaled_down = Some(format!("{sleeps} and {echoes} steps instead of 1,000 and 10,000"));
    }
    sleep_fan_out(ctx, report, sleeps, sleep_repeats).await?;
    echo_fan_out(ctx, report, echoes, echo_repeats).await
}

/// Submits `def` and waits for its `run_finished`; the submit instant and the finish.
async fn one_run(
    client: &WeftClient,
    tracker: &Tracker,
    def: &WorkflowDef,
    limit: Duration,
) -> anyhow::Result<(Uuid, Instant, Finish)> {
    let id = Uuid::now_v7();
    let started = Instant::now();
    client.submit_with_id(id, def, Value::Null).await?;
    let finish = tracker.wait_run(id, limit).await.with_context(|| format!("run {id} did not finish in {limit:?}"))?;
    Ok((id, started, finish))
}

async fn sleep_fan_out(ctx: &Ctx, report: &mut ScenarioReport, n: usize, repeats: usize) -> anyhow::Result<()> {
    let cluster = Cluster::start(&ctx.bins, ctx.settings(None)).await?;
    let client = cluster.client().await?;
    let tracker = Tracker::start(&cluster.nats.url, false).await?;
    let def = workflows::sleep_fan_out(n, SLEEP_MS);
    let mut makespans = Vec::new();
    let mut walls = Vec::new();
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..repeats {
        let (id, started, finish) = one_run(&client, &tracker, &def, Duration::from_secs(300)).await?;
        let wall = ms(finish.at - started);
        let record = client.status(id).await?;
        let finished = record.finished_ms.unwrap_or(0);
        let makespan = finished.saturating_sub(record.created_ms) as f64;
        let attempts = || record.steps.values().filter_map(|s| s.attempts.first());
        let tool_started: Vec<u64> = attempts().filter_map(|a| a.started_ms).collect();
        let tool_ended: Vec<u64> = attempts().filter_map(|a| a.finished_ms).collect();
        let (first_start, last_start) = min_max(&tool_started);
        let (_, last_end) = min_max(&tool_ended);
        // Where the overhead goes: before the first tool starts, while the others start,
        // after the last one ends (worker and JetStream clocks, on one machine here).
        let phase = [
            first_start.saturating_sub(record.created_ms),
            last_start - first_start,
            finished.saturating_sub(last_end),
        ];
        for (all, one) in phases.iter_mut().zip(phase) {
            all.push(one as f64);
        }
        report.repeats.push(json!({"steps": n, "status": record.status, "makespan_ms": makespan, "wall_ms": wall,
            "created_to_first_tool_start_ms": phase[0], "tool_start_spread_ms": phase[1],
            "last_tool_end_to_finished_ms": phase[2]}));
        makespans.push(makespan);
        walls.push(wall);
    }
    let makespan = median(&makespans);
    let ratio = makespan / SLEEP_MS as f64;
    report.metrics.push(
        Metric::new(format!("{n} × sleep: makespan / critical path"), ratio, "×")
            .target("within 1.1× the critical path", ratio <= 1.1),
    );
    report.metrics.push(Metric::new(format!("{n} × sleep: makespan"), makespan, "ms"));
    let overhead = makespan - SLEEP_MS as f64;
    report.metrics.push(Metric::new(format!("{n} × sleep: makespan − critical path"), overhead, "ms"));
    if let Some(floor) = ctx.floor.filter(|f| f.burst_ms > 0.0) {
        report.metrics.push(Metric::new(
            format!("{n} × sleep: (makespan − critical path) / the floor's burst of {n}"),
            overhead / floor.burst_ms,
            "×",
        ));
    }
    report.metrics.push(Metric::new(format!("{n} × sleep: submit to finished"), median(&walls), "ms"));
    let [before, spread, after] = phases;
    report.metrics.push(Metric::new(format!("{n} × sleep: created → first tool started"), median(&before), "ms"));
    report.metrics.push(Metric::new(format!("{n} × sleep: first → last tool started"), median(&spread), "ms"));
    report.metrics.push(Metric::new(format!("{n} × sleep: last tool ended → run finished"), median(&after), "ms"));
    report.notes.push(
        "Makespan: the record's finished − created (stream timestamps). Where the overhead goes, from the \
         record: created to the first tool started (delivery of the creation, the run's first step computing every \
         dispatch), first to last tool started (publishing the tasks, storing and delivering them), last tool \
         ended to the run finished (the last results applied). Tool times are the workers' clocks, on the same \
         machine."
            .to_owned(),
    );
    report.services(&cluster);
    Ok(())
}

/// The smallest and largest of `values` (0, 0 if there are none).
fn min_max(values: &[u64]) -> (u64, u64) {
    (values.iter().copied().min().unwrap_or(0), values.iter().copied().max().unwrap_or(0))
}

async fn echo_fan_out(ctx: &Ctx, report: &mut ScenarioReport, n: usize, repeats: usize) -> anyhow::Result<()> {
    let cluster = Cluster::start(&ctx.bins, ctx.settings(Some(256))).await?;
    let client = cluster.client().await?;
    let tracker = Tracker::start(&cluster.nats.url, true).await?;
    let def = workflows::echo_fan_out(n);
    let pid = cluster.coordinator.pid().context("coordinator pid")?;
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    let mut last_steps = Vec::new();
    let mut all_but_lasts = Vec::new();
    for _ in 0..repeats {
        tracker.clear();
        let before = procfs::memory(pid).unwrap_or_default();
        let reset = procfs::reset_peak(pid);
        let sampler = PeakSampler::start(pid, Duration::from_millis(20));
        let (id, started, finish) = one_run(&client, &tracker, &def, Duration::from_secs(600)).await?;
        let sampled = sampler.stop();
        let after = procfs::memory(pid).unwrap_or_default();
        // The kernel's high-water mark if it could be reset, else the sampled peak.
        let peak_kb = if reset { after.hwm_kb.max(sampled) } else { sampled };
        let wall = ms(finish.at - started);
        let track = tracker.track(id).unwrap_or_default();
        let last_step = track.last_completed.map(|at| ms(at - started));
        // All but the last: the last result's events wait for the final record to be stored.
        let all_but_last = track.completed.iter().rev().nth(1).map(|at| ms(*at - started));
        let record = client.status(id).await;
        let (status, stored) = match &record {
            Ok(r) => (format!("{:?}", r.status), r.finished_ms.is_some()),
            Err(e) => (format!("status failed: {e}"), false),
        };
        report.repeats.push(json!({"steps": n, "finish": format!("{:?}", finish.status), "record_status": status,
            "record_stored": stored, "wall_ms": wall, "last_step_completed_ms": last_step,
            "all_but_last_step_completed_ms": all_but_last,
            "coordinator_rss_before_kb": before.rss_kb, "coordinator_peak_kb": peak_kb,
            "coordinator_rss_after_kb": after.rss_kb, "peak_reset": reset}));
        walls.push(wall);
        peaks.push(peak_kb as f64);
        last_steps.extend(last_step);
        all_but_lasts.extend(all_but_last);
        let note = format!("The {n}-step run's final record was not readable as finished ({status}).");
        if !stored && !report.notes.contains(&note) {
            report.notes.push(note);
        }
    }
    report.metrics.push(Metric::new(format!("{n} × echo: wall time"), median(&walls), "ms"));
    report.metrics.push(Metric::new(format!("{n} × echo: last step completed"), median(&last_steps), "ms"));
    report.metrics.push(Metric::new(format!("{n} × echo: all but the last completed"), median(&all_but_lasts), "ms"));
    report.metrics.push(Metric::new(format!("{n} × echo: coordinator peak memory"), median(&peaks) / 1024.0, "MiB"));
    report.notes.push(
        "Wall time: submit call to `run_finished` received; last step completed: to the last `step_completed` \
         received. Peak memory: the coordinator's VmHWM, reset before each repeat (`/proc/<pid>/clear_refs`), \
         and sampled every 20 ms as a check."
            .to_owned(),
    );
    report.services(&cluster);
    Ok(())
}
