//! The workflows the scenarios run, built in code. Built-in tools (`echo`, `sleep`) and
//! coordinator steps (`signal`), so any worker serves them; the `tools` scenario's chains
//! and single steps name the tool they measure.

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;

fn def(value: Value) -> WorkflowDef {
    // Built here from constants: a failure is a bug in this file.
    WorkflowDef::from_json(&value.to_string()).unwrap_or_else(|e| panic!("benchmark workflow does not parse: {e}"))
}

/// `n` `echo` steps, each taking a value from the one before (a real data dependency).
pub fn echo_chain(n: usize) -> WorkflowDef {
    chain_of("echo", n)
}

/// `n` steps of `tool` (which returns its params, as `echo` does), each taking a value from
/// the one before.
pub fn chain_of(tool: &str, n: usize) -> WorkflowDef {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"id": "s0", "tool": tool, "params": {"i": 0}})
            } else {
                json!({"id": format!("s{i}"), "tool": tool, "params": {"i": i, "prev": format!("{{s{}.i}}", i - 1)}})
            }
        })
        .collect();
    let name = if tool == "echo" { format!("bench_chain_{n}") } else { format!("bench_chain_{n}_{tool}") };
    def(json!({"name": name, "steps": steps, "output": {"last": format!("{{s{}.i}}", n - 1)}}))
}

/// One step of `tool` with `params`.
pub fn one_step(tool: &str, params: Value) -> WorkflowDef {
    def(
        json!({"name": format!("bench_one_{}", tool.replace('.', "_")), "steps": [{"id": "s", "tool": tool, "params": params}]}),
    )
}

/// `n` independent `sleep` steps of `ms` each.
pub fn sleep_fan_out(n: usize, ms: u64) -> WorkflowDef {
    let steps: Vec<Value> =
        (0..n).map(|i| json!({"id": format!("f{i}"), "tool": "sleep", "params": {"ms": ms}})).collect();
    def(json!({"name": format!("bench_fan_out_sleep_{n}"), "steps": steps}))
}

/// `n` independent `echo` steps.
pub fn echo_fan_out(n: usize) -> WorkflowDef {
    let steps: Vec<Value> =
        (0..n).map(|i| json!({"id": format!("e{i}"), "tool": "echo", "params": {"i": i}})).collect();
    def(json!({"name": format!("bench_fan_out_echo_{n}"), "steps": steps}))
}

/// The signal the parked and recovery workflows wait for.
pub const SIGNAL: &str = "go";
/// Their waiting step.
pub const SIGNAL_STEP: &str = "approval";

/// One `signal` step waiting for [`SIGNAL`], no timeout.
pub fn parked() -> WorkflowDef {
    def(json!({"name": "bench_parked", "steps": [{"id": SIGNAL_STEP, "signal": {"name": SIGNAL}}],
               "output": {"approved": format!("{{{SIGNAL_STEP}.ok}}")}}))
}

/// The 12 steps of the parallel scenario: id, sleep in ms, dependencies. A report for one
/// customer: fetch the account, six lookups that need only the account, three merges,
/// a score, a notification.
pub const TWELVE: [(&str, u64, &[&str]); 12] = [
    ("account", 100, &[]),
    ("orders", 200, &["account"]),
    ("payments", 150, &["account"]),
    ("profile", 100, &["account"]),
    ("support", 200, &["account"]),
    ("usage", 250, &["account"]),
    ("reviews", 150, &["account"]),
    ("revenue", 100, &["orders", "payments"]),
    ("engagement", 100, &["profile", "usage"]),
    ("satisfaction", 100, &["support", "reviews"]),
    ("score", 100, &["revenue", "engagement", "satisfaction"]),
    ("notify", 50, &["score"]),
];

/// [`TWELVE`] with its dependencies: independent steps run at once.
pub fn twelve_parallel() -> WorkflowDef {
    let steps: Vec<Value> = TWELVE
        .iter()
        .map(|(id, ms, deps)| json!({"id": id, "tool": "sleep", "params": {"ms": ms}, "depends_on": deps}))
        .collect();
    def(json!({"name": "bench_twelve_parallel", "steps": steps}))
}

/// [`TWELVE`] one after another, in the same (topological) order.
pub fn twelve_sequential() -> WorkflowDef {
    let steps: Vec<Value> = TWELVE
        .iter()
        .enumerate()
        .map(|(i, (id, ms, _))| {
            let deps: Vec<&str> = if i == 0 { vec![] } else { vec![TWELVE[i - 1].0] };
            json!({"id": id, "tool": "sleep", "params": {"ms": ms}, "depends_on": deps})
        })
        .collect();
    def(json!({"name": "bench_twelve_sequential", "steps": steps}))
}

/// The sum of [`TWELVE`]'s sleeps and its critical path, in ms.
pub fn twelve_ideal() -> (u64, u64) {
    let sum = TWELVE.iter().map(|(_, ms, _)| ms).sum();
    let mut finish: Vec<u64> = Vec::new();
    for (_, ms, deps) in TWELVE {
        let start = deps
            .iter()
            .map(|d| TWELVE.iter().position(|(id, _, _)| id == d).map_or(0, |j| finish[j]))
            .max()
            .unwrap_or(0);
        finish.push(start + ms);
    }
    (sum, finish.into_iter().max().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_validate() {
        for w in
            [echo_chain(5), sleep_fan_out(3, 10), echo_fan_out(3), parked(), twelve_parallel(), twelve_sequential()]
        {
            weft_lang::validate::compile(&w, None).unwrap_or_else(|e| panic!("{}: {e:?}", w.name));
        }
    }

    #[test]
    fn twelve_has_room_for_sixty_percent() {
        let (sum, critical) = twelve_ideal();
        assert_eq!((sum, critical), (1600, 600));
        assert!((critical as f64) < 0.4 * sum as f64);
    }
}
