//! The worker's Prometheus metrics, by tool: calls and how they ended, how long they ran,
//! tasks in flight, redeliveries (a worker died or did not answer in time), and the sizes
//! of results. Served by `weft-worker --metrics ADDR` ([`weft_service::metrics::serve`]).
//! Process-wide, like logs.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use weft_service::metrics::{bytes_buckets, seconds_buckets};

/// Labels of a tool's metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

/// Labels of a call's end.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    outcome: String,
}

type Histograms = Family<ToolLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    duration: Histograms,
    in_flight: Family<ToolLabels, Gauge>,
    redeliveries: Family<ToolLabels, Counter>,
    result_bytes: Histograms,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let calls = Family::<CallLabels, Counter>::default();
    let duration: Histograms = Family::new_with_constructor(|| Histogram::new(seconds_buckets()));
    let in_flight = Family::<ToolLabels, Gauge>::default();
    let redeliveries = Family::<ToolLabels, Counter>::default();
    let result_bytes: Histograms = Family::new_with_constructor(|| Histogram::new(bytes_buckets()));
    let mut registry = Registry::with_prefix("weft_worker");
    registry.register(
        "calls",
        "Tool calls ended, by tool and outcome (ok, error, worker_lost: delivered too often to try again)",
        calls.clone(),
    );
    registry.register_with_unit("call_duration", "Time a tool call ran, by tool", Unit::Seconds, duration.clone());
    registry.register("tasks_in_flight", "Tasks being worked on, by tool", in_flight.clone());
    registry.register(
        "redeliveries",
        "Tasks delivered again (a worker died or did not answer within the ack wait), by tool",
        redeliveries.clone(),
    );
    registry.register_with_unit("result", "Sizes of results published, by tool", Unit::Bytes, result_bytes.clone());
    Metrics { registry, calls, duration, in_flight, redeliveries, result_bytes }
});

/// The registry of every worker metric, for the endpoint.
pub fn registry() -> &'static Registry {
    &METRICS.registry
}

fn tool(name: &str) -> ToolLabels {
    ToolLabels { tool: name.to_owned() }
}

/// A task of `tool` being worked on: counted in flight until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(ToolLabels);

impl InFlight {
    /// Counts a task of `tool`; `delivered` is its delivery count.
    pub(crate) fn start(name: &str, delivered: i64) -> InFlight {
        let labels = tool(name);
        if delivered > 1 {
            METRICS.redeliveries.get_or_create(&labels).inc();
        }
        METRICS.in_flight.get_or_create(&labels).inc();
        InFlight(labels)
    }

    /// The call ended with `outcome` after `ms`; its result is `bytes` long.
    pub(crate) fn ended(&self, outcome: &str, ms: u64, bytes: usize) {
        let labels = CallLabels { tool: self.0.tool.clone(), outcome: outcome.to_owned() };
        METRICS.calls.get_or_create(&labels).inc();
        METRICS.duration.get_or_create(&self.0).observe(ms as f64 / 1000.0);
        METRICS.result_bytes.get_or_create(&self.0).observe(bytes as f64);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.in_flight.get_or_create(&self.0).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_counted_in_flight_until_it_ends() {
        let call = InFlight::start("metrics_test_tool", 2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry()).expect("encodes");
        assert!(text.contains("weft_worker_tasks_in_flight{tool=\"metrics_test_tool\"} 1"), "{text}");
        assert!(text.contains("weft_worker_redeliveries_total{tool=\"metrics_test_tool\"} 1"), "{text}");
        call.ended("ok", 12, 40);
        drop(call);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry()).expect("encodes");
        assert!(text.contains("weft_worker_tasks_in_flight{tool=\"metrics_test_tool\"} 0"), "{text}");
        assert!(text.contains("weft_worker_calls_total{tool=\"metrics_test_tool\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("weft_worker_call_duration_seconds_count{tool=\"metrics_test_tool\"} 1"), "{text}");
    }
}
