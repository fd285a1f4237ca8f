//! `weft-coordinator`: holds running workflows and dispatches their steps.

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use weft_coordinator::Config;

/// The Weft coordinator.
#[derive(Debug, Parser)]
#[command(name = "weft-coordinator", version, about)]
struct Args {
    /// NATS server URL (several separated by commas; credentials as in nats://user:password@host:4222).
    #[arg(long = "nats", env = "NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
    nats_url: String,
    /// NATS credentials file (JWT/nkey auth).
    #[arg(long, env = "NATS_CREDS")]
    creds: Option<std::path::PathBuf>,
    /// Partitions the runs are spread over (the same for every coordinator).
    #[arg(long, env = "WEFT_PARTITIONS", default_value_t = 8)]
    partitions: u32,
    /// Seconds after which a silent owner's partitions move to another coordinator.
    #[arg(long, env = "WEFT_PIN_TIMEOUT", default_value_t = 6)]
    pin_timeout: u64,
    /// How long finished runs' records are kept (e.g. "7d", "12h").
    #[arg(long, env = "WEFT_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    retention: std::time::Duration,
    /// Resource pools to create at start if missing, as `gpu=2,api=4`.
    #[arg(long, env = "WEFT_POOLS", value_parser = parse_pools, default_value = "")]
    pools: Pools,
    /// Model prices for budgets: a JSON file of {"<model>": {"prompt": <per 1M tokens>, "completion": <per 1M>}}.
    #[arg(long, env = "WEFT_PRICES")]
    prices: Option<std::path::PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "WEFT_LOG_JSON")]
    log_json: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464; empty: none).
    #[arg(long = "metrics", env = "WEFT_METRICS_ADDR", value_name = "ADDR")]
    metrics: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What else the binary does than coordinate.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Ask the coordinator serving metrics at --metrics (this container's) whether it is
    /// healthy: exit 0 when its /healthz answers ok, 1 otherwise (a container health check).
    Probe,
}

/// The price table in `file`, if one is given.
fn read_prices(file: Option<&std::path::Path>) -> anyhow::Result<weft_coordinator::Prices> {
    let Some(file) = file else { return Ok(weft_coordinator::Prices::new()) };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read the price table {}", file.display()))?;
    let prices: weft_coordinator::Prices = serde_json::from_str(&text).with_context(|| {
        format!("{} is not a price table ({{\"<model>\": {{\"prompt\": 0.15, \"completion\": 0.6}}}})", file.display())
    })?;
    if let Some((model, _)) = prices.iter().find(|(_, p)| !(p.prompt >= 0.0 && p.completion >= 0.0)) {
        anyhow::bail!("{}: the prices of `{model}` must be numbers, 0 or more", file.display());
    }
    Ok(prices)
}

/// What a workflow may ask, and each run may do; each exceeded limit is `LIMIT_EXCEEDED`.
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Steps of a definition, at every depth.
    #[arg(long, env = "WEFT_MAX_STEPS", default_value_t = 10_000)]
    max_steps: usize,
    /// A `loop`'s `max_iterations`.
    #[arg(long, env = "WEFT_MAX_ITERATIONS", default_value_t = 10_000)]
    max_iterations: u32,
    /// `matches` conditions of a definition.
    #[arg(long, env = "WEFT_MAX_REGEXES", default_value_t = 100)]
    max_regexes: usize,
    /// Bytes of a definition's JSON.
    #[arg(long, env = "WEFT_MAX_DEFINITION_BYTES", default_value_t = 1 << 20)]
    max_definition_bytes: usize,
    /// Step instances of a run, nested ones included.
    #[arg(long, env = "WEFT_MAX_INSTANCES", default_value_t = 100_000)]
    max_instances: usize,
    /// Items of one `for_each`.
    #[arg(long, env = "WEFT_MAX_ITEMS", default_value_t = 10_000)]
    max_items: usize,
    /// Tasks of a run on workers at once (more wait).
    #[arg(long, env = "WEFT_MAX_IN_FLIGHT", default_value_t = 10_000)]
    max_in_flight: usize,
    /// Depth of sub-workflows below a run.
    #[arg(long, env = "WEFT_MAX_DEPTH", default_value_t = 8)]
    max_depth: u32,
    /// Child runs under one root run, all depths.
    #[arg(long, env = "WEFT_MAX_CHILDREN", default_value_t = 1_000)]
    max_children: u32,
    /// Bytes of step outputs one run holds, as JSON.
    #[arg(long, env = "WEFT_MAX_OUTPUT_BYTES", default_value_t = 256 << 20)]
    max_output_bytes: usize,
}

impl LimitArgs {
    fn limits(&self) -> weft_lang::limits::Limits {
        weft_lang::limits::Limits {
            max_steps: self.max_steps,
            max_iterations: self.max_iterations,
            max_regexes: self.max_regexes,
            max_definition_bytes: self.max_definition_bytes,
            run: weft_lang::limits::RunLimits {
                max_instances: self.max_instances,
                max_items: self.max_items,
                max_in_flight: self.max_in_flight.max(1),
                max_depth: self.max_depth,
                max_children: self.max_children,
                max_output_bytes: self.max_output_bytes,
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Probe) = args.command {
        let addr = weft_service::metrics::parse_addr(args.metrics.as_deref())?;
        weft_service::metrics::probe(addr).await?;
        return Ok(());
    }
    let prices = read_prices(args.prices.as_deref())?;
    let instance = format!("{}-{}", hostname(), std::process::id());
    let telemetry = weft_service::telemetry::init_instance("weft-coordinator", args.log_json, &instance);
    let connection = weft_service::connect::connect(
        "weft-coordinator".to_owned(),
        &args.nats_url,
        args.creds.as_deref(),
        weft_protocol::subjects::INBOX_COORDINATOR,
    )
    .await?;
    let client = connection.client;
    let shutdown = CancellationToken::new();
    tokio::spawn(weft_service::signals::stop_on_signals(shutdown.clone()));
    let health = weft_service::metrics::Health::new();
    if let Some(addr) = weft_service::metrics::parse_addr(args.metrics.as_deref())? {
        weft_service::metrics::serve(
            addr,
            weft_coordinator::metrics::registry(),
            Some(health.clone()),
            shutdown.clone(),
        )
        .await?;
    }
    let config = Config {
        nats_url: args.nats_url,
        partitions: args.partitions.max(1),
        pin_timeout: std::time::Duration::from_secs(args.pin_timeout.max(1)),
        retention: weft_protocol::topology::Retention { runs: args.retention, ..Default::default() },
        pools: args.pools.0,
        limits: args.limits.limits(),
        prices,
        health,
        ..Config::default()
    };
    let result = weft_coordinator::run(config, client, shutdown).await.context("coordinator stopped");
    telemetry.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn the_limit_flags_default_to_the_library_s_limits() {
        let args = super::Args::try_parse_from(["weft-coordinator"]).expect("no flags parse");
        assert_eq!(args.limits.limits(), weft_lang::limits::Limits::default());
    }
}

/// This host's name, for the instance id in traces.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "coordinator".to_owned())
}

/// `WEFT_POOLS`: pools and their capacities.
#[derive(Debug, Clone, Default)]
struct Pools(Vec<(String, u32)>);

fn parse_pools(text: &str) -> Result<Pools, String> {
    let mut pools = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, capacity) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=CAPACITY"))?;
        let capacity = capacity.trim().parse().map_err(|e| format!("`{part}`: the capacity is not a number: {e}"))?;
        pools.push((name.trim().to_owned(), capacity));
    }
    Ok(Pools(pools))
}
