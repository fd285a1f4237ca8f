//! `weft-worker`: runs tools for Weft workflows.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use weft_worker::Config;

/// Runs Weft tools: takes tasks from NATS JetStream and answers with results.
#[derive(Debug, Parser)]
#[command(name = "weft-worker", version)]
struct Args {
    /// NATS server URL (several separated by commas; credentials as in nats://user:password@host:4222).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
    nats: String,
    /// NATS credentials file.
    #[arg(long, env = "NATS_CREDS")]
    creds: Option<PathBuf>,
    /// Worker id, in results and advertisements [default: <hostname>-<pid>].
    #[arg(long, env = "WEFT_WORKER_ID")]
    id: Option<String>,
    /// Serve the demo tools of examples/tools/catalogue.json too.
    #[arg(long, env = "WEFT_DEMO_TOOLS")]
    demo_tools: bool,
    /// How long a task may go unacknowledged before it is redelivered (e.g. 30s, 2m).
    #[arg(long, env = "WEFT_ACK_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    ack_wait: Duration,
    /// How long running tools may finish after SIGINT/SIGTERM.
    #[arg(long, env = "WEFT_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// One concurrency limit for every tool, instead of each tool's own.
    #[arg(long, env = "WEFT_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Log as JSON lines.
    #[arg(long, env = "WEFT_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = Config::default();
    let worker_id = args.id.unwrap_or(defaults.worker_id.clone());
    let telemetry = weft_service::telemetry::init_instance("weft-worker", args.log_json, &worker_id);
    let config = Config {
        nats_url: args.nats,
        credentials: args.creds,
        worker_id,
        demo_tools: args.demo_tools,
        ack_wait: args.ack_wait,
        grace: args.grace,
        concurrency: args.concurrency,
        ..defaults
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(weft_service::signals::stop_on_signals(shutdown.clone()));
    tracing::info!(worker = %config.worker_id, nats = %weft_protocol::nats_url::redact(&config.nats_url), demo_tools = config.demo_tools, "starting");
    let result = weft_worker::run(config, shutdown).await;
    telemetry.shutdown().await;
    result?;
    Ok(())
}
