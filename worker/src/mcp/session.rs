//! One MCP server's session: started, initialized, its tools listed, listed again when it
//! says they changed, and restarted with backoff when it dies. While it is down its tools
//! stay advertised and their calls fail retryably, so a run waits out a restart.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, QuitReason, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransport, StreamableHttpClientTransportConfig};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use weft_lang::catalogue::ToolSpec;
use weft_protocol::retry::{self, Policy};
use weft_protocol::subjects;

use super::config::{McpServer, Transport};
use super::tool::McpTool;
use crate::tool::Tool;

/// How long a server may take to start and answer `initialize`, and to list its tools.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Restarts: 500 ms doubling up to 30 s; reset once a session has listed its tools.
const RESTART: Policy = Policy::new(Duration::from_millis(500), Duration::from_secs(30));

/// What the session's tools call through.
pub(crate) struct Session {
    pub(crate) server: String,
    state: RwLock<State>,
}

enum State {
    /// The session, and a token that fires when it ends: rmcp does not fail the calls in
    /// flight when a server's process exits, so calls wait on this too.
    Up(Peer<RoleClient>, CancellationToken),
    Down(String),
}

impl Session {
    pub(crate) fn new(server: &str) -> Session {
        Session { server: server.to_owned(), state: RwLock::new(State::Down("not started yet".into())) }
    }

    /// The live session and what fires when it ends, if the server is up.
    pub(crate) fn peer(&self) -> Option<(Peer<RoleClient>, CancellationToken)> {
        match &*self.state.read().unwrap_or_else(PoisonError::into_inner) {
            State::Up(peer, ended) => Some((peer.clone(), ended.clone())),
            State::Down(_) => None,
        }
    }

    /// Why the server is down.
    pub(crate) fn why_down(&self) -> String {
        match &*self.state.read().unwrap_or_else(PoisonError::into_inner) {
            State::Up(..) => "up".into(),
            State::Down(why) => why.clone(),
        }
    }

    fn set(&self, state: State) {
        let old = std::mem::replace(&mut *self.state.write().unwrap_or_else(PoisonError::into_inner), state);
        if let State::Up(_, ended) = old {
            ended.cancel();
        }
    }
}

/// A server's tools as listed now.
pub(crate) struct Listed {
    pub(crate) server: String,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
}

/// Hears the server's notifications.
#[derive(Clone)]
struct Handler {
    tools_changed: Arc<Notify>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("weft-worker", env!("CARGO_PKG_VERSION")))
    }
}

/// Keeps `config`'s server running until `stop`, sending its tool list whenever it is
/// read.
pub(crate) async fn supervise(
    config: McpServer,
    session: Arc<Session>,
    listed: mpsc::UnboundedSender<Listed>,
    stop: CancellationToken,
) {
    let name = config.name.clone();
    let mut backoff = RESTART.backoff();
    loop {
        let tools_changed = Arc::new(Notify::new());
        let started = tokio::select! {
            started = tokio::time::timeout(ANSWER_WITHIN, start(&config, Handler { tools_changed: tools_changed.clone() })) => started,
            () = stop.cancelled() => return,
        };
        let why = match started {
            Err(_) => format!("it did not answer `initialize` within {ANSWER_WITHIN:?}"),
            Ok(Err(why)) => why,
            Ok(Ok(running)) => {
                let peer = running.peer().clone();
                session.set(State::Up(peer.clone(), CancellationToken::new()));
                tracing::info!(mcp_server = %name, transport = %config.transport, "MCP server connected");
                if list(&config, &session, &peer, &listed).await {
                    backoff.reset();
                }
                let ct = running.cancellation_token();
                let mut ended = std::pin::pin!(running.waiting());
                loop {
                    tokio::select! {
                        reason = &mut ended => break match (reason, &config.transport) {
                            (Ok(QuitReason::Closed), Transport::Stdio { .. }) => "its process exited or closed its output".to_owned(),
                            (Ok(QuitReason::Closed), Transport::Http { .. }) => "the connection closed".to_owned(),
                            (reason, _) => format!("the session ended ({reason:?})"),
                        },
                        () = tools_changed.notified() => {
                            tracing::info!(mcp_server = %name, "the server's tools changed; listing them again");
                            list(&config, &session, &peer, &listed).await;
                        }
                        () = stop.cancelled() => {
                            session.set(State::Down("the worker is stopping".into()));
                            ct.cancel();
                            let _ = tokio::time::timeout(Duration::from_secs(5), ended).await;
                            return;
                        }
                    }
                }
            }
        };
        session.set(State::Down(why.clone()));
        let delay = backoff.next_delay();
        tracing::warn!(mcp_server = %name, transport = %config.transport, "MCP server is down: {why}; starting it again in {delay:?}");
        if !retry::pause(delay, Some(&stop)).await {
            return;
        }
    }
}

/// Starts the server and initializes the session.
async fn start(config: &McpServer, handler: Handler) -> Result<RunningService<RoleClient, Handler>, String> {
    match &config.transport {
        Transport::Stdio { command, args, env, cwd } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env);
            if let Some(cwd) = cwd {
                cmd.current_dir(cwd);
            }
            let mut wrapped = CommandWrap::from(cmd);
            // Its own process group, killed with it: `npx` runs the server as its child.
            wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
            let (transport, stderr) = TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            if let Some(stderr) = stderr {
                tokio::spawn(log_stderr(config.name.clone(), stderr));
            }
            handler.serve(transport).await.map_err(|e| format!("`initialize` failed: {e}"))
        }
        Transport::Http { url, headers } => {
            let mut custom = HashMap::new();
            for (name, value) in headers {
                let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("header name {name:?} is not valid"))?;
                // The value may be a secret: not in the message.
                let value = reqwest::header::HeaderValue::from_str(value)
                    .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
                custom.insert(header, value);
            }
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
            let transport = StreamableHttpClientTransport::with_client(crate::tls::http_client(), config);
            handler.serve(transport).await.map_err(|e| format!("`initialize` failed: {e}"))
        }
    }
}

/// The server's stderr, as the worker's log lines.
async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(mcp_server = %server, "stderr: {line}");
    }
}

/// Lists the server's tools and sends them; false if the list could not be read (the
/// last one stays).
async fn list(
    config: &McpServer,
    session: &Arc<Session>,
    peer: &Peer<RoleClient>,
    listed: &mpsc::UnboundedSender<Listed>,
) -> bool {
    let server = &config.name;
    let tools = match tokio::time::timeout(ANSWER_WITHIN, peer.list_all_tools()).await {
        Ok(Ok(tools)) => tools,
        Ok(Err(e)) => {
            tracing::error!(mcp_server = %server, "cannot list the server's tools: {e}");
            return false;
        }
        Err(_) => {
            tracing::error!(mcp_server = %server, "the server did not list its tools within {ANSWER_WITHIN:?}");
            return false;
        }
    };
    let version = peer
        .peer_info()
        .and_then(|info| info.server_info.as_ref().map(|i| i.version.clone()))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "1".into());
    if let Some(wanted) = &config.tools {
        for missing in wanted.iter().filter(|w| !tools.iter().any(|t| t.name == **w)) {
            tracing::warn!(mcp_server = %server, tool = %missing, "the config asks for a tool the server does not have");
        }
    }
    let mut served: Vec<Arc<dyn Tool>> = Vec::new();
    for tool in tools {
        if config.tools.as_ref().is_some_and(|wanted| !wanted.iter().any(|w| *w == tool.name)) {
            continue;
        }
        let name = format!("{server}.{}", tool.name);
        if !subjects::is_tool_name(&name) {
            tracing::error!(mcp_server = %server, tool = %tool.name,
                "tool not served: `{name}` cannot be a Weft tool name (tokens of letters, digits, `_` and `-` separated by `.`, at most {} bytes)",
                subjects::MAX_TOOL_NAME);
            continue;
        }
        let description = tool.description.as_deref().map(str::to_owned).or(tool.title.clone()).unwrap_or_default();
        let spec = ToolSpec {
            name,
            version: version.clone(),
            description,
            params: serde_json::Value::Object(tool.input_schema.as_ref().clone()),
        };
        served.push(Arc::new(McpTool {
            spec,
            remote: tool.name.to_string(),
            concurrency: config.concurrency,
            session: session.clone(),
        }));
    }
    tracing::info!(mcp_server = %server, tools = served.len(), "listed the server's tools");
    listed.send(Listed { server: server.clone(), tools: served }).is_ok()
}
