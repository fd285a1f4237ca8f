//! Prometheus metrics: a real Prometheus scrapes a coordinator and a worker (processes,
//! with a real nats-server) while runs complete, fail after a retry and wait for a
//! signal, and its HTTP API is asked what it saw; and the coordinator's health check.

use serde_json::{Value, json};
use weft_lang::definition::WorkflowDef;
use weft_protocol::wire::RunStatus;
use weft_tests::bin;
use weft_tests::cluster::Cluster;
use weft_tests::prometheus::Prometheus;
use weft_tests::wait::free_port;

fn inline(def: Value) -> WorkflowDef {
    WorkflowDef::from_json(&def.to_string()).expect("workflow parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_runs_steps_and_what_the_services_hold() {
    let (coordinator_addr, worker_addr) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut cluster = Cluster::start_with(1, 0, &[("WEFT_METRICS_ADDR", coordinator_addr.as_str())]).await;
    cluster.add_worker("w1", &[("WEFT_METRICS_ADDR", worker_addr.as_str())]);
    cluster.wait_ready().await;
    let prometheus = Prometheus::start(&[("coordinator", coordinator_addr), ("worker", worker_addr)]);
    let client = cluster.client().await;

    let ok = inline(json!({"name": "metrics_ok", "steps": [
        {"id": "a", "tool": "echo", "params": {"n": 1}},
        {"id": "b", "tool": "echo", "params": {"n": "{a.n}"}}
    ]}));
    let failing = inline(json!({"name": "metrics_fail", "steps": [
        {"id": "f", "tool": "fail", "params": {"message": "no"}, "retry": {"max_attempts": 2, "backoff": "10ms"}}
    ]}));
    let waiting = inline(json!({"name": "metrics_wait", "steps": [
        {"id": "s", "signal": {"name": "go"}}
    ]}));
    for _ in 0..3 {
        assert_eq!(client.run(&ok, Value::Null).await.expect("ok runs").status, RunStatus::Completed);
    }
    assert_eq!(client.run(&failing, Value::Null).await.expect("fail runs").status, RunStatus::Failed);
    let parked = client.submit(&waiting, Value::Null).await.expect("submitted");

    // Both targets are up, and the counters say what happened, named by convention.
    prometheus.until_value("up{job=\"coordinator\"}", 1.0).await;
    prometheus.until_value("up{job=\"worker\"}", 1.0).await;
    prometheus.until_value("weft_runs_started_total{workflow=\"metrics_ok\"}", 3.0).await;
    prometheus.until_value("weft_runs_ended_total{workflow=\"metrics_ok\",status=\"completed\"}", 3.0).await;
    prometheus.until_value("weft_runs_ended_total{workflow=\"metrics_fail\",status=\"failed\"}", 1.0).await;
    prometheus.until_value("weft_run_duration_seconds_count{workflow=\"metrics_ok\"}", 3.0).await;
    prometheus.until_value("weft_step_attempts_total{tool=\"echo\",outcome=\"ok\"}", 6.0).await;
    prometheus.until_value("weft_step_attempts_total{tool=\"fail\",outcome=\"error\"}", 2.0).await;
    prometheus.until_value("weft_step_retries_total{tool=\"fail\"}", 1.0).await;
    prometheus.until_value("weft_step_duration_seconds_count{tool=\"echo\"}", 6.0).await;
    prometheus.until_value("weft_step_queue_seconds_count{tool=\"echo\"}", 6.0).await;
    prometheus.until_value("weft_worker_calls_total{tool=\"echo\",outcome=\"ok\"}", 6.0).await;
    prometheus.until_value("weft_worker_calls_total{tool=\"fail\",outcome=\"error\"}", 2.0).await;
    prometheus.until_value("weft_worker_tasks_in_flight{tool=\"echo\"}", 0.0).await;
    // Histograms answer PromQL's quantiles: an echo step ran within a minute.
    let p99 = prometheus
        .query("histogram_quantile(0.99, sum by (le) (weft_step_duration_seconds_bucket{tool=\"echo\"}))")
        .await
        .expect("a quantile");
    assert!(p99.len() == 1 && p99[0].value < 65.0, "{p99:?}");
    // Payload sizes: every task, result and record written is observed.
    let sizes = prometheus.query("weft_payload_bytes_count").await.expect("sizes");
    let kinds: std::collections::BTreeSet<&str> = sizes.iter().filter_map(|s| s.labels["kind"].as_str()).collect();
    assert_eq!(kinds, ["record", "result", "task"].into(), "{sizes:?}");

    // What the coordinator holds: all partitions, the waiting run parked (it has no timer
    // armed), no task in flight.
    prometheus.until_value("weft_partitions_owned", 8.0).await;
    prometheus.until_value("weft_runs_parked", 1.0).await;
    prometheus.until_value("weft_tasks_in_flight", 0.0).await;

    // The example dashboard asks what Prometheus can answer: every panel's query parses and
    // evaluates, and the ones of what happened here have data (rates need a few scrapes).
    prometheus.until_at_least("count_over_time(weft_runs_started_total{workflow=\"metrics_fail\"}[1m])", 3.0).await;
    let dashboard =
        std::fs::read_to_string(weft_tests::repo_root().join("deploy/grafana/weft.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut with_data = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression").replace("$__rate_interval", "1m");
            let samples = prometheus.query(&expr).await.unwrap_or_else(|e| panic!("panel {}: {e}", panel["title"]));
            with_data += usize::from(!samples.is_empty());
        }
    }
    assert!(with_data >= 15, "only {with_data} of the dashboard's queries have data");

    client.signal(parked, "go", json!({})).await.expect("signalled");
    prometheus.until_value("weft_runs_ended_total{workflow=\"metrics_wait\",status=\"completed\"}", 1.0).await;
    prometheus.until_value("weft_runs_parked", 0.0).await;
}

/// The coordinator's container health check (`weft-coordinator probe`, compose's) asks its
/// `/healthz`, which answers only when its supervisor actor, NATS and JetStream answer: a
/// frozen coordinator fails it, where the check it replaces (`weft definitions`, a bucket
/// read that NATS answers alone) still passes; thawed, it passes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_fails_while_the_coordinator_is_frozen() {
    let addr = format!("127.0.0.1:{}", free_port());
    let cluster = Cluster::start_with(1, 0, &[("WEFT_METRICS_ADDR", addr.as_str())]).await;
    cluster.wait_ready().await;
    let probe = || {
        std::process::Command::new(bin("weft-coordinator"))
            .arg("probe")
            .env("WEFT_METRICS_ADDR", &addr)
            .output()
            .expect("the probe runs")
    };
    let healthy_within = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let answer = probe();
            if answer.status.success() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the probe still fails: {}\n{}",
                String::from_utf8_lossy(&answer.stderr),
                cluster.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    healthy_within("ready");

    cluster.coordinator.signal("STOP");
    let frozen = probe();
    let definitions = std::process::Command::new(bin("weft"))
        .args(["definitions", "--nats", &cluster.nats.url])
        .output()
        .expect("weft runs");
    cluster.coordinator.signal("CONT");
    assert!(!frozen.status.success(), "a frozen coordinator passed its health check");
    let said = String::from_utf8_lossy(&frozen.stderr);
    assert!(said.contains("/healthz") && said.contains(&addr), "{said}");
    assert!(definitions.status.success(), "the old check would have failed too: {definitions:?}");
    healthy_within("thawed");
}
