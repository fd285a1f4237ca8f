//! What every Weft service binary does the same way: shutdown on signals (logs and
//! traces are in [`crate::telemetry`]).

use tokio_util::sync::CancellationToken;

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
