//! Many submits or signals at once, through the client API, each retried on a transient
//! error (a coordinator restarting, a request timing out).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use uuid::Uuid;
use weft_client::{ClientError, WeftClient};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::ApiErrorCode;

use crate::tracker::Tracker;

/// How long one request is retried before the scenario gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// Errors that were retried.
#[derive(Debug, Default)]
pub struct Retries(AtomicUsize);

impl Retries {
    /// How many.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

async fn retried<F, Fut>(what: &str, retries: &Retries, mut call: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), weft_client::ClientError>>,
{
    let give_up = Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(50);
    loop {
        match call().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < give_up => {
                retries.0.fetch_add(1, Ordering::Relaxed);
                if retries.count() % 500 == 1 {
                    eprintln!("  ({what} retried: {e})");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => bail!("{what} failed for {PATIENCE:?}: {e}"),
        }
    }
}

/// Submits `n` runs of `def` with `concurrency` requests in flight, spread over
/// `clients`; returns their ids in submission order.
pub async fn submit_many(
    clients: &[WeftClient],
    def: &WorkflowDef,
    n: usize,
    concurrency: usize,
    retries: &Retries,
) -> anyhow::Result<Vec<Uuid>> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let client = &clients[i % clients.len()];
            let id = Uuid::now_v7();
            // An id names one run: a try refused as taken means an earlier try was accepted.
            retried("submit", retries, || async {
                match client.submit_with_id(id, def, Value::Null).await {
                    Err(ClientError::Api(e)) if e.code == ApiErrorCode::Conflict => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await?;
            Ok::<_, anyhow::Error>(id)
        })
        .buffered(concurrency)
        .try_collect()
        .await
}

/// Sends signal `name` with `data` to every run in `ids`, `concurrency` at once.
pub async fn signal_many(
    clients: &[WeftClient],
    ids: &[Uuid],
    name: &str,
    data: &Value,
    concurrency: usize,
    retries: &Retries,
) -> anyhow::Result<()> {
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| async move {
            let client = &clients[i % clients.len()];
            // A run that already ended took an earlier try of this signal.
            retried("signal", retries, || async {
                match client.signal(*id, name, data.clone()).await {
                    Err(ClientError::Api(e)) if e.code == ApiErrorCode::Conflict => Ok(()),
                    other => other,
                }
            })
            .await
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// `n` connections to `url`.
pub async fn clients(url: &str, n: usize) -> anyhow::Result<Vec<WeftClient>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(WeftClient::connect(url).await?);
    }
    Ok(out)
}

/// Waits until every run of `ids` has finished: by its `run_finished` event or, once the
/// signals are sent and no event has come for 3 s, by its record (a run may end without
/// the event). Returns the runs found finished only by their record.
pub async fn wait_finished(
    tracker: &Tracker,
    client: &WeftClient,
    ids: &[Uuid],
    signalled: &AtomicBool,
    limit: Duration,
) -> anyhow::Result<HashSet<Uuid>> {
    let n = ids.len();
    let deadline = Instant::now() + limit;
    let mut silent = HashSet::new();
    loop {
        let before = tracker.counts("").finished;
        let left = n - silent.len();
        let (counts, all) = tracker.wait_until("", Duration::from_secs(3), |c| c.finished >= left).await;
        if all {
            return Ok(silent);
        }
        if counts.finished == before && signalled.load(Ordering::Relaxed) {
            for id in tracker.unfinished(ids) {
                if !silent.contains(&id) && client.status(id).await.is_ok_and(|r| r.status.is_terminal()) {
                    silent.insert(id);
                }
            }
            if tracker.counts("").finished + silent.len() >= n {
                return Ok(silent);
            }
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} runs finished in {limit:?}", counts.finished + silent.len());
        }
    }
}
