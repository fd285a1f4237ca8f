//! What every Weft service binary does the same way: logs and shutdown on signals.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Structured logs to stderr, filtered by `RUST_LOG` (default: info, with the chatty
/// crates quieter), as JSON lines if `json`.
pub fn init_logs(json: bool) {
    // ractor wraps each actor's life in an info span; async-nats logs every connection.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ractor=warn,async_nats=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// The first SIGINT or SIGTERM cancels `shutdown` (a graceful stop); a second exits at once.
pub async fn stop_on_signals(shutdown: CancellationToken) {
    for count in 0.. {
        if let Err(e) = signal().await {
            tracing::error!(error = %e, "cannot listen for signals");
            return;
        }
        if count > 0 {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
        tracing::info!("signal received: stopping gracefully (signal again to exit now)");
        shutdown.cancel();
    }
}

#[cfg(unix)]
async fn signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
