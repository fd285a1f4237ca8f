//! Support for Weft's integration tests: the workspace's files and binaries, a real
//! `nats-server` per test, coordinator and worker processes, and the other real parts
//! tests talk to (an OTLP receiver, a Prometheus server, a scripted model).
//!
//! Binaries are found in `WEFT_BIN_DIR` (set by `tests/run.sh`) or next to the test
//! executable's `deps/` directory, where `cargo build` puts them. `cargo test` alone does
//! not rebuild them: run `tests/run.sh`, or `cargo build --workspace --bins` first.

pub mod browser;
pub mod cluster;
pub mod in_process;
pub mod model;
pub mod nats_server;
pub mod otlp;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod wait;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

/// Path of a program the project's setup installs from npm (`.weft/npm`, or under
/// `WEFT_HOME`); panics with the fix if it is missing.
pub fn npm_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("WEFT_HOME").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".weft"));
    let path = home.join("npm/node_modules/.bin").join(name);
    assert!(path.exists(), "{} is missing: run deploy/setup.sh (it installs the MCP servers from npm)", path.display());
    path
}

/// Path of a workspace binary; panics with the fix if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("WEFT_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/debug/deps/integration-xxxx -> target/debug
        exe.parent().and_then(|deps| deps.parent()).map(PathBuf::from).expect("target dir")
    });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (tests/run.sh does)",
        path.display()
    );
    path
}

/// Runs `weft` with `args` from the repository root.
pub fn weft(args: &[&str]) -> Output {
    Command::new(bin("weft")).args(args).current_dir(repo_root()).output().expect("weft runs")
}

/// Every example workflow file, sorted.
pub fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples", "examples/patterns"] {
        let Ok(entries) = std::fs::read_dir(repo_root().join(dir)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}
