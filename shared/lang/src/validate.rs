//! Validation: turns a [`WorkflowDef`] into a [`Plan`], or reports *every* problem at
//! once, each with where it is (JSON path and step id) and why.
//!
//! Checked: ids (valid, unique across the whole workflow, not reserved), dependencies
//! (known, visible, acyclic — a cycle is reported as its path `a -> c -> a`),
//! references (their root is in scope; steps inside a construct's body are visible only
//! inside it; a compensation reads only its own step or steps upstream of it), templates
//! and conditions (well-formed), durations, retry policies, each construct's required
//! parts, and, given a [`Catalogue`], tool names and literal params against each tool's
//! JSON Schema.
//!
//! Layout: [`scope`] resolves reference roots through nested bodies; [`step`] compiles
//! one step; [`constructs`] compiles each construct's parts and bodies; [`checks`] holds
//! the small field checks.

mod checks;
mod constructs;
mod scope;
mod step;
mod warnings;

pub use warnings::warnings;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::definition::WorkflowDef;
use crate::graph;
use crate::limits::Limits;
use crate::plan::{Plan, Step};

/// What kind of problem, for machines (`weft validate --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Two steps share an id.
    DuplicateId,
    /// An id is empty, malformed or reserved.
    InvalidId,
    /// `depends_on` names no visible step.
    UnknownDependency,
    /// Dependencies form a cycle.
    Cycle,
    /// A reference's root names nothing in scope.
    UnknownReference,
    /// A reference points into a construct body from outside, or at a step that is not
    /// upstream where only upstream steps may be read.
    NotUpstream,
    /// A string is not a well-formed template.
    BadTemplate,
    /// A condition is malformed.
    BadCondition,
    /// A duration does not parse or is out of range.
    BadDuration,
    /// The tool is not in the catalogue.
    UnknownTool,
    /// Literal params break the tool's JSON Schema.
    InvalidParams,
    /// A construct lacks a required part.
    MissingPart,
    /// A value is out of its allowed range or of the wrong shape.
    InvalidValue,
    /// A warning, not an error: what is read may be skipped, and reads as `null` then.
    MaySkip,
    /// More than a limit allows (steps, iterations, patterns): see `limits`.
    LimitExceeded,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// JSON path in the document (`steps[2].params.message`).
    pub path: String,
    /// The step the problem belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Kind of problem.
    pub code: Code,
    /// What is wrong, and how to fix it where that is clear.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "{} (step `{step}`): {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct Problems(pub Vec<Problem>);

/// Validates `def` (against `catalogue` if given) and compiles it into a [`Plan`].
pub fn compile(def: &WorkflowDef, catalogue: Option<&Catalogue>) -> Result<Plan, Problems> {
    compile_within(def, catalogue, &Limits::default())
}

/// [`compile`] under `limits`.
pub fn compile_within(def: &WorkflowDef, catalogue: Option<&Catalogue>, limits: &Limits) -> Result<Plan, Problems> {
    // Too large is refused before any of it is compiled.
    let bytes = serde_json::to_vec(def).map_or(usize::MAX, |json| json.len());
    if bytes > limits.max_definition_bytes {
        let what = "the definition";
        let message = crate::limits::exceeded(
            what,
            format!("{bytes} bytes"),
            limits.max_definition_bytes,
            "WEFT_MAX_DEFINITION_BYTES",
        );
        return Err(Problems(vec![Problem { path: String::new(), step: None, code: Code::LimitExceeded, message }]));
    }
    let mut cx = step::Compiler::new(def, catalogue);
    let plan = cx.workflow();
    let mut problems = cx.into_problems();
    problems.extend(limit_problems(&plan, limits));
    if problems.is_empty() {
        return Ok(plan);
    }
    problems.sort_by(|a, b| natural_path_order(&a.path, &b.path));
    Err(Problems(problems))
}

/// What `plan` asks beyond `limits`.
fn limit_problems(plan: &Plan, limits: &Limits) -> Vec<Problem> {
    let limit = |path: String, step: Option<String>, message: String| Problem {
        path,
        step,
        code: Code::LimitExceeded,
        message,
    };
    let mut problems = Vec::new();
    let steps = plan.all_steps();
    if steps.len() > limits.max_steps {
        let message = crate::limits::exceeded("the number of steps", steps.len(), limits.max_steps, "WEFT_MAX_STEPS");
        problems.push(limit("steps".to_owned(), None, message));
    }
    let mut regexes = 0;
    for step in &steps {
        if let crate::plan::Kind::Loop { max_iterations, until, .. } = &step.kind {
            regexes += until.pattern_count();
            if *max_iterations > limits.max_iterations {
                let what = "`max_iterations`";
                let message =
                    crate::limits::exceeded(what, max_iterations, limits.max_iterations, "WEFT_MAX_ITERATIONS");
                problems.push(limit("loop.max_iterations".to_owned(), Some(step.id.clone()), message));
            }
        }
        if let crate::plan::Kind::Switch { cases, .. } = &step.kind {
            for case in cases {
                if let crate::plan::CaseMatch::When(c) = &case.matcher {
                    regexes += c.pattern_count();
                }
            }
        }
        regexes += step.when.as_ref().map_or(0, |w| w.pattern_count());
    }
    if regexes > limits.max_regexes {
        let message = crate::limits::exceeded(
            "the number of `matches` conditions",
            regexes,
            limits.max_regexes,
            "WEFT_MAX_REGEXES",
        );
        problems.push(limit("steps".to_owned(), None, message));
    }
    problems
}

/// Orders `steps[10]` after `steps[9]`: numbers inside paths compare as numbers.
fn natural_path_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(s: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut text = String::new();
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else {
                if !digits.is_empty() {
                    out.push((std::mem::take(&mut text), digits.parse().unwrap_or(u64::MAX)));
                    digits.clear();
                }
                text.push(c);
            }
        }
        out.push((text, digits.parse().unwrap_or(0)));
        out
    }
    key(a).cmp(&key(b))
}

/// Reports each dependency cycle among `steps` (one per strongly connected component).
fn cycles(steps: &[Step], path_of: impl Fn(&str) -> String) -> Vec<Problem> {
    let nodes: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    let edges =
        |id: &str| -> BTreeSet<&str> { steps.iter().find(|s| s.id == id).map(Step::dependencies).unwrap_or_default() };
    graph::find_cycles(&nodes, edges)
        .into_iter()
        .map(|cycle| {
            let first = cycle.first().cloned().unwrap_or_default();
            Problem {
                path: path_of(&first),
                step: Some(first),
                code: Code::Cycle,
                message: format!("dependency cycle: {}", cycle.join(" -> ")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
