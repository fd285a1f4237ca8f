//! The scenarios of issue 8, their scales (full and `--quick`), and what they share.

pub mod busy;
pub mod fan_out;
pub mod floor;
pub mod latency;
pub mod models;
pub mod parallel;
pub mod parked;
pub mod recovery;
pub mod step_overhead;
pub mod throughput;
pub mod tools;

use std::time::Duration;

use crate::cluster::{Bins, Settings};
use crate::stats::P50P99;

/// A scenario, by its `--only` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Raw JetStream round trip, no Weft.
    Floor,
    /// A 100-step chain of `echo`: time per step.
    StepOverhead,
    /// A 3-step chain at concurrency 1: end to end.
    Latency,
    /// 10-step chains from 64 submitters for 30 s.
    Throughput,
    /// 1,000 `sleep 200 ms` at once; 10,000 `echo` at once.
    FanOut,
    /// 20,000 runs waiting on a signal.
    Parked,
    /// A coordinator killed with 10,000 runs in flight.
    Recovery,
    /// 12 steps with dependencies against the same 12 one after another.
    Parallel,
    /// A canary, a status and a cancel while a 100,000-item `for_each` runs.
    Busy,
    /// A `plan` step's overhead beyond its model, and the rate limiter's decisions per second.
    Models,
    /// An MCP server's tool through Weft against a direct call; a Python worker against the Rust one.
    Tools,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 11] = [
        Scenario::Floor,
        Scenario::StepOverhead,
        Scenario::Latency,
        Scenario::Throughput,
        Scenario::FanOut,
        Scenario::Parked,
        Scenario::Recovery,
        Scenario::Parallel,
        Scenario::Busy,
        Scenario::Models,
        Scenario::Tools,
    ];

    /// Its `--only` name.
    pub fn id(self) -> &'static str {
        match self {
            Scenario::Floor => "floor",
            Scenario::StepOverhead => "step-overhead",
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::FanOut => "fan-out",
            Scenario::Parked => "parked",
            Scenario::Recovery => "recovery",
            Scenario::Parallel => "parallel",
            Scenario::Busy => "busy",
            Scenario::Models => "models",
            Scenario::Tools => "tools",
        }
    }

    /// Its title in the reports.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Floor => "floor: raw JetStream round trip",
            Scenario::StepOverhead => "step overhead",
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::FanOut => "fan-out",
            Scenario::Parked => "parked",
            Scenario::Recovery => "recovery",
            Scenario::Parallel => "parallel vs sequential",
            Scenario::Busy => "a busy coordinator",
            Scenario::Models => "models: plans and rate limits",
            Scenario::Tools => "tools from elsewhere: MCP and Python",
        }
    }
}

/// How big each scenario is.
#[derive(Debug, Clone)]
pub struct Scale {
    /// `--quick`.
    pub quick: bool,
    /// Round trips per floor repeat, and repeats.
    pub floor: (usize, usize),
    /// Steps of the chain, and repeats.
    pub chain: (usize, usize),
    /// Runs per latency repeat, repeats, and runs through `WeftClient::run`.
    pub latency: (usize, usize, usize),
    /// Seconds, submitters, repeats.
    pub throughput: (u64, usize, usize),
    /// Width of the `sleep` fan-out, of the `echo` fan-out, repeats of each.
    pub fan_out: (usize, usize, usize, usize),
    /// Parked runs, repeats.
    pub parked: (usize, usize),
    /// Runs in flight at the crash, repeats.
    pub recovery: (usize, usize),
    /// Repeats of each shape.
    pub parallel: usize,
    /// Items of the busy run, canaries, repeats.
    pub busy: (usize, usize, usize),
    /// Planned runs, rate-limited calls.
    pub models: (usize, usize),
    /// Calls of each kind one at a time, chains of each worker.
    pub tools: (usize, usize),
}

impl Scale {
    /// The scale, or a small one under a minute in all.
    pub fn new(quick: bool) -> Scale {
        if quick {
            Scale {
                quick,
                floor: (200, 1),
                chain: (20, 1),
                latency: (30, 1, 10),
                throughput: (3, 8, 1),
                fan_out: (50, 300, 1, 1),
                parked: (300, 1),
                recovery: (200, 1),
                parallel: 1,
                busy: (5_000, 3, 1),
                models: (5, 50),
                tools: (30, 30),
            }
        } else {
            Scale {
                quick,
                floor: (2000, 5),
                chain: (100, 10),
                latency: (500, 3, 100),
                throughput: (30, 64, 3),
                fan_out: (1000, 10_000, 3, 2),
                parked: (20_000, 2),
                recovery: (10_000, 2),
                parallel: 5,
                busy: (100_000, 10, 2),
                models: (50, 1000),
                tools: (300, 1000),
            }
        }
    }

    /// How long to wait for something that should take `typical` at full scale.
    pub fn patience(&self, typical: Duration) -> Duration {
        if self.quick { typical.min(Duration::from_secs(60)) } else { typical }
    }
}

/// The coordinator's default `WEFT_PIN_TIMEOUT`, in seconds.
pub const DEFAULT_PIN_TIMEOUT_S: u64 = 6;

/// The floor's figures, in ms, for the ratios.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Round trip p50 and p99.
    pub round_trip: P50P99,
    /// A burst as wide as the `sleep` fan-out, published at once and answered at once:
    /// first publish to last result, median over repeats.
    pub burst_ms: f64,
    /// Round trips per second with many in flight.
    pub round_trips_per_s: f64,
}

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The binaries.
    pub bins: Bins,
    /// Scales.
    pub scale: Scale,
    /// The floor, once measured.
    pub floor: Option<Floor>,
    /// `RUST_LOG` of the services.
    pub rust_log: String,
    /// `WEFT_PIN_TIMEOUT` of the recovery scenario's coordinators, in seconds (the
    /// others run with the default).
    pub pin_timeout_s: u64,
    /// Worker processes.
    pub workers: usize,
}

impl Ctx {
    /// Cluster settings, with the workers' concurrency limit if given and the default pin
    /// timeout.
    pub fn settings(&self, worker_concurrency: Option<usize>) -> Settings {
        Settings {
            workers: self.workers,
            worker_concurrency,
            pin_timeout_s: DEFAULT_PIN_TIMEOUT_S,
            rust_log: self.rust_log.clone(),
            coordinator_env: Vec::new(),
            worker_env: Vec::new(),
            worker_args: Vec::new(),
        }
    }

    /// Cluster settings of the recovery scenario: the short pin timeout.
    pub fn recovery_settings(&self) -> Settings {
        Settings { pin_timeout_s: self.pin_timeout_s, ..self.settings(None) }
    }

    /// The floor's p50 in ms.
    pub fn floor_p50(&self) -> Option<f64> {
        self.floor.map(|f| f.round_trip.p50)
    }

    /// The floor's p99 in ms.
    pub fn floor_p99(&self) -> Option<f64> {
        self.floor.map(|f| f.round_trip.p99)
    }
}
