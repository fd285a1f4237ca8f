//! Ownership of partitions: every coordinator pulls every partition's pinned consumer;
//! NATS delivers each partition to one coordinator at a time and moves it to another
//! when the pinned one stops pulling. Ticks, published by every coordinator each second
//! and expiring, make sure even an idle partition tells its owner that it owns it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, PriorityPolicy};
use futures::StreamExt;
use ractor::ActorRef;
use tokio_util::sync::CancellationToken;
use weft_protocol::retry::{self, Policy};
use weft_protocol::subjects;

use crate::log;
use crate::nats::{Nats, NatsError};
use crate::supervisor::SupervisorMsg;

/// Pulling a partition again after an error (a NATS restart): 100 ms doubling to 2 s, well
/// within the pin timeout, for as long as the coordinator runs.
const PULL_RETRY: Policy = Policy::new(Duration::from_millis(100), Duration::from_secs(2));

/// The priority group of partition consumers.
const GROUP: &str = "owners";

/// Pulls partition `partition` for as long as `shutdown` allows, recreating the pull after
/// errors (NATS restarts): messages go to the supervisor.
pub(crate) async fn pull(
    nats: Arc<Nats>,
    supervisor: ActorRef<SupervisorMsg>,
    partition: u32,
    ack_wait: Duration,
    pin_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = PULL_RETRY.backoff();
    while !shutdown.is_cancelled() {
        match pull_once(&nats, &supervisor, partition, ack_wait, pin_timeout, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::debug!(partition, error = %e, "partition pull interrupted; retrying in {delay:?}");
                if !retry::pause(delay, Some(&shutdown)).await {
                    return;
                }
            }
        }
    }
}

async fn pull_once(
    nats: &Nats,
    supervisor: &ActorRef<SupervisorMsg>,
    partition: u32,
    ack_wait: Duration,
    pin_timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), NatsError> {
    let fail = |e: async_nats::Error| NatsError::new(format!("pull partition {partition}"), e);
    let stream = nats.js.get_stream(subjects::INPUTS_STREAM).await.map_err(|e| fail(e.into()))?;
    let name = subjects::partition_consumer(partition);
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects::partition_inputs(partition),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_ack_pending: 20_000,
                priority_policy: PriorityPolicy::PinnedClient,
                priority_groups: vec![GROUP.to_owned()],
                priority_timeout: pin_timeout,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| fail(e.into()))?;
    // Pull requests expire well within the pin timeout, so a live owner keeps its pin.
    let pull = consumer.stream().group(GROUP).expires(pin_timeout / 4);
    let mut messages = pull.messages().await.map_err(|e| fail(e.into()))?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        match next {
            None => return Err(fail("the pull ended".into())),
            Some(Err(e)) => return Err(fail(e.into())),
            Some(Ok(message)) => {
                if supervisor.cast(SupervisorMsg::Log { partition, message: Box::new(message) }).is_err() {
                    return Ok(()); // shutting down
                }
            }
        }
    }
}

/// Publishes a tick for every partition each second (deduplicated across coordinators).
pub(crate) async fn tick(nats: Arc<Nats>, partitions: u32, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let second = weft_protocol::wire::now_ms() / 1000;
        for p in 0..partitions {
            if let Err(e) = log::tick(&nats.js, p, second).await {
                tracing::debug!(partition = p, error = %e, "tick not published");
            }
        }
    }
}
