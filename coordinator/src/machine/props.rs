//! Property tests of the run state machine: random plans (tool calls, waits, signals,
//! sub-workflows and every construct, with data dependencies, `depends_on`, conditions,
//! retries, timeouts, compensations and every failure policy) driven by random
//! interleavings of honest inputs (answers to dispatched tasks, timers at their deadline,
//! signals, commands, child runs' ends) and forged ones (results for every path and
//! attempt, timers that were never armed or come early, children never started, signals
//! nobody waits for), duplicates of earlier inputs, and coordinator restarts (a replay of
//! the log takes over, as a new owner would).
//!
//! After every input:
//! - the count of tasks in flight equals the tool attempts in flight;
//! - no step ends except by its own rule: a tool call by the result of its attempt in
//!   flight, a `wait` by its timer once due, a `signal` by its signal or its due timeout, a
//!   `workflow` step by its current child's end, a construct only once all it opened is over;
//! - a result is applied once: a completed step's output and an ended attempt never change;
//! - no step is dispatched before its dependencies ended;
//! - a run that ended emits nothing but reports of ignored inputs;
//! - a replay of the log equals the live run.
//!
//! The suite runs a small campaign; `PROPTEST_CASES=20000 cargo test -p weft-coordinator
//! machine::props --release` runs a long one.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_lang::plan::Kind;
use weft_lang::validate::compile;
use weft_protocol::wire::Outcome;

use super::frame::FrameState;
use super::ids::InstId;
use super::*;

/// What a generated step is.
#[derive(Debug, Clone)]
enum Shape {
    Tool { retries: u32, timeout: bool, compensate: bool, continue_on_error: bool, pooled: bool },
    Wait { ms: u64 },
    Signal { name: usize, timeout: bool, default: bool },
    Child,
    ForEach { concurrency: Option<u32>, max_failures: u32 },
    Loop { max: u32 },
    Switch,
    Race { first: bool },
    Fallback,
    Parallel { min: u32 },
    Pipeline,
}

/// A generated top-level step: its shape, an earlier step whose output it reads, one it
/// follows, and a condition.
#[derive(Debug, Clone)]
struct StepGen {
    shape: Shape,
    reads: Option<Index>,
    after: Option<Index>,
    when: Option<Index>,
}

#[derive(Debug, Clone)]
struct PlanGen {
    steps: Vec<StepGen>,
    on_failure: usize,
    max_parallel: Option<u32>,
    timeout: bool,
    items: usize,
    flag: bool,
}

const SIGNALS: [&str; 2] = ["approve", "go"];

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        4 => (0..3u32, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(retries, timeout, compensate, continue_on_error, pooled)| {
            Shape::Tool { retries, timeout, compensate, continue_on_error, pooled }
        }),
        1 => (1..5000u64).prop_map(|ms| Shape::Wait { ms }),
        1 => (0..SIGNALS.len(), any::<bool>(), any::<bool>())
            .prop_map(|(name, timeout, default)| Shape::Signal { name, timeout, default }),
        1 => Just(Shape::Child),
        1 => (proptest::option::of(1..3u32), 0..2u32)
            .prop_map(|(concurrency, max_failures)| Shape::ForEach { concurrency, max_failures }),
        1 => (1..4u32).prop_map(|max| Shape::Loop { max }),
        1 => Just(Shape::Switch),
        1 => any::<bool>().prop_map(|first| Shape::Race { first }),
        1 => Just(Shape::Fallback),
        1 => (1..3u32).prop_map(|min| Shape::Parallel { min }),
        1 => Just(Shape::Pipeline),
    ]
}

fn plan_gen() -> impl Strategy<Value = PlanGen> {
    let step = (
        shape(),
        proptest::option::of(any::<Index>()),
        proptest::option::of(any::<Index>()),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(shape, reads, after, when)| StepGen { shape, reads, after, when });
    (
        prop::collection::vec(step, 1..6),
        prop_oneof![Just(0usize), Just(1), Just(1), Just(2)],
        proptest::option::of(1..3u32),
        any::<bool>(),
        0..4usize,
        any::<bool>(),
    )
        .prop_map(|(steps, on_failure, max_parallel, timeout, items, flag)| PlanGen {
            steps,
            on_failure,
            max_parallel,
            timeout,
            items,
            flag,
        })
}

/// A tool step inside a body.
fn inner(id: &str, params: Value) -> Value {
    json!({"id": id, "tool": "t", "params": params})
}

/// The workflow JSON of a generated plan.
fn definition(g: &PlanGen) -> Value {
    let mut steps = Vec::new();
    for (n, s) in g.steps.iter().enumerate() {
        let id = format!("s{n}");
        let mut step = match &s.shape {
            Shape::Tool { retries, timeout, compensate, continue_on_error, pooled } => {
                let mut t = json!({"id": id, "tool": "t", "retry": {"max_attempts": retries + 1, "backoff": "100ms"}});
                if *timeout {
                    t["timeout"] = json!("1s");
                }
                if *compensate {
                    t["compensate"] = json!({"tool": "undo", "params": {"of": format!("{{{id}}}")}});
                }
                if *continue_on_error {
                    t["continue_on_error"] = json!(true);
                }
                if *pooled {
                    t["resources"] = json!({"cpu": 1, "gpu": 1});
                }
                t
            }
            Shape::Wait { ms } => json!({"id": id, "wait": {"duration": format!("{ms}ms")}}),
            Shape::Signal { name, timeout, default } => {
                let mut signal = json!({"name": SIGNALS[*name]});
                if *timeout {
                    signal["timeout"] = json!("3s");
                }
                if *default {
                    signal["default"] = json!({"approved": false});
                }
                json!({"id": id, "signal": signal})
            }
            Shape::Child => json!({"id": id, "workflow": {"name": "child", "input": {"n": n}}}),
            Shape::ForEach { concurrency, max_failures } => {
                let mut each = json!({"items": "{input.items}", "as": "it", "max_failures": max_failures,
                    "do": [inner(&format!("{id}b"), json!({"v": "{it}"}))]});
                if let Some(c) = concurrency {
                    each["concurrency"] = json!(c);
                }
                json!({"id": id, "for_each": each})
            }
            Shape::Loop { max } => json!({"id": id, "loop": {"max_iterations": max,
                "until": {"eq": [format!("{{{id}b.done}}"), true]},
                "do": [inner(&format!("{id}b"), json!({"i": "{iteration}"}))]}}),
            Shape::Switch => json!({"id": id, "switch": {"on": "{input.flag}",
                "cases": [{"value": true, "do": [inner(&format!("{id}a"), json!({}))]}],
                "default": [inner(&format!("{id}b"), json!({}))]}}),
            Shape::Race { first } => {
                let winner = if *first { json!("first") } else { json!({"max": "score"}) };
                json!({"id": id, "race": {"winner": winner,
                    "branches": [inner(&format!("{id}a"), json!({})), inner(&format!("{id}b"), json!({}))]}})
            }
            Shape::Fallback => json!({"id": id, "fallback": {"alternatives":
                [inner(&format!("{id}a"), json!({})), inner(&format!("{id}b"), json!({}))]}}),
            Shape::Parallel { min } => json!({"id": id, "parallel": {"min_successes": min,
                "steps": [inner(&format!("{id}a"), json!({})), inner(&format!("{id}b"), json!({}))]}}),
            Shape::Pipeline => json!({"id": id, "pipeline": {"input": "{input.flag}", "stages":
                [inner(&format!("{id}a"), json!({"p": "{previous}"})), inner(&format!("{id}b"), json!({"p": "{previous}"}))]}}),
        };
        if n > 0 {
            if let Some(k) = &s.reads
                && step.get("tool").is_some()
            {
                step["params"] = json!({"from": format!("{{s{}}}", k.index(n))});
            }
            if let Some(k) = &s.after {
                step["depends_on"] = json!([format!("s{}", k.index(n))]);
            }
            if let Some(k) = &s.when {
                step["when"] = json!({"exists": format!("{{s{}}}", k.index(n))});
            }
        } else if s.when.is_some() {
            step["when"] = json!({"eq": ["{input.flag}", true]});
        }
        steps.push(step);
    }
    let on_failure = ["fail", "compensate", "continue"][g.on_failure];
    let mut def = json!({"name": "prop", "steps": steps, "on_failure": on_failure});
    if let Some(m) = g.max_parallel {
        def["max_parallel"] = json!(m);
    }
    if g.timeout {
        def["timeout"] = json!("60s");
    }
    def
}

/// Something the test does to the run.
#[derive(Debug, Clone)]
enum Action {
    /// Answer a dispatched task (possibly one answered before).
    Answer {
        task: Index,
        ok: bool,
        retryable: bool,
    },
    /// Fire an armed timer at its deadline.
    Fire {
        timer: Index,
    },
    /// Send a timer before its deadline (forged, or a clock ahead).
    FireEarly {
        timer: Index,
    },
    /// Send a signal by a name the workflow may or may not wait for.
    Signal {
        name: usize,
        data: bool,
    },
    Cancel {
        compensate: bool,
    },
    Pause,
    Resume,
    /// A started child run ends.
    ChildEnd {
        child: Index,
        completed: bool,
    },
    /// A pool grants what a step asked for.
    Grant {
        claim: Index,
    },
    /// A grant nobody asked for.
    ForgedGrant {
        path: Index,
        attempt: u32,
        gpu: bool,
    },
    /// A result no task asked for: any path, any attempt.
    ForgedResult {
        path: Index,
        attempt: u32,
        compensation: bool,
        ok: bool,
    },
    /// A timer never armed, for any path.
    ForgedTimer {
        kind: usize,
        path: Index,
        attempt: u32,
    },
    /// A child's end for any path.
    ForgedChild {
        path: Index,
        attempt: u32,
    },
    /// An earlier input again.
    Duplicate {
        input: Index,
    },
    /// Time passes.
    Tick {
        ms: u64,
    },
    /// The coordinator restarts: a replay of the log takes over.
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        24 => (any::<Index>(), any::<bool>(), any::<bool>()).prop_map(|(task, ok, retryable)| Action::Answer { task, ok, retryable }),
        12 => any::<Index>().prop_map(|timer| Action::Fire { timer }),
        3 => any::<Index>().prop_map(|timer| Action::FireEarly { timer }),
        6 => (0..SIGNALS.len() + 1, any::<bool>()).prop_map(|(name, data)| Action::Signal { name, data }),
        1 => any::<bool>().prop_map(|compensate| Action::Cancel { compensate }),
        2 => Just(Action::Pause),
        5 => Just(Action::Resume),
        6 => (any::<Index>(), any::<bool>()).prop_map(|(child, completed)| Action::ChildEnd { child, completed }),
        6 => (any::<Index>(), 0..4u32, any::<bool>(), any::<bool>())
            .prop_map(|(path, attempt, compensation, ok)| Action::ForgedResult { path, attempt, compensation, ok }),
        6 => (0..6usize, any::<Index>(), 0..3u32).prop_map(|(kind, path, attempt)| Action::ForgedTimer { kind, path, attempt }),
        3 => (any::<Index>(), 0..3u32).prop_map(|(path, attempt)| Action::ForgedChild { path, attempt }),
        6 => any::<Index>().prop_map(|input| Action::Duplicate { input }),
        6 => (1..3000u64).prop_map(|ms| Action::Tick { ms }),
        3 => Just(Action::Restart),
        8 => any::<Index>().prop_map(|claim| Action::Grant { claim }),
        2 => (any::<Index>(), 0..3u32, any::<bool>()).prop_map(|(path, attempt, gpu)| Action::ForgedGrant { path, attempt, gpu }),
    ]
}

/// The test's side of the run: what it was asked to do, as workers, timers and child runs
/// would see it.
struct Driver {
    run: Run,
    /// A fresh run of the same plan, for replays.
    fresh: Run,
    log: Vec<Logged>,
    now: Millis,
    /// Every task dispatched: (path, attempt, compensation).
    tasks: Vec<Task>,
    /// Timers armed, with their deadlines (the latest arming of each).
    timers: BTreeMap<String, (Timer, Millis)>,
    /// Children started, by step path (the latest attempt's).
    children: BTreeMap<String, ChildStart>,
    /// Pool claims asked for, not yet granted.
    asked: Vec<PoolClaim>,
    /// Pool claims granted: (step, attempt, pool).
    granted: BTreeSet<(String, u32, String)>,
}

/// A snapshot of every step instance.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: StepStatus,
    attempt: u32,
    output: Option<Value>,
    ended: Vec<Option<Millis>>,
}

fn seen(run: &Run) -> BTreeMap<String, Seen> {
    run.insts
        .iter()
        .map(|inst| {
            let s = &inst.state;
            let ended = s.attempts.iter().map(|a| a.finished_ms).collect();
            (inst.path.clone(), Seen { status: s.status, attempt: s.attempt, output: s.output.clone(), ended })
        })
        .collect()
}

fn key(timer: &Timer) -> String {
    serde_json::to_string(timer).expect("timers serialise")
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

impl Driver {
    fn new(def: &Value, input: Value) -> Driver {
        let def = WorkflowDef::from_json(&def.to_string()).expect("generated workflows parse");
        let plan = compile(&def, None).expect("generated workflows are valid");
        let fresh = Run::new(Uuid::nil(), plan, input, 0);
        Driver {
            run: fresh.clone(),
            fresh,
            log: Vec::new(),
            now: 0,
            tasks: Vec::new(),
            timers: BTreeMap::new(),
            children: BTreeMap::new(),
            asked: Vec::new(),
            granted: BTreeSet::new(),
        }
    }

    /// Every path the run has, plus one it has not.
    fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.run.insts.iter().map(|i| i.path.clone()).collect();
        paths.push("nowhere".to_owned());
        paths
    }

    /// Takes in what effects asked for.
    fn absorb(&mut self, at: Millis, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Dispatch(task) => self.tasks.push(task.clone()),
                Effect::Schedule { timer, after } => {
                    let deadline = at.saturating_add(millis(*after));
                    self.timers.insert(key(timer), (timer.clone(), deadline));
                }
                Effect::StartChild(start) => {
                    self.children.insert(start.parent.step.clone(), start.clone());
                }
                Effect::Acquire(claim) => self.asked.push(claim.clone()),
                _ => {}
            }
        }
    }

    /// The input an action stands for, and when it is applied.
    fn input(&mut self, action: Action) -> Option<(Input, Millis)> {
        let result = |task: &Task, outcome: Outcome| TaskResult {
            run_id: task.run_id,
            step_id: task.step_id.clone(),
            attempt: task.attempt,
            compensation: task.compensation,
            worker: "w".into(),
            started_ms: u64::MAX,
            finished_ms: 0,
            outcome,
            usage: None,
            token: task.token.clone(),
        };
        let now = self.now;
        Some(match action {
            Action::Answer { task, ok, retryable } => {
                if self.tasks.is_empty() {
                    return None;
                }
                let task = self.tasks[task.index(self.tasks.len())].clone();
                let outcome = if ok {
                    Outcome::Ok(json!({"done": true, "score": task.attempt}))
                } else {
                    let e = ToolError::new("boom");
                    Outcome::Err(if retryable { e } else { e.permanent() })
                };
                (Input::Result { result: result(&task, outcome) }, now)
            }
            Action::Fire { timer } => {
                let armed: Vec<&(Timer, Millis)> = self.timers.values().collect();
                if armed.is_empty() {
                    return None;
                }
                let (timer, deadline) = armed[timer.index(armed.len())].clone();
                self.now = self.now.max(deadline);
                (Input::Timer { timer }, self.now)
            }
            Action::FireEarly { timer } => {
                let early: Vec<&(Timer, Millis)> = self.timers.values().filter(|(_, d)| *d > now).collect();
                if early.is_empty() {
                    return None;
                }
                let (timer, _) = early[timer.index(early.len())].clone();
                (Input::Timer { timer }, now)
            }
            Action::Signal { name, data } => {
                let name = SIGNALS.get(name).copied().unwrap_or("nobody").to_owned();
                (Input::Signal { name, data: json!({"approved": data}) }, now)
            }
            Action::Cancel { compensate } => (Input::Cancel { reason: "test".into(), compensate }, now),
            Action::Pause => (Input::Pause, now),
            Action::Resume => (Input::resume(), now),
            Action::ChildEnd { child, completed } => {
                let started: Vec<&ChildStart> = self.children.values().collect();
                if started.is_empty() {
                    return None;
                }
                let start = started[child.index(started.len())];
                let status = if completed { RunStatus::Completed } else { RunStatus::Failed };
                let result = ChildResult {
                    step: start.parent.step.clone(),
                    attempt: start.parent.attempt,
                    child_id: start.child_id,
                    status,
                    output: completed.then(|| json!({"child": true})),
                    error: (!completed).then(|| ToolError::new("child failed")),
                    spent: None,
                };
                (Input::Child { result }, now)
            }
            Action::ForgedResult { path, attempt, compensation, ok } => {
                let paths = self.paths();
                let step_id = paths[path.index(paths.len())].clone();
                let outcome =
                    if ok { Outcome::Ok(json!({"forged": true})) } else { Outcome::Err(ToolError::new("forged")) };
                let forged = TaskResult {
                    run_id: Uuid::nil(),
                    step_id,
                    attempt,
                    compensation,
                    worker: "mallory".into(),
                    started_ms: 0,
                    finished_ms: u64::MAX,
                    outcome,
                    usage: None,
                    token: String::new(),
                };
                (Input::Result { result: forged }, now)
            }
            Action::ForgedTimer { kind, path, attempt } => {
                let paths = self.paths();
                let step = paths[path.index(paths.len())].clone();
                let timer = match kind {
                    0 => Timer::WaitOver { step },
                    1 => Timer::SignalTimeout { step },
                    2 => Timer::StepTimeout { step, attempt },
                    3 => Timer::Retry { step, attempt },
                    4 => Timer::CompensationTimeout { step, attempt },
                    _ => Timer::RunTimeout,
                };
                // Only a timer never armed is forged; an armed one is honest at its time.
                if self.timers.contains_key(&key(&timer)) {
                    return None;
                }
                (Input::Timer { timer }, now)
            }
            Action::ForgedChild { path, attempt } => {
                let paths = self.paths();
                let step = paths[path.index(paths.len())].clone();
                let child_id = Uuid::new_v4();
                let result = ChildResult {
                    step,
                    attempt,
                    child_id,
                    status: RunStatus::Completed,
                    output: Some(json!({"forged": true})),
                    error: None,
                    spent: None,
                };
                (Input::Child { result }, now)
            }
            Action::Duplicate { input } => {
                if self.log.is_empty() {
                    return None;
                }
                (self.log[input.index(self.log.len())].input.clone(), now)
            }
            Action::Grant { claim } => {
                if self.asked.is_empty() {
                    return None;
                }
                let claim = self.asked.remove(claim.index(self.asked.len()));
                self.granted.insert((claim.step.clone(), claim.attempt, claim.pool.clone()));
                (
                    Input::Granted { step: claim.step, attempt: claim.attempt, pool: claim.pool, ask: Some(claim.ask) },
                    now,
                )
            }
            Action::ForgedGrant { path, attempt, gpu } => {
                let paths = self.paths();
                let step = paths[path.index(paths.len())].clone();
                let pool = if gpu { "gpu" } else { "cpu" }.to_owned();
                if self.granted.contains(&(step.clone(), attempt, pool.clone()))
                    || self.asked.iter().any(|c| c.step == step && c.attempt == attempt && c.pool == pool)
                {
                    return None;
                }
                // A forger does not know the run's ask numbers.
                (Input::Granted { step, attempt, pool, ask: Some(u64::MAX - u64::from(attempt)) }, now)
            }
            Action::Tick { ms } => {
                self.now += ms;
                return None;
            }
            Action::Restart => {
                self.restart()?;
                return None;
            }
        })
    }

    /// Replays the log into a fresh run, checks it equals the live one, and lets it take
    /// over; what `resume` asks for is taken in.
    fn restart(&mut self) -> Option<()> {
        let (replayed, _) = self.fresh.clone().replay(0, self.log.clone());
        self.replay_equals_live(&replayed).ok()?;
        self.run = replayed;
        let effects = self.run.resume(self.now);
        self.absorb(self.now, &effects);
        Some(())
    }

    fn replay_equals_live(&self, replayed: &Run) -> Result<(), TestCaseError> {
        let (live, again) = (self.run.record(), replayed.record());
        if live != again {
            return Err(fail(format!("replay differs from the live run:\nlive {live:#?}\nreplay {again:#?}")));
        }
        if self.run.timers != replayed.timers
            || self.run.running != replayed.running
            || self.run.signals != replayed.signals
            || self.run.seq != replayed.seq
        {
            return Err(fail("replay differs from the live run in timers, tasks in flight, signals or events".into()));
        }
        Ok(())
    }

    /// Applies one input and checks every invariant.
    fn apply(&mut self, input: Input, at: Millis) -> Result<(), TestCaseError> {
        let before = seen(&self.run);
        let was_terminal = self.run.status.is_terminal();
        let buffered: BTreeSet<String> = self.run.signals.keys().cloned().collect();
        let timers_before = self.timers.clone();
        let effects = self.run.apply(input.clone(), at);
        self.log.push(Logged { input: input.clone(), at, seq: self.log.len() as u64 + 1 });
        self.absorb(at, &effects);

        if was_terminal && effects.iter().any(|e| !matches!(e, Effect::Ignored(_))) {
            return Err(fail(format!("an ended run acted on {input:?}: {effects:?}")));
        }
        let in_flight = self
            .run
            .inst_ids()
            .filter(|&i| self.run.is_task(i) && self.run.insts[i].state.status == StepStatus::Running)
            .count();
        if in_flight != self.run.running.count() {
            return Err(fail(format!(
                "{} tasks counted in flight, {in_flight} tool attempts running, after {input:?}",
                self.run.running.count()
            )));
        }
        for inst in &self.run.insts {
            for a in &inst.state.attempts {
                let times = [Some(a.dispatched_ms), a.started_ms, a.finished_ms];
                let known: Vec<Millis> = times.into_iter().flatten().collect();
                if known.windows(2).any(|w| w[0] > w[1]) || known.iter().any(|t| *t > at) {
                    return Err(fail(format!(
                        "attempt {} of `{}` has times out of order: {a:?}",
                        a.attempt, inst.path
                    )));
                }
            }
        }
        let after = seen(&self.run);
        for (i, inst) in self.run.inst_ids().zip(&self.run.insts) {
            let now = &after[&inst.path];
            let Some(then) = before.get(&inst.path) else { continue };
            if then.status == StepStatus::Completed && (now.status != then.status || now.output != then.output) {
                return Err(fail(format!("completed `{}` changed after {input:?}: {then:?} -> {now:?}", inst.path)));
            }
            for (k, end) in then.ended.iter().enumerate() {
                if end.is_some() && now.ended.get(k) != Some(end) {
                    return Err(fail(format!("ended attempt {} of `{}` changed after {input:?}", k + 1, inst.path)));
                }
            }
            if then.status != StepStatus::Completed && now.status == StepStatus::Completed {
                self.completed_by_its_rule(i, then, &input, at, &buffered, &timers_before)?;
            }
        }
        for e in &effects {
            if let Effect::Dispatch(task) = e
                && !task.compensation
            {
                self.dependencies_ended(&task.step_id)?;
                self.pools_granted(task)?;
            }
        }
        Ok(())
    }

    /// Step instance `i` completed on `input`: was that its own rule?
    fn completed_by_its_rule(
        &self,
        i: InstId,
        then: &Seen,
        input: &Input,
        at: Millis,
        buffered: &BTreeSet<String>,
        timers: &BTreeMap<String, (Timer, Millis)>,
    ) -> Result<(), TestCaseError> {
        let run = &self.run;
        let path = &run.insts[i].path;
        let due = |timer: &Timer| timers.get(&key(timer)).is_some_and(|(_, deadline)| *deadline <= at);
        let ok = match &run.def(i).kind {
            Kind::Task { .. } => match input {
                Input::Result { result } => {
                    result.step_id == *path
                        && !result.compensation
                        && then.status == StepStatus::Running
                        && result.attempt == then.attempt
                        && self
                            .tasks
                            .iter()
                            .any(|t| t.step_id == *path && t.attempt == result.attempt && !t.compensation)
                }
                _ => false,
            },
            Kind::Wait(_) => {
                matches!(input, Input::Timer { timer: t @ Timer::WaitOver { step } } if step == path && due(t))
            }
            Kind::Signal { name, .. } => {
                // Its signal, its due timeout, or it started on this input and took a
                // signal that had arrived before.
                let took = match input {
                    Input::Signal { name: n, .. } => n == name,
                    Input::Timer { timer: t @ Timer::SignalTimeout { step } } => step == path && due(t),
                    _ => false,
                };
                took || (then.status == StepStatus::Pending && buffered.contains(name))
            }
            Kind::SubWorkflow { .. } => match input {
                Input::Child { result } => {
                    result.status == RunStatus::Completed
                        && self
                            .children
                            .get(path)
                            .is_some_and(|c| c.child_id == result.child_id && result.step == *path)
                }
                _ => false,
            },
            _ => run.opened_by(i).iter().all(|&f| {
                run.frames[f].state == FrameState::Over
                    && run.frames[f].insts.iter().all(|&j| run.insts[j].state.status.is_terminal())
            }),
        };
        if ok { Ok(()) } else { Err(fail(format!("`{path}` ({}) completed on {input:?}", run.def(i).kind.keyword()))) }
    }

    /// Every dependency of the dispatched step at `path` has ended.
    /// A dispatched attempt of a step with resources was granted every pool first.
    fn pools_granted(&self, task: &Task) -> Result<(), TestCaseError> {
        let Some(i) = self.run.index(&task.step_id) else { return Ok(()) };
        for pool in self.run.def(i).resources.keys() {
            if !self.granted.contains(&(task.step_id.clone(), task.attempt, pool.clone())) {
                return Err(fail(format!(
                    "`{}` attempt {} dispatched without units of `{pool}`",
                    task.step_id, task.attempt
                )));
            }
        }
        Ok(())
    }

    fn dependencies_ended(&self, path: &str) -> Result<(), TestCaseError> {
        let run = &self.run;
        let Some(i) = run.index(path) else { return Err(fail(format!("dispatched unknown `{path}`"))) };
        let f = run.insts[i].frame;
        for dep in run.def(i).dependencies() {
            let ended = run.sibling(f, dep).is_some_and(|d| run.insts[d].state.status.is_terminal());
            if !ended {
                return Err(fail(format!("`{path}` dispatched before its dependency `{dep}` ended")));
            }
        }
        Ok(())
    }
}

fn drive(g: PlanGen, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let def = definition(&g);
    let input = json!({"items": (0..g.items).collect::<Vec<_>>(), "flag": g.flag});
    let mut d = Driver::new(&def, input);
    let effects = d.run.apply(Input::Start, 0);
    d.absorb(0, &effects);
    for action in actions {
        if let Some((input, at)) = d.input(action) {
            d.apply(input, at)?;
        }
    }
    // However it went, a replay of the whole log equals the live run.
    let (replayed, _) = d.fresh.clone().replay(0, d.log.clone());
    d.replay_equals_live(&replayed)
}

/// 256 cases in the suite; `PROPTEST_CASES` sets a campaign's length.
fn campaign() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(campaign())]

    #[test]
    fn honest_and_forged_inputs_keep_every_invariant(g in plan_gen(), actions in prop::collection::vec(action(), 0..80)) {
        drive(g, actions)?;
    }
}

/// Each kind of step, with the forged inputs that once ended it, in one run: none does.
#[test]
fn forged_inputs_end_no_step() {
    let def = json!({"name": "f", "max_parallel": 1, "steps": [
        {"id": "approval", "signal": {"name": "approve"}},
        {"id": "pause", "wait": {"duration": "1h"}},
        {"id": "each", "for_each": {"items": "{input.items}", "do": [{"id": "one", "tool": "t"}]}},
        {"id": "ship", "workflow": {"name": "child"}},
        {"id": "a", "tool": "t"},
        {"id": "b", "tool": "t"}
    ]});
    let mut d = Driver::new(&def, json!({"items": [1, 2]}));
    let effects = d.run.apply(Input::Start, 0);
    d.absorb(0, &effects);
    for path in ["approval", "pause", "each", "ship", "each[0].one", "b", "nowhere"] {
        for attempt in 0..3 {
            let forged = TaskResult {
                run_id: Uuid::nil(),
                step_id: path.into(),
                attempt,
                compensation: false,
                worker: "mallory".into(),
                started_ms: u64::MAX,
                finished_ms: 0,
                outcome: Outcome::Ok(json!({"forged": true})),
                usage: None,
                token: String::new(),
            };
            let effects = d.run.apply(Input::Result { result: forged }, 1);
            assert!(
                effects.iter().all(|e| matches!(e, Effect::Ignored(Ignored { unexpected: true, .. }))),
                "{path} attempt {attempt}: {effects:?}"
            );
        }
    }
    // A 1-hour wait's timer, sent at once, is armed again for the time left.
    let early = d.run.apply(Input::Timer { timer: Timer::WaitOver { step: "pause".into() } }, 2);
    assert!(early.contains(&Effect::Schedule {
        timer: Timer::WaitOver { step: "pause".into() },
        after: Duration::from_millis(3_600_000 - 2)
    }));
    let record = d.run.record();
    for (path, status) in
        [("approval", StepStatus::Running), ("pause", StepStatus::Running), ("each", StepStatus::Running)]
    {
        assert_eq!(record.steps[path].status, status, "{path}");
    }
    assert_eq!(record.steps["b"].status, StepStatus::Pending, "max_parallel 1 holds: one task runs");
    assert_eq!(d.run.running.count(), 1);
}
