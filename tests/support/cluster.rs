//! Weft as separate processes: a nats-server, a coordinator and workers, each stopped
//! by pid when dropped, with their logs kept for failure messages.

use std::time::{Duration, Instant};

use weft_client::WeftClient;

use crate::bin;
use crate::nats_server::NatsServer;

pub use crate::process::Proc;

/// Starts one of the workspace's binaries for a test (panics, with the reason, if it
/// cannot).
pub fn spawn(name: &str, binary: &str, args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Proc {
    Proc::start(name, &bin(binary), args, env, dir).unwrap_or_else(|e| panic!("{e:#}"))
}

/// NATS, coordinators and workers.
#[derive(Debug)]
pub struct Cluster {
    /// The server.
    pub nats: NatsServer,
    /// The (first) coordinator.
    pub coordinator: Proc,
    /// More coordinators, `c2`, `c3`...
    pub more_coordinators: Vec<Proc>,
    /// The workers, `w1`, `w2`...
    pub workers: Vec<Proc>,
    dir: tempfile::TempDir,
    restarts: usize,
    /// Coordinators killed by [`Cluster::crash_coordinator`], kept for their logs.
    pub crashed: Vec<Proc>,
}

/// Settings that make failures show up fast in tests.
pub const FAST: &[(&str, &str)] = &[("WEFT_PIN_TIMEOUT", "2"), ("WEFT_ACK_WAIT", "3s")];

impl Cluster {
    /// Starts everything; workers serve the demo tools. Returns once every worker's tools
    /// are advertised.
    pub async fn start(workers: usize) -> Cluster {
        Cluster::start_with(1, workers, &[]).await
    }

    /// Starts `coordinators` coordinators and `workers` workers with extra environment.
    pub async fn start_with(coordinators: usize, workers: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_on(NatsServer::start(), coordinators, workers, env).await
    }

    /// The same on a server the test prepared (a stream it created with its own settings).
    pub async fn start_on(nats: NatsServer, coordinators: usize, workers: usize, env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("log dir");
        let url = nats.url.clone();
        let coordinator = spawn("coordinator", "weft-coordinator", &["--nats", &url], env, dir.path());
        let more_coordinators = (2..=coordinators)
            .map(|i| spawn(&format!("c{i}"), "weft-coordinator", &["--nats", &url], env, dir.path()))
            .collect();
        let workers = (1..=workers)
            .map(|i| {
                let id = format!("w{i}");
                spawn(&id, "weft-worker", &["--nats", &url, "--demo-tools", "--id", &id], env, dir.path())
            })
            .collect();
        let cluster = Cluster { nats, coordinator, more_coordinators, workers, dir, restarts: 0, crashed: Vec::new() };
        cluster.wait_ready().await;
        cluster
    }

    /// Kills the coordinator with SIGKILL and starts a new one in its place.
    pub fn crash_coordinator(&mut self, env: &[(&str, &str)]) {
        self.coordinator.kill();
        self.restarts += 1;
        let name = format!("coordinator-{}", self.restarts);
        let url = self.nats.url.clone();
        let next = spawn(&name, "weft-coordinator", &["--nats", &url], env, self.dir.path());
        self.crashed.push(std::mem::replace(&mut self.coordinator, next));
    }

    /// A client of this cluster.
    pub async fn client(&self) -> WeftClient {
        WeftClient::connect(&self.nats.url).await.expect("client connects")
    }

    /// Waits until every worker advertises and the coordinator answers.
    pub async fn wait_ready(&self) {
        let client = self.client().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let workers: std::collections::BTreeSet<String> =
                client.tools().await.unwrap_or_default().into_iter().map(|a| a.worker).collect();
            let answering = client.list(Some(1)).await.is_ok();
            if answering && self.workers.iter().all(|w| workers.contains(&w.name)) {
                return;
            }
            assert!(Instant::now() < deadline, "cluster not ready:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts one more worker.
    pub fn add_worker(&mut self, id: &str, env: &[(&str, &str)]) {
        self.add_worker_with(id, &["--demo-tools"], env);
    }

    /// Starts one more worker with these arguments besides its NATS URL and id.
    pub fn add_worker_with(&mut self, id: &str, args: &[&str], env: &[(&str, &str)]) {
        let url = self.nats.url.clone();
        let mut all = vec!["--nats", &url, "--id", id];
        all.extend_from_slice(args);
        self.workers.push(spawn(id, "weft-worker", &all, env, self.dir.path()));
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for c in &self.crashed {
            out.push_str(&format!("--- {} (crashed)\n{}", c.name, c.logs()));
        }
        out.push_str(&format!("--- {}\n{}", self.coordinator.name, self.coordinator.logs()));
        for c in &self.more_coordinators {
            out.push_str(&format!("--- {}\n{}", c.name, c.logs()));
        }
        for w in &self.workers {
            out.push_str(&format!("--- {}\n{}", w.name, w.logs()));
        }
        out
    }
}
