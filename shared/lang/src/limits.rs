//! Limits: how much one workflow may ask of Weft, so that no definition (a hostile one, or
//! a mistake) exhausts a coordinator. Each is configurable; each exceeded limit is an error
//! with the code `LIMIT_EXCEEDED` that names the limit, its value and where.
//!
//! Definition limits are checked when a workflow is validated ([`Limits`]); run limits are
//! checked by the run's state machine while it runs ([`RunLimits`]), and travel with the
//! run's creation, so a replay on another coordinator applies the same ones.

use serde::{Deserialize, Serialize};

/// The error code of every exceeded limit.
pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";

/// What a definition may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Steps at every depth (`WEFT_MAX_STEPS`, default 10,000).
    pub max_steps: usize,
    /// A `loop`'s `max_iterations` (`WEFT_MAX_ITERATIONS`, default 10,000).
    pub max_iterations: u32,
    /// `matches` conditions (`WEFT_MAX_REGEXES`, default 100); each pattern is at most
    /// 1,000 bytes and compiles to at most 64 KiB.
    pub max_regexes: usize,
    /// The definition's JSON (`WEFT_MAX_DEFINITION_BYTES`, default 1 MiB).
    pub max_definition_bytes: usize,
    /// What each run of it may do.
    pub run: RunLimits,
}

/// What one run may do while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunLimits {
    /// Step instances, nested ones included (`WEFT_MAX_INSTANCES`, default 100,000): a
    /// `for_each` of `for_each`s multiplies.
    pub max_instances: usize,
    /// Items of one `for_each` (`WEFT_MAX_ITEMS`, default 10,000).
    pub max_items: usize,
    /// Tasks on workers at once (`WEFT_MAX_IN_FLIGHT`, default 10,000): more wait, as under
    /// `max_parallel`.
    pub max_in_flight: usize,
    /// Depth of sub-workflows below the run (`WEFT_MAX_DEPTH`, default 8).
    pub max_depth: u32,
    /// Child runs of a root run and all its descendants (`WEFT_MAX_CHILDREN`, default 1,000).
    pub max_children: u32,
    /// Bytes of step outputs one run holds, as JSON, constructs' collected outputs
    /// included (`WEFT_MAX_OUTPUT_BYTES`, default 256 MiB): a step whose output would pass
    /// it fails.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps: 10_000,
            max_iterations: 10_000,
            max_regexes: 100,
            max_definition_bytes: 1 << 20,
            run: RunLimits::default(),
        }
    }
}

impl Default for RunLimits {
    fn default() -> RunLimits {
        RunLimits {
            max_instances: 100_000,
            max_items: 10_000,
            max_in_flight: 10_000,
            max_depth: 8,
            max_children: 1_000,
            max_output_bytes: 256 << 20,
        }
    }
}

/// The message of an exceeded limit: what, by how much, which setting.
pub fn exceeded(what: &str, found: impl std::fmt::Display, limit: impl std::fmt::Display, setting: &str) -> String {
    format!("{what} is {found}, more than the limit of {limit} ({setting}) [{LIMIT_EXCEEDED}]")
}
