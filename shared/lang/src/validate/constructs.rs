//! Compiling each construct's parts: bodies in frames of their own, bindings, the parts
//! whose absence is a mistake.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::Code;
use super::scope::BUILTINS;
use super::step::{At, Compiler, DepKind, Deps};
use crate::definition::{CaseDef, PlanDef, StepDef, StepKindDef, Winner};
use crate::plan::{Case, CaseMatch, Kind, PLANNER_TOOL, PlanCaps, PlanSpec, Step, WaitFor};
use crate::reference::{Path, Template, is_ident};

impl Compiler<'_> {
    pub(super) fn kind(&mut self, def: &StepDef, path: &str, deps: &mut Deps) -> Kind {
        let id = def.id.as_str();
        let need = DepKind::Need;
        match &def.kind {
            StepKindDef::Task { tool, params } => {
                self.tool(tool, params, path, id);
                let at = format!("{path}.params");
                let params = self.template(params, At { path: &at, step: id }, need, deps);
                Kind::Task { tool: tool.clone(), params }
            }
            StepKindDef::ForEach(f) => {
                let at = format!("{path}.for_each");
                let items_at = format!("{at}.items");
                let items = self.template(&f.items, At { path: &items_at, step: id }, need, deps);
                match &items {
                    Template::Ref(_) | Template::Literal(Value::Array(_)) | Template::Array(_) => {}
                    _ => self.sink.push(
                        &items_at,
                        Some(id),
                        Code::InvalidValue,
                        "items must be a list: a reference such as \"{search.results}\" or an array",
                    ),
                }
                for (name, field) in [(&f.bind, "as"), (&f.index_as, "index_as")] {
                    if !is_ident(name) || BUILTINS.contains(&name.as_str()) {
                        self.sink.push(
                            format!("{at}.{field}"),
                            Some(id),
                            Code::InvalidId,
                            format!("`{name}` cannot be bound"),
                        );
                    }
                }
                if f.concurrency == Some(0) {
                    self.sink.push(format!("{at}.concurrency"), Some(id), Code::InvalidValue, "must be at least 1");
                }
                if f.body.is_empty() {
                    self.missing(format!("{at}.do"), id, "`for_each` needs a `do` with at least one step");
                }
                let binds = [f.bind.as_str(), f.index_as.as_str()];
                let body = self.body(&f.body, &format!("{at}.do"), id, &binds, deps);
                let output = f.output.as_ref().map(|o| {
                    self.in_body_scope(&f.body, id, &binds, deps, |cx| {
                        let at = format!("{at}.output");
                        let t = cx.sink.template(o, &at, Some(id));
                        let refs = t.references().into_iter().cloned().collect();
                        (t, refs, at)
                    })
                });
                Kind::ForEach {
                    items,
                    bind: f.bind.clone(),
                    index_bind: f.index_as.clone(),
                    concurrency: f.concurrency,
                    max_failures: f.max_failures.unwrap_or(0),
                    body,
                    output,
                }
            }
            StepKindDef::Switch(s) => {
                let at = format!("{path}.switch");
                let on = s.on.as_ref().map(|o| {
                    let on_at = format!("{at}.on");
                    self.template(o, At { path: &on_at, step: id }, need, deps)
                });
                if s.cases.is_empty() {
                    self.missing(format!("{at}.cases"), id, "`switch` needs at least one case");
                }
                let cases = s
                    .cases
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.case(c, &format!("{at}.cases[{i}]"), id, on.is_some(), deps))
                    .collect();
                let default = s.default.as_ref().map(|d| self.body(d, &format!("{at}.default"), id, &[], deps));
                Kind::Switch { on, cases, default }
            }
            StepKindDef::Loop(l) => {
                let at = format!("{path}.loop");
                if l.body.is_empty() {
                    self.missing(format!("{at}.do"), id, "`loop` needs a `do` with at least one step");
                }
                let max_iterations = match l.max_iterations {
                    Some(0) => {
                        self.sink.push(
                            format!("{at}.max_iterations"),
                            Some(id),
                            Code::InvalidValue,
                            "must be at least 1",
                        );
                        1
                    }
                    Some(n) => n,
                    None => {
                        self.missing(
                            format!("{at}.max_iterations"),
                            id,
                            "a `loop` needs `max_iterations`, so it always ends",
                        );
                        1
                    }
                };
                let binds = ["iteration", "previous"];
                let body = self.body(&l.body, &format!("{at}.do"), id, &binds, deps);
                let until = match &l.until {
                    Some(u) => self.in_body_scope(&l.body, id, &binds, deps, |cx| {
                        let at = format!("{at}.until");
                        let c = cx.sink.condition(u, &at, Some(id));
                        let refs = c.references().into_iter().cloned().collect();
                        (c, refs, at)
                    }),
                    None => {
                        self.missing(format!("{at}.until"), id, "a `loop` needs an `until` condition");
                        crate::condition::Condition::Const(true)
                    }
                };
                let output = l.output.as_ref().map(|o| {
                    self.in_body_scope(&l.body, id, &binds, deps, |cx| {
                        let at = format!("{at}.output");
                        let t = cx.sink.template(o, &at, Some(id));
                        let refs = t.references().into_iter().cloned().collect();
                        (t, refs, at)
                    })
                });
                Kind::Loop { body, until, max_iterations, output }
            }
            StepKindDef::Wait(w) => {
                let at = format!("{path}.wait");
                match (&w.duration, &w.until) {
                    (Some(d), None) => {
                        let d = self.sink.duration(Some(d), format!("{at}.duration"), Some(id), false);
                        Kind::Wait(WaitFor::Duration(d.unwrap_or_default()))
                    }
                    (None, Some(u)) => {
                        let until_at = format!("{at}.until");
                        let t = self.template(&Value::String(u.clone()), At { path: &until_at, step: id }, need, deps);
                        if let Template::Literal(Value::String(text)) = &t
                            && let Err(e) = humantime::parse_rfc3339_weak(text)
                        {
                            self.sink.push(
                                until_at,
                                Some(id),
                                Code::BadDuration,
                                format!("invalid time {text:?}: {e} (write e.g. \"2026-12-01T09:00:00Z\")"),
                            );
                        }
                        Kind::Wait(WaitFor::Until(t))
                    }
                    (Some(_), Some(_)) => {
                        self.sink.push(at, Some(id), Code::InvalidValue, "give `duration` or `until`, not both");
                        Kind::Wait(WaitFor::Duration(Duration::ZERO))
                    }
                    (None, None) => {
                        self.missing(at, id, "`wait` needs a `duration` or an `until`");
                        Kind::Wait(WaitFor::Duration(Duration::ZERO))
                    }
                }
            }
            StepKindDef::Signal(s) => {
                let at = format!("{path}.signal");
                if s.name.trim().is_empty() {
                    self.missing(format!("{at}.name"), id, "`signal` needs the `name` it waits for");
                }
                let timeout = self.sink.duration(s.timeout.as_ref(), format!("{at}.timeout"), Some(id), true);
                if let Some(schema) = &s.schema {
                    self.sink.schema(schema, format!("{at}.schema"), Some(id));
                }
                Kind::Signal { name: s.name.clone(), timeout, default: s.default.clone(), schema: s.schema.clone() }
            }
            StepKindDef::Workflow(w) => {
                let at = format!("{path}.workflow");
                if w.name.trim().is_empty() {
                    self.missing(format!("{at}.name"), id, "`workflow` needs the `name` of a registered workflow");
                }
                if w.name == self.def.name && w.version.is_none_or(|v| v == self.def.version) {
                    self.sink.push(
                        format!("{at}.name"),
                        Some(id),
                        Code::Cycle,
                        "a workflow cannot run itself as a sub-workflow",
                    );
                }
                let input_at = format!("{at}.input");
                let input = w.input.as_ref().map_or(Template::Literal(Value::Object(Default::default())), |i| {
                    self.template(i, At { path: &input_at, step: id }, need, deps)
                });
                Kind::SubWorkflow { name: w.name.clone(), version: w.version, input }
            }
            StepKindDef::Plan(p) => self.plan_step(p, path, id, deps),
            StepKindDef::Race(r) => {
                let at = format!("{path}.race");
                if r.branches.len() < 2 {
                    self.missing(format!("{at}.branches"), id, "a `race` needs at least two branches");
                }
                let winner = r.winner.clone().unwrap_or(Winner::First);
                if let Winner::Max(field) | Winner::Min(field) = &winner
                    && Path::parse(&format!("x.{field}")).is_err()
                    && Path::parse(&format!("x{field}")).is_err()
                {
                    self.sink.push(
                        format!("{at}.winner"),
                        Some(id),
                        Code::InvalidValue,
                        format!("`{field}` is not a field path"),
                    );
                }
                let branches = self.body(&r.branches, &format!("{at}.branches"), id, &[], deps);
                self.independent(&branches, &format!("{at}.branches"), id, "race branches");
                Kind::Race { branches, winner }
            }
            StepKindDef::Fallback(f) => {
                let at = format!("{path}.fallback");
                if f.alternatives.len() < 2 {
                    self.missing(format!("{at}.alternatives"), id, "a `fallback` needs at least two alternatives");
                }
                let alternatives = self.body(&f.alternatives, &format!("{at}.alternatives"), id, &[], deps);
                self.independent(&alternatives, &format!("{at}.alternatives"), id, "fallback alternatives");
                Kind::Fallback { alternatives }
            }
            StepKindDef::Parallel(p) => {
                let at = format!("{path}.parallel");
                if p.steps.is_empty() {
                    self.missing(format!("{at}.steps"), id, "`parallel` needs at least one step");
                }
                let n = p.steps.len() as u32;
                let min_successes = match p.min_successes {
                    Some(m) if m == 0 || m > n => {
                        self.sink.push(
                            format!("{at}.min_successes"),
                            Some(id),
                            Code::InvalidValue,
                            format!("must be between 1 and the number of steps ({n})"),
                        );
                        n
                    }
                    Some(m) => m,
                    None => n,
                };
                let steps = self.body(&p.steps, &format!("{at}.steps"), id, &[], deps);
                Kind::Parallel { steps, min_successes }
            }
            StepKindDef::Pipeline(p) => {
                let at = format!("{path}.pipeline");
                if p.stages.is_empty() {
                    self.missing(format!("{at}.stages"), id, "a `pipeline` needs at least one stage");
                }
                let input = p.input.as_ref().map(|i| {
                    let input_at = format!("{at}.input");
                    self.template(i, At { path: &input_at, step: id }, need, deps)
                });
                let mut stages = self.body(&p.stages, &format!("{at}.stages"), id, &["previous"], deps);
                // Each stage reads the one before it.
                let ids: Vec<String> = stages.iter().map(|s| s.id.clone()).collect();
                for (stage, prev) in stages.iter_mut().skip(1).zip(ids) {
                    stage.needs.insert(prev);
                }
                Kind::Pipeline { input, stages }
            }
        }
    }

    fn case(&mut self, c: &CaseDef, at: &str, owner: &str, has_on: bool, deps: &mut Deps) -> Case {
        let matcher = match (&c.value, &c.when) {
            (Some(v), None) => {
                if !has_on {
                    self.sink.push(
                        format!("{at}.value"),
                        Some(owner),
                        Code::MissingPart,
                        "a `value` case needs the switch's `on`",
                    );
                }
                CaseMatch::Value(v.clone())
            }
            (None, Some(w)) => {
                let when_at = format!("{at}.when");
                let cond = self.sink.condition(w, &when_at, Some(owner));
                self.place(cond.references(), At { path: &when_at, step: owner }, DepKind::Watch, deps);
                CaseMatch::When(cond)
            }
            (Some(_), Some(_)) => {
                self.sink.push(at, Some(owner), Code::InvalidValue, "a case has `value` or `when`, not both");
                CaseMatch::Value(Value::Null)
            }
            (None, None) => {
                self.missing(at.to_owned(), owner, "a case needs a `value` or a `when`");
                CaseMatch::Value(Value::Null)
            }
        };
        if c.body.is_empty() {
            self.missing(format!("{at}.do"), owner, "a case needs a `do` with at least one step");
        }
        let body = self.body(&c.body, &format!("{at}.do"), owner, &[], deps);
        Case { matcher, body }
    }

    /// Branches and alternatives are alternatives to each other: none may wait for another.
    fn independent(&mut self, steps: &[Step], path: &str, owner: &str, what: &str) {
        let ids: BTreeSet<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        for (i, s) in steps.iter().enumerate() {
            if let Some(other) = s.dependencies().into_iter().find(|d| ids.contains(d)) {
                self.sink.push(
                    format!("{path}[{i}]"),
                    Some(&s.id),
                    Code::InvalidValue,
                    format!("{what} of `{owner}` are independent: `{}` cannot depend on `{other}`", s.id),
                );
            }
        }
    }
}

/// Repairs of a plan when the step sets none.
const DEFAULT_REPAIRS: u32 = 3;

impl Compiler<'_> {
    fn plan_step(&mut self, p: &PlanDef, path: &str, id: &str, deps: &mut Deps) -> Kind {
        let at = format!("{path}.plan");
        if p.goal.is_null() {
            self.missing(format!("{at}.goal"), id, "a `plan` needs the `goal` its plan must achieve");
        }
        if p.tools.is_empty() {
            self.missing(format!("{at}.tools"), id, "a `plan` needs the `tools` its plan may call");
        }
        if let Some(catalogue) = self.catalogue {
            for (k, tool) in p.tools.iter().enumerate() {
                if catalogue.get(tool).is_none() {
                    let message = format!("no worker offers a tool `{tool}`");
                    self.sink.push(format!("{at}.tools[{k}]"), Some(id), Code::UnknownTool, message);
                }
            }
            if catalogue.get(PLANNER_TOOL).is_none() {
                let message = "a `plan` asks the `llm` tool for its plan, and no worker offers it \
                               (start a worker with WEFT_LLM_BASE_URL or WEFT_LLM_API_KEY set)";
                self.sink.push(at.clone(), Some(id), Code::UnknownTool, message);
            }
        }
        let defaults = PlanCaps::default();
        let mut cap = |value: Option<u32>, field: &str, default: u32| match value {
            Some(0) => {
                self.sink.push(format!("{at}.{field}"), Some(id), Code::InvalidValue, "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        };
        let caps = PlanCaps {
            max_steps: cap(p.max_steps, "max_steps", defaults.max_steps),
            max_depth: cap(p.max_depth, "max_depth", defaults.max_depth),
            max_width: cap(p.max_width, "max_width", defaults.max_width),
        };
        let input = p.input.clone().unwrap_or_else(|| Value::Object(Default::default()));
        let request = serde_json::json!({"goal": p.goal, "input": input});
        let request = self.template(&request, At { path: &at, step: id }, DepKind::Need, deps);
        Kind::Plan(Box::new(PlanSpec {
            request,
            tools: p.tools.clone(),
            model: p.model.clone(),
            caps,
            max_repairs: p.max_repairs.unwrap_or(DEFAULT_REPAIRS),
            approve: p.approve,
            run: p.run.unwrap_or(true),
        }))
    }
}
