//! The coordinator's NATS handles and the publishes it makes, with their retry rules.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage as Publish};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_protocol::retry::{Policy, Stopped, retry};
use weft_protocol::subjects;
use weft_protocol::topology::Infra;
use weft_protocol::wire::{CancelTask, Event, EventKind, IndexEntry, RunRecord, Task, ToolError, codes};

/// Room left for headers (message id, trace context) under the payload limit.
const HEADER_ROOM: usize = 1024;

/// Publishes of what must not be lost (a task, an event a run's end depends on): 100 ms
/// doubling to 5 s, 60 tries (about 4 minutes), riding out a NATS restart.
const PUBLISH_RETRY: Policy = Policy::new(Duration::from_millis(100), Duration::from_secs(5)).tries(60);

/// Writes of a run's record: 100 ms doubling to 1 s, 10 tries; the record is what
/// `weft status` shows once the run is over.
const STORE_RETRY: Policy = Policy::new(Duration::from_millis(100), Duration::from_secs(1)).tries(10);

/// Connections shared by every actor and loop.
#[derive(Debug, Clone)]
pub(crate) struct Nats {
    /// Core NATS.
    pub client: async_nats::Client,
    /// JetStream.
    pub js: jetstream::Context,
    /// Buckets.
    pub infra: Infra,
    /// How many partitions runs are spread over (where a child run's log is).
    pub partitions: u32,
    /// Publishes still being retried in the background; `run` waits for them at shutdown.
    pub background: TaskTracker,
    /// Stops background retries at shutdown (what they would have stored is rebuilt from
    /// the run log by the next owner).
    pub shutdown: CancellationToken,
}

fn json<T: Serialize>(value: &T) -> bytes::Bytes {
    serde_json::to_vec(value).expect("wire types are plain data and serialise").into()
}

/// A NATS or JetStream call failed: what was being done, with the client's error as the
/// source.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub(crate) struct NatsError {
    /// What was being done (`append to weft.in.3.<run>`).
    pub what: String,
    /// Why it failed.
    #[source]
    pub source: async_nats::Error,
}

impl NatsError {
    /// `what` failed with `source`.
    pub(crate) fn new(what: impl Into<String>, source: impl Into<async_nats::Error>) -> NatsError {
        NatsError { what: what.into(), source: source.into() }
    }
}

impl Nats {
    /// Publishes a task. The send is ordered and awaited; the JetStream ack is awaited in
    /// the background and the publish repeated (same message id, so deduplicated) until
    /// the stream has it: a dispatch must not be lost to a passing NATS outage.
    ///
    /// A task larger than the server accepts is refused here, with the sizes.
    pub(crate) async fn dispatch(&self, task: &Task, headers: async_nats::HeaderMap) -> Result<(), ToolError> {
        let subject = subjects::task(&task.tool);
        let payload = json(task);
        let limit = self.client.server_info().max_payload;
        if payload.len() + HEADER_ROOM > limit {
            return Err(ToolError::new(format!(
                "the task is {} bytes with its params, more than the server's max_payload of {limit}",
                payload.len()
            ))
            .with_code(codes::PARAMS_TOO_LARGE)
            .permanent());
        }
        crate::metrics::METRICS.payload("task", payload.len());
        let id = task.message_id();
        self.publish_reliably(subject, payload, id, headers).await;
        Ok(())
    }

    /// Publishes a lifecycle event. The stream stores every event, deduplicated by its
    /// sequence number; the two every step has (`step_started`, `step_completed`) are sent
    /// without waiting for JetStream's ack, the others are acked and repeated until stored.
    /// So a NATS outage can cost a watcher a step event, never a run's end; the run's
    /// record has every step regardless. (Awaiting two acks per step cost the server two
    /// messages and the coordinator two background tasks per step.)
    pub(crate) async fn emit(&self, event: &Event) {
        let subject = subjects::events(event.run_id);
        let id = format!("event:{}:{}", event.run_id, event.seq);
        if matches!(event.kind, EventKind::StepStarted { .. } | EventKind::StepCompleted { .. }) {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            if let Err(e) = self.client.publish_with_headers(subject, headers, json(event)).await {
                tracing::debug!(run_id = %event.run_id, error = %e, "step event not sent");
            }
            return;
        }
        self.publish_reliably(subject, json(event), id, async_nats::HeaderMap::new()).await;
    }

    async fn publish_reliably(
        &self,
        subject: String,
        payload: bytes::Bytes,
        id: String,
        headers: async_nats::HeaderMap,
    ) {
        let js = self.js.clone();
        // Headers first: `headers` replaces the map, so a message id set before it was lost.
        let build = move || Publish::build().payload(payload.clone()).headers(headers.clone()).message_id(&id);
        // The send is awaited here, so publishes keep their order; the ack in the background.
        let first = js.send_publish(subject.clone(), build()).await;
        let shutdown = self.shutdown.clone();
        self.background.spawn(async move {
            let mut first = Some(first);
            let acked = retry(
                &PUBLISH_RETRY,
                Some(&shutdown),
                |_| true,
                || {
                    let pending = first.take();
                    let (js, subject, build) = (&js, &subject, &build);
                    async move {
                        let sent = match pending {
                            Some(sent) => sent,
                            None => js.send_publish(subject.clone(), build()).await,
                        };
                        let result = match sent {
                            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        if let Err(e) = &result {
                            tracing::warn!(%subject, error = %e, "publish not acknowledged; retrying");
                        }
                        result
                    }
                },
            )
            .await;
            if let Err(Stopped::GaveUp(e)) = acked {
                tracing::error!(%subject, error = %e, "publish abandoned after {:?}", PUBLISH_RETRY.give_up);
            }
        });
    }

    /// Adds a run to the index of runs (`weft list`): sent now, its ack awaited and the
    /// publish repeated in the background (deduplicated by the run's id).
    pub(crate) async fn index(&self, entry: &IndexEntry) {
        let id = format!("index:{}", entry.run_id);
        self.publish_reliably(subjects::index(entry.run_id), json(entry), id, async_nats::HeaderMap::new()).await;
    }

    /// Tells workers to stop tools (best effort: a late result is ignored anyway).
    pub(crate) async fn cancel(&self, cancel: &CancelTask) {
        if let Err(e) = self.client.publish(subjects::cancel(cancel.run_id), json(cancel)).await {
            tracing::warn!(run_id = %cancel.run_id, error = %e, "cancel not sent");
        }
    }

    /// A record abridged, if need be, to fit in one message with room for the reply that
    /// wraps it.
    pub(crate) fn fit(&self, record: RunRecord) -> RunRecord {
        record.within(self.client.server_info().max_payload.saturating_sub(HEADER_ROOM))
    }

    /// A record's JSON, abridged if it would not fit in one message.
    pub(crate) fn record_json(&self, record: &RunRecord) -> bytes::Bytes {
        let limit = self.client.server_info().max_payload.saturating_sub(HEADER_ROOM);
        let json = record.to_json_within(limit);
        crate::metrics::METRICS.payload("record", json.len());
        json.into()
    }

    /// Stores a run record (retried: the record is what `weft status` shows afterwards).
    pub(crate) async fn store(&self, record: &RunRecord) -> Result<(), StoreError> {
        let key = record.run_id.to_string();
        let payload = self.record_json(record);
        retry(&STORE_RETRY, None, |_| true, || self.infra.runs.put(&key, payload.clone())).await.map(|_| ()).map_err(
            |stopped| StoreError::Unavailable {
                key: runs_key(&key),
                message: stopped.error().map_or_else(|| "shut down".to_owned(), |e| e.to_string()),
            },
        )
    }

    /// Stores a run record unless the key holds one already (readable or not); returns
    /// its revision, or `None` if a record was there.
    pub(crate) async fn store_new(&self, record: &RunRecord) -> Result<Option<u64>, StoreError> {
        let key = record.run_id.to_string();
        match self.infra.runs.create(&key, self.record_json(record)).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(StoreError::Unavailable { key: runs_key(&key), message: e.to_string() }),
        }
    }

    /// Removes a record stored by [`Nats::store_new`] whose run could not be created, if it
    /// is still the one stored (`revision`).
    pub(crate) async fn unstore(&self, run_id: uuid::Uuid, revision: u64) -> Result<(), StoreError> {
        let key = run_id.to_string();
        self.infra
            .runs
            .purge_expect_revision(&key, Some(revision))
            .await
            .map_err(|e| StoreError::Unavailable { key: runs_key(&key), message: e.to_string() })
    }

    /// A stored run record and its revision (see [`Nats::stored`]).
    pub(crate) async fn stored_at(&self, run_id: uuid::Uuid) -> Result<Option<(RunRecord, u64)>, StoreError> {
        let key = run_id.to_string();
        let entry = self
            .infra
            .runs
            .entry(&key)
            .await
            .map_err(|e| StoreError::Unavailable { key: runs_key(&key), message: e.to_string() })?;
        let Some(entry) = entry.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put) else {
            return Ok(None);
        };
        serde_json::from_slice(&entry.value)
            .map(|record| Some((record, entry.revision)))
            .map_err(|e| StoreError::Corrupt { key: runs_key(&key), message: e.to_string() })
    }

    /// Stores `record` over revision `revision` of its key; `false` if the key changed since.
    pub(crate) async fn store_over(&self, record: &RunRecord, revision: u64) -> Result<bool, StoreError> {
        let key = record.run_id.to_string();
        match self.infra.runs.update(&key, self.record_json(record), revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(StoreError::Unavailable { key: runs_key(&key), message: e.to_string() }),
        }
    }

    /// The sequence of the last event a run published (0 if none is kept).
    pub(crate) async fn last_event(&self, run_id: uuid::Uuid) -> Result<u64, StoreError> {
        let subject = subjects::events(run_id);
        let unavailable = |message: String| StoreError::Unavailable { key: subject.clone(), message };
        let stream = self.js.get_stream(subjects::EVENTS_STREAM).await.map_err(|e| unavailable(e.to_string()))?;
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(serde_json::from_slice::<weft_protocol::wire::Event>(&message.payload)
                .map(|e| e.seq)
                .unwrap_or_default()),
            Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    /// A stored run record: `None` if there is none. A record that is there but cannot be
    /// read is [`StoreError::Corrupt`], never taken for an absent one.
    pub(crate) async fn stored(&self, run_id: uuid::Uuid) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.stored_at(run_id).await?.map(|(record, _)| record))
    }
}

/// `weft_runs/<run>`: how a record's place reads in messages.
fn runs_key(key: &str) -> String {
    format!("{}/{key}", subjects::RUNS_BUCKET)
}

/// A record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket cannot be reached for now.
    #[error("{key} cannot be reached: {message}")]
    Unavailable {
        /// Bucket and key.
        key: String,
        /// Why.
        message: String,
    },
    /// What is stored is not a record.
    #[error("{key} holds something that is not a run record: {message}")]
    Corrupt {
        /// Bucket and key.
        key: String,
        /// Why it cannot be read.
        message: String,
    },
}

impl From<StoreError> for weft_protocol::wire::ApiError {
    fn from(e: StoreError) -> Self {
        use weft_protocol::wire::{ApiError, ApiErrorCode};
        let code = match e {
            StoreError::Unavailable { .. } => ApiErrorCode::Unavailable,
            StoreError::Corrupt { .. } => ApiErrorCode::Corrupt,
        };
        ApiError::new(code, e.to_string())
    }
}
