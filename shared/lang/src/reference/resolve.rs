//! Resolving paths against a run's context, with errors that say what was there.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::path::{Path, Segment};

/// What a root name stands for in a scope.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// The root's value (a step's output, the input, a bound item...).
    Value(&'a Value),
    /// The root is a step that was skipped: it has no output.
    Skipped,
    /// Nothing by that name.
    Missing,
}

/// Where references look up their roots.
pub trait Scope {
    /// The value bound to `root`.
    fn lookup(&self, root: &str) -> Lookup<'_>;
}

impl<S: std::hash::BuildHasher> Scope for HashMap<String, Value, S> {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        self.get(root).map_or(Lookup::Missing, Lookup::Value)
    }
}

impl Scope for BTreeMap<String, Value> {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        self.get(root).map_or(Lookup::Missing, Lookup::Value)
    }
}

impl Scope for serde_json::Map<String, Value> {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        self.get(root).map_or(Lookup::Missing, Lookup::Value)
    }
}

/// A run's context: step outputs, the input, and which steps were skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// Values by root name (`input`, step ids, bound names).
    pub values: BTreeMap<String, Value>,
    /// Steps that were skipped and so have no output.
    pub skipped: BTreeSet<String>,
}

impl Context {
    /// A context holding only the workflow's input.
    pub fn with_input(input: Value) -> Context {
        let mut values = BTreeMap::new();
        values.insert("input".to_owned(), input);
        Context { values, skipped: BTreeSet::new() }
    }

    /// Records a step's output.
    pub fn set(&mut self, root: impl Into<String>, value: Value) -> &mut Self {
        self.values.insert(root.into(), value);
        self
    }

    /// Records that a step was skipped.
    pub fn skip(&mut self, root: impl Into<String>) -> &mut Self {
        self.skipped.insert(root.into());
        self
    }
}

impl Scope for Context {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        match self.values.get(root) {
            Some(v) => Lookup::Value(v),
            None if self.skipped.contains(root) => Lookup::Skipped,
            None => Lookup::Missing,
        }
    }
}

/// A scope in which a skipped step reads as `null` rather than as an error: for a run's or
/// a construct's `output`, which may name a step whose condition was false.
#[derive(Debug)]
pub struct SkippedAsNull<'a, S: Scope + ?Sized>(pub &'a S);

/// What a skipped step reads as in [`SkippedAsNull`].
static NULL: Value = Value::Null;

impl<S: Scope + ?Sized> Scope for SkippedAsNull<'_, S> {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        match self.0.lookup(root) {
            Lookup::Skipped => Lookup::Value(&NULL),
            found => found,
        }
    }
}

/// A scope that binds a few names over an outer scope (loop items, iterations...).
#[derive(Debug)]
pub struct Layered<'a, S: Scope + ?Sized> {
    /// Names bound here, shadowing the outer scope.
    pub local: &'a BTreeMap<String, Value>,
    /// Everything else.
    pub outer: &'a S,
}

impl<S: Scope + ?Sized> Scope for Layered<'_, S> {
    fn lookup(&self, root: &str) -> Lookup<'_> {
        match self.local.get(root) {
            Some(v) => Lookup::Value(v),
            None => self.outer.lookup(root),
        }
    }
}

/// Why a reference did not resolve. `reference` is the reference as written (canonical).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The root names nothing in scope.
    #[error("`{{{reference}}}`: nothing named `{root}` is in scope")]
    UnknownRoot {
        /// The whole reference.
        reference: String,
        /// Its root.
        root: String,
    },
    /// The root is a skipped step.
    #[error("`{{{reference}}}`: step `{root}` was skipped, so it has no output")]
    Skipped {
        /// The whole reference.
        reference: String,
        /// The skipped step.
        root: String,
    },
    /// An object lacks the key.
    #[error("`{{{reference}}}`: `{at}` has no field `{key}` (its fields: {})", list(available))]
    MissingKey {
        /// The whole reference.
        reference: String,
        /// The part of the path that resolved.
        at: String,
        /// The key that is not there.
        key: String,
        /// The keys that are there.
        available: Vec<String>,
    },
    /// An array is too short.
    #[error("`{{{reference}}}`: index {index} is out of range for `{at}`, which has {len} items")]
    OutOfRange {
        /// The whole reference.
        reference: String,
        /// The part of the path that resolved.
        at: String,
        /// The index asked for.
        index: i64,
        /// The array's length.
        len: usize,
    },
    /// A segment stepped into a value that has no such structure.
    #[error("`{{{reference}}}`: cannot take `{segment}` of `{at}`, which is {found}")]
    WrongType {
        /// The whole reference.
        reference: String,
        /// The part of the path that resolved.
        at: String,
        /// The segment that could not apply.
        segment: String,
        /// What the value at `at` is (`a string`, `null`...).
        found: String,
    },
}

fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "none".to_owned()
    } else {
        keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    }
}

/// A short description of a JSON value's type, for messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".to_owned(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Follows `path` from its root in `scope`.
pub fn resolve_path<'s>(path: &Path, scope: &'s dyn Scope) -> Result<&'s Value, ResolveError> {
    let reference = || path.to_string();
    let mut value = match scope.lookup(&path.root) {
        Lookup::Value(v) => v,
        Lookup::Skipped => {
            return Err(ResolveError::Skipped { reference: reference(), root: path.root.clone() });
        }
        Lookup::Missing => {
            return Err(ResolveError::UnknownRoot { reference: reference(), root: path.root.clone() });
        }
    };
    let mut at = Path::root(path.root.clone());
    for segment in &path.segments {
        let next = match (segment, value) {
            (Segment::Key(key), Value::Object(map)) => map.get(key).ok_or_else(|| ResolveError::MissingKey {
                reference: reference(),
                at: at.to_string(),
                key: key.clone(),
                available: map.keys().cloned().collect(),
            })?,
            (Segment::Index(index), Value::Array(items)) => {
                let len = items.len();
                let position =
                    if *index < 0 { len.checked_sub(index.unsigned_abs() as usize) } else { Some(*index as usize) };
                position.and_then(|p| items.get(p)).ok_or_else(|| ResolveError::OutOfRange {
                    reference: reference(),
                    at: at.to_string(),
                    index: *index,
                    len,
                })?
            }
            // `[0]` on an object reads the key "0": JSON keys are strings.
            (Segment::Index(index), Value::Object(map)) if map.contains_key(&index.to_string()) => {
                &map[&index.to_string()]
            }
            (segment, other) => {
                return Err(ResolveError::WrongType {
                    reference: reference(),
                    at: at.to_string(),
                    segment: segment.to_string(),
                    found: describe(other),
                });
            }
        };
        at.segments.push(segment.clone());
        value = next;
    }
    Ok(value)
}
