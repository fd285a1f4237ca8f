//! Control-flow constructs as written. Bodies are lists of steps with their own
//! dependency graph; steps inside a body may reference steps outside it (the construct
//! then depends on them), never the other way round.
//!
//! Parts whose absence is a mistake (a loop's `max_iterations`, a switch's cases) are
//! optional here so that validation can report them all at once, with their location.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DurationDef;
use super::step::{StepDef, present};

/// `for_each`: run `do` once per item of `items`, results in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEachDef {
    /// The list: a reference (`"{search.results}"`) or a literal array.
    pub items: Value,
    /// Name the current item is bound to inside the body (default `item`).
    #[serde(rename = "as", default = "default_item")]
    pub bind: String,
    /// Name the current 0-based index is bound to (default `index`).
    #[serde(default = "default_index")]
    pub index_as: String,
    /// At most this many items run at once (default: no limit beyond `max_parallel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The construct fails once more than this many items failed (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u32>,
    /// The body run per item.
    #[serde(rename = "do", default)]
    pub body: Vec<StepDef>,
    /// Template of each item's result (default: the body's result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

fn default_item() -> String {
    "item".to_owned()
}

fn default_index() -> String {
    "index".to_owned()
}

/// `switch`: the first case that matches runs; the others are skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchDef {
    /// The value cases compare against with `value` (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Value>,
    /// Cases in order.
    #[serde(default)]
    pub cases: Vec<CaseDef>,
    /// Runs when no case matches (without it, no match leaves the switch's output `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Vec<StepDef>>,
}

/// One case of a `switch`: matched by `value` (equal to `on`) or by a `when` condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseDef {
    /// Matches when `on` equals this value.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Matches when this condition holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Value>,
    /// Steps run for this case.
    #[serde(rename = "do", default)]
    pub body: Vec<StepDef>,
}

/// `loop`: run `do`, then stop if `until` holds or `max_iterations` is reached.
///
/// Inside the body, `{iteration}` is the 0-based iteration and `{previous}` the previous
/// iteration's result (`null` at first), so each pass can build on the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopDef {
    /// The body run each iteration.
    #[serde(rename = "do", default)]
    pub body: Vec<StepDef>,
    /// Checked after each iteration, against the body's outputs of that iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Value>,
    /// Required upper bound on iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Template of an iteration's result (default: the body's result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// `wait`: a pause, for a duration or until a time (RFC 3339), durable across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitDef {
    /// How long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationDef>,
    /// Until when: `"2026-12-01T09:00:00Z"` or a reference to such a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// `signal`: wait for data sent to the run under `name` (e.g. a human approval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalDef {
    /// Signal name, as given to `weft signal RUN NAME`.
    #[serde(default)]
    pub name: String,
    /// How long to wait; then the step takes `default`, or fails without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationDef>,
    /// Output on timeout (the default path).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// JSON Schema the signal's data must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// `workflow`: run a registered workflow as a child and take its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubWorkflowDef {
    /// Registered name.
    #[serde(default)]
    pub name: String,
    /// Version (default: the latest registered when the step starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The child's input (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

/// `race`: scatter to every branch at once, gather one winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RaceDef {
    /// The competing branches, each a step.
    #[serde(default)]
    pub branches: Vec<StepDef>,
    /// How the winner is chosen (default `first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<Winner>,
}

/// How a race picks its winner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// The first branch to succeed wins; the others are cancelled.
    First,
    /// All branches finish; the success with the largest value at this path wins.
    Max(String),
    /// All branches finish; the success with the smallest value at this path wins.
    Min(String),
}

/// `fallback`: try each alternative in order until one succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackDef {
    /// The alternatives, each a step.
    #[serde(default)]
    pub alternatives: Vec<StepDef>,
}

/// `parallel`: run steps at once (a DAG of their own); succeed with enough successes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParallelDef {
    /// The group's steps.
    #[serde(default)]
    pub steps: Vec<StepDef>,
    /// Successes needed (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_successes: Option<u32>,
}

/// `pipeline`: stages in order; inside a stage, `{previous}` is the previous stage's
/// output (the pipeline's `input` for the first stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    /// What the first stage sees as `{previous}` (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// The stages, each a step.
    #[serde(default)]
    pub stages: Vec<StepDef>,
}

/// `plan`: a model writes a workflow for `goal` from the allowed `tools`; the coordinator
/// checks it as data (the validator, the live catalogue, the allowlist, the caps), sends
/// the problems back for repair, and runs the accepted plan as a child run whose output is
/// the step's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanDef {
    /// What the plan must achieve (a template: `"{input.goal}"`).
    #[serde(default)]
    pub goal: Value,
    /// The tools the plan may call; nothing else.
    #[serde(default)]
    pub tools: Vec<String>,
    /// The model asked (default: the worker's `WEFT_LLM_MODEL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Most steps the plan may hold, nested ones included (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Deepest nesting of constructs in the plan (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Widest fan-out: members of a `parallel`, `race` or `fallback`, and a `for_each`'s
    /// `concurrency`, which a plan must set (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    /// Times the model is shown the problems of its plan and asked again (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_repairs: Option<u32>,
    /// Wait for the plan's approval (the signal `<step id>.approve`) before running it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approve: bool,
    /// Run the accepted plan (default true); when false the step's output is the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<bool>,
    /// The planned run's input (a template; default `{}`): the plan reads it as `{input.…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}
