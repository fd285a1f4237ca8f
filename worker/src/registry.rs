//! The registry: the tools a worker serves, by name, with their params validators.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use weft_lang::catalogue::ToolSpec;
use weft_protocol::subjects;
use weft_protocol::wire::ToolError;

use crate::tool::{Tool, bad_params};

/// A tool that cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name cannot be part of a NATS subject.
    #[error(
        "tool name {name:?} is not valid: use tokens of letters, digits, `_` and `-`, separated by `.`, at most {max} bytes",
        max = subjects::MAX_TOOL_NAME
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// Two tools with one name.
    #[error("tool `{name}` is registered twice")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The params schema does not compile.
    #[error("tool `{name}` has an invalid params schema: {message}")]
    BadSchema {
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
}

struct Entry {
    tool: Arc<dyn Tool>,
    spec: ToolSpec,
    concurrency: usize,
    // Compiled once: params are checked on every call.
    validator: jsonschema::Validator,
}

/// Tools by name.
#[derive(Default)]
pub struct Registry {
    tools: BTreeMap<String, Entry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.tools.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A registry of the built-in tools (`echo`, `sleep`, `fail`, `http`, `transform`).
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::new();
        for tool in crate::builtin::all() {
            // Built-in names are distinct tokens and their schemas are tested.
            if let Err(e) = registry.register(tool) {
                tracing::error!(error = %e, "built-in tool not registered");
            }
        }
        registry
    }

    /// Adds a tool.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let spec = tool.spec();
        let name = spec.name.clone();
        if !subjects::is_tool_name(&name) {
            return Err(RegistryError::BadName { name });
        }
        if self.tools.contains_key(&name) {
            return Err(RegistryError::Duplicate { name });
        }
        let validator = jsonschema::validator_for(&spec.params)
            .map_err(|e| RegistryError::BadSchema { name: name.clone(), message: e.to_string() })?;
        let concurrency = tool.concurrency().max(1);
        self.tools.insert(name, Entry { tool, spec, concurrency, validator });
        Ok(())
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|e| &e.tool)
    }

    /// The spec `name` was registered with.
    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name).map(|e| &e.spec)
    }

    /// The concurrency limit of `name` (at least 1).
    pub fn concurrency(&self, name: &str) -> Option<usize> {
        self.tools.get(name).map(|e| e.concurrency)
    }

    /// Every tool name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Every tool, by name.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values().map(|e| &e.tool)
    }

    /// Every spec, by name.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values().map(|e| &e.spec)
    }

    /// How many tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Checks params against the tool's schema: every violation, as one `BAD_PARAMS` error.
    /// Params of an unknown tool pass (the caller reports the tool).
    pub fn check_params(&self, name: &str, params: &Value) -> Result<(), ToolError> {
        let Some(entry) = self.tools.get(name) else { return Ok(()) };
        let problems: Vec<String> = entry
            .validator
            .iter_errors(params)
            .map(|e| {
                let at = e.instance_path().as_str().to_owned();
                if at.is_empty() { e.to_string() } else { format!("at {at}: {e}") }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(bad_params(format!("params do not fit tool `{name}`: {}", problems.join("; "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;
    use weft_protocol::wire::codes;

    use super::*;
    use crate::tool::ToolContext;

    struct Named(&'static str, Value);

    #[async_trait]
    impl Tool for Named {
        fn spec(&self) -> ToolSpec {
            ToolSpec { name: self.0.into(), version: "1".into(), description: String::new(), params: self.1.clone() }
        }
        async fn call(&self, params: Value, _ctx: ToolContext) -> Result<Value, ToolError> {
            Ok(params)
        }
    }

    #[test]
    fn names_must_be_tokens_and_unique() {
        let mut r = Registry::new();
        let any = json!({"type": "object"});
        assert!(matches!(r.register(Arc::new(Named("a..b", any.clone()))), Err(RegistryError::BadName { .. })));
        assert!(matches!(r.register(Arc::new(Named("a b", any.clone()))), Err(RegistryError::BadName { .. })));
        r.register(Arc::new(Named("server.tool", any.clone()))).expect("a dotted name");
        assert!(matches!(r.register(Arc::new(Named("", any.clone()))), Err(RegistryError::BadName { .. })));
        r.register(Arc::new(Named("ok_tool-1", any.clone()))).expect("valid name");
        assert!(matches!(r.register(Arc::new(Named("ok_tool-1", any))), Err(RegistryError::Duplicate { .. })));
        assert!(matches!(
            r.register(Arc::new(Named("bad_schema", json!({"type": 12})))),
            Err(RegistryError::BadSchema { .. })
        ));
        assert_eq!(r.names().collect::<Vec<_>>(), ["ok_tool-1", "server.tool"]);
        assert_eq!(r.concurrency("ok_tool-1"), Some(crate::tool::DEFAULT_CONCURRENCY));
    }

    #[test]
    fn params_are_checked_against_the_schema() {
        let mut r = Registry::new();
        let schema = json!({"type": "object", "properties": {"ms": {"type": "integer"}}, "required": ["ms"],
                            "additionalProperties": false});
        r.register(Arc::new(Named("t", schema))).expect("registers");
        assert!(r.check_params("t", &json!({"ms": 3})).is_ok());
        let e = r.check_params("t", &json!({"ms": "x", "extra": 1})).expect_err("two problems");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS));
        assert!(!e.retryable);
        assert!(e.message.contains("/ms") && e.message.contains("extra"), "{}", e.message);
        assert!(r.check_params("unknown", &json!(null)).is_ok());
    }

    #[test]
    fn builtins_are_all_there() {
        let r = Registry::with_builtins();
        assert_eq!(r.names().collect::<Vec<_>>(), ["echo", "fail", "http", "sleep", "transform"]);
    }
}
