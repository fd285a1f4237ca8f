//! `weft-bench`: runs Weft's benchmarks against real processes and writes the results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use weft_bench::Config;
use weft_bench::scenarios::Scenario;

/// Weft's benchmarks: the engine against a raw JetStream round trip, with a real
/// nats-server, coordinator and workers. Build the binaries with --release first.
#[derive(Debug, Parser)]
#[command(name = "weft-bench", version)]
struct Args {
    /// Every scenario at small scale, under a minute (CI runs this; no timing is asserted).
    #[arg(long)]
    quick: bool,
    /// Directory for the JSON and markdown results [default: benches/results/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these scenarios (repeatable or comma-separated); the floor always runs.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Directory of weft-coordinator and weft-worker [default: $WEFT_BIN_DIR, else this binary's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// RUST_LOG of the coordinator and workers.
    #[arg(long, default_value = "warn,weft_coordinator::supervisor=info")]
    rust_log: String,
    /// WEFT_PIN_TIMEOUT of the recovery scenario's coordinators, in seconds (the others use the default, 6).
    #[arg(long, default_value_t = 2)]
    pin_timeout: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = Config {
        quick: args.quick,
        out: args.out.unwrap_or_else(|| weft_bench::repo_root().join("benches/results")),
        only: args.only,
        bin_dir: args.bin_dir,
        rust_log: args.rust_log,
        pin_timeout_s: args.pin_timeout.max(1),
        workers: args.workers.max(1),
    };
    match weft_bench::run(config).await {
        Ok(report) => {
            println!("{}", report.markdown());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weft-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
