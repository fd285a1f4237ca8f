//! Warnings: what is valid but may surprise, reported by `weft validate` without failing it.
//!
//! - The run's `output` reads a step that may be skipped (it has a `when`, or it needs the
//!   output of one that may be skipped): that part of the output is `null` when it is.

use std::collections::BTreeSet;

use super::{Code, Problem};
use crate::plan::Plan;

/// Every warning about `plan`, each with its place.
pub fn warnings(plan: &Plan) -> Vec<Problem> {
    let Some(output) = &plan.output else { return Vec::new() };
    // Top-level steps that may be skipped: a `when`, or a data dependency on one that may
    // be (the skip rule). Steps are in document order and depend only on earlier ones...
    // not necessarily, so iterate to a fixed point (the graph is acyclic).
    let mut may_skip: BTreeSet<&str> = plan.steps.iter().filter(|s| s.when.is_some()).map(|s| s.id.as_str()).collect();
    loop {
        let before = may_skip.len();
        for s in &plan.steps {
            if s.needs.iter().any(|n| may_skip.contains(n.as_str())) {
                may_skip.insert(s.id.as_str());
            }
        }
        if may_skip.len() == before {
            break;
        }
    }
    let mut read: Vec<&str> =
        output.references().iter().map(|p| p.root.as_str()).filter(|r| may_skip.contains(r)).collect();
    read.sort_unstable();
    read.dedup();
    read.into_iter()
        .map(|id| Problem {
            path: "output".to_owned(),
            step: None,
            code: Code::MaySkip,
            message: format!("reads `{id}`, which may be skipped (it has a condition, or needs a step that has one); its part of the output is null then"),
        })
        .collect()
}
