//! Handling one task: read it, run the tool (its own tokio task, so a panic is a result),
//! keep the task alive with progress reports, enforce its timeout, honour cancellation,
//! publish the result and only then ack the task, so a crash in between redelivers the
//! task instead of losing the result (the result's message id makes a second publish a
//! duplicate).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, message::PublishMessage};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use weft_protocol::wire::{Outcome, Task, TaskResult, ToolError, codes, now_ms};

use super::{NATS_RETRY, Shared, result};
use crate::tool::{ToolContext, UsageMeter};

/// Error code of a task whose deliveries all ended without an answer (the tool may kill
/// its worker).
pub(super) const WORKER_LOST: &str = "WORKER_LOST";

/// How long a result may fail to publish before the task is handed back.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(60);

/// Handles one delivered task; `_slot` is the tool's concurrency slot, freed at the end.
pub(super) async fn handle(
    shared: Arc<Shared>,
    message: jetstream::Message,
    _slot: OwnedSemaphorePermit,
    progress_every: Duration,
) {
    let task: Task = match serde_json::from_slice(&message.payload) {
        Ok(task) => task,
        Err(e) => {
            let preview: String = String::from_utf8_lossy(&message.payload).chars().take(200).collect();
            tracing::error!(subject = %message.subject, error = %e, payload = %preview,
                            "unreadable task: terminated, it will not be delivered again");
            if let Err(e) = message.ack_with(AckKind::Term).await {
                tracing::warn!(error = %e, "could not terminate an unreadable task");
            }
            return;
        }
    };
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
    // The tool's span is a child of the coordinator's dispatch span, whose context the
    // task carries in its headers.
    let kind = if task.compensation { "compensation" } else { "tool" };
    let span = tracing::info_span!("task",
        otel.name = format!("{kind} {}", task.tool),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
        weft.run_id = %task.run_id,
        weft.step_id = %task.step_id,
        weft.attempt = task.attempt,
        weft.tool = %task.tool,
        weft.worker = %shared.config.worker_id,
        weft.compensation = task.compensation,
        weft.outcome = tracing::field::Empty,
        run_id = %task.run_id, step_id = %task.step_id, attempt = task.attempt, delivered,
        trace_id = tracing::field::Empty);
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = span.set_parent(weft_protocol::trace::extract(message.headers.as_ref()));
        if let Some(trace_id) = weft_protocol::trace::trace_id(&span) {
            span.record("trace_id", trace_id);
        }
    }
    run(shared, task, message, delivered, progress_every).instrument(span).await;
}

async fn run(shared: Arc<Shared>, task: Task, message: jetstream::Message, delivered: i64, progress_every: Duration) {
    let started_ms = now_ms();
    let meter = UsageMeter::default();
    let counted = crate::metrics::InFlight::start(&task.tool, delivered);
    let lost = delivered > i64::from(shared.config.max_deliveries);
    let outcome = if lost {
        Some(Outcome::Err(
            ToolError::new(format!(
                "the task was delivered {delivered} times and no worker answered: its tool may crash the worker"
            ))
            .with_code(WORKER_LOST)
            .permanent(),
        ))
    } else {
        if delivered > 1 {
            tracing::info!("task delivered again (a worker died or did not answer in time)");
        }
        execute(&shared, &task, &message, progress_every, meter.clone()).await
    };
    let Some(outcome) = outcome else {
        // Shutdown's grace period is over: another worker takes the task now.
        hand_back(&message).await;
        return;
    };
    let span = tracing::Span::current();
    let ended = match &outcome {
        _ if lost => "worker_lost",
        Outcome::Ok(_) => "ok",
        Outcome::Err(_) => "error",
    };
    match &outcome {
        Outcome::Ok(_) => {
            span.record("weft.outcome", "ok");
            tracing::info!(ms = now_ms().saturating_sub(started_ms), "tool succeeded");
        }
        Outcome::Err(e) => {
            span.record("weft.outcome", "error");
            weft_protocol::trace::fail(&span, e.to_string());
            tracing::info!(ms = now_ms().saturating_sub(started_ms), error = %e, "tool failed");
        }
    }
    let result = TaskResult {
        run_id: task.run_id,
        step_id: task.step_id.clone(),
        attempt: task.attempt,
        compensation: task.compensation,
        worker: shared.config.worker_id.clone(),
        started_ms,
        finished_ms: now_ms(),
        outcome,
        usage: meter.take(),
        token: task.token.clone(),
    };
    let id = result.message_id();
    let (payload, replaced) = result::encode(result, shared.nats.server_info().max_payload);
    counted.ended(ended, now_ms().saturating_sub(started_ms), payload.len());
    if replaced {
        tracing::warn!("result too large for a message: answered with OUTPUT_TOO_LARGE instead");
    }
    if !publish(&shared, &task, &id, payload.into(), &message).await {
        hand_back(&message).await;
        return;
    }
    // A plain ack, sent after the result is stored. Should it be lost (the connection
    // drops right here), the task is redelivered after the ack wait and runs again, and
    // the run's log drops the repeated result by its message id. Awaiting the server's
    // confirmation (a double ack) would change nothing of that, since a worker that hears
    // no confirmation can only log it, and it cost the server a reply per task.
    if let Err(e) = message.ack().await {
        tracing::warn!(error = %e, "task not acknowledged; it will run again and its result be deduplicated");
    }
}

/// Runs the tool; `None` if the worker is shutting down for good.
async fn execute(
    shared: &Shared,
    task: &Task,
    message: &jetstream::Message,
    progress_every: Duration,
    meter: UsageMeter,
) -> Option<Outcome> {
    let registry = shared.registry();
    let Some(tool) = registry.get(&task.tool).cloned() else {
        let error = ToolError::new(format!("worker `{}` has no tool `{}`", shared.config.worker_id, task.tool));
        return Some(Outcome::Err(error.with_code(codes::UNKNOWN_TOOL).permanent()));
    };
    // A task from a client that sends no params gets the empty object steps default to.
    let params = match &task.params {
        serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        other => other.clone(),
    };
    if let Err(e) = registry.check_params(&task.tool, &params) {
        return Some(Outcome::Err(e));
    }
    let cancel = CancellationToken::new();
    let _registration = shared.running.insert(task.run_id, &task.step_id, task.attempt, cancel.clone());
    let ctx = ToolContext {
        run_id: task.run_id,
        step_id: task.step_id.clone(),
        attempt: task.attempt,
        idempotency_key: task.idempotency_key.clone(),
        compensation: task.compensation,
        cancel: cancel.clone(),
        usage: meter,
    };
    let mut call = tokio::spawn(async move { tool.call(params, ctx).await }.in_current_span());
    let deadline = task.timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    // Without a timeout the timer is never polled (the branch is disabled).
    let timer = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now));
    tokio::pin!(timer);
    let mut progress = tokio::time::interval_at(Instant::now() + progress_every, progress_every);
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            biased;
            joined = &mut call => break Some(joined_outcome(&task.tool, joined)),
            () = shared.hard_stop.cancelled() => break None,
            () = cancel.cancelled() => break Some(Outcome::Err(crate::tool::cancelled(&task.tool))),
            () = &mut timer, if deadline.is_some() => break Some(Outcome::Err(timed_out(task))),
            _ = progress.tick() => {
                // Keeps the task from being redelivered while the tool works.
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "progress not reported");
                }
            }
        }
    };
    // A cooperative tool stops at the token; any other is dropped at its next await.
    cancel.cancel();
    call.abort();
    outcome
}

fn timed_out(task: &Task) -> ToolError {
    let ms = task.timeout_ms.unwrap_or_default();
    ToolError::new(format!("tool `{}` ran past its timeout of {ms} ms", task.tool)).with_code(codes::TIMEOUT)
}

fn joined_outcome(tool: &str, joined: Result<Result<serde_json::Value, ToolError>, tokio::task::JoinError>) -> Outcome {
    match joined {
        Ok(Ok(output)) => Outcome::Ok(output),
        Ok(Err(error)) => Outcome::Err(error),
        Err(e) if e.is_panic() => {
            let message = panic_message(e.into_panic().as_ref());
            Outcome::Err(ToolError::new(format!("tool `{tool}` panicked: {message}")).with_code(codes::PANIC))
        }
        Err(_) => {
            Outcome::Err(ToolError::new(format!("tool `{tool}` was aborted")).with_code(codes::CANCELLED).permanent())
        }
    }
}

/// The text a panic was raised with.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Publishes the result on JetStream and waits for the server to store it, retrying while
/// NATS is away; false if it could not within [`PUBLISH_PATIENCE`] (or at hard stop).
async fn publish(shared: &Shared, task: &Task, id: &str, payload: bytes::Bytes, message: &jetstream::Message) -> bool {
    let subject = task.reply_to.clone();
    let give_up = Instant::now() + PUBLISH_PATIENCE;
    let mut backoff = NATS_RETRY.backoff();
    loop {
        let sent = async {
            // The result carries the tool span's context back to the coordinator.
            let mut headers = async_nats::HeaderMap::new();
            weft_protocol::trace::inject(&tracing::Span::current(), &mut headers);
            // Headers first: `headers` replaces the map, message id included.
            let publish = PublishMessage::build().payload(payload.clone()).headers(headers).message_id(id);
            shared.js.send_publish(subject.clone(), publish).await?.await
        };
        match sent.await {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!("the result had been published before");
                }
                return true;
            }
            Err(e) if Instant::now() >= give_up || shared.hard_stop.is_cancelled() => {
                tracing::error!(error = %e, "result not published; handing the task back");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, "result not published yet; retrying");
                // Keep the task while retrying.
                let _ = message.ack_with(AckKind::Progress).await;
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = shared.hard_stop.cancelled() => {}
                }
            }
        }
    }
}

async fn hand_back(message: &jetstream::Message) {
    if let Err(e) = message.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(error = %e, "task not handed back; it is redelivered after its ack wait");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_become_results_with_their_message() {
        let joined = tokio::spawn(async { panic!("boom {}", 42) }).await.map(|()| Ok(serde_json::Value::Null));
        let Outcome::Err(e) = joined_outcome("t", joined) else { panic!("an error") };
        assert_eq!(e.code.as_deref(), Some(codes::PANIC));
        assert_eq!(e.message, "tool `t` panicked: boom 42");
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&7_u8), "a panic without a message");
    }
}
