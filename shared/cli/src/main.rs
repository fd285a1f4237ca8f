//! `weft`: the command line of Weft.
//!
//! Offline commands read workflow files (`validate`, `graph`, `analyze`); online commands
//! talk to coordinators and workers over NATS (`run`, `submit`, `status`, `watch`,
//! `cancel`, `pause`, `resume`, `signal`, `list`, `tools`); `mcp` serves the registered
//! workflows to MCP clients.

/// Prints a line to stdout; a closed pipe (`weft tools | head`) ends the program quietly.
macro_rules! outln {
    () => { $crate::write_out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($t)*))) };
}

/// Prints to stdout, as [`outln`] without the newline.
macro_rules! out {
    ($($t:tt)*) => { $crate::write_out(format_args!($($t)*)) };
}

mod exit;
mod mcp;
mod offline;
mod online;
mod plan;
mod profile;
mod redrive;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use weft_client::{ClientOptions, WeftClient};

/// Weft: distributed workflows of tool calls.
///
/// Exit codes: 0 done (a run completed), 1 a run did not complete or a request was
/// refused, 2 usage, 3 not found, 4 cannot reach NATS or a coordinator, 5 refused as
/// invalid, 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    /// NATS server URL (online commands; default nats://127.0.0.1:4222, or the profile's);
    /// credentials as in nats://user:password@host:4222.
    #[arg(long = "nats", env = "NATS_URL", global = true, hide_env_values = true)]
    nats_url: Option<String>,
    /// How long connecting and each answer may take (online commands), e.g. 10s, 1m
    /// (default 10s, or the profile's).
    #[arg(long, env = "WEFT_TIMEOUT", value_parser = humantime::parse_duration, global = true)]
    timeout: Option<std::time::Duration>,
    /// A named profile of the config file (~/.config/weft/config.toml, or WEFT_CONFIG):
    /// its URL, user, password file and timeout.
    #[arg(long, env = "WEFT_PROFILE", global = true)]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Which workflow: a file, or a registered name (and version).
#[derive(Debug, Args)]
struct WorkflowArgs {
    /// Workflow file (`-` reads it from standard input).
    #[arg(required_unless_present = "name")]
    file: Option<PathBuf>,
    /// A registered workflow's name (see `weft deploy`).
    #[arg(long, conflicts_with = "file")]
    name: Option<String>,
    /// Its version (default: the latest).
    #[arg(long, requires = "name")]
    version: Option<u32>,
    /// A business key (an order number...): the same key names the same run, so a submit
    /// repeated with it (and the same workflow and input) makes no second run and follows
    /// the first; with another input it is refused.
    #[arg(long, visible_alias = "id", value_name = "KEY")]
    key: Option<String>,
    /// Whether the key may start a new run once its run has ended.
    #[arg(long, value_enum, default_value_t = ReuseArg::Refuse, requires = "key")]
    reuse: ReuseArg,
}

/// `--reuse`: see [`weft_client::Reuse`].
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReuseArg {
    /// The key's run, ended or not, is the one run: a repeat follows it.
    Refuse,
    /// Once the key's run has ended, a repeat starts a new run.
    AllowIfEnded,
}

impl WorkflowArgs {
    /// The business key and its reuse policy, if a key was given.
    fn keyed(&self) -> Option<(&str, weft_client::Reuse)> {
        let reuse = match self.reuse {
            ReuseArg::Refuse => weft_client::Reuse::Refuse,
            ReuseArg::AllowIfEnded => weft_client::Reuse::AllowIfEnded,
        };
        self.key.as_deref().map(|key| (key, reuse))
    }
}

/// The run's input.
#[derive(Debug, Args)]
struct InputArgs {
    /// Input as JSON text.
    #[arg(long)]
    input: Option<String>,
    /// Input from a JSON file.
    #[arg(long, conflicts_with = "input")]
    input_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check workflow files; print every problem with its place. Exit 0 only if all are valid.
    Validate {
        /// Workflow files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Tool catalogues (JSON lists of {name, params: JSON Schema}) to check tools and params
        /// against; several (repeated, or comma-separated) are merged.
        #[arg(long, env = "WEFT_TOOLS", value_delimiter = ',')]
        tools: Vec<PathBuf>,
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
    /// Print the workflow format as a JSON Schema (the one in docs/workflow.schema.json).
    Schema,
    /// Submit a workflow, follow it, print its outcome and timeline. Exit 0 only if it completed.
    Run {
        #[command(flatten)]
        workflow: WorkflowArgs,
        #[command(flatten)]
        input: InputArgs,
        /// Print the final record as JSON.
        #[arg(long)]
        json: bool,
        /// Do not print events as they happen.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Have a model write a workflow for GOAL from the live tools; print it once the
    /// coordinator found it valid (or run it with --run). Needs a worker serving `llm`.
    Plan {
        /// What the workflow must achieve.
        goal: String,
        /// Tools it may call, comma-separated [default: every tool workers offer but llm].
        #[arg(long, value_delimiter = ',')]
        tools: Vec<String>,
        /// The model [default: the worker's WEFT_LLM_MODEL].
        #[arg(long)]
        model: Option<String>,
        /// Times the model may repair an invalid plan [default: 3].
        #[arg(long)]
        max_repairs: Option<u32>,
        /// Run the plan and print its output instead of the plan.
        #[arg(long)]
        run: bool,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Submit a workflow and print its run id at once.
    Submit {
        #[command(flatten)]
        workflow: WorkflowArgs,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Register a workflow under its name and version (validated against live tools).
    Deploy {
        /// Workflow files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List registered workflows.
    Definitions,
    /// Show a run: status, output, timeline, summary.
    Status {
        /// Run id.
        id: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
        /// Draw the timeline as a Gantt chart too.
        #[arg(long)]
        gantt: bool,
    },
    /// Follow a run's lifecycle events until it ends.
    Watch {
        /// Run id.
        id: String,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run.
    Cancel {
        /// Run id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Undo what the run completed first: its compensations run, then it ends cancelled.
        #[arg(long)]
        compensate: bool,
    },
    /// End a run at once, whatever it is doing (compensating included), undoing nothing:
    /// running tools are told to stop and it ends `cancelled`, noted as terminated.
    Terminate {
        /// Run id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Carry a failed, timed-out or cancelled run on from where it stopped: completed steps
    /// keep their outputs, the others run again. Says first which, and acts only with --yes.
    Redrive {
        /// Run id.
        id: String,
        /// The workflow file it was submitted with, if it was submitted inline (not deployed).
        file: Option<PathBuf>,
        /// Do it (without it, only say what would run again).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Start a new run of an ended run's workflow from a top-level step: it and what waits
    /// for it run, the other steps' outputs are carried over. Says first what runs, and
    /// acts only with --yes.
    Rerun {
        /// Run id.
        id: String,
        /// The workflow file it was submitted with, if it was submitted inline.
        file: Option<PathBuf>,
        /// The top-level step to run again from.
        #[arg(long, value_name = "STEP")]
        from: String,
        #[command(flatten)]
        input: InputArgs,
        /// Do it (without it, only say what would run).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Pause a run: running steps finish, nothing new starts until `weft resume`.
    Pause {
        /// Run id.
        id: String,
    },
    /// Resume a paused run, or one out of budget (adding to its budget).
    Resume {
        /// Run id.
        id: String,
        /// Tokens added to the run's budget.
        #[arg(long)]
        add_tokens: Option<u64>,
        /// Cost added to the run's budget.
        #[arg(long)]
        add_cost: Option<f64>,
    },
    /// Send data to a run's `signal` step waiting for NAME (e.g. a human approval).
    Signal {
        /// Run id.
        id: String,
        /// Signal name.
        name: String,
        /// Data, as JSON (default `{}`).
        data: Option<String>,
    },
    /// List recent runs, newest first.
    List {
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resource pools: capacity, the steps holding units and those waiting; `set` a capacity.
    Pools {
        #[command(subcommand)]
        action: Option<PoolsAction>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the registered workflows as the tools of an MCP server (stdio, or Streamable
    /// HTTP on --http): a call runs the workflow and returns its output.
    Mcp {
        /// Serve Streamable HTTP on this address (path /mcp) instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// A Host header to accept over HTTP besides the loopback names (repeatable): the
        /// name clients reach this server by, when it is not localhost (DNS rebinding
        /// protection refuses the others).
        #[arg(long = "allow-host", value_name = "HOST[:PORT]", requires = "http")]
        allow_hosts: Vec<String>,
    },
    /// Serve the web UI on --addr: runs (filtered, live), a run's graph, timeline, steps
    /// and events, and actions (cancel, pause, resume, signal). No login: anyone who can
    /// reach the address acts as this command's NATS user.
    Ui {
        /// Where to listen.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", env = "WEFT_UI_ADDR")]
        addr: std::net::SocketAddr,
        /// A Host header to accept besides the loopback names (repeatable): the name the
        /// browser reaches this server by, when it is not localhost.
        #[arg(long = "allow-host", value_name = "HOST[:PORT]", env = "WEFT_UI_ALLOW_HOSTS", value_delimiter = ',')]
        allow_hosts: Vec<String>,
        /// Jaeger's base URL (http://localhost:16686): a run's page links to its trace.
        #[arg(long, value_name = "URL", env = "WEFT_JAEGER_URL")]
        jaeger: Option<String>,
    },
    /// Print a shell's completion script: `weft completions bash > ~/.local/share/bash-completion/completions/weft`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// List the tools live workers offer.
    Tools {
        /// Print the advertisements as JSON.
        #[arg(long)]
        json: bool,
        /// Print the tools as LLM function-calling schemas.
        #[arg(long)]
        functions: bool,
    },
}

/// What `weft pools` does besides listing.
#[derive(Debug, Subcommand)]
enum PoolsAction {
    /// Set a pool's capacity (creating it): steps asking for `units` of NAME hold them
    /// while they run, across every run.
    Set {
        /// The pool.
        name: String,
        /// Its units.
        capacity: u32,
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

fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args)
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        // `weft ... | head`: the reader is gone; what was traced is sent before leaving.
        weft_service::telemetry::flush();
        std::process::exit(0);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files, tools, json } => offline::validate(&files, &tools, json),
        Command::Graph { file, format } => offline::graph(
            &file,
            match format {
                GraphFormat::Mermaid => weft_lang::export::Format::Mermaid,
                GraphFormat::Dot => weft_lang::export::Format::Dot,
            },
        ),
        Command::Analyze { file, durations, json } => offline::analyze(&file, durations.as_deref(), json),
        Command::Schema => {
            out!("{}", weft_lang::schema::workflow_schema_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "weft", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        online => profile::resolve(cli.nats_url, cli.timeout, cli.profile.as_deref())
            .and_then(|connection| run_online(&connection.url, connection.timeout, online)),
    };
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}

/// Whether a command changes something, and so is traced (reading is not).
fn traced(command: &Command) -> bool {
    matches!(
        command,
        Command::Run { .. }
            | Command::Plan { .. }
            | Command::Submit { .. }
            | Command::Deploy { .. }
            | Command::Cancel { .. }
            | Command::Redrive { .. }
            | Command::Terminate { .. }
            | Command::Rerun { .. }
            | Command::Pause { .. }
            | Command::Resume { .. }
            | Command::Signal { .. }
            | Command::Pools { action: Some(_), .. }
    )
}

fn run_online(url: &str, timeout: std::time::Duration, command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let telemetry = weft_service::telemetry::init_client("weft", traced(&command));
        let result = tokio::select! {
            result = run_command(url, timeout, command) => result,
            // Spans are flushed below either way.
            _ = tokio::signal::ctrl_c() => Ok(online::interrupted()),
        };
        telemetry.shutdown().await;
        result
    })
}

async fn run_command(url: &str, timeout: std::time::Duration, command: Command) -> anyhow::Result<ExitCode> {
    let client = WeftClient::connect_with(url, ClientOptions { timeout }).await?;
    match command {
        Command::Run { workflow, input, json, quiet } => {
            let def =
                online::workflow(&client, workflow.file.as_deref(), workflow.name.as_deref(), workflow.version).await?;
            let input = online::read_input(input.input.as_deref(), input.input_file.as_deref())?;
            online::run(&client, &def, input, workflow.keyed(), json, quiet).await
        }
        Command::Submit { workflow, input } => {
            let def =
                online::workflow(&client, workflow.file.as_deref(), workflow.name.as_deref(), workflow.version).await?;
            let input = online::read_input(input.input.as_deref(), input.input_file.as_deref())?;
            online::submit(&client, &def, input, workflow.keyed()).await
        }
        Command::Plan { goal, tools, model, max_repairs, run, input } => {
            let input = online::read_input(input.input.as_deref(), input.input_file.as_deref())?;
            plan::plan(&client, plan::Ask { goal, tools, model, input, run, max_repairs }).await
        }
        Command::Deploy { files } => online::deploy(&client, &files).await,
        Command::Definitions => online::definitions(&client).await,
        Command::Status { id, json, gantt } => online::status(&client, &id, json, gantt).await,
        Command::Watch { id, json } => online::watch(&client, &id, json).await,
        Command::Cancel { id, reason, compensate } => online::cancel(&client, &id, reason, compensate).await,
        Command::Rerun { id, file, from, input, yes } => {
            let given = input.input.is_some() || input.input_file.is_some();
            let input =
                given.then(|| online::read_input(input.input.as_deref(), input.input_file.as_deref())).transpose()?;
            let ask = redrive::Rerun { id: &id, from: &from, file: file.as_deref(), input, yes };
            redrive::rerun(&client, ask).await
        }
        Command::Terminate { id, reason } => online::terminate(&client, &id, reason).await,
        Command::Redrive { id, file, yes } => redrive::redrive(&client, &id, file.as_deref(), yes).await,
        Command::Pause { id } => online::pause(&client, &id).await,
        Command::Resume { id, add_tokens, add_cost } => online::resume(&client, &id, add_tokens, add_cost).await,
        Command::Signal { id, name, data } => online::signal(&client, &id, &name, data.as_deref()).await,
        Command::List { limit, json } => online::list(&client, usize::from(limit), json).await,
        Command::Tools { json, functions } => online::tools(&client, json, functions).await,
        Command::Mcp { http, allow_hosts } => mcp::serve(client, http, allow_hosts).await,
        Command::Ui { addr, allow_hosts, jaeger } => ui::serve(client, ui::Options { addr, allow_hosts, jaeger }).await,
        Command::Pools { action: None, json } => online::pools(&client, json).await,
        Command::Pools { action: Some(PoolsAction::Set { name, capacity }), .. } => {
            online::set_pool(&client, &name, capacity).await
        }
        Command::Validate { .. }
        | Command::Graph { .. }
        | Command::Analyze { .. }
        | Command::Schema
        | Command::Completions { .. } => {
            unreachable!("offline")
        }
    }
}
