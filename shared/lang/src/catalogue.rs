//! Tool catalogues: what tools exist and what params each accepts (a JSON Schema).
//!
//! Workers advertise their tools as [`ToolSpec`]s; validation checks a workflow's tool
//! names and literal params against them. A catalogue can also be read from a file
//! (`weft validate --tools tools.json`), either `[spec, ...]` or `{"tools": [spec, ...]}`.

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A tool's public contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name steps call it by.
    pub name: String,
    /// Version of the tool's implementation.
    #[serde(default = "default_version")]
    pub version: String,
    /// What it does (shown to people and to LLMs).
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its params.
    #[serde(default = "any_object")]
    pub params: Value,
}

fn default_version() -> String {
    "1".to_owned()
}

fn any_object() -> Value {
    json!({"type": "object"})
}

impl ToolSpec {
    /// The tool as an LLM function-calling schema (`{"type": "function", ...}`).
    pub fn to_function_schema(&self) -> Value {
        json!({
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.params}
        })
    }
}

/// Tools by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    tools: BTreeMap<String, ToolSpec>,
}

/// A catalogue file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Unreadable file.
    #[error("cannot read tool catalogue {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a catalogue.
    #[error("{file} is not a tool catalogue (expected [{{\"name\": ..., \"params\": {{schema}}}}, ...]): {source}")]
    Parse {
        /// The file.
        file: String,
        /// The cause.
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CatalogueFile {
    List(Vec<ToolSpec>),
    Wrapped { tools: Vec<ToolSpec> },
}

impl Catalogue {
    /// A catalogue of these tools (a later spec of the same name replaces an earlier one).
    pub fn new(specs: impl IntoIterator<Item = ToolSpec>) -> Catalogue {
        Catalogue { tools: specs.into_iter().map(|s| (s.name.clone(), s)).collect() }
    }

    /// Reads a catalogue file.
    pub fn load(file: &FsPath) -> Result<Catalogue, CatalogueError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| CatalogueError::Io { file: name.clone(), source })?;
        let parsed: CatalogueFile =
            serde_json::from_str(&text).map_err(|source| CatalogueError::Parse { file: name, source })?;
        Ok(Catalogue::new(match parsed {
            CatalogueFile::List(v) | CatalogueFile::Wrapped { tools: v } => v,
        }))
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name)
    }

    /// Every tool, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values()
    }

    /// Adds or replaces a tool.
    pub fn insert(&mut self, spec: ToolSpec) {
        self.tools.insert(spec.name.clone(), spec);
    }

    /// Names close to `name`, for "did you mean" hints.
    pub fn similar(&self, name: &str) -> Vec<&str> {
        let mut scored: Vec<(usize, &str)> =
            self.tools.keys().filter_map(|k| Some((close(name, k, 1)?, k.as_str()))).collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, k)| k).collect()
    }
}

/// Names longer than this get no "did you mean": hints are for typos, and the edit
/// distance of two long strings is quadratic (a 77 KB tool name took 3.4 s against the demo
/// catalogue, and a 64 KB reference against a 46 KB step id did not end; found by weft-fuzz).
const HINT_MAX_CHARS: usize = 64;

/// The edit distance of `a` and `b` if it is small enough to suggest one for the other: at
/// most a third of the longer one's length, and at least `floor`. Strings that cannot be that
/// close (too long, or too different in length) are not compared.
pub(crate) fn close(a: &str, b: &str, floor: usize) -> Option<usize> {
    if a.len() > 4 * HINT_MAX_CHARS || b.len() > 4 * HINT_MAX_CHARS {
        return None;
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la > HINT_MAX_CHARS || lb > HINT_MAX_CHARS {
        return None;
    }
    let most = (la.max(lb) / 3).max(floor);
    if la.abs_diff(lb) > most {
        return None;
    }
    let d = edit_distance(a, b);
    (d <= most).then_some(d)
}

/// Levenshtein distance, for suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        let c = Catalogue::new(["get_user", "get_weather", "send_email"].map(|n| ToolSpec {
            name: n.into(),
            version: "1".into(),
            description: String::new(),
            params: any_object(),
        }));
        assert_eq!(c.similar("get_usr"), ["get_user"]);
        assert!(c.similar("completely_else").is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
