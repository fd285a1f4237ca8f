//! The Weft coordinator: one ractor actor per running workflow holds its state machine
//! and dispatches ready steps to workers over NATS JetStream.
//!
//! Message flow: a client's `submit` request reaches [`api`], which validates the
//! workflow against the live tool catalogue and asks the [`supervisor`] to start a
//! [`run_actor`]. The run actor feeds inputs to its [`machine`] and carries out the
//! effects: tasks published to `weft.task.<tool>`, timers as delayed messages to itself,
//! events on `weft.events.<run>`. Workers' results arrive through [`results`] and are
//! routed back to the run's actor, which acks each once applied.
//!
//! # Layout
//!
//! - [`config`]: settings and their defaults.
//! - [`machine`]: the pure state machine of a run (inputs in, effects out).
//! - [`run_actor`]: the actor carrying out one run's effects.
//! - [`supervisor`]: spawns run actors, routes results, forgets finished runs.
//! - [`api`]: submit, status, list, cancel over NATS request/reply.
//! - [`results`]: the JetStream consumer of workers' results.
//! - [`nats`]: connections and the publishes the coordinator makes.

pub mod api;
pub mod config;
pub mod machine;
pub mod nats;
pub mod results;
pub mod run_actor;
pub mod supervisor;

use ractor::Actor;
use tokio_util::sync::CancellationToken;
use weft_shared::client::setup;

pub use config::Config;

/// A coordinator that could not run.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// JetStream set-up failed.
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    /// The supervisor did not start.
    #[error("the supervisor did not start: {0}")]
    Spawn(String),
    /// The API could not subscribe.
    #[error("cannot serve the API: {0}")]
    Api(#[from] async_nats::SubscribeError),
}

/// Runs a coordinator on `client` until `shutdown`.
pub async fn run(
    config: Config,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let js = async_nats::jetstream::new(client.clone());
    let infra = setup::ensure(&js, &config.retention).await?;
    let nats = nats::Nats { client, js, infra };
    let (supervisor, handle) = Actor::spawn(None, supervisor::Supervisor, nats.clone())
        .await
        .map_err(|e| CoordinatorError::Spawn(e.to_string()))?;
    let consumer =
        tokio::spawn(results::consume(nats.clone(), supervisor.clone(), config.results_ack_wait, shutdown.clone()));
    tracing::info!("coordinator ready");
    let served = api::Api::new(nats, supervisor.clone(), config.catalogue_ttl).serve(shutdown.clone()).await;
    shutdown.cancel();
    let _ = consumer.await;
    supervisor.stop(None);
    let _ = handle.await;
    served.map_err(CoordinatorError::from)
}
