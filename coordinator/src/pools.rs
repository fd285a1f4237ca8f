//! Resource pools, shared by every run and every coordinator: a pool's capacity, the step
//! attempts holding its units and those waiting for them live in one KV entry
//! (`weft_pools`, key `pool.<name>`), changed only by compare-and-set on its revision, so
//! no two coordinators hand out the same unit.
//!
//! - A step attempt asks (`acquire`): it waits in the pool's queue, and is granted units
//!   as soon as they are free, highest `priority` first, then the oldest; the grant is
//!   appended to the run's log (`Input::Granted`), where the run's owner applies it.
//! - A holder's units are a lease: the coordinator that holds them renews it every few
//!   seconds ([`RENEW_EVERY`]); a coordinator that dies stops renewing, and its units come
//!   back after [`LEASE`], unless the run's new owner claims them again first (`hold`,
//!   from the run's replay), which it does within the pin timeout.
//! - Units come back when the attempt ends (`release`); every coordinator's keeper also
//!   drops expired leases and grants what they free, each [`RENEW_EVERY`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use weft_protocol::subjects;
use weft_protocol::wire::{Claim, Millis, Pool, PoolView, now_ms};

use crate::log::Entry;
use crate::machine::{Input, PoolClaim};
use crate::nats::{Nats, NatsError};

/// How long units stay held without a renewal: well past a takeover (pin timeout and a
/// replay), so a run that moves keeps them.
pub(crate) const LEASE: Duration = Duration::from_secs(20);

/// How often a coordinator renews the leases it holds, and expires others'.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Compare-and-set tries before an update gives up (other coordinators changing the pool
/// in between).
const TRIES: u32 = 50;

/// What identifies a claim: pool, run, step, attempt.
type Key = (String, Uuid, String, u32);

/// A coordinator's side of the pools.
#[derive(Debug)]
pub(crate) struct Pools {
    nats: Arc<Nats>,
    /// The claims this coordinator holds, whose leases it renews.
    held: Mutex<BTreeSet<Key>>,
}

fn key(run: Uuid, claim: &PoolClaim) -> Key {
    (claim.pool.clone(), run, claim.step.clone(), claim.attempt)
}

impl Pools {
    /// The pools of `nats`.
    pub(crate) fn new(nats: Arc<Nats>) -> Pools {
        Pools { nats, held: Mutex::default() }
    }

    fn store(&self) -> &kv::Store {
        &self.nats.infra.pools
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeSet<Key>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads pool `name` (none if it was never set), changes it with `change`, and writes
    /// it back if its revision did not move meanwhile; returns what `change` returned.
    async fn update<T>(&self, name: &str, mut change: impl FnMut(&mut Pool) -> T) -> Result<T, NatsError> {
        let key = subjects::pool_key(name);
        let fail = |e: async_nats::Error| NatsError::new(format!("update pool `{name}`"), e);
        for _ in 0..TRIES {
            let entry = self.store().entry(&key).await.map_err(|e| fail(e.into()))?;
            let (mut pool, revision) = match entry {
                Some(e) if e.operation == kv::Operation::Put => match serde_json::from_slice::<Pool>(&e.value) {
                    Ok(pool) => (pool, Some(e.revision)),
                    Err(e) => return Err(fail(format!("pool `{name}` is not a pool: {e}").into())),
                },
                Some(e) => (Pool::default(), Some(e.revision)),
                None => (Pool::default(), None),
            };
            let out = change(&mut pool);
            tracing::debug!(
                pool = name,
                ?revision,
                holders = ?pool.holders.iter().map(|h| format!("{}:{}#{}", h.run_id, h.step, h.attempt)).collect::<Vec<_>>(),
                waiters = pool.waiters.len(),
                "pool update"
            );
            let bytes = serde_json::to_vec(&pool).expect("a pool is plain data and serialises");
            let written = match revision {
                Some(revision) => {
                    self.store().update(&key, bytes.into(), revision).await.map(|_| ()).map_err(|e| e.to_string())
                }
                None => self.store().create(&key, bytes.into()).await.map(|_| ()).map_err(|e| e.to_string()),
            };
            match written {
                Ok(()) => return Ok(out),
                // Someone changed it since we read it: read again.
                Err(e) => tracing::debug!(pool = name, error = %e, "pool changed meanwhile; trying again"),
            }
        }
        Err(fail(format!("pool `{name}` kept changing for {TRIES} tries").into()))
    }

    /// Puts a step attempt in the pool's queue (once), and grants what is free.
    pub(crate) async fn acquire(&self, run: Uuid, log: &str, claim: &PoolClaim) {
        tracing::debug!(%run, step = %claim.step, attempt = claim.attempt, pool = %claim.pool, "acquire");
        let now = now_ms();
        let asked = Claim {
            run_id: run,
            step: claim.step.clone(),
            attempt: claim.attempt,
            units: claim.units,
            priority: claim.priority,
            since_ms: now,
            expires_ms: 0,
            log: log.to_owned(),
            ask: claim.ask,
        };
        let updated = self
            .update(&claim.pool, |pool| {
                if let Some(held) = pool.holders.iter().find(|h| h.is(run, &claim.step, claim.attempt)) {
                    // Granted before (the run moved, or asked again): say so again, as the
                    // answer to the ask that waits now.
                    return vec![Claim { ask: claim.ask, ..held.clone() }];
                }
                if pool.capacity == 0 {
                    tracing::warn!(pool = %claim.pool, %run, step = %claim.step, "a step waits for a pool with no capacity: set one with `weft pools set`");
                }
                if !pool.waiters.iter().any(|w| w.is(run, &claim.step, claim.attempt)) {
                    pool.waiters.push(asked.clone());
                }
                pool.grant(now, millis(LEASE))
            })
            .await;
        self.tell(&claim.pool, updated).await;
    }

    /// This coordinator holds a claim: it renews its lease from now on. After a takeover the
    /// claim may have expired: it is held again (even past the capacity: its step runs).
    pub(crate) async fn hold(&self, run: Uuid, log: &str, claim: &PoolClaim) {
        tracing::debug!(%run, step = %claim.step, attempt = claim.attempt, pool = %claim.pool, "hold");
        self.held().insert(key(run, claim));
        let now = now_ms();
        let updated = self
            .update(&claim.pool, |pool| {
                match pool.holders.iter_mut().find(|h| h.is(run, &claim.step, claim.attempt)) {
                    Some(held) => held.expires_ms = now.saturating_add(millis(LEASE)),
                    None => {
                        pool.waiters.retain(|w| !w.is(run, &claim.step, claim.attempt));
                        pool.holders.push(Claim {
                            run_id: run,
                            step: claim.step.clone(),
                            attempt: claim.attempt,
                            units: claim.units,
                            priority: claim.priority,
                            since_ms: now,
                            expires_ms: now.saturating_add(millis(LEASE)),
                            log: log.to_owned(),
                            ask: claim.ask,
                        });
                    }
                }
                Vec::new()
            })
            .await;
        self.tell(&claim.pool, updated).await;
    }

    /// A step attempt's units (or its place in the queue) go back, and what they free is
    /// granted.
    pub(crate) async fn release(&self, run: Uuid, claim: &PoolClaim) {
        tracing::debug!(%run, step = %claim.step, attempt = claim.attempt, pool = %claim.pool, "release");
        self.held().remove(&key(run, claim));
        let now = now_ms();
        let updated = self
            .update(&claim.pool, |pool| {
                pool.holders.retain(|h| !h.is(run, &claim.step, claim.attempt));
                pool.waiters.retain(|w| !w.is(run, &claim.step, claim.attempt));
                pool.grant(now, millis(LEASE))
            })
            .await;
        self.tell(&claim.pool, updated).await;
    }

    /// A partition was taken over: its runs are rebuilt, and each pool entry of a run of
    /// that partition that the run does not claim any more (its end, or a release, was
    /// applied by the replay, which carries out nothing) goes back.
    /// Only entries made before the replay began (`before`) are looked at: a run asks again
    /// as soon as it is resumed.
    pub(crate) async fn reconcile(
        &self,
        partition: u32,
        partitions: u32,
        before: Millis,
        claims: BTreeSet<(Uuid, String, u32, String)>,
    ) {
        let names = match self.list().await {
            Ok(pools) => pools.into_iter().map(|p| p.name).collect::<Vec<_>>(),
            Err(e) => return tracing::warn!(partition, error = %e, "pools not reconciled; their leases expire"),
        };
        let stale = |c: &Claim, pool: &str| {
            subjects::partition_of(c.run_id, partitions) == partition
                && c.since_ms < before
                && !claims.contains(&(c.run_id, c.step.clone(), c.attempt, pool.to_owned()))
        };
        for name in names {
            let now = now_ms();
            let updated = self
                .update(&name, |pool| {
                    let before = pool.holders.len() + pool.waiters.len();
                    pool.holders.retain(|h| !stale(h, &name));
                    pool.waiters.retain(|w| !stale(w, &name));
                    let gone = before - pool.holders.len() - pool.waiters.len();
                    (gone, pool.grant(now, millis(LEASE)))
                })
                .await;
            // Told once the update is stored: the closure runs again on each retry.
            if let Ok((gone @ 1.., _)) = &updated {
                tracing::info!(pool = %name, partition, gone, "claims of runs that no longer hold them returned");
            }
            self.tell(&name, updated.map(|(_, granted)| granted)).await;
        }
    }

    /// Sets a pool's capacity (creating it), and grants what more units free.
    pub(crate) async fn set_capacity(&self, name: &str, capacity: u32) -> Result<(), NatsError> {
        let now = now_ms();
        let granted = self
            .update(name, |pool| {
                pool.capacity = capacity;
                pool.grant(now, millis(LEASE))
            })
            .await?;
        self.tell(name, Ok(granted)).await;
        Ok(())
    }

    /// Every pool.
    pub(crate) async fn list(&self) -> Result<Vec<PoolView>, NatsError> {
        let fail = |e: async_nats::Error| NatsError::new("list the pools", e);
        let mut keys = self.store().keys().await.map_err(|e| fail(e.into()))?;
        let mut pools = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| fail(e.into()))?;
            let Some(name) = key.strip_prefix("pool.") else { continue };
            if let Some(pool) = self.read(name).await? {
                pools.push(PoolView { name: name.to_owned(), pool });
            }
        }
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pools)
    }

    /// A pool, if it was set.
    pub(crate) async fn read(&self, name: &str) -> Result<Option<Pool>, NatsError> {
        let fail = |e: async_nats::Error| NatsError::new(format!("read pool `{name}`"), e);
        let Some(bytes) = self.store().get(subjects::pool_key(name)).await.map_err(|e| fail(e.into()))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| fail(e.into()))
    }

    /// Each [`RENEW_EVERY`]: renews the leases this coordinator holds, drops the leases
    /// nobody renewed, and grants what that frees, in every pool.
    pub(crate) async fn keep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(RENEW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let names = match self.list().await {
                Ok(pools) => pools.into_iter().map(|p| p.name).collect::<Vec<_>>(),
                Err(e) => {
                    tracing::debug!(error = %e, "pools not read; trying again later");
                    continue;
                }
            };
            for name in names {
                let mine: BTreeSet<Key> = self.held().iter().filter(|k| k.0 == name).cloned().collect();
                let now = now_ms();
                let updated = self
                    .update(&name, |pool| {
                        for h in &mut pool.holders {
                            if mine.contains(&(name.clone(), h.run_id, h.step.clone(), h.attempt)) {
                                h.expires_ms = now.saturating_add(millis(LEASE));
                            }
                        }
                        for gone in pool.expire(now) {
                            tracing::warn!(pool = %name, run_id = %gone.run_id, step = %gone.step, "a lease nobody renewed ended: its units are free");
                        }
                        pool.grant(now, millis(LEASE))
                    })
                    .await;
                self.tell(&name, updated).await;
            }
        }
    }

    /// Appends each grant to its run's log.
    async fn tell(&self, pool: &str, granted: Result<Vec<Claim>, NatsError>) {
        let granted = match granted {
            Ok(granted) => granted,
            Err(e) => {
                tracing::error!(pool, error = %e, "pool not updated");
                return;
            }
        };
        for claim in granted {
            let ask = (claim.ask != 0).then_some(claim.ask);
            let input = Input::Granted { step: claim.step.clone(), attempt: claim.attempt, pool: pool.to_owned(), ask };
            // One id per ask: the grant of a later ask is not a repeat of an earlier one's.
            let id = format!("granted:{}:{}:{}:{pool}:{}", claim.run_id, claim.step, claim.attempt, claim.ask);
            crate::run_actor::append_reliably(&self.nats, claim.log.clone(), Entry::Input { input }, id).await;
        }
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}
