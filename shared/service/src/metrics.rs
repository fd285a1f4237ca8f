//! The Prometheus endpoint of a service: `GET /metrics` answers its registry in the
//! OpenMetrics text format (what Prometheus asks for first). Each binary owns its metric
//! families (`weft_coordinator::metrics`, `weft_worker::metrics`); this module serves them
//! and fixes the histogram buckets, so every duration and size is bucketed alike.

use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse as _;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// The media type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets of durations in seconds: 0.5 ms to about 65 s, doubling.
pub fn seconds_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 18)
}

/// Buckets of sizes in bytes: 64 B to 16 MiB, by fours.
pub fn bytes_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(64.0, 4.0, 10)
}

/// The endpoint's address from `--metrics` / `WEFT_METRICS_ADDR`: none when absent or
/// empty (compose passes an unset variable as an empty one).
pub fn parse_addr(text: Option<&str>) -> Result<Option<SocketAddr>, AddrError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| AddrError(text.to_owned())),
    }
}

/// A metrics address that is not `IP:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("the metrics address `{0}` is not IP:PORT (e.g. 0.0.0.0:9464)")]
pub struct AddrError(String);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct ServeError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Serves `registry` at `http://<addr>/metrics` until `shutdown`; returns the address bound
/// (port 0 picks one). The registry is `'static`: metric families live as long as the process.
pub async fn serve(
    addr: SocketAddr,
    registry: &'static Registry,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError { addr, source })?;
    let bound = listener.local_addr().map_err(|source| ServeError { addr, source })?;
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => ([(CONTENT_TYPE, OPENMETRICS)], text).into_response(),
                Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("metrics not encoded: {e}\n"))
                    .into_response(),
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "serving metrics at /metrics");
    Ok(bound)
}
