//! What the kernel says about a process: CPU time from `/proc/<pid>/stat`, memory from
//! `/proc/<pid>/status` (VmRSS, VmHWM), and the whole machine's CPU from `/proc/stat`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU seconds a process has used so far.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// CPU seconds of this process and of its children that have been reaped (utime, stime,
/// cutime, cstime): every process a scenario started, once the scenario has stopped them.
pub fn own_and_children_cpu_seconds(ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|v| v.parse().ok()).collect();
    (fields.len() == 4).then(|| fields.iter().sum::<f64>() / ticks)
}

/// Measures the CPU the rest of the machine used while a scenario ran: the machine's busy
/// time minus this process and the children it started and reaped.
#[derive(Debug, Clone)]
pub struct OtherWork {
    ticks: f64,
    ours: Option<f64>,
    machine: Option<(u64, u64)>,
}

impl OtherWork {
    /// Starts measuring.
    pub fn start() -> OtherWork {
        let ticks = clock_ticks();
        OtherWork { ticks, ours: own_and_children_cpu_seconds(ticks), machine: machine_cpu() }
    }

    /// Other work since the start, in % of one core; call once the children are reaped.
    pub fn stop(&self) -> Option<f64> {
        let ours = own_and_children_cpu_seconds(self.ticks)? - self.ours?;
        let (b0, t0) = self.machine?;
        let (b1, t1) = machine_cpu()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        // Jiffies of all cores; their count per second is cores × ticks.
        let seconds = (t1 - t0) as f64 / (cores * self.ticks);
        let busy = (b1 - b0) as f64 / self.ticks;
        (seconds > 0.0).then(|| (100.0 * (busy - ours) / seconds).max(0.0))
    }
}

/// Resident memory of a process, in KiB: now (VmRSS) and at its peak (VmHWM).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident now.
    pub rss_kb: u64,
    /// Peak resident ("high water mark") since start or the last [`reset_peak`].
    pub hwm_kb: u64,
}

/// The memory of `pid`.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory { rss_kb: field("VmRSS:")?, hwm_kb: field("VmHWM:")? })
}

/// Resets the peak resident size of `pid` to its current size (`echo 5 > clear_refs`);
/// false if the kernel refused.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
pub fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum(); // user..steal; guest time is inside user
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0); // idle + iowait
    Some((total - idle, total))
}

/// CPU used by each of a set of processes and by the machine between two moments.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    ticks: f64,
    pids: Vec<(String, u32)>,
    start: Vec<Option<f64>>,
    machine: Option<(u64, u64)>,
    at: std::time::Instant,
}

/// CPU shares over an interval, in % of one core.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuShares {
    /// Each process: name and % of one core.
    pub processes: Vec<(String, f64)>,
    /// The benchmark process itself (submitters, clients).
    pub bench: f64,
    /// The whole machine, in % of one core (at most cores × 100).
    pub machine: f64,
    /// Machine minus the processes above and the benchmark: other work on the machine.
    pub other: f64,
    /// Interval length in seconds.
    pub seconds: f64,
}

impl CpuMeter {
    /// Starts measuring `pids` (and this process).
    pub fn start(pids: Vec<(String, u32)>) -> CpuMeter {
        let ticks = clock_ticks();
        let mut pids = pids;
        pids.push(("bench".to_owned(), std::process::id()));
        let start = pids.iter().map(|(_, p)| cpu_seconds(*p, ticks)).collect();
        CpuMeter { ticks, pids, start, machine: machine_cpu(), at: std::time::Instant::now() }
    }

    /// Shares since [`CpuMeter::start`].
    pub fn stop(&self) -> CpuShares {
        let seconds = self.at.elapsed().as_secs_f64().max(1e-9);
        let mut processes = Vec::new();
        let mut bench = 0.0;
        let mut ours = 0.0;
        for ((name, pid), start) in self.pids.iter().zip(&self.start) {
            let used = match (start, cpu_seconds(*pid, self.ticks)) {
                (Some(a), Some(b)) => (b - a).max(0.0),
                _ => 0.0,
            };
            let pct = 100.0 * used / seconds;
            ours += pct;
            if name == "bench" {
                bench = pct;
            } else {
                processes.push((name.clone(), pct));
            }
        }
        let machine = match (self.machine, machine_cpu()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                100.0 * cores * (b1 - b0) as f64 / (t1 - t0) as f64
            }
            _ => 0.0,
        };
        CpuShares { processes, bench, machine, other: (machine - ours).max(0.0), seconds }
    }
}

/// Samples a process's resident memory in the background and keeps the largest value.
#[derive(Debug)]
pub struct PeakSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakSampler {
    /// Samples `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> PeakSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(m) = memory(pid) {
                    seen.fetch_max(m.rss_kb, Ordering::Relaxed);
                }
                tokio::time::sleep(every).await;
            }
        });
        PeakSampler { peak, task }
    }

    /// The largest resident size seen, in KiB.
    pub fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}
