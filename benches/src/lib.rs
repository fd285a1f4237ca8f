//! Weft's benchmarks (issue 8): the engine against the physical floor of a raw JetStream
//! round trip, with a real nats-server, coordinator and workers as separate processes.
//!
//! The floor runs first, in the same run, and the other figures are also given as a ratio
//! to it. Each scenario gets a fresh cluster; figures are medians over repeats; CPU and
//! memory come from `/proc`. Results go to a JSON file and a markdown table.
//!
//! # Layout
//!
//! - [`cluster`]: nats-server, coordinator and worker processes, stopped by pid.
//! - [`scenarios`]: the scenarios, their full and `--quick` scales.
//! - [`tracker`]: every run's events through one subscription, timestamped on arrival.
//! - [`load`]: many submits or signals at once, retried.
//! - [`workflows`]: the workflows the scenarios run.
//! - [`procfs`]: CPU time and memory of processes, from `/proc`.
//! - [`machine`]: cores, memory, CPU model, versions, date.
//! - [`stats`]: percentiles and medians.
//! - [`report`]: the JSON and markdown output.

pub mod cluster;
pub mod load;
pub mod machine;
pub mod procfs;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod tracker;
pub mod workflows;

use std::path::PathBuf;
use std::time::Instant;

use cluster::Bins;
use machine::Machine;
use report::{Report, ScenarioReport};
use scenarios::{Ctx, Scale, Scenario};

pub use weft_tests::repo_root;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Small scale, under a minute in all.
    pub quick: bool,
    /// Where the JSON and markdown files go.
    pub out: PathBuf,
    /// Only these scenarios (the floor always runs: the ratios need it).
    pub only: Vec<Scenario>,
    /// Directory of the Weft binaries (default: `WEFT_BIN_DIR`, else next to this one).
    pub bin_dir: Option<PathBuf>,
    /// `RUST_LOG` of the services.
    pub rust_log: String,
    /// `WEFT_PIN_TIMEOUT` of the recovery scenario's coordinators, in seconds.
    pub pin_timeout_s: u64,
    /// Worker processes.
    pub workers: usize,
}

/// Runs the scenarios and writes the report; fails if a scenario failed.
pub async fn run(config: Config) -> anyhow::Result<Report> {
    let began = Instant::now();
    let bins = Bins::locate(config.bin_dir.clone())?;
    let machine = Machine::probe(&bins);
    let mode = if config.quick { "quick" } else { "full" };
    eprintln!("weft-bench ({mode}): {}", machine.summary());
    eprintln!("binaries: {}", machine.binaries);
    let mut ctx = Ctx {
        bins,
        scale: Scale::new(config.quick),
        floor: None,
        rust_log: config.rust_log.clone(),
        pin_timeout_s: config.pin_timeout_s,
        workers: config.workers,
    };
    let setup = vec![
        "**Processes**: per scenario a fresh nats-server (`-js`, file store in a temporary directory, default \
         sync), one `weft-coordinator` (8 partitions) and the workers, all on loopback"
            .to_owned(),
        format!(
            "**Settings**: {} workers; `WEFT_PIN_TIMEOUT` 6 s (the default), {} s in the recovery scenario \
             (the takeover waits for it; reported apart); `RUST_LOG={}` for the services (per-task info lines \
             are a cost of their own)",
            config.workers, config.pin_timeout_s, config.rust_log
        ),
        "**Figures**: medians over the repeats; `× floor` divides by the floor's p50 (p99 by its p99)".to_owned(),
    ];

    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for scenario in Scenario::ALL {
        let wanted = scenario == Scenario::Floor || config.only.is_empty() || config.only.contains(&scenario);
        if !wanted {
            continue;
        }
        eprintln!("== {} ...", scenario.title());
        let started = Instant::now();
        let other_work = procfs::OtherWork::start();
        let mut report = ScenarioReport::new(scenario.id(), scenario.title(), String::new());
        let outcome = match scenario {
            Scenario::Floor => scenarios::floor::run(&ctx, &mut report).await.map(|f| ctx.floor = Some(f)),
            Scenario::StepOverhead => scenarios::step_overhead::run(&ctx, &mut report).await,
            Scenario::Latency => scenarios::latency::run(&ctx, &mut report).await,
            Scenario::Throughput => scenarios::throughput::run(&ctx, &mut report).await,
            Scenario::FanOut => scenarios::fan_out::run(&ctx, &mut report).await,
            Scenario::Parked => scenarios::parked::run(&ctx, &mut report).await,
            Scenario::Recovery => scenarios::recovery::run(&ctx, &mut report).await,
            Scenario::Parallel => scenarios::parallel::run(&ctx, &mut report).await,
            Scenario::Busy => scenarios::busy::run(&ctx, &mut report).await,
            Scenario::Models => scenarios::models::run(&ctx, &mut report).await,
            Scenario::Tools => scenarios::tools::run(&ctx, &mut report).await,
        };
        report.seconds = started.elapsed().as_secs_f64();
        report.other_work_pct = other_work.stop();
        if let Err(e) = outcome {
            eprintln!("   FAILED: {e:#}");
            report.error = Some(format!("{e:#}"));
            failed.push(scenario.id());
        }
        for m in &report.metrics {
            let ratio = m.vs_floor.map(|r| format!(" ({r:.1}× floor)")).unwrap_or_default();
            eprintln!("   {}: {:.3} {}{ratio}", m.name, m.value, m.unit);
        }
        let other = report.other_work_pct.map(|p| format!(", other work on the machine {p:.0}% of a core"));
        eprintln!("   ({:.1} s{})", report.seconds, other.unwrap_or_default());
        reports.push(report);
    }

    let report =
        Report { mode: mode.to_owned(), machine, setup, scenarios: reports, seconds: began.elapsed().as_secs_f64() };
    let (json, md) = report.write(&config.out)?;
    eprintln!("wrote {} and {}", json.display(), md.display());
    if !failed.is_empty() {
        anyhow::bail!("scenarios failed: {}", failed.join(", "));
    }
    Ok(report)
}
