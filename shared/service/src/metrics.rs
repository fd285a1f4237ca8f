//! The Prometheus endpoint of a service: `GET /metrics` answers its registry in the
//! OpenMetrics text format (what Prometheus asks for first). Each binary owns its metric
//! families (`weft_coordinator::metrics`, `weft_worker::metrics`); this module serves them
//! and fixes the histogram buckets, so every duration and size is bucketed alike.
//!
//! The same endpoint answers `GET /healthz` for a service that gives it a [`Health`]:
//! `200 ok` only when the service's own check (a round trip through its actors and its
//! NATS connection) answers within [`HEALTH_TIMEOUT`]; [`probe`] asks it, so a container's
//! health check needs no HTTP client in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
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

/// How long a service's health check may take before `/healthz` answers 503.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// A service's check of itself: `Err` says what did not answer.
pub type Check = Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/healthz` asks: unhealthy ("starting") until the service [`set`](Health::set)s its
/// check, once it is ready to serve.
#[derive(Clone, Default)]
pub struct Health(Arc<OnceLock<Check>>);

impl Health {
    /// A health that answers "starting" until set.
    pub fn new() -> Health {
        Health::default()
    }

    /// The service is ready: from now on `/healthz` runs `check`. A second call is ignored.
    pub fn set(&self, check: Check) {
        let _ = self.0.set(check);
    }

    /// The answer of `/healthz`.
    async fn answer(&self) -> (StatusCode, String) {
        let Some(check) = self.0.get().cloned() else {
            return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned());
        };
        match tokio::time::timeout(HEALTH_TIMEOUT, check()).await {
            Ok(Ok(())) => (StatusCode::OK, "ok\n".to_owned()),
            Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: no answer within {HEALTH_TIMEOUT:?}\n")),
        }
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("ready", &self.0.get().is_some()).finish()
    }
}

/// Serves `registry` at `http://<addr>/metrics` (and `health` at `/healthz`) until
/// `shutdown`; returns the address bound (port 0 picks one). The registry is `'static`:
/// metric families live as long as the process.
pub async fn serve(
    addr: SocketAddr,
    registry: &'static Registry,
    health: Option<Health>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError { addr, source })?;
    let bound = listener.local_addr().map_err(|source| ServeError { addr, source })?;
    let mut router = axum::Router::new().route(
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
    if let Some(health) = health {
        router = router.route("/healthz", axum::routing::get(move || async move { health.answer().await }));
    }
    tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "serving metrics at /metrics");
    Ok(bound)
}

/// Why [`probe`] found the service unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No metrics address is configured, so there is no `/healthz` to ask.
    #[error("no metrics address (--metrics / WEFT_METRICS_ADDR): /healthz is served there")]
    NoAddress,
    /// The endpoint could not be reached or did not answer in time.
    #[error("http://{addr}/healthz: {why}")]
    Unreachable {
        /// The address asked.
        addr: SocketAddr,
        /// What went wrong.
        why: String,
    },
    /// It answered, not 200.
    #[error("http://{addr}/healthz answered {answer}")]
    Unhealthy {
        /// The address asked.
        addr: SocketAddr,
        /// The status line and body, trimmed.
        answer: String,
    },
}

/// Asks the service listening on `addr` (an unspecified IP is asked on loopback) whether it
/// is healthy: `GET /healthz` over plain HTTP/1.0, within [`HEALTH_TIMEOUT`] and a second.
pub async fn probe(addr: Option<SocketAddr>) -> Result<(), ProbeError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut addr = addr.ok_or(ProbeError::NoAddress)?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) });
    }
    let unreachable = |why: String| ProbeError::Unreachable { addr, why };
    let asked = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(format!("GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = match tokio::time::timeout(HEALTH_TIMEOUT + Duration::from_secs(1), asked).await {
        Ok(Ok(answer)) => String::from_utf8_lossy(&answer).into_owned(),
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable("no answer in time".to_owned())),
    };
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        return Ok(());
    }
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).trim();
    Err(ProbeError::Unhealthy { addr, answer: format!("{} {body}", status.trim()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(Registry::default)
    }

    #[tokio::test]
    async fn healthz_says_starting_then_what_the_check_says() {
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let any: SocketAddr = "0.0.0.0:0".parse().expect("an address");
        let bound = serve(any, registry(), Some(health.clone()), shutdown.clone()).await.expect("serves");
        let starting = probe(Some(bound)).await.expect_err("not ready yet");
        assert!(starting.to_string().contains("503") && starting.to_string().contains("starting"), "{starting}");
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = healthy.clone();
        health.set(Arc::new(move || {
            let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { if ok { Ok(()) } else { Err("the supervisor did not answer".to_owned()) } })
        }));
        probe(Some(bound)).await.expect("healthy");
        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
        let sick = probe(Some(bound)).await.expect_err("unhealthy");
        assert!(sick.to_string().contains("the supervisor did not answer"), "{sick}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_probe_without_an_address_or_a_listener_says_so() {
        assert!(matches!(probe(None).await, Err(ProbeError::NoAddress)));
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("an address");
        assert!(matches!(probe(Some(free)).await, Err(ProbeError::Unreachable { .. })));
    }
}
