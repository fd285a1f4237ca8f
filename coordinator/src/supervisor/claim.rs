//! Taking a partition over: read its log from the start and rebuild every run in it by
//! replay. This is I/O and CPU (a partition may hold tens of thousands of runs), so it runs
//! in a task of its own and hands the runs back to the supervisor as a message; the
//! supervisor goes on answering lookups and routing other partitions meanwhile, and keeps
//! the entries that arrive for the partition until the runs are back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use uuid::Uuid;

use crate::log::{self, Creation};
use crate::machine::Run;
use crate::nats::{Nats, NatsError};
use crate::plans::Plans;
use crate::run_actor::report_ignored;
use crate::run_actor::spans::RunSpans;

/// A run rebuilt from its log.
#[derive(Debug)]
pub(crate) struct Rebuilt {
    /// Its id.
    pub run_id: Uuid,
    /// The sequence of its first log entry (it bounds compaction).
    pub first_seq: u64,
    /// The run, as its log says it is.
    pub run: Run,
    /// Its spans, joined to the trace of its creation.
    pub spans: RunSpans,
}

/// A partition's runs, as its log holds them.
#[derive(Debug)]
pub(crate) struct Replayed {
    /// Entries up to this stream sequence are in the runs; later ones are for the live
    /// consumer.
    pub replayed_to: u64,
    /// Every run of the partition that was created.
    pub runs: Vec<Rebuilt>,
    /// When the claim began.
    pub started: Instant,
    /// The same, in ms since the epoch: claims on pools made after it are not the replay's.
    pub started_ms: weft_protocol::wire::Millis,
}

/// Reads partition `partition`'s log and rebuilds its runs. Entries the machine ignores
/// (and second creations) are logged here, with their sequences.
pub(crate) async fn replay(nats: Arc<Nats>, plans: Arc<Mutex<Plans>>, partition: u32) -> Result<Replayed, NatsError> {
    let started = Instant::now();
    let started_ms = weft_protocol::wire::now_ms();
    tracing::info!(partition, "claiming the partition: reading its log");
    let (histories, replayed_to) = log::read_partition(&nats.js, partition).await?;
    let mut runs = Vec::with_capacity(histories.len());
    for (run_id, history) in histories {
        for seq in &history.ignored_creations {
            tracing::warn!(%run_id, seq, "a second creation of the run ignored: a run is created once");
        }
        let Some((creation, created)) = history.created else {
            if !history.inputs.is_empty() {
                tracing::warn!(%run_id, inputs = history.inputs.len(), "inputs for a run never created ignored");
            }
            continue;
        };
        let Some(run) = new_run(&plans, partition, run_id, &creation, created) else { continue };
        let (run, ignored) = run.replay(created, history.inputs);
        for (seq, ignored) in &ignored {
            report_ignored(run_id, Some(*seq), ignored);
        }
        let spans = RunSpans::new(creation.trace.as_deref());
        runs.push(Rebuilt { run_id, first_seq: history.first_seq, run, spans });
        // Many runs: let the runtime's other tasks in now and then.
        if runs.len() % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tracing::info!(partition, runs = runs.len(), took = ?started.elapsed(), "partition read, its runs rebuilt");
    Ok(Replayed { replayed_to, runs, started, started_ms })
}

/// A run as its creation entry describes it, not started yet.
pub(crate) fn new_run(plans: &Mutex<Plans>, partition: u32, run_id: Uuid, creation: &Creation, at: u64) -> Option<Run> {
    let compiled = plans.lock().unwrap_or_else(PoisonError::into_inner).compile(&creation.definition, None);
    let plan = compiled
        .map_err(|e| tracing::error!(%run_id, workflow = %creation.definition.name, "logged definition invalid: {e}"))
        .ok()?;
    Some(
        Run::new(run_id, plan, creation.input.clone(), at)
            .with_reply_to(log::subject(partition, run_id))
            .with_parent(creation.parent.clone())
            .with_fingerprint(weft_protocol::wire::fingerprint(&creation.definition, &creation.input))
            .with_limits(creation.limits)
            .with_tools(creation.tools.clone())
            .with_prices(creation.prices.clone())
            .with_secret(creation.secret)
            .with_seed(creation.seed.as_deref().cloned()),
    )
}
