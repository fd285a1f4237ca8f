//! The results: a JSON file with everything, and a markdown table of the headline figures.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::machine::Machine;

/// A target of the issue, and whether this run meets it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// As the issue says it.
    pub text: String,
    /// Met in this run.
    pub met: bool,
}

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// What it measures.
    pub name: String,
    /// The median over repeats.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// The value divided by the floor's matching figure, where that makes sense.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_floor: Option<f64>,
    /// The target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

impl Metric {
    /// A figure without ratio or target.
    pub fn new(name: impl Into<String>, value: f64, unit: &str) -> Metric {
        Metric { name: name.into(), value, unit: unit.to_owned(), vs_floor: None, target: None }
    }

    /// Divided by `floor` (ms).
    pub fn vs(mut self, floor: Option<f64>) -> Metric {
        self.vs_floor = floor.filter(|f| *f > 0.0).map(|f| self.value / f);
        self
    }

    /// With the target.
    pub fn target(mut self, text: &str, met: bool) -> Metric {
        self.target = Some(Target { text: text.to_owned(), met });
        self
    }
}

/// A warning or error line the services logged, with how often.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceWarning {
    /// Which process.
    pub process: String,
    /// The message (its start).
    pub message: String,
    /// How many times.
    pub count: usize,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// `--only` name.
    pub id: String,
    /// Title.
    pub title: String,
    /// The scale it ran at, and repeats.
    pub scale: String,
    /// How the scale differs from the issue's, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaled_down: Option<String>,
    /// Headline figures (medians over repeats).
    pub metrics: Vec<Metric>,
    /// Method and observations.
    pub notes: Vec<String>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Warnings and errors the services logged, over every repeat.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_warnings: Vec<ServiceWarning>,
    /// Per-repeat figures.
    pub repeats: Vec<Value>,
    /// Seconds the scenario took, set-up included.
    pub seconds: f64,
    /// CPU other work on the machine used meanwhile, in % of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_work_pct: Option<f64>,
}

impl ScenarioReport {
    /// Keeps what the cluster's services warned about.
    pub fn services(&mut self, cluster: &crate::cluster::Cluster) {
        for (process, message, count) in cluster.warnings() {
            match self.service_warnings.iter_mut().find(|w| w.process == process && w.message == message) {
                Some(w) => w.count += count,
                None => self.service_warnings.push(ServiceWarning { process, message, count }),
            }
        }
    }

    /// An empty report.
    pub fn new(id: &str, title: &str, scale: String) -> ScenarioReport {
        ScenarioReport {
            id: id.to_owned(),
            title: title.to_owned(),
            scale,
            scaled_down: None,
            metrics: Vec::new(),
            notes: Vec::new(),
            error: None,
            service_warnings: Vec::new(),
            repeats: Vec::new(),
            seconds: 0.0,
            other_work_pct: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// The machine and versions.
    pub machine: Machine,
    /// How the processes were set up.
    pub setup: Vec<String>,
    /// Each scenario, the floor first.
    pub scenarios: Vec<ScenarioReport>,
    /// Seconds the whole run took.
    pub seconds: f64,
}

fn fmt(value: f64, unit: &str) -> String {
    if value.is_nan() {
        return "n/a".to_owned();
    }
    let digits = if value.abs() >= 100.0 || unit == "runs" || unit == "steps" {
        0
    } else if value.abs() >= 10.0 {
        1
    } else if value.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{value:.digits$} {unit}")
}

impl Report {
    /// The markdown report.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!("# Weft benchmarks: {} run of {}\n\n", self.mode, m.date);
        out.push_str(&format!("- **Machine**: {}\n", m.summary()));
        out.push_str(&format!("- **Binaries**: {}\n", m.binaries));
        for line in &self.setup {
            out.push_str(&format!("- {line}\n"));
        }
        out.push_str(&format!("- **Took**: {:.0} s\n\n", self.seconds));
        out.push_str("| scenario | figure | value | × floor | target |\n|---|---|---|---|---|\n");
        for s in &self.scenarios {
            if let Some(e) = &s.error {
                out.push_str(&format!("| {} | failed | {} | | |\n", s.title, e.lines().next().unwrap_or_default()));
            }
            for (i, metric) in s.metrics.iter().enumerate() {
                let title = if i == 0 { s.title.as_str() } else { "" };
                let ratio = metric.vs_floor.map(|r| format!("{r:.1}×")).unwrap_or_default();
                let target = metric
                    .target
                    .as_ref()
                    .map(|t| format!("{} {}", if t.met { "met:" } else { "not met:" }, t.text))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "| {title} | {} | {} | {ratio} | {target} |\n",
                    metric.name,
                    fmt(metric.value, &metric.unit)
                ));
            }
        }
        out.push_str("\n## Scenarios\n");
        for s in &self.scenarios {
            let other = s.other_work_pct.map(|p| format!("; other work on the machine meanwhile: {p:.0}% of a core"));
            out.push_str(&format!(
                "\n### {} (`--only {}`, {:.0} s{})\n\n{}\n",
                s.title,
                s.id,
                s.seconds,
                other.unwrap_or_default(),
                s.scale
            ));
            if let Some(d) = &s.scaled_down {
                out.push_str(&format!("\n**Scaled down**: {d}\n"));
            }
            if let Some(e) = &s.error {
                out.push_str(&format!("\n**Failed**: {e}\n"));
            }
            for note in &s.notes {
                out.push_str(&format!("\n- {note}"));
            }
            for w in &s.service_warnings {
                out.push_str(&format!("\n- Logged by the {}, {}×: `{}`", w.process, w.count, w.message));
            }
            out.push('\n');
        }
        out
    }

    /// Writes `<dir>/weft-bench-<date>[-quick].json` and `.md`; returns their paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let stamp: String = self.machine.date.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let suffix = if self.mode == "quick" { "-quick" } else { "" };
        let json = dir.join(format!("weft-bench-{stamp}{suffix}.json"));
        let md = dir.join(format!("weft-bench-{stamp}{suffix}.md"));
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::write(&md, self.markdown())?;
        Ok((json, md))
    }
}
