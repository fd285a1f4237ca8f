//! The worker's configuration: one value, passed to [`crate::run`], never global.

use std::path::PathBuf;
use std::time::Duration;

use weft_protocol::subjects;
use weft_protocol::topology::Retention;

use crate::error::WorkerError;

/// How a worker connects and behaves. Every field has a default fit for a local run.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS server URL, or several separated by commas (default `nats://127.0.0.1:4222`).
    pub nats_url: String,
    /// NATS credentials file (default none).
    pub credentials: Option<PathBuf>,
    /// This worker's id, in results and advertisements: letters, digits, `_`, `-`
    /// (default `<hostname>-<pid>`).
    pub worker_id: String,
    /// Serve the demo tools of `examples/tools/catalogue.json` besides the built-ins
    /// (default false).
    pub demo_tools: bool,
    /// How long a task may go unacknowledged before JetStream redelivers it; applied when
    /// the tool's consumer is created. Running tools report progress every third of it
    /// (default 30 s, at least 100 ms).
    pub ack_wait: Duration,
    /// How long running tools may finish after shutdown is asked for; the tasks of tools
    /// still running then are handed back for redelivery (default 30 s).
    pub grace: Duration,
    /// One concurrency limit for every tool, instead of each tool's own (default none).
    pub concurrency: Option<usize>,
    /// How often the tools are re-advertised (default 10 s; advertisements expire after
    /// the bucket's `retention.tools`).
    pub advertise_every: Duration,
    /// A task delivered more often than this is answered with a permanent `WORKER_LOST`
    /// error instead of being run again: its tool probably kills the worker (default 5).
    pub max_deliveries: u32,
    /// Retention of the streams and buckets, used if the worker is the one creating them.
    pub retention: Retention,
    /// Serve the `llm` tool against this provider (default none: no `llm` tool).
    pub llm: Option<crate::llm::LlmConfig>,
    /// Serve the tools of these MCP servers, as `<server>.<tool>` (default none).
    pub mcp: Vec<crate::mcp::McpServer>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            nats_url: "nats://127.0.0.1:4222".into(),
            credentials: None,
            worker_id: default_worker_id(),
            demo_tools: false,
            ack_wait: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            concurrency: None,
            advertise_every: Duration::from_secs(10),
            max_deliveries: 5,
            retention: Retention::default(),
            llm: None,
            mcp: Vec::new(),
        }
    }
}

/// Shortest ack wait accepted: progress is reported every third of it.
const MIN_ACK_WAIT: Duration = Duration::from_millis(100);

impl Config {
    /// Checks what cannot work, with a message that says why.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let invalid = |message: String| Err(WorkerError::Config(message));
        if !subjects::is_token(&self.worker_id) {
            return invalid(format!(
                "worker id {:?} may only hold letters, digits, `_` and `-` (it is part of KV keys)",
                self.worker_id
            ));
        }
        if self.ack_wait < MIN_ACK_WAIT {
            return invalid(format!("ack wait {:?} is shorter than {MIN_ACK_WAIT:?}", self.ack_wait));
        }
        if self.advertise_every.is_zero() {
            return invalid("the advertising interval must be longer than zero".into());
        }
        if self.concurrency == Some(0) {
            return invalid("concurrency must be at least 1".into());
        }
        if self.max_deliveries == 0 {
            return invalid("max deliveries must be at least 1".into());
        }
        crate::mcp::config::check_names(&self.mcp).map_err(|e| WorkerError::Config(e.to_string()))?;
        Ok(())
    }
}

/// `<hostname>-<pid>`, with characters a subject token cannot hold replaced by `-`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let host: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let config = Config::default();
        config.validate().expect("defaults are valid");
        assert!(config.worker_id.ends_with(&format!("-{}", std::process::id())), "{}", config.worker_id);
    }

    #[test]
    fn invalid_values_are_explained() {
        let bad = |config: Config| config.validate().expect_err("invalid").to_string();
        assert!(bad(Config { worker_id: "a.b".into(), ..Config::default() }).contains("worker id \"a.b\""));
        assert!(bad(Config { ack_wait: Duration::ZERO, ..Config::default() }).contains("ack wait"));
        assert!(bad(Config { concurrency: Some(0), ..Config::default() }).contains("concurrency"));
    }
}
