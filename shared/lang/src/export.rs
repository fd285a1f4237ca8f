//! Drawings of a plan: Mermaid (`flowchart`) and Graphviz DOT, and the same graph as data
//! ([`graph`]) for a drawing of one's own (the web UI's).
//!
//! Each step is a node labelled with its id and what it does. Data dependencies are
//! solid arrows, condition-only reads are dotted arrows labelled `when`, explicit
//! `depends_on` ordering is dotted. A construct is a node of its own, and its body a
//! cluster linked from it; steps with a `when` are drawn as hexagons.

use std::fmt::Write;

use serde::Serialize;

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

/// What a dependency is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    /// The step reads the other's output.
    Data,
    /// Only its condition reads it.
    When,
    /// `depends_on`: it waits for it without reading it.
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

/// The plan as data: every step a node in the scope of its siblings (`top`, or a construct's
/// body `<construct id>#<body index>`), edges among siblings only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Every step of the plan, bodies included.
    pub nodes: Vec<Node>,
    /// Dependencies, each between two nodes of one scope.
    pub edges: Vec<GraphEdge>,
    /// The top scope first, then each construct's bodies in document order.
    pub scopes: Vec<Scope>,
}

/// A step in a [`Graph`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Its id (unique in the plan).
    pub id: String,
    /// Its id and what it does, as the other drawings label it.
    pub label: String,
    /// Its kind's keyword (`task`, `for_each`, `signal`...).
    pub kind: &'static str,
    /// The tool it calls, if a task.
    pub tool: Option<String>,
    /// Whether it has a `when`.
    pub when: bool,
    /// The scope it is in.
    pub scope: String,
}

/// A dependency in a [`Graph`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphEdge {
    /// The step depended on.
    pub from: String,
    /// The step that depends.
    pub to: String,
    /// `data` (it reads the output), `when` (its condition does) or `order` (`depends_on`).
    pub kind: Edge,
    /// The scope both are in.
    pub scope: String,
}

/// A set of sibling steps: the top level or a construct's body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scope {
    /// `top`, or `<construct id>#<body index>`.
    pub id: String,
    /// The construct whose body it is.
    pub owner: Option<String>,
    /// How to title it.
    pub label: String,
}

/// The plan as a [`Graph`].
pub fn graph(plan: &Plan) -> Graph {
    let mut g = Graph { nodes: Vec::new(), edges: Vec::new(), scopes: Vec::new() };
    g.scopes.push(Scope { id: "top".to_owned(), owner: None, label: plan.name.clone() });
    graph_block(&plan.steps, "top", &mut g);
    g
}

fn graph_block(steps: &[Step], scope: &str, g: &mut Graph) {
    for s in steps {
        g.nodes.push(Node {
            id: s.id.clone(),
            label: label(s),
            kind: s.kind.keyword(),
            tool: s.tool().map(str::to_owned),
            when: s.when.is_some(),
            scope: scope.to_owned(),
        });
    }
    for (from, to, kind) in edges(steps) {
        g.edges.push(GraphEdge { from: from.to_owned(), to: to.to_owned(), kind, scope: scope.to_owned() });
    }
    for s in steps {
        let bodies = s.children();
        let several = bodies.len() > 1;
        for (i, body) in bodies.into_iter().enumerate() {
            let id = format!("{}#{i}", s.id);
            let label = if several { format!("{} body {}", s.id, i + 1) } else { format!("{} body", s.id) };
            g.scopes.push(Scope { id: id.clone(), owner: Some(s.id.clone()), label });
            graph_block(body, &id, g);
        }
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

    #[test]
    fn the_graph_as_data_keeps_bodies_in_scopes_of_their_own() {
        let g = graph(&plan());
        let scope = |id: &str| g.nodes.iter().find(|n| n.id == id).map(|n| n.scope.as_str());
        assert_eq!(scope("a"), Some("top"));
        assert_eq!(scope("one"), Some("m#0"));
        assert_eq!(g.scopes.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["top", "m#0"]);
        let b = g.nodes.iter().find(|n| n.id == "b").expect("b");
        assert!(b.when && b.kind == "tool" && b.tool.as_deref() == Some("check"));
        let json = serde_json::to_value(&g).expect("serialises");
        assert!(
            json["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .any(|e| e["from"] == "a" && e["to"] == "b" && e["kind"] == "when")
        );
        assert!(g.edges.iter().all(|e| e.scope == "top"));
    }
}
