//! The floor: what one step costs JetStream alone, with no Weft logic. A "coordinator"
//! publishes a task to a work-queue stream; a "worker" (its own connection) pulls it,
//! publishes a result to a second stream, waits for that publish to be stored and acks
//! the task; the coordinator pulls the result and acks it. Same storage
//! (file, default sync), deduplication window and message ids, and payloads of the same
//! size as Weft's tasks and results. One round trip at a time.
//!
//! Then the floor of a fan-out: as many tasks as the `sleep` fan-out has steps published
//! back to back, answered by a worker that handles each as it arrives; first publish to
//! last result received. A fan-out's makespan can come no closer to its critical path
//! than this.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;
use weft_protocol::wire::{Outcome, Task, TaskResult, now_ms};

use super::{Ctx, Floor};
use crate::cluster::NatsServer;
use crate::report::{Metric, ScenarioReport};
use crate::stats::{P50P99, ms};

/// Round trips before measuring.
const WARM_UP: usize = 100;

/// Round trips in flight for the floor's throughput (the throughput scenario's submitters).
const IN_FLIGHT: usize = 64;

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

    // The worker: pull, publish the result and wait for it to be stored, then ack.
    let burst_js = wjs.clone();
    let worker_loop = tokio::spawn(async move {
        let mut messages = task_consumer.messages().await?;
        while let Some(message) = messages.next().await {
            answer(&wjs, message?).await?;
        }
        Ok::<(), anyhow::Error>(())
    });

    let burst_consumer: consumer::PullConsumer =
        tasks.get_or_create_consumer("tool-burst", pull("tool-burst", "floor.task.burst")).await?;
    let burst_worker = tokio::spawn(async move {
        let mut messages = burst_consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let (message, js) = (message?, burst_js.clone());
            tokio::spawn(async move {
                let _ = answer(&js, message).await;
            });
        }
        Ok::<(), anyhow::Error>(())
    });

    let mut messages = result_consumer.messages().await?;
    let run_id = Uuid::now_v7();
    let mut per_repeat = Vec::new();
    let mut seq = 0u32;
    let mut task_of = |subject_tool: &str| {
        seq += 1;
        Task {
            run_id,
            step_id: format!("s{seq}"),
            attempt: 1,
            tool: subject_tool.into(),
            params: json!({"i": seq, "prev": seq - 1}),
            idempotency_key: format!("{run_id}/s{seq}"),
            timeout_ms: None,
            compensation: false,
            reply_to: format!("floor.result.0.{run_id}"),
            token: String::new(),
        }
    };
    for repeat in 0..repeats {
        let rounds = if repeat == 0 { WARM_UP + n } else { n };
        let mut samples = Vec::with_capacity(n);
        for i in 0..rounds {
            let task = task_of("echo");
            let payload = serde_json::to_vec(&task)?;
            let started = Instant::now();
            let stored = cjs
                .send_publish(
                    "floor.task.echo",
                    PublishMessage::build().payload(payload.into()).message_id(task.message_id()),
                )
                .await?;
            let message = next_result(&mut messages, Duration::from_secs(10), "no result within 10 s").await?;
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
    if worker_loop.is_finished() {
        bail!("the floor's worker stopped");
    }
    worker_loop.abort();

    let (width, _, bursts, _) = ctx.scale.fan_out;
    let mut burst_ms = Vec::new();
    for _ in 0..bursts {
        let started = Instant::now();
        let mut acks = Vec::with_capacity(width);
        for _ in 0..width {
            let task = task_of("burst");
            let publish =
                PublishMessage::build().payload(serde_json::to_vec(&task)?.into()).message_id(task.message_id());
            acks.push(cjs.send_publish("floor.task.burst", publish).await?);
        }
        for _ in 0..width {
            let message = next_result(&mut messages, Duration::from_secs(30), "burst: no result within 30 s").await?;
            message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let took = ms(started.elapsed());
        for ack in acks {
            ack.await?;
        }
        report.repeats.push(json!({"burst": width, "last_result_ms": took}));
        burst_ms.push(took);
    }
    let burst = crate::stats::median(&burst_ms);

    // Throughput: round trips kept in flight, a new task for each result.
    let window = Duration::from_secs(if ctx.scale.quick { 1 } else { 5 });
    for _ in 0..IN_FLIGHT {
        let task = task_of("burst");
        let publish = PublishMessage::build().payload(serde_json::to_vec(&task)?.into()).message_id(task.message_id());
        drop(cjs.send_publish("floor.task.burst", publish).await?); // the server acks it all the same
    }
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < window {
        let message = next_result(&mut messages, Duration::from_secs(30), "throughput: no result within 30 s").await?;
        message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        done += 1;
        let task = task_of("burst");
        let publish = PublishMessage::build().payload(serde_json::to_vec(&task)?.into()).message_id(task.message_id());
        drop(cjs.send_publish("floor.task.burst", publish).await?);
    }
    let per_second = done as f64 / started.elapsed().as_secs_f64();
    for _ in 0..IN_FLIGHT {
        if let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
            let _ = message.ack().await;
        }
    }
    report.repeats.push(json!({"in_flight": IN_FLIGHT, "window_s": window.as_secs(), "round_trips": done}));
    if burst_worker.is_finished() {
        bail!("the floor's burst worker stopped");
    }
    burst_worker.abort();

    let round_trip = P50P99::median_of(&per_repeat);
    report.metrics.push(Metric::new("round trip p50", round_trip.p50, "ms"));
    report.metrics.push(Metric::new("round trip p99", round_trip.p99, "ms"));
    report.notes.push(
        "Two JetStream publishes that are stored and two pulls: the least one step of any design on JetStream \
         costs. Measured in this process over two connections (coordinator side, worker side)."
            .to_owned(),
    );
    report.metrics.push(Metric::new(format!("burst of {width}: first publish to last result"), burst, "ms"));
    report.metrics.push(Metric::new(format!("round trips/s, {IN_FLIGHT} in flight"), per_second, "/s"));
    report.notes.push(format!(
        "Burst: {width} tasks published back to back, each answered as it arrives (the `sleep` fan-out without the \
         sleep and without Weft): median of {bursts}. Throughput: {IN_FLIGHT} round trips kept in flight for \
         {window:?}, a new task published for each result, the same worker answering each as it arrives: the \
         most steps per second JetStream carries here with one step's messages and nothing else."
    ));
    Ok(Floor { round_trip, burst_ms: burst, round_trips_per_s: per_second })
}

/// The next result, or why none came.
async fn next_result(
    messages: &mut consumer::pull::Stream,
    within: Duration,
    what: &str,
) -> anyhow::Result<jetstream::Message> {
    tokio::time::timeout(within, messages.next())
        .await
        .context(what.to_owned())?
        .context("result stream ended")?
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The floor's worker: answer a task on its `reply_to`, wait until the answer is stored,
/// then ack the task (as a Weft worker does).
async fn answer(js: &jetstream::Context, message: jetstream::Message) -> anyhow::Result<()> {
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
        usage: None,
        token: String::new(),
    };
    let publish = PublishMessage::build().payload(serde_json::to_vec(&result)?.into()).message_id(result.message_id());
    js.send_publish(task.reply_to.clone(), publish).await?.await?;
    message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
