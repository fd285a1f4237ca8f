//! A step as written: an id, exactly one thing to do (a tool call or a construct), and
//! the settings every step shares.
//!
//! The kind of a step is given by which key it carries: `tool` (with `params`), or one of
//! `for_each`, `switch`, `loop`, `wait`, `signal`, `workflow`, `race`, `fallback`,
//! `parallel`, `pipeline`, `plan`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::constructs::{
    FallbackDef, ForEachDef, LoopDef, ParallelDef, PipelineDef, PlanDef, RaceDef, SignalDef, SubWorkflowDef, SwitchDef,
    WaitDef,
};
use super::{DurationDef, RetryDef};

/// One step of a workflow (or of a construct's body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub struct StepDef {
    /// Unique id across the whole workflow; other steps reference its output by it.
    pub id: String,
    /// What the step does.
    pub kind: StepKindDef,
    /// Steps that must be finished (completed, failed or skipped) before this one starts,
    /// beyond those its references imply.
    pub depends_on: Vec<String>,
    /// The step runs only if this condition holds; otherwise it is skipped.
    pub when: Option<Value>,
    /// Retry policy (default: the workflow's `defaults.retry`, else one attempt).
    pub retry: Option<RetryDef>,
    /// Time limit of one attempt.
    pub timeout: Option<DurationDef>,
    /// The tool call that undoes this step, run by the saga under `on_failure: compensate`.
    pub compensate: Option<CompensateDef>,
    /// A failure of this step does not fail the run; its output becomes `{"error": ...}`.
    pub continue_on_error: bool,
    /// Named resource pools this step holds while it runs (`{"gpu": 1}`).
    pub resources: BTreeMap<String, u32>,
    /// Among ready steps, higher priority is dispatched first (default 0).
    pub priority: i32,
    /// Expected duration, for critical-path analysis.
    pub estimate: Option<DurationDef>,
    /// What the step is for.
    pub description: Option<String>,
}

impl JsonSchema for StepDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // A step is read through its flat shape.
        RawStep::json_schema(generator)
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKindDef {
    /// Call a tool on a worker.
    Task {
        /// Tool name.
        tool: String,
        /// Params, a template resolved when the step is ready.
        params: Value,
    },
    /// Map a body over a list.
    ForEach(ForEachDef),
    /// Take the first case that matches.
    Switch(SwitchDef),
    /// Repeat a body until a condition holds.
    Loop(LoopDef),
    /// Wait for a duration or until a time.
    Wait(WaitDef),
    /// Wait for an external signal.
    Signal(SignalDef),
    /// Run another registered workflow.
    Workflow(SubWorkflowDef),
    /// Run branches at once; one wins.
    Race(RaceDef),
    /// Try alternatives in order until one succeeds.
    Fallback(FallbackDef),
    /// Run steps at once; succeed with enough successes.
    Parallel(ParallelDef),
    /// Run stages in order, each fed the previous stage's output.
    Pipeline(PipelineDef),
    /// Have a model write a workflow, check it, and run it.
    Plan(PlanDef),
}

impl StepKindDef {
    /// The key that names this kind in JSON.
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKindDef::Task { .. } => "tool",
            StepKindDef::ForEach(_) => "for_each",
            StepKindDef::Switch(_) => "switch",
            StepKindDef::Loop(_) => "loop",
            StepKindDef::Wait(_) => "wait",
            StepKindDef::Signal(_) => "signal",
            StepKindDef::Workflow(_) => "workflow",
            StepKindDef::Race(_) => "race",
            StepKindDef::Fallback(_) => "fallback",
            StepKindDef::Parallel(_) => "parallel",
            StepKindDef::Pipeline(_) => "pipeline",
            StepKindDef::Plan(_) => "plan",
        }
    }
}

/// A compensating tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompensateDef {
    /// Tool that undoes the step.
    pub tool: String,
    /// Params; may reference the compensated step's own output and anything upstream.
    #[serde(default = "empty_object")]
    pub params: Value,
    /// Retry policy of the compensation (default: 3 attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// Time limit of one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationDef>,
}

pub(crate) fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Deserialises a field whose explicit `null` must differ from its absence.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `"a"` or `["a", "b"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One step: an `id` and exactly one of `tool` (with `params`), `for_each`, `switch`,
/// `loop`, `wait`, `signal`, `workflow`, `race`, `fallback`, `parallel`, `pipeline`; the
/// other fields are settings every step shares.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Step")]
#[serde(deny_unknown_fields)]
struct RawStep {
    /// Unique id across the workflow; later steps read its output as `{id.field}`.
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What the step is for.
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The tool to call (a tool step).
    tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The tool's params: a template whose `{step.path}` references are resolved when the step is ready.
    params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run a body once per item of a list.
    for_each: Option<ForEachDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run the first case that matches.
    switch: Option<SwitchDef>,
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    /// Repeat a body until a condition holds.
    loop_: Option<LoopDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Pause for a duration or until a time.
    wait: Option<WaitDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Wait for data sent to the run (e.g. a human approval).
    signal: Option<SignalDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run a registered workflow as a child run.
    workflow: Option<SubWorkflowDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run branches at once; one wins.
    race: Option<RaceDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Try alternatives in order until one succeeds.
    fallback: Option<FallbackDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run steps at once; succeed with enough successes.
    parallel: Option<ParallelDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run stages in order, each fed the previous stage's output as `{previous}`.
    pipeline: Option<PipelineDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Have a model write a workflow for a goal from allowed tools; it is checked, then run.
    plan: Option<PlanDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Steps that must finish first, beyond those its references imply.
    depends_on: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run only if this condition holds, else the step is skipped: e.g. `{"gt": ["{weather.temp}", 30]}`;
    /// leaves `eq ne gt gte lt lte in contains` (two operands), `exists`, `is_null` (one
    /// reference), `matches` (a value and a regex); `all`, `any`, `not` combine.
    when: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Retry policy (default: the workflow's `defaults.retry`, else one attempt).
    retry: Option<RetryDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Time limit of one attempt.
    timeout: Option<DurationDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The tool call that undoes this step when the saga compensates.
    compensate: Option<CompensateDef>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    /// A failure of this step does not fail the run; its output becomes `{"error": ...}`.
    continue_on_error: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    /// Units of named resource pools the step holds while it runs (`{"gpu": 1}`).
    resources: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "is_zero")]
    /// Among ready steps, higher priority is dispatched first (default 0).
    priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Expected duration, for critical-path analysis.
    estimate: Option<DurationDef>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

const KINDS: &str = "tool, for_each, switch, loop, wait, signal, workflow, race, fallback, parallel, pipeline, plan";

impl TryFrom<RawStep> for StepDef {
    type Error = String;

    fn try_from(raw: RawStep) -> Result<StepDef, String> {
        let id = raw.id;
        let mut kinds: Vec<StepKindDef> = Vec::new();
        if let Some(tool) = raw.tool {
            kinds.push(StepKindDef::Task { tool, params: raw.params.clone().unwrap_or_else(empty_object) });
        }
        kinds.extend(raw.for_each.map(StepKindDef::ForEach));
        kinds.extend(raw.switch.map(StepKindDef::Switch));
        kinds.extend(raw.loop_.map(StepKindDef::Loop));
        kinds.extend(raw.wait.map(StepKindDef::Wait));
        kinds.extend(raw.signal.map(StepKindDef::Signal));
        kinds.extend(raw.workflow.map(StepKindDef::Workflow));
        kinds.extend(raw.race.map(StepKindDef::Race));
        kinds.extend(raw.fallback.map(StepKindDef::Fallback));
        kinds.extend(raw.parallel.map(StepKindDef::Parallel));
        kinds.extend(raw.pipeline.map(StepKindDef::Pipeline));
        kinds.extend(raw.plan.map(StepKindDef::Plan));
        if raw.params.is_some() && !matches!(kinds.first(), Some(StepKindDef::Task { .. })) {
            return Err(format!("step `{id}` has `params` but no `tool`"));
        }
        let kind = match kinds.len() {
            1 => kinds.remove(0),
            0 => return Err(format!("step `{id}` does nothing: give it one of {KINDS}")),
            _ => {
                let names: Vec<&str> = kinds.iter().map(StepKindDef::keyword).collect();
                return Err(format!(
                    "step `{id}` has both {}; a step does exactly one thing (nest steps instead)",
                    names.join(" and ")
                ));
            }
        };
        Ok(StepDef {
            id,
            kind,
            depends_on: match raw.depends_on {
                None => Vec::new(),
                Some(OneOrMany::One(s)) => vec![s],
                Some(OneOrMany::Many(v)) => v,
            },
            when: raw.when,
            retry: raw.retry,
            timeout: raw.timeout,
            compensate: raw.compensate,
            continue_on_error: raw.continue_on_error,
            resources: raw.resources,
            priority: raw.priority,
            estimate: raw.estimate,
            description: raw.description,
        })
    }
}

impl From<StepDef> for RawStep {
    fn from(step: StepDef) -> RawStep {
        let mut raw = RawStep {
            id: step.id,
            description: step.description,
            tool: None,
            params: None,
            for_each: None,
            switch: None,
            loop_: None,
            wait: None,
            signal: None,
            workflow: None,
            race: None,
            fallback: None,
            parallel: None,
            pipeline: None,
            plan: None,
            depends_on: (!step.depends_on.is_empty()).then_some(OneOrMany::Many(step.depends_on)),
            when: step.when,
            retry: step.retry,
            timeout: step.timeout,
            compensate: step.compensate,
            continue_on_error: step.continue_on_error,
            resources: step.resources,
            priority: step.priority,
            estimate: step.estimate,
        };
        match step.kind {
            StepKindDef::Task { tool, params } => {
                raw.tool = Some(tool);
                raw.params = Some(params);
            }
            StepKindDef::ForEach(x) => raw.for_each = Some(x),
            StepKindDef::Switch(x) => raw.switch = Some(x),
            StepKindDef::Loop(x) => raw.loop_ = Some(x),
            StepKindDef::Wait(x) => raw.wait = Some(x),
            StepKindDef::Signal(x) => raw.signal = Some(x),
            StepKindDef::Workflow(x) => raw.workflow = Some(x),
            StepKindDef::Race(x) => raw.race = Some(x),
            StepKindDef::Fallback(x) => raw.fallback = Some(x),
            StepKindDef::Parallel(x) => raw.parallel = Some(x),
            StepKindDef::Pipeline(x) => raw.pipeline = Some(x),
            StepKindDef::Plan(x) => raw.plan = Some(x),
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<StepDef, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn kind_comes_from_its_key() {
        let s = parse(r#"{"id": "a", "tool": "echo", "depends_on": "b"}"#).expect("task");
        assert_eq!(s.kind, StepKindDef::Task { tool: "echo".into(), params: empty_object() });
        assert_eq!(s.depends_on, ["b"]);
        let s = parse(r#"{"id": "w", "wait": {"duration": "5s"}}"#).expect("wait");
        assert_eq!(s.kind.keyword(), "wait");
    }

    #[test]
    fn exactly_one_kind() {
        let e = parse(r#"{"id": "a", "tool": "echo", "wait": {"duration": "1s"}}"#).expect_err("two kinds");
        assert!(e.contains("step `a` has both tool and wait"), "{e}");
        let e = parse(r#"{"id": "a"}"#).expect_err("no kind");
        assert!(e.contains("does nothing"), "{e}");
        let e = parse(r#"{"id": "a", "params": {}, "loop": {"do": []}}"#).expect_err("params without tool");
        assert!(e.contains("`params` but no `tool`"), "{e}");
    }
}
