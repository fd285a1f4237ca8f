//! Weft as separate processes, built on `tests/support`'s [`Proc`]: a nats-server (JetStream, file
//! store, default sync) on a free loopback port, a coordinator and workers, each stopped
//! by pid when dropped, with their logs kept in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use weft_client::WeftClient;

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// Directory of `weft-coordinator` and `weft-worker`.
    pub dir: PathBuf,
    /// The nats-server binary.
    pub nats_server: PathBuf,
}

impl Bins {
    /// `dir` (else `WEFT_BIN_DIR`, else this executable's directory) and `NATS_SERVER`
    /// (else the project's venv, else PATH). Fails with the fix if a binary is missing.
    pub fn locate(dir: Option<PathBuf>) -> anyhow::Result<Bins> {
        let dir = match dir.or_else(|| std::env::var_os("WEFT_BIN_DIR").map(PathBuf::from)) {
            Some(dir) => dir,
            None => std::env::current_exe()?.parent().map(Path::to_path_buf).context("executable directory")?,
        };
        for name in ["weft-coordinator", "weft-worker"] {
            if !dir.join(name).exists() {
                bail!(
                    "{} is missing: build the workspace's binaries first (`cargo build --release --workspace --bins`) \
                     or pass --bin-dir",
                    dir.join(name).display()
                );
            }
        }
        Ok(Bins { dir, nats_server: weft_tests::nats_server::binary() })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

pub use weft_tests::process::Proc;

/// Starts a process with its environment given as owned values.
fn start(name: &str, binary: &Path, args: &[&str], env: &[(&str, String)], dir: &Path) -> anyhow::Result<Proc> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Proc::start(name, binary, args, &env, dir)
}

/// A nats-server with JetStream and a temporary file store.
#[derive(Debug)]
pub struct NatsServer {
    proc: Proc,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start(bins: &Bins, log_dir: &Path) -> anyhow::Result<NatsServer> {
        let store = tempfile::tempdir()?;
        let store_dir = store.path().join("js").display().to_string();
        let ports_dir = store.path().join("ports");
        let mut args = vec!["-a".to_owned(), "127.0.0.1".to_owned()];
        args.extend(weft_tests::ports::chosen_by_server(&ports_dir));
        args.extend(["-js".to_owned(), "-sd".to_owned(), store_dir]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = Proc::start("nats-server", &bins.nats_server, &args, &[], log_dir)
            .context("run deploy/setup.sh to install nats-server, or set NATS_SERVER")?;
        let pid = proc.pid().context("nats-server exited at once")?;
        let port = match weft_tests::ports::read(&ports_dir, pid) {
            Ok(ports) => ports.client,
            Err(e) => bail!("{e}: {}", proc.logs()),
        };
        Ok(NatsServer { proc, url: format!("nats://127.0.0.1:{port}"), _store: store })
    }

    /// Its pid.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
}

/// How a cluster is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker processes.
    pub workers: usize,
    /// `WEFT_CONCURRENCY` of the workers (one limit for every tool), else each tool's own.
    pub worker_concurrency: Option<usize>,
    /// `WEFT_PIN_TIMEOUT` of the coordinator, in seconds.
    pub pin_timeout_s: u64,
    /// `RUST_LOG` of the services.
    pub rust_log: String,
    /// More environment for the coordinator (limits raised for a scenario).
    pub coordinator_env: Vec<(&'static str, String)>,
    /// More environment for the workers (a model provider for a scenario).
    pub worker_env: Vec<(&'static str, String)>,
    /// More arguments for the workers (MCP servers for a scenario).
    pub worker_args: Vec<String>,
}

/// NATS, a coordinator and workers.
#[derive(Debug)]
pub struct Cluster {
    /// The server.
    pub nats: NatsServer,
    /// The coordinator.
    pub coordinator: Proc,
    /// The workers.
    pub workers: Vec<Proc>,
    /// Coordinators killed by [`Cluster::crash_coordinator`], kept for their logs.
    pub crashed: Vec<Proc>,
    bins: Bins,
    settings: Settings,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts everything and waits until every worker advertises its tools and the
    /// coordinator answers.
    pub async fn start(bins: &Bins, settings: Settings) -> anyhow::Result<Cluster> {
        // WEFT_BENCH_KEEP_LOGS=1 keeps the processes' logs for a look afterwards.
        let keep = std::env::var_os("WEFT_BENCH_KEEP_LOGS").is_some();
        let dir = tempfile::Builder::new().prefix("weft-bench-").disable_cleanup(keep).tempdir()?;
        if keep {
            eprintln!("   logs in {}", dir.path().display());
        }
        let nats = NatsServer::start(bins, dir.path())?;
        let coordinator = start_coordinator("coordinator", bins, &settings, &nats.url, dir.path())?;
        let mut workers = Vec::new();
        for i in 1..=settings.workers {
            let id = format!("w{i}");
            let mut env = vec![("RUST_LOG", settings.rust_log.clone()), ("WEFT_LOG_JSON", "true".to_owned())];
            if let Some(c) = settings.worker_concurrency {
                env.push(("WEFT_CONCURRENCY", c.to_string()));
            }
            env.extend(settings.worker_env.iter().cloned());
            let mut args = vec!["--nats", &nats.url, "--id", &id];
            args.extend(settings.worker_args.iter().map(String::as_str));
            workers.push(start(&id, &bins.path("weft-worker"), &args, &env, dir.path())?);
        }
        let mut cluster =
            Cluster { nats, coordinator, workers, crashed: Vec::new(), bins: bins.clone(), settings, dir };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Where the processes' logs are (for a scenario's own processes).
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new connection to the cluster.
    pub async fn client(&self) -> anyhow::Result<WeftClient> {
        Ok(WeftClient::connect(&self.nats.url).await?)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let advertising: std::collections::BTreeSet<String> =
                client.tools().await.unwrap_or_default().into_iter().map(|a| a.worker).collect();
            let answering = client.list(Some(1)).await.is_ok();
            if answering && self.workers.iter().all(|w| advertising.contains(&w.name)) {
                return Ok(());
            }
            let exited = self.coordinator.exited() || self.workers.iter_mut().any(Proc::exited);
            if exited || Instant::now() > deadline {
                let why = if exited { "a process exited" } else { "not ready after 60 s" };
                bail!("cluster did not start ({why}):\n{}", self.logs_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the coordinator with SIGKILL and starts a new one in its place at once.
    pub fn crash_coordinator(&mut self) -> anyhow::Result<()> {
        self.coordinator.kill();
        let name = format!("coordinator-{}", self.crashed.len() + 2);
        let next = start_coordinator(&name, &self.bins, &self.settings, &self.nats.url, self.dir.path())?;
        self.crashed.push(std::mem::replace(&mut self.coordinator, next));
        Ok(())
    }

    /// The processes to measure: nats-server, the coordinator, each worker.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        out.extend(self.nats.pid().map(|p| ("nats-server".to_owned(), p)));
        out.extend(self.coordinator.pid().map(|p| ("coordinator".to_owned(), p)));
        out.extend(self.workers.iter().filter_map(|w| w.pid().map(|p| (w.name.clone(), p))));
        out
    }

    /// Warnings and errors the processes logged: process (restarted coordinators under one
    /// name), message, count.
    pub fn warnings(&self) -> Vec<(String, String, usize)> {
        let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
        let procs = [&self.nats.proc].into_iter().chain(&self.crashed).chain([&self.coordinator]).chain(&self.workers);
        for p in procs {
            let name = if p.name.starts_with("coordinator") { "coordinator" } else { p.name.as_str() };
            for line in p.logs().lines() {
                if let Some(message) = warning(line) {
                    *counts.entry((name.to_owned(), message)).or_default() += 1;
                }
            }
        }
        counts.into_iter().map(|((name, message), n)| (name, message, n)).collect()
    }

    /// The last `lines` lines of every process's log, for error messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        let tail = |text: String| {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        };
        let mut out = format!("--- nats-server\n{}\n", tail(self.nats.proc.logs()));
        for p in self.crashed.iter().chain([&self.coordinator]).chain(&self.workers) {
            out.push_str(&format!("--- {}\n{}\n", p.name, tail(p.logs())));
        }
        out
    }
}

fn start_coordinator(name: &str, bins: &Bins, settings: &Settings, url: &str, dir: &Path) -> anyhow::Result<Proc> {
    let mut env = vec![
        ("RUST_LOG", settings.rust_log.clone()),
        ("WEFT_PIN_TIMEOUT", settings.pin_timeout_s.to_string()),
        // JSON lines, so the recovery scenario can read when each partition was taken over.
        ("WEFT_LOG_JSON", "true".to_owned()),
    ];
    env.extend(settings.coordinator_env.iter().cloned());
    start(name, &bins.path("weft-coordinator"), &["--nats", url], &env, dir)
}

/// The message of a warning or error line of any of the processes' log formats.
fn warning(line: &str) -> Option<String> {
    let message = if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let level = v["level"].as_str()?;
        if level != "WARN" && level != "ERROR" {
            return None;
        }
        format!("{level} {}", v["fields"]["message"].as_str().unwrap_or_default())
    } else if let Some(i) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) {
        line[i + 1..].to_owned()
    } else if let Some(i) = line.find("[WRN]").or_else(|| line.find("[ERR]")) {
        format!("nats-server {}", &line[i..])
    } else {
        return None;
    };
    // Ids and numbers differ from line to line: keep the start, where the message is.
    Some(message.chars().take(120).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_warnings_out_of_every_log_format() {
        let json =
            r#"{"timestamp":"t","level":"WARN","fields":{"message":"finished run's log not purged","run_id":"x"}}"#;
        assert_eq!(warning(json).as_deref(), Some("WARN finished run's log not purged"));
        assert_eq!(warning(r#"{"level":"INFO","fields":{"message":"partition owned"}}"#), None);
        let nats = "[1] 2026/11/23 17:09:53.946224 [WRN] JetStream resource limits exceeded";
        assert_eq!(warning(nats).as_deref(), Some("nats-server [WRN] JetStream resource limits exceeded"));
        assert_eq!(warning("[1] 2026/11/23 17:09:53.946224 [INF] Server is ready"), None);
    }
}
