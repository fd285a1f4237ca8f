//! Static analysis of a plan: execution levels, the most steps that can run at once, and
//! the critical path.
//!
//! Lengths are in *steps* when nothing gives a duration, and in milliseconds as soon as
//! anything does: a per-tool duration (given by the user, e.g. from run history, and
//! preferred), a step's declared `estimate`, or a `wait`'s duration. A construct weighs what its body's
//! own critical path weighs (a pipeline its stages in sequence, a switch its heaviest
//! case, a race its lightest branch when the first success wins, a `for_each` or `loop`
//! one pass of its body, since the number of items or iterations is known only at run
//! time). In milliseconds, a leaf with no known duration weighs 0 and is listed in
//! `unestimated`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::definition::Winner;
use crate::graph;
use crate::plan::{Kind, Plan, Step, WaitFor};

/// Known durations, beyond each step's own `estimate`.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    /// Typical duration of each tool.
    pub per_tool: BTreeMap<String, Duration>,
}

/// Unit of path lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Each leaf step counts 1.
    Steps,
    /// Milliseconds.
    Ms,
}

/// What analysis found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Workflow name.
    pub name: String,
    /// Top-level steps.
    pub steps: usize,
    /// Steps at every depth.
    pub total_steps: usize,
    /// Top-level steps by level: level 0 needs nothing, level n waits for level n-1.
    pub levels: Vec<Vec<String>>,
    /// The most top-level steps that can run at once (largest antichain).
    pub max_parallelism: usize,
    /// One set of steps of that size.
    pub widest: Vec<String>,
    /// The longest chain of dependent top-level steps.
    pub critical_path: Vec<String>,
    /// Its length, in `unit`.
    pub critical_length: f64,
    /// The length if every top-level step ran one after another.
    pub sequential_length: f64,
    /// Unit of the two lengths.
    pub unit: Unit,
    /// Leaf steps with no known duration (time mode only).
    pub unestimated: Vec<String>,
}

/// Above this many steps, the exact antichain (quadratic in memory) gives way to the
/// widest level, a lower bound.
const EXACT_ANTICHAIN_LIMIT: usize = 2_000;

/// Analyses a plan's top level.
pub fn analyze(plan: &Plan, weights: &Weights) -> Analysis {
    let unit = if plan.all_steps().iter().any(|s| known(s, weights).is_some()) { Unit::Ms } else { Unit::Steps };
    let mut unestimated = Vec::new();
    let (deps, order) = shape(&plan.steps);
    let weight: Vec<f64> = plan.steps.iter().map(|s| step_weight(s, weights, unit, &mut unestimated)).collect();
    let (levels, path, length, widest) = match &order {
        Some(order) => {
            let level = graph::levels(&deps, order);
            let depth = level.iter().max().map_or(0, |m| m + 1);
            let mut levels = vec![Vec::new(); depth];
            for (i, l) in level.iter().enumerate() {
                levels[*l].push(plan.steps[i].id.clone());
            }
            let (path, length) = graph::longest_path(&deps, order, &weight);
            let widest = if plan.steps.len() <= EXACT_ANTICHAIN_LIMIT {
                graph::max_antichain(&deps, order)
            } else {
                let wide = (0..depth).max_by_key(|l| level.iter().filter(|x| **x == *l).count()).unwrap_or(0);
                (0..plan.steps.len()).filter(|i| level[*i] == wide).collect()
            };
            (levels, path, length, widest)
        }
        // Plans are acyclic by construction; an empty analysis is the safe answer.
        None => (Vec::new(), Vec::new(), 0.0, Vec::new()),
    };
    let ids = |ix: Vec<usize>| ix.into_iter().map(|i| plan.steps[i].id.clone()).collect::<Vec<_>>();
    unestimated.sort();
    unestimated.dedup();
    Analysis {
        name: plan.name.clone(),
        steps: plan.steps.len(),
        total_steps: plan.all_steps().len(),
        levels,
        max_parallelism: widest.len(),
        widest: ids(widest),
        critical_path: ids(path),
        critical_length: length,
        sequential_length: weight.iter().sum(),
        unit,
        unestimated: if unit == Unit::Ms { unestimated } else { Vec::new() },
    }
}

/// Dependencies as indices, and a topological order if acyclic.
fn shape(steps: &[Step]) -> (Vec<Vec<usize>>, Option<Vec<usize>>) {
    let pos = |id: &str| steps.iter().position(|s| s.id == id);
    let deps: Vec<Vec<usize>> = steps.iter().map(|s| s.dependencies().into_iter().filter_map(pos).collect()).collect();
    let order = graph::topological(&deps);
    (deps, order)
}

/// A leaf's own known duration.
fn known(step: &Step, weights: &Weights) -> Option<Duration> {
    // Measured per-tool durations beat declared estimates.
    let measured = step.tool().and_then(|t| weights.per_tool.get(t).copied());
    measured.or(step.estimate).or(match &step.kind {
        Kind::Wait(WaitFor::Duration(d)) => Some(*d),
        _ => None,
    })
}

fn step_weight(step: &Step, weights: &Weights, unit: Unit, unestimated: &mut Vec<String>) -> f64 {
    if unit == Unit::Ms
        && let Some(d) = known(step, weights)
    {
        return d.as_secs_f64() * 1000.0;
    }
    let mut block = |steps: &[Step]| block_length(steps, weights, unit, unestimated);
    match &step.kind {
        Kind::ForEach { body, .. } | Kind::Loop { body, .. } => block(body),
        Kind::Parallel { steps, .. } => block(steps),
        Kind::Pipeline { stages, .. } => block(stages),
        Kind::Fallback { alternatives } => alternatives.first().map_or(0.0, |a| block(std::slice::from_ref(a))),
        Kind::Switch { cases, default, .. } => {
            cases.iter().map(|c| c.body.as_slice()).chain(default.as_deref()).map(&mut block).fold(0.0, f64::max)
        }
        Kind::Race { branches, winner } => {
            let each = branches.iter().map(|b| block(std::slice::from_ref(b)));
            match winner {
                Winner::First => Some(each.fold(f64::INFINITY, f64::min)).filter(|l| l.is_finite()).unwrap_or(0.0),
                Winner::Max(_) | Winner::Min(_) => each.fold(0.0, f64::max),
            }
        }
        Kind::Task { .. } | Kind::Wait(_) | Kind::Signal { .. } | Kind::SubWorkflow { .. } | Kind::Plan(_) => {
            match unit {
                Unit::Steps => 1.0,
                Unit::Ms => {
                    unestimated.push(step.id.clone());
                    0.0
                }
            }
        }
    }
}

fn block_length(steps: &[Step], weights: &Weights, unit: Unit, unestimated: &mut Vec<String>) -> f64 {
    let (deps, order) = shape(steps);
    let weight: Vec<f64> = steps.iter().map(|s| step_weight(s, weights, unit, unestimated)).collect();
    order.map_or(0.0, |o| graph::longest_path(&deps, &o, &weight).1)
}

/// Formats a length for people.
pub fn format_length(length: f64, unit: Unit) -> String {
    match unit {
        Unit::Steps => {
            let n = length.round() as u64;
            format!("{n} step{}", if n == 1 { "" } else { "s" })
        }
        Unit::Ms if length >= 1000.0 => format!("{:.2}s", length / 1000.0),
        Unit::Ms => format!("{length:.0}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::WorkflowDef;
    use crate::validate::compile;

    fn plan(json: &str) -> Plan {
        compile(&WorkflowDef::from_json(json).expect("parses"), None).expect("valid")
    }

    const A_TO_E: &str = r#"{"name": "dag", "steps": [
        {"id": "a", "tool": "step_a"},
        {"id": "b", "tool": "step_b"},
        {"id": "c", "tool": "step_c", "params": {"a_result": "{a}"}},
        {"id": "d", "tool": "step_d", "params": {"a_result": "{a}", "b_result": "{b}"}},
        {"id": "e", "tool": "step_e", "params": {"c_result": "{c}", "d_result": "{d}"}}
    ]}"#;

    #[test]
    fn a_to_e_in_steps() {
        let a = analyze(&plan(A_TO_E), &Weights::default());
        assert_eq!(a.levels, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
        assert_eq!(a.critical_path, ["a", "c", "e"]);
        assert_eq!(a.critical_length, 3.0);
        assert_eq!(a.sequential_length, 5.0);
        assert_eq!(a.max_parallelism, 2);
        assert_eq!(a.unit, Unit::Steps);
    }

    #[test]
    fn per_tool_durations_move_the_critical_path() {
        let mut w = Weights::default();
        w.per_tool.insert("step_b".into(), Duration::from_millis(2000));
        for t in ["step_a", "step_c", "step_d", "step_e"] {
            w.per_tool.insert(t.into(), Duration::from_millis(500));
        }
        let a = analyze(&plan(A_TO_E), &w);
        assert_eq!(a.critical_path, ["b", "d", "e"]);
        assert_eq!(a.critical_length, 3000.0);
        assert_eq!(format_length(a.critical_length, a.unit), "3.00s");
    }

    #[test]
    fn constructs_weigh_their_bodies() {
        let p = plan(
            r#"{"name": "x", "steps": [
            {"id": "p", "pipeline": {"stages": [
                {"id": "s1", "tool": "t", "estimate": "1s"},
                {"id": "s2", "tool": "t", "estimate": "2s"}]}},
            {"id": "r", "race": {"branches": [
                {"id": "fast", "tool": "t", "estimate": "100ms"},
                {"id": "slow", "tool": "t", "estimate": "5s"}]}},
            {"id": "after", "tool": "t", "params": {"x": "{p}", "y": "{r}"}}
        ]}"#,
        );
        let a = analyze(&p, &Weights::default());
        assert_eq!(a.unit, Unit::Ms);
        assert_eq!(a.critical_path, ["p", "after"]);
        assert_eq!(a.critical_length, 3000.0);
        assert_eq!(a.unestimated, ["after"]);
    }
}
