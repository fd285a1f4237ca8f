//! How `weft` ends: its exit codes, and each error printed once, with what to do about it.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (a run: it completed) |
//! | 1 | a run did not complete, or a request was refused for another reason below |
//! | 2 | usage: bad arguments, a file that cannot be read, input that is not JSON |
//! | 3 | not found: no such run or registered workflow |
//! | 4 | cannot reach NATS or a coordinator, or NATS refused the user |
//! | 5 | refused as invalid: a workflow, its input, a signal's data |
//! | 130 | interrupted (Ctrl-C); a run goes on |

use std::fmt::Write as _;
use std::process::ExitCode;

use weft_client::ClientError;
use weft_protocol::wire::ApiErrorCode;

/// Done.
pub(crate) const OK: u8 = 0;
/// A run did not complete (or a request was refused for no reason below).
pub(crate) const FAILED: u8 = 1;
/// Bad arguments or files.
pub(crate) const USAGE: u8 = 2;
/// No such run or workflow.
pub(crate) const NOT_FOUND: u8 = 3;
/// NATS or a coordinator cannot be reached.
pub(crate) const UNREACHABLE: u8 = 4;
/// Refused as invalid.
pub(crate) const INVALID: u8 = 5;
/// Interrupted.
pub(crate) const INTERRUPTED: u8 = 130;

/// An error of `weft`'s own making that says which exit code it ends with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Usage {
    pub(crate) message: String,
}

/// A usage error.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage { message: message.into() })
}

/// Something `weft` itself found invalid (a workflow file that is not a workflow).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Invalid {
    pub(crate) message: String,
}

/// An invalid-input error.
pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Invalid { message: message.into() })
}

/// The exit code an error ends `weft` with.
pub(crate) fn code_of(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<Usage>().is_some() {
        return USAGE;
    }
    if error.downcast_ref::<Invalid>().is_some() {
        return INVALID;
    }
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return match e {
                ClientError::Connect { .. }
                | ClientError::NoCoordinator { .. }
                | ClientError::TimedOut { .. }
                | ClientError::Denied { .. } => UNREACHABLE,
                ClientError::Api(api) => match api.code {
                    ApiErrorCode::NotFound => NOT_FOUND,
                    ApiErrorCode::Invalid => INVALID,
                    ApiErrorCode::BadRequest => USAGE,
                    ApiErrorCode::Unavailable => UNREACHABLE,
                    ApiErrorCode::Conflict | ApiErrorCode::Corrupt | ApiErrorCode::Internal => FAILED,
                },
                ClientError::Request { .. }
                | ClientError::Decode { .. }
                | ClientError::JetStream(_)
                | ClientError::Corrupt { .. } => FAILED,
            };
        }
        if cause.downcast_ref::<std::io::Error>().is_some() || cause.downcast_ref::<serde_json::Error>().is_some() {
            return USAGE;
        }
    }
    FAILED
}

/// What to do about an error, if there is a clear next step.
fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| match cause.downcast_ref::<ClientError>()? {
        ClientError::Connect { source, .. } => Some(match source.kind() {
            async_nats::ConnectErrorKind::AuthorizationViolation | async_nats::ConnectErrorKind::Authentication => {
                "wrong or no credentials? `eval \"$(deploy/local.sh env)\"` sets the client's, or give them in --nats nats://user:password@host:4222"
            }
            _ => "is NATS running? `deploy/local.sh up` starts NATS, a coordinator and workers",
        }),
        ClientError::NoCoordinator { .. } | ClientError::TimedOut { .. } => {
            Some("is a coordinator running against this NATS server? `deploy/local.sh up` starts one")
        }
        ClientError::Denied { .. } => {
            Some("this NATS user may not do that: use the client's credentials (`eval \"$(deploy/local.sh env)\"`)")
        }
        _ => None,
    })
}

/// Prints `error` to stderr once: its message, each cause that adds something (a cause
/// whose text the message already holds is not repeated), its problems, and a hint.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    let mut text = String::new();
    let mut said = String::new();
    for cause in error.chain() {
        let line = cause.to_string();
        if said.contains(&line) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&line);
        said.push_str(&line);
    }
    let mut out = format!("error: {text}");
    if let Some(ClientError::Api(api)) = error.chain().find_map(|c| c.downcast_ref::<ClientError>())
        && !api.problems.is_empty()
    {
        for p in &api.problems {
            // Problems already in the message are not listed twice.
            let line = p.to_string();
            if !text.contains(&line) {
                let _ = write!(out, "\n  - {line}");
            }
        }
    }
    if let Some(hint) = hint(error) {
        let _ = write!(out, "\nhint: {hint}");
    }
    eprintln!("{out}");
    ExitCode::from(code_of(error))
}
