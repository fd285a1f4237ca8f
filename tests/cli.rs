//! The `weft` command line against the example files and deliberately broken ones.

use std::io::Write;

use serde_json::Value;
use weft_tests::{example_files, text, weft};

/// A JSON file in the temp dir, removed on drop.
struct TempJson(tempfile::NamedTempFile);

impl TempJson {
    fn as_str(&self) -> &str {
        self.0.path().to_str().expect("utf-8 temp path")
    }
}

fn temp_file(contents: &str) -> TempJson {
    let mut f = tempfile::Builder::new().suffix(".json").tempfile().expect("temp file");
    f.write_all(contents.as_bytes()).expect("write temp file");
    TempJson(f)
}

#[test]
fn every_example_is_valid_against_the_demo_catalogue() {
    let files = example_files();
    assert!(files.len() >= 30, "expected every seed example and pattern, found {}", files.len());
    let mut args = vec!["validate", "--tools", "examples/tools/catalogue.json"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = weft(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.contains(": ok (")).count(), files.len(), "{stdout}");
}

#[test]
fn a_to_e_has_three_levels_and_a_three_step_critical_path() {
    let out = weft(&["analyze", "examples/dag_a_to_e.json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("levels (3): [a, b] [c, d] [e]"), "{stdout}");
    assert!(stdout.contains("critical path: a -> c -> e (3 steps"), "{stdout}");
    assert!(stdout.contains("max parallelism: 2"), "{stdout}");

    let out = weft(&["analyze", "examples/dag_a_to_e.json", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["levels"], serde_json::json!([["a", "b"], ["c", "d"], ["e"]]));
    assert_eq!(report["critical_path_steps"], 3);
}

#[test]
fn per_tool_durations_change_the_critical_path() {
    let durations =
        temp_file(r#"{"step_a": "500ms", "step_b": "2s", "step_c": "500ms", "step_d": "500ms", "step_e": 0.5}"#);
    let out = weft(&["analyze", "examples/dag_a_to_e.json", "--durations", durations.as_str()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("critical path: b -> d -> e (3 steps, 3.00s)"), "{stdout}");
}

#[test]
fn invalid_files_list_every_problem_and_exit_5() {
    let bad = temp_file(
        r#"{"name": "broken", "steps": [
            {"id": "a", "tool": "get_user", "params": {"user_id": "{c.id}"}},
            {"id": "c", "tool": "get_weathr", "params": {"location": "{a.city}"}},
            {"id": "a", "tool": "echo", "timeout": "soon"}
        ]}"#,
    );
    let out = weft(&["validate", "--tools", "examples/tools/catalogue.json", bad.as_str()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("steps[0] (step `a`): dependency cycle: a -> c -> a"), "{stderr}");
    assert!(
        stderr.contains("steps[1].tool (step `c`): no worker offers a tool `get_weathr`; did you mean `get_weather`"),
        "{stderr}"
    );
    assert!(stderr.contains("steps[2].id (step `a`): another step is already called `a`"), "{stderr}");
    assert!(stderr.contains("steps[2].timeout (step `a`): invalid duration \"soon\""), "{stderr}");

    let out = weft(&["validate", "--json", bad.as_str()]);
    assert_eq!(out.status.code(), Some(5));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let codes: Vec<&str> =
        report[0]["problems"].as_array().expect("problems").iter().filter_map(|p| p["code"].as_str()).collect();
    assert!(codes.contains(&"cycle") && codes.contains(&"duplicate_id"), "{codes:?}");
}

#[test]
fn malformed_json_says_line_and_column() {
    let bad = temp_file(
        "{\n  \"name\": \"x\",\n  \"steps\": [\n    {\"id\": \"a\", \"tool\": \"echo\", \"retry\": {\"max_attempts\": -1}}\n  ]\n}\n",
    );
    let out = weft(&["validate", bad.as_str()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr.contains("at steps[0].retry.max_attempts, line 4, column"), "{stderr}");
    assert!(stderr.contains("expected u32"), "{stderr}");

    let truncated = temp_file("{\"name\": \"x\", \"steps\": [");
    let out = weft(&["validate", truncated.as_str()]);
    assert_eq!(out.status.code(), Some(5));
    assert!(text(&out).1.contains("line 1, column"), "{}", text(&out).1);
}

#[test]
fn missing_files_are_errors_not_panics() {
    let out = weft(&["validate", "no/such/file.json"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "an unreadable file is a usage error");
    assert!(stderr.contains("cannot read no/such/file.json"), "{stderr}");
    let out = weft(&["analyze", "examples/dag_a_to_e.json", "--durations", "nope.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn graphs_in_mermaid_and_dot() {
    let out = weft(&["graph", "examples/dag_a_to_e.json", "--format", "mermaid"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.starts_with("flowchart TD"), "{stdout}");
    assert_eq!(stdout.matches("-->").count(), 5, "{stdout}");

    let out = weft(&["graph", "examples/dag_a_to_e.json", "--format", "dot"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("\"a\" -> \"c\";") && stdout.contains("\"d\" -> \"e\";"), "{stdout}");
}
