//! `fail`: fails with `message` (and `code`); with `times` = K only attempts 1..=K fail and
//! later ones return `{"attempt": n}`, which makes retry policies testable.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::ToolError;

use crate::tool::{Tool, ToolContext, parse_params};

/// Fails on purpose.
#[derive(Debug, Clone, Copy)]
pub struct Fail;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    message: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    times: Option<u32>,
}

#[async_trait]
impl Tool for Fail {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "fail".into(),
            version: "1".into(),
            description: "Built-in. Fails with error `message` (error code `code` when given, so retry policies can \
                          list it in `non_retryable`). With `times` = n, only the first n attempts of the step fail \
                          and later attempts succeed, returning {\"attempt\": <attempt number, from 1>}; without \
                          `times` every attempt fails."
                .into(),
            params: json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                    "times": {"type": "integer", "minimum": 0}
                },
                "required": ["message"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let Params { message, code, times } = parse_params("fail", params)?;
        if times.is_some_and(|k| ctx.attempt > k) {
            return Ok(json!({"attempt": ctx.attempt}));
        }
        let error = ToolError::new(message);
        Err(match code {
            Some(code) => error.with_code(code),
            None => error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32) -> ToolContext {
        ToolContext { attempt: n, ..ToolContext::default() }
    }

    #[tokio::test]
    async fn fails_with_message_and_code() {
        let err = Fail.call(json!({"message": "boom", "code": "sold_out"}), attempt(7)).await.expect_err("fails");
        assert_eq!(err, ToolError::new("boom").with_code("sold_out"));
        assert!(err.retryable);
        let err = Fail.call(json!({"message": "plain"}), attempt(1)).await.expect_err("fails");
        assert_eq!(err.code, None);
    }

    #[tokio::test]
    async fn times_fails_the_first_attempts_only() {
        let params = json!({"message": "flaky", "times": 2});
        assert!(Fail.call(params.clone(), attempt(1)).await.is_err());
        assert!(Fail.call(params.clone(), attempt(2)).await.is_err());
        assert_eq!(Fail.call(params.clone(), attempt(3)).await, Ok(json!({"attempt": 3})));
        assert_eq!(Fail.call(json!({"message": "m", "times": 0}), attempt(1)).await, Ok(json!({"attempt": 1})));
    }
}
