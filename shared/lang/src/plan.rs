//! Plans: validated workflows, in the form the coordinator executes and analysis reads.
//!
//! A [`Plan`] is only made by [`crate::validate::compile`], so holding one means every
//! reference, condition, duration and dependency in it was checked. Templates and
//! conditions are parsed; durations are [`Duration`]s; each step knows its dependencies
//! by kind, which is what the skip rule needs:
//!
//! - `needs`: steps whose output the step reads in its params or construct inputs
//!   (a *data* dependency). If one of them was skipped, the step is skipped too.
//! - `watches`: steps read only by its `when` condition. A skipped one reads as absent
//!   (`exists` false), so a step can run *because* another was skipped (an else-branch).
//! - `after`: explicit `depends_on`. Pure ordering: any terminal state will do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::condition::Condition;
use crate::definition::{FailurePolicy, Winner, WorkflowDef};
use crate::reference::Template;
use crate::validate::{Code, Problem};

/// A validated workflow.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Workflow name.
    pub name: String,
    /// Definition version.
    pub version: u32,
    /// JSON Schema of the input, if any.
    pub input_schema: Option<Value>,
    /// The input schema, compiled once (every run of the plan checks its input with it).
    pub input_check: Option<Arc<jsonschema::Validator>>,
    /// Top-level steps, in document order.
    pub steps: Vec<Step>,
    /// Template of the run's result.
    pub output: Option<Template>,
    /// Run time limit.
    pub timeout: Option<Duration>,
    /// Concurrency limit of the run.
    pub max_parallel: Option<u32>,
    /// What a failure does.
    pub on_failure: FailurePolicy,
    /// The definition this plan was compiled from (what is stored and sent).
    pub source: WorkflowDef,
    /// What the run may spend on models.
    pub budget: Option<crate::definition::Budget>,
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Unique id.
    pub id: String,
    /// What it does.
    pub kind: Kind,
    /// Sibling steps whose output it reads (data dependencies).
    pub needs: BTreeSet<String>,
    /// Sibling steps read only by its condition.
    pub watches: BTreeSet<String>,
    /// Sibling steps it was told to follow (`depends_on`).
    pub after: BTreeSet<String>,
    /// Run only if this holds.
    pub when: Option<Condition>,
    /// Retry policy of each attempt.
    pub retry: RetryPolicy,
    /// Time limit of one attempt.
    pub timeout: Option<Duration>,
    /// Undo action for the saga.
    pub compensate: Option<Compensation>,
    /// Failure does not fail the run.
    pub continue_on_error: bool,
    /// Resource pools held while running.
    pub resources: BTreeMap<String, u32>,
    /// Dispatch priority among ready steps.
    pub priority: i32,
    /// Declared expected duration.
    pub estimate: Option<Duration>,
}

/// How a dependency ended, as far as the skip rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepState {
    /// Not finished yet.
    Unfinished,
    /// Produced an output (a failure under `continue_on_error` counts: its output is the error).
    Completed,
    /// Did not run.
    Skipped,
    /// Failed for good (the run goes on only under `on_failure: continue`).
    Failed,
}

/// What to do with a pending step, by the skip rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A dependency is unfinished.
    Wait,
    /// The step cannot run: a step whose output it needs has none.
    Skip(String),
    /// Every dependency is finished: evaluate `when` (skipped steps read as absent), then run.
    Go,
}

impl Step {
    /// Applies the skip rule: wait for every dependency; skip if a step whose output this
    /// one *needs* was skipped or failed; otherwise go. Steps read only by `when` and
    /// steps followed by `depends_on` never skip this one by themselves.
    pub fn gate(&self, state: impl Fn(&str) -> DepState) -> Gate {
        if self.dependencies().into_iter().any(|d| state(d) == DepState::Unfinished) {
            return Gate::Wait;
        }
        for need in &self.needs {
            match state(need) {
                DepState::Skipped => return Gate::Skip(format!("it needs the output of `{need}`, which was skipped")),
                DepState::Failed => return Gate::Skip(format!("it needs the output of `{need}`, which failed")),
                DepState::Completed | DepState::Unfinished => {}
            }
        }
        Gate::Go
    }

    /// Every sibling this step waits for, of any kind, sorted and without repeats.
    pub fn dependencies(&self) -> BTreeSet<&str> {
        self.needs.iter().chain(&self.watches).chain(&self.after).map(String::as_str).collect()
    }

    /// The tool this step calls, if it is a task.
    pub fn tool(&self) -> Option<&str> {
        match &self.kind {
            Kind::Task { tool, .. } => Some(tool),
            _ => None,
        }
    }

    /// Nested step list `n` of a construct (numbered as [`Step::children`] lists them:
    /// a switch's cases in order, then its default), without allocating.
    pub fn body(&self, n: usize) -> Option<&[Step]> {
        match &self.kind {
            Kind::Task { .. } | Kind::Wait(_) | Kind::Signal { .. } | Kind::SubWorkflow { .. } | Kind::Plan(_) => None,
            Kind::ForEach { body, .. } | Kind::Loop { body, .. } => (n == 0).then_some(body.as_slice()),
            Kind::Switch { cases, default, .. } => match cases.get(n) {
                Some(case) => Some(&case.body),
                None if n == cases.len() => default.as_deref(),
                None => None,
            },
            Kind::Race { branches: steps, .. }
            | Kind::Fallback { alternatives: steps }
            | Kind::Parallel { steps, .. }
            | Kind::Pipeline { stages: steps, .. } => (n == 0).then_some(steps.as_slice()),
        }
    }

    /// Whether the step runs inside the coordinator as a construct over nested steps.
    pub fn is_construct(&self) -> bool {
        !matches!(
            self.kind,
            Kind::Task { .. } | Kind::Wait(_) | Kind::Signal { .. } | Kind::SubWorkflow { .. } | Kind::Plan(_)
        )
    }

    /// Nested step lists (bodies, branches...), for walking the whole tree.
    pub fn children(&self) -> Vec<&[Step]> {
        match &self.kind {
            Kind::Task { .. } | Kind::Wait(_) | Kind::Signal { .. } | Kind::SubWorkflow { .. } | Kind::Plan(_) => {
                Vec::new()
            }
            Kind::ForEach { body, .. } | Kind::Loop { body, .. } => vec![body],
            Kind::Switch { cases, default, .. } => {
                cases.iter().map(|c| c.body.as_slice()).chain(default.as_deref()).collect()
            }
            Kind::Race { branches: steps, .. }
            | Kind::Fallback { alternatives: steps }
            | Kind::Parallel { steps, .. }
            | Kind::Pipeline { stages: steps, .. } => vec![steps],
        }
    }
}

/// What a validated step does.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Call a tool.
    Task {
        /// Tool name.
        tool: String,
        /// Params template.
        params: Template,
    },
    /// Map a body over a list.
    ForEach {
        /// The list.
        items: Template,
        /// Name of the bound item.
        bind: String,
        /// Name of the bound index.
        index_bind: String,
        /// Items at once.
        concurrency: Option<u32>,
        /// Failures tolerated.
        max_failures: u32,
        /// Per-item body.
        body: Vec<Step>,
        /// Per-item result template.
        output: Option<Template>,
    },
    /// First matching case runs.
    Switch {
        /// Value compared by `value` cases.
        on: Option<Template>,
        /// Cases in order.
        cases: Vec<Case>,
        /// Runs when none matches.
        default: Option<Vec<Step>>,
    },
    /// Repeat until.
    Loop {
        /// Per-iteration body.
        body: Vec<Step>,
        /// Stop condition, checked after each iteration.
        until: Condition,
        /// Iteration bound.
        max_iterations: u32,
        /// Per-iteration result template.
        output: Option<Template>,
    },
    /// Pause.
    Wait(WaitFor),
    /// Wait for an external signal.
    Signal {
        /// Signal name.
        name: String,
        /// How long to wait.
        timeout: Option<Duration>,
        /// Output on timeout.
        default: Option<Value>,
        /// Schema of the signal's data.
        schema: Option<Value>,
    },
    /// Child workflow.
    SubWorkflow {
        /// Registered name.
        name: String,
        /// Version, latest if none.
        version: Option<u32>,
        /// Input template.
        input: Template,
    },
    /// First (or best) success wins.
    Race {
        /// Competing branches.
        branches: Vec<Step>,
        /// Winner rule.
        winner: Winner,
    },
    /// Alternatives in order.
    Fallback {
        /// The alternatives.
        alternatives: Vec<Step>,
    },
    /// Group with a success threshold.
    Parallel {
        /// The group's steps.
        steps: Vec<Step>,
        /// Successes needed.
        min_successes: u32,
    },
    /// Stages fed one into the next.
    Pipeline {
        /// First stage's `{previous}`.
        input: Option<Template>,
        /// The stages.
        stages: Vec<Step>,
    },
    /// A workflow a model writes, checked, then run as a child.
    Plan(Box<PlanSpec>),
}

/// The tool a `plan` step asks for its plans.
pub const PLANNER_TOOL: &str = "llm";

/// A validated `plan` step.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpec {
    /// `{"goal": …, "input": …}`, resolved when the step is ready.
    pub request: Template,
    /// The tools the plan may call.
    pub tools: Vec<String>,
    /// The model asked, if the step names one.
    pub model: Option<String>,
    /// What the plan may hold.
    pub caps: PlanCaps,
    /// Times the model may repair its plan.
    pub max_repairs: u32,
    /// Wait for approval before running it.
    pub approve: bool,
    /// Run it (else the step's output is the plan).
    pub run: bool,
}

/// The bounds a model-written plan must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanCaps {
    /// Steps, nested ones included.
    pub max_steps: u32,
    /// Nesting of constructs.
    pub max_depth: u32,
    /// Members of a `parallel`, `race` or `fallback`; a `for_each`'s `concurrency`.
    pub max_width: u32,
}

impl Default for PlanCaps {
    fn default() -> PlanCaps {
        PlanCaps { max_steps: 20, max_depth: 3, max_width: 10 }
    }
}

impl Kind {
    /// The JSON keyword of this kind.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::Task { .. } => "tool",
            Kind::ForEach { .. } => "for_each",
            Kind::Switch { .. } => "switch",
            Kind::Loop { .. } => "loop",
            Kind::Wait(_) => "wait",
            Kind::Signal { .. } => "signal",
            Kind::SubWorkflow { .. } => "workflow",
            Kind::Race { .. } => "race",
            Kind::Fallback { .. } => "fallback",
            Kind::Parallel { .. } => "parallel",
            Kind::Pipeline { .. } => "pipeline",
            Kind::Plan(_) => "plan",
        }
    }
}

/// A switch case.
#[derive(Debug, Clone)]
pub struct Case {
    /// How the case matches.
    pub matcher: CaseMatch,
    /// Steps it runs.
    pub body: Vec<Step>,
}

/// How a switch case matches.
#[derive(Debug, Clone)]
pub enum CaseMatch {
    /// `on` equals this value.
    Value(Value),
    /// This condition holds.
    When(Condition),
}

/// What a wait waits for.
#[derive(Debug, Clone)]
pub enum WaitFor {
    /// A fixed duration.
    Duration(Duration),
    /// A time (RFC 3339), possibly from a reference.
    Until(Template),
}

/// A compensating call.
#[derive(Debug, Clone)]
pub struct Compensation {
    /// Tool name.
    pub tool: String,
    /// Params template (may reference the compensated step's output).
    pub params: Template,
    /// Its own retry policy.
    pub retry: RetryPolicy,
    /// Time limit of one attempt.
    pub timeout: Option<Duration>,
}

/// A resolved retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1 means no retry).
    pub max_attempts: u32,
    /// First delay.
    pub backoff: Duration,
    /// Growth per retry.
    pub multiplier: f64,
    /// Cap on the delay.
    pub max_backoff: Duration,
    /// Fraction of the delay randomised away (0..=1).
    pub jitter: f64,
    /// Codes never retried.
    pub non_retryable: BTreeSet<String>,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> RetryPolicy {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::standard() }
    }

    /// The policy a bare `"retry": {}` means: 3 attempts, 200ms doubling to 30s, 20% jitter.
    pub fn standard() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_millis(200),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
            non_retryable: BTreeSet::new(),
        }
    }

    /// Whether a failure with `code` on attempt `attempt` (1-based) gets another attempt.
    pub fn should_retry(&self, attempt: u32, code: Option<&str>) -> bool {
        attempt < self.max_attempts && !code.is_some_and(|c| self.non_retryable.contains(c))
    }

    /// Delay after failed attempt `attempt` (1-based); `unit` in `[0, 1)` draws the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let raw = self.backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = raw.min(self.max_backoff.as_secs_f64());
        let jittered = capped * (1.0 - self.jitter * unit.clamp(0.0, 1.0));
        // Saturating: a definition may ask for a backoff of centuries.
        Duration::try_from_secs_f64(jittered.max(0.0)).unwrap_or(Duration::MAX)
    }
}

impl Plan {
    /// What is wrong with `input` by the workflow's `input_schema` (nothing if it has none),
    /// each problem at its place under `input`.
    pub fn check_input(&self, input: &Value) -> Vec<Problem> {
        let Some(validator) = &self.input_check else { return Vec::new() };
        validator
            .iter_errors(input)
            .map(|e| Problem {
                path: format!("input{}", e.instance_path().as_str().replace('/', ".")),
                step: None,
                code: Code::InvalidValue,
                message: e.to_string(),
            })
            .collect()
    }

    /// Every step at every depth, parents before their children.
    pub fn all_steps(&self) -> Vec<&Step> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for s in steps {
                out.push(s);
                for child in s.children() {
                    walk(child, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }

    /// The top-level step called `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The top-level step `id` and every top-level step that waits for it, directly or
    /// not (by data, condition or `depends_on`): what runs again when a run is rerun from
    /// `id`. `None` if there is no top-level step `id`.
    pub fn downstream(&self, id: &str) -> Option<BTreeSet<&str>> {
        let mut found: BTreeSet<&str> = BTreeSet::from([self.step(id)?.id.as_str()]);
        loop {
            let more: Vec<&str> = self
                .steps
                .iter()
                .filter(|s| !found.contains(s.id.as_str()) && s.dependencies().iter().any(|d| found.contains(d)))
                .map(|s| s.id.as_str())
                .collect();
            if more.is_empty() {
                return Some(found);
            }
            found.extend(more);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::reference::Context;

    #[test]
    fn downstream_follows_every_kind_of_dependency() {
        let def = crate::definition::WorkflowDef::from_json(
            r#"{"name": "d", "steps": [
                {"id": "a", "tool": "t"},
                {"id": "b", "tool": "t", "params": {"x": "{a}"}},
                {"id": "c", "tool": "t", "when": {"exists": "{b.x}"}},
                {"id": "d", "tool": "t", "depends_on": ["c"]},
                {"id": "e", "tool": "t"}
            ]}"#,
        )
        .expect("parses");
        let plan = crate::validate::compile(&def, None).expect("valid");
        assert_eq!(plan.downstream("b"), Some(BTreeSet::from(["b", "c", "d"])));
        assert_eq!(plan.downstream("e"), Some(BTreeSet::from(["e"])));
        assert_eq!(plan.downstream("nope"), None);
    }

    /// The skip rule, exhaustively over one dependency of each kind.
    #[test]
    fn skip_rule() {
        let def = WorkflowDef::from_json(
            &json!({"name": "skip", "steps": [
                {"id": "premium", "tool": "t", "when": {"eq": ["{input.tier}", "gold"]}},
                {"id": "data", "tool": "t", "params": {"level": "{premium.level}"}},
                {"id": "else", "tool": "t", "when": {"not": {"exists": "{premium}"}}},
                {"id": "join", "tool": "t", "depends_on": ["premium"]}
            ]})
            .to_string(),
        )
        .expect("parses");
        let plan = crate::validate::compile(&def, None).expect("valid");
        let [_, data, else_, join] = [0, 1, 2, 3].map(|i| &plan.steps[i]);
        use DepState::*;
        let with = |s: DepState| move |_: &str| s;
        // Unfinished: everyone waits.
        for step in [data, else_, join] {
            assert_eq!(step.gate(with(Unfinished)), Gate::Wait);
        }
        // Skipped: the step needing its data is skipped; the others go.
        assert!(matches!(data.gate(with(Skipped)), Gate::Skip(r) if r.contains("`premium`, which was skipped")));
        assert_eq!(else_.gate(with(Skipped)), Gate::Go);
        assert_eq!(join.gate(with(Skipped)), Gate::Go);
        // Failed (policy `continue`): same as skipped for data, ordering still joins.
        assert!(matches!(data.gate(with(Failed)), Gate::Skip(r) if r.contains("which failed")));
        assert_eq!(join.gate(with(Failed)), Gate::Go);
        // Completed: everyone goes.
        for step in [data, else_, join] {
            assert_eq!(step.gate(with(Completed)), Gate::Go);
        }
        // The else-branch's condition sees a skipped step as absent.
        let mut ctx = Context::with_input(json!({"tier": "silver"}));
        ctx.skip("premium");
        let when = else_.when.as_ref().expect("condition");
        assert_eq!(when.eval(&ctx), Ok(true));
        ctx.skipped.clear();
        ctx.set("premium", json!({"level": 3}));
        assert_eq!(when.eval(&ctx), Ok(false));
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = RetryPolicy { max_backoff: Duration::from_secs(1), ..RetryPolicy::standard() };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(p.delay(10, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(160));
        assert!(p.should_retry(1, None));
        assert!(!p.should_retry(3, None));
        let strict = RetryPolicy { non_retryable: ["INVALID".to_owned()].into(), ..p };
        assert!(!strict.should_retry(1, Some("INVALID")));
        // A cap of centuries and a huge multiplier saturate instead of overflowing.
        let huge = RetryPolicy { max_backoff: Duration::MAX, multiplier: 1e300, ..RetryPolicy::standard() };
        assert_eq!(huge.delay(u32::MAX, 0.0), Duration::MAX);
    }
}
