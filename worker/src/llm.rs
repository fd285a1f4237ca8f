//! `llm`: a model call as a step, over the OpenAI Chat Completions protocol.
//!
//! Chat Completions is what OpenAI, Ollama, vLLM, llama.cpp's server and LiteLLM all
//! speak, so one tool reaches all of them: the worker is pointed at a base URL and a key
//! (`WEFT_LLM_BASE_URL`, `WEFT_LLM_API_KEY`, [`LlmConfig`]) and a step names its `model`.
//!
//! Params: `messages` (Chat Completions messages) or `prompt` (one user message) with an
//! optional `system`; `model`, `temperature`, `max_tokens`; `response_format` (OpenAI's
//! `{"type": "json_schema", "json_schema": {"name", "schema"}}` or `{"type":
//! "json_object"}`); `tools` and `tool_choice` (function tools, passed through);
//! `max_repairs` (default 2); `stream` (publish the text as it is written on core NATS
//! `weft.stream.<run>` as [`weft_protocol::wire::Delta`]s, which `weft watch` prints; the
//! result stays the durable whole).
//!
//! Output: with a `json_schema` response format, the parsed object, checked against the
//! schema; an answer that does not parse or match is sent back to the model with the
//! validation errors, up to `max_repairs` times. Otherwise `{"content", "tool_calls":
//! [{"id", "name", "arguments"}], "finish_reason"}`, the tool calls' arguments parsed
//! (they are data for the workflow, never run by this tool). The tokens spent (every
//! request of the call added up) and the model travel in the result's `usage`.
//!
//! Failures ([`provider`]): `RATE_LIMITED` (429) and `PROVIDER_UNAVAILABLE` (5xx) are
//! retryable and carry the provider's `Retry-After`; `CONTEXT_LENGTH`, `UNAUTHORIZED` and
//! `PROVIDER_REJECTED` are not; `SCHEMA_MISMATCH` when the repairs ran out.
//!
//! Rate limits (`rate`): with `WEFT_LLM_TPM` / `WEFT_LLM_RPM`, every request first takes
//! room in the provider key's window, shared by every worker through the `weft_rates`
//! bucket, and waits when there is none, instead of meeting a 429.
//!
//! The API key goes in the `Authorization` header and nowhere else: it is redacted from
//! every message a provider sends back, and its `Debug` shows `***`.

pub mod provider;
mod rate;
pub mod structured;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::{Delta, ToolError};

pub use provider::{ApiKey, LlmConfig};
use provider::{Completion, Provider};

use crate::tool::{Tool, ToolContext, bad_params, cancelled, parse_params};

/// The tool's name in workflows.
pub const NAME: &str = "llm";

/// Repairs of a structured answer when the params give no `max_repairs`.
const DEFAULT_REPAIRS: u32 = 2;

/// Calls a model.
#[derive(Debug)]
pub struct Llm {
    provider: Provider,
    limiter: rate::Limiter,
    /// Where streamed text goes, once the worker is connected.
    nats: std::sync::OnceLock<async_nats::Client>,
}

impl Llm {
    /// The tool, calling the provider `config` describes.
    pub fn new(config: LlmConfig) -> Llm {
        let key = config.api_key.as_ref().map(ApiKey::expose);
        let limits = (config.tokens_per_minute, config.requests_per_minute);
        let limiter = rate::Limiter::new(&config.base_url, key, limits, config.rate_window);
        Llm { provider: Provider::new(config), limiter, nats: std::sync::OnceLock::new() }
    }
}

/// Completion tokens a rate limit counts for a call that sets no `max_tokens`.
const UNCAPPED_COMPLETION: u64 = 1024;

/// What a request may use: its completion cap and its prompt (a quarter of its bytes).
fn estimate(body: &Map<String, Value>) -> u64 {
    let prompt = ["messages", "tools"].iter().filter_map(|k| body.get(*k)).map(|v| v.to_string().len()).sum::<usize>();
    let completion = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(UNCAPPED_COMPLETION);
    u64::try_from(prompt.div_ceil(4)).unwrap_or(u64::MAX).saturating_add(completion)
}

fn no_repairs() -> u32 {
    DEFAULT_REPAIRS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default = "no_repairs")]
    max_repairs: u32,
    #[serde(default)]
    stream: bool,
}

#[async_trait]
impl Tool for Llm {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: NAME.into(),
            version: "1".into(),
            description: "Built-in. Calls a model over the OpenAI Chat Completions protocol. With a json_schema \
                          `response_format` the output is the parsed object (checked against the schema, the model \
                          asked again with the errors up to `max_repairs` times); otherwise {\"content\", \
                          \"tool_calls\": [{\"id\", \"name\", \"arguments\"}], \"finish_reason\"}. Tokens spent \
                          travel in the result's usage."
                .into(),
            params: json!({
                "type": "object",
                "properties": {
                    "messages": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"role": {"enum": ["system", "developer", "user", "assistant", "tool"]}},
                        "required": ["role"]
                    }},
                    "prompt": {"type": "string"},
                    "system": {"type": "string"},
                    "model": {"type": "string", "minLength": 1},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "response_format": {"type": "object", "properties": {
                        "type": {"enum": ["text", "json_object", "json_schema"]},
                        "json_schema": {"type": "object", "properties": {
                            "name": {"type": "string"}, "schema": {"type": "object"}, "strict": {"type": "boolean"}
                        }, "required": ["name", "schema"]}
                    }, "required": ["type"]},
                    "tools": {"type": "array", "items": {"type": "object"}},
                    "tool_choice": {},
                    "max_repairs": {"type": "integer", "minimum": 0, "maximum": 10},
                    "stream": {"type": "boolean"}
                },
                "additionalProperties": false
            }),
        }
    }

    fn concurrency(&self) -> usize {
        64
    }

    async fn connected(&self, nats: &crate::tool::Connected) {
        self.limiter.connect(nats.infra.rates.clone());
        let _ = self.nats.set(nats.client.clone());
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let params: Params = parse_params(NAME, params)?;
        tokio::select! {
            result = self.complete(params, &ctx) => result,
            () = ctx.cancel.cancelled() => Err(cancelled(NAME)),
        }
    }
}

impl Llm {
    async fn complete(&self, params: Params, ctx: &ToolContext) -> Result<Value, ToolError> {
        let Some(model) = params.model.clone().or_else(|| self.provider.default_model().map(str::to_owned)) else {
            return Err(bad_params("llm: no `model` given, and the worker has no default (WEFT_LLM_MODEL)"));
        };
        let mut messages = messages(&params)?;
        let schema = structured::schema_of(params.response_format.as_ref())?;
        let mut body = Map::new();
        body.insert("model".into(), Value::String(model));
        if let Some(t) = params.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(n) = params.max_tokens {
            body.insert("max_tokens".into(), json!(n));
        }
        for (key, value) in [("response_format", params.response_format), ("tool_choice", params.tool_choice)] {
            if let Some(value) = value {
                body.insert(key.into(), value);
            }
        }
        if let Some(tools) = params.tools {
            body.insert("tools".into(), Value::Array(tools));
        }
        let mut repairs = 0;
        let mut deltas = Deltas { seq: 0 };
        loop {
            body.insert("messages".into(), Value::Array(messages.clone()));
            // Waits for room under the provider key's limits rather than meeting a 429.
            let lease = self.limiter.acquire(estimate(&body), &ctx.cancel).await?;
            let answered = if params.stream {
                self.streamed(&body, ctx, &mut deltas).await
            } else {
                self.provider.complete(&body).await
            };
            let used = answered.as_ref().ok().map(|c| c.usage.total());
            self.limiter.settle(lease, used).await;
            let completion = answered?;
            ctx.usage.add(&completion.usage);
            let Some(check) = &schema else { return Ok(plain_output(completion)) };
            match check.check(completion.content.as_deref()) {
                Ok(parsed) => return Ok(parsed),
                Err(problems) if repairs < params.max_repairs => {
                    repairs += 1;
                    tracing::info!(repairs, "structured answer did not match its schema; asking again");
                    messages.push(json!({"role": "assistant", "content": completion.content.unwrap_or_default()}));
                    messages.push(json!({"role": "user", "content": structured::repair_prompt(&problems)}));
                }
                Err(problems) => return Err(structured::mismatch(repairs, &problems)),
            }
        }
    }
}

/// Where a call's streamed text is numbered.
struct Deltas {
    seq: u64,
}

impl Llm {
    /// A streamed request: each piece of text is published on the run's delta subject as
    /// it arrives (best effort, core NATS), then a last delta says the answer is done.
    async fn streamed(
        &self,
        body: &Map<String, Value>,
        ctx: &ToolContext,
        deltas: &mut Deltas,
    ) -> Result<provider::Completion, ToolError> {
        let subject = weft_protocol::subjects::deltas(ctx.run_id);
        let (send, mut receive) = tokio::sync::mpsc::unbounded_channel::<String>();
        let publisher = self.nats.get().cloned().map(|client| {
            let (run_id, step_id, attempt, first) = (ctx.run_id, ctx.step_id.clone(), ctx.attempt, deltas.seq);
            tokio::spawn(async move {
                let mut seq = first;
                let publish = |seq: u64, text: String, done: bool| {
                    let delta = Delta { run_id, step_id: step_id.clone(), attempt, seq, text, done };
                    serde_json::to_vec(&delta).unwrap_or_default()
                };
                while let Some(text) = receive.recv().await {
                    let _ = client.publish(subject.clone(), publish(seq, text, false).into()).await;
                    seq += 1;
                }
                let _ = client.publish(subject, publish(seq, String::new(), true).into()).await;
                seq + 1
            })
        });
        let mut on_text = |text: &str| {
            let _ = send.send(text.to_owned());
        };
        let answered = self.provider.stream(body, &mut on_text).await;
        drop(send);
        if let Some(publisher) = publisher
            && let Ok(next) = publisher.await
        {
            deltas.seq = next;
        }
        answered
    }
}

/// The conversation the params describe: `system`, then `messages`, then `prompt`.
fn messages(params: &Params) -> Result<Vec<Value>, ToolError> {
    let mut messages = Vec::new();
    if let Some(system) = &params.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(params.messages.iter().cloned());
    if let Some(prompt) = &params.prompt {
        messages.push(json!({"role": "user", "content": prompt}));
    }
    if messages.iter().all(|m| m.get("role").and_then(Value::as_str) == Some("system")) {
        return Err(bad_params("llm: give `messages` or a `prompt`: there is nothing to answer"));
    }
    Ok(messages)
}

/// The answer of a call without a schema: text, tool calls as data, why it stopped.
fn plain_output(completion: Completion) -> Value {
    let calls: Vec<Value> = completion
        .tool_calls
        .into_iter()
        .map(|c| {
            // Arguments arrive as JSON text; a model can write text that does not parse.
            let arguments = serde_json::from_str(&c.arguments).unwrap_or(Value::String(c.arguments));
            json!({"id": c.id, "name": c.name, "arguments": arguments})
        })
        .collect();
    json!({"content": completion.content, "tool_calls": calls, "finish_reason": completion.finish_reason})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_the_one_examples_are_checked_against() {
        let spec = Llm::new(LlmConfig::default()).spec();
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tools/llm.json");
        let text = format!("{}\n", serde_json::to_string_pretty(&[&spec]).expect("a spec is JSON"));
        if std::env::var_os("WEFT_WRITE_CATALOGUE").is_some() {
            std::fs::write(file, &text).expect("written");
        }
        let committed = std::fs::read_to_string(file).unwrap_or_default();
        assert_eq!(committed, text, "examples/tools/llm.json is out of date: run with WEFT_WRITE_CATALOGUE=1");
    }

    fn params(value: Value) -> Params {
        serde_json::from_value(value).expect("params")
    }

    #[test]
    fn the_conversation_puts_system_first_and_the_prompt_last() {
        let m = messages(&params(json!({"system": "be brief", "messages": [{"role": "user", "content": "a"}],
            "prompt": "b"})))
        .expect("messages");
        let roles: Vec<&str> = m.iter().filter_map(|m| m["role"].as_str()).collect();
        assert_eq!(roles, ["system", "user", "user"]);
        assert_eq!(m[2]["content"], "b");
        let e = messages(&params(json!({"system": "alone"}))).expect_err("nothing to answer");
        assert!(e.message.contains("nothing to answer"), "{e}");
    }

    #[test]
    fn tool_calls_come_back_as_data() {
        let completion = Completion {
            content: None,
            tool_calls: vec![
                provider::ToolCall { id: "c1".into(), name: "get_user".into(), arguments: r#"{"id": 7}"#.into() },
                provider::ToolCall { id: "c2".into(), name: "x".into(), arguments: "not json".into() },
            ],
            finish_reason: Some("tool_calls".into()),
            usage: Default::default(),
        };
        let out = plain_output(completion);
        assert_eq!(out["tool_calls"][0]["arguments"], json!({"id": 7}));
        assert_eq!(out["tool_calls"][1]["arguments"], "not json");
        assert_eq!(out["finish_reason"], "tool_calls");
    }
}
