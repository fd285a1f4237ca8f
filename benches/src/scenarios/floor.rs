//! The floor: what one step costs JetStream alone, with no Weft logic. A "coordinator"
//! publishes a task to a work-queue stream; a "worker" (its own connection) pulls it,
//! publishes a result to a second stream, waits for that publish to be stored and
//! double-acks the task; the coordinator pulls the result and acks it. Same storage
//! (file, default sync), deduplication window and message ids, and payloads of the same
//! size as Weft's tasks and results. One round trip at a time.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;
use weft_shared::wire::{Outcome, Task, TaskResult, now_ms};

use super::{Ctx, Floor};
use crate::cluster::NatsServer;
use crate::report::{Metric, ScenarioReport};
use crate::stats::{P50P99, ms};

/// Round trips before measuring.
const WARM_UP: usize = 100;

/// Measures the floor; its figures go into `report` and are returned for the ratios.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<Floor> {
    let (n, repeats) = ctx.scale.floor;
    report.scale = format!("{n} sequential round trips × {repeats} repeats, after {WARM_UP} to warm up");
    let dir = tempfile::tempdir()?;
    let nats = NatsServer::start(&ctx.bins, dir.path())?;
    let coordinator = async_nats::connect(&nats.url).await?;
    let worker = async_nats::connect(&nats.url).await?;
    let cjs = jetstream::new(coordinator);
    let wjs = jetstream::new(worker);
    let tasks = cjs
        .get_or_create_stream(stream::Config {
            name: "FLOOR_TASKS".into(),
            subjects: vec!["floor.task.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let results = cjs
        .get_or_create_stream(stream::Config {
            name: "FLOOR_RESULTS".into(),
            subjects: vec!["floor.result.>".into()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let pull = |name: &str, filter: &str| consumer::pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: filter.to_owned(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    };
    let task_consumer: consumer::PullConsumer =
        tasks.get_or_create_consumer("tool-echo", pull("tool-echo", "floor.task.echo")).await?;
    let result_consumer: consumer::PullConsumer =
        results.get_or_create_consumer("part-0", pull("part-0", "floor.result.>")).await?;

    // The worker: pull, publish the result and wait for it to be stored, then double-ack.
    let worker_loop = tokio::spawn(async move {
        let mut messages = task_consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let message = message?;
            let task: Task = serde_json::from_slice(&message.payload)?;
            let result = TaskResult {
                run_id: task.run_id,
                step_id: task.step_id.clone(),
                attempt: task.attempt,
                compensation: false,
                worker: "w1".into(),
                started_ms: now_ms(),
                finished_ms: now_ms(),
                outcome: Outcome::Ok(task.params.clone()),
            };
            let publish =
                PublishMessage::build().payload(serde_json::to_vec(&result)?.into()).message_id(result.message_id());
            wjs.send_publish(task.reply_to.clone(), publish).await?.await?;
            message.double_ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok::<(), anyhow::Error>(())
    });

    let mut messages = result_consumer.messages().await?;
    let run_id = Uuid::now_v7();
    let mut per_repeat = Vec::new();
    let mut seq = 0u32;
    for repeat in 0..repeats {
        let rounds = if repeat == 0 { WARM_UP + n } else { n };
        let mut samples = Vec::with_capacity(n);
        for i in 0..rounds {
            seq += 1;
            let task = Task {
                run_id,
                step_id: format!("s{seq}"),
                attempt: 1,
                tool: "echo".into(),
                params: json!({"i": seq, "prev": seq - 1}),
                idempotency_key: format!("{run_id}/s{seq}"),
                timeout_ms: None,
                compensation: false,
                reply_to: format!("floor.result.0.{run_id}"),
            };
            let payload = serde_json::to_vec(&task)?;
            let started = Instant::now();
            let stored = cjs
                .send_publish(
                    "floor.task.echo",
                    PublishMessage::build().payload(payload.into()).message_id(task.message_id()),
                )
                .await?;
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .context("no result within 10 s")?
                .context("result stream ended")?
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let took = started.elapsed();
            message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            stored.await?;
            if i >= rounds - n {
                samples.push(ms(took));
            }
        }
        if worker_loop.is_finished() {
            bail!("the floor's worker stopped");
        }
        let figures = P50P99::of(&samples);
        report.repeats.push(json!({"round_trip_ms": figures}));
        per_repeat.push(figures);
    }
    worker_loop.abort();
    let round_trip = P50P99::median_of(&per_repeat);
    report.metrics.push(Metric::new("round trip p50", round_trip.p50, "ms"));
    report.metrics.push(Metric::new("round trip p99", round_trip.p99, "ms"));
    report.notes.push(
        "Two JetStream publishes that are stored and two pulls: the least one step of any design on JetStream \
         costs. Measured in this process over two connections (coordinator side, worker side)."
            .to_owned(),
    );
    Ok(Floor { round_trip })
}
