//! Advertises this worker's tools in the KV bucket `weft_tools`, under `<tool>.<worker>`,
//! every [`crate::Config::advertise_every`]; entries expire unless refreshed, so a dead
//! worker drops out by itself. On shutdown the entries are deleted at once.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use weft_protocol::topology;
use weft_protocol::wire::{Advertisement, now_ms};

use super::Shared;

/// The KV key of `tool` on `worker`.
pub(super) fn key(tool: &str, worker: &str) -> String {
    format!("{tool}.{worker}")
}

/// Runs until `shutdown`, then withdraws the advertisements.
pub(super) async fn run(shared: Arc<Shared>, mut store: kv::Store, shutdown: CancellationToken) {
    let worker = shared.config.worker_id.clone();
    let mut ticker = tokio::time::interval(shared.config.advertise_every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => break,
        }
        if let Err(e) = advertise(&shared, &store, &worker).await {
            tracing::warn!(error = %e, "cannot advertise tools; retrying at the next tick");
            // The server may have lost the bucket.
            if let Ok(infra) = topology::ensure(&shared.js, &shared.config.retention).await {
                store = infra.tools;
            }
        }
    }
    for name in shared.registry.names() {
        let deleted = tokio::time::timeout(Duration::from_secs(2), store.delete(key(name, &worker))).await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::debug!(tool = name, "advertisement not withdrawn; it will expire");
        }
    }
}

/// Every tool at once: stored one after another, a worker of 88 tools was half-advertised
/// for tens of milliseconds, long enough for a submit to find half its tools.
async fn advertise(shared: &Shared, store: &kv::Store, worker: &str) -> Result<(), async_nats::Error> {
    let mut puts = Vec::new();
    for spec in shared.registry.specs() {
        let concurrency = shared.config.concurrency.or(shared.registry.concurrency(&spec.name)).unwrap_or(1);
        let ad = Advertisement { spec: spec.clone(), worker: worker.to_owned(), concurrency, at_ms: now_ms() };
        let bytes = serde_json::to_vec(&ad)?;
        puts.push(store.put(key(&spec.name, worker), bytes.into()));
    }
    futures::future::try_join_all(puts).await?;
    Ok(())
}
