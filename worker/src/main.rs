//! `weft-worker`: runs tools for Weft workflows.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use weft_worker::Config;
use weft_worker::llm::{ApiKey, LlmConfig};

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
    /// Serve the `llm` tool against this Chat Completions API (e.g. https://api.openai.com/v1,
    /// http://127.0.0.1:11434/v1 for Ollama). Setting WEFT_LLM_API_KEY alone means OpenAI's.
    #[arg(long, env = "WEFT_LLM_BASE_URL")]
    llm_base_url: Option<String>,
    /// API key of the `llm` tool's provider (never printed).
    #[arg(long, env = "WEFT_LLM_API_KEY", hide_env_values = true)]
    llm_api_key: Option<String>,
    /// Model of `llm` steps that name none.
    #[arg(long, env = "WEFT_LLM_MODEL")]
    llm_model: Option<String>,
    /// Tokens per minute the provider key may use, shared by every worker using it.
    #[arg(long, env = "WEFT_LLM_TPM", value_parser = per_minute)]
    llm_tpm: Option<PerMinute>,
    /// Requests per minute the provider key may make, shared by every worker using it.
    #[arg(long, env = "WEFT_LLM_RPM", value_parser = per_minute)]
    llm_rpm: Option<PerMinute>,
    /// The window the rate limits count over (a minute; shorter only to test them quickly).
    #[arg(long, env = "WEFT_LLM_RATE_WINDOW", default_value = "60s", value_parser = humantime::parse_duration, hide = true)]
    llm_rate_window: Duration,
    /// Serve an MCP server's tools as `NAME.<tool>`: `NAME=COMMAND [ARGS...]` (stdio; split
    /// on spaces) or `NAME=URL` (Streamable HTTP). Repeatable.
    #[arg(long = "mcp", value_name = "NAME=COMMAND|URL")]
    mcp: Vec<String>,
    /// Serve the MCP servers of this file: `{"mcpServers": {...}}`, as Claude Desktop,
    /// Cursor and VS Code write it (`command`/`args`/`env`, or `url`/`headers`; `${VAR}`
    /// from the environment).
    #[arg(long, env = "WEFT_MCP_CONFIG")]
    mcp_config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "WEFT_LOG_JSON")]
    log_json: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464; empty: none).
    #[arg(long = "metrics", env = "WEFT_METRICS_ADDR", value_name = "ADDR")]
    metrics: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = Config::default();
    let worker_id = args.id.unwrap_or(defaults.worker_id.clone());
    let telemetry = weft_service::telemetry::init_instance("weft-worker", args.log_json, &worker_id);
    let mut mcp = Vec::new();
    if let Some(path) = non_empty(args.mcp_config.map(|p| p.display().to_string())) {
        mcp = weft_worker::mcp::config::read_file(path.as_ref(), &|var| std::env::var(var).ok())?;
    }
    for flag in &args.mcp {
        mcp.push(weft_worker::mcp::config::parse_flag(flag)?);
    }
    let config = Config {
        nats_url: args.nats,
        credentials: args.creds,
        worker_id,
        demo_tools: args.demo_tools,
        ack_wait: args.ack_wait,
        grace: args.grace,
        concurrency: args.concurrency,
        llm: llm_config(args.llm_base_url, args.llm_api_key, args.llm_model).map(|l| LlmConfig {
            tokens_per_minute: args.llm_tpm.and_then(|l| l.0),
            requests_per_minute: args.llm_rpm.and_then(|l| l.0),
            rate_window: args.llm_rate_window,
            ..l
        }),
        mcp,
        ..defaults
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(weft_service::signals::stop_on_signals(shutdown.clone()));
    if let Some(addr) = weft_service::metrics::parse_addr(args.metrics.as_deref())? {
        weft_service::metrics::serve(addr, weft_worker::metrics::registry(), None, shutdown.clone()).await?;
    }
    tracing::info!(worker = %config.worker_id, nats = %weft_protocol::nats_url::redact(&config.nats_url), demo_tools = config.demo_tools, llm = config.llm.as_ref().map(LlmConfig::shown_url), mcp = ?config.mcp.iter().map(|s| format!("{}: {}", s.name, s.transport)).collect::<Vec<_>>(), "starting");
    let result = weft_worker::run(config, shutdown).await;
    telemetry.shutdown().await;
    result?;
    Ok(())
}

/// The `llm` tool's provider, if a base URL or a key is given.
fn llm_config(base_url: Option<String>, key: Option<String>, model: Option<String>) -> Option<LlmConfig> {
    // Compose passes unset variables as empty ones.
    let (base_url, key, model) = (non_empty(base_url), non_empty(key), non_empty(model));
    if base_url.is_none() && key.is_none() {
        return None;
    }
    let defaults = LlmConfig::default();
    Some(LlmConfig {
        base_url: base_url.unwrap_or(defaults.base_url.clone()),
        api_key: key.map(ApiKey::new),
        default_model: model,
        ..defaults
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A rate limit; empty (as compose passes an unset variable) is none.
#[derive(Debug, Clone, Copy)]
struct PerMinute(Option<u64>);

fn per_minute(text: &str) -> Result<PerMinute, String> {
    if text.trim().is_empty() {
        return Ok(PerMinute(None));
    }
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("{text:?} is not a number of 1 or more")),
        Ok(n) => Ok(PerMinute(Some(n))),
    }
}
