//! One tool's pull loop: binds the tool's shared durable consumer and pulls at most as
//! many tasks as the tool has free slots, so no task waits in this worker's buffer while
//! its ack timer runs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use weft_protocol::retry::Backoff;
use weft_protocol::subjects;
use weft_protocol::topology;

use super::{NATS_RETRY, Shared, pause, task};

/// How long one pull request waits on the server for tasks.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// Most tasks asked for in one pull request.
const MAX_BATCH: usize = 256;

/// Most tasks of one tool delivered and not yet acked, over all its workers. Workers pull
/// only as many as they have free slots, so this is no flow control, only a ceiling; the
/// server's default (1,000) would cap a wide fan-out at 1,000 running tools however many
/// workers serve it.
const TASKS_IN_FLIGHT: i64 = 1_000_000;

/// Runs until `shutdown`; errors are logged and retried.
pub(super) async fn run(shared: Arc<Shared>, tool: String, limit: usize, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limit));
    let mut backoff = NATS_RETRY.backoff();
    while !shutdown.is_cancelled() {
        let consumer = match bind(&shared, &tool).await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(tool, error = %e, "cannot bind the tool's task consumer; retrying");
                if !pause(backoff.next_delay(), &shutdown).await {
                    return;
                }
                continue;
            }
        };
        let ack_wait = consumer.cached_info().config.ack_wait;
        if ack_wait != shared.config.ack_wait {
            tracing::info!(tool, ?ack_wait, "the tool's consumer already exists with another ack wait; using it");
        }
        tracing::debug!(tool, limit, "pulling tasks");
        match pull(&shared, &tool, &consumer, &slots, ack_wait, &shutdown, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(tool, error = %e, "pulling tasks failed; retrying");
                if !pause(backoff.next_delay(), &shutdown).await {
                    return;
                }
            }
        }
    }
}

/// The tool's durable consumer, created if missing (and the stream too, if the server
/// lost it).
async fn bind(shared: &Shared, tool: &str) -> Result<PullConsumer, async_nats::Error> {
    let stream = match shared.js.get_stream(subjects::TASKS_STREAM).await {
        Ok(stream) => stream,
        Err(_) => {
            topology::ensure(&shared.js, &shared.config.retention).await?;
            shared.js.get_stream(subjects::TASKS_STREAM).await?
        }
    };
    let name = subjects::tool_consumer(tool);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("tasks of tool `{tool}`, shared by its workers")),
        filter_subject: subjects::task(tool),
        ack_policy: AckPolicy::Explicit,
        ack_wait: shared.config.ack_wait,
        max_ack_pending: TASKS_IN_FLIGHT,
        ..Default::default()
    };
    Ok(stream.get_or_create_consumer(&name, config).await?)
}

/// Pulls until shutdown (`Ok`) or an error that needs the consumer bound again.
async fn pull(
    shared: &Arc<Shared>,
    tool: &str,
    consumer: &PullConsumer,
    slots: &Arc<Semaphore>,
    ack_wait: Duration,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), async_nats::Error> {
    // Three reports per ack wait: one may be lost and the task is still kept.
    let progress_every = (ack_wait / 3).max(Duration::from_millis(10));
    let mut connections = shared.connections.clone();
    connections.mark_unchanged();
    loop {
        // Wait for one free slot, then take every other free one: the request asks for
        // exactly as many tasks as can start now.
        let mut slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let more = slots.available_permits().min(MAX_BATCH - 1);
        if more > 0
            && let Ok(extra) = slots.clone().try_acquire_many_owned(u32::try_from(more).unwrap_or(u32::MAX))
        {
            slot.merge(extra);
        }
        let mut batch = consumer.batch().max_messages(slot.num_permits()).expires(PULL_EXPIRES).messages().await?;
        loop {
            let next = tokio::select! {
                next = batch.next() => next,
                // A restarted server forgot this pull request: ask again at once.
                Ok(()) = connections.changed() => None,
                () = shutdown.cancelled() => {
                    // Tasks already delivered to us go back for another worker.
                    while let Some(Some(Ok(message))) = batch.next().now_or_never() {
                        if let Err(e) = message.ack_with(AckKind::Nak(None)).await {
                            tracing::debug!(tool, error = %e, "could not hand a task back");
                        }
                    }
                    return Ok(());
                }
            };
            match next {
                None => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(message)) => {
                    backoff.reset();
                    match slot.split(1) {
                        Some(permit) => {
                            shared.handlers.spawn(task::handle(shared.clone(), message, permit, progress_every));
                        }
                        // The server sends at most what was asked for; kept total anyway.
                        None => {
                            let _ = message.ack_with(AckKind::Nak(None)).await;
                        }
                    }
                }
            }
        }
    }
}
