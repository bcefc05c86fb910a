//! What every disposable server does the same way on top of its backend:
//! the faults that stop it and start it again (restart, crash, wipe, halt)
//! and a shell over its data. An engine supplies three things (its backend
//! server, how it must be started now, and what to do once it runs) and
//! gets the rest; each fault documents what survives it.

use crate::backend::{Server, ServerSpec, Stop, Stopped};
use crate::{Error, Result};

/// A disposable server of one engine, on either backend.
pub trait Lifecycle {
    /// The backend's server underneath.
    fn server(&self) -> &dyn Server;
    fn server_mut(&mut self) -> &mut dyn Server;
    /// The server as it must be started now (with what a fault changed).
    fn spec_now(&self) -> Result<ServerSpec>;
    /// Waits until it answers and does what every start needs (the
    /// application database, version facts).
    fn after_start(&mut self) -> Result<()>;

    /// Starts the stopped server again on its data.
    fn start_again(&mut self) -> Result<()> {
        let spec = self.spec_now()?;
        self.server_mut().start(&spec)?;
        self.after_start()
    }

    /// Fault: a graceful stop (the engine's own stop signal; SIGKILL after
    /// 10 s, as `docker stop` does) and a start on the same data. Survives:
    /// everything the server had written.
    fn restart(&mut self) -> Result<Stopped> {
        let stopped = self.server_mut().stop(Stop::Graceful)?;
        self.start_again()?;
        Ok(stopped)
    }

    /// Fault: every process killed at once (SIGKILL; `docker kill`), then
    /// started on the same data, as a supervisor would. Survives: what the
    /// engine had made durable (WAL, AOF, written parts).
    fn crash(&mut self) -> Result<()> {
        self.server_mut().stop(Stop::Kill)?;
        self.start_again()
    }

    /// Fault: the data directory or volume is destroyed and the server
    /// comes back freshly initialised. Survives: nothing on the server;
    /// backups kept elsewhere.
    fn wipe(&mut self) -> Result<()> {
        self.server_mut().wipe()?;
        self.start_again()
    }

    /// Kills every process at once and leaves the server down, so several
    /// services can die at one instant before each gets its fault.
    fn halt(&mut self) -> Result<()> {
        self.server_mut().stop(Stop::Kill).map(|_| ())
    }

    /// Runs `script` over the server's data (`$DATA`: the data dir, or the
    /// volume in a throwaway container); Err with its output when it fails.
    fn data_shell(&self, script: &str) -> Result<Vec<u8>> {
        let out = self.server().data_shell(script)?;
        if !out.status.success() {
            return Err(Error::command(
                format!(
                    "`{}` over {}'s data",
                    one_line(script, 80),
                    self.server().kind()
                ),
                &out,
            ));
        }
        Ok(out.stdout)
    }
}

/// `text` on one line, cut at `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > max {
        format!("{}…", one.chars().take(max).collect::<String>())
    } else {
        one
    }
}
