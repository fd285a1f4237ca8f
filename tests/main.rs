//! Weft's integration tests, compiled into one binary.
//!
//! - [`cli`]: the `weft` binary on real files: exit codes, messages, analysis, drawings.
//! - [`runtime`]: nats-server, coordinator and worker processes running workflows.

mod cli;
mod runtime;
