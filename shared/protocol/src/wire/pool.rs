//! Resource pools: named capacities shared by every run (KV `weft_pools`, key
//! `pool.<name>`), with the steps holding units and those waiting for them. Coordinators
//! change a pool only by compare-and-set on its revision, so two can never hand out the
//! same unit.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Millis;

/// A pool as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Units in all (`weft pools set NAME N`).
    pub capacity: u32,
    /// Steps holding units now.
    #[serde(default)]
    pub holders: Vec<Claim>,
    /// Steps waiting for units, in the order they asked.
    #[serde(default)]
    pub waiters: Vec<Claim>,
}

/// One step attempt's claim on a pool: held, or waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The run.
    pub run_id: Uuid,
    /// The step instance.
    pub step: String,
    /// Its attempt.
    pub attempt: u32,
    /// Units it needs.
    pub units: u32,
    /// Its `priority`: higher is served first.
    #[serde(default)]
    pub priority: i32,
    /// When it asked.
    pub since_ms: Millis,
    /// A holder's lease ends then unless its coordinator renews it (a crash cannot keep
    /// units for ever); for a waiter, unused.
    #[serde(default)]
    pub expires_ms: Millis,
    /// Where its grant is appended: the run's log.
    pub log: String,
    /// The run's number for this ask, echoed in the grant so a run can tell it from the
    /// answer to an earlier ask (0: none, as in claims stored before asks were numbered).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ask: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Claim {
    /// Whether it is the claim of `run`'s `step` attempt `attempt`.
    pub fn is(&self, run: Uuid, step: &str, attempt: u32) -> bool {
        self.run_id == run && self.step == step && self.attempt == attempt
    }
}

impl Pool {
    /// Units held now.
    pub fn held(&self) -> u32 {
        self.holders.iter().map(|h| h.units).fold(0, u32::saturating_add)
    }

    /// Drops the holders whose lease ended before `now`; returns them.
    pub fn expire(&mut self, now: Millis) -> Vec<Claim> {
        let (gone, kept) = std::mem::take(&mut self.holders).into_iter().partition(|h| h.expires_ms < now);
        self.holders = kept;
        gone
    }

    /// Moves waiters to holders while units are free, highest priority first, then the
    /// oldest; a waiter that needs more than is free waits (and those behind it, so a
    /// large claim is not starved by small ones). Returns the claims granted.
    pub fn grant(&mut self, now: Millis, lease: Millis) -> Vec<Claim> {
        self.waiters.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.since_ms.cmp(&b.since_ms)));
        let mut granted = Vec::new();
        while let Some(next) = self.waiters.first() {
            if self.held().saturating_add(next.units) > self.capacity {
                break;
            }
            let mut claim = self.waiters.remove(0);
            claim.expires_ms = now.saturating_add(lease);
            self.holders.push(claim.clone());
            granted.push(claim);
        }
        granted
    }
}

/// A pool as `weft pools` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    /// Its name.
    pub name: String,
    /// The pool.
    #[serde(flatten)]
    pub pool: Pool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(step: &str, units: u32, priority: i32, since_ms: Millis) -> Claim {
        Claim {
            run_id: Uuid::nil(),
            step: step.into(),
            attempt: 1,
            units,
            priority,
            since_ms,
            expires_ms: 0,
            log: String::new(),
            ask: 0,
        }
    }

    #[test]
    fn units_go_by_priority_then_age_and_never_past_the_capacity() {
        let mut pool = Pool {
            capacity: 2,
            holders: vec![],
            waiters: vec![claim("old", 1, 0, 1), claim("urgent", 1, 5, 9), claim("new", 1, 0, 5)],
        };
        let granted: Vec<String> = pool.grant(100, 30).into_iter().map(|c| c.step).collect();
        assert_eq!(granted, ["urgent", "old"]);
        assert_eq!((pool.held(), pool.waiters.len()), (2, 1));
        assert!(pool.grant(101, 30).is_empty(), "full");
        assert_eq!(pool.expire(200).len(), 2, "leases not renewed end");
        assert_eq!(pool.grant(200, 30)[0].step, "new");
    }

    #[test]
    fn a_large_claim_at_the_head_is_not_overtaken() {
        let mut pool = Pool {
            capacity: 2,
            holders: vec![claim("a", 1, 0, 0)],
            waiters: vec![claim("big", 2, 0, 1), claim("small", 1, 0, 2)],
        };
        assert!(pool.grant(10, 30).is_empty());
    }
}
