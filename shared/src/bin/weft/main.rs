//! `weft`: the command line of Weft.
//!
//! Offline commands read workflow files: `validate`, `graph`, `analyze`.

mod offline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Weft: distributed workflows of tool calls.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check workflow files; print every problem with its place. Exit 0 only if all are valid.
    Validate {
        /// Workflow files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Tool catalogue (JSON list of {name, params: JSON Schema}) to check tools and params against.
        #[arg(long, env = "WEFT_TOOLS")]
        tools: Option<PathBuf>,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Draw a workflow's graph as Mermaid or DOT.
    Graph {
        /// Workflow file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Show execution levels, maximal parallelism and the critical path.
    Analyze {
        /// Workflow file.
        file: PathBuf,
        /// Per-tool durations: a JSON object {"tool": "500ms" | seconds}.
        #[arg(long)]
        durations: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Drawing formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files, tools, json } => offline::validate(&files, tools.as_deref(), json),
        Command::Graph { file, format } => offline::graph(
            &file,
            match format {
                GraphFormat::Mermaid => weft_shared::export::Format::Mermaid,
                GraphFormat::Dot => weft_shared::export::Format::Dot,
            },
        ),
        Command::Analyze { file, durations, json } => offline::analyze(&file, durations.as_deref(), json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
