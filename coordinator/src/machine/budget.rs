//! Budgets: what a run may spend on models, enforced before each model call.
//!
//! A model call (an `llm` step's attempt, a `plan` step's ask) holds its worst case before
//! it is dispatched: its `max_tokens` (4,096 if it sets none) plus its prompt's estimated
//! tokens (a quarter of its bytes), and their cost at the model's price (the dearest price
//! of the table when the model is not in it). A child run (of a `workflow` or a `plan`
//! step) holds what is left of the budget and runs within it. The result settles the hold
//! with the tokens the provider reported; a timeout or a cancel spends the whole hold, since
//! the provider may have charged it. So a run never spends more than its budget plus what
//! the calls already in flight spend beyond their estimate.
//!
//! A call that does not fit waits while others are in flight (their settlement may make
//! room); with nothing in flight the run stops as `budget_exceeded` until a resume adds
//! budget. Holds, spending and limits are state of the machine, rebuilt by replay.

use std::collections::BTreeMap;

use serde_json::Value;
use weft_lang::definition::Budget;
use weft_lang::plan::{Kind, PLANNER_TOOL};
use weft_protocol::wire::{EventKind, Millis, RunStatus, Spend, Usage};

use super::ids::InstId;
use super::{Effect, Run};

/// Completion tokens held for a call that sets no `max_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 4096;

pub(crate) use crate::config::{Price, Prices};

/// What a run spent and holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    /// Tokens spent.
    pub tokens: u64,
    /// Cost spent.
    pub cost: f64,
    /// Held by calls and children in flight, by step instance and attempt.
    pub held: BTreeMap<(String, u32), Hold>,
    /// Added by resumes.
    pub added: Budget,
    /// Steps that wait for room (a settlement looks at their frames again).
    pub waiting: bool,
}

/// One call's or child's hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Hold {
    /// Tokens.
    pub tokens: u64,
    /// Cost.
    pub cost: f64,
}

impl Ledger {
    fn held(&self) -> Hold {
        self.held.values().fold(Hold::default(), |a, h| Hold { tokens: a.tokens + h.tokens, cost: a.cost + h.cost })
    }
}

/// Whether a hold fits under a limit.
enum Fits {
    Yes,
    /// Not now; maybe once calls in flight settle.
    Later,
    /// Not without more budget.
    Never,
}

impl Run {
    /// The budget the run runs under: its own, within what its parent granted, plus what
    /// resumes added.
    pub(crate) fn budget(&self) -> Option<Budget> {
        let own = self.plan.budget;
        let granted = self.parent.as_ref().and_then(|p| p.budget);
        let limit = match (own, granted) {
            (None, None) => return None,
            (Some(b), None) | (None, Some(b)) => b,
            (Some(a), Some(b)) => Budget { tokens: min(a.tokens, b.tokens), cost: min(a.cost, b.cost) },
        };
        let added = self.ledger.added;
        Some(Budget {
            tokens: limit.tokens.map(|t| t.saturating_add(added.tokens.unwrap_or(0))),
            cost: limit.cost.map(|c| c + added.cost.unwrap_or(0.0)),
        })
    }

    /// What the run spent and holds, for its record.
    pub(crate) fn spend(&self) -> Option<Spend> {
        let held = self.ledger.held();
        (self.ledger.tokens > 0 || held.tokens > 0 || self.budget().is_some()).then_some(Spend {
            tokens: self.ledger.tokens,
            cost: self.ledger.cost,
            reserved_tokens: held.tokens,
        })
    }

    /// Whether instance `i`'s next attempt calls a model.
    fn calls_model(&self, i: InstId) -> bool {
        match &self.def(i).kind {
            Kind::Task { tool, .. } => tool == PLANNER_TOOL,
            Kind::Plan(_) => self.is_task(i),
            _ => false,
        }
    }

    /// Holds what instance `i`'s next model call may spend; false if it does not fit (the
    /// run then waits for room, or stops as `budget_exceeded`). Anything but a model call
    /// fits.
    pub(super) fn hold_for_call(&mut self, i: InstId, now: Millis, out: &mut Vec<Effect>) -> bool {
        // Without a budget nothing is estimated: a `plan` step's request is large to build.
        let Some(limit) = self.budget().filter(|_| self.calls_model(i)) else { return true };
        let Some(task) = self.task(i) else { return true };
        let hold = self.estimate(&task.params);
        match self.fits(limit, hold) {
            Fits::Yes => {
                let key = (self.insts[i].path.clone(), self.insts[i].state.attempt + 1);
                self.ledger.held.insert(key, hold);
                true
            }
            Fits::Later => {
                self.ledger.waiting = true;
                false
            }
            Fits::Never => {
                self.status = RunStatus::BudgetExceeded;
                let held = self.ledger.held();
                let (tokens, cost) = (self.ledger.tokens + held.tokens, self.ledger.cost + held.cost);
                let step_id = self.insts[i].path.clone();
                self.emit(out, now, EventKind::BudgetExceeded { step_id, tokens, cost });
                false
            }
        }
    }

    fn fits(&self, limit: Budget, hold: Hold) -> Fits {
        let held = self.ledger.held();
        let tokens = self.ledger.tokens.saturating_add(held.tokens).saturating_add(hold.tokens);
        let cost = self.ledger.cost + held.cost + hold.cost;
        let over = limit.tokens.is_some_and(|t| tokens > t) || limit.cost.is_some_and(|c| cost > c);
        if !over {
            Fits::Yes
        } else if self.ledger.held.is_empty() {
            Fits::Never
        } else {
            Fits::Later
        }
    }

    /// Holds what is left of the budget for instance `i`'s new child run.
    pub(super) fn grant_for_child(&mut self, i: InstId) {
        let Some(limit) = self.budget() else { return };
        let held = self.ledger.held();
        let tokens = limit.tokens.map(|t| t.saturating_sub(self.ledger.tokens.saturating_add(held.tokens)));
        let cost = limit.cost.map(|c| (c - self.ledger.cost - held.cost).max(0.0));
        let key = (self.insts[i].path.clone(), self.insts[i].state.attempt);
        self.ledger.held.insert(key, Hold { tokens: tokens.unwrap_or(0), cost: cost.unwrap_or(0.0) });
    }

    /// The budget held for instance `i`'s running child, if the run has a budget.
    pub(super) fn child_grant(&self, i: InstId) -> Option<Budget> {
        let limit = self.budget()?;
        let key = (self.insts[i].path.clone(), self.insts[i].state.attempt);
        let hold = self.ledger.held.get(&key).copied().unwrap_or_default();
        Some(Budget { tokens: limit.tokens.map(|_| hold.tokens), cost: limit.cost.map(|_| hold.cost) })
    }

    /// Instance `i`'s attempt `attempt` ended: its hold gives way to what it spent (all of
    /// the hold when nothing was reported, as for a timeout). Returns the cost.
    pub(super) fn settle_call(&mut self, i: InstId, attempt: u32, usage: Option<&Usage>) -> Option<f64> {
        let key = (self.insts[i].path.clone(), attempt);
        let hold = self.ledger.held.remove(&key);
        let (tokens, cost) = match (usage, hold) {
            (Some(u), _) => (u.total(), self.cost_of(u)),
            (None, Some(h)) => (h.tokens, h.cost),
            (None, None) => return None,
        };
        self.spent(tokens, cost);
        Some(cost)
    }

    /// A child run ended having spent `spent`.
    pub(super) fn settle_child(&mut self, i: InstId, attempt: u32, spent: Option<&Spend>) {
        let key = (self.insts[i].path.clone(), attempt);
        let hold = self.ledger.held.remove(&key);
        if hold.is_none() && spent.is_none() {
            return;
        }
        let spent = spent.copied().unwrap_or_default();
        self.spent(spent.tokens, spent.cost);
    }

    fn spent(&mut self, tokens: u64, cost: f64) {
        self.ledger.tokens = self.ledger.tokens.saturating_add(tokens);
        self.ledger.cost += cost;
        if std::mem::take(&mut self.ledger.waiting) {
            // Room may have come: steps that waited for it are looked at again.
            self.dirty.extend(self.frame_ids());
        }
    }

    /// More budget from a resume.
    pub(super) fn add_budget(&mut self, tokens: Option<u64>, cost: Option<f64>) {
        let added = &mut self.ledger.added;
        if let Some(t) = tokens {
            added.tokens = Some(added.tokens.unwrap_or(0).saturating_add(t));
        }
        if let Some(c) = cost.filter(|c| c.is_finite() && *c > 0.0) {
            added.cost = Some(added.cost.unwrap_or(0.0) + c);
        }
    }

    /// The worst case of a call with these `llm` params.
    fn estimate(&self, params: &Value) -> Hold {
        let completion = params.get("max_tokens").and_then(Value::as_u64).unwrap_or(DEFAULT_MAX_TOKENS);
        let prompt_bytes: usize = ["messages", "prompt", "system", "tools"]
            .iter()
            .filter_map(|k| params.get(*k))
            .map(|v| serde_json::to_string(v).map_or(0, |s| s.len()))
            .sum();
        let prompt = u64::try_from(prompt_bytes.div_ceil(4)).unwrap_or(u64::MAX);
        let model = params.get("model").and_then(Value::as_str).unwrap_or_default();
        let price = self.price(model);
        let cost = (prompt as f64 * price.prompt + completion as f64 * price.completion) / 1e6;
        Hold { tokens: prompt.saturating_add(completion), cost }
    }

    fn cost_of(&self, usage: &Usage) -> f64 {
        let price = self.price(&usage.model);
        (usage.prompt_tokens as f64 * price.prompt + usage.completion_tokens as f64 * price.completion) / 1e6
    }

    /// The model's price; the dearest of the table for a model it does not list.
    fn price(&self, model: &str) -> Price {
        if let Some(price) = self.prices.get(model) {
            return *price;
        }
        self.prices.values().fold(Price { prompt: 0.0, completion: 0.0 }, |a, p| Price {
            prompt: a.prompt.max(p.prompt),
            completion: a.completion.max(p.completion),
        })
    }
}

/// The tighter of two limits; none is no limit.
fn min<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}
