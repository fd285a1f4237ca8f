//! Watches every run's lifecycle events with one core NATS subscription on
//! `weft.events.>` and timestamps them on arrival (microsecond resolution, this process's
//! clock), so a scenario can wait for thousands of runs without a consumer per run.
//!
//! Events are published to JetStream, and core subscribers receive them too; a slow
//! consumer here would drop some, so the connection has a deep buffer and slow-consumer
//! notices are counted and reported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;
use weft_protocol::wire::{Event, EventKind, RunStatus};

/// When and how a run ended, as seen here.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    /// Its final status.
    pub status: RunStatus,
    /// When `run_finished` arrived.
    pub at: Instant,
}

/// What was seen of one run.
#[derive(Debug, Default, Clone)]
pub struct Track {
    /// `step_started` arrivals in order (only if steps are recorded).
    pub started: Vec<(String, Instant)>,
    /// The first `step_started`.
    pub first_started: Option<Instant>,
    /// `step_completed` arrivals in order (only if steps are recorded).
    pub completed: Vec<Instant>,
    /// The last `step_completed`.
    pub last_completed: Option<Instant>,
    /// `run_finished`.
    pub finished: Option<Finish>,
}

#[derive(Debug, Default)]
struct State {
    record_steps: bool,
    runs: HashMap<Uuid, Track>,
    finished: usize,
    /// `step_started` (first attempts) by step id, over every run.
    started_by_step: HashMap<String, usize>,
    waiters: HashMap<Uuid, oneshot::Sender<Finish>>,
}

/// Counts the scenario waits on.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Runs finished.
    pub finished: usize,
    /// First attempts of the step asked about that started.
    pub started: usize,
}

/// The event watcher.
#[derive(Debug)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    changes: watch::Receiver<u64>,
    slow: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    /// Subscribes to every run's events on its own connection to `url`. With
    /// `record_steps`, every `step_started` arrival is kept.
    pub async fn start(url: &str, record_steps: bool) -> anyhow::Result<Tracker> {
        let slow = Arc::new(AtomicUsize::new(0));
        let counter = slow.clone();
        let nats = async_nats::ConnectOptions::new()
            .name("weft-bench-tracker")
            .subscription_capacity(1 << 20)
            .event_callback(move |event| {
                let counter = counter.clone();
                async move {
                    if matches!(event, async_nats::Event::SlowConsumer(_)) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .connect(url)
            .await?;
        let mut events = nats.subscribe("weft.events.>").await?;
        nats.flush().await?;
        let state = Arc::new(Mutex::new(State { record_steps, ..State::default() }));
        let (tx, changes) = watch::channel(0u64);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let _nats = nats; // kept open as long as the subscription
            while let Some(message) = events.next().await {
                let at = Instant::now();
                let Ok(event) = serde_json::from_slice::<Event>(&message.payload) else { continue };
                if observe(&shared, event, at) {
                    tx.send_modify(|n| *n += 1);
                }
            }
        });
        Ok(Tracker { state, changes, slow, task })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every run seen so far (between repeats).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.runs.clear();
        state.finished = 0;
        state.started_by_step.clear();
    }

    /// Slow-consumer notices so far (events may have been dropped).
    pub fn slow_consumer_notices(&self) -> usize {
        self.slow.load(Ordering::Relaxed)
    }

    /// What was seen of `run`.
    pub fn track(&self, run: Uuid) -> Option<Track> {
        self.lock().runs.get(&run).cloned()
    }

    /// The runs of `ids` not seen to finish.
    pub fn unfinished(&self, ids: &[Uuid]) -> Vec<Uuid> {
        let state = self.lock();
        ids.iter().filter(|id| state.runs.get(id).is_none_or(|t| t.finished.is_none())).copied().collect()
    }

    /// When the last of `ids` seen to finish finished.
    pub fn last_finish(&self, ids: &[Uuid]) -> Option<Instant> {
        let state = self.lock();
        ids.iter().filter_map(|id| state.runs.get(id).and_then(|t| t.finished)).map(|f| f.at).max()
    }

    /// Counts, with `started` for step `step`.
    pub fn counts(&self, step: &str) -> Counts {
        let state = self.lock();
        Counts { finished: state.finished, started: state.started_by_step.get(step).copied().unwrap_or(0) }
    }

    /// Waits for `run` to finish, at most `limit`.
    pub async fn wait_run(&self, run: Uuid, limit: Duration) -> Option<Finish> {
        let receiver = {
            let mut state = self.lock();
            if let Some(finish) = state.runs.get(&run).and_then(|t| t.finished) {
                return Some(finish);
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.insert(run, tx);
            rx
        };
        tokio::time::timeout(limit, receiver).await.ok()?.ok()
    }

    /// Waits until `done(counts)` holds for step `step`, at most `limit`; the last counts
    /// and whether it held.
    pub async fn wait_until(&self, step: &str, limit: Duration, done: impl Fn(Counts) -> bool) -> (Counts, bool) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.changes.clone();
        loop {
            let counts = self.counts(step);
            if done(counts) {
                return (counts, true);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    let counts = self.counts(step);
                    return (counts, done(counts));
                }
            }
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records one event; true if a count the waiters look at changed.
fn observe(state: &Mutex<State>, event: Event, at: Instant) -> bool {
    let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let record_steps = state.record_steps;
    match event.kind {
        EventKind::StepStarted { step_id, attempt } => {
            let track = state.runs.entry(event.run_id).or_default();
            track.first_started.get_or_insert(at);
            if record_steps {
                track.started.push((step_id.clone(), at));
            }
            if attempt == 1 {
                *state.started_by_step.entry(step_id).or_default() += 1;
                return true;
            }
            false
        }
        EventKind::StepCompleted { .. } => {
            let track = state.runs.entry(event.run_id).or_default();
            track.last_completed = Some(at);
            if record_steps {
                track.completed.push(at);
            }
            false
        }
        EventKind::RunFinished { status } => {
            let finish = Finish { status, at };
            let track = state.runs.entry(event.run_id).or_default();
            if track.finished.is_some() {
                return false;
            }
            track.finished = Some(finish);
            state.finished += 1;
            if let Some(waiter) = state.waiters.remove(&event.run_id) {
                let _ = waiter.send(finish);
            }
            true
        }
        _ => false,
    }
}
