//! `weft-service`: what every Weft service binary (coordinator, worker) does the same way.
//!
//! # Layout
//!
//! - [`connect`]: the NATS connection: waits for the server, reconnects, counts reconnections.
//! - [`telemetry`]: logs to stderr (plain, or JSON lines) and OTLP traces when configured.
//! - [`signals`]: SIGINT/SIGTERM cancel a shutdown token; a second one exits at once.
//! - [`metrics`]: the Prometheus endpoint (`GET /metrics`) and the buckets every histogram uses.

pub mod connect;
pub mod metrics;
pub mod signals;
pub mod telemetry;
