//! `weft mcp`: the registered workflows as the tools of an MCP server, so any MCP client
//! (an IDE, a chat app, an agent) can call a Weft workflow as a tool.
//!
//! A tool is the latest version of a registered workflow: its name, description and
//! `input_schema`. A call starts a run with the arguments as input, reports a progress
//! notification as each step completes (when the client asked for progress), and returns
//! the run's output (as `structuredContent` when it is an object, and as JSON text), or
//! its errors as an `isError` result. Cancelling the call cancels the run. Served over
//! stdio, or Streamable HTTP on `--http ADDR` (path `/mcp`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};
use uuid::Uuid;
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::{EventKind, RunStatus};

/// How long a call's result waits for the progress of its run's last steps.
const PROGRESS_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The server: registered workflows, through a client of the deployment.
#[derive(Clone)]
struct Workflows {
    client: WeftClient,
}

impl Workflows {
    /// The latest version of each registered workflow.
    async fn latest(&self) -> Result<Vec<WorkflowDef>, ErrorData> {
        let listed = self.client.definitions().await.map_err(unavailable)?;
        let mut newest: BTreeMap<String, u32> = BTreeMap::new();
        for (name, version) in listed {
            let slot = newest.entry(name).or_default();
            *slot = (*slot).max(version);
        }
        let mut defs = Vec::with_capacity(newest.len());
        for (name, version) in newest {
            match self.client.definition(&name, Some(version)).await {
                Ok(def) => defs.push(def),
                // One unreadable definition must not hide the others.
                Err(e) => tracing::warn!(workflow = %name, version, error = %e, "registered workflow not listed"),
            }
        }
        Ok(defs)
    }

    /// Follows the run's events, telling the client of each completed step.
    async fn report_progress(
        client: WeftClient,
        run: Uuid,
        token: rmcp::model::ProgressToken,
        peer: rmcp::Peer<RoleServer>,
    ) {
        let Ok(events) = client.watch(run).await else { return };
        let mut events = std::pin::pin!(events);
        let mut done = 0u32;
        while let Some(Ok(event)) = events.next().await {
            if matches!(event.kind, EventKind::RunFinished { .. }) {
                return;
            }
            if let EventKind::StepCompleted { step_id, .. } = &event.kind {
                done += 1;
                let note = ProgressNotificationParam::new(token.clone(), f64::from(done))
                    .with_message(format!("step `{step_id}` completed"));
                if peer.notify_progress(note).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn unavailable(e: weft_client::ClientError) -> ErrorData {
    ErrorData::internal_error(format!("Weft cannot be reached: {e}"), None)
}

/// A workflow as an MCP tool.
fn tool_of(def: &WorkflowDef) -> Tool {
    let schema = match &def.input_schema {
        Some(Value::Object(schema)) => schema.clone(),
        _ => Map::from_iter([("type".to_owned(), json!("object"))]),
    };
    let description = def.description.clone().unwrap_or_else(|| format!("Runs Weft workflow `{}`.", def.name));
    Tool::new(def.name.clone(), description, Arc::new(schema))
}

fn text_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

impl ServerHandler for Workflows {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("weft", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool runs a registered Weft workflow with the arguments as its input and returns its output.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.latest().await?.iter().map(tool_of).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let def = match self.client.definition(&name, None).await {
            Ok(def) => def,
            Err(e) if e.is_not_found() => {
                return Err(ErrorData::invalid_params(format!("no registered workflow is named `{name}`"), None));
            }
            Err(e) => return Err(unavailable(e)),
        };
        let input = Value::Object(request.arguments.unwrap_or_default());
        // An input the workflow refuses is the caller's to fix: a tool error it can read.
        let run = match self.client.submit(&def, input).await {
            Ok(run) => run,
            Err(e) => return Ok(text_error(format!("workflow `{name}` did not start: {e}")).into()),
        };
        tracing::info!(workflow = %name, %run, "MCP call started a run");
        let progress = context.meta.get_progress_token().map(|token| {
            tokio::spawn(Workflows::report_progress(self.client.clone(), run, token, context.peer.clone()))
        });
        let ended = tokio::select! {
            record = self.client.wait(run) => record,
            () = context.ct.cancelled() => {
                if let Err(e) = self.client.cancel(run, Some("the MCP call was cancelled".into())).await {
                    tracing::warn!(%run, error = %e, "could not cancel the run of a cancelled MCP call");
                }
                return Err(ErrorData::internal_error(format!("cancelled: run {run} was cancelled"), None));
            }
        };
        // The run's events end with `run_finished`: every step's progress goes out before
        // the result (the client ignores progress after it), unless the events lag.
        if let Some(mut progress) = progress
            && tokio::time::timeout(PROGRESS_DRAIN, &mut progress).await.is_err()
        {
            progress.abort();
        }
        let record = ended.map_err(unavailable)?;
        let result = match (record.status, record.output) {
            (RunStatus::Completed, Some(Value::Object(output))) => CallToolResult::structured(Value::Object(output)),
            (RunStatus::Completed, output) => {
                CallToolResult::success(vec![ContentBlock::text(output.unwrap_or(Value::Null).to_string())])
            }
            (status, _) => text_error(format!(
                "run {run} of workflow `{name}` ended {}: {}",
                serde_json::to_value(status).ok().and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_default(),
                record.errors.join("; ")
            )),
        };
        Ok(result.into())
    }
}

/// Host names a Streamable HTTP server accepts without `--allow-host`: rmcp's defaults.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Serves until stdin closes (stdio) or until interrupted (HTTP).
pub(crate) async fn serve(
    client: WeftClient,
    http: Option<SocketAddr>,
    allow_hosts: Vec<String>,
) -> anyhow::Result<std::process::ExitCode> {
    let server = Workflows { client };
    match http {
        None => {
            let running = server.serve(rmcp::transport::stdio()).await?;
            running.waiting().await?;
        }
        Some(addr) => {
            // SIGINT or SIGTERM ends the sessions and then the server.
            let stop = tokio_util::sync::CancellationToken::new();
            tokio::spawn(weft_service::signals::stop_on_signals(stop.clone()));
            let service = StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default()
                    .with_allowed_hosts(LOOPBACK_HOSTS.into_iter().map(str::to_owned).chain(allow_hosts))
                    .with_cancellation_token(stop.clone()),
            );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            eprintln!("weft mcp: serving the registered workflows on http://{}/mcp", listener.local_addr()?);
            axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
