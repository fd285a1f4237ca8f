//! `sleep`: waits `ms` milliseconds, returns `{"slept_ms": ms}`; stops early when cancelled.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::ToolError;

use crate::tool::{Tool, ToolContext, cancelled, parse_params};

/// Waits.
#[derive(Debug, Clone, Copy)]
pub struct Sleep;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    ms: u64,
}

#[async_trait]
impl Tool for Sleep {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "sleep".into(),
            version: "1".into(),
            description: "Built-in. Sleeps `ms` milliseconds, then returns {\"slept_ms\": ms}. Never fails.".into(),
            params: json!({
                "type": "object",
                "properties": {"ms": {"type": "integer", "minimum": 0}},
                "required": ["ms"],
                "additionalProperties": false
            }),
        }
    }

    // Sleeping costs nothing: let many run at once.
    fn concurrency(&self) -> usize {
        1024
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let Params { ms } = parse_params("sleep", params)?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({"slept_ms": ms})),
            () = ctx.cancel.cancelled() => Err(cancelled("sleep")),
        }
    }
}

#[cfg(test)]
mod tests {
    use weft_protocol::wire::codes;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleeps_then_answers() {
        let start = tokio::time::Instant::now();
        let out = Sleep.call(json!({"ms": 1500}), ToolContext::default()).await;
        assert_eq!(out, Ok(json!({"slept_ms": 1500})));
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_cancelled() {
        let ctx = ToolContext::default();
        let token = ctx.cancel.clone();
        let call = tokio::spawn(async move { Sleep.call(json!({"ms": 60_000}), ctx).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
        let err = call.await.expect("no panic").expect_err("cancelled");
        assert_eq!(err.code.as_deref(), Some(codes::CANCELLED));
    }

    #[tokio::test]
    async fn rejects_bad_params() {
        let err = Sleep.call(json!({"ms": "soon"}), ToolContext::default()).await.expect_err("bad");
        assert_eq!(err.code.as_deref(), Some(codes::BAD_PARAMS));
    }
}
