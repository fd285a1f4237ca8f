//! Listens for `CancelTask` on core NATS and stops the matching running calls.
//! Best effort by design: a cancel for a task not yet started is not kept, and the
//! coordinator ignores results of steps it no longer waits for.

use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use weft_protocol::subjects;
use weft_protocol::wire::CancelTask;

use super::{NATS_RETRY, Shared, pause};

/// Runs until `stop`.
pub(super) async fn listen(shared: Arc<Shared>, stop: CancellationToken) {
    let mut backoff = NATS_RETRY.backoff();
    loop {
        let subscribed = tokio::select! {
            s = shared.nats.subscribe(subjects::CANCEL_ALL) => s,
            () = stop.cancelled() => return,
        };
        let mut subscription = match subscribed {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to cancellations; retrying");
                if !pause(backoff.next_delay(), &stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        // The client resubscribes by itself after reconnecting; the stream ends only if
        // the connection is closed for good.
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(message) => on_cancel(&shared, &message.subject, &message.payload),
                    None => break,
                },
                () = stop.cancelled() => return,
            }
        }
        if !pause(backoff.next_delay(), &stop).await {
            return;
        }
    }
}

fn on_cancel(shared: &Shared, subject: &str, payload: &[u8]) {
    match serde_json::from_slice::<CancelTask>(payload) {
        Ok(request) => {
            let stopped = shared.running.cancel(&request);
            if stopped > 0 {
                let CancelTask { run_id, step_id, attempt } = &request;
                tracing::info!(%run_id, ?step_id, ?attempt, stopped, "cancelled running tools");
            }
        }
        Err(e) => tracing::warn!(subject, error = %e, "unreadable cancel message ignored"),
    }
}
