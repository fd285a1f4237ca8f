//! Tools advertised by workers (KV `weft_tools`).

use serde::{Deserialize, Serialize};

use super::Millis;

/// A tool advertised by a worker (KV `weft_tools`, key `<tool>.<worker>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advertisement {
    /// The tool's contract.
    pub spec: weft_lang::catalogue::ToolSpec,
    /// The worker offering it.
    pub worker: String,
    /// Its concurrency limit on that worker.
    pub concurrency: usize,
    /// When it was (re)advertised.
    pub at_ms: Millis,
}
