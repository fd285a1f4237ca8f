//! A busy coordinator: one run of a `for_each` over 100,000 items that a tool makes (a
//! 300-byte workflow), and while it runs: how long small canary runs take end to end
//! (`WeftClient::run` of a 2-step chain, one after another), how long a status of the busy
//! run takes, and how long its cancel takes to end it (or, if it ended first, how long it
//! took in all). The coordinator's limits are raised
//! for it (`WEFT_MAX_ITEMS`, `WEFT_MAX_INSTANCES`).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{RunStatus, StepStatus};

use super::Ctx;
use crate::cluster::Cluster;
use crate::report::{Metric, ScenarioReport};
use crate::stats::median;

fn wide() -> anyhow::Result<WorkflowDef> {
    let def = json!({"name": "wide", "steps": [
        {"id": "make", "tool": "echo", "params": {"xs": "{input.xs}"}},
        {"id": "each", "for_each": {"items": "{make.xs}", "as": "x", "do": [
            {"id": "one", "tool": "echo", "params": {"x": "{x}"}}
        ]}}
    ]});
    Ok(WorkflowDef::from_json(&def.to_string())?)
}

fn canary() -> anyhow::Result<WorkflowDef> {
    let def = json!({"name": "canary", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "b", "tool": "echo", "params": {"n": "{a.n}"}}
    ], "output": "{b.n}"});
    Ok(WorkflowDef::from_json(&def.to_string())?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (n, canaries, repeats) = ctx.scale.busy;
    report.scale =
        format!("a for_each of {n} echo items; {canaries} canary runs, a status and a cancel meanwhile; × {repeats}");
    if n < 100_000 {
        report.scaled_down = Some(format!("{n} items instead of 100,000"));
    }
    let (mut fanned, mut canary_p50, mut canary_max, mut status, mut cancel, mut whole) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let mut settings = ctx.settings(None);
        settings.coordinator_env =
            vec![("WEFT_MAX_ITEMS", n.to_string()), ("WEFT_MAX_INSTANCES", (2 * n + 10).to_string())];
        let cluster = Cluster::start(&ctx.bins, settings).await?;
        let client = cluster.client().await?;
        let xs: Vec<usize> = (0..n).collect();
        let began = Instant::now();
        let big = client.submit(&wide()?, json!({ "xs": xs })).await.context("the busy run")?;
        // Fanned out: its `for_each` runs (the status is answered ahead of its inputs).
        loop {
            let record = client.status(big).await.context("status of the busy run")?;
            // A record of 100,000 steps does not fit in a message: abridged, it leaves steps out.
            let each = record.steps.get("each").map(|s| s.status);
            if each == Some(StepStatus::Running) || (each.is_none() && record.abridged.is_some()) {
                break;
            }
            if record.status.is_terminal() || began.elapsed() > ctx.scale.patience(Duration::from_secs(120)) {
                bail!("the busy run did not fan out: {:?} {:?}", record.status, record.errors);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fanned.push(ms(began.elapsed()));
        let timed = Instant::now();
        let record = client.status(big).await.context("status of the busy run")?;
        status.push(ms(timed.elapsed()));
        // Canaries one after another, from another connection, while the cancel is made.
        let canary_client = cluster.client().await?;
        let canary_def = canary()?;
        let canaries_run = tokio::spawn(async move {
            let mut took = Vec::new();
            for _ in 0..canaries {
                let timed = Instant::now();
                let done = canary_client.run(&canary_def, Value::Null).await.context("a canary run")?;
                if done.status != RunStatus::Completed {
                    bail!("a canary ended {:?}: {:?}", done.status, done.errors);
                }
                took.push(ms(timed.elapsed()));
            }
            Ok(took)
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let timed = Instant::now();
        match client.cancel(big, Some("the benchmark".into())).await {
            Ok(()) => {
                let ended = client.wait(big).await.context("the busy run's end")?;
                cancel.push(ms(timed.elapsed()));
                if ended.status != RunStatus::Cancelled && ended.status != RunStatus::Completed {
                    bail!("the busy run ended {:?}: {:?}", ended.status, ended.errors);
                }
            }
            Err(e) => {
                let ended = client.status(big).await.context("status of the busy run")?;
                if !ended.status.is_terminal() {
                    bail!("cancel refused while the run runs: {e}");
                }
                let took = ended.finished_ms.unwrap_or(ended.created_ms).saturating_sub(ended.created_ms);
                whole.push(took as f64);
                report.notes.push(format!(
                    "the busy run ended ({}) before the cancel, {took} ms after its submit (status was {:?})",
                    ended.status.as_str(),
                    record.status
                ));
            }
        }
        let took = canaries_run.await.context("the canaries' task")??;
        canary_p50.push(median(&took));
        canary_max.push(took.iter().copied().fold(0.0, f64::max));
        drop(cluster);
    }
    report.metrics.push(Metric::new("fan-out: submit to the for_each running", median(&fanned), "ms"));
    report
        .metrics
        .push(Metric::new("canary run (2 steps), p50 meanwhile", median(&canary_p50), "ms").vs(ctx.floor_p50()));
    report.metrics.push(Metric::new("canary run (2 steps), slowest meanwhile", median(&canary_max), "ms"));
    report.metrics.push(Metric::new("status of the busy run", median(&status), "ms"));
    if !cancel.is_empty() {
        report.metrics.push(Metric::new("cancel of the busy run to its end", median(&cancel), "ms"));
    }
    if !whole.is_empty() {
        report.metrics.push(Metric::new("the busy run, submit to end (not cancelled in time)", median(&whole), "ms"));
    }
    report.notes.push(
        "The busy run's results queue in its partition ahead of the cancel, which is applied in log order (a \
         replay must see what the live run saw); the cancel's figure is how far behind the coordinator runs."
            .to_owned(),
    );
    Ok(())
}
