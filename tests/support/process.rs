//! A child process of a test or a benchmark: started with its output in a log file,
//! stopped by pid (SIGKILL) when dropped, its log kept for failure messages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

/// A child process.
#[derive(Debug)]
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `binary` with `args` and `env`, logging to `<dir>/<name>.log`.
    pub fn start(name: &str, binary: &Path, args: &[&str], env: &[(&str, &str)], dir: &Path) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).with_context(|| format!("log file {}", log.display()))?;
        let mut command = Command::new(binary);
        command.args(args).stdout(Stdio::from(file.try_clone()?)).stderr(Stdio::from(file));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Proc { name: name.to_owned(), child: Some(child), log })
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends it a signal by name (`STOP` freezes it, `CONT` thaws it), with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the process runs").to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Whether it has exited (or was killed).
    pub fn exited(&mut self) -> bool {
        !self.alive()
    }

    /// What it logged.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
