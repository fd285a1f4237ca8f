//! Templates: JSON values in which strings may carry references.
//!
//! - `"{user.city}"` or `"$user.city"` (the whole string one reference) resolves to the
//!   referenced value with its JSON type kept.
//! - `"Weather in {weather.location}: {weather.temp}°C"` interpolates each reference as
//!   text (strings as themselves, everything else as compact JSON).
//! - `{{` and `}}` are literal braces; `"$$user"` is the literal text `$user`.
//!
//! Object keys are never templated; only values are.

use serde_json::{Map, Value};

use super::path::{Path, parse_at};
use super::resolve::{ResolveError, Scope, resolve_path};

/// A JSON value with its references parsed once, ready to resolve many times.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value with no references anywhere inside.
    Literal(Value),
    /// A string that is exactly one reference: keeps the referenced value's type.
    Ref(Path),
    /// A string mixing text and references.
    Text(Vec<Piece>),
    /// An array with at least one reference inside.
    Array(Vec<Template>),
    /// An object with at least one reference inside.
    Object(Vec<(String, Template)>),
}

/// A part of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text (braces already unescaped).
    Text(String),
    /// A reference whose value is rendered as text.
    Ref(Path),
}

/// Why a string could not be read as a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {offset} of {text:?})")]
pub struct TemplateError {
    /// JSON pointer of the string inside the templated value (`""` for the value itself).
    pub pointer: String,
    /// The offending string.
    pub text: String,
    /// Character offset of the problem.
    pub offset: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Template {
    /// Parses every string inside `value`; reports each malformed string.
    pub fn parse(value: &Value) -> Result<Template, Vec<TemplateError>> {
        let (template, errors) = Template::parse_lenient(value);
        if errors.is_empty() { Ok(template) } else { Err(errors) }
    }

    /// Parses what parses; malformed strings become `null` and are reported.
    pub fn parse_lenient(value: &Value) -> (Template, Vec<TemplateError>) {
        let mut errors = Vec::new();
        let template = parse_value(value, String::new(), &mut errors);
        (template, errors)
    }

    /// Parses a single string.
    pub fn parse_str(text: &str) -> Result<Template, TemplateError> {
        parse_string(text).map_err(|(offset, message)| TemplateError {
            pointer: String::new(),
            text: text.to_owned(),
            offset,
            message,
        })
    }

    /// Every reference inside, in document order.
    pub fn references(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Template::Literal(_) => {}
            Template::Ref(p) => out.push(p),
            Template::Text(pieces) => out.extend(pieces.iter().filter_map(|p| match p {
                Piece::Ref(path) => Some(path),
                Piece::Text(_) => None,
            })),
            Template::Array(items) => items.iter().for_each(|t| t.collect_refs(out)),
            Template::Object(members) => members.iter().for_each(|(_, t)| t.collect_refs(out)),
        }
    }

    /// Whether the template holds no reference at all.
    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    /// Resolves every reference against `scope`.
    pub fn resolve(&self, scope: &dyn Scope) -> Result<Value, ResolveError> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Ref(path) => resolve_path(path, scope)?.clone(),
            Template::Text(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Ref(path) => push_as_text(&mut text, resolve_path(path, scope)?),
                    }
                }
                Value::String(text)
            }
            Template::Array(items) => Value::Array(items.iter().map(|t| t.resolve(scope)).collect::<Result<_, _>>()?),
            Template::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.resolve(scope)?)))
                    .collect::<Result<Map<_, _>, ResolveError>>()?,
            ),
        })
    }

    /// Writes the template back as JSON, escaping literal braces: `parse(to_json(t)) == t`.
    pub fn to_json(&self) -> Value {
        match self {
            Template::Literal(v) => escape_value(v),
            Template::Ref(path) => Value::String(format!("{{{path}}}")),
            Template::Text(pieces) => Value::String(
                pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => escape_text(t),
                        Piece::Ref(path) => format!("{{{path}}}"),
                    })
                    .collect(),
            ),
            Template::Array(items) => Value::Array(items.iter().map(Template::to_json).collect()),
            Template::Object(members) => Value::Object(members.iter().map(|(k, t)| (k.clone(), t.to_json())).collect()),
        }
    }
}

/// Renders a resolved value inside text: strings as-is, the rest as compact JSON.
fn push_as_text(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

/// Escapes text so it reads back literally: braces doubled, a leading `$` doubled.
pub fn escape_text(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

fn escape_value(value: &Value) -> Value {
    match value {
        // A whole-string `$name` would read as a reference, and a leading `$$` as an
        // escape: double the dollar.
        Value::String(s) if dollars_then_path(s) => Value::String(format!("${s}")),
        Value::String(s) => Value::String(escape_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(escape_value).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), escape_value(v))).collect()),
        other => other.clone(),
    }
}

fn parse_value(value: &Value, pointer: String, errors: &mut Vec<TemplateError>) -> Template {
    match value {
        Value::String(text) => match parse_string(text) {
            Ok(t) => t,
            Err((offset, message)) => {
                errors.push(TemplateError { pointer, text: text.clone(), offset, message });
                Template::Literal(Value::Null)
            }
        },
        Value::Array(items) => {
            let parts: Vec<Template> =
                items.iter().enumerate().map(|(i, v)| parse_value(v, format!("{pointer}/{i}"), errors)).collect();
            if parts.iter().all(Template::is_literal) {
                Template::Literal(Value::Array(parts.into_iter().map(into_literal).collect()))
            } else {
                Template::Array(parts)
            }
        }
        Value::Object(members) => {
            let parts: Vec<(String, Template)> = members
                .iter()
                .map(|(k, v)| {
                    let child = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                    (k.clone(), parse_value(v, child, errors))
                })
                .collect();
            if parts.iter().all(|(_, t)| t.is_literal()) {
                Template::Literal(Value::Object(parts.into_iter().map(|(k, t)| (k, into_literal(t))).collect()))
            } else {
                Template::Object(parts)
            }
        }
        other => Template::Literal(other.clone()),
    }
}

fn into_literal(t: Template) -> Value {
    match t {
        Template::Literal(v) => v,
        // Only called when every part is literal.
        other => other.to_json(),
    }
}

/// One or more `$` followed by exactly one path.
fn dollars_then_path(text: &str) -> bool {
    let rest = text.trim_start_matches('$');
    rest.len() < text.len() && Path::parse(rest).is_ok()
}

/// `$a.b` as a whole string: the path, if the rest is exactly one path.
fn parse_dollar(text: &str) -> Option<Path> {
    let rest = text.strip_prefix('$')?;
    Path::parse(rest).ok()
}

fn parse_string(text: &str) -> Result<Template, (usize, String)> {
    // `$$name` (or `$$$name`...) escapes the dollar: one `$` less, taken literally.
    if let Some(rest) = text.strip_prefix('$').filter(|rest| dollars_then_path(rest)) {
        return Ok(Template::Literal(Value::String(rest.to_owned())));
    }
    if let Some(path) = parse_dollar(text) {
        return Ok(Template::Ref(path));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                literal.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                literal.push('}');
                i += 2;
            }
            '}' => {
                return Err((i, "unmatched `}`; write `}}` for a literal brace".to_owned()));
            }
            '{' if !chars[i..].contains(&'}') => {
                return Err((i, "unclosed reference: `{` without `}`; write `{{` for a literal brace".to_owned()));
            }
            '{' => {
                let inner = i + 1;
                let skip_ws = |mut j: usize| {
                    while chars.get(j).is_some_and(|c| *c == ' ') {
                        j += 1;
                    }
                    j
                };
                let start = skip_ws(inner);
                let (path, end) = parse_at(&chars, start).map_err(|(at, msg)| {
                    if chars.get(start) == Some(&'}') {
                        (i, "empty reference `{}`; write `{{}}` for literal braces".to_owned())
                    } else {
                        (at, format!("{msg}; write `{{{{` for a literal brace"))
                    }
                })?;
                let end = skip_ws(end);
                if chars.get(end) != Some(&'}') {
                    return Err(match chars.get(end) {
                        None => (i, "unclosed reference: `{` without `}`; write `{{` for a literal brace".to_owned()),
                        Some(c) => (end, format!("unexpected `{c}` in reference; write `{{{{` for a literal brace")),
                    });
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Ref(path));
                i = end + 1;
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(match pieces.as_slice() {
        [] => Template::Literal(Value::String(String::new())),
        [Piece::Text(t)] => Template::Literal(Value::String(t.clone())),
        [Piece::Ref(p)] => Template::Ref(p.clone()),
        _ => Template::Text(pieces),
    })
}
