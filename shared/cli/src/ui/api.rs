//! The UI's JSON API: runs, a run (with its definition and graph), and actions on a run.
//! A failure is `{"error": {"code", "message"}}` with the HTTP status its code calls for.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use weft_client::ClientError;
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::ApiErrorCode;

use super::{Ui, failure};

/// Runs a filtered listing looks through: the newest this many.
const FILTER_WINDOW: usize = 1000;

/// A registered definition and its graph, as the run page shows them.
pub(super) struct Shown {
    definition: Value,
    graph: Value,
}

/// The query of `GET /api/runs`.
#[derive(Debug, Deserialize)]
pub(super) struct RunsQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/runs`: the newest runs (filtered by status and workflow among the newest
/// [`FILTER_WINDOW`]), and how many of those looked at have each status.
pub(super) async fn runs(State(ui): State<Ui>, Query(query): Query<RunsQuery>) -> Response {
    let limit = query.limit.unwrap_or(50).clamp(1, FILTER_WINDOW);
    let status = query.status.filter(|s| !s.is_empty());
    let workflow = query.workflow.filter(|w| !w.is_empty());
    let window = if status.is_some() || workflow.is_some() { FILTER_WINDOW } else { limit };
    let listed = match ui.client.list(Some(window)).await {
        Ok(listed) => listed,
        Err(e) => return client_failure(&e),
    };
    let of_workflow: Vec<_> =
        listed.into_iter().filter(|r| workflow.as_ref().is_none_or(|w| r.workflow == *w)).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &of_workflow {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    let runs: Vec<_> =
        of_workflow.iter().filter(|r| status.as_ref().is_none_or(|s| r.status.as_str() == s)).take(limit).collect();
    super::json(json!({"runs": runs, "counts": counts, "looked_at": window}))
}

/// `GET /api/runs/{id}`: the record, the registered definition of its workflow's version
/// and its graph (null when not registered), and a link to its trace in Jaeger.
pub(super) async fn run(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let run_id = match run_id(&id) {
        Ok(id) => id,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let record = match ui.client.status(run_id).await {
        Ok(record) => record,
        Err(e) => return client_failure(&e),
    };
    let shown = shown(&ui, &record.workflow, record.version).await;
    let trace_url = ui.jaeger.as_ref().map(|base| trace_url(base, run_id));
    super::json(json!({
        "record": record,
        "definition": shown.as_ref().map(|s| &s.definition),
        "graph": shown.as_ref().map(|s| &s.graph),
        "trace_url": trace_url,
    }))
}

/// `POST /api/runs/{id}/{action}`: `cancel` (`reason`, `compensate`), `pause`, `resume`,
/// `signal` (`name`, `data`).
pub(super) async fn act(
    State(ui): State<Ui>,
    Path((id, action)): Path<(String, String)>,
    body: Result<axum::Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let run_id = match run_id(&id) {
        Ok(id) => id,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let body = match body {
        Ok(axum::Json(body)) => body,
        Err(e) => return failure(StatusCode::BAD_REQUEST, "bad_request", format!("the body must be JSON: {e}")),
    };
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    let done = match action.as_str() {
        "cancel" => {
            let compensate = body.get("compensate").and_then(Value::as_bool).unwrap_or(false);
            let reason =
                text("reason").filter(|r| !r.is_empty()).or_else(|| Some("cancelled from the web UI".to_owned()));
            if compensate {
                ui.client.cancel_and_compensate(run_id, reason).await
            } else {
                ui.client.cancel(run_id, reason).await
            }
        }
        // A run submitted inline needs its definition, which the page does not have: the
        // error says so (`weft redrive ID FILE` does it).
        "redrive" => ui.client.redrive(run_id, None).await,
        "pause" => ui.client.pause(run_id).await,
        "resume" => ui.client.resume(run_id).await,
        "signal" => {
            let Some(name) = text("name") else {
                return failure(StatusCode::BAD_REQUEST, "bad_request", "a signal needs a `name`".into());
            };
            ui.client.signal(run_id, &name, body.get("data").cloned().unwrap_or(Value::Null)).await
        }
        other => return failure(StatusCode::NOT_FOUND, "not_found", format!("no action `{other}`")),
    };
    match done {
        Ok(()) => super::json(json!({"ok": true})),
        Err(e) => client_failure(&e),
    }
}

/// The definition and graph of a registered workflow version, once read.
async fn shown(ui: &Ui, workflow: &str, version: u32) -> Option<Arc<Shown>> {
    let key = (workflow.to_owned(), version);
    if let Some(known) = ui.shown.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Some(known.clone());
    }
    // Not registered (a run of a file) or unreadable: the page draws the record alone.
    let definition: WorkflowDef = ui.client.definition(workflow, Some(version)).await.ok()?;
    let plan = weft_lang::validate::compile(&definition, None).ok()?;
    let shown = Arc::new(Shown {
        definition: serde_json::to_value(&definition).ok()?,
        graph: serde_json::to_value(weft_lang::export::graph(&plan)).ok()?,
    });
    ui.shown.lock().unwrap_or_else(|p| p.into_inner()).insert(key, shown.clone());
    Some(shown)
}

/// A Jaeger search for the run's spans (every span of a run carries `weft.run_id`).
fn trace_url(base: &str, run_id: Uuid) -> String {
    format!("{base}/search?service=weft-coordinator&tags=%7B%22weft.run_id%22%3A%22{run_id}%22%7D")
}

/// A path's text that is not a run id: answered 400.
pub(super) struct BadId(String);

impl axum::response::IntoResponse for BadId {
    fn into_response(self) -> Response {
        failure(StatusCode::BAD_REQUEST, "bad_request", format!("`{}` is not a run id (a UUID)", self.0))
    }
}

/// The run id of a path.
pub(super) fn run_id(text: &str) -> Result<Uuid, BadId> {
    Uuid::parse_str(text).map_err(|_| BadId(text.to_owned()))
}

/// A client's failure as an answer: refusals keep the coordinator's code, an unreachable
/// deployment is 503.
pub(super) fn client_failure(e: &ClientError) -> Response {
    let (status, code) = match e {
        ClientError::Api(api) => match api.code {
            ApiErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiErrorCode::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiErrorCode::Conflict => (StatusCode::CONFLICT, "conflict"),
            ApiErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiErrorCode::Corrupt | ApiErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        },
        ClientError::Denied { .. } => (StatusCode::FORBIDDEN, "denied"),
        ClientError::Connect { .. } | ClientError::NoCoordinator { .. } | ClientError::TimedOut { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        _ => (StatusCode::BAD_GATEWAY, "internal"),
    };
    failure(status, code, e.to_string())
}
