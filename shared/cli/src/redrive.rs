//! `weft redrive`: a failed, timed-out or cancelled run carries on from where it stopped.
//!
//! It says first which steps will run again, with the idempotency keys their tools see
//! (the same as before: a tool that honours them does not repeat a side effect), and does
//! it only with `--yes`; then it follows the run to its new end.

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
