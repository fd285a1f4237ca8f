//! The Weft coordinator: one ractor actor per running workflow holds its state machine
//! and dispatches ready steps to workers over NATS JetStream.
//!
//! Message flow: a client's `submit` request reaches `api`, which validates the
//! workflow against the live tool catalogue and writes the run's creation to its
//! partition of the run `log`. The coordinator that owns the partition (`partition`:
//! one pinned consumer per partition) receives it and its `supervisor` starts a
//! `run_actor`, which applies every logged input to the run's `machine` and carries
//! out the effects: tasks on `weft.task.<tool>` (replying to the run's log), timers that
//! write themselves to the log when they fire, events on `weft.events.<run>`. A run that
//! waits only for outside input (a signal, a child's end) is parked: the supervisor keeps
//! its state and stops its actor until the next input. A coordinator taking a partition
//! over replays its log and resumes every run in it.
//!
//! # Layout
//!
//! - `config`: settings and their defaults.
//! - `machine`: the pure state machine of a run (inputs in, effects out).
//! - `run_actor`: the actor carrying out one run's effects.
//! - `supervisor`: spawns run actors, routes results, parks runs that wait only for outside input, compacts the
//!   log, forgets finished runs.
//! - `admission`: the one way a run comes to exist (a submit, a child run).
//! - `api`: submit, status, list, cancel over NATS request/reply.
//! - `plans`: compiled definitions, shared by the runs that repeat them.
//! - `planner`: checking the workflows `plan` steps' models write, before they run.
//! - `log`: the run log on JetStream: entries, appends, replay, compaction.
//! - `partition`: pinned consumers (ownership) and the ticks that reveal it.
//! - `nats`: connections and the publishes the coordinator makes.
//! - [`metrics`]: the Prometheus metrics (served by the binary's `--metrics`).

mod admission;
mod api;
mod config;
#[doc(hidden)]
pub mod fuzz;
mod log;
mod machine;
pub mod metrics;
mod nats;
mod partition;
mod planner;
mod plans;
mod pools;
mod run_actor;
mod supervisor;

use std::sync::Arc;

use ractor::{Actor, ActorRef};
use supervisor::SupervisorMsg;
use tokio_util::sync::CancellationToken;
use weft_protocol::topology;

pub use config::{Config, Price, Prices};

/// A coordinator that could not run.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// JetStream set-up failed.
    #[error(transparent)]
    Setup(#[from] topology::SetupError),
    /// The supervisor did not start.
    #[error("the supervisor did not start: {0}")]
    Spawn(String),
    /// The API could not subscribe.
    #[error("cannot serve the API: {0}")]
    Api(#[from] async_nats::SubscribeError),
}

/// What `/healthz` asks of a ready coordinator: its supervisor's mailbox (every run's input
/// passes through it), its NATS connection (a flush) and JetStream (its account's info)
/// each answer. A frozen or wedged process fails it, where reading a bucket would not.
fn health_check(nats: &Arc<nats::Nats>, supervisor: &ActorRef<SupervisorMsg>) -> weft_service::metrics::Check {
    let (nats, supervisor) = (nats.clone(), supervisor.clone());
    Arc::new(move || {
        let (nats, supervisor) = (nats.clone(), supervisor.clone());
        Box::pin(async move {
            supervisor
                .call(|reply| SupervisorMsg::Listed(Vec::new(), reply), Some(weft_service::metrics::HEALTH_TIMEOUT))
                .await
                .map_err(|e| format!("the supervisor did not answer: {e}"))?;
            nats.client.flush().await.map_err(|e| format!("NATS did not answer a flush: {e}"))?;
            nats.js.query_account().await.map_err(|e| format!("JetStream did not answer: {e}"))?;
            Ok(())
        })
    })
}

/// Runs a coordinator on `client` until `shutdown`.
pub async fn run(
    config: Config,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let js = async_nats::jetstream::new(client.clone());
    let infra = topology::ensure(&js, &config.retention).await?;
    topology::apply_retention(&js, &config.retention).await?;
    let background = tokio_util::task::TaskTracker::new();
    let nats = Arc::new(nats::Nats {
        client,
        js,
        infra,
        partitions: config.partitions,
        background: background.clone(),
        shutdown: shutdown.clone(),
    });
    let pools = Arc::new(pools::Pools::new(nats.clone()));
    for (name, capacity) in &config.pools {
        match pools.read(name).await {
            Ok(Some(_)) => {}
            Ok(None) => match pools.set_capacity(name, *capacity).await {
                Ok(()) => tracing::info!(pool = %name, capacity, "pool created"),
                Err(e) => tracing::warn!(pool = %name, error = %e, "pool not created"),
            },
            Err(e) => tracing::warn!(pool = %name, error = %e, "pool not read"),
        }
    }
    let admission = Arc::new(
        admission::Admission::new(nats.clone(), pools.clone(), config.catalogue_ttl, config.limits)
            .with_prices(config.prices.clone()),
    );
    let args = supervisor::SupervisorArgs {
        nats: nats.clone(),
        admission: admission.clone(),
        pools: pools.clone(),
        lost_after: config.pin_timeout,
    };
    let (supervisor, handle) =
        Actor::spawn(None, supervisor::Supervisor, args).await.map_err(|e| CoordinatorError::Spawn(e.to_string()))?;
    let mut tasks = Vec::new();
    for p in 0..config.partitions {
        tasks.push(tokio::spawn(partition::pull(
            nats.clone(),
            supervisor.clone(),
            p,
            config.ack_wait,
            config.pin_timeout,
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(pools.clone().keep(shutdown.clone())));
    tasks.push(tokio::spawn(partition::tick(nats.clone(), config.partitions, shutdown.clone())));
    config.health.set(health_check(&nats, &supervisor));
    let api = api::Api::new(nats, supervisor.clone(), admission, pools);
    let queries = tokio::spawn(api.clone().answer_queries(shutdown.clone()));
    tracing::info!(partitions = config.partitions, "coordinator ready");
    let served = api.serve(shutdown.clone()).await;
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = queries.await;
    supervisor.stop(None);
    let _ = handle.await;
    // Retries still under way stop at the shutdown token; wait for them to say so.
    background.close();
    background.wait().await;
    served.map_err(CoordinatorError::from)
}
