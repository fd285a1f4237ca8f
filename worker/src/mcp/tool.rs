//! One MCP tool as a Weft [`Tool`]: a call is `tools/call` on its server's live session.

use std::sync::Arc;

use async_trait::async_trait;
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Map, Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::{ToolError, codes};

use super::session::Session;
use crate::tool::{Tool, ToolContext, cancelled};

/// A tool of an MCP server, named `<server>.<tool>`.
pub(crate) struct McpTool {
    pub(crate) spec: ToolSpec,
    /// The name the server knows it by.
    pub(crate) remote: String,
    pub(crate) concurrency: usize,
    pub(crate) session: Arc<Session>,
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let name = &self.spec.name;
        let Some((peer, ended)) = self.session.peer() else {
            return Err(ToolError::new(format!(
                "MCP server `{}` of tool `{name}` is not connected ({}); it is being restarted",
                self.session.server,
                self.session.why_down()
            ))
            .with_code(codes::MCP_UNAVAILABLE));
        };
        let arguments = match params {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let request = CallToolRequestParams::new(self.remote.clone()).with_arguments(arguments);
        // Dropping the call (cancel, timeout) sends the server `notifications/cancelled`.
        let answer = tokio::select! {
            answer = peer.call_tool(request) => answer,
            () = ctx.cancel.cancelled() => return Err(cancelled(name)),
            () = ended.cancelled() => return Err(ToolError::new(format!(
                "MCP server `{}` went away during tool `{name}` ({}); it is being restarted",
                self.session.server,
                self.session.why_down()
            )).with_code(codes::MCP_UNAVAILABLE)),
        };
        match answer {
            Ok(result) => output(name, result),
            Err(e) => Err(call_failed(name, &self.session.server, e)),
        }
    }
}

/// The step's output: `structuredContent` if the tool gave one; else the content parts,
/// their text joined, and that text read as JSON when it is an object or an array (many
/// servers answer JSON as text).
pub(crate) fn output(tool: &str, result: CallToolResult) -> Result<Value, ToolError> {
    let text =
        result.content.iter().filter_map(|part| part.as_text().map(|t| t.text.as_str())).collect::<Vec<_>>().join("\n");
    if result.is_error == Some(true) {
        let message = if text.is_empty() { "no message".to_owned() } else { text };
        return Err(ToolError::new(format!("MCP tool `{tool}` failed: {message}"))
            .with_code(codes::MCP_TOOL_ERROR)
            .permanent());
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    let content = serde_json::to_value(&result.content).map_err(|e| {
        ToolError::new(format!("MCP tool `{tool}`: its content cannot be written as JSON: {e}"))
            .with_code(codes::MCP_ERROR)
            .permanent()
    })?;
    let mut out = json!({"content": content, "text": text});
    if let Ok(parsed @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(&text) {
        out["json"] = parsed;
    }
    Ok(out)
}

/// A call that got no result: the server went away (retried, it is restarted), refused
/// the call (not retried), or answered something else.
fn call_failed(tool: &str, server: &str, error: ServiceError) -> ToolError {
    match error {
        ServiceError::McpError(e) => ToolError::new(format!(
            "MCP server `{server}` refused tool `{tool}`: {} (JSON-RPC error {})",
            e.message, e.code.0
        ))
        .with_code(codes::MCP_ERROR)
        .permanent(),
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
            ToolError::new(format!("MCP server `{server}` went away during tool `{tool}`: {error}"))
                .with_code(codes::MCP_UNAVAILABLE)
        }
        ServiceError::UnexpectedResponse => ToolError::new(format!(
            "MCP server `{server}` answered tool `{tool}` with something that is not a tool result"
        ))
        .with_code(codes::MCP_ERROR)
        .permanent(),
        other => ToolError::new(format!("MCP tool `{tool}` of server `{server}`: {other}")).with_code(codes::MCP_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::ContentBlock;

    use super::*;

    #[test]
    fn structured_content_is_the_output() {
        let mut result = CallToolResult::success(vec![ContentBlock::text("{\"a\":1}")]);
        result.structured_content = Some(json!({"temperature": 21}));
        assert_eq!(output("w.t", result).expect("ok"), json!({"temperature": 21}));
    }

    #[test]
    fn content_parts_are_the_output_with_their_text_and_its_json() {
        let result = CallToolResult::success(vec![ContentBlock::text("{\"entities\": []}")]);
        let out = output("m.read", result).expect("ok");
        assert_eq!(out["text"], "{\"entities\": []}");
        assert_eq!(out["json"], json!({"entities": []}));
        assert_eq!(out["content"][0]["type"], "text");
        let plain = output("e.echo", CallToolResult::success(vec![ContentBlock::text("Echo: hi")])).expect("ok");
        assert_eq!(plain["text"], "Echo: hi");
        assert!(plain.get("json").is_none());
    }

    #[test]
    fn is_error_is_a_permanent_tool_error_with_its_text() {
        let e = output("e.t", CallToolResult::error(vec![ContentBlock::text("no such city")])).expect_err("error");
        assert_eq!(e.code.as_deref(), Some(codes::MCP_TOOL_ERROR));
        assert!(!e.retryable);
        assert!(e.message.contains("`e.t` failed: no such city"), "{}", e.message);
    }
}
