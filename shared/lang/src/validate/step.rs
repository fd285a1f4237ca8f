//! Compiling steps: each field checked, each reference placed in its scope, each body
//! compiled in a frame of its own.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::checks::Sink;
use super::scope::{BUILTINS, Frame, Frames, Index, Target};
use super::{Code, Problem, cycles};
use crate::catalogue::Catalogue;
use crate::definition::{StepDef, StepKindDef, WorkflowDef};
use crate::plan::{Compensation, Plan, RetryPolicy, Step};
use crate::reference::{Path, Template, is_ident};

/// How a dependency constrains its dependent (see [`crate::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DepKind {
    Need,
    Watch,
    After,
}

/// A dependency on a step of an outer frame, found inside a body.
#[derive(Debug)]
pub(super) struct Lifted {
    level: usize,
    id: String,
    kind: DepKind,
}

/// Dependencies gathered for one step.
#[derive(Debug, Default)]
pub(super) struct Deps {
    needs: BTreeSet<String>,
    watches: BTreeSet<String>,
    after: BTreeSet<String>,
    lifted: Vec<Lifted>,
}

impl Deps {
    pub(super) fn add(&mut self, kind: DepKind, id: String) {
        match kind {
            DepKind::Need => self.needs.insert(id),
            DepKind::Watch => self.watches.insert(id),
            DepKind::After => self.after.insert(id),
        };
    }
}

/// Where the references being placed stand.
#[derive(Clone, Copy)]
pub(super) struct At<'p> {
    pub(super) path: &'p str,
    pub(super) step: &'p str,
}

pub(super) struct Compiler<'a> {
    pub(super) def: &'a WorkflowDef,
    pub(super) catalogue: Option<&'a Catalogue>,
    pub(super) sink: Sink,
    pub(super) index: Index,
    pub(super) frames: Frames,
    pub(super) retry_base: RetryPolicy,
    pub(super) retry_default: RetryPolicy,
    pub(super) timeout_default: Option<Duration>,
    /// Compensation reads to check once the block's graph is known: (step, read, path).
    pub(super) pending_compensations: Vec<(String, String, String)>,
}

impl<'a> Compiler<'a> {
    pub(super) fn new(def: &'a WorkflowDef, catalogue: Option<&'a Catalogue>) -> Compiler<'a> {
        Compiler {
            def,
            catalogue,
            sink: Sink::default(),
            index: Index { hints: std::cell::Cell::new(super::scope::HINTS), ..Index::default() },
            frames: Frames::default(),
            retry_base: RetryPolicy::standard(),
            retry_default: RetryPolicy::none(),
            timeout_default: None,
            pending_compensations: Vec::new(),
        }
    }

    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.sink.problems
    }

    pub(super) fn workflow(&mut self) -> Plan {
        let def = self.def;
        if def.name.trim().is_empty() {
            self.sink.push("name", None, Code::InvalidValue, "the workflow needs a name");
        } else if !def.name.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c)) {
            self.sink.push("name", None, Code::InvalidValue, "use letters, digits, `_`, `-` and `.` only");
        }
        if def.version == 0 {
            self.sink.push("version", None, Code::InvalidValue, "versions start at 1");
        }
        if def.steps.is_empty() {
            self.sink.push("steps", None, Code::MissingPart, "a workflow needs at least one step");
        }
        if let Some(budget) = &def.budget {
            if budget.tokens == Some(0) {
                self.sink.push("budget.tokens", None, Code::InvalidValue, "must be at least 1");
            }
            if budget.cost.is_some_and(|c| !c.is_finite() || c <= 0.0) {
                self.sink.push("budget.cost", None, Code::InvalidValue, "must be a number above 0");
            }
            if budget.tokens.is_none() && budget.cost.is_none() {
                self.sink.push("budget", None, Code::MissingPart, "a budget needs `tokens`, `cost` or both");
            }
        }
        if def.max_parallel == Some(0) {
            self.sink.push("max_parallel", None, Code::InvalidValue, "must be at least 1");
        }
        if let Some(schema) = &def.input_schema {
            self.sink.schema(schema, "input_schema".into(), None);
        }
        let timeout = self.sink.duration(def.timeout.as_ref(), "timeout".into(), None, true);
        if let Some(r) = &def.defaults.retry {
            let base = RetryPolicy::standard();
            self.retry_default = self.sink.retry(r, &base, "defaults.retry", None);
            self.retry_base = self.retry_default.clone();
        }
        self.timeout_default = self.sink.duration(def.defaults.timeout.as_ref(), "defaults.timeout".into(), None, true);

        self.index_steps(&def.steps, "steps", &mut Vec::new());
        let (steps, lifted) = self.block(&def.steps, "steps", None, Vec::new());
        debug_assert!(lifted.is_empty(), "nothing lies outside the top level");

        let output = def.output.as_ref().map(|o| {
            let t = self.sink.template(o, "output", None);
            for path in t.references() {
                if let Err((code, message)) = self.frames_top().resolve(&path.root, &self.index) {
                    self.sink.push("output", None, code, format!("{{{path}}}: {message}"));
                }
            }
            t
        });
        Plan {
            name: def.name.clone(),
            version: def.version,
            input_schema: def.input_schema.clone(),
            // Checked above: a schema that does not compile is a problem, and no plan.
            input_check: def.input_schema.as_ref().and_then(|s| jsonschema::validator_for(s).ok()).map(Arc::new),
            steps,
            output,
            timeout,
            max_parallel: def.max_parallel,
            on_failure: def.on_failure,
            source: def.clone(),
            budget: def.budget,
        }
    }

    /// The top-level frame alone, for the workflow's output template.
    fn frames_top(&self) -> Frames {
        let siblings = self.def.steps.iter().map(|s| s.id.clone()).collect();
        Frames { stack: vec![Frame { siblings, bindings: Vec::new(), owner: None }] }
    }

    /// First pass: every id, where it lives, and whether it is usable.
    fn index_steps(&mut self, steps: &[StepDef], path: &str, enclosing: &mut Vec<String>) {
        for (i, s) in steps.iter().enumerate() {
            let here = format!("{path}[{i}]");
            if !is_ident(&s.id) {
                self.sink.push(
                    format!("{here}.id"),
                    Some(&s.id),
                    Code::InvalidId,
                    "ids start with a letter or `_` and go on with letters, digits, `_` or `-`",
                );
            } else if BUILTINS.contains(&s.id.as_str()) {
                self.sink.push(format!("{here}.id"), Some(&s.id), Code::InvalidId, format!("`{}` is reserved", s.id));
            }
            if self.index.enclosing.contains_key(&s.id) {
                self.sink.push(
                    format!("{here}.id"),
                    Some(&s.id),
                    Code::DuplicateId,
                    format!("another step is already called `{}`; ids are unique across the workflow", s.id),
                );
            } else {
                self.index.enclosing.insert(s.id.clone(), enclosing.clone());
            }
            enclosing.push(s.id.clone());
            for (child_path, child) in bodies(s, &here) {
                self.index_steps(child, &child_path, enclosing);
            }
            enclosing.pop();
        }
    }

    /// Compiles one list of sibling steps in a new frame.
    fn block(
        &mut self,
        defs: &[StepDef],
        path: &str,
        owner: Option<&str>,
        bindings: Vec<String>,
    ) -> (Vec<Step>, Vec<Lifted>) {
        for b in &bindings {
            if self.index.enclosing.contains_key(b) {
                self.sink.push(
                    path,
                    owner,
                    Code::InvalidId,
                    format!("the name `{b}` bound here is also a step id; rename one of them"),
                );
            }
        }
        self.frames.stack.push(Frame {
            siblings: defs.iter().map(|s| s.id.clone()).collect(),
            bindings,
            owner: owner.map(str::to_owned),
        });
        let level = self.frames.level();
        let mut steps = Vec::new();
        let mut outward = Vec::new();
        for (i, def) in defs.iter().enumerate() {
            let here = format!("{path}[{i}]");
            let (step, lifted) = self.step(def, &here);
            steps.push(step);
            outward.extend(lifted);
        }
        self.frames.stack.pop();
        let path_of =
            |id: &str| defs.iter().position(|s| s.id == id).map_or_else(|| path.to_owned(), |i| format!("{path}[{i}]"));
        self.sink.problems.extend(cycles(&steps, path_of));
        self.check_compensations(&steps);
        debug_assert!(outward.iter().all(|l| l.level < level));
        (steps, outward)
    }

    /// A compensation may read its own step and steps upstream of it, nothing else: a
    /// step that is not upstream may not have run when the compensation does.
    fn check_compensations(&mut self, steps: &[Step]) {
        let ids: BTreeSet<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        let pending = std::mem::take(&mut self.pending_compensations);
        for (step, read, path) in pending {
            if !ids.contains(step.as_str()) {
                self.pending_compensations.push((step, read, path));
                continue;
            }
            if step == read || upstream(steps, &step).contains(read.as_str()) {
                continue;
            }
            self.sink.push(
                path,
                Some(&step),
                Code::NotUpstream,
                format!("the compensation reads `{read}`, which is not upstream of `{step}`; add it to `depends_on` or read it another way"),
            );
        }
    }

    /// Places references found at `at` as dependencies of `kind`.
    pub(super) fn place(&mut self, refs: Vec<&Path>, at: At<'_>, kind: DepKind, deps: &mut Deps) {
        let level = self.frames.level();
        for path in refs {
            match self.frames.resolve(&path.root, &self.index) {
                Ok(Target::Free) => {}
                Ok(Target::Step { level: l, id }) if l == level => deps.add(kind, id),
                Ok(Target::Step { level: l, id }) => deps.lifted.push(Lifted { level: l, id, kind }),
                Err((code, message)) => {
                    self.sink.push(at.path, Some(at.step), code, format!("`{{{path}}}`: {message}"))
                }
            }
        }
    }

    /// A template in this step's own frame.
    pub(super) fn template(&mut self, value: &Value, at: At<'_>, kind: DepKind, deps: &mut Deps) -> Template {
        let t = self.sink.template(value, at.path, Some(at.step));
        self.place(t.references(), at, kind, deps);
        t
    }

    /// Compiles a body owned by step `owner` at `path`, folding its outward reads into `deps`.
    pub(super) fn body(
        &mut self,
        defs: &[StepDef],
        path: &str,
        owner: &str,
        bindings: &[&str],
        deps: &mut Deps,
    ) -> Vec<Step> {
        let level = self.frames.level();
        let (steps, lifted) = self.block(defs, path, Some(owner), bindings.iter().map(|b| (*b).to_owned()).collect());
        for l in lifted {
            if l.level == level { deps.add(l.kind, l.id) } else { deps.lifted.push(l) }
        }
        steps
    }

    /// A template of the construct evaluated inside its body's scope (loop `until`,
    /// per-item `output`): body steps are readable, outer steps become dependencies.
    pub(super) fn in_body_scope<T>(
        &mut self,
        body: &[StepDef],
        owner: &str,
        bindings: &[&str],
        deps: &mut Deps,
        f: impl FnOnce(&mut Self) -> (T, Vec<Path>, String),
    ) -> T {
        let level = self.frames.level();
        self.frames.stack.push(Frame {
            siblings: body.iter().map(|s| s.id.clone()).collect(),
            bindings: bindings.iter().map(|b| (*b).to_owned()).collect(),
            owner: Some(owner.to_owned()),
        });
        let (value, refs, path) = f(self);
        for p in &refs {
            match self.frames.resolve(&p.root, &self.index) {
                Ok(Target::Step { level: l, id }) if l == level => deps.add(DepKind::Need, id),
                Ok(Target::Step { level: l, id }) if l < level => {
                    deps.lifted.push(Lifted { level: l, id, kind: DepKind::Need })
                }
                Ok(_) => {}
                Err((code, message)) => self.sink.push(&path, Some(owner), code, format!("`{{{p}}}`: {message}")),
            }
        }
        self.frames.stack.pop();
        value
    }

    fn step(&mut self, def: &StepDef, path: &str) -> (Step, Vec<Lifted>) {
        let id = def.id.as_str();
        let mut deps = Deps::default();

        for (i, dep) in def.depends_on.iter().enumerate() {
            let at = format!("{path}.depends_on[{i}]");
            match self.frames.resolve(dep, &self.index) {
                Ok(Target::Step { level, id: d }) if level == self.frames.level() => deps.add(DepKind::After, d),
                Ok(Target::Step { level, id: d }) => deps.lifted.push(Lifted { level, id: d, kind: DepKind::After }),
                Ok(Target::Free) => {
                    self.sink.push(at, Some(id), Code::UnknownDependency, format!("`{dep}` is not a step"))
                }
                Err((code, message)) => {
                    let code = if code == Code::UnknownReference { Code::UnknownDependency } else { code };
                    self.sink.push(at, Some(id), code, message);
                }
            }
        }

        let when = def.when.as_ref().map(|w| {
            let at = format!("{path}.when");
            let c = self.sink.condition(w, &at, Some(id));
            self.place(c.references(), At { path: &at, step: id }, DepKind::Watch, &mut deps);
            c
        });

        let kind = self.kind(def, path, &mut deps);

        let retry = match &def.retry {
            Some(r) => self.sink.retry(r, &self.retry_base.clone(), &format!("{path}.retry"), Some(id)),
            // A plan's model calls meet rate limits and busy providers: they are retried
            // unless the workflow says otherwise.
            None if matches!(def.kind, StepKindDef::Plan(_)) && self.def.defaults.retry.is_none() => {
                RetryPolicy::standard()
            }
            None => self.retry_default.clone(),
        };
        let timeout = self
            .sink
            .duration(def.timeout.as_ref(), format!("{path}.timeout"), Some(id), true)
            .or(self.timeout_default);
        let estimate = self.sink.duration(def.estimate.as_ref(), format!("{path}.estimate"), Some(id), false);
        for (name, amount) in &def.resources {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                self.sink.push(
                    format!("{path}.resources"),
                    Some(id),
                    Code::InvalidValue,
                    format!("a pool's name is letters, digits, `_` and `-`, not {name:?}"),
                );
            }
            if *amount == 0 {
                self.sink.push(
                    format!("{path}.resources.{name}"),
                    Some(id),
                    Code::InvalidValue,
                    "a resource amount is at least 1",
                );
            }
        }
        let compensate = def.compensate.as_ref().map(|c| self.compensation(c, path, id));

        // A step read both by its params and its condition needs it.
        let watches: BTreeSet<String> = deps.watches.difference(&deps.needs).cloned().collect();
        let step = Step {
            id: id.to_owned(),
            kind,
            needs: deps.needs,
            watches,
            after: deps.after,
            when,
            retry,
            timeout,
            compensate,
            continue_on_error: def.continue_on_error,
            resources: def.resources.clone(),
            priority: def.priority,
            estimate,
        };
        (step, deps.lifted)
    }

    fn compensation(&mut self, c: &crate::definition::CompensateDef, path: &str, id: &str) -> Compensation {
        let at = format!("{path}.compensate");
        self.tool(&c.tool, &c.params, &at, id);
        let params = self.sink.template(&c.params, &format!("{at}.params"), Some(id));
        let level = self.frames.level();
        for p in params.references() {
            match self.frames.resolve(&p.root, &self.index) {
                Ok(Target::Step { level: l, id: read }) if l == level => {
                    self.pending_compensations.push((id.to_owned(), read, format!("{at}.params")));
                }
                Ok(_) => {}
                Err((code, message)) => {
                    self.sink.push(format!("{at}.params"), Some(id), code, format!("`{{{p}}}`: {message}"))
                }
            }
        }
        let retry = match &c.retry {
            Some(r) => self.sink.retry(r, &RetryPolicy::standard(), &format!("{at}.retry"), Some(id)),
            None => RetryPolicy::standard(),
        };
        let timeout = self.sink.duration(c.timeout.as_ref(), format!("{at}.timeout"), Some(id), true);
        Compensation { tool: c.tool.clone(), params, retry, timeout }
    }

    /// Checks a tool name and its literal params against the catalogue.
    pub(super) fn tool(&mut self, tool: &str, params: &Value, path: &str, id: &str) {
        if tool.trim().is_empty() {
            self.sink.push(format!("{path}.tool"), Some(id), Code::MissingPart, "the tool name is empty");
            return;
        }
        if !params.is_object() {
            self.sink.push(format!("{path}.params"), Some(id), Code::InvalidValue, "params must be a JSON object");
            return;
        }
        let Some(catalogue) = self.catalogue else {
            return;
        };
        match catalogue.get(tool) {
            Some(spec) => self.sink.params(spec, params, &format!("{path}.params"), Some(id)),
            None => {
                // Hints are bounded like references' (see `scope::HINTS`).
                let similar = match self.index.hints.get() {
                    0 => Vec::new(),
                    left => {
                        self.index.hints.set(left - 1);
                        catalogue.similar(tool)
                    }
                };
                let hint = if similar.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; did you mean {}?",
                        similar.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
                    )
                };
                self.sink.push(
                    format!("{path}.tool"),
                    Some(id),
                    Code::UnknownTool,
                    format!("no worker offers a tool `{tool}`{hint}"),
                );
            }
        }
    }

    pub(super) fn missing(&mut self, path: String, id: &str, message: &str) {
        self.sink.push(path, Some(id), Code::MissingPart, message);
    }
}

/// The nested step lists of a step definition, with their paths.
fn bodies<'d>(s: &'d StepDef, here: &str) -> Vec<(String, &'d [StepDef])> {
    match &s.kind {
        StepKindDef::Task { .. }
        | StepKindDef::Wait(_)
        | StepKindDef::Signal(_)
        | StepKindDef::Workflow(_)
        | StepKindDef::Plan(_) => Vec::new(),
        StepKindDef::ForEach(f) => vec![(format!("{here}.for_each.do"), &f.body)],
        StepKindDef::Loop(l) => vec![(format!("{here}.loop.do"), &l.body)],
        StepKindDef::Switch(sw) => {
            let mut out: Vec<(String, &[StepDef])> = sw
                .cases
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{here}.switch.cases[{i}].do"), c.body.as_slice()))
                .collect();
            if let Some(d) = &sw.default {
                out.push((format!("{here}.switch.default"), d));
            }
            out
        }
        StepKindDef::Race(r) => vec![(format!("{here}.race.branches"), &r.branches)],
        StepKindDef::Fallback(f) => {
            vec![(format!("{here}.fallback.alternatives"), &f.alternatives)]
        }
        StepKindDef::Parallel(p) => vec![(format!("{here}.parallel.steps"), &p.steps)],
        StepKindDef::Pipeline(p) => vec![(format!("{here}.pipeline.stages"), &p.stages)],
    }
}

/// Every step `id` transitively depends on within `steps`.
fn upstream<'s>(steps: &'s [Step], id: &str) -> BTreeSet<&'s str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> =
        steps.iter().find(|s| s.id == id).map(|s| s.dependencies().into_iter().collect()).unwrap_or_default();
    while let Some(d) = todo.pop() {
        if let Some(step) = steps.iter().find(|s| s.id == d)
            && seen.insert(step.id.as_str())
        {
            todo.extend(step.dependencies());
        }
    }
    seen
}
