//! `http`: a real HTTP request, returning `{status, headers, body}`.
//!
//! Params: `method`, `url`, `headers` (object), `json` (sent as a JSON body) or `body`
//! (raw text), `timeout_ms` (default 60 s, so a call always ends), `idempotency_key`
//! (default true). Any status is a result, not a failure: workflows branch on `status`.
//! The body is parsed as JSON when the response says it is JSON (and parses), otherwise
//! returned as text.
//!
//! The step's idempotency key is sent as an `Idempotency-Key` header (a compensation's own
//! key for a compensation), unless the params set that header themselves or say
//! `"idempotency_key": false`: a service that dedupes on it makes the step's effect
//! exactly-once across retries and redeliveries.
//!
//! The request is async (reqwest): a cancel (the run ended, a race was won, the step timed
//! out) drops it, and the connection with it, at once.
//!
//! Failures: `BAD_PARAMS` (bad method, URL or header), `TIMEOUT`, `NETWORK` (DNS,
//! connection, TLS, protocol), `OUTPUT_TOO_LARGE` (a body over 8 MiB).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::{ToolError, codes};

use crate::tool::{Tool, ToolContext, bad_params, cancelled, parse_params};

/// Error code of a request that could not be carried out.
pub const NETWORK: &str = "NETWORK";

/// Time limit when the params give none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Larger bodies could not travel back in a result anyway.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The header that carries the step's idempotency key.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// One client for every call: its connection pool is shared.
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(crate::tls::http_client);

/// Sends an HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Http;

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    method: String,
    url: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default = "yes")]
    idempotency_key: bool,
}

#[async_trait]
impl Tool for Http {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "http".into(),
            version: "2".into(),
            description: "Built-in. Sends an HTTP request (`json` is sent as a JSON body, `body` as raw text) with \
                          the step's idempotency key in an `Idempotency-Key` header, and returns {\"status\": <code>, \
                          \"headers\": {...}, \"body\": <parsed JSON, or text>}. Fails on network errors and when \
                          `timeout_ms` elapses."
                .into(),
            params: json!({
                "type": "object",
                "properties": {
                    "method": {"type": "string"},
                    "url": {"type": "string"},
                    "headers": {"type": "object"},
                    "json": {},
                    "body": {"type": "string"},
                    "timeout_ms": {"type": "integer", "minimum": 1},
                    "idempotency_key": {"type": "boolean"}
                },
                "required": ["method", "url"],
                "additionalProperties": false
            }),
        }
    }

    fn concurrency(&self) -> usize {
        32
    }

    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let params: Params = parse_params("http", params)?;
        tokio::select! {
            result = send(params, &ctx.idempotency_key) => result,
            // Dropping the request closes its connection: the server sees it go.
            () = ctx.cancel.cancelled() => Err(cancelled("http")),
        }
    }
}

/// Carries out the request.
async fn send(params: Params, key: &str) -> Result<Value, ToolError> {
    let Params { method, url, headers, json, body, timeout_ms, idempotency_key } = params;
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad_params(format!("http: {method:?} is not an HTTP method")))?;
    let timeout = timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let parsed = reqwest::Url::parse(&url).map_err(|e| bad_params(format!("http: invalid URL {url:?}: {e}")))?;
    let mut request = CLIENT.request(method, parsed).timeout(timeout);
    let has = |name: &str| headers.keys().any(|k| k.eq_ignore_ascii_case(name));
    let (has_content_type, has_key) = (has("content-type"), has(IDEMPOTENCY_KEY));
    for (name, value) in &headers {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| bad_params(format!("http: invalid header name {name:?}: {e}")))?;
        let value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|e| bad_params(format!("http: invalid value of header {name}: {e}")))?;
        request = request.header(name, value);
    }
    if idempotency_key && !has_key && !key.is_empty() {
        request = request.header(IDEMPOTENCY_KEY, key);
    }
    request = match (json, body) {
        (Some(_), Some(_)) => return Err(bad_params("http: give `json` or `body`, not both")),
        (Some(json), None) => {
            if !has_content_type {
                request = request.header("content-type", "application/json");
            }
            request.body(json.to_string())
        }
        (None, Some(body)) => request.body(body),
        (None, None) => request,
    };
    let response = request.send().await.map_err(|e| failure(&url, timeout, &e))?;
    let status = response.status().as_u16();
    let mut header_map = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match header_map.get_mut(name.as_str()) {
            // Repeated headers are joined, as HTTP allows.
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim() == "application/json" || m.trim().ends_with("+json"));
    let mut bytes = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(|e| failure(&url, timeout, &e))? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(ToolError::new(format!("http: the response body from {url} is larger than {MAX_BODY} bytes"))
                .with_code(codes::OUTPUT_TOO_LARGE)
                .permanent());
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = match is_json.then(|| serde_json::from_slice::<Value>(&bytes)) {
        Some(Ok(value)) => value,
        _ => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
    };
    Ok(json!({"status": status, "headers": header_map, "body": body}))
}

fn failure(url: &str, timeout: Duration, error: &reqwest::Error) -> ToolError {
    if error.is_timeout() {
        return ToolError::new(format!("http: {url} did not answer within {} ms", timeout.as_millis()))
            .with_code(codes::TIMEOUT);
    }
    if error.is_builder() {
        return bad_params(format!("http: invalid request to {url}: {error}"));
    }
    // The cause says what failed (refused, DNS, TLS): the top level only says "error sending request".
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    ToolError::new(format!("http: request to {url} failed: {message}")).with_code(NETWORK)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    /// What the test server saw.
    struct Seen {
        head: String,
        body: String,
    }

    /// Serves one connection on 127.0.0.1: records the request, waits `delay`, answers `response`.
    fn serve_once(response: &'static str, delay: Duration) -> (String, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(Seen { head, body: String::from_utf8_lossy(&body).into_owned() });
            std::thread::sleep(delay);
            let _ = reader.get_mut().write_all(response.as_bytes());
        });
        (format!("http://{addr}"), rx)
    }

    async fn call(params: Value) -> Result<Value, ToolError> {
        Http.call(params, ToolContext::default()).await
    }

    #[tokio::test]
    async fn posts_json_and_parses_a_json_answer() {
        let (base, seen) = serve_once(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-test: yes\r\ncontent-length: 11\r\n\
             connection: close\r\n\r\n{\"id\": 42}\n",
            Duration::ZERO,
        );
        let out = call(json!({"method": "post", "url": format!("{base}/items?x=1"), "headers": {"x-key": "k1"},
                             "json": {"name": "a"}}))
        .await
        .expect("request succeeds");
        assert_eq!(out["status"], 201);
        assert_eq!(out["headers"]["x-test"], "yes");
        assert_eq!(out["body"], json!({"id": 42}));
        let seen = seen.recv().expect("server saw the request");
        assert!(seen.head.starts_with("POST /items?x=1 HTTP/1.1\r\n"), "{}", seen.head);
        let head = seen.head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json") && head.contains("x-key: k1"), "{head}");
        assert_eq!(serde_json::from_str::<Value>(&seen.body).expect("json body"), json!({"name": "a"}));
    }

    #[tokio::test]
    async fn any_status_is_a_result_and_text_stays_text() {
        let (base, seen) = serve_once(
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 7\r\nconnection: close\r\n\r\nmissing",
            Duration::ZERO,
        );
        let out = call(json!({"method": "GET", "url": format!("{base}/nothing"), "body": ""})).await.expect("a result");
        assert_eq!(out["status"], 404);
        assert_eq!(out["body"], "missing");
        assert!(seen.recv().expect("request").head.starts_with("GET /nothing "));
    }

    #[tokio::test]
    async fn timeouts_and_network_errors_fail() {
        let (base, _seen) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Duration::from_secs(3));
        let e = call(json!({"method": "GET", "url": base, "timeout_ms": 200})).await.expect_err("times out");
        assert_eq!(e.code.as_deref(), Some(codes::TIMEOUT), "{e}");

        let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
        let e = call(json!({"method": "GET", "url": format!("http://{closed}/")})).await.expect_err("refused");
        assert_eq!(e.code.as_deref(), Some(NETWORK), "{e}");
        assert!(e.retryable);

        let e = call(json!({"method": "GET", "url": "not a url"})).await.expect_err("bad url");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS), "{e}");
        let e = call(json!({"method": "GET", "url": "http://x", "json": 1, "body": "b"})).await.expect_err("both");
        assert_eq!(e.code.as_deref(), Some(codes::BAD_PARAMS), "{e}");
    }

    #[tokio::test]
    async fn the_step_s_idempotency_key_is_sent_unless_told_otherwise() {
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let ctx = |key: &str| ToolContext { idempotency_key: key.into(), ..ToolContext::default() };
        let (base, seen) = serve_once(answer, Duration::ZERO);
        Http.call(json!({"method": "POST", "url": base, "json": {}}), ctx("run-1/charge")).await.expect("sent");
        let head = seen.recv().expect("request").head.to_ascii_lowercase();
        assert!(head.contains("idempotency-key: run-1/charge"), "{head}");

        let (base, seen) = serve_once(answer, Duration::ZERO);
        let params = json!({"method": "POST", "url": base, "idempotency_key": false});
        Http.call(params, ctx("run-1/charge")).await.expect("sent");
        assert!(!seen.recv().expect("request").head.to_ascii_lowercase().contains("idempotency-key"));

        let (base, seen) = serve_once(answer, Duration::ZERO);
        let params = json!({"method": "POST", "url": base, "headers": {"Idempotency-Key": "mine"}});
        Http.call(params, ctx("run-1/charge")).await.expect("sent");
        let head = seen.recv().expect("request").head.to_ascii_lowercase();
        assert!(head.contains("idempotency-key: mine") && !head.contains("run-1/charge"), "{head}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_stops_a_request_in_flight() {
        let (base, seen) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Duration::from_secs(30));
        let cancel = tokio_util::sync::CancellationToken::new();
        let ctx = ToolContext { cancel: cancel.clone(), ..ToolContext::default() };
        let call = tokio::spawn(async move { Http.call(json!({"method": "GET", "url": base}), ctx).await });
        tokio::task::spawn_blocking(move || seen.recv().expect("the request reached the server"))
            .await
            .expect("joined");
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), call).await.expect("ends at once").expect("joined");
        assert_eq!(outcome.expect_err("cancelled").code.as_deref(), Some(codes::CANCELLED));
    }
}
