//! Logs and traces, set up the same way by every Weft binary.
//!
//! Logs are structured (`tracing`), to stderr, filtered by `RUST_LOG`, as JSON lines on
//! request. Traces are exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and off otherwise or when
//! `OTEL_SDK_DISABLED=true` / `OTEL_TRACES_EXPORTER=none`. The SDK reads the standard
//! variables itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
//! (and `_ARG`), `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_TIMEOUT`. Spans are exported by a
//! background batch processor: a collector that is down costs dropped spans, never a
//! blocked run.
//!
//! Trace context crosses NATS in message headers (W3C `traceparent`/`tracestate`):
//! [`inject`] before a publish, [`extract`] on receipt, then `span.set_parent(cx)` before
//! the span is entered.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What [`init`] set up; call [`Telemetry::shutdown`] before exiting to flush spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

fn tracing_enabled() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Sets up logs (and traces if configured) for a process whose service name defaults to
/// `service`. Must run inside a multi-thread tokio runtime (the exporter needs it).
pub fn init(service: &str, json: bool) -> Telemetry {
    // ractor wraps each actor's life in an info span (a root trace of its own); async-nats
    // logs every connection.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ractor=warn,async_nats=warn"));
    global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracing_enabled().then(|| build_provider(service)).flatten();
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("weft")));
    let base = tracing_subscriber::registry().with(filter).with(otel);
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    // An error means a subscriber is already set (tests embedding a service): keep it.
    let _ = if json { base.with(fmt.json()).try_init() } else { base.with(fmt).try_init() };
    Telemetry { provider }
}

fn build_provider(service: &str) -> Option<SdkTracerProvider> {
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tracing off: cannot build the OTLP exporter: {e}");
            return None;
        }
    };
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    global::set_tracer_provider(provider.clone());
    Some(provider)
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (in a blocking task: the batch processor's shutdown
    /// blocks).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .await;
        }
    }
}

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
