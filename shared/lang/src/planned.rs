//! What a model-written plan may hold beyond what any workflow may: only the tools it was
//! allowed, within its caps, and nothing that starts other runs.
//!
//! The validator ([`crate::validate`]) says whether a plan is a workflow at all; this says
//! whether it is one the `plan` step that asked for it may run. Both lists of problems go
//! back to the model to repair.

use std::collections::BTreeSet;

use crate::definition::{StepDef, StepKindDef, WorkflowDef};
use crate::plan::PlanCaps;

/// Every way `def` oversteps `allowed` tools and `caps`, each with its place.
pub fn bounds(def: &WorkflowDef, allowed: &[String], caps: PlanCaps) -> Vec<String> {
    let allowed: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
    let mut walk = Walk { allowed, caps, steps: 0, problems: Vec::new() };
    walk.block(&def.steps, "steps", 0);
    if walk.steps > caps.max_steps as usize {
        walk.problems.push(format!("the plan has {} steps; at most {} are allowed", walk.steps, caps.max_steps));
    }
    walk.problems
}

struct Walk<'a> {
    allowed: BTreeSet<&'a str>,
    caps: PlanCaps,
    steps: usize,
    problems: Vec<String>,
}

impl Walk<'_> {
    fn block(&mut self, steps: &[StepDef], at: &str, depth: u32) {
        for (k, step) in steps.iter().enumerate() {
            self.step(step, &format!("{at}[{k}]"), depth);
        }
    }

    fn tool(&mut self, tool: &str, at: &str) {
        if !self.allowed.contains(tool) {
            let allowed: Vec<&str> = self.allowed.iter().copied().collect();
            self.problems.push(format!("{at}: tool `{tool}` is not allowed; use only {}", allowed.join(", ")));
        }
    }

    fn width(&mut self, n: usize, at: &str, what: &str) {
        if n > self.caps.max_width as usize {
            self.problems.push(format!("{at}: {n} {what}; at most {} are allowed", self.caps.max_width));
        }
    }

    fn step(&mut self, step: &StepDef, at: &str, depth: u32) {
        self.steps += 1;
        if let Some(c) = &step.compensate {
            self.tool(&c.tool, &format!("{at}.compensate.tool"));
        }
        if !step.resources.is_empty() {
            self.problems.push(format!("{at}.resources: a plan may not hold resource pools"));
        }
        let kind = step.kind.keyword();
        let inner = depth + 1;
        if !matches!(step.kind, StepKindDef::Task { .. } | StepKindDef::Wait(_)) && inner > self.caps.max_depth {
            self.problems.push(format!(
                "{at}: this `{kind}` nests constructs {inner} deep; at most {} are allowed",
                self.caps.max_depth
            ));
        }
        match &step.kind {
            StepKindDef::Task { tool, .. } => self.tool(tool, &format!("{at}.tool")),
            StepKindDef::Wait(_) => {}
            StepKindDef::Signal(_) | StepKindDef::Workflow(_) | StepKindDef::Plan(_) => self.problems.push(format!(
                "{at}: a plan may not use `{kind}` (it would wait on people or start other runs); use the tools given"
            )),
            StepKindDef::ForEach(f) => {
                match f.concurrency {
                    None => self.problems.push(format!(
                        "{at}.for_each.concurrency: a plan's `for_each` must set a concurrency of at most {}",
                        self.caps.max_width
                    )),
                    Some(n) => self.width(n as usize, &format!("{at}.for_each.concurrency"), "items at once"),
                }
                self.block(&f.body, &format!("{at}.for_each.do"), inner);
            }
            StepKindDef::Loop(l) => self.block(&l.body, &format!("{at}.loop.do"), inner),
            StepKindDef::Switch(s) => {
                for (k, case) in s.cases.iter().enumerate() {
                    self.block(&case.body, &format!("{at}.switch.cases[{k}].do"), inner);
                }
                if let Some(default) = &s.default {
                    self.block(default, &format!("{at}.switch.default"), inner);
                }
            }
            StepKindDef::Race(r) => {
                self.width(r.branches.len(), &format!("{at}.race.branches"), "branches");
                self.block(&r.branches, &format!("{at}.race.branches"), inner);
            }
            StepKindDef::Fallback(f) => {
                self.width(f.alternatives.len(), &format!("{at}.fallback.alternatives"), "alternatives");
                self.block(&f.alternatives, &format!("{at}.fallback.alternatives"), inner);
            }
            StepKindDef::Parallel(p) => {
                self.width(p.steps.len(), &format!("{at}.parallel.steps"), "steps");
                self.block(&p.steps, &format!("{at}.parallel.steps"), inner);
            }
            StepKindDef::Pipeline(p) => self.block(&p.stages, &format!("{at}.pipeline.stages"), inner),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def(value: serde_json::Value) -> WorkflowDef {
        WorkflowDef::from_json(&value.to_string()).expect("parses")
    }

    #[test]
    fn a_plan_keeps_to_its_tools_and_caps() {
        let caps = PlanCaps { max_steps: 4, max_depth: 1, max_width: 2 };
        let allowed = vec!["get_user".to_owned(), "send_email".to_owned()];
        let fine = def(json!({"name": "p", "steps": [
            {"id": "u", "tool": "get_user"},
            {"id": "each", "for_each": {"items": [1, 2], "concurrency": 2, "do": [{"id": "m", "tool": "send_email"}]}}
        ]}));
        assert_eq!(bounds(&fine, &allowed, caps), Vec::<String>::new());
        let over = def(json!({"name": "p", "steps": [
            {"id": "u", "tool": "delete_everything"},
            {"id": "each", "for_each": {"items": [1], "do": [
                {"id": "inner", "parallel": {"steps": [
                    {"id": "a", "tool": "get_user"}, {"id": "b", "tool": "get_user"}, {"id": "c", "tool": "get_user"}]}}]}},
            {"id": "child", "workflow": {"name": "other"}}
        ]}));
        let problems = bounds(&over, &allowed, caps);
        let has = |text: &str| assert!(problems.iter().any(|p| p.contains(text)), "{text}: {problems:?}");
        has("steps[0].tool: tool `delete_everything` is not allowed; use only get_user, send_email");
        has("steps[1].for_each.concurrency: a plan's `for_each` must set a concurrency");
        has("steps[1].for_each.do[0]: this `parallel` nests constructs 2 deep");
        has("steps[1].for_each.do[0].parallel.steps: 3 steps; at most 2");
        has("steps[2]: a plan may not use `workflow`");
        has("the plan has 7 steps; at most 4");
    }
}
