//! Pulls workers' results from JetStream and hands them to the supervisor; each is acked
//! by its run actor once applied, so a crash before that redelivers it.

use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer};
use futures::StreamExt;
use ractor::ActorRef;
use tokio_util::sync::CancellationToken;
use weft_shared::subjects;
use weft_shared::wire::TaskResult;

use crate::nats::Nats;
use crate::supervisor::SupervisorMsg;

/// Consumes results until `shutdown`, recreating the consumer after errors (NATS restarts).
pub async fn consume(nats: Nats, supervisor: ActorRef<SupervisorMsg>, ack_wait: Duration, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match pull(&nats, &supervisor, ack_wait, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "results consumer interrupted; retrying in {backoff:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn pull(
    nats: &Nats,
    supervisor: &ActorRef<SupervisorMsg>,
    ack_wait: Duration,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let stream = nats.js.get_stream(subjects::RESULTS_STREAM).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .get_or_create_consumer(
            subjects::RESULTS_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(subjects::RESULTS_CONSUMER.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        let message = match next {
            None => return Err("results stream ended".to_owned()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(m)) => m,
        };
        match serde_json::from_slice::<TaskResult>(&message.payload) {
            Ok(result) => {
                if supervisor.cast(SupervisorMsg::Result(Box::new(result), message)).is_err() {
                    return Ok(()); // shutting down
                }
            }
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "unreadable result dropped");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
}
