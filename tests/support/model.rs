//! A scripted OpenAI-compatible server: the one stand-in the tests allow, since no model
//! can be fetched on these machines.
//!
//! It speaks enough HTTP/1.1 for `POST /v1/chat/completions` (one request per connection,
//! answered with `Connection: close`), records every request with its arrival time, and
//! answers from a script: a function of the request and its index, or a queue of replies.
//! Everything around it (NATS, coordinator, workers) stays real.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its path (`/v1/chat/completions`).
    pub path: String,
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Its JSON body (`null` if it was not JSON).
    pub body: Value,
    /// When it arrived, in ms since the epoch.
    pub at_ms: u64,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The text of the last message.
    pub fn last_message(&self) -> String {
        let messages = self.body["messages"].as_array().cloned().unwrap_or_default();
        messages.last().and_then(|m| m["content"].as_str()).unwrap_or_default().to_owned()
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with a status and headers.
    Json {
        /// HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Value,
    },
    /// Server-sent events: each `data:` payload, then `[DONE]`.
    Stream(Vec<Value>),
}

impl Reply {
    /// A completion whose message is `content`, with the usage given.
    pub fn text(content: &str, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        Reply::ok(json!({"role": "assistant", "content": content}), "stop", prompt_tokens, completion_tokens)
    }

    /// A completion whose message is `value` written as JSON.
    pub fn json(value: &Value, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        Reply::text(&value.to_string(), prompt_tokens, completion_tokens)
    }

    /// A completion asking for function calls `(name, arguments)`.
    pub fn tool_calls(calls: &[(&str, Value)]) -> Reply {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                json!({"id": format!("call_{i}"), "type": "function",
                       "function": {"name": name, "arguments": args.to_string()}})
            })
            .collect();
        Reply::ok(json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls", 20, 10)
    }

    fn ok(message: Value, finish: &str, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        Reply::Json {
            status: 200,
            headers: Vec::new(),
            body: json!({
                "id": "chatcmpl-scripted", "object": "chat.completion", "model": "scripted-1",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}
            }),
        }
    }

    /// An OpenAI-style error.
    pub fn error(status: u16, message: &str, code: Option<&str>) -> Reply {
        Reply::Json {
            status,
            headers: Vec::new(),
            body: json!({"error": {"message": message, "type": "scripted", "code": code}}),
        }
    }

    /// The same reply with one more header.
    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Json { status, mut headers, body } => {
                headers.push((name.to_owned(), value.to_owned()));
                Reply::Json { status, headers, body }
            }
            other => other,
        }
    }
}

type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

/// The running server; stops when dropped.
pub struct ScriptedModel {
    /// `http://127.0.0.1:<port>/v1`: what `WEFT_LLM_BASE_URL` is set to.
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedModel").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl ScriptedModel {
    /// Answers each request with `script(request, index)`.
    pub fn start(script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> ScriptedModel {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the scripted model");
        let port = listener.local_addr().expect("bound").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (log, script): (_, Arc<Script>) = (received.clone(), Arc::new(script));
        // Its own thread and runtime, so it serves whatever the test's runtime is doing.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            tokio::spawn(serve(socket, log.clone(), script.clone()));
                        }
                    }
                }
            });
        });
        ScriptedModel { base_url: format!("http://127.0.0.1:{port}/v1"), received, stop: Some(stop) }
    }

    /// Answers with `replies` in order, then with the last one for ever.
    pub fn queue(replies: Vec<Reply>) -> ScriptedModel {
        let last = replies.last().cloned().unwrap_or_else(|| Reply::error(500, "empty script", None));
        let queue = Mutex::new(VecDeque::from(replies));
        ScriptedModel::start(move |_, _| {
            queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front().unwrap_or(last.clone())
        })
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn serve(mut socket: tokio::net::TcpStream, log: Arc<Mutex<Vec<Received>>>, script: Arc<Script>) {
    let Some(request) = read_request(&mut socket).await else { return };
    let index = {
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push(request.clone());
        log.len() - 1
    };
    let reply = script(&request, index);
    let _ = socket.write_all(&encode(&reply)).await;
    let _ = socket.shutdown().await;
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Received { path, headers, body, at_ms: now_ms() })
}

fn encode(reply: &Reply) -> Vec<u8> {
    let (status, headers, kind, body) = match reply {
        Reply::Json { status, headers, body } => (*status, headers.clone(), "application/json", body.to_string()),
        Reply::Stream(events) => {
            let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            body.push_str("data: [DONE]\n\n");
            (200, Vec::new(), "text/event-stream", body)
        }
    };
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}
