//! Workflow definitions as users write them: the JSON document model.
//!
//! This is the *syntax*: parsing checks the document's shape (names of fields, their
//! JSON types) and fails fast with the JSON path and line/column. Everything semantic
//! (ids, references, cycles, durations, missing parts) is checked by
//! [`crate::validate`], which reports every problem at once and produces a
//! [`crate::plan::Plan`].
//!
//! ```json
//! {
//!   "name": "weather_notify",
//!   "version": 1,
//!   "steps": [
//!     {"id": "user", "tool": "get_user", "params": {"user_id": "{input.user_id}"}},
//!     {"id": "weather", "tool": "get_weather", "params": {"city": "{user.city}"}},
//!     {"id": "notify", "tool": "send_notification",
//!      "params": {"message": "Weather in {weather.location}: {weather.temp}°C"}}
//!   ],
//!   "output": {"sent": "{notify.sent}"}
//! }
//! ```

pub mod constructs;
pub mod step;

use std::path::Path as FsPath;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use constructs::{
    CaseDef, FallbackDef, ForEachDef, LoopDef, ParallelDef, PipelineDef, PlanDef, RaceDef, SignalDef, SubWorkflowDef,
    SwitchDef, WaitDef, Winner,
};
pub use step::{CompensateDef, StepDef, StepKindDef};

/// A workflow document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// Editor hint (`$schema`), ignored by Weft.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The workflow's name: registered definitions are found by name and version.
    pub name: String,
    /// Version of this definition (default 1).
    #[serde(default = "default_version")]
    pub version: u32,
    /// What the workflow does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema the run's input must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// The steps. Order matters only for display and tie-breaks; the graph decides.
    pub steps: Vec<StepDef>,
    /// Template of the run's result (default: every step's output by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Time limit for the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationDef>,
    /// At most this many steps run at once (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// What a step failing for good does to the run (default `fail`).
    #[serde(default, skip_serializing_if = "FailurePolicy::is_default")]
    pub on_failure: FailurePolicy,
    /// Defaults for every step that does not set its own.
    #[serde(default, skip_serializing_if = "StepDefaults::is_empty")]
    pub defaults: StepDefaults,
    /// What the run may spend on models, its children and plans included; a run that
    /// would spend more pauses as `budget_exceeded` until resumed with more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// A spending limit on model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Prompt and completion tokens, in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Cost, in the unit of the coordinator's price table (`WEFT_PRICES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

fn default_version() -> u32 {
    1
}

/// What happens to a run when a step fails for good (after its retries), unless the step
/// has `continue_on_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Stop dispatching, cancel running steps, end the run `failed`.
    #[default]
    Fail,
    /// As `fail`, then run the compensations of completed steps in reverse order.
    Compensate,
    /// Keep running every step that does not need the failed step's output; steps that
    /// need it are skipped. The run ends `failed` if any step failed.
    Continue,
}

impl FailurePolicy {
    fn is_default(&self) -> bool {
        *self == FailurePolicy::Fail
    }
}

/// Step settings applied where a step sets none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDefaults {
    /// Default retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// Default per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationDef>,
}

impl StepDefaults {
    fn is_empty(&self) -> bool {
        self.retry.is_none() && self.timeout.is_none()
    }
}

/// How a step is retried after a failed attempt.
///
/// The delay before attempt `n + 1` is `backoff * multiplier^(n-1)`, capped at
/// `max_backoff`, then reduced by a random fraction of up to `jitter` of itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// Attempts in all, the first included (default 3 when `retry` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry (default 200ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<DurationDef>,
    /// Growth of the delay per retry (default 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// Cap on the delay (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<DurationDef>,
    /// Fraction of the delay that is randomised away, 0 to 1 (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// Error codes that fail the step at once, without retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable: Vec<String>,
}

/// A duration as written: `"30s"`, `"1m 30s"`, `"250ms"`, or a number of seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationDef {
    /// Human-readable text, parsed during validation.
    Text(String),
    /// A number of seconds.
    Seconds(f64),
}

impl DurationDef {
    /// Parses the duration; the error says what was expected.
    pub fn to_duration(&self) -> Result<std::time::Duration, String> {
        match self {
            DurationDef::Text(text) => humantime::parse_duration(text.trim())
                .map_err(|e| format!("invalid duration {text:?}: {e} (write e.g. \"250ms\", \"30s\", \"1h 30m\")")),
            DurationDef::Seconds(s) => std::time::Duration::try_from_secs_f64(*s)
                .map_err(|_| format!("invalid duration {s}: seconds must be a finite number, 0 or more")),
        }
    }
}

impl JsonSchema for DurationDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: text such as \"250ms\", \"30s\", \"1h 30m\", or a number of seconds.",
            "anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}]
        })
    }
}

impl Serialize for DurationDef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DurationDef::Text(t) => s.serialize_str(t),
            DurationDef::Seconds(n) => s.serialize_f64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for DurationDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"30s\" or \"250ms\", or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationDef, E> {
                Ok(DurationDef::Text(v.to_owned()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationDef, E> {
                Ok(DurationDef::Seconds(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationDef, E> {
                Ok(DurationDef::Seconds(v as f64))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationDef, E> {
                Ok(DurationDef::Seconds(v as f64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A document that is not a workflow: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}line {line}, column {column}: {message}{}", location(path), also(more))]
pub struct ParseError {
    /// JSON path of the offending value (`steps[2].retry.max_attempts`), empty at the top.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
    /// More problems of the same document, found by reading on past this one (unknown
    /// fields are set aside and the rest read again): `at <path>: <message>` each.
    pub more: Vec<String>,
}

fn also(more: &[String]) -> String {
    more.iter().map(|m| format!("\n  also {m}")).collect()
}

/// "did you mean" for an unknown field or variant, from the names serde says it expected.
fn with_hint(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message;
    };
    let Some((name, expected)) = rest.split_once('`') else { return message };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates.iter().filter_map(|c| Some((crate::catalogue::close(name, c, 2)?, *c))).min();
    match best {
        Some((_, c)) => format!("{message}; did you mean `{c}`?"),
        None => message,
    }
}

/// Removes the member at `path` (serde_path_to_error's) from `value`; whether it did.
fn remove_at(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    let segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut at = value;
    for segment in parents {
        at = match (segment, at) {
            (serde_path_to_error::Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (serde_path_to_error::Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, at) {
        (serde_path_to_error::Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        _ => false,
    }
}

/// The problems after the first: each unknown field is set aside and the document read
/// again, up to a bound, so one misspelling does not hide the next.
fn more_problems(text: &str) -> Vec<String> {
    let Ok(mut value) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    let mut more = Vec::new();
    for round in 0..25 {
        let result: Result<WorkflowDef, _> = serde_path_to_error::deserialize(&value);
        let Err(e) = result else { break };
        let path = e.path().clone();
        let message = with_hint(strip_position(&e.into_inner().to_string()));
        let unknown = message.starts_with("unknown field");
        if round > 0 {
            more.push(format!("at {path}: {message}"));
        }
        if !unknown || !remove_at(&mut value, &path) {
            break;
        }
    }
    more
}

fn location(path: &str) -> String {
    if path.is_empty() || path == "." { String::new() } else { format!("at {path}, ") }
}

/// Reading a definition from a file failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid workflow document.
    #[error("{file}: {source}")]
    Parse {
        /// The file.
        file: String,
        /// Where and why.
        source: ParseError,
    },
}

impl WorkflowDef {
    /// Parses a JSON document.
    pub fn from_json(text: &str) -> Result<WorkflowDef, ParseError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let result: Result<WorkflowDef, _> = serde_path_to_error::deserialize(de);
        result.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ParseError {
                path,
                line: inner.line(),
                column: inner.column(),
                // serde_json appends " at line L column C"; we report those separately.
                message: with_hint(strip_position(&inner.to_string())),
                more: if inner.is_data() { more_problems(text) } else { Vec::new() },
            }
        })
    }

    /// Reads and parses a JSON file.
    pub fn load(file: &FsPath) -> Result<WorkflowDef, LoadError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| LoadError::Io { file: name.clone(), source })?;
        WorkflowDef::from_json(&text).map_err(|source| LoadError::Parse { file: name, source })
    }

    /// The document as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data to a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_says_did_you_mean_and_does_not_hide_the_next() {
        let e = WorkflowDef::from_json(
            r#"{"name": "x", "stepz": [], "steps": [{"id": "a", "tool": "echo", "retyr": {}}]}"#,
        )
        .expect_err("unknown fields");
        assert!(e.message.ends_with("did you mean `steps`?"), "{e}");
        assert_eq!(e.more.len(), 1, "{e}");
        assert!(e.more[0].starts_with("at steps[0].retyr: unknown field `retyr`"), "{e}");
        assert!(e.more[0].ends_with("did you mean `retry`?"), "{e}");
    }

    #[test]
    fn parse_errors_say_where_and_what() {
        let text = "{\n  \"name\": \"x\",\n  \"steps\": [\n    {\"id\": \"a\", \"tool\": \"echo\", \"retry\": {\"max_attempts\": \"3\"}}\n  ]\n}";
        let e = WorkflowDef::from_json(text).expect_err("string for u32");
        assert_eq!(e.path, "steps[0].retry.max_attempts");
        assert_eq!(e.line, 4);
        assert!(e.message.contains("expected u32"), "{e}");
        assert!(e.to_string().starts_with("at steps[0].retry.max_attempts, line 4, column"), "{e}");
    }

    #[test]
    fn typos_are_caught() {
        let e = WorkflowDef::from_json(r#"{"name": "x", "steps": [{"id": "a", "tool": "echo", "depend_on": ["b"]}]}"#)
            .expect_err("unknown field");
        assert!(e.message.contains("unknown field `depend_on`"), "{e}");
        assert_eq!(e.path, "steps[0].depend_on");
    }

    #[test]
    fn malformed_json_has_a_position() {
        let e = WorkflowDef::from_json("{\"name\": \"x\",\n \"steps\": [}").expect_err("bad json");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn round_trips_through_json() {
        let text = r#"{"name": "all", "version": 2, "on_failure": "compensate", "timeout": 60,
          "defaults": {"retry": {"max_attempts": 2}},
          "steps": [
            {"id": "a", "tool": "t", "params": {"x": "{input.x}"}, "retry": {"backoff": "1s"},
             "compensate": {"tool": "undo", "params": {"id": "{a.id}"}}, "resources": {"gpu": 1}, "priority": 5},
            {"id": "f", "for_each": {"items": "{a.list}", "as": "row", "concurrency": 2,
             "do": [{"id": "g", "tool": "t", "params": {"r": "{row}"}}]}},
            {"id": "s", "switch": {"on": "{a.kind}", "cases": [{"value": null, "do": [{"id": "h", "tool": "t"}]}],
             "default": [{"id": "i", "tool": "t"}]}},
            {"id": "l", "loop": {"do": [{"id": "j", "tool": "t"}], "until": true, "max_iterations": 3}},
            {"id": "w", "wait": {"duration": "1s"}, "depends_on": "a"},
            {"id": "sig", "signal": {"name": "ok", "default": null}},
            {"id": "sub", "workflow": {"name": "child", "input": {}}},
            {"id": "r", "race": {"winner": {"max": "score"}, "branches": [{"id": "k", "tool": "t"}, {"id": "m", "tool": "t"}]}},
            {"id": "fb", "fallback": {"alternatives": [{"id": "n", "tool": "t"}, {"id": "o", "tool": "t"}]}},
            {"id": "p", "parallel": {"min_successes": 1, "steps": [{"id": "q", "tool": "t"}]}},
            {"id": "pl", "pipeline": {"input": "{a}", "stages": [{"id": "u", "tool": "t", "params": {"v": "{previous}"}}]},
             "when": {"exists": "{a.id}"}, "continue_on_error": true}
          ]}"#;
        let def = WorkflowDef::from_json(text).expect("parses");
        let StepKindDef::Switch(sw) = &def.steps[2].kind else { panic!("switch") };
        assert_eq!(sw.cases[0].value, Some(Value::Null), "an explicit null is kept");
        let again = WorkflowDef::from_json(&def.to_json_pretty()).expect("reparses");
        assert_eq!(def, again);
    }
}
