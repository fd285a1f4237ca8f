//! `transform`: applies a jq filter to `input` with jaq, a pure-Rust jq.
//!
//! One output is returned as it is, several as an array, none as `null`. A filter that
//! does not compile is `BAD_PARAMS`; one that errors at run time is `FILTER_ERROR`; both
//! are permanent, since the same input fails the same way. `env` is left out so workflow
//! authors cannot read the worker's environment, and `halt` ends the filter, not the worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::{Num, Val};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::ToolError;

use crate::tool::{Tool, ToolContext, bad_params, cancelled, parse_params};

/// Error code of a filter that fails at run time.
pub const FILTER_ERROR: &str = "FILTER_ERROR";

/// jaq recurses on the native stack: give it room so deep but finite filters work.
const STACK_BYTES: usize = 64 * 1024 * 1024;

/// A filter that never stops producing is cut here.
const MAX_OUTPUTS: usize = 100_000;

/// Applies a jq filter.
#[derive(Debug, Clone, Copy)]
pub struct Transform;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    input: Value,
    filter: String,
}

#[async_trait]
impl Tool for Transform {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "transform".into(),
            version: "1".into(),
            description: "Built-in. Applies the jq filter `filter` to `input` and returns its output: a single output \
                          as it is, several as an array, none as null; e.g. {\"input\": [1,2], \"filter\": \
                          \"map(. * 2)\"} returns [2,4]. Fails if the filter does not compile or errors."
                .into(),
            params: json!({
                "type": "object",
                "properties": {"input": {}, "filter": {"type": "string"}},
                "required": ["filter"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let Params { input, filter } = parse_params("transform", params)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A thread of its own (not the blocking pool) for the large stack; the filter is
        // CPU-bound, so it must not run on the async workers either.
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name("weft-jq".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                // The receiver is gone only if the call was abandoned.
                let _ = tx.send(apply(&filter, input, &thread_stop));
            })
            .map_err(|e| ToolError::new(format!("cannot start a thread for the jq filter: {e}")))?;
        tokio::select! {
            out = rx => out.map_err(|_| ToolError::new("the jq filter crashed").with_code(FILTER_ERROR).permanent())?,
            () = ctx.cancel.cancelled() => {
                stop.store(true, Ordering::Relaxed);
                Err(cancelled("transform"))
            }
        }
    }
}

/// Compiles and runs `filter` on `input` (blocking).
pub fn apply(filter: &str, input: Value, stop: &AtomicBool) -> Result<Value, ToolError> {
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs().filter(|(name, ..)| *name != "env")).chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code: filter, path: () })
        .map_err(|errors| bad_params(format!("jq filter does not parse: {}", load_errors(filter, &errors))))?;
    let compiled = Compiler::default().with_funs(funs).compile(modules).map_err(|errors| {
        let names: Vec<String> = errors
            .iter()
            .flat_map(|(_, undefined)| undefined.iter().map(|(name, kind)| format!("{} `{name}`", kind.as_str())))
            .collect();
        bad_params(format!("jq filter does not compile: undefined {}", names.join(", ")))
    })?;
    let input = to_val(&input)?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&compiled.lut, Vars::new([]));
    let mut outputs = Vec::new();
    for out in compiled.id.run((ctx, input)) {
        if stop.load(Ordering::Relaxed) {
            return Err(cancelled("transform"));
        }
        if outputs.len() == MAX_OUTPUTS {
            return Err(runtime(format!("the filter produced more than {MAX_OUTPUTS} outputs")));
        }
        // Not `unwrap_valr`: it exits the process on `halt`.
        let value = out.map_err(|exn| match exn.get_err() {
            Ok(e) => runtime(format!("jq filter failed: {e}")),
            Err(exn) => match exn.get_halt() {
                Ok(code) => runtime(format!("jq filter halted with exit code {code}")),
                Err(_) => runtime("jq filter failed".to_owned()),
            },
        })?;
        outputs.push(to_json(&value));
    }
    Ok(match outputs.len() {
        0 => Value::Null,
        1 => outputs.swap_remove(0),
        _ => Value::Array(outputs),
    })
}

fn runtime(message: String) -> ToolError {
    ToolError::new(message).with_code(FILTER_ERROR).permanent()
}

fn to_val(input: &Value) -> Result<Val, ToolError> {
    let text = serde_json::to_vec(input).map_err(|e| bad_params(format!("input is not JSON: {e}")))?;
    jaq_json::read::parse_single(&text).map_err(|e| bad_params(format!("input cannot be read by jq: {e}")))
}

/// jaq values as JSON, the way jq prints them (NaN as null, byte strings as text).
fn to_json(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => match n {
            Num::Int(i) => json!(i),
            Num::Float(f) => json!(f),
            Num::BigInt(_) | Num::Dec(_) => {
                let text = n.to_string();
                serde_json::from_str(&text).unwrap_or_else(|_| text.parse::<f64>().map_or(Value::Null, |f| json!(f)))
            }
        },
        Val::BStr(b) | Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::BStr(b) | Val::TStr(b) => String::from_utf8_lossy(b).into_owned(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

/// Lex and parse errors with where they are in the filter.
fn load_errors(code: &str, errors: &jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let at = |found: &str| {
        // The error's text is a slice of the filter: its address gives its position.
        let offset = (found.as_ptr() as usize).saturating_sub(code.as_ptr() as usize).min(code.len());
        let shown: String = found.chars().take(20).collect();
        let chars = code.char_indices().take_while(|(i, _)| *i < offset).count();
        if shown.is_empty() {
            format!("at the end (character {chars})")
        } else {
            format!("at {shown:?} (character {chars})")
        }
    };
    let mut parts = Vec::new();
    for (_, error) in errors {
        match error {
            Error::Io(items) => parts.extend(items.iter().map(|(path, e)| format!("cannot load {path}: {e}"))),
            Error::Lex(items) => parts.extend(items.iter().map(|(expect, found)| {
                let what = match expect {
                    jaq_core::load::lex::Expect::Delim(open) => format!("something to close `{open}`"),
                    jaq_core::load::lex::Expect::Digit => "a digit".to_owned(),
                    jaq_core::load::lex::Expect::Ident => "an identifier".to_owned(),
                    jaq_core::load::lex::Expect::Escape => "a string escape sequence".to_owned(),
                    jaq_core::load::lex::Expect::Unicode => "a 4-digit hexadecimal code point".to_owned(),
                    jaq_core::load::lex::Expect::Token => "a token".to_owned(),
                    _ => "something else".to_owned(),
                };
                format!("expected {what} {}", at(found))
            })),
            Error::Parse(items) => {
                parts.extend(items.iter().map(|(expect, found)| format!("expected {} {}", expect.as_str(), at(found))))
            }
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use weft_protocol::wire::codes;

    use super::*;

    async fn run(input: Value, filter: &str) -> Result<Value, ToolError> {
        Transform.call(json!({"input": input, "filter": filter}), ToolContext::default()).await
    }

    #[tokio::test]
    async fn applies_filters() {
        assert_eq!(run(json!([1, 2]), "map(. * 2)").await, Ok(json!([2, 4])));
        assert_eq!(run(json!({"a": {"b": "x"}}), ".a.b").await, Ok(json!("x")));
        assert_eq!(run(json!([1, 2, 3]), ".[] | select(. > 1)").await, Ok(json!([2, 3])));
        assert_eq!(run(json!([]), ".[]").await, Ok(Value::Null));
        assert_eq!(run(json!([1, 2, 3, 4, 5]), "map(. * 2 + 1) | .[2:]").await, Ok(json!([7, 9, 11])));
        assert_eq!(
            run(json!([{"n": "a", "v": 1}, {"n": "b", "v": 2}]), "reduce .[] as $e ({}; .[$e.n] = $e.v)").await,
            Ok(json!({"a": 1, "b": 2}))
        );
        assert_eq!(run(json!([1.5, 2]), "add").await, Ok(json!(3.5)));
        assert_eq!(
            run(json!("x"), "{a: ., n: nan, big: 100000000000000000000}").await.map(|v| v["n"].clone()),
            Ok(Value::Null)
        );
    }

    #[tokio::test]
    async fn bad_filters_are_permanent_errors() {
        let e = run(json!(1), ".a | ").await.expect_err("parse error");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS));
        assert!(!e.retryable);
        let e = run(json!(1), "nosuchfn(1)").await.expect_err("undefined");
        assert!(e.message.contains("nosuchfn"), "{}", e.message);
        let e = run(json!(1), "env").await.expect_err("env is left out");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS));
        let e = run(json!("text"), ". + 1").await.expect_err("type error");
        assert_eq!(e.code.as_deref(), Some(FILTER_ERROR));
        let e = run(json!(null), "halt_error").await.expect_err("halt does not exit");
        assert_eq!(e.code.as_deref(), Some(FILTER_ERROR));
        let e = run(json!(null), "repeat(1)").await.expect_err("endless");
        assert!(e.message.contains("more than"), "{}", e.message);
    }
}
