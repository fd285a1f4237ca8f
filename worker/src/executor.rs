//! The executor: takes tasks from JetStream, runs tools, publishes results.
//!
//! One pull loop per tool shares the tool's durable consumer with every other worker of
//! the tool, and never asks for more tasks than it has free slots. The tools served can
//! change while the worker runs (an MCP server lists new ones): loops start and stop
//! with them, and the advertisements follow. Each task runs in a
//! handler of its own ([`task`]); a cancel listener stops running calls of cancelled
//! runs; an advertiser keeps the tools listed in KV. Nothing here returns an error: NATS
//! outages are logged and retried with backoff until shutdown.
//!
//! Shutdown: pull loops stop (tasks already delivered but not started are handed back),
//! running tools get [`Config::grace`] to finish and answer, the rest are handed back for
//! redelivery, advertisements are withdrawn.

mod advertise;
mod cancel;
mod pull;
mod result;
mod running;
mod task;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_protocol::retry::{self, Policy};
use weft_protocol::topology::{self, Infra};

use crate::config::Config;
use crate::registry::Registry;
use running::Running;

/// What every part of the executor shares.
struct Shared {
    nats: async_nats::Client,
    js: jetstream::Context,
    /// The tools served now.
    tools: watch::Receiver<Arc<Registry>>,
    config: Config,
    running: Running,
    /// Handlers of tasks, waited for at shutdown.
    handlers: TaskTracker,
    /// Fired when the grace period is over: running tools are abandoned.
    hard_stop: CancellationToken,
    /// Goes up at every (re)connection to NATS.
    connections: watch::Receiver<u64>,
}

impl Shared {
    /// The tools served now.
    fn registry(&self) -> Arc<Registry> {
        self.tools.borrow().clone()
    }
}

/// Serves `tools` (as they change) until `shutdown` fires and running tools have finished
/// (or the grace period has passed).
pub(crate) async fn serve(
    config: Config,
    mut tools: watch::Receiver<Arc<Registry>>,
    nats: async_nats::Client,
    connections: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let js = jetstream::new(nats.clone());
    let Some(infra) = set_up(&js, &config, &shutdown).await else { return };
    let connected = crate::tool::Connected { client: nats.clone(), infra: infra.clone() };
    let registry = tools.borrow_and_update().clone();
    let shared = Arc::new(Shared {
        nats,
        js,
        tools: tools.clone(),
        config,
        running: Running::default(),
        handlers: TaskTracker::new(),
        hard_stop: CancellationToken::new(),
        connections,
    });
    tracing::info!(
        worker = %shared.config.worker_id,
        tools = registry.len(),
        "serving tools: {}",
        registry.names().collect::<Vec<_>>().join(", ")
    );

    let stop_listening = CancellationToken::new();
    let mut background = JoinSet::new();
    background.spawn(cancel::listen(shared.clone(), stop_listening.clone()));
    background.spawn(advertise::run(shared.clone(), infra.tools, shutdown.clone()));
    let mut pulls = Pulls::default();
    pulls.follow(&shared, &registry, &connected, &shutdown).await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = tools.changed() => {
                if changed.is_err() {
                    // The set is final.
                    shutdown.cancelled().await;
                    break;
                }
                let registry = tools.borrow_and_update().clone();
                pulls.follow(&shared, &registry, &connected, &shutdown).await;
            }
        }
    }
    // Pull loops first, so no handler starts after the tracker is closed.
    while pulls.loops.join_next().await.is_some() {}
    shared.handlers.close();
    if !shared.handlers.is_empty() {
        tracing::info!(running = shared.handlers.len(), grace = ?shared.config.grace, "waiting for running tools");
    }
    if tokio::time::timeout(shared.config.grace, shared.handlers.wait()).await.is_err() {
        tracing::warn!(running = shared.handlers.len(), "grace period over: handing unfinished tasks back");
        shared.hard_stop.cancel();
        // Handlers only nak now; the bound covers a stuck connection.
        let _ = tokio::time::timeout(Duration::from_secs(5), shared.handlers.wait()).await;
    }
    stop_listening.cancel();
    while background.join_next().await.is_some() {}
    if let Err(e) = shared.nats.flush().await {
        tracing::warn!(error = %e, "could not flush the NATS connection");
    }
    tracing::info!("worker stopped");
}

/// The pull loops, one per tool served.
#[derive(Default)]
struct Pulls {
    loops: JoinSet<()>,
    /// Each tool's concurrency limit and the token that stops its loop.
    running: BTreeMap<String, (usize, CancellationToken)>,
}

impl Pulls {
    /// Starts loops of tools that are new (or whose limit changed) and stops those of tools
    /// no longer served (their buffered tasks go back to other workers).
    async fn follow(
        &mut self,
        shared: &Arc<Shared>,
        registry: &Registry,
        connected: &crate::tool::Connected,
        shutdown: &CancellationToken,
    ) {
        self.running.retain(|name, (_, stop)| {
            let kept = registry.get(name).is_some();
            if !kept {
                tracing::info!(tool = %name, "no longer served");
                stop.cancel();
            }
            kept
        });
        for name in registry.names() {
            let limit = shared.config.concurrency.or(registry.concurrency(name)).unwrap_or(1);
            match self.running.get(name) {
                Some((running, _)) if *running == limit => continue,
                Some((_, stop)) => stop.cancel(),
                None => {
                    if let Some(tool) = registry.get(name) {
                        tool.connected(connected).await;
                    }
                }
            }
            let stop = shutdown.child_token();
            self.loops.spawn(pull::run(shared.clone(), name.to_owned(), limit, stop.clone()));
            self.running.insert(name.to_owned(), (limit, stop));
        }
        // Reap loops that stopped, so a worker whose tools churn does not keep them.
        while self.loops.try_join_next().is_some() {}
    }
}

/// Creates streams and buckets, retrying until NATS answers; `None` if shut down first.
async fn set_up(js: &jetstream::Context, config: &Config, shutdown: &CancellationToken) -> Option<Infra> {
    let mut backoff = NATS_RETRY.backoff();
    loop {
        tokio::select! {
            ready = topology::ensure(js, &config.retention) => match ready {
                Ok(infra) => return Some(infra),
                Err(e) => tracing::warn!(error = %e, "JetStream is not ready; retrying"),
            },
            () = shutdown.cancelled() => return None,
        }
        if !pause(backoff.next_delay(), shutdown).await {
            return None;
        }
    }
}

/// Retries against NATS (binding a consumer, subscribing, storing a result): 100 ms
/// doubling up to 5 s, for as long as the worker runs.
pub(crate) const NATS_RETRY: Policy = Policy::new(Duration::from_millis(100), Duration::from_secs(5));

/// Sleeps for `duration`; false if `token` fired first.
async fn pause(duration: Duration, token: &CancellationToken) -> bool {
    retry::pause(duration, Some(token)).await
}
