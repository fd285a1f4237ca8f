//! Rate limits by tokens and requests per minute, per provider key, shared by every worker
//! (and so every run and coordinator) through a JetStream KV entry.
//!
//! The entry (`llm.<key id>` in `weft_rates`) lists the requests of the last minute: when
//! each was made and the tokens it may use (its estimate, then what the provider reported).
//! A call adds itself by compare-and-set when the last minute leaves room for its
//! estimate and one more request; otherwise it waits until enough of the minute has passed.
//! Once answered, its entry takes the reported tokens and the time of the answer, so no two
//! requests of a full minute's worth are ever less than a minute apart at the provider.
//! Entries are leases that time themselves out: a worker that dies holding one frees its
//! room a minute later, and nothing else has to clean up after it.

use std::sync::OnceLock;
use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use weft_protocol::wire::{ToolError, codes, now_ms};

use crate::tool::{bad_params, cancelled};

/// Shortest wait before looking again.
const LEAST_WAIT: Duration = Duration::from_millis(25);

/// The limits of one provider key, and where their state lives.
#[derive(Debug)]
pub(crate) struct Limiter {
    key: String,
    /// The window limits are counted over: a minute (shorter in tests).
    window_ms: u64,
    tokens_per_minute: Option<u64>,
    requests_per_minute: Option<u64>,
    store: OnceLock<kv::Store>,
    /// One read-and-write of the entry at a time in this worker: calls of one worker do
    /// not race each other's compare-and-set (measured: 64 calls at once made 10x fewer
    /// decisions per second racing than taking turns); workers still race each other.
    turn: tokio::sync::Mutex<()>,
}

/// A request's place in the window.
#[derive(Debug)]
pub(crate) struct Lease(String);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Window {
    requests: Vec<Request>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: String,
    at_ms: u64,
    tokens: u64,
}

impl Window {
    /// Drops what left the window (`window_ms` long) by `now`.
    fn current(&mut self, now: u64, window_ms: u64) {
        self.requests.retain(|r| r.at_ms + window_ms > now);
    }

    fn tokens(&self) -> u64 {
        self.requests.iter().map(|r| r.tokens).sum()
    }
}

impl Limiter {
    /// Limits for the provider at `base_url` used with `api_key` (the key is never stored:
    /// only a hash names the entry).
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<&str>,
        (tokens_per_minute, requests_per_minute): (Option<u64>, Option<u64>),
        window: Duration,
    ) -> Limiter {
        let id = fnv1a(format!("{base_url}\n{}", api_key.unwrap_or_default()).as_bytes());
        Limiter {
            key: format!("llm.{id:016x}"),
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            tokens_per_minute,
            requests_per_minute,
            store: OnceLock::new(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether any limit applies.
    pub(crate) fn limits(&self) -> bool {
        self.tokens_per_minute.is_some() || self.requests_per_minute.is_some()
    }

    /// The bucket, once the worker is connected.
    pub(crate) fn connect(&self, store: kv::Store) {
        let _ = self.store.set(store);
    }

    /// Waits for room for a request of at most `tokens`, and takes it.
    pub(crate) async fn acquire(&self, tokens: u64, cancel: &CancellationToken) -> Result<Option<Lease>, ToolError> {
        let Some(store) = self.store.get().filter(|_| self.limits()) else { return Ok(None) };
        if let Some(most) = self.tokens_per_minute.filter(|most| tokens > *most) {
            return Err(bad_params(format!(
                "llm: this call may use {tokens} tokens, more than the limit of {most} per minute (lower `max_tokens`)"
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        loop {
            let turn = self.turn.lock().await;
            let now = now_ms();
            let (mut window, revision) = match read(store, &self.key).await {
                Ok(read) => read,
                Err(e) => {
                    drop(turn);
                    tracing::warn!(error = %e, "rate limit state not readable; waiting");
                    self.pause(Duration::from_millis(200), cancel).await?;
                    continue;
                }
            };
            window.current(now, self.window_ms);
            let Some(wait) = self.wait_for(&window, tokens, now) else {
                window.requests.push(Request { id: id.clone(), at_ms: now, tokens });
                if write(store, &self.key, &window, revision).await {
                    return Ok(Some(Lease(id)));
                }
                // Another worker took room meanwhile: look again at once.
                continue;
            };
            drop(turn);
            tracing::debug!(wait_ms = wait.as_millis(), "rate limit reached; waiting for room");
            self.pause(wait, cancel).await?;
        }
    }

    /// How long until the window has room for `tokens` and a request; none if it has now.
    fn wait_for(&self, window: &Window, tokens: u64, now: u64) -> Option<Duration> {
        let mut until = now;
        if let Some(most) = self.requests_per_minute {
            let count = window.requests.len() as u64;
            if count >= most {
                // The oldest requests must leave until one fewer than the limit remain.
                let mut times: Vec<u64> = window.requests.iter().map(|r| r.at_ms).collect();
                times.sort_unstable();
                let leave = usize::try_from(count + 1 - most).unwrap_or(usize::MAX);
                until = until.max(times.get(leave - 1).map_or(now, |t| t + self.window_ms));
            }
        }
        if let Some(most) = self.tokens_per_minute {
            let mut used = window.tokens();
            if used + tokens > most {
                let mut requests: Vec<&Request> = window.requests.iter().collect();
                requests.sort_by_key(|r| r.at_ms);
                for r in requests {
                    used -= r.tokens;
                    if used + tokens <= most {
                        until = until.max(r.at_ms + self.window_ms);
                        break;
                    }
                }
            }
        }
        (until > now).then(|| Duration::from_millis(until - now).max(LEAST_WAIT))
    }

    /// The request answered, having used `tokens`: its entry counts them from now.
    pub(crate) async fn settle(&self, lease: Option<Lease>, tokens: Option<u64>) {
        let (Some(Lease(id)), Some(store)) = (lease, self.store.get()) else { return };
        let _turn = self.turn.lock().await;
        for _ in 0..20 {
            let Ok((mut window, revision)) = read(store, &self.key).await else { continue };
            let now = now_ms();
            let Some(request) = window.requests.iter_mut().find(|r| r.id == id) else { return };
            request.at_ms = now;
            if let Some(tokens) = tokens {
                request.tokens = tokens;
            }
            window.current(now, self.window_ms);
            if write(store, &self.key, &window, revision).await {
                return;
            }
        }
        tracing::warn!("rate limit entry not settled: it counts its estimate for a minute");
    }

    async fn pause(&self, wait: Duration, cancel: &CancellationToken) -> Result<(), ToolError> {
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = cancel.cancelled() => Err(cancelled("llm")),
        }
    }
}

async fn read(store: &kv::Store, key: &str) -> Result<(Window, Option<u64>), ToolError> {
    let entry = store.entry(key).await.map_err(|e| {
        ToolError::new(format!("llm: the rate limit state cannot be read: {e}")).with_code(codes::NETWORK)
    })?;
    Ok(match entry {
        Some(e) if e.operation == kv::Operation::Put => {
            // A state no one can read is started afresh rather than blocking every call.
            (serde_json::from_slice(&e.value).unwrap_or_default(), Some(e.revision))
        }
        Some(e) => (Window::default(), Some(e.revision)),
        None => (Window::default(), None),
    })
}

/// Writes the window if no one wrote since `revision`; whether it did.
async fn write(store: &kv::Store, key: &str, window: &Window, revision: Option<u64>) -> bool {
    let Ok(bytes) = serde_json::to_vec(window) else { return false };
    match revision {
        Some(r) => store.update(key, bytes.into(), r).await.is_ok(),
        None => store.create(key, bytes.into()).await.is_ok(),
    }
}

/// FNV-1a: a stable name for a provider key that does not reveal it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(requests: &[(u64, u64)]) -> Window {
        Window {
            requests: requests.iter().map(|&(at_ms, tokens)| Request { id: String::new(), at_ms, tokens }).collect(),
        }
    }

    #[test]
    fn the_wait_is_until_enough_of_the_minute_has_passed() {
        let limiter = Limiter::new("http://x", Some("k"), (Some(1000), Some(3)), Duration::from_secs(60));
        let now = 100_000;
        assert_eq!(limiter.wait_for(&window(&[(90_000, 400)]), 500, now), None);
        // 900 used: 500 more fits once the 400 from 90 s leaves, at 150 s.
        let w = window(&[(90_000, 400), (95_000, 500)]);
        assert_eq!(limiter.wait_for(&w, 500, now), Some(Duration::from_millis(50_000)));
        // Three requests in the minute: the oldest must leave first.
        let w = window(&[(70_000, 1), (80_000, 1), (99_000, 1)]);
        assert_eq!(limiter.wait_for(&w, 1, now), Some(Duration::from_millis(30_000)));
    }

    #[test]
    fn a_key_is_named_by_a_hash_only() {
        let minute = Duration::from_secs(60);
        let a = Limiter::new("http://x", Some("sk-secret"), (Some(1), None), minute);
        assert!(!a.key.contains("secret") && a.key.starts_with("llm."));
        assert_ne!(a.key, Limiter::new("http://x", Some("sk-other"), (Some(1), None), minute).key);
    }
}
