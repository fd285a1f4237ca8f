//! A real Prometheus server (Debian's `prometheus`, installed by deploy/setup.sh) scraping
//! the services of a test every second, queried through its HTTP API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::Proc;

/// The prometheus binary: `PROMETHEUS`, else on the `PATH`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMETHEUS") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("prometheus")).find(|p| p.exists()));
    found
        .unwrap_or_else(|| panic!("prometheus is not installed: run deploy/setup.sh (it installs Debian's prometheus)"))
}

/// One sample of an instant query: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Its labels (`__name__` included when the query keeps it).
    pub labels: Value,
    /// Its value.
    pub value: f64,
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a server scraping each `(job, host:port)` every second.
    pub fn start(targets: &[(&str, String)]) -> Prometheus {
        let dir = tempfile::tempdir().expect("prometheus dir");
        let jobs: String = targets
            .iter()
            .map(|(job, addr)| format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"))
            .collect();
        let config = format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}");
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("prometheus.yml written");
        let port = crate::wait::free_port();
        let (config_arg, storage_arg, listen_arg) = (
            format!("--config.file={}", config_file.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        );
        let proc = Proc::start("prometheus", &binary(), &[&config_arg, &storage_arg, &listen_arg], &[], dir.path())
            .unwrap_or_else(|e| panic!("{e:#}: run deploy/setup.sh (it installs Debian's prometheus)"));
        crate::wait::listening(port).unwrap_or_else(|e| panic!("prometheus does not listen: {e}\n{}", proc.logs()));
        weft_worker::tls::install_provider();
        Prometheus { proc, url: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), _dir: dir }
    }

    /// The samples of an instant query (PromQL).
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", promql)])
            .map_err(|e| format!("no query URL: {e}"))?;
        let answer = self.http.get(url).send().await.map_err(|e| format!("query not sent: {e}"))?;
        let body: Value = answer.json().await.map_err(|e| format!("answer not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("query `{promql}` failed: {body}"));
        }
        let result = body["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(result
            .into_iter()
            .map(|r| Sample {
                value: r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
                labels: r["metric"].clone(),
            })
            .collect())
    }

    /// Queries `promql` until its one value is `expected` (Prometheus sees a change a
    /// scrape later); panics with the last answer after 30 s.
    pub async fn until_value(&self, promql: &str, expected: f64) {
        self.until(promql, &format!("= {expected}"), |v| v == expected).await;
    }

    /// Queries `promql` until its one value is at least `least`.
    pub async fn until_at_least(&self, promql: &str, least: f64) {
        self.until(promql, &format!(">= {least}"), |v| v >= least).await;
    }

    async fn until(&self, promql: &str, wanted: &str, check: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.query(promql).await;
            if let Ok(samples) = &answer
                && samples.len() == 1
                && check(samples[0].value)
            {
                return;
            }
            assert!(Instant::now() < deadline, "`{promql}` never became {wanted}: {answer:?}\n{}", self.proc.logs());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
