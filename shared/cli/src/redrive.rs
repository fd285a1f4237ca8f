//! `weft redrive`: a failed, timed-out or cancelled run carries on from where it stopped;
//! `weft rerun --from`: a new run of an ended one, from one of its steps.
//!
//! Each says first which steps will run again, with the idempotency keys their tools see
//! (a redrive's are the same as before, so a tool that honours them does not repeat a side
//! effect; a rerun's are the new run's), and acts only with `--yes`; then it follows the
//! run to its end.

use std::path::Path;
use std::process::ExitCode;

use weft_client::WeftClient;
use weft_protocol::wire::{RunRecord, StepStatus};

use crate::online::{exit_for, load, parse_id, print_record};

/// The tool steps that run again when `record`'s run is redriven: those that did not
/// complete, with their last attempt. (Steps the run never reached run too; the record
/// does not hold them.)
pub(crate) fn again(record: &RunRecord) -> Vec<(&str, &str, u32)> {
    record
        .order
        .iter()
        .filter_map(|path| Some((path, record.steps.get(path)?)))
        .filter(|(_, step)| step.status != StepStatus::Completed)
        .filter_map(|(path, step)| {
            let last = step.attempts.iter().map(|a| a.attempt).max().unwrap_or(0);
            Some((path.as_str(), step.tool.as_deref()?, last))
        })
        .collect()
}

/// `weft redrive ID [FILE] [--yes]`.
pub(crate) async fn redrive(client: &WeftClient, id: &str, file: Option<&Path>, yes: bool) -> anyhow::Result<ExitCode> {
    let run_id = parse_id(id)?;
    let definition = file.map(load).transpose()?;
    let record = client.status(run_id).await?;
    let again = again(&record);
    outln!(
        "run {run_id} ({} v{}) is {}; a redrive keeps its completed steps' outputs",
        record.workflow,
        record.version,
        record.status.as_str()
    );
    if again.is_empty() {
        outln!("no tool step of it runs again (only steps it had not reached, if any)");
    } else {
        outln!("these tool steps run again (tools see the same idempotency keys):");
        for (path, tool, last) in &again {
            outln!("  {path:<24} {tool:<20} attempt {} on, key {run_id}/{path}", last + 1);
        }
    }
    if !yes {
        eprintln!("nothing done: pass --yes to redrive run {run_id}");
        return Ok(ExitCode::from(crate::exit::FAILED));
    }
    client.redrive(run_id, definition.as_ref()).await?;
    eprintln!("redriven: following run {run_id}");
    let record = client.wait(run_id).await?;
    print_record(&record, false);
    Ok(exit_for(&record))
}

/// What `weft rerun` is asked.
pub(crate) struct Rerun<'a> {
    /// The run that ended.
    pub id: &'a str,
    /// The top-level step to run again from.
    pub from: &'a str,
    /// Its workflow file, for a run submitted inline.
    pub file: Option<&'a Path>,
    /// The new run's input, if not the old one's.
    pub input: Option<serde_json::Value>,
    /// Do it.
    pub yes: bool,
}

/// `weft rerun ID --from STEP [FILE] [--input ...] [--yes]`: a new run that carries over the
/// outputs of the steps before STEP. The steps that run again are listed with the
/// idempotency keys of the new run (new keys: a tool that dedupes on them runs again).
pub(crate) async fn rerun(client: &WeftClient, ask: Rerun<'_>) -> anyhow::Result<ExitCode> {
    let run_id = parse_id(ask.id)?;
    let record = client.status(run_id).await?;
    let definition = match ask.file {
        Some(file) => load(file)?,
        None => client.definition(&record.workflow, Some(record.version)).await.map_err(|e| {
            crate::exit::usage(format!(
                "run {run_id}'s workflow `{}` v{} is not registered ({e}): give the file it was submitted with",
                record.workflow, record.version
            ))
        })?,
    };
    let plan = weft_lang::validate::compile(&definition, None)
        .map_err(|problems| crate::exit::invalid(format!("the workflow is not valid: {problems}")))?;
    let Some(again) = plan.downstream(ask.from) else {
        let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        return Err(crate::exit::usage(format!(
            "`{}` is not a top-level step of `{}`; those are: {}",
            ask.from,
            plan.name,
            ids.join(", ")
        )));
    };
    let new_run_id = uuid::Uuid::now_v7();
    outln!(
        "a new run {new_run_id} of {} v{} reruns run {run_id} from `{}`:",
        record.workflow,
        record.version,
        ask.from
    );
    for step in plan.steps.iter().filter(|s| again.contains(s.id.as_str())) {
        let what = step.tool().map_or_else(|| format!("{} (its body too)", step.kind.keyword()), str::to_owned);
        outln!("  {:<24} {what:<28} key {new_run_id}/{}", step.id, step.id);
    }
    outln!("the other steps' outputs are carried over; the keys are the new run's, so tools see new ones");
    if !ask.yes {
        eprintln!("nothing done: pass --yes to rerun run {run_id} from `{}`", ask.from);
        return Ok(ExitCode::from(crate::exit::FAILED));
    }
    let new_run_id = client.rerun(run_id, ask.from, new_run_id, ask.input, ask.file.map(|_| &definition)).await?;
    eprintln!("submitted run {new_run_id}: following it");
    let record = client.wait(new_run_id).await?;
    print_record(&record, false);
    Ok(exit_for(&record))
}
