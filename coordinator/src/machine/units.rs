//! Resource pools from the machine's side: a tool step with `resources` holds units of
//! named pools, shared by every run, from its dispatch to its end.
//!
//! Before an attempt is dispatched the step asks for its pools one at a time, in name
//! order (so two steps that need the same pools cannot each hold what the other waits
//! for); each grant arrives as a logged `Granted` input, like a result. Once every pool
//! is granted the attempt is dispatched. When the attempt ends (a result, a timeout, a
//! cancel, the run's end) every unit it held or asked for is returned. A grant nobody
//! asked for is returned at once. Each ask carries a number of the run's (`ask`), which
//! the pool keeps and its grant echoes: a grant of an earlier ask applied again (a
//! duplicate, a stray told once more after a takeover) cannot pass for the answer to the
//! ask that waits now. The pools themselves (capacity, who holds and who waits,
//! leases a crash cannot keep) are the coordinator's `pools.rs`.

use weft_protocol::wire::StepStatus;

use super::ids::InstId;
use super::{Effect, Ignored, Input, Run};

/// A tool step's claim on its pools, for its next or current attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Units {
    /// It needs none, or has returned them.
    #[default]
    None,
    /// Attempt `attempt` asked for its pools in name order and holds the first `granted`;
    /// `ask` numbers the ask that waits.
    Asking { attempt: u32, granted: usize, ask: u64 },
    /// Attempt `attempt` holds every pool it needs.
    Held { attempt: u32 },
}

/// One pool claim of one step attempt, for the coordinator's pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolClaim {
    /// The step instance.
    pub step: String,
    /// Its attempt.
    pub attempt: u32,
    /// The pool.
    pub pool: String,
    /// Units of it.
    pub units: u32,
    /// Which ask of the run it is (0 where none waits: a hold, a release).
    pub ask: u64,
    /// The step's priority.
    pub priority: i32,
}

impl Run {
    /// Instance `i`'s pools and units, in name order.
    fn pools_of(&self, i: InstId) -> Vec<(String, u32)> {
        self.def(i).resources.iter().map(|(p, u)| (p.clone(), *u)).collect()
    }

    fn claim(&self, i: InstId, attempt: u32, k: usize) -> Option<PoolClaim> {
        let (pool, units) = self.pools_of(i).into_iter().nth(k)?;
        let ask = match self.insts[i].state.units {
            Units::Asking { granted, ask, .. } if granted == k => ask,
            _ => 0,
        };
        Some(PoolClaim { step: self.insts[i].path.clone(), attempt, pool, units, priority: self.def(i).priority, ask })
    }

    /// A new ask's number.
    fn next_ask(&mut self) -> u64 {
        self.asks += 1;
        self.asks
    }

    /// Whether instance `i`'s next attempt holds its pools; asks for the next one if not.
    pub(super) fn units_ready(&mut self, i: InstId, out: &mut Vec<Effect>) -> bool {
        if self.def(i).resources.is_empty() {
            return true;
        }
        let next = self.insts[i].state.attempt + 1;
        match self.insts[i].state.units {
            Units::Held { attempt } if attempt == next => true,
            Units::Asking { attempt, .. } if attempt == next => false,
            _ => {
                let ask = self.next_ask();
                self.insts[i].state.units = Units::Asking { attempt: next, granted: 0, ask };
                if let Some(claim) = self.claim(i, next, 0) {
                    out.push(Effect::Acquire(claim));
                }
                false
            }
        }
    }

    /// A pool granted units to a step attempt, answering ask `ask` (none: a grant logged
    /// before asks were numbered, taken as the answer).
    pub(super) fn on_granted(&mut self, step: &str, attempt: u32, pool: &str, ask: Option<u64>, out: &mut Vec<Effect>) {
        let asked = self.index(step).and_then(|i| match self.insts[i].state.units {
            Units::Asking { attempt: a, granted, .. }
                if a == attempt && self.insts[i].state.status == StepStatus::Pending =>
            {
                let wanted = self.claim(i, attempt, granted)?;
                (wanted.pool == pool).then_some((i, granted, wanted))
            }
            _ => None,
        });
        let what = || Input::Granted { step: step.to_owned(), attempt, pool: pool.to_owned(), ask }.describe();
        if let Some((_, _, wanted)) = &asked
            && ask.is_some_and(|n| n != wanted.ask)
        {
            // The answer to an earlier ask of the same pool: the one that waits keeps its
            // place in the queue (a release would take it out).
            return out.push(Effect::Ignored(Ignored::stale(what(), "it answers an earlier ask: the step waits on")));
        }
        let Some((i, granted, claim)) = asked else {
            if self.holds(step, attempt, pool) {
                // A repeat of a grant the attempt holds already (a grant told again after a
                // takeover): its units are in use, and stay held.
                return out.push(Effect::Ignored(Ignored::stale(what(), "the step attempt holds that pool already")));
            }
            // Nobody waits for it: return it at once.
            out.push(Effect::Ignored(Ignored::stale(
                what(),
                "no step attempt waits for that pool: its units are returned",
            )));
            out.push(Effect::Release(PoolClaim {
                step: step.to_owned(),
                attempt,
                pool: pool.to_owned(),
                units: 0,
                priority: 0,
                ask: 0,
            }));
            return;
        };
        out.push(Effect::Hold(claim));
        let granted = granted + 1;
        if granted == self.def(i).resources.len() {
            self.insts[i].state.units = Units::Held { attempt };
            self.dirty.insert(self.insts[i].frame);
        } else {
            let ask = self.next_ask();
            self.insts[i].state.units = Units::Asking { attempt, granted, ask };
            if let Some(next) = self.claim(i, attempt, granted) {
                out.push(Effect::Acquire(next));
            }
        }
    }

    /// Whether `step`'s attempt `attempt` holds units of `pool` now.
    fn holds(&self, step: &str, attempt: u32, pool: &str) -> bool {
        let Some(i) = self.index(step) else { return false };
        let held = match self.insts[i].state.units {
            Units::Held { attempt: a } if a == attempt => self.def(i).resources.len(),
            Units::Asking { attempt: a, granted, .. } if a == attempt => granted,
            _ => return false,
        };
        self.pools_of(i).iter().take(held).any(|(p, _)| p == pool)
    }

    /// Instance `i`'s attempt ended (or will not start): every unit it held or asked for
    /// goes back.
    pub(super) fn return_units(&mut self, i: InstId, out: &mut Vec<Effect>) {
        let (attempt, asked) = match self.insts[i].state.units {
            Units::None => return,
            Units::Asking { attempt, granted, .. } => (attempt, granted + 1),
            Units::Held { attempt } => (attempt, self.def(i).resources.len()),
        };
        self.insts[i].state.units = Units::None;
        for k in 0..asked {
            if let Some(claim) = self.claim(i, attempt, k) {
                out.push(Effect::Release(claim));
            }
        }
    }

    /// What a new owner must tell the pools again: the units held, and the one asked for.
    pub(super) fn resume_units(&self, i: InstId, out: &mut Vec<Effect>) {
        let (attempt, held, asking) = match self.insts[i].state.units {
            Units::None => return,
            Units::Asking { attempt, granted, .. } => (attempt, granted, Some(granted)),
            Units::Held { attempt } => (attempt, self.def(i).resources.len(), None),
        };
        out.extend((0..held).filter_map(|k| self.claim(i, attempt, k)).map(Effect::Hold));
        if let Some(k) = asking
            && let Some(claim) = self.claim(i, attempt, k)
        {
            out.push(Effect::Acquire(claim));
        }
    }

    /// Every pool claim the run has now: units held and places in queues.
    pub(crate) fn claims(&self) -> Vec<PoolClaim> {
        let mut out = Vec::new();
        for i in self.inst_ids() {
            let (attempt, asked) = match self.insts[i].state.units {
                Units::None => continue,
                Units::Asking { attempt, granted, .. } => (attempt, granted + 1),
                Units::Held { attempt } => (attempt, self.def(i).resources.len()),
            };
            out.extend((0..asked).filter_map(|k| self.claim(i, attempt, k)));
        }
        out
    }

    /// What a step waiting for units waits for, for its record.
    pub(super) fn waiting_for_units(&self, i: InstId) -> Option<String> {
        let Units::Asking { attempt, granted, .. } = self.insts[i].state.units else { return None };
        let claim = self.claim(i, attempt, granted)?;
        Some(format!("waiting for {} unit(s) of pool `{}`", claim.units, claim.pool))
    }
}
