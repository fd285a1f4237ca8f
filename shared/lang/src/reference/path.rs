//! Reference paths: `user.city`, `items[0].name`, `weather[temp]`, `row["a key"]`.
//!
//! A path starts at a *root* (a step id, `input`, `workflow`, or a name bound by a
//! construct such as `item`) and walks into the root's JSON value one segment at a time.

use std::fmt;

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An object member: `.name`, `[name]` or `["any text"]`.
    Key(String),
    /// An array element: `[0]`, `.0`, or `[-1]` counting from the end.
    Index(i64),
}

/// A parsed reference path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    /// The first name of the path: what the reference points into.
    pub root: String,
    /// Where to go inside the root's value.
    pub segments: Vec<Segment>,
}

/// Why a path did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {offset} of `{text}`")]
pub struct PathError {
    /// The text that was parsed.
    pub text: String,
    /// Character offset (not byte) where parsing failed.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

impl Path {
    /// Parses a whole string as a path (no braces).
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let chars: Vec<char> = text.chars().collect();
        let (path, end) =
            parse_at(&chars, 0).map_err(|(offset, message)| PathError { text: text.to_owned(), offset, message })?;
        if end != chars.len() {
            return Err(PathError {
                text: text.to_owned(),
                offset: end,
                message: format!("unexpected `{}`", chars[end]),
            });
        }
        Ok(path)
    }

    /// A path with no segments.
    pub fn root(root: impl Into<String>) -> Path {
        Path { root: root.into(), segments: Vec::new() }
    }
}

/// Parses a path starting at `start`; returns it and the index just past its end.
/// The path ends at the first character that cannot continue it.
pub(crate) fn parse_at(chars: &[char], start: usize) -> Result<(Path, usize), (usize, String)> {
    let (root, mut i) =
        ident(chars, start).ok_or_else(|| (start, "expected a name (a step id, `input`, ...)".to_owned()))?;
    let mut segments = Vec::new();
    loop {
        match chars.get(i) {
            Some('.') => {
                let at = i + 1;
                if let Some((digits, end)) = number(chars, at) {
                    segments.push(Segment::Index(digits));
                    i = end;
                } else {
                    let (key, end) =
                        ident(chars, at).ok_or_else(|| (at, "expected a field name after `.`".to_owned()))?;
                    segments.push(Segment::Key(key));
                    i = end;
                }
            }
            Some('[') => {
                let at = i + 1;
                let (segment, end) = match chars.get(at) {
                    Some(q @ ('"' | '\'')) => quoted(chars, at, *q)?,
                    _ => {
                        if let Some((n, end)) = number(chars, at) {
                            (Segment::Index(n), end)
                        } else if let Some((key, end)) = ident(chars, at) {
                            (Segment::Key(key), end)
                        } else {
                            return Err((at, "expected an index, a name or a quoted key after `[`".to_owned()));
                        }
                    }
                };
                if chars.get(end) != Some(&']') {
                    return Err((end, "expected `]`".to_owned()));
                }
                segments.push(segment);
                i = end + 1;
            }
            _ => return Ok((Path { root, segments }, i)),
        }
    }
}

/// Whether `c` may start a name.
pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Whether `c` may continue a name.
pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether the whole string is a name usable as a step id or path root.
pub fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(is_ident_start) && chars.all(is_ident_continue)
}

fn ident(chars: &[char], start: usize) -> Option<(String, usize)> {
    let first = *chars.get(start)?;
    if !is_ident_start(first) {
        return None;
    }
    let end = chars[start..].iter().position(|c| !is_ident_continue(*c)).map_or(chars.len(), |n| start + n);
    Some((chars[start..end].iter().collect(), end))
}

fn number(chars: &[char], start: usize) -> Option<(i64, usize)> {
    let digits_from = if chars.get(start) == Some(&'-') { start + 1 } else { start };
    let end = chars[digits_from.min(chars.len())..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(chars.len(), |n| digits_from + n);
    if end == digits_from {
        return None;
    }
    // A number followed by a name character (`.2x`) is not a number.
    if chars.get(end).is_some_and(|c| is_ident_continue(*c)) {
        return None;
    }
    let text: String = chars[start..end].iter().collect();
    text.parse().ok().map(|n| (n, end))
}

fn quoted(chars: &[char], start: usize, quote: char) -> Result<(Segment, usize), (usize, String)> {
    let mut key = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err((i, format!("unterminated quoted key, expected `{quote}`"))),
            Some('\\') => match chars.get(i + 1) {
                Some(c @ ('\\' | '"' | '\'')) => {
                    key.push(*c);
                    i += 2;
                }
                _ => return Err((i, "unknown escape; use `\\\\`, `\\\"` or `\\'`".to_owned())),
            },
            Some(c) if *c == quote => return Ok((Segment::Key(key), i + 1)),
            Some(c) => {
                key.push(*c);
                i += 1;
            }
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Index(n) => write!(f, "[{n}]"),
            Segment::Key(k) if is_ident(k) => write!(f, ".{k}"),
            Segment::Key(k) => {
                f.write_str("[\"")?;
                for c in k.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"]")
            }
        }
    }
}

impl fmt::Display for Path {
    /// The canonical spelling, which parses back to the same path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        self.segments.iter().try_for_each(|s| write!(f, "{s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.to_owned())
    }

    #[test]
    fn parses_every_spelling() {
        let p = Path::parse("items[0].name").expect("parses");
        assert_eq!(p.root, "items");
        assert_eq!(p.segments, vec![Segment::Index(0), key("name")]);
        assert_eq!(Path::parse("weather[temp]").expect("parses").segments, vec![key("temp")]);
        assert_eq!(Path::parse("a.0.b").expect("parses").segments, vec![Segment::Index(0), key("b")]);
        assert_eq!(Path::parse("a[-1]").expect("parses").segments, vec![Segment::Index(-1)]);
        assert_eq!(Path::parse(r#"row["a \"key\""]['x']"#).expect("parses").segments, vec![key("a \"key\""), key("x")]);
        assert_eq!(Path::parse("città.nome").expect("parses").segments, vec![key("nome")]);
    }

    #[test]
    fn rejects_with_position() {
        let e = Path::parse("a..b").expect_err("double dot");
        assert_eq!(e.offset, 2);
        let e = Path::parse("a[0").expect_err("unclosed");
        assert!(e.message.contains("`]`"), "{e}");
        assert!(Path::parse("1abc").is_err());
        assert!(Path::parse("").is_err());
        assert!(Path::parse("a b").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in ["a", "a.b[2].c", r#"a["x y"]"#, "a[-3]", r#"a["\\\""]"#] {
            let p = Path::parse(text).expect("parses");
            assert_eq!(Path::parse(&p.to_string()).expect("reparses"), p);
        }
    }
}
