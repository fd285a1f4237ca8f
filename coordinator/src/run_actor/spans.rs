//! A run's spans. A run may last days and move between coordinators, so it is not one long
//! span: every span is short and joins the run's trace through the submit's context, which
//! the run's log keeps (`created.trace`). Dispatch spans are producers whose context rides
//! in the task's headers, so the worker's tool span is their child; a result span is the
//! child of the tool span that produced it; a compensation's dispatch links to the last
//! dispatch of the step it undoes.

use std::collections::HashMap;

use async_nats::HeaderMap;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use weft_protocol::trace;
use weft_protocol::wire::{Event, EventKind, Outcome, RunStatus, Task, TaskResult};

use crate::machine::{ChildStart, Run};

/// The trace a run's spans join, and the span contexts compensations link to.
#[derive(Debug, Clone)]
pub(crate) struct RunSpans {
    parent: Context,
    dispatched: HashMap<String, SpanContext>,
}

impl RunSpans {
    /// Spans under the submit whose `traceparent` the run's log kept.
    pub(crate) fn new(traceparent: Option<&str>) -> RunSpans {
        RunSpans { parent: traceparent.map(trace::from_traceparent).unwrap_or_default(), dispatched: HashMap::new() }
    }

    /// The run's trace id, for logs.
    pub(crate) fn trace_id(&self) -> Option<String> {
        let id = self.parent.span().span_context().trace_id();
        (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
    }

    /// The dispatch span of a task; returns the headers carrying its context to the worker.
    pub(crate) fn dispatch(&mut self, run: &Run, task: &Task) -> HeaderMap {
        let kind = if task.compensation { "compensate" } else { "dispatch" };
        let span = tracing::info_span!("dispatch",
            otel.name = format!("{kind} {}", task.step_id),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.destination.name = %weft_protocol::subjects::task(&task.tool),
            weft.run_id = %task.run_id,
            weft.workflow = %run.workflow(),
            weft.step_id = %task.step_id,
            weft.tool = %task.tool,
            weft.attempt = task.attempt,
            weft.compensation = task.compensation);
        let _ = span.set_parent(self.parent.clone());
        if task.compensation {
            if let Some(undone) = self.dispatched.get(&task.step_id) {
                span.add_link(undone.clone());
            }
        } else {
            let cx = span.context();
            self.dispatched.insert(task.step_id.clone(), cx.span().span_context().clone());
        }
        let mut headers = HeaderMap::new();
        trace::inject(&span, &mut headers);
        headers
    }

    /// The span of starting a child run for a `workflow` step; returns its
    /// `traceparent`, which the child's log keeps, so the child's spans are its children.
    pub(crate) fn child(&self, run: &Run, start: &ChildStart, workflow: &str) -> Option<String> {
        let span = tracing::info_span!("workflow",
            otel.name = format!("workflow {} {}", start.parent.step, workflow),
            otel.kind = "producer",
            weft.run_id = %run.id(),
            weft.workflow = %run.workflow(),
            weft.step_id = %start.parent.step,
            weft.attempt = start.parent.attempt,
            weft.child_run_id = %start.child_id,
            weft.child_workflow = %workflow);
        let _ = span.set_parent(self.parent.clone());
        trace::traceparent(&span)
    }

    /// The span of applying a worker's result, child of the worker's tool span.
    pub(crate) fn result(&self, run: &Run, result: &TaskResult, headers: Option<&HeaderMap>) {
        let span = tracing::info_span!("result",
            otel.name = format!("result {}", result.step_id),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.type = "process",
            weft.run_id = %result.run_id,
            weft.workflow = %run.workflow(),
            weft.step_id = %result.step_id,
            weft.attempt = result.attempt,
            weft.worker = %result.worker,
            weft.compensation = result.compensation,
            weft.outcome = if matches!(result.outcome, Outcome::Ok(_)) { "ok" } else { "error" });
        let from_worker = trace::extract(headers);
        let parent = if from_worker.span().span_context().is_valid() { from_worker } else { self.parent.clone() };
        let _ = span.set_parent(parent);
        if let Outcome::Err(e) = &result.outcome {
            trace::fail(&span, e.to_string());
        }
    }

    /// Spans for what a lifecycle event makes visible: retries, skips, failures, the end.
    pub(crate) fn event(&self, run: &Run, event: &Event) {
        let (name, error) = match &event.kind {
            EventKind::StepRetrying { step_id, attempt, error, .. } => {
                (format!("retry {step_id} after attempt {attempt}"), Some(error.clone()))
            }
            EventKind::StepSkipped { step_id, reason } => (format!("skip {step_id}: {reason}"), None),
            EventKind::StepCancelled { step_id, reason } => (format!("cancel {step_id}: {reason}"), None),
            EventKind::StepFailed { step_id, error } => (format!("failed {step_id}"), Some(error.clone())),
            EventKind::CompensationFailed { step_id, error, .. } => {
                (format!("compensation failed {step_id}"), Some(error.clone()))
            }
            EventKind::RunFinished { status } => {
                let status = status.as_str();
                let failed = !matches!(event.kind, EventKind::RunFinished { status: RunStatus::Completed });
                (format!("run {} {status}", run.workflow()), failed.then(|| run.record().errors.join("; ")))
            }
            _ => return,
        };
        let span = tracing::info_span!("event",
            otel.name = name,
            weft.run_id = %event.run_id,
            weft.workflow = %run.workflow(),
            weft.event_seq = event.seq);
        let _ = span.set_parent(self.parent.clone());
        if let Some(message) = error {
            trace::fail(&span, message);
        }
    }
}
