//! NATS names: subjects, streams, consumers and buckets, in one place.
//!
//! | what | subject | carried by |
//! |---|---|---|
//! | tasks for tool `T` | `weft.task.T` | stream `WEFT_TASKS` (work queue), durable consumer `tool-T` shared by T's workers |
//! | results of run `R` | `weft.result.R` | stream `WEFT_RESULTS` (work queue), consumer `coordinator` |
//! | lifecycle events of run `R` | `weft.events.R` | stream `WEFT_EVENTS` (kept for a day) |
//! | cancel tools of run `R` | `weft.cancel.R` | core NATS (best effort; the coordinator ignores late results) |
//! | API | `weft.api.submit`, `.status`, `.list`, `.cancel` | core NATS request/reply, queue group `weft-coordinators` |
//! | tool advertisements | key `<tool>.<worker>` | KV bucket `weft_tools` (entries expire unless refreshed) |
//! | finished runs | key `R` | KV bucket `weft_runs` |

use uuid::Uuid;

/// Stream of tasks.
pub const TASKS_STREAM: &str = "WEFT_TASKS";
/// Stream of results.
pub const RESULTS_STREAM: &str = "WEFT_RESULTS";
/// Stream of lifecycle events.
pub const EVENTS_STREAM: &str = "WEFT_EVENTS";
/// Bucket of tool advertisements.
pub const TOOLS_BUCKET: &str = "weft_tools";
/// Bucket of run records.
pub const RUNS_BUCKET: &str = "weft_runs";
/// Durable consumer of results.
pub const RESULTS_CONSUMER: &str = "coordinator";
/// Queue group of API handlers.
pub const API_QUEUE: &str = "weft-coordinators";

/// Subject of tasks for `tool`.
pub fn task(tool: &str) -> String {
    format!("weft.task.{tool}")
}

/// Every task subject.
pub const TASKS_ALL: &str = "weft.task.>";

/// Durable consumer shared by the workers of `tool`.
pub fn tool_consumer(tool: &str) -> String {
    format!("tool-{tool}")
}

/// Subject of results of a run.
pub fn result(run: Uuid) -> String {
    format!("weft.result.{run}")
}

/// Every result subject.
pub const RESULTS_ALL: &str = "weft.result.>";

/// Subject of a run's lifecycle events.
pub fn events(run: Uuid) -> String {
    format!("weft.events.{run}")
}

/// Every event subject.
pub const EVENTS_ALL: &str = "weft.events.>";

/// Subject telling workers to stop a run's tools.
pub fn cancel(run: Uuid) -> String {
    format!("weft.cancel.{run}")
}

/// Every cancel subject.
pub const CANCEL_ALL: &str = "weft.cancel.>";

/// API subject of a verb.
pub fn api(verb: &str) -> String {
    format!("weft.api.{verb}")
}

/// Every API subject.
pub const API_ALL: &str = "weft.api.*";

/// Whether `name` can be a subject token (tool names end up in subjects).
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
