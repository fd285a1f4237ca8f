//! The Weft coordinator: one ractor actor per running workflow holds its state machine
//! and dispatches ready steps to workers over NATS JetStream.
//!
//! # Layout
//!
//! - [`machine`]: the pure state machine of a run (inputs in, effects out).
pub mod machine;
