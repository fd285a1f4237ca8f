//! The machine and the versions a run was made with.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Where the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores the OS offers (`nproc`).
    pub cores: usize,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Memory (`/proc/meminfo` MemTotal), in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run began: other work on the machine.
    pub load_at_start: f64,
    /// `rustc --version`.
    pub rustc: String,
    /// `nats-server --version`.
    pub nats_server: String,
    /// This workspace's version.
    pub weft: String,
    /// `git describe`-like commit of the working tree, `+dirty` if it has changes.
    pub commit: String,
    /// Directory of the binaries measured, and whether it looks like a release build.
    pub binaries: String,
    /// When the run began (UTC, RFC 3339).
    pub date: String,
}

fn run(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn first_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

impl Machine {
    /// Looks the machine up.
    pub fn probe(bins: &crate::cluster::Bins) -> Machine {
        let root = crate::repo_root();
        let commit = run("git", &["rev-parse", "--short", "HEAD"], Some(&root));
        let dirty = !run("git", &["status", "--porcelain"], Some(&root)).is_empty();
        let memory_kb: u64 = first_field("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        let profile = if bins.dir.ends_with("release") {
            "release"
        } else if bins.dir.ends_with("debug") {
            "debug: figures are not representative"
        } else {
            "profile unknown"
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: first_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".to_owned()),
            memory_mib: memory_kb / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
            load_at_start: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
                .unwrap_or(0.0),
            rustc: run("rustc", &["--version"], None),
            nats_server: run(&bins.nats_server.display().to_string(), &["--version"], None),
            weft: env!("CARGO_PKG_VERSION").to_owned(),
            commit: if dirty { format!("{commit}+dirty") } else { commit },
            binaries: format!("{} ({profile})", bins.dir.display()),
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    /// One line for the markdown report.
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB, Linux {}; {}; {}; weft {} ({}); load average {:.2} at start",
            self.cores,
            self.cpu,
            self.memory_mib as f64 / 1024.0,
            self.kernel,
            self.rustc,
            self.nats_server,
            self.weft,
            self.commit,
            self.load_at_start
        )
    }
}
