//! The wire protocol: every message between clients, coordinators and workers, as JSON.
//!
//! A worker in any language with a NATS client can take part: pull [`Task`]s from its
//! tool's subject, publish a [`TaskResult`] on the result subject, and ack the task (see
//! `docs/protocol.md`). Subjects are in [`crate::subjects`]. One module per family of
//! messages: tasks and results, the API, run records, events, advertisements, error codes.

mod advertisement;
mod api;
pub mod codes;
mod event;
mod pool;
mod record;
mod task;

pub use advertisement::Advertisement;
pub use api::{ApiError, ApiErrorCode, ApiReply, ApiRequest, Submit, fingerprint};
pub use event::{Event, EventKind};
pub use pool::{Claim, Pool, PoolView};
pub use record::{
    Attempt, CompensationRecord, IndexEntry, ParentRef, PlanRound, RerunOf, RunRecord, RunStatus, RunSummary,
    SignalRecord, Spend, StepRecord, StepStatus,
};
pub use task::{CancelTask, Delta, Outcome, Task, TaskResult, ToolError, Usage};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}
