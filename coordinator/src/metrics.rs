//! The coordinator's Prometheus metrics: what its runs do (started, ended, how long), what
//! their steps cost (attempts, retries, time on a worker and in the queue, by tool), what it
//! holds (tasks in flight, parked runs, partitions owned, log compaction held back) and the
//! sizes of what it writes. Served by `weft-coordinator --metrics ADDR`
//! ([`weft_service::metrics::serve`]).
//!
//! The families are process-wide, like logs: a run actor counts as it carries out effects,
//! the supervisor sets its gauges on its ownership tick. Counters count what this process
//! did live (a replay after a takeover counts nothing again), so a deployment's figure is
//! the sum over its coordinators.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use weft_protocol::wire::{Event, EventKind, Millis, Outcome, RunStatus, TaskResult};
use weft_service::metrics::{bytes_buckets, seconds_buckets};

use crate::machine::Run;

/// Labels of a run's metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WorkflowLabels {
    workflow: String,
}

/// Labels of a run's end.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndLabels {
    workflow: String,
    status: String,
}

/// Labels of a step's metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ToolLabels {
    tool: String,
}

/// Labels of an attempt's end.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttemptLabels {
    tool: String,
    outcome: String,
}

/// Labels of a payload's size.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PayloadLabels {
    kind: String,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(seconds_buckets())
}

fn bytes_histogram() -> Histogram {
    Histogram::new(bytes_buckets())
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric family of the coordinator.
#[derive(Debug)]
pub(crate) struct Metrics {
    runs_started: Family<WorkflowLabels, Counter>,
    runs_ended: Family<EndLabels, Counter>,
    run_duration: Histograms<WorkflowLabels>,
    attempts: Family<AttemptLabels, Counter>,
    retries: Family<ToolLabels, Counter>,
    step_duration: Histograms<ToolLabels>,
    queue_time: Histograms<ToolLabels>,
    payload_bytes: Histograms<PayloadLabels>,
    /// Tasks dispatched and not answered, over the runs of this process.
    pub(crate) tasks_in_flight: Gauge,
    /// Runs waiting only for outside input, kept without an actor.
    pub(crate) runs_parked: Gauge,
    /// Runs with an actor.
    pub(crate) runs_active: Gauge,
    /// Partitions of the run log this coordinator owns.
    pub(crate) partitions_owned: Gauge,
    /// Run log entries compaction must keep because a live run began before them.
    pub(crate) log_entries_held: Gauge,
}

/// The coordinator's metrics.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The registry of every coordinator metric (the same families), for the endpoint.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| METRICS.registry());

/// The registry of every coordinator metric, for the endpoint.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            runs_started: Family::default(),
            runs_ended: Family::default(),
            run_duration: Family::new_with_constructor(seconds_histogram),
            attempts: Family::default(),
            retries: Family::default(),
            step_duration: Family::new_with_constructor(seconds_histogram),
            queue_time: Family::new_with_constructor(seconds_histogram),
            payload_bytes: Family::new_with_constructor(bytes_histogram),
            tasks_in_flight: Gauge::default(),
            runs_parked: Gauge::default(),
            runs_active: Gauge::default(),
            partitions_owned: Gauge::default(),
            log_entries_held: Gauge::default(),
        }
    }

    /// A registry of these families, named by Prometheus conventions under `weft_`.
    fn registry(&self) -> Registry {
        let (mut registry, m) = (Registry::with_prefix("weft"), self);
        let r = &mut registry;
        r.register("runs_started", "Runs started, by workflow", m.runs_started.clone());
        r.register("runs_ended", "Runs ended, by workflow and status", m.runs_ended.clone());
        r.register_with_unit(
            "run_duration",
            "Runs' time from acceptance to their end, by workflow",
            prometheus_client::registry::Unit::Seconds,
            m.run_duration.clone(),
        );
        r.register("step_attempts", "Tool attempts answered, by tool and outcome (ok, error)", m.attempts.clone());
        r.register("step_retries", "Attempts that failed and were retried, by tool", m.retries.clone());
        r.register_with_unit(
            "step_duration",
            "Time a tool attempt ran on its worker, by tool",
            prometheus_client::registry::Unit::Seconds,
            m.step_duration.clone(),
        );
        r.register_with_unit(
            "step_queue",
            "Time from a task's dispatch to its tool's start (waiting for a worker), by tool",
            prometheus_client::registry::Unit::Seconds,
            m.queue_time.clone(),
        );
        r.register_with_unit(
            "payload",
            "Sizes of what the coordinator writes and reads: tasks, results, run records",
            prometheus_client::registry::Unit::Bytes,
            m.payload_bytes.clone(),
        );
        r.register("tasks_in_flight", "Tasks dispatched and not answered yet", m.tasks_in_flight.clone());
        r.register("runs_parked", "Runs waiting only for outside input (no actor)", m.runs_parked.clone());
        r.register("runs_active", "Runs with an actor", m.runs_active.clone());
        r.register("partitions_owned", "Partitions of the run log owned", m.partitions_owned.clone());
        r.register(
            "log_entries_held",
            "Run log entries compaction keeps because a live run began before them (how far it lags the log's end)",
            m.log_entries_held.clone(),
        );
        registry
    }

    /// A run started.
    pub(crate) fn run_started(&self, workflow: &str) {
        self.runs_started.get_or_create(&WorkflowLabels { workflow: workflow.to_owned() }).inc();
    }

    /// A run ended, `took_ms` after it was accepted.
    pub(crate) fn run_ended(&self, workflow: &str, status: RunStatus, took_ms: Millis) {
        let labels = EndLabels { workflow: workflow.to_owned(), status: status.as_str().to_owned() };
        self.runs_ended.get_or_create(&labels).inc();
        let labels = WorkflowLabels { workflow: workflow.to_owned() };
        self.run_duration.get_or_create(&labels).observe(seconds(took_ms));
    }

    /// A tool attempt's result was applied: it waited `queued_ms` for a worker and ran `ran_ms`.
    pub(crate) fn attempt_answered(&self, tool: &str, ok: bool, queued_ms: Millis, ran_ms: Millis) {
        let outcome = if ok { "ok" } else { "error" };
        self.attempts.get_or_create(&AttemptLabels { tool: tool.to_owned(), outcome: outcome.to_owned() }).inc();
        let labels = ToolLabels { tool: tool.to_owned() };
        self.queue_time.get_or_create(&labels).observe(seconds(queued_ms));
        self.step_duration.get_or_create(&labels).observe(seconds(ran_ms));
    }

    /// An attempt of `tool` failed and another follows.
    pub(crate) fn retried(&self, tool: &str) {
        self.retries.get_or_create(&ToolLabels { tool: tool.to_owned() }).inc();
    }

    /// A payload of `kind` (`task`, `result`, `record`) of `bytes`.
    pub(crate) fn payload(&self, kind: &str, bytes: usize) {
        self.payload_bytes.get_or_create(&PayloadLabels { kind: kind.to_owned() }).observe(bytes as f64);
    }
}

/// Counts what a lifecycle event of `run` says: a start, a retry, an end.
pub(crate) fn event(run: &Run, event: &Event) {
    match &event.kind {
        EventKind::RunStarted { workflow } => METRICS.run_started(workflow),
        EventKind::RunFinished { status } => {
            METRICS.run_ended(run.workflow(), *status, event.at_ms.saturating_sub(run.created_ms()));
        }
        EventKind::StepRetrying { step_id, .. } => {
            if let Some(tool) = run.tool_of(step_id) {
                METRICS.retried(tool);
            }
        }
        _ => {}
    }
}

/// A tool attempt's result, to count once the machine has applied it.
#[derive(Debug)]
pub(crate) struct Answer {
    tool: String,
    ok: bool,
    queued_ms: Millis,
    ran_ms: Millis,
}

impl Answer {
    /// What `result` will count, read before it is applied: a result the run does not
    /// await (a duplicate, a late answer to a timed-out attempt, a compensation's) counts
    /// nothing.
    pub(crate) fn of(run: &Run, result: &TaskResult) -> Option<Answer> {
        if result.compensation {
            return None;
        }
        let (tool, dispatched_ms) = run.awaiting(&result.step_id, result.attempt)?;
        Some(Answer {
            tool: tool.to_owned(),
            ok: matches!(result.outcome, Outcome::Ok(_)),
            queued_ms: result.started_ms.saturating_sub(dispatched_ms),
            ran_ms: result.finished_ms.saturating_sub(result.started_ms),
        })
    }

    /// Counts it.
    pub(crate) fn count(self) {
        METRICS.attempt_answered(&self.tool, self.ok, self.queued_ms, self.ran_ms);
    }
}

fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

/// The metrics as the endpoint serves them.
#[cfg(test)]
fn rendered() -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry()).expect("metrics encode");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        METRICS.run_started("wf");
        METRICS.run_ended("wf", RunStatus::Completed, 1500);
        METRICS.attempt_answered("echo", true, 2, 10);
        METRICS.payload("task", 300);
        let text = rendered();
        for line in [
            "weft_runs_started_total{workflow=\"wf\"}",
            "weft_runs_ended_total{workflow=\"wf\",status=\"completed\"}",
            "weft_run_duration_seconds_bucket{le=\"2.048\",workflow=\"wf\"}",
            "weft_step_attempts_total{tool=\"echo\",outcome=\"ok\"}",
            "weft_step_queue_seconds_count{tool=\"echo\"}",
            "weft_payload_bytes_sum{kind=\"task\"}",
            "# TYPE weft_tasks_in_flight gauge",
            "# UNIT weft_step_duration_seconds seconds",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
    }
}
