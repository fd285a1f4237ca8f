//! Recovery: runs in flight (each waiting in a `signal` step), the coordinator killed
//! with SIGKILL and a new one started at once. Every run is signalled right away (the
//! signals go to the runs' logs whoever owns them), and the time is taken until the last
//! `run_finished` arrives: every run was rebuilt from its log by the new owner and made
//! progress. The new coordinator's log says when it took each partition over and how
//! long the replay took.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::Ctx;
use super::parked::CONCURRENCY;
use crate::cluster::Cluster;
use crate::load::{self, Retries};
use crate::report::{Metric, ScenarioReport};
use crate::stats::median;
use crate::tracker::Tracker;
use crate::workflows::{self, SIGNAL, SIGNAL_STEP};

/// A partition taken over, from the coordinator's JSON log.
#[derive(Debug, Clone, serde::Serialize)]
struct Takeover {
    partition: u64,
    runs: u64,
    /// Seconds after the kill.
    at_s: f64,
    /// Seconds the replay took.
    took_s: f64,
}

/// Seconds in a `Debug`-formatted duration such as `8.7ms`, `1.2s`, `950µs`.
fn debug_seconds(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "µs" | "us" => 1e-6,
        "ns" => 1e-9,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

fn takeovers(log: &str, killed: SystemTime) -> Vec<Takeover> {
    log.lines()
        .filter(|l| l.contains("partition owned"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let at = humantime::parse_rfc3339_weak(v["timestamp"].as_str()?).ok()?;
            let fields = &v["fields"];
            Some(Takeover {
                partition: fields["partition"].as_u64()?,
                runs: fields["runs"].as_u64().unwrap_or(0),
                at_s: at.duration_since(killed).map_or(0.0, |d| d.as_secs_f64()),
                took_s: fields["took"].as_str().and_then(debug_seconds).unwrap_or(0.0),
            })
        })
        .collect()
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let (n, repeats) = ctx.scale.recovery;
    report.scale = format!(
        "{n} runs waiting in a `signal` step, coordinator SIGKILLed and restarted at once, pin timeout {} s; \
         × {repeats} repeat(s), each on a fresh cluster",
        ctx.pin_timeout_s
    );
    if n < 10_000 {
        report.scaled_down = Some(format!("{n} runs instead of 10,000"));
    }
    let mut rates = Vec::new();
    let mut owned_rates = Vec::new();
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    let mut dones = Vec::new();
    let mut silent_total = 0;
    for _ in 0..repeats {
        let mut cluster = Cluster::start(&ctx.bins, ctx.recovery_settings()).await?;
        let clients = load::clients(&cluster.nats.url, 4).await?;
        let tracker = Tracker::start(&cluster.nats.url, false).await?;
        let retries = Retries::default();
        let ids = load::submit_many(&clients, &workflows::parked(), n, CONCURRENCY, &retries).await?;
        let limit = ctx.scale.patience(Duration::from_secs(300));
        let (counts, all) = tracker.wait_until(SIGNAL_STEP, limit, |c| c.started >= n).await;
        if !all {
            bail!("only {} of {n} runs reached their signal step in {limit:?}", counts.started);
        }

        let killed_at = SystemTime::now();
        let killed = Instant::now();
        cluster.crash_coordinator()?;
        let data = json!({"ok": true});
        let signalled = AtomicBool::new(false);
        let signals = async {
            let sent = load::signal_many(&clients, &ids, SIGNAL, &data, CONCURRENCY, &retries).await;
            signalled.store(true, Ordering::Relaxed);
            sent.map(|()| killed.elapsed())
        };
        let (sent, silent) = tokio::join!(signals, load::wait_finished(&tracker, &clients[0], &ids, &signalled, limit));
        let sent = sent.context("signalling after the restart")?;
        let silent = silent.with_context(|| format!("after the restart; logs:\n{}", cluster.logs_tail(30)))?;
        let owned = takeovers(&cluster.coordinator.logs(), killed_at);
        let first = owned.iter().map(|t| t.at_s).fold(f64::NAN, f64::min);
        let last = owned.iter().map(|t| t.at_s).fold(f64::NAN, f64::max);
        // The first replay began `took` before its partition was owned.
        let replay_began = owned.iter().map(|t| t.at_s - t.took_s).fold(f64::NAN, f64::min);
        let rebuilt: u64 = owned.iter().map(|t| t.runs).sum();
        // Runs that ended without an event ended when their partition was taken over.
        let last_event = tracker.last_finish(&ids).map_or(0.0, |at| (at - killed).as_secs_f64());
        let done = if silent.is_empty() || last.is_nan() { last_event } else { last_event.max(last) };
        // Without the log, count from the pin timeout.
        let from = if replay_began.is_nan() { ctx.pin_timeout_s as f64 } else { replay_began };
        let owned_rate = rebuilt as f64 / (last - from).max(1e-3);
        let rate = n as f64 / (done - from).max(1e-3);
        report.repeats.push(json!({
            "runs": n, "first_replay_began_s": replay_began, "first_partition_owned_s": first,
            "last_partition_owned_s": last, "runs_rebuilt": rebuilt, "owned_runs_per_s": owned_rate,
            "signals_sent_s": sent.as_secs_f64(), "all_finished_s": done, "recovery_runs_per_s": rate,
            "finished_without_event": silent.len(),
            "retried_requests": retries.count(), "takeovers": owned,
        }));
        silent_total += silent.len();
        rates.push(rate);
        owned_rates.push(owned_rate);
        firsts.push(replay_began);
        lasts.push(last);
        dones.push(done);
        report.services(&cluster);
    }
    if silent_total > 0 {
        report.notes.push(format!(
            "{silent_total} of {} runs ended without a `run_finished` event: their signal was in the log before the \
             new coordinator replayed it, so they ended inside the replay (found by their records; counted as \
             finished when the last partition was owned).",
            n * repeats
        ));
    }
    let rate = median(&rates);
    report.metrics.push(
        Metric::new("owned and progressing rate", rate, "runs/s").target("5,000 workflows/s or better", rate >= 5000.0),
    );
    report.metrics.push(Metric::new("owned again rate (replay)", median(&owned_rates), "runs/s"));
    report.metrics.push(Metric::new("kill → first replay began", median(&firsts), "s"));
    report.metrics.push(Metric::new("kill → last partition owned", median(&lasts), "s"));
    report.metrics.push(Metric::new(format!("kill → all {n} finished"), median(&dones), "s"));
    report.notes.push(format!(
        "Owned and progressing rate: runs / (last run finished − first replay began); owned again rate: runs \
         rebuilt / (last partition owned − first replay began). Both leave out the wait before the first \
         partition moves, which the pin timeout sets ({} s here, `WEFT_PIN_TIMEOUT`; 6 s by default) and which is \
         reported apart. Every run is signalled right after the restart (the client retries while no coordinator \
         answers); a run is progressing once its signal is applied and it finishes, so the API's signal rate \
         (see parked) bounds the first figure. Takeovers and replay times come from the new coordinator's JSON \
         log (`partition owned`); the supervisor takes partitions over one at a time.",
        ctx.pin_timeout_s
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debug_durations() {
        assert_eq!(debug_seconds("1.5s"), Some(1.5));
        assert_eq!(debug_seconds("8ms"), Some(0.008));
        assert!(debug_seconds("950µs").is_some_and(|s| (s - 0.00095).abs() < 1e-12));
        assert_eq!(debug_seconds("soon"), None);
    }

    #[test]
    fn reads_takeovers_from_json_logs() {
        let killed = humantime::parse_rfc3339_weak("2026-11-23T17:14:30Z").expect("time");
        let log = r#"{"timestamp":"2026-11-23T17:14:32.5Z","level":"INFO","fields":{"message":"partition owned","partition":2,"runs":27,"took":"11.5ms"},"target":"weft_coordinator::supervisor"}
{"timestamp":"2026-11-23T17:14:33Z","level":"WARN","fields":{"message":"something else"}}"#;
        let t = takeovers(log, killed);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].partition, t[0].runs), (2, 27));
        assert!((t[0].at_s - 2.5).abs() < 1e-9 && (t[0].took_s - 0.0115).abs() < 1e-12);
    }
}
