//! Commands that read workflow files and need no server.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::exit;
use serde_json::{Value, json};
use weft_lang::analysis::{self, Weights, format_length};
use weft_lang::catalogue::Catalogue;
use weft_lang::definition::{DurationDef, LoadError, WorkflowDef};
use weft_lang::export::{self, Format};
use weft_lang::plan::Plan;
use weft_lang::validate::{self, Problems};

/// Why a file gave no plan.
enum Failure {
    Load(LoadError),
    Invalid(Problems),
}

fn plan_of(file: &Path, catalogue: Option<&Catalogue>) -> Result<Plan, Failure> {
    let def = WorkflowDef::load(file).map_err(Failure::Load)?;
    validate::compile(&def, catalogue).map_err(Failure::Invalid)
}

impl Failure {
    /// Its exit code: a file that cannot be read is a usage error, one that is no valid
    /// workflow is invalid.
    fn code(&self) -> u8 {
        match self {
            Failure::Load(LoadError::Io { .. }) => exit::USAGE,
            Failure::Load(LoadError::Parse { .. }) | Failure::Invalid(_) => exit::INVALID,
        }
    }
}

fn report(file: &Path, failure: &Failure) {
    match failure {
        Failure::Load(e) => eprintln!("{e}"),
        Failure::Invalid(problems) => {
            for p in &problems.0 {
                eprintln!("{}: {p}", file.display());
            }
        }
    }
}

/// `weft validate`.
pub(crate) fn validate(
    files: &[std::path::PathBuf],
    tools: &[std::path::PathBuf],
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut specs = Vec::new();
    for file in tools {
        specs.extend(Catalogue::load(file)?.iter().cloned());
    }
    let catalogue = (!tools.is_empty()).then(|| Catalogue::new(specs));
    // The worst failure decides the exit code: an unreadable file, then an invalid one.
    let mut code = exit::OK;
    let mut reports = Vec::new();
    for file in files {
        let result = plan_of(file, catalogue.as_ref());
        if let Err(failure) = &result {
            code = match (code, failure.code()) {
                (exit::USAGE, _) | (_, exit::USAGE) => exit::USAGE,
                (_, worse) => worse,
            };
        }
        if as_json {
            reports.push(match &result {
                Ok(plan) => json!({"file": file, "valid": true, "name": plan.name, "version": plan.version,
                                   "steps": plan.all_steps().len(), "warnings": validate::warnings(plan)}),
                Err(Failure::Load(LoadError::Parse { source, .. })) => json!({"file": file, "valid": false,
                    "parse_error": {"path": source.path, "line": source.line, "column": source.column,
                                    "message": source.message}}),
                Err(Failure::Load(e)) => json!({"file": file, "valid": false, "error": e.to_string()}),
                Err(Failure::Invalid(problems)) => json!({"file": file, "valid": false, "problems": problems.0}),
            });
            continue;
        }
        match &result {
            Ok(plan) => {
                outln!("{}: ok ({} v{}, {} steps)", file.display(), plan.name, plan.version, plan.all_steps().len());
                for warning in validate::warnings(plan) {
                    eprintln!("{}: warning: {warning}", file.display());
                }
            }
            Err(failure) => report(file, failure),
        }
    }
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::from(code))
}

/// `weft graph`.
pub(crate) fn graph(file: &Path, format: Format) -> anyhow::Result<ExitCode> {
    match plan_of(file, None) {
        Ok(plan) => {
            out!("{}", export::render(&plan, format));
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            report(file, &failure);
            Ok(ExitCode::from(failure.code()))
        }
    }
}

fn load_weights(file: &Path) -> anyhow::Result<Weights> {
    let text =
        std::fs::read_to_string(file).map_err(|e| exit::usage(format!("cannot read {}: {e}", file.display())))?;
    let raw: BTreeMap<String, DurationDef> = serde_json::from_str(&text)
        .map_err(|e| exit::usage(format!("{} is not a JSON object of tool durations: {e}", file.display())))?;
    let mut weights = Weights::default();
    for (tool, d) in raw {
        let d = d
            .to_duration()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: tool `{tool}`", file.display()))?;
        weights.per_tool.insert(tool, d);
    }
    Ok(weights)
}

/// `weft analyze`.
pub(crate) fn analyze(file: &Path, durations: Option<&Path>, as_json: bool) -> anyhow::Result<ExitCode> {
    let weights = durations.map(load_weights).transpose()?.unwrap_or_default();
    let plan = match plan_of(file, None) {
        Ok(plan) => plan,
        Err(failure) => {
            report(file, &failure);
            return Ok(ExitCode::from(failure.code()));
        }
    };
    let a = analysis::analyze(&plan, &weights);
    if as_json {
        let mut value = serde_json::to_value(&a)?;
        if let Value::Object(m) = &mut value {
            m.insert("critical_path_steps".into(), json!(a.critical_path.len()));
        }
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let list = |ids: &[String]| ids.join(", ");
    outln!("{} v{}: {} steps ({} in all, nested included)", a.name, plan.version, a.steps, a.total_steps);
    let levels: Vec<String> = a.levels.iter().map(|l| format!("[{}]", list(l))).collect();
    outln!("levels ({}): {}", a.levels.len(), levels.join(" "));
    outln!("max parallelism: {} ({})", a.max_parallelism, list(&a.widest));
    outln!(
        "critical path: {} ({} steps, {})",
        a.critical_path.join(" -> "),
        a.critical_path.len(),
        format_length(a.critical_length, a.unit)
    );
    if a.critical_length > 0.0 {
        outln!(
            "one after another: {}; parallel speed-up at most {:.2}x",
            format_length(a.sequential_length, a.unit),
            a.sequential_length / a.critical_length
        );
    }
    if !a.unestimated.is_empty() {
        outln!("no duration known for: {} (counted as 0)", list(&a.unestimated));
    }
    Ok(ExitCode::SUCCESS)
}
