//! `weft-protocol`: how Weft's processes talk, for any process that takes part (a
//! coordinator, a worker in Rust or another language, a client, the UI).
//!
//! Messages are JSON ([`wire`], one module per family); they travel on the NATS subjects
//! and JetStream streams and buckets named in [`subjects`], which [`topology`] creates.
//! Trace context rides in message headers ([`trace`]). What crosses NATS is described for
//! other languages in `docs/protocol.md`.
//!
//! # Layout
//!
//! - [`wire`]: tasks and results, API requests and answers, run records, events, tool
//!   advertisements, error codes.
//! - [`subjects`]: every subject, stream, consumer and bucket name.
//! - [`topology`]: creates the streams and buckets, with their retention.
//! - [`definitions`]: registered workflow definitions, read the same way by everyone.
//! - [`nats_url`]: NATS URLs with credentials, redacted for messages.
//! - [`trace`]: W3C trace context in NATS headers.
//! - [`retry`]: the one retry policy: named backoffs with a deadline.

pub mod definitions;
pub mod nats_url;
pub mod retry;
pub mod subjects;
pub mod topology;
pub mod trace;
pub mod wire;
