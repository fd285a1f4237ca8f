//! Trace context across NATS: W3C `traceparent`/`tracestate` in message headers, so one
//! trace follows a run through the client, the coordinators and the workers.
//!
//! [`inject`] before a publish, [`extract`] on receipt, then `span.set_parent(cx)` before
//! the span is entered. A run's spans are short and joined by context: the submit's
//! `traceparent` is stored with the run's creation ([`traceparent`], [`from_traceparent`]).

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanBuilder, SpanContext, SpanId, TraceContextExt, TraceId, Tracer as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the context of `span` into NATS headers.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    inject_context(&span.context(), headers);
}

/// Writes `cx` into NATS headers.
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Reads a context from NATS headers (an empty one if there is none).
pub fn extract(headers: Option<&HeaderMap>) -> Context {
    match headers {
        Some(h) => TraceContextPropagator::new().extract(&HeaderExtractor(h)),
        None => Context::new(),
    }
}

/// The W3C `traceparent` of a span, to store where a later process can continue the trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut headers = HeaderMap::new();
    inject(span, &mut headers);
    headers.get("traceparent").map(|v| v.as_str().to_owned())
}

/// A context from a stored `traceparent`.
pub fn from_traceparent(traceparent: &str) -> Context {
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", traceparent);
    extract(Some(&headers))
}

/// Marks a span failed, with the message as the status description.
pub fn fail(span: &tracing::Span, message: impl Into<String>) {
    span.set_status(opentelemetry::trace::Status::error(message.into()));
}

/// The trace id of a span, as hex, if it is traced (for logs).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = span.context();
    let id = cx.span().span_context().trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// Span ids Weft chooses itself, so a span emitted when something ends (a step's attempt,
/// a construct, a `for_each` item) has an id its children, created earlier and perhaps by
/// another coordinator, already name as their parent. Install it in the tracer provider
/// ([`ChosenIds`]); [`emit`] uses it.
#[derive(Debug, Default)]
pub struct ChosenIds(opentelemetry_sdk::trace::RandomIdGenerator);

thread_local! {
    /// The id the next span built on this thread takes, if one was chosen.
    static CHOSEN: std::cell::Cell<Option<SpanId>> = const { std::cell::Cell::new(None) };
}

impl opentelemetry_sdk::trace::IdGenerator for ChosenIds {
    fn new_trace_id(&self) -> TraceId {
        self.0.new_trace_id()
    }

    fn new_span_id(&self) -> SpanId {
        CHOSEN.with(std::cell::Cell::take).unwrap_or_else(|| self.0.new_span_id())
    }
}

/// The span id of what `label` names in run `run` (`step/charge#2`): a UUID v5, so every
/// coordinator computes the same one.
pub fn span_id(run: uuid::Uuid, label: &str) -> SpanId {
    let bytes = uuid::Uuid::new_v5(&run, label.as_bytes()).into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    // The all-zero id is invalid; a v5 UUID's first bytes are that only by a 2^-64 chance.
    if id == [0; 8] {
        id[7] = 1;
    }
    SpanId::from_bytes(id)
}

/// A context whose span is `span` of the trace `of` belongs to (none if `of` has no trace):
/// the parent of a span whose own span is emitted later.
pub fn under(of: &Context, span: SpanId) -> Context {
    let parent = of.span().span_context().clone();
    if !parent.is_valid() {
        return Context::new();
    }
    let cx = SpanContext::new(parent.trace_id(), span, parent.trace_flags(), true, parent.trace_state().clone());
    Context::new().with_remote_span_context(cx)
}

/// A span that already happened, told whole: its id `id`, under `parent`, from `start` to
/// `end`, with `attributes`, and an error status if `error`. Needs [`ChosenIds`] in the
/// provider for the id to be `id`; without a provider it is a no-op.
pub fn emit(
    parent: &Context,
    id: SpanId,
    name: String,
    (start, end): (std::time::SystemTime, std::time::SystemTime),
    attributes: Vec<KeyValue>,
    error: Option<String>,
) {
    if !parent.span().span_context().is_valid() {
        return;
    }
    let tracer = global::tracer("weft");
    let builder = SpanBuilder::from_name(name).with_start_time(start).with_attributes(attributes);
    CHOSEN.with(|c| c.set(Some(id)));
    let mut span = tracer.build_with_context(builder, parent);
    CHOSEN.with(std::cell::Cell::take);
    if let Some(message) = error {
        span.set_status(opentelemetry::trace::Status::error(message));
    }
    span.end_with_timestamp(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_through_headers() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = from_traceparent(tp);
        let mut headers = HeaderMap::new();
        inject_context(&cx, &mut headers);
        assert_eq!(headers.get("traceparent").map(|v| v.as_str()), Some(tp));
        assert!(extract(None).span().span_context().trace_id() == opentelemetry::trace::TraceId::INVALID);
    }

    use opentelemetry::trace::TraceContextExt;
}
