//! Support for Weft's integration tests: finding the workspace's binaries and files.
