//! A real `nats-server` with JetStream on a loopback port it chooses itself and a
//! temporary store, stopped (by pid) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running nats-server.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    /// Its client port.
    pub port: u16,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    store: tempfile::TempDir,
    log: PathBuf,
}

/// The nats-server binary: `NATS_SERVER`, the project's venv, or PATH.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let venv = crate::repo_root().join(".weft/venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("nats-server")
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> NatsServer {
        let store = tempfile::tempdir().expect("store dir");
        let log = store.path().join("nats.log");
        let mut server = NatsServer { child: None, port: 0, url: String::new(), store, log };
        server.spawn();
        server
    }

    /// Starts the server: on the port it chooses the first time, on the same one after.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("nats log");
        let ports_dir = self.store.path().join("ports");
        let port_args = if self.port == 0 {
            crate::ports::chosen_by_server(&ports_dir)
        } else {
            vec!["-p".to_owned(), self.port.to_string()]
        };
        let child = Command::new(binary())
            .args(["-a", "127.0.0.1"])
            .args(&port_args)
            .args(["-js", "-sd"])
            .arg(self.store.path().join("js"))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (run deploy/setup.sh): {e}", binary().display()));
        let pid = child.id();
        self.child = Some(child);
        if self.port == 0 {
            let ports = crate::ports::read(&ports_dir, pid).unwrap_or_else(|e| panic!("{e}:\n{}", self.logs()));
            self.port = ports.client;
            self.url = format!("nats://127.0.0.1:{}", self.port);
        }
        crate::wait::listening(self.port).unwrap_or_else(|e| panic!("{e}:\n{}", self.logs()));
    }

    /// Stops the server (the store is kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// What the server logged.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
