//! Creates Weft's streams and buckets if they are missing, so every binary can start
//! against a bare JetStream server. Safe to run from many processes at once.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::subjects;

/// How long things are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Lifecycle events of runs (default one day).
    pub events: Duration,
    /// Finished run records (default seven days).
    pub runs: Duration,
    /// Tool advertisements expire unless refreshed this often (default 30s).
    pub tools: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            events: Duration::from_secs(24 * 3600),
            runs: Duration::from_secs(7 * 24 * 3600),
            tools: Duration::from_secs(30),
        }
    }
}

/// The buckets a service works with.
#[derive(Debug, Clone)]
pub struct Infra {
    /// Tool advertisements.
    pub tools: kv::Store,
    /// Run records.
    pub runs: kv::Store,
    /// Registered definitions.
    pub definitions: kv::Store,
    /// Resource pools.
    pub pools: kv::Store,
    /// Model rate limits.
    pub rates: kv::Store,
}

/// Setting up JetStream failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up JetStream {what}: {message} (is the server started with JetStream, `-js`?)")]
pub struct SetupError {
    /// The stream or bucket.
    pub what: String,
    /// Why.
    pub message: String,
}

fn err(what: &str, e: impl std::fmt::Display) -> SetupError {
    SetupError { what: what.to_owned(), message: e.to_string() }
}

/// Creates (or finds) every stream and bucket.
pub async fn ensure(js: &jetstream::Context, retention: &Retention) -> Result<Infra, SetupError> {
    let streams = [
        stream::Config {
            name: subjects::TASKS_STREAM.into(),
            subjects: vec![subjects::TASKS_ALL.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: subjects::INPUTS_STREAM.into(),
            subjects: vec![subjects::INPUTS_ALL.into()],
            // Kept until a run ends and its entries are purged: the log is the run's state.
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            allow_message_ttl: true,
            ..Default::default()
        },
        stream::Config {
            name: subjects::INDEX_STREAM.into(),
            subjects: vec![subjects::INDEX_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: retention.runs,
            duplicate_window: Duration::from_secs(120).min(retention.runs),
            ..Default::default()
        },
        stream::Config {
            name: subjects::DEAD_STREAM.into(),
            subjects: vec![subjects::DEAD_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: retention.runs,
            duplicate_window: Duration::from_secs(120).min(retention.runs),
            ..Default::default()
        },
        stream::Config {
            name: subjects::EVENTS_STREAM.into(),
            subjects: vec![subjects::EVENTS_ALL.into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: retention.events,
            ..Default::default()
        },
    ];
    for config in streams {
        let name = config.name.clone();
        js.get_or_create_stream(config).await.map_err(|e| err(&format!("stream {name}"), e))?;
    }
    let tools = bucket(js, subjects::TOOLS_BUCKET, retention.tools).await?;
    let runs = bucket(js, subjects::RUNS_BUCKET, retention.runs).await?;
    let definitions = bucket(js, subjects::DEFINITIONS_BUCKET, Duration::ZERO).await?;
    let pools = bucket(js, subjects::POOLS_BUCKET, Duration::ZERO).await?;
    let rates = bucket(js, subjects::RATES_BUCKET, Duration::ZERO).await?;
    Ok(Infra { tools, runs, definitions, pools, rates })
}

/// Makes the retention of run records and events what `retention` says (the coordinator
/// owns these settings; other processes only create what is missing).
///
/// Only `max_age` changes: the replicas and the rest of each stream's config stay as they
/// are (a cluster raises them to three; rewriting the whole config would scale it back).
pub async fn apply_retention(js: &jetstream::Context, retention: &Retention) -> Result<(), SetupError> {
    let runs = format!("KV_{}", subjects::RUNS_BUCKET);
    let kept = [
        (runs.as_str(), retention.runs),
        (subjects::INDEX_STREAM, retention.runs),
        (subjects::EVENTS_STREAM, retention.events),
    ];
    for (name, max_age) in kept {
        let what = format!("stream {name}");
        let mut stream = js.get_stream(name).await.map_err(|e| err(&what, e))?;
        let mut config = stream.info().await.map_err(|e| err(&what, e))?.config.clone();
        if config.max_age != max_age {
            config.max_age = max_age;
            config.duplicate_window = config.duplicate_window.min(max_age);
            js.update_stream(config).await.map_err(|e| err(&what, e))?;
        }
    }
    Ok(())
}

async fn bucket(js: &jetstream::Context, name: &str, max_age: Duration) -> Result<kv::Store, SetupError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: name.into(),
        history: 1,
        max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another process created it in between.
        Err(e) => js.get_key_value(name).await.map_err(|_| err(&format!("bucket {name}"), e)),
    }
}
