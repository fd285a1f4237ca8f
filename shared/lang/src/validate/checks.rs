//! Field-level checks: durations, retry policies, JSON Schemas, and turning template and
//! condition errors into located problems.

use std::time::Duration;

use serde_json::Value;

use super::{Code, Problem};
use crate::catalogue::ToolSpec;
use crate::condition::Condition;
use crate::definition::{DurationDef, RetryDef};
use crate::plan::RetryPolicy;
use crate::reference::{Template, is_ident};

/// Collects problems for one document.
#[derive(Debug, Default)]
pub(super) struct Sink {
    /// Problems so far.
    pub problems: Vec<Problem>,
    /// Tools' params schemas, compiled once per document (a thousand steps of one tool
    /// compile its schema once).
    pub validators: std::collections::HashMap<String, Result<std::sync::Arc<jsonschema::Validator>, String>>,
}

impl Sink {
    /// Records a problem.
    pub(super) fn push(&mut self, path: impl Into<String>, step: Option<&str>, code: Code, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), step: step.map(str::to_owned), code, message: message.into() });
    }

    /// Parses a duration; `positive` rejects zero.
    pub(super) fn duration(
        &mut self,
        d: Option<&DurationDef>,
        path: String,
        step: Option<&str>,
        positive: bool,
    ) -> Option<Duration> {
        match d?.to_duration() {
            Ok(d) if positive && d.is_zero() => {
                self.push(path, step, Code::BadDuration, "must be more than 0");
                None
            }
            Ok(d) => Some(d),
            Err(message) => {
                self.push(path, step, Code::BadDuration, message);
                None
            }
        }
    }

    /// Resolves a retry policy written over `base`.
    pub(super) fn retry(&mut self, def: &RetryDef, base: &RetryPolicy, path: &str, step: Option<&str>) -> RetryPolicy {
        let mut p = base.clone();
        if let Some(n) = def.max_attempts {
            if n == 0 {
                self.push(
                    format!("{path}.max_attempts"),
                    step,
                    Code::InvalidValue,
                    "must be at least 1 (1 means no retry)",
                );
            } else {
                p.max_attempts = n;
            }
        } else if base.max_attempts == 1 {
            // `retry: {...}` without a count means "do retry": the standard count.
            p.max_attempts = RetryPolicy::standard().max_attempts;
        }
        if let Some(d) = self.duration(def.backoff.as_ref(), format!("{path}.backoff"), step, false) {
            p.backoff = d;
        }
        if let Some(d) = self.duration(def.max_backoff.as_ref(), format!("{path}.max_backoff"), step, false) {
            p.max_backoff = d;
        }
        if let Some(m) = def.multiplier {
            if m.is_finite() && m >= 1.0 {
                p.multiplier = m;
            } else {
                self.push(
                    format!("{path}.multiplier"),
                    step,
                    Code::InvalidValue,
                    format!("must be 1 or more, found {m}"),
                );
            }
        }
        if let Some(j) = def.jitter {
            if (0.0..=1.0).contains(&j) {
                p.jitter = j;
            } else {
                self.push(
                    format!("{path}.jitter"),
                    step,
                    Code::InvalidValue,
                    format!("must be between 0 and 1, found {j}"),
                );
            }
        }
        if p.backoff > p.max_backoff {
            self.push(
                format!("{path}.backoff"),
                step,
                Code::InvalidValue,
                format!("backoff {:?} exceeds max_backoff {:?}", p.backoff, p.max_backoff),
            );
        }
        p.non_retryable.extend(def.non_retryable.iter().cloned());
        p
    }

    /// Parses a template, reporting each malformed string at its own path.
    pub(super) fn template(&mut self, value: &Value, path: &str, step: Option<&str>) -> Template {
        let (template, errors) = Template::parse_lenient(value);
        for e in errors {
            self.push(format!("{path}{}", pointer_to_path(&e.pointer)), step, Code::BadTemplate, e.to_string());
        }
        template
    }

    /// Parses a condition, reporting each problem at its own path.
    pub(super) fn condition(&mut self, value: &Value, path: &str, step: Option<&str>) -> Condition {
        Condition::parse(value).unwrap_or_else(|errors| {
            for e in errors {
                let code = if e.limit { Code::LimitExceeded } else { Code::BadCondition };
                self.push(format!("{path}{}", pointer_to_path(&e.pointer)), step, code, e.message);
            }
            Condition::Const(false)
        })
    }

    /// Checks that `schema` is a usable JSON Schema.
    pub(super) fn schema(&mut self, schema: &Value, path: String, step: Option<&str>) {
        if let Err(e) = jsonschema::validator_for(schema) {
            self.push(path, step, Code::InvalidValue, format!("not a valid JSON Schema: {e}"));
        }
    }

    /// Checks literal params against a tool's schema. Values that are whole references
    /// are only known at run time, so errors located at them are not reported here.
    pub(super) fn params(&mut self, spec: &ToolSpec, params: &Value, path: &str, step: Option<&str>) {
        let compiled = self
            .validators
            .entry(spec.name.clone())
            .or_insert_with(|| {
                jsonschema::validator_for(&spec.params).map(std::sync::Arc::new).map_err(|e| e.to_string())
            })
            .clone();
        let validator = match compiled {
            Ok(v) => v,
            Err(e) => {
                self.push(
                    path,
                    step,
                    Code::InvalidParams,
                    format!("tool `{}` has an invalid params schema: {e}", spec.name),
                );
                return;
            }
        };
        for error in validator.iter_errors(params) {
            let pointer = error.instance_path().as_str().to_owned();
            let dynamic = params.pointer(&pointer).is_some_and(|v| matches!(Template::parse(v), Ok(Template::Ref(_))));
            if dynamic {
                continue;
            }
            self.push(
                format!("{path}{}", pointer_to_path(&pointer)),
                step,
                Code::InvalidParams,
                format!("{error} (tool `{}`)", spec.name),
            );
        }
    }
}

/// `/a/0/b c` -> `.a[0]["b c"]`.
pub(super) fn pointer_to_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|raw| raw.replace("~1", "/").replace("~0", "~"))
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                format!("[{seg}]")
            } else if is_ident(&seg) {
                format!(".{seg}")
            } else {
                format!("[{seg:?}]")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_paths() {
        assert_eq!(pointer_to_path(""), "");
        assert_eq!(pointer_to_path("/a/0/b c"), ".a[0][\"b c\"]");
        assert_eq!(pointer_to_path("/x~1y"), "[\"x/y\"]");
    }
}
