//! NATS names: subjects, streams, consumers and buckets, in one place.
//!
//! | what | subject | carried by |
//! |---|---|---|
//! | tasks for tool `T` | `weft.task.T` | stream `WEFT_TASKS` (work queue), durable consumer [`tool_consumer`] `tool-T` shared by T's workers |
//! | everything that happens to run `R` (creation, timers, commands; its results on `weft.in.<partition>.R.result`) | `weft.in.<partition>.R` | stream `WEFT_INPUTS` (the run log), pinned consumer `part-<partition>` of the owning coordinator |
//! | lifecycle events of run `R` | `weft.events.R` | stream `WEFT_EVENTS` (kept for a day) |
//! | cancel tools of run `R` | `weft.cancel.R` | core NATS (best effort; the coordinator ignores late results) |
//! | API | `weft.api.<verb>` (`submit`, `status`, `list`, `cancel`, `redrive`, `pause`, `resume`, `signal`, `deploy`, `pools`, `set_pool`) | core NATS request/reply, queue group `weft-coordinators` |
//! | tool advertisements | key `<tool>.<worker>` | KV bucket `weft_tools` (entries expire unless refreshed) |
//! | finished runs | key `R` | KV bucket `weft_runs` |
//! | log entries that could not be read, with where they were and why (headers `Weft-Subject`, `Weft-Seq`, `Weft-Reason`) | `weft.dead.<partition>` | stream `WEFT_DEAD` (kept as long as records) |
//! | runs by creation: one entry per run, in the order they were created | `weft.index.R` | stream `WEFT_RUN_INDEX` (kept as long as records) |
//! | registered definitions | key `<name>.<version>` | KV bucket `weft_definitions` |
//! | resource pools: capacity, holders, waiters | key `pool.<name>` | KV bucket `weft_pools` |

use uuid::Uuid;

/// Stream of tasks.
pub const TASKS_STREAM: &str = "WEFT_TASKS";
/// Stream of every run's inputs (the run log).
pub const INPUTS_STREAM: &str = "WEFT_INPUTS";
/// Stream of lifecycle events.
pub const EVENTS_STREAM: &str = "WEFT_EVENTS";
/// Stream of runs in creation order: one entry per run (`weft list` reads it from the end).
pub const INDEX_STREAM: &str = "WEFT_RUN_INDEX";
/// Stream of log entries that could not be read, moved aside with the reason.
pub const DEAD_STREAM: &str = "WEFT_DEAD";
/// Bucket of tool advertisements.
pub const TOOLS_BUCKET: &str = "weft_tools";
/// Bucket of run records.
pub const RUNS_BUCKET: &str = "weft_runs";
/// Bucket of model rate limits, key `llm.<provider key id>`: the requests of the last
/// minute, shared by every worker calling that provider with that key.
pub const RATES_BUCKET: &str = "weft_rates";

/// Core NATS subject of a run's token deltas (`llm` steps with `stream: true`): not
/// durable; the step's result is.
pub fn deltas(run_id: uuid::Uuid) -> String {
    format!("weft.stream.{run_id}")
}

/// Bucket of resource pools, key `pool.<name>`.
pub const POOLS_BUCKET: &str = "weft_pools";

/// Key of a resource pool.
pub fn pool_key(name: &str) -> String {
    format!("pool.{name}")
}

/// Bucket of registered workflow definitions, key `<name>.<version>`.
pub const DEFINITIONS_BUCKET: &str = "weft_definitions";

/// Key of a registered definition.
pub fn definition_key(name: &str, version: u32) -> String {
    format!("{name}.{version}")
}
/// Queue group of API handlers.
pub const API_QUEUE: &str = "weft-coordinators";

/// Subject of tasks for `tool`.
pub fn task(tool: &str) -> String {
    format!("weft.task.{tool}")
}

/// Every task subject.
pub const TASKS_ALL: &str = "weft.task.>";

/// Durable consumer shared by the workers of `tool`: `tool-<tool>`, or for a dotted name
/// (`memory.create_entities`), the dots made `_` and the name's FNV-1a hash added, since a
/// consumer's name cannot hold a `.` and `a.b_c` and `a_b.c` must stay apart
/// (docs/protocol.md, Tool names).
pub fn tool_consumer(tool: &str) -> String {
    if tool.contains('.') {
        format!("tool-{}-{:016x}", tool.replace('.', "_"), fnv1a64(tool.as_bytes()))
    } else {
        format!("tool-{tool}")
    }
}

/// 64-bit FNV-1a: simple enough for every worker's language to compute the same.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Subject of a run's inputs: its log (creation, timers, commands, signals, grants,
/// children's ends), written by coordinators and the API.
pub fn input(partition: u32, run: Uuid) -> String {
    format!("weft.in.{partition}.{run}")
}

/// The last token of the subject workers publish a run's results to: the same log, a
/// subject of its own, so a worker's user may publish results and nothing else there (no
/// creation, cancel, pause or signal).
pub const RESULT_TOKEN: &str = "result";

/// Subject of a run's results (`weft.in.<partition>.<run>.result`): a task's `reply_to`.
pub fn results(partition: u32, run: Uuid) -> String {
    format!("weft.in.{partition}.{run}.{RESULT_TOKEN}")
}

/// Every input subject.
pub const INPUTS_ALL: &str = "weft.in.>";

/// Every input subject of a partition.
pub fn partition_inputs(partition: u32) -> String {
    format!("weft.in.{partition}.>")
}

/// Subject of a partition's ticks (they tell its owner it owns it, and expire).
pub fn tick(partition: u32) -> String {
    format!("weft.in.{partition}.tick")
}

/// The pinned consumer through which one coordinator owns a partition.
pub fn partition_consumer(partition: u32) -> String {
    format!("part-{partition}")
}

/// The partition a run belongs to, among `partitions`.
pub fn partition_of(run: Uuid, partitions: u32) -> u32 {
    (run.as_u128() % u128::from(partitions.max(1))) as u32
}

/// Subject on which the owner of a run answers questions about it (core NATS).
pub fn query(run: Uuid) -> String {
    format!("weft.query.{run}")
}

/// Every query subject.
pub const QUERY_ALL: &str = "weft.query.*";

/// Subject of a run's entry in the index of runs.
pub fn index(run: Uuid) -> String {
    format!("weft.index.{run}")
}

/// Every index subject.
pub const INDEX_ALL: &str = "weft.index.*";

/// Subject of a partition's unreadable log entries.
pub fn dead(partition: &str) -> String {
    format!("weft.dead.{partition}")
}

/// Every dead-letter subject.
pub const DEAD_ALL: &str = "weft.dead.>";

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

/// Longest tool name: it is part of subjects, KV keys and a consumer's name.
pub const MAX_TOOL_NAME: usize = 128;

/// Whether `name` can name a tool: tokens separated by `.` (`echo`, `memory.read_graph`),
/// at most [`MAX_TOOL_NAME`] bytes.
pub fn is_tool_name(name: &str) -> bool {
    name.len() <= MAX_TOOL_NAME && name.split('.').all(is_token)
}

/// Where a coordinator's replies arrive (its JetStream and request inboxes): each role has
/// its own prefix, which the deployment lets only that role subscribe to, so no worker reads
/// a client's API replies and no client reads a worker's pulled tasks.
pub const INBOX_COORDINATOR: &str = "_INBOX_coordinator";

/// Where a worker's replies arrive (see [`INBOX_COORDINATOR`]).
pub const INBOX_WORKER: &str = "_INBOX_worker";

/// Where a client's replies arrive (`weft`, `WeftClient`; see [`INBOX_COORDINATOR`]).
pub const INBOX_CLIENT: &str = "_INBOX_client";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_dotted_tokens() {
        for good in ["echo", "get_weather", "memory.read_graph", "everything.get-sum", "a.b.c"] {
            assert!(is_tool_name(good), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a/b", "a*", "a>", &"x".repeat(MAX_TOOL_NAME + 1)] {
            assert!(!is_tool_name(bad), "{bad}");
        }
    }

    #[test]
    fn consumers_of_dotted_names_stay_apart_and_plain_names_keep_theirs() {
        assert_eq!(tool_consumer("get_weather"), "tool-get_weather");
        let a = tool_consumer("a.b_c");
        let b = tool_consumer("a_b.c");
        assert_ne!(a, b);
        assert!(a.starts_with("tool-a_b_c-") && !a.contains('.'), "{a}");
        // The documented hash (docs/protocol.md): FNV-1a 64 of the name's bytes.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            tool_consumer("memory.create_entities"),
            format!("tool-memory_create_entities-{:016x}", fnv1a64(b"memory.create_entities"))
        );
    }
}
