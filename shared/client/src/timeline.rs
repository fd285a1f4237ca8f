//! A run's timeline for people: a table of attempts, a Gantt chart, and a summary with
//! per-tool figures (the seed's WorkflowMonitor, from a real run record).

use std::collections::BTreeMap;
use std::fmt::Write;

use weft_lang::definition::Budget;
use weft_protocol::wire::{Attempt, Millis, RunRecord, Spend, StepStatus};

/// One attempt of one step, relative to the run's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Step id.
    pub step: String,
    /// Tool, if a task.
    pub tool: String,
    /// Step status (of the step, shown on its last attempt).
    pub status: String,
    /// Attempt number (0 for a step that never ran).
    pub attempt: u32,
    /// Worker that ran it.
    pub worker: String,
    /// Start, ms after the run was created.
    pub start: Option<Millis>,
    /// End, ms after the run was created.
    pub end: Option<Millis>,
    /// What went wrong, if anything.
    pub note: String,
}

/// The rows of a record, in document order, one per attempt.
pub fn rows(record: &RunRecord) -> Vec<Row> {
    let t0 = record.created_ms;
    let mut out = Vec::new();
    for id in &record.order {
        let Some(step) = record.steps.get(id) else { continue };
        let status = format!("{:?}", step.status).to_lowercase();
        let tool = step.tool.clone().unwrap_or_default();
        if step.attempts.is_empty() {
            out.push(Row {
                step: id.clone(),
                tool,
                status,
                attempt: 0,
                worker: String::new(),
                start: None,
                end: None,
                note: step.reason.clone().unwrap_or_default(),
            });
            continue;
        }
        out.extend(attempt_rows(id, &tool, &status, &step.attempts, t0));
    }
    // Compensations, in the order they ran (a saga undoes in reverse order of completion).
    let mut undo: Vec<Row> = Vec::new();
    for id in &record.order {
        let Some(c) = record.steps.get(id).and_then(|s| s.compensation.as_ref()) else { continue };
        let status = format!("{:?}", c.status).to_lowercase();
        undo.extend(attempt_rows(&format!("undo {id}"), &c.tool, &status, &c.attempts, t0));
    }
    undo.sort_by_key(|r| r.start);
    out.extend(undo);
    out
}

/// One row per attempt; earlier attempts show as `retried`, the last as `status`.
fn attempt_rows(step: &str, tool: &str, status: &str, attempts: &[Attempt], t0: Millis) -> Vec<Row> {
    let rel = |t: Millis| t.saturating_sub(t0);
    let last = attempts.len().saturating_sub(1);
    attempts
        .iter()
        .enumerate()
        .map(|(i, a)| Row {
            step: step.to_owned(),
            tool: tool.to_owned(),
            status: if i == last { status.to_owned() } else { "retried".to_owned() },
            attempt: a.attempt,
            worker: a.worker.clone().unwrap_or_default(),
            start: Some(rel(a.started_ms.unwrap_or(a.dispatched_ms))),
            end: a.finished_ms.map(rel),
            note: attempt_note(a),
        })
        .collect()
}

/// An attempt's error, and what it spent on a model.
fn attempt_note(a: &Attempt) -> String {
    let spent = a.usage.as_ref().map(|u| {
        let cost = a.cost.filter(|c| *c > 0.0).map(|c| format!(", cost {c:.4}")).unwrap_or_default();
        format!("{} tokens ({}{cost})", u.total(), u.model)
    });
    let error = a.error.as_ref().map(|e| e.to_string());
    [spent, error].into_iter().flatten().collect::<Vec<_>>().join("; ")
}

/// What a run spent on models, against its budget: `1200 tokens of 5000, cost 0.0120 of 1.0000`.
pub fn spend_text(spent: &Spend, budget: Option<&Budget>) -> String {
    let of = |limit: Option<String>| limit.map(|l| format!(" of {l}")).unwrap_or_default();
    let tokens = of(budget.and_then(|b| b.tokens).map(|t| t.to_string()));
    let cost = of(budget.and_then(|b| b.cost).map(|c| format!("{c:.4}")));
    let held = if spent.reserved_tokens > 0 { format!(" ({} held)", spent.reserved_tokens) } else { String::new() };
    format!("{} tokens{tokens}{held}, cost {:.4}{cost}", spent.tokens, spent.cost)
}

fn ms(v: Option<Millis>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v}ms"))
}

/// The attempts as an aligned table.
pub fn table(record: &RunRecord) -> String {
    let rows = rows(record);
    let header = ["STEP", "TOOL", "STATUS", "TRY", "WORKER", "START", "END", "TOOK", "NOTE"];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let took = match (r.start, r.end) {
                (Some(s), Some(e)) => format!("{}ms", e.saturating_sub(s)),
                _ => "-".to_owned(),
            };
            [
                r.step.clone(),
                r.tool.clone(),
                r.status.clone(),
                if r.attempt == 0 { "-".to_owned() } else { r.attempt.to_string() },
                if r.worker.is_empty() { "-".to_owned() } else { r.worker.clone() },
                ms(r.start),
                ms(r.end),
                took,
                r.note.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cols: &[String]| {
        let mut text = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                text.push_str(c);
            } else {
                let _ = write!(text, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &header.map(str::to_owned));
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// The attempts as a Gantt chart `width` columns wide, on an axis as long as the run (so
/// far, while it runs). Times outside the run (a worker's clock that is off) are drawn at
/// its edges; an attempt without an end is drawn to the end of the axis, lighter.
pub fn gantt(record: &RunRecord, width: usize) -> String {
    let width = width.max(1);
    let rows = rows(record);
    let known_end = rows.iter().filter_map(|r| r.end.or(r.start)).max().unwrap_or(0);
    let end = record.finished_ms.map_or(known_end, |f| f.saturating_sub(record.created_ms)).max(1);
    // Column of a time on the axis, in u128 so no time can overflow the product.
    let column = |t: Millis, round_up: bool| -> usize {
        let t = u128::from(t.min(end));
        let scaled = t * width as u128;
        let c = if round_up { scaled.div_ceil(u128::from(end)) } else { scaled / u128::from(end) };
        usize::try_from(c).unwrap_or(width).min(width)
    };
    let label = rows.iter().map(|r| r.step.chars().count() + 4).max().unwrap_or(4);
    let mut out = String::new();
    for r in &rows {
        let Some(s) = r.start else { continue };
        let e = r.end.unwrap_or(end).max(s);
        let from = column(s, false).min(width - 1);
        let to = column(e, true).max(from + 1).min(width);
        let bar = match (r.status.as_str(), r.end) {
            ("completed", _) => '█',
            (_, None) => '▒',
            _ => '░',
        };
        let name = if r.attempt > 1 { format!("{} #{}", r.step, r.attempt) } else { r.step.clone() };
        let took = r.end.map_or_else(|| "-".to_owned(), |e| format!("{}ms", e.saturating_sub(s)));
        let _ = writeln!(
            out,
            "{name:<label$} |{}{}{}| {took}",
            " ".repeat(from),
            bar.to_string().repeat(to - from),
            " ".repeat(width - to),
        );
    }
    let _ = writeln!(out, "{:<label$} 0{:>w$}", "", format!("{end}ms"), w = width + 1);
    out
}

/// Totals for a run.
///
/// Steps are counted at the top level: a construct is one step, however its body went
/// (a `fallback` won by its third alternative is one completed step); the attempts inside
/// constructs are in the per-tool figures. The **success rate** is the share of completed
/// steps among the top-level steps that ended completed or failed (skipped and cancelled
/// steps are left out); with none, it is 100%.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Run duration so far, or in all.
    pub total_ms: Millis,
    /// Top-level steps that completed.
    pub completed: usize,
    /// Top-level steps that failed.
    pub failed: usize,
    /// Top-level steps that were skipped.
    pub skipped: usize,
    /// Top-level steps that are running or waiting.
    pub running: usize,
    /// Top-level steps that were cancelled or have not started.
    pub other: usize,
    /// Completed among the top-level steps that completed or failed, in percent.
    pub success_rate: f64,
    /// Per tool, over every attempt at every depth.
    pub per_tool: BTreeMap<String, ToolFigures>,
}

/// One tool's attempts in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ToolFigures {
    /// Attempts in all.
    pub attempts: usize,
    /// Attempts that ended in failure.
    pub failed: usize,
    /// Attempts still in flight.
    pub running: usize,
    /// Time spent in the attempts that ended, in ms.
    pub total_ms: Millis,
}

/// Sums a record up.
pub fn summary(record: &RunRecord, now: Millis) -> Summary {
    let mut s = Summary {
        total_ms: record.finished_ms.unwrap_or(now).saturating_sub(record.created_ms),
        completed: 0,
        failed: 0,
        skipped: 0,
        running: 0,
        other: 0,
        success_rate: 100.0,
        per_tool: BTreeMap::new(),
    };
    for step in record.steps.values() {
        if step.within.is_none() {
            match step.status {
                StepStatus::Completed => s.completed += 1,
                StepStatus::Failed => s.failed += 1,
                StepStatus::Skipped => s.skipped += 1,
                StepStatus::Running | StepStatus::Retrying => s.running += 1,
                StepStatus::Pending | StepStatus::Cancelled => s.other += 1,
            }
        }
        if let Some(tool) = &step.tool {
            for a in &step.attempts {
                let e = s.per_tool.entry(tool.clone()).or_default();
                e.attempts += 1;
                match a.finished_ms {
                    None => e.running += 1,
                    Some(f) => {
                        e.failed += usize::from(!a.ok);
                        let started = a.started_ms.unwrap_or(a.dispatched_ms);
                        e.total_ms = e.total_ms.saturating_add(f.saturating_sub(started));
                    }
                }
            }
        }
    }
    let ended = s.completed + s.failed;
    if ended > 0 {
        s.success_rate = 100.0 * s.completed as f64 / ended as f64;
    }
    s
}

/// The summary as text, with the slowest tool named as the bottleneck.
pub fn summary_text(record: &RunRecord, now: Millis) -> String {
    let s = summary(record, now);
    let mut extra = String::new();
    if s.running > 0 {
        extra.push_str(&format!(", {} running", s.running));
    }
    if s.other > 0 {
        extra.push_str(&format!(", {} not run", s.other));
    }
    let mut out = format!(
        "total {}ms; {} completed, {} failed, {} skipped{extra}; success rate {:.0}%\n",
        s.total_ms, s.completed, s.failed, s.skipped, s.success_rate
    );
    let average = |f: &ToolFigures| f.total_ms / (f.attempts.saturating_sub(f.running) as u64).max(1);
    for (tool, f) in &s.per_tool {
        let running = if f.running > 0 { format!(", {} running", f.running) } else { String::new() };
        let _ =
            writeln!(out, "  {tool}: {} attempt(s), {} failed{running}, avg {}ms", f.attempts, f.failed, average(f));
    }
    if s.per_tool.len() > 1
        && let Some((tool, _)) = s.per_tool.iter().max_by_key(|(_, f)| average(f))
    {
        let _ = writeln!(out, "  bottleneck: {tool}");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;
    use weft_protocol::wire::{Attempt, RunStatus, StepRecord, ToolError};

    fn record() -> RunRecord {
        let attempt = |n: u32, start: u64, end: u64, ok: bool| Attempt {
            attempt: n,
            dispatched_ms: start,
            worker: Some("w1".into()),
            started_ms: Some(start),
            finished_ms: Some(end),
            error: (!ok).then(|| ToolError::new("boom")),
            ok,
            usage: None,
            cost: None,
        };
        let mut steps = BTreeMap::new();
        steps.insert(
            "a".to_owned(),
            StepRecord {
                status: StepStatus::Completed,
                tool: Some("t".into()),
                output: Some(json!(1)),
                reason: None,
                attempts: vec![attempt(1, 1000, 1100, false), attempt(2, 1200, 1300, true)],
                compensation: None,
                within: None,
                plans: Vec::new(),
                params: None,
                child: None,
            },
        );
        steps.insert(
            "b".to_owned(),
            StepRecord {
                status: StepStatus::Skipped,
                tool: Some("u".into()),
                output: None,
                reason: Some("no".into()),
                attempts: vec![],
                compensation: None,
                within: None,
                plans: Vec::new(),
                params: None,
                child: None,
            },
        );
        RunRecord {
            run_id: Uuid::nil(),
            workflow: "w".into(),
            version: 1,
            status: RunStatus::Completed,
            parent: None,
            input: Value::Null,
            output: None,
            steps,
            order: vec!["a".into(), "b".into()],
            errors: vec![],
            created_ms: 1000,
            finished_ms: Some(1400),
            abridged: None,
            fingerprint: None,
            rerun_of: None,
            signals: BTreeMap::new(),
            spent: None,
            budget: None,
        }
    }

    #[test]
    fn table_has_a_row_per_attempt() {
        let t = table(&record());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[1].starts_with("a") && lines[1].contains("retried") && lines[1].contains("boom"), "{t}");
        assert!(lines[2].contains("completed") && lines[2].contains("200ms") && lines[2].contains("300ms"), "{t}");
        assert!(lines[3].contains("skipped") && lines[3].contains("no"), "{t}");
    }

    #[test]
    fn gantt_scales_bars() {
        let g = gantt(&record(), 30);
        assert!(g.contains("a #2"), "{g}");
        assert!(g.lines().count() >= 3, "{g}");
    }

    #[test]
    fn times_from_outside_cannot_overflow_or_stretch_the_chart() {
        for (start, end) in [(u64::MAX, u64::MAX), (0, u64::MAX), (0, 0), (999, 5)] {
            let mut r = record();
            let a = &mut r.steps.get_mut("a").expect("step a").attempts[1];
            (a.started_ms, a.finished_ms) = (Some(start), Some(end));
            let chart = gantt(&r, 40);
            assert!(chart.lines().all(|l| l.chars().count() < 120), "{chart}");
            assert!(chart.ends_with("400ms\n"), "the axis is the run's 400 ms: {chart}");
            let s = summary(&r, u64::MAX);
            assert!(s.total_ms <= 400, "{s:?}");
            let _ = table(&r);
        }
    }

    #[test]
    fn summary_counts() {
        let s = summary(&record(), 0);
        assert_eq!((s.completed, s.skipped, s.total_ms), (1, 1, 400));
        assert_eq!(s.per_tool["t"], ToolFigures { attempts: 2, failed: 1, running: 0, total_ms: 200 });
        assert_eq!(s.success_rate, 100.0);
    }

    #[test]
    fn a_run_won_by_a_fallback_succeeded_and_in_flight_attempts_are_not_failures() {
        let attempt = |finished: Option<u64>, ok: bool| Attempt {
            attempt: 1,
            dispatched_ms: 1000,
            worker: Some("w1".into()),
            started_ms: Some(1000),
            finished_ms: finished,
            error: None,
            ok,
            usage: None,
            cost: None,
        };
        let step = |status, tool: Option<&str>, attempts, within: Option<&str>| StepRecord {
            status,
            tool: tool.map(str::to_owned),
            output: None,
            reason: None,
            attempts,
            compensation: None,
            within: within.map(str::to_owned),
            plans: Vec::new(),
            params: None,
            child: None,
        };
        let mut r = record();
        r.steps.clear();
        r.steps.insert("weather".into(), step(StepStatus::Completed, None, vec![], None));
        r.steps.insert(
            "primary".into(),
            step(StepStatus::Failed, Some("api"), vec![attempt(Some(1100), false)], Some("weather")),
        );
        r.steps.insert(
            "backup".into(),
            step(StepStatus::Completed, Some("api"), vec![attempt(Some(1200), true)], Some("weather")),
        );
        r.steps.insert("slow".into(), step(StepStatus::Running, Some("nap"), vec![attempt(None, false)], None));
        r.order = vec!["weather".into(), "primary".into(), "backup".into(), "slow".into()];
        let s = summary(&r, 1500);
        assert_eq!((s.completed, s.failed, s.running), (1, 0, 1));
        assert_eq!(s.success_rate, 100.0, "the fallback won: the run's steps succeeded");
        assert_eq!(s.per_tool["api"], ToolFigures { attempts: 2, failed: 1, running: 0, total_ms: 300 });
        assert_eq!(s.per_tool["nap"], ToolFigures { attempts: 1, failed: 0, running: 1, total_ms: 0 });
        assert!(
            summary_text(&r, 1500).contains("nap: 1 attempt(s), 0 failed, 1 running"),
            "{}",
            summary_text(&r, 1500)
        );
    }
}
