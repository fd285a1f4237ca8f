//! Weft's integration tests, compiled into one binary.
