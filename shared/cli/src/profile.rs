//! Named connection profiles: `weft --profile prod list` reads `[profiles.prod]` of the
//! config file (`$WEFT_CONFIG`, else `$XDG_CONFIG_HOME/weft/config.toml`, else
//! `~/.config/weft/config.toml`):
//!
//! ```toml
//! default = "local"            # the profile used without --profile (optional)
//!
//! [profiles.local]
//! nats = "nats://127.0.0.1:4222"
//!
//! [profiles.prod]
//! nats = "tls://nats.example.com:4222"
//! user = "client"
//! password_file = "~/.config/weft/prod.password"   # the password, kept out of this file
//! timeout = "30s"
//! ```
//!
//! A flag or its variable (`--nats`/`NATS_URL`, `--timeout`/`WEFT_TIMEOUT`) beats the
//! profile, which beats the built-in defaults. The password is read from its file and put
//! in the URL the client connects with; it is never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::exit;

/// The URL without a flag, variable or profile.
pub(crate) const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
/// The timeout without a flag, variable or profile.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    default: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// One profile's settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    nats: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    timeout: Option<String>,
}

/// What the online commands connect with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Connection {
    /// NATS URL, credentials included.
    pub(crate) url: String,
    /// Connecting and each answer.
    pub(crate) timeout: Duration,
}

/// The config file's path.
fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WEFT_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("weft/config.toml"))
}

/// `~/x` as a path under the home directory.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// The connection of `profile` (else the file's default profile), under the flags given.
pub(crate) fn resolve(
    url_flag: Option<String>,
    timeout_flag: Option<Duration>,
    profile: Option<&str>,
) -> anyhow::Result<Connection> {
    let path = config_path();
    let text = match &path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(exit::usage(format!("cannot read {}: {e}", path.display()))),
        },
        None => None,
    };
    let shown = || path.as_deref().map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
    if let (None, Some(name)) = (&text, profile) {
        return Err(exit::usage(format!(
            "no profile `{name}`: there is no config file at {} (WEFT_CONFIG names another)",
            shown()
        )));
    }
    let file: ConfigFile = match &text {
        Some(text) => toml::from_str(text).map_err(|e| exit::usage(format!("{}: {e}", shown())))?,
        None => ConfigFile::default(),
    };
    resolve_in(&file, url_flag, timeout_flag, profile, &shown())
}

fn resolve_in(
    file: &ConfigFile,
    url_flag: Option<String>,
    timeout_flag: Option<Duration>,
    profile: Option<&str>,
    shown: &str,
) -> anyhow::Result<Connection> {
    let chosen = profile.map(str::to_owned).or_else(|| file.default.clone());
    let settings = match &chosen {
        None => Profile::default(),
        Some(name) => file.profiles.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            exit::usage(format!("no profile `{name}` in {shown} (profiles: {known})"))
        })?,
    };
    let timeout = match (timeout_flag, &settings.timeout) {
        (Some(t), _) => t,
        (None, Some(text)) => humantime::parse_duration(text)
            .map_err(|e| exit::usage(format!("{shown}: profile `{}`: timeout {text:?}: {e}", name(&chosen))))?,
        (None, None) => DEFAULT_TIMEOUT,
    };
    // A URL from a flag or variable is taken as it is, credentials and all.
    if let Some(url) = url_flag {
        return Ok(Connection { url, timeout });
    }
    let mut url = settings.nats.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    if settings.user.is_some() || settings.password_file.is_some() {
        let password = match &settings.password_file {
            Some(file) => {
                let file = expand_home(file);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    exit::usage(format!("profile `{}`: cannot read {}: {e}", name(&chosen), file.display()))
                })?;
                Some(text.trim().to_owned())
            }
            None => None,
        };
        url = weft_protocol::nats_url::add_credentials(&url, settings.user.as_deref(), password.as_deref()).map_err(
            |e| {
                exit::usage(format!(
                    "{shown}: profile `{}`: {e}; drop them or `user` and `password_file`",
                    name(&chosen)
                ))
            },
        )?;
    }
    Ok(Connection { url, timeout })
}

fn name(chosen: &Option<String>) -> &str {
    chosen.as_deref().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        toml::from_str(text).expect("config parses")
    }

    #[test]
    fn flags_beat_the_profile_which_beats_the_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let password = dir.path().join("pw");
        std::fs::write(&password, "s3cr/t\n").expect("written");
        let f = file(&format!(
            "default = \"prod\"\n[profiles.prod]\nnats = \"tls://nats.example:4222\"\nuser = \"client\"\n\
             password_file = {:?}\ntimeout = \"30s\"\n[profiles.local]\n",
            password.display().to_string()
        ));
        let prod = resolve_in(&f, None, None, None, "c").expect("the default profile");
        assert_eq!(prod.url, "tls://client:s3cr%2Ft@nats.example:4222");
        assert_eq!(prod.timeout, Duration::from_secs(30));
        let local = resolve_in(&f, None, None, Some("local"), "c").expect("a named profile");
        assert_eq!(local, Connection { url: DEFAULT_URL.to_owned(), timeout: DEFAULT_TIMEOUT });
        let flagged =
            resolve_in(&f, Some("nats://x:4222".into()), Some(Duration::from_secs(1)), None, "c").expect("flags");
        assert_eq!(flagged, Connection { url: "nats://x:4222".to_owned(), timeout: Duration::from_secs(1) });
        assert_eq!(resolve_in(&ConfigFile::default(), None, None, None, "c").expect("no file").url, DEFAULT_URL);
    }

    #[test]
    fn mistakes_say_where_and_never_show_the_password() {
        let f = file("[profiles.a]\nnats = \"nats://u:p@h:4222\"\nuser = \"client\"\n");
        let e = resolve_in(&f, None, None, Some("b"), "c.toml").expect_err("no such profile").to_string();
        assert_eq!(e, "no profile `b` in c.toml (profiles: a)");
        let e = resolve_in(&f, None, None, Some("a"), "c.toml").expect_err("two credentials").to_string();
        assert!(e.contains("credentials already") && !e.contains(":p@"), "{e}");
        assert!(toml::from_str::<ConfigFile>("[profiles.a]\nurl = \"x\"\n").is_err(), "unknown keys are refused");
    }
}
