//! Which MCP servers a worker serves, from `--mcp NAME=…` flags or a config file in the
//! `mcpServers` shape that Claude Desktop, Cursor and VS Code use, so a file users have
//! already works as it is.
//!
//! ```json
//! {"mcpServers": {
//!   "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"],
//!              "env": {"MEMORY_FILE_PATH": "/data/memory.jsonl"}},
//!   "search": {"url": "https://search.example/mcp",
//!              "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"},
//!              "tools": ["web_search"], "concurrency": 4}
//! }}
//! ```
//!
//! `${VAR}` in `args`, `env`, `url` and `headers` is read from the worker's environment,
//! so secrets stay out of the file; header values are never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use weft_protocol::subjects;

/// Calls of one server's tools a worker runs at once unless the server's entry says.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// One MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    /// Its name: the first segment of its tools' names (`memory.read_graph`).
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Serve only these of its tools (default: all).
    pub tools: Option<Vec<String>>,
    /// Calls of each of its tools run at once on this worker.
    pub concurrency: usize,
}

/// How a server is reached.
#[derive(Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking JSON-RPC on stdin and stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables added to the worker's environment.
        env: BTreeMap<String, String>,
        /// Where it runs (default: the worker's directory).
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP.
    Http {
        /// The endpoint.
        url: String,
        /// Sent with every request (`Authorization`, API keys).
        headers: BTreeMap<String, String>,
    },
}

impl fmt::Debug for Transport {
    /// Names of variables and headers only: their values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Stdio { command, args, env, cwd } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            Transport::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", &weft_protocol::nats_url::redact(url))
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Stdio { command, args, .. } => write!(f, "`{command}` {}", args.join(" ")),
            Transport::Http { url, .. } => write!(f, "{}", weft_protocol::nats_url::redact(url)),
        }
    }
}

/// A server entry that cannot work, and why.
#[derive(Debug, thiserror::Error)]
pub enum McpConfigError {
    /// The file cannot be read.
    #[error("MCP config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error("MCP config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        message: String,
    },
    /// An entry is wrong.
    #[error("MCP server `{server}`: {message}")]
    Invalid {
        /// The server's name.
        server: String,
        /// Why.
        message: String,
    },
}

fn invalid(server: &str, message: impl Into<String>) -> McpConfigError {
    McpConfigError::Invalid { server: server.to_owned(), message: message.into() }
}

/// The file: `{"mcpServers": {name: entry}}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    mcp_servers: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Claude Desktop and VS Code write the transport too; it must agree with the rest.
    #[serde(rename = "type")]
    kind: Option<String>,
    tools: Option<Vec<String>>,
    concurrency: Option<usize>,
    /// Cursor's and VS Code's files may disable an entry.
    #[serde(default)]
    disabled: bool,
}

/// Reads a config file, expanding `${VAR}` from `env`.
pub fn read_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<McpServer>, McpConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| McpConfigError::Read { path: path.to_owned(), source })?;
    parse_file(&text, env).map_err(|e| match e {
        McpConfigError::Parse { message, .. } => McpConfigError::Parse { path: path.to_owned(), message },
        other => other,
    })
}

/// Parses a config file's text.
pub fn parse_file(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<McpServer>, McpConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let file: File = serde_path_to_error::deserialize(&mut de).map_err(|e| McpConfigError::Parse {
        path: PathBuf::new(),
        message: if e.path().to_string() == "." {
            e.inner().to_string()
        } else {
            format!("at {}: {}", e.path(), e.inner())
        },
    })?;
    let mut servers = Vec::new();
    for (name, entry) in file.mcp_servers {
        if entry.disabled {
            continue;
        }
        servers.push(entry_to_server(&name, entry, env)?);
    }
    check_names(&servers)?;
    Ok(servers)
}

fn entry_to_server(name: &str, e: Entry, env: &dyn Fn(&str) -> Option<String>) -> Result<McpServer, McpConfigError> {
    let expand = |s: &str| expand(name, s, env);
    let transport = match (e.command, e.url) {
        (Some(command), None) => {
            if e.kind.as_deref().is_some_and(|k| k != "stdio") {
                return Err(invalid(name, format!("`type` {:?} does not fit a `command`", e.kind.unwrap_or_default())));
            }
            Transport::Stdio {
                command: expand(&command)?,
                args: e.args.iter().map(|a| expand(a)).collect::<Result<_, _>>()?,
                env: e.env.iter().map(|(k, v)| Ok((k.clone(), expand(v)?))).collect::<Result<_, _>>()?,
                cwd: e.cwd,
            }
        }
        (None, Some(url)) => {
            if e.kind.as_deref().is_some_and(|k| k != "http" && k != "streamable-http" && k != "streamableHttp") {
                return Err(invalid(
                    name,
                    format!(
                        "`type` {:?}: only Streamable HTTP is spoken over a `url` (not the old SSE transport)",
                        e.kind.unwrap_or_default()
                    ),
                ));
            }
            let url = expand(&url)?;
            check_url(name, &url)?;
            let headers = e.headers.iter().map(|(k, v)| Ok((k.clone(), expand(v)?))).collect::<Result<_, _>>()?;
            Transport::Http { url, headers }
        }
        (Some(_), Some(_)) => return Err(invalid(name, "give a `command` or a `url`, not both")),
        (None, None) => return Err(invalid(name, "give a `command` (stdio) or a `url` (Streamable HTTP)")),
    };
    let concurrency = e.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(invalid(name, "`concurrency` must be at least 1"));
    }
    Ok(McpServer { name: name.to_owned(), transport, tools: e.tools, concurrency })
}

/// Parses one `--mcp NAME=COMMAND ARGS…` or `--mcp NAME=URL` flag (arguments split on
/// spaces; a command that needs quoting goes in a config file).
pub fn parse_flag(flag: &str) -> Result<McpServer, McpConfigError> {
    let Some((name, rest)) = flag.split_once('=') else {
        return Err(invalid(flag, "write --mcp NAME=COMMAND [ARGS...] or --mcp NAME=URL"));
    };
    let (name, rest) = (name.trim(), rest.trim());
    let transport = if rest.starts_with("http://") || rest.starts_with("https://") {
        check_url(name, rest)?;
        Transport::Http { url: rest.to_owned(), headers: BTreeMap::new() }
    } else {
        let mut words = rest.split_whitespace().map(str::to_owned);
        let Some(command) = words.next() else { return Err(invalid(name, "no command after `=`")) };
        Transport::Stdio { command, args: words.collect(), env: BTreeMap::new(), cwd: None }
    };
    let server = McpServer { name: name.to_owned(), transport, tools: None, concurrency: DEFAULT_CONCURRENCY };
    check_names(std::slice::from_ref(&server))?;
    Ok(server)
}

/// Names are the first segment of tool names: a token each, and each once.
pub fn check_names(servers: &[McpServer]) -> Result<(), McpConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for s in servers {
        if !subjects::is_token(&s.name) {
            return Err(invalid(
                &s.name,
                "a server's name may only hold letters, digits, `_` and `-` (it begins its tools' names)",
            ));
        }
        if !seen.insert(&s.name) {
            return Err(invalid(&s.name, "named twice"));
        }
    }
    Ok(())
}

fn check_url(name: &str, url: &str) -> Result<(), McpConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        Ok(u) => Err(invalid(name, format!("URL scheme `{}` is not http or https", u.scheme()))),
        Err(e) => Err(invalid(name, format!("invalid URL: {e}"))),
    }
}

/// `${VAR}` from the environment; a variable that is not set is an error naming it.
fn expand(server: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, McpConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(invalid(server, format!("`${{` without `}}` in {text:?}")));
        };
        let var = &after[..end];
        match env(var) {
            Some(value) => out.push_str(&value),
            None => return Err(invalid(server, format!("environment variable `{var}` is not set"))),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "TOKEN").then(|| "s3cret".to_owned())
    }

    #[test]
    fn reads_the_mcp_servers_shape_with_variables() {
        let servers = parse_file(
            r#"{"mcpServers": {
                "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "env": {"K": "${TOKEN}"}},
                "search": {"type": "http", "url": "https://search.example/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}, "tools": ["find"], "concurrency": 2},
                "off": {"command": "x", "disabled": true}
            }}"#,
            &env,
        )
        .expect("valid");
        assert_eq!(servers.len(), 2);
        let Transport::Stdio { command, env: vars, .. } = &servers[0].transport else { panic!("stdio") };
        assert_eq!((command.as_str(), vars["K"].as_str()), ("npx", "s3cret"));
        let Transport::Http { headers, .. } = &servers[1].transport else { panic!("http") };
        assert_eq!(headers["Authorization"], "Bearer s3cret");
        assert_eq!((servers[1].tools.as_deref(), servers[1].concurrency), (Some(&["find".to_owned()][..]), 2));
        // No secret in what is logged.
        let shown = format!("{servers:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn bad_entries_say_which_and_why() {
        let err = |text: &str| parse_file(text, &env).expect_err("invalid").to_string();
        assert!(err(r#"{"mcpServers": {"a": {}}}"#).contains("MCP server `a`: give a `command`"));
        assert!(err(r#"{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}"#).contains("not both"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "ftp://h"}}}"#).contains("scheme `ftp`"));
        assert!(err(r#"{"mcpServers": {"a": {"url": "http://h", "type": "sse"}}}"#).contains("old SSE"));
        assert!(err(r#"{"mcpServers": {"a.b": {"command": "x"}}}"#).contains("letters, digits"));
        assert!(err(r#"{"mcpServers": {"a": {"command": "${NOPE}"}}}"#).contains("`NOPE` is not set"));
        assert!(err(r#"{"mcpServers": {"a": {"command": "x", "cmd": 1}}}"#).contains("mcpServers.a"));
        assert!(err(r#"{"servers": {}}"#).contains("mcpServers"));
    }

    #[test]
    fn flags_name_a_command_or_a_url() {
        let s = parse_flag("mem=npx -y @modelcontextprotocol/server-memory").expect("stdio");
        assert_eq!(s.name, "mem");
        assert!(matches!(&s.transport, Transport::Stdio { command, args, .. } if command == "npx" && args.len() == 2));
        let s = parse_flag("remote=http://127.0.0.1:3001/mcp").expect("http");
        assert!(matches!(s.transport, Transport::Http { .. }));
        assert!(parse_flag("nothing").is_err());
        assert!(parse_flag("x=").is_err());
    }
}
