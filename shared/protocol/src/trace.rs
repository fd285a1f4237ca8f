//! Trace context across NATS: W3C `traceparent`/`tracestate` in message headers, so one
//! trace follows a run through the client, the coordinators and the workers.
//!
//! [`inject`] before a publish, [`extract`] on receipt, then `span.set_parent(cx)` before
//! the span is entered. A run's spans are short and joined by context: the submit's
//! `traceparent` is stored with the run's creation ([`traceparent`], [`from_traceparent`]).

use async_nats::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
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
