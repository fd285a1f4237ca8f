//! The run log: every input of every run, persisted on JetStream before it is applied.
//!
//! Each run's inputs go to `weft.in.<partition>.<run>` on stream `WEFT_INPUTS`: its
//! creation (definition and input), workers' results (tasks name this subject as their
//! `reply_to`), timers that fired, and commands (cancel). The owner of a partition applies
//! entries in stream order, taking `now` from the stream's own timestamp, so replaying a
//! run's entries rebuilds it exactly. The entries of finished runs are purged by sequence,
//! behind the oldest run still live ([`purge_below`]).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use weft_lang::catalogue::ToolSpec;
use weft_lang::definition::WorkflowDef;
use weft_lang::limits::RunLimits;
use weft_protocol::wire::{Millis, TaskResult};

use crate::config::Prices;
use crate::machine::{Input, Logged, ParentLink, Seed};
use crate::nats::NatsError;

pub(crate) use weft_protocol::subjects::{
    INPUTS_STREAM as STREAM, input as subject, partition_inputs as partition_filter,
};
pub(crate) use weft_protocol::subjects::{partition_of, tick as tick_subject};

/// What the log holds, besides workers' results (which are plain [`TaskResult`]s).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// A run was accepted.
    Created {
        /// The workflow.
        definition: Box<WorkflowDef>,
        /// Its input.
        input: Value,
        /// W3C `traceparent` of the submit: every span of the run joins this trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
        /// The run and step that started it, if it is a sub-workflow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentLink>,
        /// The limits the run runs under, fixed when it was admitted (so a replay
        /// anywhere applies the same); the defaults are not written.
        #[serde(default, skip_serializing_if = "is_default")]
        limits: RunLimits,
        /// The specs of the tools its `plan` steps may call, as admitted.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tools: Vec<ToolSpec>,
        /// The prices its model calls are costed at, as admitted.
        #[serde(default, skip_serializing_if = "Prices::is_empty")]
        prices: Prices,
        /// What its tasks' tokens derive from (random at admission).
        #[serde(default, skip_serializing_if = "Uuid::is_nil")]
        secret: Uuid,
        /// A redrive: what the run that ended carries over. Its creation starts the run
        /// again, replacing what the log held of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<Box<Seed>>,
    },
    /// Anything else that happens to it.
    Input {
        /// What.
        input: Input,
    },
}

/// A run's creation, as logged (an [`Entry::Created`] read without its tag).
#[derive(Debug, Deserialize)]
pub(crate) struct Creation {
    /// The workflow.
    pub definition: Box<WorkflowDef>,
    /// Its input.
    pub input: Value,
    /// The trace its spans join.
    #[serde(default)]
    pub trace: Option<String>,
    /// Its parent, if it is a sub-workflow.
    #[serde(default)]
    pub parent: Option<ParentLink>,
    /// Its limits.
    #[serde(default)]
    pub limits: RunLimits,
    /// The tool specs its `plan` steps show their model.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// Its model prices.
    #[serde(default)]
    pub prices: Prices,
    /// What its tasks' tokens derive from.
    #[serde(default)]
    pub secret: Uuid,
    /// A redrive's carry-over.
    #[serde(default)]
    pub seed: Option<Box<Seed>>,
}

fn is_default(limits: &RunLimits) -> bool {
    *limits == RunLimits::default()
}

/// How every [`Entry::Created`] a coordinator writes begins (serde puts the tag first).
const CREATED_PREFIX: &[u8] = br#"{"entry":"created","#;

/// A decoded log message.
#[derive(Debug)]
// Inputs are decoded once and applied at once: boxing each would cost an allocation per
// result for nothing a move does not do.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decoded {
    /// A run's creation.
    Created(Box<Creation>),
    /// An input for a run.
    Input(Input),
    /// A partition tick.
    Tick,
}

/// The message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable log entry on {subject}: {message}")]
pub(crate) struct DecodeError {
    /// Where.
    pub subject: String,
    /// Why.
    pub message: String,
}

/// Reads a log message: a tick, an [`Entry`], or a worker's [`TaskResult`].
pub(crate) fn decode(subject: &str, payload: &[u8]) -> Result<Decoded, DecodeError> {
    if subject.ends_with(".tick") {
        return Ok(Decoded::Tick);
    }
    let error = |e: serde_json::Error| DecodeError { subject: subject.to_owned(), message: e.to_string() };
    // Workers may publish only here, and only results: anything else is refused, so a
    // worker cannot create, cancel, pause or signal a run.
    if subject.ends_with(RESULT_SUFFIX) {
        return serde_json::from_slice::<TaskResult>(payload)
            .map(|result| Decoded::Input(Input::Result { result }))
            .map_err(|e| DecodeError {
                subject: subject.to_owned(),
                message: format!("only a task's result may be published on a result subject: {e}"),
            });
    }
    // A creation carries a whole definition: read it in one pass, not as a result first,
    // then a `Value`, then the tagged enum (3 ms instead of 1 for 1,000 steps).
    if payload.starts_with(CREATED_PREFIX) {
        return serde_json::from_slice::<Creation>(payload).map(|c| Decoded::Created(Box::new(c))).map_err(error);
    }
    // Workers' results are most of the log: read them straight, without a `Value` first.
    if let Ok(result) = serde_json::from_slice::<TaskResult>(payload) {
        return Ok(Decoded::Input(Input::Result { result }));
    }
    let value: Value = serde_json::from_slice(payload).map_err(error)?;
    if value.get("entry").is_some() {
        return Ok(match serde_json::from_value::<Entry>(value).map_err(error)? {
            Entry::Created { definition, input, trace, parent, limits, tools, prices, secret, seed } => {
                Decoded::Created(Box::new(Creation {
                    definition,
                    input,
                    trace,
                    parent,
                    limits,
                    tools,
                    prices,
                    secret,
                    seed,
                }))
            }
            Entry::Input { input } => Decoded::Input(input),
        });
    }
    let result: TaskResult = serde_json::from_value(value).map_err(error)?;
    Ok(Decoded::Input(Input::Result { result }))
}

/// The run id of a run subject (`weft.in.<p>.<run>`, or its results' `weft.in.<p>.<run>.result`).
pub(crate) fn run_of(subject: &str) -> Option<Uuid> {
    let subject = subject.strip_suffix(RESULT_SUFFIX).unwrap_or(subject);
    subject.rsplit('.').next()?.parse().ok()
}

/// How a results subject ends.
const RESULT_SUFFIX: &str = ".result";

/// When the stream stored a message, in ms: the `now` its input is applied at.
pub(crate) fn stored_at(message: &jetstream::Message) -> Option<(u64, Millis)> {
    let info = message.info().ok()?;
    Some((info.stream_sequence, (info.published.unix_timestamp_nanos() / 1_000_000) as Millis))
}

/// Appends an entry (deduplicated by `id`) and waits until it is stored.
pub(crate) async fn append(js: &jetstream::Context, subject: String, entry: &Entry, id: &str) -> Result<(), NatsError> {
    let payload = serde_json::to_vec(entry).expect("log entries are plain data and serialise");
    let what = || format!("append to {subject}");
    let publish = PublishMessage::build().payload(payload.into()).message_id(id);
    let ack = js.send_publish(subject.clone(), publish).await.map_err(|e| NatsError::new(what(), e))?;
    ack.await.map(|_| ()).map_err(|e| NatsError::new(what(), e))
}

/// Publishes a tick for a partition (one per second across coordinators, expiring).
pub(crate) async fn tick(js: &jetstream::Context, partition: u32, second: u64) -> Result<(), NatsError> {
    let message = PublishMessage::build()
        .payload(bytes::Bytes::new())
        .message_id(format!("tick:{partition}:{second}"))
        .ttl(Duration::from_secs(30));
    let what = || format!("tick of partition {partition}");
    let ack = js.send_publish(tick_subject(partition), message).await.map_err(|e| NatsError::new(what(), e))?;
    ack.await.map(|_| ()).map_err(|e| NatsError::new(what(), e))
}

/// A run's history, as stored.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// The creation, and when it was stored: the first one. A run is created once; later
    /// creations of the same id (a resubmit past the duplicate window) are not applied,
    /// but a redrive's (one with a seed) starts the run again from it.
    pub created: Option<(Box<Creation>, Millis)>,
    /// Sequences of creations after the first, which are ignored.
    pub ignored_creations: Vec<u64>,
    /// Inputs, in log order.
    pub inputs: Vec<Logged>,
    /// The stream sequence of its first entry.
    pub first_seq: u64,
}

/// Reads every run entry of a partition stored up to now; returns the histories by run and
/// the last stream sequence read (entries after it are for the live consumer).
pub(crate) async fn read_partition(
    js: &jetstream::Context,
    partition: u32,
) -> Result<(BTreeMap<Uuid, History>, u64), NatsError> {
    let what = || format!("read partition {partition} of {STREAM}");
    let fail = |e: async_nats::Error| NatsError::new(what(), e);
    let mut stream = js.get_stream(STREAM).await.map_err(|e| fail(e.into()))?;
    let last = stream.info().await.map_err(|e| fail(e.into()))?.state.last_sequence;
    let mut runs: BTreeMap<Uuid, History> = BTreeMap::new();
    let mut read = 0;
    if last == 0 {
        return Ok((runs, 0));
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: partition_filter(partition),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| fail(e.into()))?;
    // Nothing of this partition may be stored at all: ask how many there are.
    let pending = consumer.cached_info().num_pending;
    if pending == 0 {
        return Ok((runs, last));
    }
    let mut messages = consumer.messages().await.map_err(|e| fail(e.into()))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| fail(e.into()))?;
        let Some((seq, at)) = stored_at(&message) else { continue };
        read += 1;
        let decoded = match decode(&message.subject, &message.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                dead_letter(js, &message.subject, seq, &message.payload, &e.to_string()).await;
                continue;
            }
        };
        if let Some(run) = run_of(&message.subject) {
            let history = runs.entry(run).or_insert_with(|| History { first_seq: seq, ..History::default() });
            match decoded {
                // A redrive: the run as it was ended; it starts again from here.
                Decoded::Created(creation) if creation.seed.is_some() => {
                    *history = History { created: Some((creation, at)), first_seq: seq, ..History::default() };
                }
                Decoded::Created(_) if history.created.is_some() => history.ignored_creations.push(seq),
                Decoded::Created(creation) => history.created = Some((creation, at)),
                Decoded::Input(input) => history.inputs.push(Logged { input, at, seq }),
                Decoded::Tick => {}
            }
        }
        if seq >= last || read >= pending {
            break;
        }
    }
    Ok((runs, last))
}

/// Moves an entry that cannot be read aside: a copy goes to `weft.dead.<partition>`
/// (stream `WEFT_DEAD`) with where it was and why, in headers, so an operator can look at
/// it; nothing of it is applied. Best effort: a failure is logged.
pub(crate) async fn dead_letter(js: &jetstream::Context, subject: &str, seq: u64, payload: &[u8], reason: &str) {
    let partition = subject.split('.').nth(2).unwrap_or("unknown");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Weft-Subject", subject);
    headers.insert("Weft-Seq", seq.to_string().as_str());
    // Header values are one line.
    headers.insert("Weft-Reason", reason.replace(['\r', '\n'], " ").as_str());
    let dead = PublishMessage::build()
        .payload(bytes::Bytes::copy_from_slice(payload))
        .headers(headers)
        .message_id(format!("dead:{STREAM}:{seq}"));
    let stored = match js.send_publish(weft_protocol::subjects::dead(partition), dead).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match stored {
        Ok(()) => tracing::warn!(%subject, seq, %reason, "an unreadable log entry moved to the dead letters"),
        Err(e) => {
            tracing::error!(%subject, seq, %reason, error = %e, "an unreadable log entry dropped: the dead letters cannot be reached")
        }
    }
}

/// Removes a partition's entries stored before sequence `below`: one request, however many
/// runs they belong to. Purging each finished run by its subject instead made the server
/// recount every partition consumer's pending messages per run (see BENCHMARKS.md).
pub(crate) async fn purge_below(js: &jetstream::Context, partition: u32, below: u64) -> Result<(), NatsError> {
    let what = || format!("purge partition {partition} below {below}");
    let stream = js.get_stream(STREAM).await.map_err(|e| NatsError::new(what(), e))?;
    let purge = stream.purge().filter(partition_filter(partition)).sequence(below);
    purge.await.map(|_| ()).map_err(|e| NatsError::new(what(), e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn partitions_spread_and_are_stable() {
        let counts = (0..8000).map(|_| partition_of(Uuid::now_v7(), 8)).fold([0u32; 8], |mut c, p| {
            c[p as usize] += 1;
            c
        });
        assert!(counts.iter().all(|c| *c > 700), "{counts:?}");
        let id = Uuid::now_v7();
        assert_eq!(partition_of(id, 8), partition_of(id, 8));
    }

    #[test]
    fn a_results_subject_takes_results_and_nothing_else() {
        let run = Uuid::now_v7();
        let results = weft_protocol::subjects::results(3, run);
        assert_eq!(run_of(&results), Some(run));
        let result = format!(
            r#"{{"run_id":"{run}","step_id":"a","attempt":1,"worker":"w","started_ms":1,"finished_ms":2,"outcome":{{"ok":1}}}}"#
        );
        assert!(matches!(decode(&results, result.as_bytes()), Ok(Decoded::Input(Input::Result { .. }))));
        // What a worker may not append: each refused on its results subject, saying why.
        for entry in [
            r#"{"entry":"input","input":{"kind":"cancel","reason":"r"}}"#.to_owned(),
            r#"{"entry":"input","input":{"kind":"signal","name":"go","data":1}}"#.to_owned(),
            r#"{"entry":"created","definition":{"name":"w","steps":[]},"input":{}}"#.to_owned(),
        ] {
            let refused = decode(&results, entry.as_bytes()).expect_err("refused");
            assert!(refused.message.contains("only a task's result"), "{refused}");
        }
    }

    #[test]
    fn decodes_every_kind_of_entry() {
        let run = Uuid::now_v7();
        let s = subject(3, run);
        assert_eq!(run_of(&s), Some(run));
        assert!(matches!(decode(&tick_subject(3), b""), Ok(Decoded::Tick)));
        let cancel =
            serde_json::to_vec(&Entry::Input { input: Input::Cancel { reason: "x".into(), compensate: false } })
                .expect("json");
        assert!(matches!(decode(&s, &cancel), Ok(Decoded::Input(Input::Cancel { .. }))));
        let result = json!({"run_id": run, "step_id": "a", "attempt": 1, "worker": "w", "started_ms": 1,
                            "finished_ms": 2, "outcome": {"ok": 5}});
        let bytes = serde_json::to_vec(&result).expect("json");
        assert!(matches!(decode(&s, &bytes), Ok(Decoded::Input(Input::Result { .. }))));
        assert!(decode(&s, b"garbage").is_err());
    }

    #[test]
    fn a_creation_reads_the_same_by_its_prefix_or_in_any_key_order() {
        let s = subject(1, Uuid::now_v7());
        let definition: WorkflowDef =
            serde_json::from_value(json!({"name": "w", "steps": [{"id": "a", "tool": "echo"}]})).expect("def");
        let entry = Entry::Created {
            definition: Box::new(definition.clone()),
            input: json!({"x": 1}),
            trace: Some("00-abc-def-01".into()),
            parent: None,
            limits: RunLimits::default(),
            tools: Vec::new(),
            prices: Prices::new(),
            secret: Uuid::nil(),
            seed: None,
        };
        let written = serde_json::to_vec(&entry).expect("json");
        assert!(written.starts_with(CREATED_PREFIX), "{}", String::from_utf8_lossy(&written));
        let reordered = serde_json::to_vec(&json!({"input": {"x": 1}, "trace": "00-abc-def-01",
            "definition": definition, "entry": "created"}))
        .expect("json");
        for bytes in [written, reordered] {
            let Ok(Decoded::Created(c)) = decode(&s, &bytes) else { panic!("not a creation") };
            assert_eq!(
                (*c.definition, c.input, c.trace),
                (definition.clone(), json!({"x": 1}), Some("00-abc-def-01".into()))
            );
        }
        let broken = br#"{"entry":"created","definition":{"name":"w"}}"#;
        let error = decode(&s, broken).expect_err("an error");
        assert!(error.to_string().contains(&s), "{error}");
    }
}
