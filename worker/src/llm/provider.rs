//! One Chat Completions request to a provider, and what its failures mean for a retry.
//!
//! reqwest rather than an OpenAI SDK: the worker already uses it for `http`, the protocol
//! is one POST, and a thin client sends the same JSON to OpenAI, Ollama, vLLM, llama.cpp
//! and LiteLLM, where SDKs type the request for OpenAI alone and reject what others add.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use weft_protocol::wire::{ToolError, Usage, codes};

/// Where a worker's `llm` tool sends its requests.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL of the Chat Completions API, up to `/chat/completions`
    /// (default `https://api.openai.com/v1`; Ollama's is `http://127.0.0.1:11434/v1`).
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`; local servers need none.
    pub api_key: Option<ApiKey>,
    /// Model of steps that name none.
    pub default_model: Option<String>,
    /// Longest wait for one response (default 10 min: long generations are slow).
    pub timeout: Duration,
    /// Tokens per minute this key may use, across every worker (default: no limit).
    pub tokens_per_minute: Option<u64>,
    /// Requests per minute this key may make, across every worker (default: no limit).
    pub requests_per_minute: Option<u64>,
    /// The window those limits count over (default a minute; shorter only in tests).
    pub rate_window: Duration,
}

impl Default for LlmConfig {
    fn default() -> LlmConfig {
        LlmConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            default_model: None,
            timeout: Duration::from_secs(600),
            tokens_per_minute: None,
            requests_per_minute: None,
            rate_window: Duration::from_secs(60),
        }
    }
}

impl LlmConfig {
    /// The base URL without user and password, for logs.
    pub fn shown_url(&self) -> String {
        shown(self.base_url.trim_end_matches('/'))
    }
}

/// An API key: shown as `***` wherever it is printed.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Keeps `key`.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }
}

impl ApiKey {
    /// The key itself, for the `Authorization` header and the rate limit's hash.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// What a model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text, if any.
    pub content: Option<String>,
    /// Function calls the model asks for.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped (`stop`, `length`, `tool_calls`...).
    pub finish_reason: Option<String>,
    /// Tokens spent and the model that answered.
    pub usage: Usage,
}

/// A function call in an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's id of the call.
    pub id: String,
    /// The function.
    pub name: String,
    /// Its arguments, as the JSON text the model wrote.
    pub arguments: String,
}

/// A client of one provider.
#[derive(Debug)]
pub(crate) struct Provider {
    endpoint: String,
    /// The base URL without credentials, for messages.
    shown: String,
    api_key: Option<ApiKey>,
    default_model: Option<String>,
    timeout: Duration,
    client: reqwest::Client,
}

impl Provider {
    pub(crate) fn new(config: LlmConfig) -> Provider {
        let base = config.base_url.trim_end_matches('/');
        Provider {
            endpoint: format!("{base}/chat/completions"),
            shown: shown(base),
            api_key: config.api_key,
            default_model: config.default_model,
            timeout: config.timeout,
            client: crate::tls::http_client(),
        }
    }

    pub(crate) fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    /// Sends one request (`stream` off) and reads the first choice.
    pub(crate) async fn complete(&self, body: &Map<String, Value>) -> Result<Completion, ToolError> {
        let mut request = self.client.post(&self.endpoint).timeout(self.timeout).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(self.refused(status.as_u16(), &text, retry_after));
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            ToolError::new(format!("llm: {} answered with something that is not a chat completion: {e}", self.shown))
                .with_code(codes::PROVIDER_UNAVAILABLE)
        })?;
        let model = answer.model.unwrap_or_default();
        let Some(choice) = answer.choices.into_iter().next() else {
            let error = ToolError::new(format!("llm: {} answered with no choice", self.shown));
            return Err(error.with_code(codes::PROVIDER_UNAVAILABLE));
        };
        let usage = answer.usage.unwrap_or_default();
        Ok(Completion {
            content: choice.message.content,
            tool_calls: choice
                .message
                .tool_calls
                .into_iter()
                .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
                .collect(),
            finish_reason: choice.finish_reason,
            usage: Usage { model, prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens },
        })
    }

    /// Sends one request with `stream` on, handing each piece of text to `on_text` as it
    /// arrives (server-sent events), and assembles the whole answer.
    pub(crate) async fn stream(
        &self,
        body: &Map<String, Value>,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Completion, ToolError> {
        let mut body = body.clone();
        body.insert("stream".into(), Value::Bool(true));
        // Providers send usage in a last chunk only when asked.
        body.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
        let mut request = self.client.post(&self.endpoint).timeout(self.timeout).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let mut response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let text = response.text().await.map_err(|e| self.unreachable(&e))?;
            return Err(self.refused(status.as_u16(), &text, retry_after));
        }
        let mut assembled = Assembled::default();
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else { continue };
                if data == "[DONE]" {
                    return Ok(assembled.into_completion());
                }
                let event: Value = serde_json::from_str(data).map_err(|e| {
                    ToolError::new(format!("llm: {} streamed something that is not a chunk: {e}", self.shown))
                        .with_code(codes::PROVIDER_UNAVAILABLE)
                })?;
                if let Some(text) = assembled.add(&event) {
                    on_text(&text);
                }
            }
        }
        // Some servers close the stream without `[DONE]`.
        Ok(assembled.into_completion())
    }

    /// The request did not get an answer.
    fn unreachable(&self, e: &reqwest::Error) -> ToolError {
        // reqwest's message names the URL, which is the endpoint: no key in it.
        let what = if e.is_timeout() { "timed out" } else { "could not be reached" };
        let error = ToolError::new(format!("llm: {} {what}: {}", self.shown, self.redact(&e.to_string())));
        error.with_code(if e.is_timeout() { codes::TIMEOUT } else { codes::NETWORK })
    }

    /// An error status, classified for the retry policy.
    fn refused(&self, status: u16, body: &str, retry_after: Option<Duration>) -> ToolError {
        let detail = provider_message(body).map(|m| self.redact(&m));
        let said = detail.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        let with_wait = |e: ToolError| match retry_after {
            Some(after) => e.retry_after(after),
            None => e,
        };
        match status {
            429 => with_wait(
                ToolError::new(format!("llm: {} is rate limiting (HTTP 429){said}", self.shown))
                    .with_code(codes::RATE_LIMITED),
            ),
            500..=599 => with_wait(
                ToolError::new(format!("llm: {} failed (HTTP {status}){said}", self.shown))
                    .with_code(codes::PROVIDER_UNAVAILABLE),
            ),
            // OpenAI's 401 message quotes part of the key: it is not repeated.
            401 | 403 => ToolError::new(format!(
                "llm: {} refused the API key (HTTP {status}); check WEFT_LLM_API_KEY",
                self.shown
            ))
            .with_code(codes::UNAUTHORIZED)
            .permanent(),
            _ if is_context_length(body) => {
                ToolError::new(format!("llm: the messages do not fit the model's context window{said}"))
                    .with_code(codes::CONTEXT_LENGTH)
                    .permanent()
            }
            _ => ToolError::new(format!("llm: {} refused the request (HTTP {status}){said}", self.shown))
                .with_code(codes::PROVIDER_REJECTED)
                .permanent(),
        }
    }

    /// `text` with the key, should a provider echo it, replaced by `***`.
    fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(ApiKey(key)) if key.len() >= 4 => text.replace(key.as_str(), "***"),
            _ => text.to_owned(),
        }
    }
}

/// `base` without user and password.
fn shown(base: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => "the model provider".into(),
    }
}

/// `retry-after-ms` (OpenAI's) or `retry-after` in seconds. An HTTP date is not read: the
/// step's own backoff applies then.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|n| *n >= 0.0);
    if let Some(ms) = number("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    number("retry-after").and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The `error.message` of an OpenAI-style error body, else the body's first 300 bytes.
fn provider_message(body: &str) -> Option<String> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        let error = v.get("error")?;
        error.get("message").and_then(Value::as_str).map(str::to_owned).or_else(|| error.as_str().map(str::to_owned))
    });
    let message = message.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() {
        return None;
    }
    let mut end = message.len().min(300);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Some(message[..end].to_owned())
}

/// OpenAI says `context_length_exceeded`; vLLM, llama.cpp and Ollama say it in words.
fn is_context_length(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    lower.contains("context_length_exceeded")
        || lower.contains("maximum context length")
        || lower.contains("context window")
        || lower.contains("exceeds the context")
}

/// A streamed answer, chunk by chunk.
#[derive(Debug, Default)]
struct Assembled {
    content: String,
    calls: Vec<ToolCall>,
    finish_reason: Option<String>,
    usage: Usage,
}

impl Assembled {
    /// Takes one chunk in; returns the text it added.
    fn add(&mut self, event: &Value) -> Option<String> {
        if let Some(model) = event.get("model").and_then(Value::as_str) {
            self.usage.model = model.to_owned();
        }
        if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
            let count = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.usage.prompt_tokens = count("prompt_tokens");
            self.usage.completion_tokens = count("completion_tokens");
        }
        let choice = event.get("choices").and_then(|c| c.get(0))?;
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let delta = choice.get("delta")?;
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            while self.calls.len() <= index {
                self.calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.id = id.to_owned();
            }
            let function = call.get("function");
            if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) {
                slot.name.push_str(name);
            }
            if let Some(args) = function.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
                slot.arguments.push_str(args);
            }
        }
        let text = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty())?;
        self.content.push_str(text);
        Some(text.to_owned())
    }

    fn into_completion(self) -> Completion {
        Completion {
            content: (!self.content.is_empty()).then_some(self.content),
            tool_calls: self.calls,
            finish_reason: self.finish_reason,
            usage: self.usage,
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<AnswerUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<AnswerCall>,
}

#[derive(Deserialize)]
struct AnswerCall {
    #[serde(default)]
    id: String,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize, Default)]
struct AnswerUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(key: Option<&str>) -> Provider {
        Provider::new(LlmConfig {
            base_url: "http://user:pw@127.0.0.1:9/v1/".into(),
            api_key: key.map(ApiKey::new),
            ..LlmConfig::default()
        })
    }

    #[test]
    fn errors_are_classified_for_retries() {
        let p = provider(None);
        let e = p.refused(429, r#"{"error": {"message": "slow down"}}"#, Some(Duration::from_millis(1500)));
        assert_eq!((e.code.as_deref(), e.retryable, e.retry_after_ms), (Some(codes::RATE_LIMITED), true, Some(1500)));
        assert!(e.message.contains("slow down"), "{e}");
        let e = p.refused(503, "upstream down", None);
        assert_eq!((e.code.as_deref(), e.retryable), (Some(codes::PROVIDER_UNAVAILABLE), true));
        let body = r#"{"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}}"#;
        let e = p.refused(400, body, None);
        assert_eq!((e.code.as_deref(), e.retryable), (Some(codes::CONTEXT_LENGTH), false));
        let e = p.refused(404, r#"{"error": {"message": "model `x` not found"}}"#, None);
        assert_eq!((e.code.as_deref(), e.retryable), (Some(codes::PROVIDER_REJECTED), false));
    }

    #[test]
    fn the_key_never_shows() {
        let key = "sk-secret-0123456789";
        let p = provider(Some(key));
        assert_eq!(format!("{:?}", ApiKey::new(key)), "ApiKey(***)");
        assert!(!format!("{p:?}").contains(key));
        let e = p.refused(401, &format!(r#"{{"error": {{"message": "Incorrect API key provided: {key}"}}}}"#), None);
        assert!(!e.message.contains("sk-secret"), "{e}");
        let e = p.refused(400, &format!("bad request for {key}"), None);
        assert!(!e.message.contains(key) && e.message.contains("***"), "{e}");
        assert!(!p.shown.contains("pw") && p.shown.ends_with("127.0.0.1:9/v1"), "{}", p.shown);
    }

    #[test]
    fn a_stream_is_assembled_chunk_by_chunk() {
        let mut a = Assembled::default();
        let mut chunk = |v: Value| a.add(&v);
        let mut texts = Vec::new();
        texts.extend(chunk(serde_json::json!({"model": "m1", "choices": [{"delta": {"role": "assistant"}}]})));
        texts.extend(chunk(serde_json::json!({"choices": [{"delta": {"content": "Hel"}}]})));
        texts.extend(chunk(serde_json::json!({"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]})));
        let calls = serde_json::json!({"choices": [{"delta": {"tool_calls": [
            {"index": 0, "id": "c", "function": {"name": "get_user", "arguments": "{\"id\""}}]}}]});
        texts.extend(chunk(calls));
        texts.extend(chunk(serde_json::json!({"choices": [{"delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 7}"}}]}}]})));
        texts.extend(chunk(serde_json::json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})));
        assert_eq!(texts, ["Hel", "lo"]);
        let c = a.into_completion();
        assert_eq!(c.content.as_deref(), Some("Hello"));
        assert_eq!((c.tool_calls[0].name.as_str(), c.tool_calls[0].arguments.as_str()), ("get_user", "{\"id\": 7}"));
        assert_eq!((c.usage.model.as_str(), c.usage.total(), c.finish_reason.as_deref()), ("m1", 7, Some("stop")));
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"));
        assert_eq!(retry_after(&h), None);
    }
}
