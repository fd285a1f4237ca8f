//! Parallel vs sequential: the same 12 `sleep` steps run with their dependencies (so
//! independent ones run at once) and one after another. Wall time from the records
//! (finished − created); the ideal ratio is the critical path over the sum of the sleeps.

use anyhow::bail;
use serde_json::{Value, json};
use weft_protocol::wire::RunStatus;

use super::Ctx;
use crate::cluster::Cluster;
use crate::report::{Metric, ScenarioReport};
use crate::stats::median;
use crate::workflows;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let repeats = ctx.scale.parallel;
    let (sum, critical) = workflows::twelve_ideal();
    report.scale = format!(
        "12 `sleep` steps (a fetch, six lookups, three merges, a score, a notification; {sum} ms in all, critical \
         path {critical} ms) with their dependencies and chained, alternately, × {repeats} repeats"
    );
    let cluster = Cluster::start(&ctx.bins, ctx.settings(None)).await?;
    let client = cluster.client().await?;
    let (parallel, sequential) = (workflows::twelve_parallel(), workflows::twelve_sequential());
    let mut walls_p = Vec::new();
    let mut walls_s = Vec::new();
    for _ in 0..repeats {
        let mut walls = [0.0; 2];
        for (i, def) in [&parallel, &sequential].into_iter().enumerate() {
            let r = client.run(def, Value::Null).await?;
            if r.status != RunStatus::Completed {
                bail!("{} ended {:?}", def.name, r.status);
            }
            walls[i] = r.finished_ms.unwrap_or(0).saturating_sub(r.created_ms) as f64;
        }
        report.repeats.push(json!({"parallel_ms": walls[0], "sequential_ms": walls[1], "ratio": walls[0] / walls[1]}));
        walls_p.push(walls[0]);
        walls_s.push(walls[1]);
    }
    let (p, s) = (median(&walls_p), median(&walls_s));
    let ratio = p / s;
    let improvement = 100.0 * (1.0 - ratio);
    report.metrics.push(
        Metric::new("improvement over sequential", improvement, "%").target("60% (the seed)", improvement >= 60.0),
    );
    report.metrics.push(Metric::new("wall-time ratio parallel / sequential", ratio, "×"));
    report.metrics.push(Metric::new("ideal ratio (critical path / sum)", critical as f64 / sum as f64, "×"));
    report.metrics.push(Metric::new("parallel wall time", p, "ms"));
    report.metrics.push(Metric::new("sequential wall time", s, "ms"));
    report.notes.push(format!(
        "Overhead over the sleeps: parallel {:.0} ms over its critical path of {critical} ms (5 levels), \
         sequential {:.0} ms over {sum} ms (12 steps).",
        p - critical as f64,
        s - sum as f64
    ));
    report.services(&cluster);
    Ok(())
}
