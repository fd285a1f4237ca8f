//! Server-sent events for the page: a run's events and record as it runs, and a nudge to
//! the runs list when runs start, pause or end.
//!
//! Each stream is fed by a task of its own that stops when the browser goes away (its
//! sender fails). A record is read again at most every [`RECORD_EVERY`] however fast the
//! events come, so a viewer costs the coordinators a bounded number of status calls.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{SinkExt as _, StreamExt as _};
use tokio::time::Instant;
use uuid::Uuid;
use weft_protocol::subjects;
use weft_protocol::wire::{Event, EventKind};

use super::Ui;
use super::api::{client_failure, run_id};

/// How often, at most, a live run's record is read again.
const RECORD_EVERY: Duration = Duration::from_millis(250);
/// How often, at most, the runs list is told to refresh.
const LIST_EVERY: Duration = Duration::from_millis(500);
/// A run that had ended when the page opened may have outlived its events (they are kept
/// for a day): its replay ends after this long without one.
const REPLAY_IDLE: Duration = Duration::from_secs(1);

type Sender = mpsc::Sender<Result<Sse, Infallible>>;

/// `GET /api/runs/{id}/live`: `record` (now), every `event` from the first, `record` again
/// as they change it, and `end` once the run is over.
pub(super) async fn run(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let run_id = match run_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    // Read first, so an unknown run is a 404 rather than a stream that never says anything.
    let record = match ui.client.status(run_id).await {
        Ok(record) => record,
        Err(e) => return client_failure(&e),
    };
    let ended = record.status.is_terminal();
    let events = match ui.client.watch(run_id).await {
        Ok(events) => events,
        Err(e) => return client_failure(&e),
    };
    let (mut tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if send(&mut tx, "record", &record).await {
            follow(&ui, run_id, Box::pin(events), ended, tx).await;
        }
    });
    axum::response::Sse::new(rx).keep_alive(KeepAlive::default()).into_response()
}

/// Forwards the run's events, with its record (throttled) after them.
async fn follow(
    ui: &Ui,
    run_id: Uuid,
    mut events: std::pin::Pin<Box<impl futures::Stream<Item = Result<Event, weft_client::ClientError>>>>,
    ended: bool,
    mut tx: Sender,
) {
    let mut stale = false;
    let mut last_read = Instant::now();
    loop {
        let due = last_read + RECORD_EVERY;
        let next = async {
            if ended {
                tokio::time::timeout(REPLAY_IDLE, events.next()).await.ok().flatten()
            } else {
                events.next().await
            }
        };
        tokio::select! {
            event = next => match event {
                Some(Ok(event)) => {
                    let over = matches!(event.kind, EventKind::RunFinished { .. });
                    if !send(&mut tx, "event", &event).await {
                        return;
                    }
                    stale = true;
                    if over {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(run = %run_id, error = %e, "the run's events could not be read");
                    break;
                }
                None => break,
            },
            () = tokio::time::sleep_until(due), if stale => {
                stale = false;
                last_read = Instant::now();
                if let Ok(record) = ui.client.status(run_id).await && !send(&mut tx, "record", &record).await {
                    return;
                }
            }
        }
    }
    if let Ok(record) = ui.client.status(run_id).await {
        send(&mut tx, "record", &record).await;
    }
    send(&mut tx, "end", &serde_json::json!({})).await;
}

/// `GET /api/live`: `changed` when a run starts, pauses, resumes, runs out of budget or
/// ends (at most every [`LIST_EVERY`]), so the page reads its listing again.
pub(super) async fn runs(State(ui): State<Ui>) -> Response {
    let mut heard = match ui.client.nats().subscribe(subjects::EVENTS_ALL).await {
        Ok(subscription) => subscription,
        Err(e) => {
            return super::failure(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("cannot hear runs' events: {e}"),
            );
        }
    };
    let (mut tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut pending = false;
        let mut last_told = Instant::now() - LIST_EVERY;
        loop {
            tokio::select! {
                message = heard.next() => match message {
                    Some(m) => pending |= serde_json::from_slice::<Event>(&m.payload).is_ok_and(|e| changes_listing(&e.kind)),
                    None => return,
                },
                () = tokio::time::sleep_until(last_told + LIST_EVERY), if pending => {
                    pending = false;
                    last_told = Instant::now();
                    if !send(&mut tx, "changed", &serde_json::json!({})).await {
                        return;
                    }
                }
            }
        }
    });
    axum::response::Sse::new(rx).keep_alive(KeepAlive::default()).into_response()
}

/// Whether an event changes a run's line in the listing.
fn changes_listing(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::RunStarted { .. }
            | EventKind::RunFinished { .. }
            | EventKind::RunPaused
            | EventKind::RunResumed
            | EventKind::BudgetExceeded { .. }
    )
}

/// Sends one server-sent event; false once the browser has gone.
async fn send(tx: &mut Sender, name: &str, data: &impl serde::Serialize) -> bool {
    let Ok(event) = Sse::default().event(name).json_data(data) else { return true };
    tx.send(Ok(event)).await.is_ok()
}
