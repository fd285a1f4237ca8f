//! `plan` steps: a model writes a workflow, the coordinator checks it as data, the step
//! runs it as a child run.
//!
//! An instance moves through phases ([`Phase`]), each durable through the run's log:
//!
//! 1. **asking**: an attempt of the step is an `llm` task (an ordinary task, so the answer
//!    is logged and a replay never calls the model again) whose messages hold the goal,
//!    the allowed tools as function schemas, the caps, the workflow format as a JSON
//!    Schema (the structured output the answer is held to) and, for a repair, every
//!    earlier plan with its problems;
//! 2. **checking**: the answer is a [`PlanRound`]; [`Effect::CheckPlan`] has the run actor
//!    check it (the validator against the live catalogue, the allowlist, the caps) and log
//!    the verdict as [`Input::PlanChecked`], so a replay reads it instead of checking again.
//!    Problems with repairs left send the step back to asking; none left fail it with
//!    `PLAN_INVALID` and every problem;
//! 3. **approving** (with `approve`): the step waits for the signal `<path>.approve`
//!    (`true`, `{"approve": false, "reason"}`, or `{"plan": …}`, an edited plan checked
//!    again);
//! 4. **running**: the accepted plan runs as a child run (an attempt, retried as a
//!    `workflow` step's is) whose output is the step's; with `run: false` the plan itself
//!    is the output.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_lang::plan::{Kind, PlanCaps, PlanSpec};
use weft_protocol::wire::{EventKind, Millis, PlanRound, StepStatus, ToolError, codes};

use super::ids::InstId;
use super::{Effect, Ignored, Run};

/// The workflow format the planner's answer is held to.
static WORKFLOW_SCHEMA: LazyLock<Value> = LazyLock::new(weft_lang::schema::workflow_schema);

/// Where a `plan` step instance is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its attempt is a model call (or is about to be).
    #[default]
    Asking,
    /// Its last plan waits for the coordinator's check.
    Checking,
    /// Its plan is valid and waits for an approval.
    Approving,
    /// Its plan runs (or is about to) as a child run.
    Running,
}

/// A `plan` step instance's plans and phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Planning {
    /// Every plan considered, in order.
    pub rounds: Vec<PlanRound>,
    /// Where it is.
    pub phase: Phase,
}

impl Planning {
    /// The plan that was accepted, once one was.
    fn accepted(&self) -> Option<&Value> {
        self.rounds.last().filter(|r| r.checked && r.problems.is_empty()).map(|r| &r.plan)
    }

    /// Model calls that answered: attempts that were not failures.
    pub(crate) fn answered(&self) -> u32 {
        u32::try_from(self.rounds.iter().filter(|r| r.attempt > 0).count()).unwrap_or(u32::MAX)
    }
}

/// A plan for the run actor to check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlanCheck {
    /// The `plan` step instance.
    pub step: String,
    /// Which of its plans (1-based).
    pub round: u32,
    /// The plan, as written.
    pub plan: Value,
    /// The tools it may call.
    pub tools: Vec<String>,
    /// What it may hold.
    pub caps: PlanCaps,
    /// The input it will run with.
    pub input: Value,
}

/// The signal that approves instance `path`'s plan.
fn approval_signal(path: &str) -> String {
    format!("{path}.approve")
}

impl Run {
    /// Instance `i`'s `plan` spec, if it is a `plan` step.
    pub(super) fn plan_spec(&self, i: InstId) -> Option<&PlanSpec> {
        match &self.def(i).kind {
            Kind::Plan(spec) => Some(spec),
            _ => None,
        }
    }

    /// Instance `i`'s phase, if it is a `plan` step.
    pub(super) fn plan_phase(&self, i: InstId) -> Option<Phase> {
        self.plan_spec(i).map(|_| self.insts[i].state.planning.as_ref().map_or(Phase::Asking, |p| p.phase))
    }

    /// The `llm` params of instance `i`'s next model call.
    pub(super) fn planner_params(&self, i: InstId) -> Option<Value> {
        let spec = self.plan_spec(i)?;
        let request = self.insts[i].state.params.clone().unwrap_or(Value::Null);
        let functions: Vec<Value> = spec
            .tools
            .iter()
            .map(|name| match self.tools.get(name) {
                Some(tool) => function(tool),
                None => json!({"type": "function", "function": {"name": name}}),
            })
            .collect();
        let mut messages = vec![
            json!({"role": "system", "content": SYSTEM}),
            json!({"role": "user", "content": task_text(spec, &request, &functions)}),
        ];
        for round in self.insts[i].state.planning.iter().flat_map(|p| &p.rounds) {
            messages.push(json!({"role": "assistant", "content": round.plan.to_string()}));
            messages.push(json!({"role": "user", "content": repair_text(&round.problems)}));
        }
        let mut params = json!({
            "messages": messages,
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "weft_workflow", "schema": &*WORKFLOW_SCHEMA, "strict": false}},
        });
        if let (Some(model), Some(map)) = (&spec.model, params.as_object_mut()) {
            map.insert("model".into(), Value::String(model.clone()));
        }
        Some(params)
    }

    /// A model's answer to instance `i`'s attempt: a plan to check.
    pub(super) fn on_proposal(&mut self, i: InstId, plan: Value, now: Millis, out: &mut Vec<Effect>) {
        let attempt = self.insts[i].state.attempt;
        let planning = self.insts[i].state.planning.get_or_insert_with(Default::default);
        planning.rounds.push(PlanRound { attempt, plan, problems: Vec::new(), checked: false });
        planning.phase = Phase::Checking;
        let round = u32::try_from(planning.rounds.len()).unwrap_or(u32::MAX);
        let step_id = self.insts[i].path.clone();
        self.emit(out, now, EventKind::PlanProposed { step_id, attempt, round });
        if let Some(check) = self.plan_check(i) {
            out.push(Effect::CheckPlan(check));
        }
    }

    /// The check instance `i`'s last plan waits for, if it waits for one.
    pub(super) fn plan_check(&self, i: InstId) -> Option<PlanCheck> {
        let spec = self.plan_spec(i)?;
        let planning = self.insts[i].state.planning.as_ref()?;
        let round = planning.rounds.last().filter(|_| planning.phase == Phase::Checking)?;
        let params = self.insts[i].state.params.as_ref();
        Some(PlanCheck {
            step: self.insts[i].path.clone(),
            round: u32::try_from(planning.rounds.len()).unwrap_or(u32::MAX),
            plan: round.plan.clone(),
            tools: spec.tools.clone(),
            caps: spec.caps,
            input: params.and_then(|p| p.get("input")).cloned().unwrap_or(Value::Null),
        })
    }

    /// The coordinator's verdict on a plan.
    pub(super) fn on_plan_checked(
        &mut self,
        step: &str,
        round: u32,
        problems: Vec<String>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let what = || format!("check of plan {round} of `{step}`");
        let Some((i, spec)) = self.index(step).and_then(|i| Some((i, self.plan_spec(i)?.clone()))) else {
            return out.push(Effect::Ignored(Ignored::unexpected(what(), "the run has no `plan` step of that path")));
        };
        let Some(planning) = self.insts[i].state.planning.as_mut().filter(|p| p.phase == Phase::Checking) else {
            return out.push(Effect::Ignored(Ignored::stale(what(), "the step waits for no check")));
        };
        let count = planning.rounds.len();
        let Some(last) = planning.rounds.last_mut().filter(|_| usize::try_from(round).ok() == Some(count)) else {
            return out.push(Effect::Ignored(Ignored::stale(what(), "not the plan the step waits for")));
        };
        last.checked = true;
        last.problems = problems;
        let (valid, from_approver) = (last.problems.is_empty(), last.attempt == 0);
        let summary = last.problems.join("; ");
        let asked = planning.answered();
        if valid {
            if spec.approve && !from_approver {
                // Running, with no attempt in flight: it waits for its approval signal.
                return self.set_phase(i, Phase::Approving);
            }
            self.set_phase(i, Phase::Running);
            return self.run_plan(i, &spec, now, out);
        }
        if !from_approver && asked <= spec.max_repairs {
            // Asked again, with the problems.
            self.set_phase(i, Phase::Asking);
            return self.next_attempt(i);
        }
        let message = if from_approver {
            format!("the plan the approver sent is invalid: {summary}")
        } else {
            format!("the model's plan is still invalid after {} repair(s): {summary}", asked.saturating_sub(1))
        };
        self.fail_inst(i, ToolError::new(message).with_code(codes::PLAN_INVALID).permanent(), now, out);
    }

    fn set_phase(&mut self, i: InstId, phase: Phase) {
        self.insts[i].state.planning.get_or_insert_with(Default::default).phase = phase;
    }

    /// Runs the accepted plan (or, with `run: false`, completes with it).
    fn run_plan(&mut self, i: InstId, spec: &PlanSpec, now: Millis, out: &mut Vec<Effect>) {
        if !spec.run {
            let plan = self.accepted_plan(i).cloned().unwrap_or(Value::Null);
            let worker = "coordinator".to_owned();
            return self.complete_inst(i, plan, worker, now, out);
        }
        // In the running phase, its next attempt is the child run.
        self.next_attempt(i);
    }

    /// Instance `i` is pending again: its frame starts its next attempt, as its phase says.
    fn next_attempt(&mut self, i: InstId) {
        self.insts[i].state.status = StepStatus::Pending;
        self.dirty.insert(self.insts[i].frame);
    }

    /// Instance `i`'s accepted plan.
    pub(super) fn accepted_plan(&self, i: InstId) -> Option<&Value> {
        self.insts[i].state.planning.as_deref().and_then(Planning::accepted)
    }

    /// A signal for a `plan` step waiting for its approval; false if none waits for `name`.
    pub(super) fn on_approval(&mut self, name: &str, data: &Value, now: Millis, out: &mut Vec<Effect>) -> bool {
        let Some(i) = self.inst_ids().find(|&i| {
            self.plan_phase(i) == Some(Phase::Approving)
                && self.insts[i].state.status == StepStatus::Running
                && approval_signal(&self.insts[i].path) == name
        }) else {
            return false;
        };
        let Some(spec) = self.plan_spec(i).cloned() else { return false };
        self.emit(out, now, EventKind::SignalReceived { name: name.to_owned() });
        if let Some(edited) = data.get("plan") {
            let planning = self.insts[i].state.planning.get_or_insert_with(Default::default);
            planning.rounds.push(PlanRound { attempt: 0, plan: edited.clone(), problems: Vec::new(), checked: false });
            planning.phase = Phase::Checking;
            if let Some(check) = self.plan_check(i) {
                out.push(Effect::CheckPlan(check));
            }
            return true;
        }
        let approved = data.as_bool().or_else(|| data.get("approve").and_then(Value::as_bool)).unwrap_or(false);
        if approved {
            self.set_phase(i, Phase::Running);
            self.run_plan(i, &spec, now, out);
        } else {
            let reason = data.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
            let error = ToolError::new(format!("the plan was not approved: {reason}"))
                .with_code(codes::PLAN_INVALID)
                .permanent();
            self.fail_inst(i, error, now, out);
        }
        true
    }

    /// The approval signals `plan` steps may wait for, with their schema.
    pub(super) fn approval_signals(&self) -> Vec<(String, Value)> {
        self.inst_ids()
            .filter(|&i| self.plan_spec(i).is_some_and(|s| s.approve))
            .map(|i| (approval_signal(&self.insts[i].path), approval_schema()))
            .collect()
    }
}

/// What an approval carries.
fn approval_schema() -> Value {
    json!({"anyOf": [
        {"type": "boolean"},
        {"type": "object", "properties": {"approve": {"type": "boolean"}, "reason": {"type": "string"}},
         "required": ["approve"]},
        {"type": "object", "properties": {"plan": {"type": "object"}}, "required": ["plan"]}
    ]})
}

/// A tool as an OpenAI function schema.
fn function(tool: &ToolSpec) -> Value {
    json!({"type": "function", "function": {
        "name": tool.name, "description": tool.description, "parameters": tool.params}})
}

const SYSTEM: &str = "You plan workflows for Weft, a workflow engine. You answer with one JSON document: a Weft \
workflow that achieves the user's goal, following the JSON Schema you are given, and nothing else (no prose, no \
Markdown). A workflow has a `name`, `steps` and an `output`. A step has a unique `id` and calls one `tool` with \
`params`, or is a construct (`for_each`, `switch`, `loop`, `parallel`, `race`, `fallback`, `pipeline`, `wait`). \
Params are templates: \"{input.x}\" reads the run's input, \"{step_id.field}\" reads an earlier step's output; a \
string that is exactly one reference keeps the value's type, and references inside text are written into it. \
References order the steps; steps that do not reference each other run in parallel. A step's `when` is a \
condition such as {\"gt\": [\"{weather.temp}\", 30]} or {\"eq\": [\"{weather.condition}\", \"rain\"]}; a step whose \
condition is false is skipped and reads as null. Call only the tools you are given, with params that fit their \
schemas.";

fn task_text(spec: &PlanSpec, request: &Value, functions: &[Value]) -> String {
    let goal = match request.get("goal") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let input = request.get("input").cloned().unwrap_or(Value::Null);
    let caps = spec.caps;
    format!(
        "Goal: {goal}\n\nThe run's input (read it as {{input.…}}): {input}\n\nTools you may call, as function \
         schemas (their `parameters` are the step's `params`):\n{}\n\nLimits: at most {} steps in all, constructs \
         nested at most {} deep, at most {} members in a parallel, race or fallback, and every for_each sets a \
         `concurrency` of at most {}. Write the workflow.",
        Value::Array(functions.to_vec()),
        caps.max_steps,
        caps.max_depth,
        caps.max_width,
        caps.max_width,
    )
}

fn repair_text(problems: &[String]) -> String {
    format!("That workflow cannot run. Its problems:\n- {}\nWrite the whole corrected workflow.", problems.join("\n- "))
}
