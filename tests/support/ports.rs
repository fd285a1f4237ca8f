//! Ports a nats-server chose itself: started with `-p -1` (and `-m -1`) and
//! `--ports_file_dir`, it writes the ports it listens on to `<dir>/nats-server_<pid>.ports`
//! once it listens. No port is picked by binding and releasing it first (another process
//! could take it in between).

use std::path::Path;
use std::time::{Duration, Instant};

/// The ports a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Client connections.
    pub client: u16,
    /// HTTP monitoring, if it serves it.
    pub monitoring: Option<u16>,
}

/// The arguments that make a nats-server choose its client and monitoring ports and
/// write them into `dir` (created here: the server does not create it).
pub fn chosen_by_server(dir: &Path) -> Vec<String> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let mut args: Vec<String> = ["-p", "-1", "-m", "-1", "--ports_file_dir"].iter().map(|s| (*s).to_owned()).collect();
    args.push(dir.display().to_string());
    args
}

/// Waits (at most 20 s) for the ports file of server `pid` in `dir`; `Err` says why not.
pub fn read(dir: &Path, pid: u32) -> Result<Ports, String> {
    let file = dir.join(format!("nats-server_{pid}.ports"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let port = |key: &str| {
                json[key][0].as_str().and_then(|url| url.rsplit(':').next()).and_then(|p| p.parse::<u16>().ok())
            };
            if let Some(client) = port("nats") {
                return Ok(Ports { client, monitoring: port("monitoring") });
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no ports file {} after 20 s", file.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
