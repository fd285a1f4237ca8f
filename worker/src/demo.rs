//! Demo tools (`--demo-tools`): every non-built-in tool of `examples/tools/catalogue.json`,
//! behaving as its description there says, so every example workflow runs end to end.
//!
//! Behaviour is data: `examples/tools/demo.json` maps each tool to a Weft template of its
//! answer (resolved against the params), an error, or a Rust function in [`compute`] for
//! the few tools that calculate; plus an optional delay and log line. Both files are
//! embedded, so the binary works from any directory; the specs (descriptions and params
//! schemas) are the catalogue's.

pub mod compute;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
use weft_lang::catalogue::ToolSpec;
use weft_lang::reference::Template;
use weft_protocol::wire::ToolError;

use crate::registry::{Registry, RegistryError};
use crate::tool::{Tool, ToolContext, bad_params, cancelled};

const CATALOGUE: &str = include_str!("../../examples/tools/catalogue.json");
const BEHAVIOURS: &str = include_str!("../../examples/tools/demo.json");

/// The embedded demo definitions are inconsistent (a bug caught by the unit tests).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file does not parse.
    #[error("embedded {file} does not parse: {message}")]
    Parse {
        /// Which file.
        file: &'static str,
        /// Why.
        message: String,
    },
    /// A tool's definition is wrong.
    #[error("demo tool `{tool}`: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// Registration failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    about: String,
    tools: BTreeMap<String, Def>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Def {
    #[serde(default)]
    delay_ms: Option<Delay>,
    #[serde(default)]
    log: Option<String>,
    #[serde(default)]
    returns: Option<Value>,
    #[serde(default)]
    fails: Option<Failure>,
    #[serde(default)]
    compute: bool,
}

/// How long a tool waits before it answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum Delay {
    Fixed(u64),
    By {
        by: String,
        cases: BTreeMap<String, u64>,
        #[serde(default)]
        default: u64,
    },
}

impl Delay {
    fn for_params(&self, params: &Map<String, Value>) -> Duration {
        Duration::from_millis(match self {
            Delay::Fixed(ms) => *ms,
            Delay::By { by, cases, default } => {
                params.get(by).and_then(Value::as_str).and_then(|v| cases.get(v)).copied().unwrap_or(*default)
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Failure {
    message: String,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Debug)]
enum Behaviour {
    Returns(Template),
    Fails { message: Template, code: Option<String> },
    Compute(compute::Compute),
}

/// A tool of the demo catalogue.
#[derive(Debug)]
pub struct DemoTool {
    spec: ToolSpec,
    delay: Option<Delay>,
    log: Option<Template>,
    behaviour: Behaviour,
}

/// Every demo tool.
pub fn tools() -> Result<Vec<DemoTool>, DemoError> {
    let specs: Vec<ToolSpec> = serde_json::from_str(CATALOGUE)
        .map_err(|e| DemoError::Parse { file: "examples/tools/catalogue.json", message: e.to_string() })?;
    let file: File = serde_json::from_str(BEHAVIOURS)
        .map_err(|e| DemoError::Parse { file: "examples/tools/demo.json", message: e.to_string() })?;
    let mut defs = file.tools;
    let mut out = Vec::new();
    for spec in specs.into_iter().filter(|s| !crate::builtin::NAMES.contains(&s.name.as_str())) {
        let def = defs.remove(&spec.name).ok_or_else(|| DemoError::Tool {
            tool: spec.name.clone(),
            message: "is in catalogue.json but not in demo.json".into(),
        })?;
        out.push(DemoTool::new(spec, def)?);
    }
    if let Some(extra) = defs.keys().next() {
        return Err(DemoError::Tool {
            tool: extra.clone(),
            message: "is in demo.json but not in catalogue.json".into(),
        });
    }
    Ok(out)
}

/// Adds every demo tool to `registry`.
pub fn register(registry: &mut Registry) -> Result<(), DemoError> {
    for tool in tools()? {
        registry.register(Arc::new(tool))?;
    }
    Ok(())
}

fn template(tool: &str, value: &Value) -> Result<Template, DemoError> {
    Template::parse(value).map_err(|errors| DemoError::Tool {
        tool: tool.to_owned(),
        message: errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
    })
}

impl DemoTool {
    fn new(spec: ToolSpec, def: Def) -> Result<DemoTool, DemoError> {
        let name = spec.name.clone();
        let behaviour = match (def.returns, def.fails, def.compute) {
            (Some(returns), None, false) => Behaviour::Returns(template(&name, &returns)?),
            (None, Some(Failure { message, code }), false) => {
                Behaviour::Fails { message: template(&name, &Value::String(message))?, code }
            }
            (None, None, true) => Behaviour::Compute(compute::find(&name).ok_or_else(|| DemoError::Tool {
                tool: name.clone(),
                message: "has `compute` but compute.rs has no function for it".into(),
            })?),
            _ => {
                return Err(DemoError::Tool {
                    tool: name,
                    message: "needs exactly one of `returns`, `fails` and `compute`".into(),
                });
            }
        };
        let log = def.log.map(|l| template(&name, &Value::String(l))).transpose()?;
        Ok(DemoTool { spec, delay: def.delay_ms, log, behaviour })
    }

    fn resolve(&self, template: &Template, params: &Map<String, Value>) -> Result<Value, ToolError> {
        template.resolve(params).map_err(|e| bad_params(format!("tool `{}`: {e}", self.spec.name)))
    }
}

#[async_trait]
impl Tool for DemoTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    // Demo tools mostly sleep: let many run at once.
    fn concurrency(&self) -> usize {
        256
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let params = match params {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(bad_params(format!("tool `{}` takes an object of params, not {other}", self.spec.name)));
            }
        };
        if let Some(delay) = &self.delay {
            tokio::select! {
                () = tokio::time::sleep(delay.for_params(&params)) => {}
                () = ctx.cancel.cancelled() => return Err(cancelled(&self.spec.name)),
            }
        }
        if let Some(log) = &self.log {
            let line = self.resolve(log, &params)?;
            // The task's span carries the run and step.
            tracing::info!(tool = %self.spec.name, "{}", line.as_str().unwrap_or_default());
        }
        match &self.behaviour {
            Behaviour::Returns(template) => self.resolve(template, &params),
            Behaviour::Fails { message, code } => {
                let message = self.resolve(message, &params)?;
                let error = ToolError::new(message.as_str().unwrap_or_default());
                Err(match code {
                    Some(code) => error.with_code(code.clone()),
                    None => error,
                })
            }
            Behaviour::Compute(f) => f(&params),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_protocol::wire::codes;

    use super::*;

    fn find(name: &str) -> DemoTool {
        tools().expect("demo tools load").into_iter().find(|t| t.spec.name == name).expect("tool exists")
    }

    async fn call(name: &str, params: Value) -> Result<Value, ToolError> {
        find(name).call(params, ToolContext::default()).await
    }

    #[test]
    fn every_catalogue_tool_has_an_implementation() {
        let specs: Vec<ToolSpec> = serde_json::from_str(CATALOGUE).expect("catalogue parses");
        let mut registry = Registry::with_builtins();
        register(&mut registry).expect("demo tools register");
        for spec in &specs {
            let registered =
                registry.spec(&spec.name).unwrap_or_else(|| panic!("no implementation of `{}`", spec.name));
            if !crate::builtin::NAMES.contains(&spec.name.as_str()) {
                assert_eq!(registered, spec, "demo tools advertise the catalogue's spec");
            }
        }
        assert_eq!(registry.len(), specs.len());
        // Every Rust function is used by a `compute` entry.
        let mut computed: Vec<String> = tools()
            .expect("loads")
            .into_iter()
            .filter(|t| matches!(t.behaviour, Behaviour::Compute(_)))
            .map(|t| t.spec.name)
            .collect();
        computed.sort_unstable();
        let mut defined: Vec<&str> = compute::NAMES.to_vec();
        defined.sort_unstable();
        assert_eq!(computed, defined);
    }

    #[tokio::test(start_paused = true)]
    async fn seed_tools_answer_as_the_seed_does() {
        assert_eq!(
            call("get_user", json!({"user_id": "123"})).await,
            Ok(json!({"id": "123", "name": "Alice", "city": "London"}))
        );
        assert_eq!(
            call("get_weather", json!({"location": "London"})).await,
            Ok(json!({"location": "London", "temp": 15, "condition": "Cloudy"}))
        );
        assert_eq!(
            call("send_notification", json!({"user_name": "Alice", "message": "Weather in London: 15°C, Cloudy"}))
                .await,
            Ok(json!({"sent": true, "to": "Alice", "message": "Weather in London: 15°C, Cloudy"}))
        );
        assert_eq!(
            call("check_inventory", json!({"product_id": "P1"})).await,
            Ok(json!({"product_id": "P1", "in_stock": true, "quantity": 5}))
        );
        let price = call("calculate_price", json!({"product_id": "P1", "quantity": 2})).await.expect("price");
        assert_eq!(price, json!({"product_id": "P1", "total": 20.0}));
        assert_eq!(price.to_string(), r#"{"product_id":"P1","total":20.0}"#);
        let e = call("ship_order", json!({"order_id": "O1"})).await.expect_err("always fails");
        assert_eq!(e, ToolError::new("Shipping service unavailable").with_code("unavailable"));
        assert!(e.retryable);
    }

    #[tokio::test(start_paused = true)]
    async fn dag_steps_take_half_a_second_and_chain_their_inputs() {
        let start = tokio::time::Instant::now();
        assert_eq!(call("step_a", json!({})).await, Ok(json!("A done")));
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert_eq!(call("step_b", Value::Null).await, Ok(json!("B done")));
        assert_eq!(call("step_c", json!({"a_result": "A done"})).await, Ok(json!("C done (after A done)")));
        assert_eq!(
            call("step_d", json!({"a_result": "A done", "b_result": "B done"})).await,
            Ok(json!("D done (after A done and B done)"))
        );
        assert_eq!(
            call(
                "step_e",
                json!({"c_result": "C done (after A done)", "d_result": "D done (after A done and B done)"})
            )
            .await,
            Ok(json!("E done (after C done (after A done) and D done (after A done and B done))"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delays_follow_params_and_stop_when_cancelled() {
        let start = tokio::time::Instant::now();
        let out = call("query_provider", json!({"provider": "gamma", "query": "q"})).await.expect("answers");
        assert_eq!(out, json!({"success": true, "provider": "gamma", "answer": "gamma: q", "score": 0.9}));
        assert_eq!(start.elapsed(), Duration::from_millis(600));

        let ctx = ToolContext::default();
        ctx.cancel.cancel();
        let e = find("fetch_data_a").call(json!({}), ctx).await.expect_err("cancelled");
        assert_eq!(e.code.as_deref(), Some(codes::CANCELLED));
    }

    #[tokio::test]
    async fn missing_params_are_bad_params() {
        let e = call("get_user", json!({})).await.expect_err("no user_id");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS));
        assert!(e.message.contains("user_id"), "{}", e.message);
        let e = call("get_user", json!([1])).await.expect_err("not an object");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS));
    }
}
