//! The [`Tool`] trait: what a worker can run, and the context each call gets.
//!
//! A tool is a name, a version, a description and the JSON Schema of its params (its
//! [`ToolSpec`]), plus an async `call`. The executor checks params against the schema
//! before calling, enforces the task's timeout, turns panics into errors and cancels
//! calls through [`ToolContext::cancel`]; a tool only has to do its work and, if it waits
//! for long, return early when the token fires.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use weft_lang::catalogue::ToolSpec;
use weft_protocol::wire::{ToolError, Usage, codes};

/// How many calls of one tool a worker runs at once unless the tool says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// A function a worker exposes to workflows.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name (tokens of letters, digits, `_` and `-`, separated by `.`), version, description,
    /// params schema.
    /// Read once, when the tool is registered.
    fn spec(&self) -> ToolSpec;

    /// How many calls this worker runs at once (default [`DEFAULT_CONCURRENCY`]).
    fn concurrency(&self) -> usize {
        DEFAULT_CONCURRENCY
    }

    /// Runs the tool. `params` already fit [`Tool::spec`]'s schema.
    async fn call(&self, params: Value, ctx: ToolContext) -> Result<Value, ToolError>;

    /// Called once the worker is connected, before any call: a tool that uses NATS itself
    /// (a rate limit shared with other workers, a stream of deltas) keeps what it needs.
    async fn connected(&self, _nats: &Connected) {}
}

/// The worker's NATS connection and buckets, for tools that use them.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The connection (core NATS publishes).
    pub client: async_nats::Client,
    /// The buckets.
    pub infra: weft_protocol::topology::Infra,
}

/// What a call knows about where it comes from.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The run.
    pub run_id: Uuid,
    /// The step (for a compensation, the step being undone).
    pub step_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Stable across retries and redeliveries of the step: use it to make effects exactly-once.
    pub idempotency_key: String,
    /// Whether this call undoes a step.
    pub compensation: bool,
    /// Fires when the call should stop: cancelled run, timeout, or worker shutdown.
    pub cancel: CancellationToken,
    /// Where a tool that calls a model reports the tokens it spent; they travel in the
    /// result, and budgets settle on them.
    pub usage: UsageMeter,
}

/// The tokens one call spent, added up over the requests it made.
#[derive(Debug, Clone, Default)]
pub struct UsageMeter(Arc<Mutex<Option<Usage>>>);

impl UsageMeter {
    /// Adds one request's usage.
    pub fn add(&self, usage: &Usage) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(total) => total.add(usage),
            None => *slot = Some(usage.clone()),
        }
    }

    /// What was spent, if anything was reported.
    pub fn take(&self) -> Option<Usage> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Default for ToolContext {
    /// A first attempt of nothing in particular, for tests and local calls.
    fn default() -> ToolContext {
        ToolContext {
            run_id: Uuid::nil(),
            step_id: String::new(),
            attempt: 1,
            idempotency_key: String::new(),
            compensation: false,
            cancel: CancellationToken::new(),
            usage: UsageMeter::default(),
        }
    }
}

/// Reads params into a typed struct; a mismatch is a permanent `BAD_PARAMS` error.
pub fn parse_params<T: DeserializeOwned>(tool: &str, params: Value) -> Result<T, ToolError> {
    serde_json::from_value(params).map_err(|e| bad_params(format!("tool `{tool}`: {e}")))
}

/// A permanent `BAD_PARAMS` error: retrying the same params cannot help.
pub fn bad_params(message: impl Into<String>) -> ToolError {
    ToolError::new(message).with_code(codes::BAD_PARAMS).permanent()
}

/// The error a tool returns when its call was cancelled (permanent: the run stopped it).
pub fn cancelled(tool: &str) -> ToolError {
    ToolError::new(format!("tool `{tool}` was cancelled")).with_code(codes::CANCELLED).permanent()
}
