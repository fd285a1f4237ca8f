//! The Weft worker: hosts tools and runs the tasks the coordinator sends them over NATS
//! JetStream, answering each with a result.
//!
//! A worker serves a [`Registry`] of [`Tool`]s: the built-ins (`echo`, `sleep`, `fail`,
//! `http`, `transform`), optionally the demo tools of `examples/tools/catalogue.json` and the `llm` tool, or
//! any set an embedding program builds. Workers of a tool share its durable consumer, so
//! starting another worker adds capacity with no configuration. The wire protocol is in
//! `weft_protocol::wire`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_worker::WorkerError> {
//! use tokio_util::sync::CancellationToken;
//! use weft_worker::{Config, Registry};
//!
//! let shutdown = CancellationToken::new();
//! let config = Config { nats_url: "nats://127.0.0.1:4222".into(), ..Config::default() };
//! weft_worker::run_with_registry(config, Registry::with_builtins(), shutdown).await
//! # }
//! ```
//!
//! # Guarantees
//!
//! A task is acknowledged only after its result is stored by JetStream, so a worker that
//! dies mid-task has the task redelivered (to any worker of the tool) and a result is
//! never lost; results carry message ids, so a second publish of one is dropped. Running
//! tools report progress every third of the ack wait, so long tools keep their task.
//!
//! # Layout
//!
//! - [`config`]: [`Config`], flags and environment made into one value.
//! - [`error`]: [`WorkerError`], why a worker could not start.
//! - [`tool`]: the [`Tool`] trait and [`ToolContext`].
//! - [`registry`]: [`Registry`], tools by name with their params validators.
//! - [`builtin`]: the built-in tools, one file each.
//! - [`demo`]: the demo tools, defined by `examples/tools/demo.json` plus a few functions.
//! - [`llm`]: the `llm` tool, a model call over the Chat Completions protocol.
//! - [`mcp`]: MCP servers' tools as Weft tools (`<server>.<tool>`).
//! - [`metrics`]: the Prometheus metrics by tool (served by the binary's `--metrics`).
//! - [`tls`]: the process's TLS provider for HTTP clients.
//! - `connect`: the NATS connection (waits for the server, reconnects forever).
//! - `executor`: pull loops, task handling, results, cancellation, advertisements.

pub mod builtin;
pub mod config;
pub mod demo;
pub mod error;
mod executor;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod registry;
pub mod tls;
pub mod tool;

use std::sync::Arc;

use tokio::sync::watch;

pub use config::Config;
pub use error::WorkerError;
pub use registry::Registry;
use tokio_util::sync::CancellationToken;
pub use tool::{Connected, Tool, ToolContext, UsageMeter};

/// Runs a worker with the built-in tools (and the demo tools if `config.demo_tools`, the
/// `llm` tool if `config.llm`, the tools of `config.mcp`'s servers) until `shutdown` fires
/// and running tools have finished or the grace period is over.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let mut registry = Registry::with_builtins();
    if config.demo_tools {
        demo::register(&mut registry)?;
    }
    if let Some(llm) = &config.llm {
        registry.register(Arc::new(llm::Llm::new(llm.clone())))?;
    }
    if config.mcp.is_empty() {
        return run_with_registry(config, registry, shutdown).await;
    }
    config.validate()?;
    let own: Vec<Arc<dyn Tool>> = registry.tools().cloned().collect();
    let (tools, served) = watch::channel(Arc::new(registry));
    // The servers outlive the executor, so tools still running at shutdown can finish.
    let stop_servers = CancellationToken::new();
    let servers = tokio::spawn(mcp::serve(config.mcp.clone(), own, tools, stop_servers.clone()));
    let result = run_with_tools(config, served, shutdown).await;
    stop_servers.cancel();
    if let Err(e) = servers.await {
        tracing::warn!(error = %e, "the MCP sessions did not stop cleanly");
    }
    result
}

/// Runs a worker serving `registry` (ignores `config.demo_tools`, `llm` and `mcp`).
///
/// Returns an error only if it cannot start (bad config, no tools, unusable NATS URL); a
/// NATS server that is not up yet is waited for, and outages are ridden out.
pub async fn run_with_registry(
    config: Config,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    if registry.is_empty() {
        return Err(WorkerError::NoTools);
    }
    // The sender stays here, so the set never changes.
    let (_fixed, tools) = watch::channel(Arc::new(registry));
    run_with_tools(config, tools, shutdown).await
}

/// Runs a worker serving the tools `tools` holds, as they change: loops and
/// advertisements start and stop with them (how MCP servers' tools are served).
pub async fn run_with_tools(
    config: Config,
    tools: watch::Receiver<Arc<Registry>>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    config.validate()?;
    let name = format!("weft-worker {}", config.worker_id);
    let weft_service::connect::Connection { client: nats, connections } = weft_service::connect::connect(
        name,
        &config.nats_url,
        config.credentials.as_deref(),
        weft_protocol::subjects::INBOX_WORKER,
    )
    .await?;
    executor::serve(config, tools, nats, connections, shutdown).await;
    Ok(())
}
