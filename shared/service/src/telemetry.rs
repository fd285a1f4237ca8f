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
//! Trace context crosses NATS in message headers: see `weft_protocol::trace`.

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
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

/// What a service logs and traces unless `RUST_LOG` says otherwise: ractor wraps each
/// actor's life in an info span (a root trace of its own); async-nats logs every
/// connection; rmcp every MCP session's handshake and notification (the worker logs what
/// matters of them itself).
const SERVICE_FILTER: &str = "info,ractor=warn,async_nats=warn,rmcp=warn";

/// Sets up logs (and traces if configured) for a service whose name defaults to
/// `service`. Must run inside a multi-thread tokio runtime (the exporter needs it).
pub fn init(service: &str, json: bool) -> Telemetry {
    setup(service, SERVICE_FILTER, json, true, None)
}

/// The same for a service that names its instance (`service.instance.id` in traces: a
/// worker's id).
pub fn init_instance(service: &str, json: bool, instance: &str) -> Telemetry {
    setup(service, SERVICE_FILTER, json, true, Some(instance))
}

/// For a command line: warnings only unless `RUST_LOG` says more, and traces only if
/// `traced` (a command that only reads makes none).
pub fn init_client(service: &str, traced: bool) -> Telemetry {
    setup(service, "warn", false, traced, None)
}

fn setup(service: &str, default_filter: &str, json: bool, traced: bool, instance: Option<&str>) -> Telemetry {
    // Logs follow RUST_LOG; spans are what Weft records, at info, whatever the log level
    // (a command line logs warnings only but still traces its requests).
    let logs = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = (traced && tracing_enabled()).then(|| build_provider(service, instance)).flatten();
    // Spans carry what Weft records, not the layer's defaults: no busy/idle times, no
    // thread or source-code attributes.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("weft"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(EnvFilter::new(SERVICE_FILTER))
    });
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let base = tracing_subscriber::registry().with(otel);
    // An error means a subscriber is already set (tests embedding a service): keep it.
    let _ = if json {
        base.with(fmt.json().with_filter(logs)).try_init()
    } else {
        base.with(fmt.with_filter(logs)).try_init()
    };
    Telemetry { provider }
}

fn build_provider(service: &str, instance: Option<&str>) -> Option<SdkTracerProvider> {
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tracing off: cannot build the OTLP exporter: {e}");
            return None;
        }
    };
    let mut resource =
        Resource::builder().with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if let Some(instance) = instance {
        resource = resource.with_attribute(opentelemetry::KeyValue::new("service.instance.id", instance.to_owned()));
    }
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    // Weft chooses the ids of the spans it tells after the fact (weft_protocol::trace::emit).
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .with_id_generator(weft_protocol::trace::ChosenIds::default())
        .build();
    global::set_tracer_provider(provider.clone());
    let _ = FLUSHED_AT_EXIT.set(provider.clone());
    Some(provider)
}

/// The provider, for [`flush`].
static FLUSHED_AT_EXIT: std::sync::OnceLock<SdkTracerProvider> = std::sync::OnceLock::new();

/// Exports the spans ended so far, for a process about to exit without unwinding (a
/// command line whose output pipe closed). Blocks until the exporter is done.
pub fn flush() {
    if let Some(provider) = FLUSHED_AT_EXIT.get() {
        let _ = provider.force_flush();
    }
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
