//! `weft plan GOAL`: a model writes a workflow for the goal from the live tools; the
//! coordinator checks it (as a `plan` step does), and the command prints it, or runs it.
//!
//! The plan is asked for by a one-step run on the coordinator, so the model is called
//! by a worker's `llm` tool with the provider's key, never by this command, and the
//! answer, every proposal and its problems are in that run's record.

use std::process::ExitCode;

use serde_json::{Value, json};
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_lang::plan::PLANNER_TOOL;
use weft_protocol::wire::{RunRecord, RunStatus};

use crate::exit;

/// What `weft plan` was asked.
#[derive(Debug)]
pub(crate) struct Ask {
    /// The goal.
    pub goal: String,
    /// Tools the plan may call (default: every tool workers offer but `llm`).
    pub tools: Vec<String>,
    /// The model (default: the worker's).
    pub model: Option<String>,
    /// The planned run's input.
    pub input: Value,
    /// Run the plan instead of printing it.
    pub run: bool,
    /// Repairs allowed.
    pub max_repairs: Option<u32>,
}

/// The one-step workflow that asks for the plan.
pub(crate) fn asking(ask: &Ask, tools: &[String]) -> anyhow::Result<WorkflowDef> {
    let mut plan = json!({"goal": ask.goal, "tools": tools, "run": ask.run, "input": "{input}"});
    if let Some(model) = &ask.model {
        plan["model"] = json!(model);
    }
    if let Some(n) = ask.max_repairs {
        plan["max_repairs"] = json!(n);
    }
    let def = json!({"name": "weft_plan", "description": format!("weft plan: {}", ask.goal),
                     "steps": [{"id": "plan", "plan": plan}], "output": "{plan}"});
    Ok(WorkflowDef::from_json(&def.to_string())?)
}

/// Runs `weft plan`.
pub(crate) async fn plan(client: &WeftClient, ask: Ask) -> anyhow::Result<ExitCode> {
    let tools = if ask.tools.is_empty() {
        let mut names: Vec<String> =
            client.tools().await?.into_iter().map(|a| a.spec.name).filter(|n| n != PLANNER_TOOL).collect();
        names.sort();
        names.dedup();
        names
    } else {
        ask.tools.clone()
    };
    let def = asking(&ask, &tools)?;
    let record = client.run(&def, ask.input.clone()).await?;
    report_rounds(&record);
    if record.status != RunStatus::Completed {
        let reason =
            record.steps.get("plan").and_then(|s| s.reason.clone()).unwrap_or_else(|| record.errors.join("; "));
        eprintln!("error: no plan: {reason}");
        eprintln!("the planning run is {}: `weft status {}` shows it", record.run_id, record.run_id);
        return Ok(ExitCode::from(exit::FAILED));
    }
    let output = record.output.clone().unwrap_or(Value::Null);
    outln!("{}", serde_json::to_string_pretty(&output)?);
    if ask.run {
        eprintln!("ran the plan as a child of run {}", record.run_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Each plan the model proposed, and what was wrong with it, on standard error.
fn report_rounds(record: &RunRecord) {
    let Some(step) = record.steps.get("plan") else { return };
    for (n, round) in step.plans.iter().enumerate() {
        let name = round.plan.get("name").and_then(Value::as_str).unwrap_or("(no name)");
        if round.problems.is_empty() {
            eprintln!("plan {}: `{name}` is valid", n + 1);
        } else {
            eprintln!("plan {}: `{name}` has {} problem(s):", n + 1, round.problems.len());
            for problem in &round.problems {
                eprintln!("  - {problem}");
            }
        }
    }
}
