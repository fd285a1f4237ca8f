//! Validation tests: each problem kind, reported with its place, all at once.

use serde_json::json;

use super::*;
use crate::catalogue::ToolSpec;
use crate::plan::Kind;

fn def(value: serde_json::Value) -> WorkflowDef {
    WorkflowDef::from_json(&value.to_string()).expect("parses")
}

fn problems(value: serde_json::Value) -> Vec<Problem> {
    compile(&def(value), None).expect_err("invalid").0
}

fn has(problems: &[Problem], code: Code, path: &str, text: &str) {
    assert!(
        problems.iter().any(|p| p.code == code && p.path == path && p.message.contains(text)),
        "no {code:?} at {path} containing {text:?} in:\n{}",
        Problems(problems.to_vec())
    );
}

#[test]
fn reports_everything_at_once() {
    let ps = problems(json!({"name": "bad", "steps": [
        {"id": "a", "tool": "t", "params": {"x": "{c.v}"}},
        {"id": "a", "tool": "t"},
        {"id": "b", "tool": "t", "depends_on": ["nope"], "timeout": "5 parsecs"},
        {"id": "c", "tool": "t", "params": {"y": "{a.v}", "z": "{ghost}"}},
        {"id": "l", "loop": {"do": [{"id": "inner", "tool": "t"}]}},
        {"id": "r", "tool": "t", "params": {"v": "{inner.x}", "w": "oops {"}}
    ]}));
    has(&ps, Code::DuplicateId, "steps[1].id", "already called `a`");
    has(&ps, Code::UnknownDependency, "steps[2].depends_on[0]", "`nope`");
    has(&ps, Code::BadDuration, "steps[2].timeout", "5 parsecs");
    has(&ps, Code::Cycle, "steps[0]", "dependency cycle: a -> c -> a");
    has(&ps, Code::UnknownReference, "steps[3].params", "`ghost` is not a step");
    has(&ps, Code::MissingPart, "steps[4].loop.max_iterations", "max_iterations");
    has(&ps, Code::MissingPart, "steps[4].loop.until", "until");
    has(&ps, Code::NotUpstream, "steps[5].params", "`inner` is inside `l`");
    has(&ps, Code::BadTemplate, "steps[5].params.w", "unclosed");
    // Sorted by place.
    let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| natural_path_order(a, b));
    assert_eq!(paths, sorted);
}

#[test]
fn cycles_through_depends_on_and_self() {
    let ps = problems(json!({"name": "c", "steps": [
        {"id": "a", "tool": "t", "depends_on": ["b"]},
        {"id": "b", "tool": "t", "params": {"v": "{a}"}},
        {"id": "s", "tool": "t", "params": {"v": "{s.x}"}}
    ]}));
    has(&ps, Code::Cycle, "steps[0]", "a -> b -> a");
    has(&ps, Code::Cycle, "steps[2]", "s -> s");
}

#[test]
fn long_cycles_show_the_whole_path() {
    let ps = problems(json!({"name": "c", "steps": [
        {"id": "a", "tool": "t", "depends_on": "d"},
        {"id": "b", "tool": "t", "depends_on": "a"},
        {"id": "c", "tool": "t", "depends_on": "b"},
        {"id": "d", "tool": "t", "depends_on": "c"},
        {"id": "free", "tool": "t"}
    ]}));
    assert_eq!(ps.len(), 1, "{}", Problems(ps.clone()));
    assert_eq!(ps[0].message, "dependency cycle: a -> b -> c -> d -> a");
}

#[test]
fn dependencies_by_kind() {
    let plan = compile(
        &def(json!({"name": "k", "steps": [
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t"},
            {"id": "c", "tool": "t"},
            {"id": "d", "tool": "t", "params": {"x": "{a.v}"}, "when": {"exists": "{b}"}, "depends_on": ["c"]},
            {"id": "e", "tool": "t", "params": {"x": "{a.v}"}, "when": {"exists": "{a}"}}
        ]})),
        None,
    )
    .expect("valid");
    let d = &plan.steps[3];
    assert_eq!(d.needs.iter().collect::<Vec<_>>(), ["a"]);
    assert_eq!(d.watches.iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(d.after.iter().collect::<Vec<_>>(), ["c"]);
    // Read by params and condition: a need, not a watch.
    assert!(plan.steps[4].watches.is_empty());
}

#[test]
fn bodies_lift_outer_reads_to_their_construct() {
    let plan = compile(
        &def(json!({"name": "n", "steps": [
            {"id": "src", "tool": "list"},
            {"id": "cfg", "tool": "config"},
            {"id": "each", "for_each": {"items": "{src.items}", "do": [
                {"id": "one", "tool": "t", "params": {"item": "{item}", "i": "{index}", "c": "{cfg.mode}"}},
                {"id": "two", "tool": "t", "params": {"prev": "{one}"}}
            ]}},
            {"id": "after", "tool": "t", "params": {"all": "{each}"}}
        ]})),
        None,
    )
    .expect("valid");
    let each = &plan.steps[2];
    assert_eq!(each.needs.iter().collect::<Vec<_>>(), ["cfg", "src"]);
    let Kind::ForEach { body, .. } = &each.kind else { panic!("for_each") };
    assert!(body[0].needs.is_empty(), "outer reads are the construct's");
    assert_eq!(body[1].needs.iter().collect::<Vec<_>>(), ["one"]);
}

#[test]
fn a_body_cannot_read_its_own_construct() {
    let ps = problems(json!({"name": "n", "steps": [
        {"id": "l", "loop": {"max_iterations": 3, "until": true, "do": [
            {"id": "x", "tool": "t", "params": {"v": "{l.result}"}}
        ]}}
    ]}));
    has(&ps, Code::Cycle, "steps[0].loop.do[0].params", "cannot read `l` itself");
}

#[test]
fn loop_until_reads_the_body() {
    let plan = compile(
        &def(json!({"name": "n", "steps": [
            {"id": "start", "tool": "t"},
            {"id": "poll", "loop": {"max_iterations": 5,
                "until": {"eq": ["{check.status}", "{start.target}"]},
                "do": [{"id": "check", "tool": "status", "params": {"n": "{iteration}", "last": "{previous}"}}]}}
        ]})),
        None,
    )
    .expect("valid");
    assert_eq!(plan.steps[1].needs.iter().collect::<Vec<_>>(), ["start"]);
}

#[test]
fn construct_mistakes() {
    let ps = problems(json!({"name": "n", "steps": [
        {"id": "sw", "switch": {"cases": []}},
        {"id": "sw2", "switch": {"cases": [{"value": 1, "do": [{"id": "v1", "tool": "t"}]}, {"do": []}]}},
        {"id": "race", "race": {"branches": [{"id": "only", "tool": "t"}]}},
        {"id": "fb", "fallback": {"alternatives": [{"id": "alt1", "tool": "t"}]}},
        {"id": "par", "parallel": {"min_successes": 3, "steps": [{"id": "p1", "tool": "t"}]}},
        {"id": "w", "wait": {}},
        {"id": "w2", "wait": {"until": "tomorrow"}},
        {"id": "sig", "signal": {"timeout": "0s"}},
        {"id": "fe", "for_each": {"items": "list: {sw}", "do": []}},
        {"id": "pl", "pipeline": {"stages": []}},
        {"id": "sub", "workflow": {"name": "n"}}
    ]}));
    has(&ps, Code::MissingPart, "steps[0].switch.cases", "at least one case");
    has(&ps, Code::MissingPart, "steps[1].switch.cases[0].value", "needs the switch's `on`");
    has(&ps, Code::MissingPart, "steps[1].switch.cases[1]", "`value` or a `when`");
    has(&ps, Code::MissingPart, "steps[1].switch.cases[1].do", "at least one step");
    has(&ps, Code::MissingPart, "steps[2].race.branches", "at least two branches");
    has(&ps, Code::MissingPart, "steps[3].fallback.alternatives", "at least two");
    has(&ps, Code::InvalidValue, "steps[4].parallel.min_successes", "between 1 and the number of steps (1)");
    has(&ps, Code::MissingPart, "steps[5].wait", "`duration` or an `until`");
    has(&ps, Code::BadDuration, "steps[6].wait.until", "invalid time");
    has(&ps, Code::MissingPart, "steps[7].signal.name", "name");
    has(&ps, Code::BadDuration, "steps[7].signal.timeout", "more than 0");
    has(&ps, Code::InvalidValue, "steps[8].for_each.items", "must be a list");
    has(&ps, Code::MissingPart, "steps[8].for_each.do", "at least one step");
    has(&ps, Code::MissingPart, "steps[9].pipeline.stages", "at least one stage");
    has(&ps, Code::Cycle, "steps[10].workflow.name", "cannot run itself");
}

#[test]
fn switch_cases_do_not_see_each_other() {
    let ps = problems(json!({"name": "n", "steps": [
        {"id": "s", "switch": {"on": "{input.kind}", "cases": [
            {"value": "a", "do": [{"id": "in_a", "tool": "t"}]},
            {"value": "b", "do": [{"id": "in_b", "tool": "t", "params": {"x": "{in_a}"}}]}
        ]}}
    ]}));
    has(&ps, Code::NotUpstream, "steps[0].switch.cases[1].do[0].params", "`in_a` is inside `s`");
}

#[test]
fn race_branches_are_independent() {
    let ps = problems(json!({"name": "n", "steps": [
        {"id": "r", "race": {"branches": [
            {"id": "x", "tool": "t"},
            {"id": "y", "tool": "t", "params": {"v": "{x}"}}
        ]}}
    ]}));
    has(&ps, Code::InvalidValue, "steps[0].race.branches[1]", "cannot depend on `x`");
}

#[test]
fn compensations_read_only_upstream() {
    let ps = problems(json!({"name": "n", "on_failure": "compensate", "steps": [
        {"id": "reserve", "tool": "t", "compensate": {"tool": "release", "params": {"id": "{reserve.id}"}}},
        {"id": "charge", "tool": "t", "params": {"r": "{reserve.id}"},
         "compensate": {"tool": "refund", "params": {"id": "{charge.id}", "r": "{reserve.id}", "s": "{ship.id}"}}},
        {"id": "ship", "tool": "t", "params": {"c": "{charge.id}"}}
    ]}));
    assert_eq!(ps.len(), 1, "{}", Problems(ps.clone()));
    has(&ps, Code::NotUpstream, "steps[1].compensate.params", "`ship`, which is not upstream of `charge`");
}

#[test]
fn ids_and_bindings() {
    let ps = problems(json!({"name": "n", "steps": [
        {"id": "input", "tool": "t"},
        {"id": "9lives", "tool": "t"},
        {"id": "item", "tool": "t"},
        {"id": "fe", "for_each": {"items": [1, 2], "do": [{"id": "x", "tool": "t"}]}}
    ]}));
    has(&ps, Code::InvalidId, "steps[0].id", "reserved");
    has(&ps, Code::InvalidId, "steps[1].id", "ids start with a letter");
    has(&ps, Code::InvalidId, "steps[3].for_each.do", "`item` bound here is also a step id");
}

#[test]
fn retry_policies_and_defaults() {
    let plan = compile(
        &def(json!({"name": "r", "defaults": {"retry": {"max_attempts": 4, "backoff": "1s"}, "timeout": "10s"},
        "steps": [
            {"id": "a", "tool": "t"},
            {"id": "b", "tool": "t", "retry": {"max_attempts": 2, "non_retryable": ["BAD"]}, "timeout": 3}
        ]})),
        None,
    )
    .expect("valid");
    assert_eq!(plan.steps[0].retry.max_attempts, 4);
    assert_eq!(plan.steps[0].timeout, Some(std::time::Duration::from_secs(10)));
    let b = &plan.steps[1].retry;
    assert_eq!((b.max_attempts, b.backoff), (2, std::time::Duration::from_secs(1)));
    assert!(b.non_retryable.contains("BAD"));
    assert_eq!(plan.steps[1].timeout, Some(std::time::Duration::from_secs(3)));

    let ps = problems(json!({"name": "r", "steps": [
        {"id": "a", "tool": "t", "retry": {"max_attempts": 0, "jitter": 2, "multiplier": 0.5, "backoff": "1m", "max_backoff": "1s"}}
    ]}));
    has(&ps, Code::InvalidValue, "steps[0].retry.max_attempts", "at least 1");
    has(&ps, Code::InvalidValue, "steps[0].retry.jitter", "between 0 and 1");
    has(&ps, Code::InvalidValue, "steps[0].retry.multiplier", "1 or more");
    has(&ps, Code::InvalidValue, "steps[0].retry.backoff", "exceeds max_backoff");
}

fn catalogue() -> Catalogue {
    Catalogue::new([
        ToolSpec {
            name: "get_weather".into(),
            version: "1".into(),
            description: String::new(),
            params: json!({"type": "object", "required": ["location"], "additionalProperties": false,
                "properties": {"location": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}}),
        },
        ToolSpec {
            name: "get_user".into(),
            version: "1".into(),
            description: String::new(),
            params: json!({"type": "object"}),
        },
    ])
}

#[test]
fn tools_and_params_against_a_catalogue() {
    let d = def(json!({"name": "t", "steps": [
        {"id": "u", "tool": "get_usr"},
        {"id": "w", "tool": "get_weather", "params": {"days": 0, "extra": true}},
        {"id": "ok", "tool": "get_weather", "params": {"location": "{u.city}", "days": "{u.days}"}},
        {"id": "txt", "tool": "get_weather", "params": {"location": 5}}
    ]}));
    let ps = compile(&d, Some(&catalogue())).expect_err("invalid").0;
    has(&ps, Code::UnknownTool, "steps[0].tool", "did you mean `get_user`?");
    has(&ps, Code::InvalidParams, "steps[1].params", "\"location\" is a required property");
    has(&ps, Code::InvalidParams, "steps[1].params.days", "minimum");
    has(&ps, Code::InvalidParams, "steps[3].params.location", "is not of type \"string\"");
    assert!(!ps.iter().any(|p| p.path.starts_with("steps[2]")), "references are checked at run time");
}

#[test]
fn output_and_input_schema() {
    let ps = problems(json!({"name": "o", "input_schema": {"type": "nonsense"},
        "steps": [{"id": "a", "tool": "t"}], "output": {"x": "{b.v}"}}));
    has(&ps, Code::InvalidValue, "input_schema", "not a valid JSON Schema");
    has(&ps, Code::UnknownReference, "output", "`b` is not a step");
}

#[test]
fn paths_sort_naturally() {
    assert_eq!(natural_path_order("steps[9]", "steps[10]"), std::cmp::Ordering::Less);
    assert_eq!(natural_path_order("steps[2].a", "steps[2].b"), std::cmp::Ordering::Less);
}

#[test]
fn an_output_that_reads_a_step_that_may_be_skipped_is_a_warning() {
    let plan = compile(
        &def(json!({"name": "w", "steps": [
            {"id": "weather", "tool": "t"},
            {"id": "cold_alert", "tool": "t", "when": {"lt": ["{weather.temp}", 0]}},
            {"id": "notify", "tool": "t", "params": {"alert": "{cold_alert}"}}
        ], "output": {"alert": "{notify}", "temp": "{weather.temp}"}})),
        None,
    )
    .expect("valid");
    let warnings = super::warnings(&plan);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    has(&warnings, Code::MaySkip, "output", "reads `notify`, which may be skipped");
}

#[test]
fn plan_steps_name_a_goal_and_tools_workers_offer() {
    let ps = problems(json!({"name": "p", "steps": [
        {"id": "a", "plan": {"max_steps": 0}},
        {"id": "b", "plan": {"goal": "{nowhere.goal}", "tools": ["get_user"]}}
    ]}));
    has(&ps, Code::MissingPart, "steps[0].plan.goal", "needs the `goal`");
    has(&ps, Code::MissingPart, "steps[0].plan.tools", "needs the `tools`");
    has(&ps, Code::InvalidValue, "steps[0].plan.max_steps", "at least 1");
    has(&ps, Code::UnknownReference, "steps[1].plan", "nowhere");
    // Against a catalogue: its tools, and a worker serving `llm`.
    let d = def(json!({"name": "p", "steps": [{"id": "a", "plan": {"goal": "g", "tools": ["get_user", "nope"]}}]}));
    let ps = compile(&d, Some(&catalogue())).expect_err("invalid").0;
    has(&ps, Code::UnknownTool, "steps[0].plan.tools[1]", "no worker offers a tool `nope`");
    has(&ps, Code::UnknownTool, "steps[0].plan", "no worker offers it");
    let plan = compile(&def(json!({"name": "p", "steps": [{"id": "a", "plan": {"goal": "g", "tools": ["t"]}}]})), None)
        .expect("valid");
    assert_eq!(plan.steps[0].retry.max_attempts, 3, "a plan's model calls are retried by default");
}
