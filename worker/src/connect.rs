//! The NATS connection: waits for the server at start-up, reconnects forever, and counts
//! reconnections so pull loops can drop pull requests a restarted server has forgotten.

use async_nats::{ConnectOptions, Event};
use tokio::sync::watch;
use weft_shared::client::nats_url;

use crate::config::Config;
use crate::error::WorkerError;

/// Connects in the background: returns at once, even if the server is not up yet.
/// The receiver's value goes up by one at every (re)connection.
pub async fn connect(config: &Config) -> Result<(async_nats::Client, watch::Receiver<u64>), WorkerError> {
    let (connections, watcher) = watch::channel(0u64);
    let failed = |message: String| WorkerError::Connect { url: nats_url::redact(&config.nats_url), message };
    let mut options = ConnectOptions::new()
        .name(format!("weft-worker {}", config.worker_id))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let connections = connections.clone();
            async move {
                match event {
                    Event::Connected => {
                        connections.send_modify(|n| *n += 1);
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
    if let Some(path) = &config.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| failed(format!("cannot read credentials {}: {e}", path.display())))?;
    }
    let options = nats_url::with_credentials(options, &config.nats_url);
    let client = options.connect(nats_url::servers(&config.nats_url)).await.map_err(|e| failed(e.to_string()))?;
    Ok((client, watcher))
}
