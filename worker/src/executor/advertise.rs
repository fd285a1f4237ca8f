//! Advertises this worker's tools in the KV bucket `weft_tools`, under `<tool>.<worker>`,
//! every [`crate::Config::advertise_every`] and whenever the tools served change; entries
//! expire unless refreshed, so a dead worker drops out by itself. A tool no longer served
//! and, on shutdown, every tool is deleted at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use weft_protocol::topology;
use weft_protocol::wire::{Advertisement, now_ms};

use super::Shared;
use crate::registry::Registry;

/// The KV key of `tool` on `worker`.
pub(super) fn key(tool: &str, worker: &str) -> String {
    format!("{tool}.{worker}")
}

/// Runs until `shutdown`, then withdraws the advertisements.
pub(super) async fn run(shared: Arc<Shared>, mut store: kv::Store, shutdown: CancellationToken) {
    let worker = shared.config.worker_id.clone();
    let mut ticker = tokio::time::interval(shared.config.advertise_every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tools = shared.tools.clone();
    let mut advertised = BTreeSet::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Ok(()) = tools.changed() => {}
            () = shutdown.cancelled() => break,
        }
        let registry = tools.borrow_and_update().clone();
        let now: BTreeSet<String> = registry.names().map(str::to_owned).collect();
        withdraw(&store, &worker, advertised.difference(&now)).await;
        advertised = now;
        if let Err(e) = advertise(&shared, &registry, &store, &worker).await {
            tracing::warn!(error = %e, "cannot advertise tools; retrying at the next tick");
            // The server may have lost the bucket.
            if let Ok(infra) = topology::ensure(&shared.js, &shared.config.retention).await {
                store = infra.tools;
            }
        }
    }
    withdraw(&store, &worker, advertised.iter()).await;
}

/// Deletes the advertisements of `names`; one that stays expires.
async fn withdraw(store: &kv::Store, worker: &str, names: impl Iterator<Item = &String>) {
    for name in names {
        let deleted = tokio::time::timeout(Duration::from_secs(2), store.delete(key(name, worker))).await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::debug!(tool = %name, "advertisement not withdrawn; it will expire");
        }
    }
}

/// Every tool at once: stored one after another, a worker of 88 tools was half-advertised
/// for tens of milliseconds, long enough for a submit to find half its tools.
async fn advertise(
    shared: &Shared,
    registry: &Registry,
    store: &kv::Store,
    worker: &str,
) -> Result<(), async_nats::Error> {
    let mut puts = Vec::new();
    for spec in registry.specs() {
        let concurrency = shared.config.concurrency.or(registry.concurrency(&spec.name)).unwrap_or(1);
        let ad = Advertisement { spec: spec.clone(), worker: worker.to_owned(), concurrency, at_ms: now_ms() };
        let bytes = serde_json::to_vec(&ad)?;
        puts.push(store.put(key(&spec.name, worker), bytes.into()));
    }
    futures::future::try_join_all(puts).await?;
    Ok(())
}
