//! Conditions: data, not code, deciding whether a step runs (`when`), which case a
//! `switch` takes, or when a `loop` stops.
//!
//! ```json
//! {"all": [
//!   {"gt": ["{order.total}", 100]},
//!   {"in": ["{order.country}", ["FR", "DE"]]},
//!   {"not": {"exists": "{order.coupon}"}}
//! ]}
//! ```
//!
//! Leaves: `eq ne gt gte lt lte in contains` take two operands (templates, so either side
//! may be a reference); `exists` and `is_null` take one reference; `matches` takes a value
//! and a regular expression. `all`, `any` and `not` combine; `true` and `false` are
//! conditions too.
//!
//! An *absent* value (a skipped step, a missing field, an index out of range) compares
//! as `null`: `exists` is false, `is_null` is true, `eq` with anything but `null` is
//! false, and ordering comparisons with `null` are false. Comparing values of different
//! kinds (`"5" > 3`) is an error, not a silent `false`.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::reference::{Path, ResolveError, Scope, Template, describe, resolve_path};

/// A parsed condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `true` or `false`.
    Const(bool),
    /// Every condition holds (`all: []` holds).
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    /// A binary comparison.
    Compare {
        /// Which comparison.
        op: Op,
        /// Left operand.
        left: Template,
        /// Right operand.
        right: Template,
    },
    /// The reference resolves (to anything, `null` included).
    Exists(Path),
    /// The reference is `null` or absent.
    IsNull(Path),
    /// The value is a string matching the pattern (unanchored; use `^...$` to anchor).
    Matches {
        /// The value tested.
        value: Template,
        /// The compiled pattern.
        pattern: Regex,
    },
}

/// Binary comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal (numbers compare by value: `1 == 1.0`).
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Left is an element of the right array, a substring of the right string, or a key of
    /// the right object.
    In,
    /// Right is an element of the left array, a substring of the left string, or a key of
    /// the left object.
    Contains,
}

impl Op {
    /// The JSON spelling.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::In => "in",
            Op::Contains => "contains",
        }
    }

    fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "in" => Op::In,
            "contains" => Op::Contains,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A malformed condition, located by JSON pointer inside the condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// JSON pointer inside the condition (`""` for its top).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// It is over a limit (pattern length or compiled size) rather than malformed.
    pub limit: bool,
}

/// A condition that could not be evaluated on the data it met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A reference could not be followed for a reason other than absence.
    #[error(transparent)]
    Reference(#[from] ResolveError),
    /// Operands of kinds the operator cannot compare.
    #[error("`{op}` cannot compare {left} with {right}")]
    Mismatch {
        /// The operator.
        op: Op,
        /// The left value, described.
        left: String,
        /// The right value, described.
        right: String,
    },
    /// `matches` met a value that is not a string.
    #[error("`matches` needs a string, got {0}")]
    NotAString(String),
}

const LEAVES: &str = "eq, ne, gt, gte, lt, lte, in, contains, exists, is_null, matches, all, any, not";

impl Condition {
    /// How many `matches` it holds.
    pub fn pattern_count(&self) -> usize {
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().map(Condition::pattern_count).sum(),
            Condition::Not(c) => c.pattern_count(),
            Condition::Matches { .. } => 1,
            _ => 0,
        }
    }

    /// Parses a condition; reports every problem found.
    pub fn parse(value: &Value) -> Result<Condition, Vec<ConditionError>> {
        let mut errors = Vec::new();
        let c = parse(value, "", &mut errors);
        if errors.is_empty() { Ok(c) } else { Err(errors) }
    }

    /// Every reference the condition reads.
    pub fn references(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Condition::Const(_) => {}
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| c.collect(out)),
            Condition::Not(c) => c.collect(out),
            Condition::Compare { left, right, .. } => {
                out.extend(left.references());
                out.extend(right.references());
            }
            Condition::Exists(p) | Condition::IsNull(p) => out.push(p),
            Condition::Matches { value, .. } => out.extend(value.references()),
        }
    }

    /// Evaluates the condition against `scope`.
    pub fn eval(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        Ok(match self {
            Condition::Const(b) => *b,
            Condition::All(cs) => {
                for c in cs {
                    if !c.eval(scope)? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Any(cs) => {
                for c in cs {
                    if c.eval(scope)? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::Not(c) => !c.eval(scope)?,
            Condition::Exists(path) => lookup(path, scope)?.is_some(),
            Condition::IsNull(path) => lookup(path, scope)?.is_none_or(Value::is_null),
            Condition::Compare { op, left, right } => compare(*op, &operand(left, scope)?, &operand(right, scope)?)?,
            Condition::Matches { value, pattern } => match operand(value, scope)? {
                Value::String(s) => pattern.is_match(&s),
                Value::Null => false,
                other => return Err(EvalError::NotAString(describe(&other))),
            },
        })
    }
}

/// Follows a path; absence (skipped, missing key, out of range) is `None`.
fn lookup<'s>(path: &Path, scope: &'s dyn Scope) -> Result<Option<&'s Value>, EvalError> {
    match resolve_path(path, scope) {
        Ok(v) => Ok(Some(v)),
        Err(ResolveError::Skipped { .. } | ResolveError::MissingKey { .. } | ResolveError::OutOfRange { .. }) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Resolves an operand; an absent whole reference becomes `null`.
fn operand(t: &Template, scope: &dyn Scope) -> Result<Value, EvalError> {
    match t {
        Template::Ref(path) => Ok(lookup(path, scope)?.cloned().unwrap_or(Value::Null)),
        other => Ok(other.resolve(scope)?),
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn compare(op: Op, left: &Value, right: &Value) -> Result<bool, EvalError> {
    let mismatch = || EvalError::Mismatch { op, left: describe(left), right: describe(right) };
    let member = |container: &Value, item: &Value| -> Result<bool, EvalError> {
        match (container, item) {
            (Value::Array(items), _) => Ok(items.iter().any(|x| json_eq(x, item))),
            (Value::String(s), Value::String(sub)) => Ok(s.contains(sub.as_str())),
            (Value::Object(m), Value::String(k)) => Ok(m.contains_key(k)),
            (Value::Null, _) => Ok(false),
            _ => Err(mismatch()),
        }
    };
    match op {
        Op::Eq => Ok(json_eq(left, right)),
        Op::Ne => Ok(!json_eq(left, right)),
        Op::In => member(right, left),
        Op::Contains => member(left, right),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let ordering = match (left, right) {
                (Value::Null, _) | (_, Value::Null) => return Ok(false),
                (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => return Err(mismatch()),
            };
            let Some(ordering) = ordering else {
                return Ok(false);
            };
            Ok(match op {
                Op::Gt => ordering == Ordering::Greater,
                Op::Gte => ordering != Ordering::Less,
                Op::Lt => ordering == Ordering::Less,
                _ => ordering != Ordering::Greater,
            })
        }
    }
}

fn parse(value: &Value, pointer: &str, errors: &mut Vec<ConditionError>) -> Condition {
    fn fail(errors: &mut Vec<ConditionError>, pointer: String, message: String) -> Condition {
        let limit = message.ends_with(LIMIT_MARK);
        errors.push(ConditionError { pointer, message, limit });
        Condition::Const(false)
    }
    let map = match value {
        Value::Bool(b) => return Condition::Const(*b),
        Value::Object(map) if map.len() == 1 => map,
        Value::Object(map) if map.is_empty() => {
            return fail(errors, pointer.to_owned(), format!("empty condition; use one of: {LEAVES}"));
        }
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            return fail(
                errors,
                pointer.to_owned(),
                format!("a condition has exactly one operator, found {}; combine them with `all`", keys.join(", ")),
            );
        }
        other => {
            return fail(
                errors,
                pointer.to_owned(),
                format!("a condition is an object or a boolean, found {}", describe(other)),
            );
        }
    };
    let Some((key, arg)) = map.iter().next() else {
        return Condition::Const(false);
    };
    let here = format!("{pointer}/{key}");
    match key.as_str() {
        "all" | "any" => {
            let Value::Array(items) = arg else {
                return fail(errors, here, format!("`{key}` takes an array of conditions, found {}", describe(arg)));
            };
            let cs = items.iter().enumerate().map(|(i, c)| parse(c, &format!("{here}/{i}"), errors)).collect();
            if key == "all" { Condition::All(cs) } else { Condition::Any(cs) }
        }
        "not" => Condition::Not(Box::new(parse(arg, &here, errors))),
        "exists" | "is_null" => match single_reference(arg) {
            Ok(path) if key == "exists" => Condition::Exists(path),
            Ok(path) => Condition::IsNull(path),
            Err(message) => fail(errors, here, format!("`{key}` {message}")),
        },
        "matches" => {
            let Some([value, pattern]) = pair(arg) else {
                return fail(errors, here, "`matches` takes [value, \"regex\"]".to_owned());
            };
            let value = template(value, &format!("{here}/0"), errors);
            match pattern {
                Value::String(p) if p.len() > MAX_PATTERN_LEN => fail(
                    errors,
                    format!("{here}/1"),
                    format!(
                        "the regular expression is {} bytes long, more than the limit of {MAX_PATTERN_LEN}{LIMIT_MARK}",
                        p.len()
                    ),
                ),
                Value::String(p) => match compile_pattern(p) {
                    Ok(pattern) => Condition::Matches { value, pattern },
                    Err(e) => fail(errors, format!("{here}/1"), format!("invalid regular expression: {e}")),
                },
                other => fail(
                    errors,
                    format!("{here}/1"),
                    format!("the pattern must be a string, found {}", describe(other)),
                ),
            }
        }
        name => match Op::from_name(name) {
            Some(op) => {
                let Some([left, right]) = pair(arg) else {
                    return fail(
                        errors,
                        here,
                        format!("`{name}` takes two operands: [left, right], found {}", describe(arg)),
                    );
                };
                Condition::Compare {
                    op,
                    left: template(left, &format!("{here}/0"), errors),
                    right: template(right, &format!("{here}/1"), errors),
                }
            }
            None => fail(errors, here, format!("unknown operator `{name}`; expected one of: {LEAVES}")),
        },
    }
}

fn pair(arg: &Value) -> Option<&[Value; 2]> {
    match arg {
        Value::Array(items) => items.as_slice().try_into().ok(),
        _ => None,
    }
}

/// Ends the message of a pattern over a limit.
const LIMIT_MARK: &str = " [LIMIT_EXCEEDED]";

/// Longest pattern of a `matches`, in bytes.
pub const MAX_PATTERN_LEN: usize = 1_000;

/// Most memory a compiled pattern may take. `regex`'s default (10 MiB) lets a 10-byte
/// pattern such as `\w{500}` cost 130 ms to compile; at this size it is refused at once,
/// and patterns people write (`^[A-Z]{2}-\d+$`) are far below it.
pub const MAX_PATTERN_SIZE: usize = 64 * 1024;

thread_local! {
    /// Patterns compiled on this thread: a definition repeating one compiles it once.
    static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Result<Regex, String>>> = Default::default();
}

/// A `matches` pattern, compiled within [`MAX_PATTERN_SIZE`] (and cached: compiling is
/// the costly part of validating a condition).
fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if let Some(found) = COMPILED.with(|c| c.borrow().get(pattern).cloned()) {
        return found;
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_SIZE)
        .dfa_size_limit(MAX_PATTERN_SIZE)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("it compiles to more than the limit of {limit} bytes{LIMIT_MARK}")
            }
            other => other.to_string(),
        });
    COMPILED.with(|c| {
        let mut cache = c.borrow_mut();
        // Bounded: a definition of many different patterns does not grow it for ever.
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), compiled.clone());
    });
    compiled
}

fn template(value: &Value, pointer: &str, errors: &mut Vec<ConditionError>) -> Template {
    Template::parse(value).unwrap_or_else(|es| {
        errors.extend(es.into_iter().map(|e| ConditionError {
            pointer: format!("{pointer}{}", e.pointer),
            message: e.to_string(),
            limit: false,
        }));
        Template::Literal(Value::Null)
    })
}

/// `"{a.b}"`, `"$a.b"` or plain `"a.b"`: the one path it names.
fn single_reference(arg: &Value) -> Result<Path, String> {
    let Value::String(text) = arg else {
        return Err(format!("takes a reference such as \"{{order.coupon}}\", found {}", describe(arg)));
    };
    match Template::parse_str(text) {
        Ok(Template::Ref(path)) => Ok(path),
        _ => Path::parse(text).map_err(|e| format!("takes one reference such as \"{{order.coupon}}\": {e}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::reference::Context;

    fn ctx() -> Context {
        let mut c = Context::with_input(json!({"limit": 100}));
        c.set("order", json!({"total": 150.5, "country": "FR", "tags": ["vip"], "note": null, "email": "a@b.io"}));
        c.skip("premium");
        c
    }

    fn check(cond: Value) -> Result<bool, EvalError> {
        Condition::parse(&cond).expect("parses").eval(&ctx())
    }

    #[test]
    fn leaves() {
        let yes = [
            json!({"gt": ["{order.total}", "{input.limit}"]}),
            json!({"gte": ["{order.total}", 150.5]}),
            json!({"lt": [1, 2]}),
            json!({"lte": ["a", "b"]}),
            json!({"eq": ["{order.country}", "FR"]}),
            json!({"eq": [1, 1.0]}),
            json!({"ne": ["{order.country}", "DE"]}),
            json!({"in": ["{order.country}", ["FR", "DE"]]}),
            json!({"in": ["ip", "vip"]}),
            json!({"contains": ["{order.tags}", "vip"]}),
            json!({"contains": ["{order}", "total"]}),
            json!({"exists": "{order.note}"}),
            json!({"is_null": "{order.note}"}),
            json!({"is_null": "order.missing"}),
            json!({"matches": ["{order.email}", "^[^@]+@[^@]+$"]}),
            json!({"not": {"exists": "{premium.level}"}}),
            json!({"all": []}),
            json!(true),
        ];
        for c in yes {
            assert_eq!(check(c.clone()), Ok(true), "{c}");
        }
        let no = [
            json!({"eq": ["{premium.level}", "gold"]}),
            json!({"gt": ["{premium.level}", 1]}),
            json!({"exists": "$order.missing"}),
            json!({"any": []}),
            json!({"all": [true, false]}),
            json!({"matches": ["{order.note}", "x"]}),
        ];
        for c in no {
            assert_eq!(check(c.clone()), Ok(false), "{c}");
        }
    }

    #[test]
    fn mismatched_kinds_are_errors() {
        let e = check(json!({"gt": ["{order.country}", 3]})).expect_err("string vs number");
        assert_eq!(e.to_string(), "`gt` cannot compare the string \"FR\" with the number 3");
        assert!(check(json!({"matches": ["{order.total}", "1"]})).is_err());
        assert!(check(json!({"eq": ["{order.total.x}", 1]})).is_err());
    }

    #[test]
    fn parse_errors_are_all_located() {
        let errors = Condition::parse(&json!({"all": [
            {"gt": [1]},
            {"bogus": 1},
            {"matches": ["x", "("]},
            {"eq": ["{a", 1]},
            {"a": 1, "b": 2}
        ]}))
        .expect_err("five problems");
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/all/0/gt", "/all/1/bogus", "/all/2/matches/1", "/all/3/eq/0", "/all/4"]);
    }

    #[test]
    fn lists_references() {
        let c = Condition::parse(&json!({"any": [{"exists": "{a.x}"}, {"eq": ["{b}", "{c.d}"]}]})).expect("parses");
        let roots: Vec<&str> = c.references().iter().map(|p| p.root.as_str()).collect();
        assert_eq!(roots, ["a", "b", "c"]);
    }
}
