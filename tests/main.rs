//! Weft's integration tests, compiled into one binary.
//!
//! - [`cli`]: the `weft` binary on real files: exit codes, messages, analysis, drawings.
//! - [`corners`]: what a new user trips over: listings, checked signals, garbage, the CLI.
//! - [`deploy`]: deploy/nats/'s users, permissions and cluster on a real nats-server.
//! - [`durability`]: SIGKILLed coordinators and workers, a restarted NATS: nothing lost.
//! - [`llm`]: `llm` steps against the scripted OpenAI-compatible server.
//! - [`mcp`]: MCP servers' tools served by a worker: real servers, and one that misbehaves;
//!   `weft mcp` to a real MCP client.
//! - [`metrics`]: the services' Prometheus metrics, scraped by a real Prometheus.
//! - [`planning`]: `plan` steps: model-written workflows checked, repaired, approved and run.
//! - [`redrive`]: failed and cancelled runs carried on from where they stopped, across a takeover; reruns from a step; terminate.
//! - [`in_process`]: the actor layer, with a coordinator and a worker as tasks of the test.
//! - [`hostile`]: forged and malformed entries on the live services: ignored, named, harmless.
//! - [`tracing`]: one trace per run, checked with a real OTLP receiver.
//! - [`runtime`]: nats-server, coordinator and worker processes running workflows.
//! - [`ui`]: `weft ui` in a real headless Chromium, on real runs.

mod cli;
mod corners;
mod deploy;
mod durability;
mod hostile;
mod in_process;
mod llm;
mod mcp;
mod metrics;
mod planning;
mod redrive;
mod runtime;
mod tracing;
mod ui;
