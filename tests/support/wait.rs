//! Waiting in tests on what the system says, never on a fixed sleep: a run's record
//! reaching a state, a process logging a line, a fallible call succeeding, each with a
//! deadline and a failure message that shows what was seen.

use std::future::Future;
use std::time::{Duration, Instant};

use uuid::Uuid;
use weft_client::WeftClient;
use weft_protocol::wire::RunRecord;

use crate::process::Proc;

/// How long a wait lasts unless told otherwise.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// Polls the run's record until `check` holds (panics after [`PATIENCE`], showing it).
pub async fn record(client: &WeftClient, run: Uuid, what: &str, check: impl Fn(&RunRecord) -> bool) -> RunRecord {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let record = client.status(run).await.unwrap_or_else(|e| panic!("status of {run}: {e}"));
        if check(&record) {
            return record;
        }
        assert!(Instant::now() < deadline, "never {what}: {record:#?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `proc` has logged `count` lines containing every one of `needles`; returns
/// those lines.
pub async fn log_lines(proc: &Proc, needles: &[&str], count: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let logs = proc.logs();
        let lines: Vec<String> =
            logs.lines().filter(|l| needles.iter().all(|n| l.contains(n))).map(str::to_owned).collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(Instant::now() < deadline, "{} never logged {count} lines with {needles:?}:\n{logs}", proc.name);
        tokio::time::sleep(POLL).await;
    }
}

/// A loopback port nothing listens on now (for a server the test starts on it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Waits (at most 20 s) until something accepts connections on loopback `port` (a server
/// restarted on a port it had before).
pub fn listening(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on 127.0.0.1:{port} after 20 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Calls `f` until it succeeds (panics with its last error after `patience`).
pub async fn until_ok<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    patience: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match f().await {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
