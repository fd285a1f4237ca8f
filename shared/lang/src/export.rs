//! Drawings of a plan: Mermaid (`flowchart`) and Graphviz DOT.
//!
//! Each step is a node labelled with its id and what it does. Data dependencies are
//! solid arrows, condition-only reads are dotted arrows labelled `when`, explicit
//! `depends_on` ordering is dotted. A construct is a node of its own, and its body a
//! cluster linked from it; steps with a `when` are drawn as hexagons.

use std::fmt::Write;

use crate::plan::{Kind, Plan, Step};

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Draws the plan.
pub fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(plan),
        Format::Dot => dot(plan),
    }
}

fn label(step: &Step) -> String {
    match &step.kind {
        Kind::Task { tool, .. } if *tool == step.id => step.id.clone(),
        Kind::Task { tool, .. } => format!("{}\n{tool}", step.id),
        other => format!("{}\n{}", step.id, other.keyword()),
    }
}

/// Every edge among siblings: (from, to, style).
fn edges(steps: &[Step]) -> Vec<(&str, &str, Edge)> {
    let mut out = Vec::new();
    for s in steps {
        for d in &s.needs {
            out.push((d.as_str(), s.id.as_str(), Edge::Data));
        }
        for d in &s.watches {
            out.push((d.as_str(), s.id.as_str(), Edge::When));
        }
        for d in s.after.iter().filter(|d| !s.needs.contains(*d) && !s.watches.contains(*d)) {
            out.push((d.as_str(), s.id.as_str(), Edge::Order));
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Data,
    When,
    Order,
}

/// Mermaid node ids must be plain: number the steps.
struct Ids(Vec<String>);

impl Ids {
    fn of(&self, id: &str) -> String {
        self.0.iter().position(|x| x == id).map_or_else(|| "unknown".to_owned(), |i| format!("s{i}"))
    }
}

fn mermaid(plan: &Plan) -> String {
    let ids = Ids(plan.all_steps().iter().map(|s| s.id.clone()).collect());
    let mut out = String::from("flowchart TD\n");
    mermaid_block(&plan.steps, &ids, 1, &mut out);
    out
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', "<br/>")
}

fn mermaid_block(steps: &[Step], ids: &Ids, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    for s in steps {
        let n = ids.of(&s.id);
        let text = mermaid_text(&label(s));
        let _ = match (&s.when, s.children().is_empty()) {
            (Some(_), _) => writeln!(out, "{pad}{n}{{{{\"{text}\"}}}}"),
            (None, true) => writeln!(out, "{pad}{n}[\"{text}\"]"),
            (None, false) => writeln!(out, "{pad}{n}[[\"{text}\"]]"),
        };
        for (i, child) in s.children().into_iter().enumerate() {
            let _ = writeln!(out, "{pad}subgraph {n}_body{i} [\"{} body\"]", mermaid_text(&s.id));
            mermaid_block(child, ids, depth + 1, out);
            let _ = writeln!(out, "{pad}end");
            let _ = writeln!(out, "{pad}{n} -.- {n}_body{i}");
        }
    }
    for (from, to, edge) in edges(steps) {
        let arrow = match edge {
            Edge::Data => "-->",
            Edge::When => "-. when .->",
            Edge::Order => "-.->",
        };
        let _ = writeln!(out, "{pad}{} {arrow} {}", ids.of(from), ids.of(to));
    }
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn dot(plan: &Plan) -> String {
    let mut out =
        format!("digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, style=rounded];\n", dot_text(&plan.name));
    dot_block(&plan.steps, 1, &mut out);
    out.push_str("}\n");
    out
}

fn dot_block(steps: &[Step], depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    for s in steps {
        let shape = match (&s.when, s.children().is_empty()) {
            (Some(_), _) => ", shape=hexagon",
            (None, true) => "",
            (None, false) => ", shape=box3d",
        };
        let _ = writeln!(out, "{pad}\"{}\" [label=\"{}\"{shape}];", dot_text(&s.id), dot_text(&label(s)));
        for (i, child) in s.children().into_iter().enumerate() {
            let cluster = format!("cluster_{}_{i}", s.id.replace(|c: char| !c.is_alphanumeric(), "_"));
            let _ = writeln!(
                out,
                "{pad}subgraph \"{cluster}\" {{\n{pad}    label=\"{} body\"; style=dashed;",
                dot_text(&s.id)
            );
            dot_block(child, depth + 1, out);
            let _ = writeln!(out, "{pad}}}");
            for entry in child.iter().filter(|c| c.dependencies().is_empty()) {
                let _ = writeln!(
                    out,
                    "{pad}\"{}\" -> \"{}\" [style=dotted, arrowhead=none];",
                    dot_text(&s.id),
                    dot_text(&entry.id)
                );
            }
        }
    }
    for (from, to, edge) in edges(steps) {
        let style = match edge {
            Edge::Data => "",
            Edge::When => " [style=dotted, label=\"when\"]",
            Edge::Order => " [style=dashed]",
        };
        let _ = writeln!(out, "{pad}\"{}\" -> \"{}\"{style};", dot_text(from), dot_text(to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::WorkflowDef;
    use crate::validate::compile;

    fn plan() -> Plan {
        let json = r#"{"name": "x", "steps": [
            {"id": "a", "tool": "fetch"},
            {"id": "b", "tool": "check", "when": {"exists": "{a.ok}"}},
            {"id": "c", "tool": "c", "params": {"v": "{a}"}, "depends_on": ["b"]},
            {"id": "m", "for_each": {"items": "{a.list}", "do": [{"id": "one", "tool": "t"}]}}
        ]}"#;
        compile(&WorkflowDef::from_json(json).expect("parses"), None).expect("valid")
    }

    #[test]
    fn mermaid_draws_every_kind_of_edge() {
        let m = render(&plan(), Format::Mermaid);
        assert!(m.starts_with("flowchart TD\n"));
        assert!(m.contains("s0[\"a<br/>fetch\"]"), "{m}");
        assert!(m.contains("s1{{\"b<br/>check\"}}"), "{m}");
        assert!(m.contains("s0 --> s2"), "{m}");
        assert!(m.contains("s0 -. when .-> s1"), "{m}");
        assert!(m.contains("s1 -.-> s2"), "{m}");
        assert!(m.contains("subgraph s3_body0"), "{m}");
    }

    #[test]
    fn dot_draws_every_kind_of_edge() {
        let d = render(&plan(), Format::Dot);
        assert!(d.starts_with("digraph \"x\" {"));
        assert!(d.contains("\"a\" -> \"c\";"), "{d}");
        assert!(d.contains("\"a\" -> \"b\" [style=dotted, label=\"when\"];"), "{d}");
        assert!(d.contains("\"b\" -> \"c\" [style=dashed];"), "{d}");
        assert!(d.contains("subgraph \"cluster_m_0\""), "{d}");
        assert!(d.trim_end().ends_with('}'));
    }
}
