//! Checking a plan a model wrote, as data, before anything of it runs.
//!
//! A `plan` step's proposal is read as a workflow (the parser's errors, with their place),
//! held to what the step allows (its tools, its caps: `weft_lang::planned`), validated as
//! any submit is (against the live catalogue and the coordinator's limits: unknown tools,
//! params that miss their schemas, references, cycles) and its input checked against its
//! `input_schema`. The verdict is appended to the run's log as `Input::PlanChecked`, so
//! every replay reads the same verdict whatever the catalogue has become.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use weft_lang::definition::WorkflowDef;

use crate::admission::{Admission, AdmitError};
use crate::log::Entry;
use crate::machine::{Input, PlanCheck};
use crate::nats::Nats;

/// Most problems sent back to a model at once: enough to fix, not a flood.
const MOST_PROBLEMS: usize = 20;

/// Every problem of `check`'s plan, or `Unavailable` if the catalogue cannot be read now.
pub(crate) async fn problems(admission: &Admission, check: &PlanCheck) -> Result<Vec<String>, AdmitError> {
    // Read from its text, as a submit is: the error names the place and every unknown field.
    let def = match WorkflowDef::from_json(&check.plan.to_string()) {
        Ok(def) => def,
        Err(e) => return Ok(vec![format!("the plan is not a Weft workflow: {e}")]),
    };
    let mut problems = weft_lang::planned::bounds(&def, &check.tools, check.caps);
    match admission.plan(&def).await {
        Ok(plan) => problems.extend(plan.check_input(&check.input).iter().map(ToString::to_string)),
        Err(AdmitError::Invalid { problems: found, .. }) => problems.extend(found.iter().map(ToString::to_string)),
        Err(e @ AdmitError::Unavailable(_)) => return Err(e),
        Err(e) => problems.push(e.to_string()),
    }
    problems.truncate(MOST_PROBLEMS);
    Ok(problems)
}

/// Checks `check` and appends the verdict to the run's log; a catalogue that cannot be
/// read is waited for (the step stays `checking`, and a takeover checks it again).
pub(crate) async fn check_and_log(
    admission: Arc<Admission>,
    nats: Arc<Nats>,
    log: String,
    run_id: Uuid,
    check: PlanCheck,
) {
    let mut wait = Duration::from_millis(200);
    let problems = loop {
        match problems(&admission, &check).await {
            Ok(problems) => break problems,
            Err(e) => {
                tracing::warn!(%run_id, step = %check.step, error = %e, "plan not checked yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = nats.shutdown.cancelled() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    };
    tracing::info!(%run_id, step = %check.step, round = check.round, problems = problems.len(), "plan checked");
    let id = format!("plan:{run_id}:{}:{}", check.step, check.round);
    let entry = Entry::Input { input: Input::PlanChecked { step: check.step, round: check.round, problems } };
    crate::run_actor::append_reliably(&nats, log, entry, id).await;
}
