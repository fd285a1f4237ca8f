//! `echo`: returns its params unchanged.

use async_trait::async_trait;
use serde_json::{Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::ToolError;

use crate::tool::{Tool, ToolContext};

/// Returns its params.
#[derive(Debug, Clone, Copy)]
pub struct Echo;

#[async_trait]
impl Tool for Echo {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "echo".into(),
            version: "1".into(),
            description: "Built-in. Returns its params unchanged, as one JSON object. Never fails, no delay.".into(),
            params: json!({"type": "object"}),
        }
    }

    async fn call(&self, params: Value, _ctx: ToolContext) -> Result<Value, ToolError> {
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_params() {
        let params = json!({"a": [1, {"b": null}], "c": "d"});
        assert_eq!(Echo.call(params.clone(), ToolContext::default()).await, Ok(params));
    }
}
