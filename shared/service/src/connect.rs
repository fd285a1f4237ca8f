//! A service's NATS connection: waits for the server at start-up, reconnects forever, logs
//! what happens to the connection, and counts (re)connections so loops can drop pull
//! requests a restarted server has forgotten.

use std::path::Path;

use async_nats::{ConnectOptions, Event};
use tokio::sync::watch;
use weft_protocol::nats_url;

/// The connection could not even be attempted (bad URL, unreadable credentials).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {message}")]
pub struct ConnectError {
    /// The URL, without its password.
    pub url: String,
    /// Why.
    pub message: String,
}

/// A connection and its (re)connection count.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client.
    pub client: async_nats::Client,
    /// Goes up by one at every (re)connection.
    pub connections: watch::Receiver<u64>,
}

/// Connects as `name` in the background: returns at once, even if the server is not up
/// yet. `url` may carry credentials (see [`nats_url`]); `credentials` is a NATS credentials
/// file (JWT/nkey). Replies arrive under `inbox` (the role's prefix, e.g.
/// `weft_protocol::subjects::INBOX_WORKER`), the only inboxes the role may subscribe to.
pub async fn connect(
    name: String,
    url: &str,
    credentials: Option<&Path>,
    inbox: &str,
) -> Result<Connection, ConnectError> {
    let (count, connections) = watch::channel(0u64);
    let failed = |message: String| ConnectError { url: nats_url::redact(url), message };
    let mut options = ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(inbox)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let count = count.clone();
            async move {
                match event {
                    Event::Connected => {
                        count.send_modify(|n| *n += 1);
                        tracing::info!("connected to NATS");
                    }
                    Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
                    Event::SlowConsumer(_) | Event::LameDuckMode | Event::Draining | Event::Closed => {
                        tracing::info!("NATS: {event}")
                    }
                    Event::ServerError(_) => tracing::warn!("NATS: {event}"),
                    // Repeats at every failed reconnection attempt: `Disconnected` said it.
                    Event::ClientError(_) => tracing::debug!("NATS: {event}"),
                }
            }
        });
    if let Some(path) = credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| failed(format!("cannot read credentials {}: {e}", path.display())))?;
    }
    let options = nats_url::with_credentials(options, url);
    let client = options.connect(nats_url::servers(url)).await.map_err(|e| failed(e.to_string()))?;
    Ok(Connection { client, connections })
}
