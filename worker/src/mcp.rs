//! MCP servers as Weft tools.
//!
//! A worker given MCP servers ([`config`]) keeps a session with each ([`session`]: a child
//! process over stdio, or Streamable HTTP), and serves each of their tools as a Weft tool
//! named `<server>.<tool>` with the tool's input schema as its params ([`tool`]). The
//! worker's tool set is a [`watch`] of [`Registry`]: its own tools plus every server's last
//! list, sent again whenever a server lists different tools (at start, after a restart, on
//! `notifications/tools/list_changed`), so the executor pulls and advertises what is
//! served now.
//!
//! Built on `rmcp`, the official Rust SDK: it speaks every protocol version a server may
//! (it negotiates), both transports, and cancels a dropped call with
//! `notifications/cancelled`, which is what a step's timeout or a cancelled run needs.

pub mod config;
mod session;
mod tool;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weft_lang::catalogue::ToolSpec;

pub use config::{McpConfigError, McpServer, Transport};
use session::{Listed, Session};

use crate::registry::Registry;
use crate::tool::Tool;

/// Keeps a session with each of `servers` until `stop`, sending on `tools` the worker's
/// own tools (`own`) plus every server's whenever what is served changes.
pub(crate) async fn serve(
    servers: Vec<McpServer>,
    own: Vec<Arc<dyn Tool>>,
    tools: watch::Sender<Arc<Registry>>,
    stop: CancellationToken,
) {
    let (listed_tx, mut listed) = mpsc::unbounded_channel::<Listed>();
    let mut sessions = JoinSet::new();
    for server in servers {
        let session = Arc::new(Session::new(&server.name));
        sessions.spawn(session::supervise(server, session, listed_tx.clone(), stop.clone()));
    }
    // The loop below ends when every session has stopped.
    drop(listed_tx);
    let mut by_server: BTreeMap<String, Vec<Arc<dyn Tool>>> = BTreeMap::new();
    while let Some(Listed { server, tools: served }) = listed.recv().await {
        by_server.insert(server, served);
        let registry = combine(&own, &by_server);
        if specs(&registry) != specs(&tools.borrow()) {
            tracing::info!(
                tools = registry.len(),
                "serving tools: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            );
            tools.send_replace(Arc::new(registry));
        }
    }
    while sessions.join_next().await.is_some() {}
}

/// The worker's own tools and every server's; a tool that cannot be registered (a schema
/// that is not JSON Schema, a name taken) is left out, and the log says which and why.
fn combine(own: &[Arc<dyn Tool>], by_server: &BTreeMap<String, Vec<Arc<dyn Tool>>>) -> Registry {
    let mut registry = Registry::new();
    for tool in own {
        if let Err(e) = registry.register(tool.clone()) {
            tracing::error!(error = %e, "tool not served");
        }
    }
    for (server, served) in by_server {
        for tool in served {
            if let Err(e) = registry.register(tool.clone()) {
                tracing::error!(mcp_server = %server, "tool not served: {e}");
            }
        }
    }
    registry
}

fn specs(registry: &Registry) -> Vec<&ToolSpec> {
    registry.specs().collect()
}
