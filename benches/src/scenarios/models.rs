//! Models: what a `plan` step costs beyond its model, and how many decisions per second
//! the shared rate limiter makes. The model is the tests' scripted OpenAI-compatible
//! server (no model can run here), answering at once, so what is measured is Weft's part.
//!
//! - **Plan overhead**: a run whose `plan` step gets a 2-step `echo` plan, against the same
//!   plan submitted as a workflow, both through `WeftClient::run`, one run at a time. The
//!   overhead is the planned run's time minus the direct run's and minus the model call's
//!   own time (the `llm` attempt's started → finished, as the worker saw it); the check
//!   alone is the `llm` attempt's end to the child's dispatch (the plan checked against the
//!   live catalogue, the verdict logged and applied).
//! - **Rate limiter**: a `for_each` of `llm` calls, 64 at once, with a tokens-per-minute
//!   limit no call reaches (so each call costs one decision: a compare-and-set to take room
//!   and one to settle) and then without a limit; decisions per second are the limited
//!   calls per second, and their cost the difference per call.

use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::RunStatus;
use weft_tests::model::{Reply, ScriptedModel};

use super::Ctx;
use crate::cluster::Cluster;
use crate::report::{Metric, ScenarioReport};
use crate::stats::median;

/// The plan the scripted model writes.
fn plan() -> Value {
    json!({"name": "planned", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "b", "tool": "echo", "params": {"n": "{a.n}"}}
    ], "output": "{b.n}"})
}

fn planning() -> anyhow::Result<WorkflowDef> {
    let def = json!({"name": "planning", "steps": [
        {"id": "p", "plan": {"goal": "echo twice", "tools": ["echo"]}}
    ], "output": "{p}"});
    Ok(WorkflowDef::from_json(&def.to_string())?)
}

fn calls(n: usize) -> anyhow::Result<WorkflowDef> {
    let items: Vec<usize> = (0..n).collect();
    let def = json!({"name": "calls", "steps": [
        {"id": "each", "for_each": {"items": items, "concurrency": 64, "do": [
            {"id": "call", "tool": "llm", "params": {"prompt": "call {item}", "max_tokens": 16}}]}}
    ]});
    Ok(WorkflowDef::from_json(&def.to_string())?)
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (runs, n) = ctx.scale.models;
    report.scale = format!(
        "{runs} planned runs against the same plan run directly, one at a time; {n} llm calls 64 at once, with and \
         without a rate limit"
    );
    if runs < 50 {
        report.scaled_down = Some(format!("{runs} planned runs instead of 50, {n} calls instead of 1,000"));
    }
    let answer = plan();
    let model = ScriptedModel::start(move |request, _| {
        if request.body.get("response_format").is_some() {
            Reply::json(&answer, 3000, 60)
        } else {
            Reply::text("ok", 5, 1)
        }
    });
    let mut settings = ctx.settings(None);
    settings.worker_env = vec![("WEFT_LLM_BASE_URL", model.base_url.clone()), ("WEFT_LLM_MODEL", "m".to_owned())];
    let cluster = Cluster::start(&ctx.bins, settings.clone()).await?;
    let client = cluster.client().await?;
    let (planned_def, direct_def) = (planning()?, WorkflowDef::from_json(&plan().to_string())?);
    let (mut overhead, mut check, mut planned_ms, mut direct_ms) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 2 {
        let timed = Instant::now();
        let planned = client.run(&planned_def, Value::Null).await.context("a planned run")?;
        let planned_took = timed.elapsed().as_secs_f64() * 1000.0;
        let timed = Instant::now();
        let direct = client.run(&direct_def, Value::Null).await.context("a direct run")?;
        let direct_took = timed.elapsed().as_secs_f64() * 1000.0;
        if planned.status != RunStatus::Completed || direct.status != RunStatus::Completed {
            bail!("runs ended {:?} / {:?}: {:?}", planned.status, direct.status, planned.errors);
        }
        if i < 2 {
            continue; // warm-up
        }
        let attempts = &planned.steps["p"].attempts;
        let (ask, child) = (&attempts[0], &attempts[1]);
        let model_ms = ask.finished_ms.zip(ask.started_ms).map_or(0, |(f, s)| f.saturating_sub(s)) as f64;
        overhead.push(planned_took - direct_took - model_ms);
        check.push(child.dispatched_ms.saturating_sub(ask.finished_ms.unwrap_or(child.dispatched_ms)) as f64);
        planned_ms.push(planned_took);
        direct_ms.push(direct_took);
    }
    report.services(&cluster);
    drop(cluster);
    report.metrics.push(Metric::new("planned run (plan + 2 echo steps), end to end", median(&planned_ms), "ms"));
    report.metrics.push(Metric::new("the same 2 steps submitted directly", median(&direct_ms), "ms"));
    report.metrics.push(Metric::new("plan step overhead beyond the model", median(&overhead), "ms"));
    report.metrics.push(Metric::new("plan check: answer to the child's dispatch", median(&check), "ms"));

    let mut per_s = Vec::new();
    for limited in [true, false] {
        let mut settings = settings.clone();
        if limited {
            settings.worker_env.push(("WEFT_LLM_TPM", "1000000000".to_owned()));
        }
        let cluster = Cluster::start(&ctx.bins, settings).await?;
        let client = cluster.client().await?;
        let def = calls(n)?;
        client.run(&calls(64)?, Value::Null).await.context("warm-up")?;
        let timed = Instant::now();
        let record = client.run(&def, Value::Null).await.context("the calls")?;
        if record.status != RunStatus::Completed {
            bail!("the calls ended {:?}: {:?}", record.status, record.errors);
        }
        per_s.push(n as f64 / timed.elapsed().as_secs_f64());
    }
    let (limited, free) = (per_s[0], per_s[1]);
    report.metrics.push(Metric::new("rate limiter decisions (limited llm calls) per second", limited, "/s"));
    report.metrics.push(Metric::new("llm calls per second without a limit", free, "/s"));
    report.metrics.push(Metric::new("the limiter's cost per call", 1000.0 / limited - 1000.0 / free, "ms"));
    report.notes.push(
        "The scripted model answers at once; with a real model its time adds to both runs and the overhead is \
         unchanged. A decision is two compare-and-sets on one KV entry, shared by every call of the key: calls at \
         once contend for it."
            .to_owned(),
    );
    Ok(())
}
