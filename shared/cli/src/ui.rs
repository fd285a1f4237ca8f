//! `weft ui`: the web UI, served over HTTP from this binary (every asset embedded: no CDN).
//!
//! The browser talks only to this server; this server talks to the deployment as any
//! client does (the NATS user of its URL or profile), so the UI can do what that user
//! may and no more. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `/app.js`, `/app.css` | the page ([`ASSETS`]) |
//! | `GET /api/runs?status=&workflow=&limit=` | newest runs, filtered, with counts by status ([`api`]) |
//! | `GET /api/runs/{id}` | a run's record, its definition and graph, a link to its trace |
//! | `POST /api/runs/{id}/{cancel,pause,resume,signal,redrive}` | actions, JSON bodies |
//! | `GET /api/runs/{id}/live` | server-sent events: the run's events, its record as it changes ([`live`]) |
//! | `GET /api/live` | server-sent events: `changed` when runs start or end |
//!
//! There is no login: who can reach the port can act as the server's NATS user. It listens
//! on loopback by default, refuses requests whose `Host` is not a loopback name or an
//! `--allow-host` (DNS rebinding), and accepts actions only as `application/json` with no
//! foreign `Origin`, which a page of another site cannot send without the server's
//! consent (CSRF). To share it, put it behind a proxy that authenticates.

mod api;
mod live;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use weft_client::WeftClient;

/// Host names accepted without `--allow-host`.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The page's files: path, content type, content.
const ASSETS: [(&str, &str, &str); 3] = [
    ("/", "text/html; charset=utf-8", include_str!("ui/assets/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_str!("ui/assets/app.js")),
    ("/app.css", "text/css; charset=utf-8", include_str!("ui/assets/app.css")),
];

/// How the server is set up.
pub(crate) struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// `Host` names accepted besides the loopback ones.
    pub allow_hosts: Vec<String>,
    /// Jaeger's base URL, for links to a run's trace.
    pub jaeger: Option<String>,
}

/// Registered definitions shown, by workflow name and version.
type ShownCache = HashMap<(String, u32), Arc<api::Shown>>;

/// What every handler shares.
#[derive(Clone)]
struct Ui {
    client: WeftClient,
    jaeger: Option<Arc<str>>,
    /// Registered definitions by name and version, with their graphs: they never change.
    shown: Arc<Mutex<ShownCache>>,
}

/// Serves until SIGINT or SIGTERM.
pub(crate) async fn serve(client: WeftClient, options: Options) -> anyhow::Result<std::process::ExitCode> {
    let ui = Ui { client, jaeger: options.jaeger.map(|j| Arc::from(j.trim_end_matches('/'))), shown: Arc::default() };
    let hosts: Arc<[String]> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).chain(options.allow_hosts).collect();
    let mut router = axum::Router::new();
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }));
    }
    let router = router
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/live", get(live::run))
        .route("/api/runs/{id}/{action}", post(api::act))
        .route("/api/live", get(live::runs))
        .layer(axum::middleware::from_fn_with_state(hosts, guard))
        .with_state(ui);
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.addr))?;
    eprintln!("weft ui: serving on http://{}/", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(weft_service::signals::stop_on_signals(stop.clone()));
    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Refuses a request for a host this server is not (DNS rebinding), and an action from a
/// page of another origin (CSRF).
async fn guard(State(hosts): State<Arc<[String]>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !host_allowed(host, &hosts) {
        return failure(StatusCode::FORBIDDEN, "forbidden", format!("host `{host}` is not served (see --allow-host)"));
    }
    if request.method() != Method::GET && !same_origin(request.headers(), host) {
        return failure(StatusCode::FORBIDDEN, "forbidden", "an action must come from this server's own page".into());
    }
    next.run(request).await
}

/// Whether `host` (a `Host` header: name, optional port) is one of `allowed` (names, or
/// `name:port`).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

/// Whether a request's `Origin`, if it has one, is this server.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
    }
}

/// An error answer: `{"error": {"code", "message"}}`.
fn failure(status: StatusCode, code: &str, message: String) -> Response {
    (status, axum::Json(serde_json::json!({"error": {"code": code, "message": message}}))).into_response()
}

/// A JSON answer.
fn json(value: Value) -> Response {
    axum::Json(value).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_matched_by_name_or_name_and_port() {
        let allowed: Vec<String> = ["localhost", "127.0.0.1", "::1", "weft.example:8443"].map(String::from).into();
        assert!(host_allowed("localhost:8080", &allowed));
        assert!(host_allowed("127.0.0.1", &allowed));
        assert!(host_allowed("[::1]:8080", &allowed));
        assert!(host_allowed("weft.example:8443", &allowed));
        assert!(!host_allowed("weft.example:9000", &allowed));
        assert!(!host_allowed("evil.example:8080", &allowed));
        assert!(!host_allowed("", &allowed));
    }

    #[test]
    fn actions_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers, "localhost:8080"));
        headers.insert(header::ORIGIN, "http://localhost:8080".parse().expect("a header"));
        assert!(same_origin(&headers, "localhost:8080"));
        headers.insert(header::ORIGIN, "https://evil.example".parse().expect("a header"));
        assert!(!same_origin(&headers, "localhost:8080"));
    }
}
