//! Weft's integration tests, compiled into one binary.
//!
//! - [`cli`]: the `weft` binary on real files: exit codes, messages, analysis, drawings.

mod cli;
