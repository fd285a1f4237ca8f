//! Well-known error codes set by Weft itself (a `ToolError`'s `code`); which are retried
//! is in docs/protocol.md.

/// The attempt ran past its timeout.
pub const TIMEOUT: &str = "TIMEOUT";
/// Params did not resolve or did not fit the tool.
pub const BAD_PARAMS: &str = "BAD_PARAMS";
/// No such tool on the worker that took the task.
pub const UNKNOWN_TOOL: &str = "UNKNOWN_TOOL";
/// The tool panicked.
pub const PANIC: &str = "PANIC";
/// The output is larger than a message may be.
pub const OUTPUT_TOO_LARGE: &str = "OUTPUT_TOO_LARGE";
/// The resolved params are larger than a message may be.
pub const PARAMS_TOO_LARGE: &str = "PARAMS_TOO_LARGE";
/// The run was cancelled while the tool ran.
pub const CANCELLED: &str = "CANCELLED";
/// A condition could not be evaluated.
pub const CONDITION: &str = "CONDITION";
/// A task was delivered more times than a worker allows (workers kept dying on it).
pub const WORKER_LOST: &str = "WORKER_LOST";
/// The `http` tool could not reach the server.
pub const NETWORK: &str = "NETWORK";
/// The `transform` tool's jq filter failed.
pub const FILTER_ERROR: &str = "FILTER_ERROR";
/// A sub-workflow did not complete (or could not start).
pub const CHILD_FAILED: &str = "CHILD_FAILED";
/// A `loop` reached `max_iterations` before its `until` held.
pub const MAX_ITERATIONS: &str = "MAX_ITERATIONS";
/// A construct's body failed (the message says which step and why).
pub const BODY_FAILED: &str = "BODY_FAILED";
/// A model provider refused for now (HTTP 429); retried after its `Retry-After`.
pub const RATE_LIMITED: &str = "RATE_LIMITED";
/// A model provider failed (HTTP 5xx, or an answer that is not Chat Completions); retryable.
pub const PROVIDER_UNAVAILABLE: &str = "PROVIDER_UNAVAILABLE";
/// A model provider refused the request as it is (HTTP 4xx other than 429); not retried.
pub const PROVIDER_REJECTED: &str = "PROVIDER_REJECTED";
/// The provider refused the API key (HTTP 401 or 403); not retried.
pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
/// The messages do not fit the model's context window; not retried.
pub const CONTEXT_LENGTH: &str = "CONTEXT_LENGTH";
/// A model's structured answer still did not match its JSON Schema after the repairs.
pub const SCHEMA_MISMATCH: &str = "SCHEMA_MISMATCH";
/// A model-written plan was still invalid after its repairs.
pub const PLAN_INVALID: &str = "PLAN_INVALID";
/// An MCP tool answered with `isError: true`: the tool ran and failed (not retried; the
/// message is the tool's text).
pub const MCP_TOOL_ERROR: &str = "MCP_TOOL_ERROR";
/// An MCP server refused the call (a JSON-RPC error: unknown tool, invalid arguments) or
/// answered with something that is not a tool result.
pub const MCP_ERROR: &str = "MCP_ERROR";
/// An MCP server cannot be reached for now (its process died and is being restarted, its
/// URL does not answer): retried.
pub const MCP_UNAVAILABLE: &str = "MCP_UNAVAILABLE";
