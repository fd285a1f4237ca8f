//! A run's spans. A run may last days and move between coordinators, so it is not one long
//! span: every span joins the run's trace through the submit's context, which the run's
//! log keeps (`created.trace`).
//!
//! The tree: each attempt of a step is a span from its dispatch to its end (`step <path>`,
//! `wait <path>`, `for_each <path>`...), told once it is over with an id every coordinator
//! derives from the run, the path and the attempt (see `machine/spans.rs`); a `for_each`
//! item or `loop` iteration is a span under its construct, and the steps of a body are under
//! their item, iteration or construct. Under a step's span: the dispatch (a producer span
//! whose context rides in the task's headers), the worker's tool span (its child: the gap
//! between the step's start and the tool's is the time the task waited in the queue), and
//! the result. A compensation's dispatch links to the last dispatch of the step it undoes.

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
        let parent = if task.compensation { self.parent.clone() } else { self.under_current(run, &task.step_id) };
        let _ = span.set_parent(parent);
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
        let _ = span.set_parent(self.under_current(run, &start.parent.step));
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

    /// The context of the span of `path`'s current attempt, told when it ends.
    fn under_current(&self, run: &Run, path: &str) -> Context {
        match run.current_label(path) {
            Some(label) => trace::under(&self.parent, trace::span_id(run.id(), &label)),
            None => self.parent.clone(),
        }
    }

    /// Tells the spans that ended with an attempt: the attempt's own and, for a `for_each`
    /// or `loop`, its items' or iterations'.
    fn ended(&self, run: &Run, path: &str, attempt: u32, now: weft_protocol::wire::Millis) {
        let at = |ms: u64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        for facts in run.ended_spans(path, attempt, now) {
            let parent = match &facts.parent {
                Some(label) => trace::under(&self.parent, trace::span_id(run.id(), label)),
                None => self.parent.clone(),
            };
            let attributes = facts.attributes.into_iter().map(|(k, v)| opentelemetry::KeyValue::new(k, v)).collect();
            let id = trace::span_id(run.id(), &facts.label);
            trace::emit(&parent, id, facts.name, (at(facts.start_ms), at(facts.end_ms)), attributes, facts.error);
        }
    }

    /// Spans for what a lifecycle event makes visible: the end of attempts, constructs and
    /// their items; retries, skips, failures, the run's end.
    pub(crate) fn event(&self, run: &Run, event: &Event) {
        match &event.kind {
            EventKind::StepRetrying { step_id, attempt, .. } | EventKind::PlanProposed { step_id, attempt, .. } => {
                self.ended(run, step_id, *attempt, event.at_ms);
            }
            EventKind::StepCompleted { step_id, .. }
            | EventKind::StepFailed { step_id, .. }
            | EventKind::StepCancelled { step_id, .. } => {
                self.ended(run, step_id, run.attempt_of(step_id), event.at_ms);
            }
            _ => {}
        }
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
            EventKind::BudgetExceeded { step_id, .. } => (format!("out of budget at {step_id}"), None),
            _ => return,
        };
        let span = tracing::info_span!("event",
            otel.name = name,
            weft.run_id = %event.run_id,
            weft.workflow = %run.workflow(),
            weft.event_seq = event.seq,
            weft.tokens = tracing::field::Empty,
            weft.cost = tracing::field::Empty);
        // What the run spent, on its end and when it ran out of budget.
        if matches!(event.kind, EventKind::RunFinished { .. } | EventKind::BudgetExceeded { .. })
            && let Some(spent) = run.spend()
        {
            span.record("weft.tokens", spent.tokens);
            span.record("weft.cost", spent.cost);
        }
        let _ = span.set_parent(self.parent.clone());
        if let Some(message) = error {
            trace::fail(&span, message);
        }
    }
}
