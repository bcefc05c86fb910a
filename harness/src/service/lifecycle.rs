//! What every disposable server is, whatever its engine: a backend's server
//! with a generated password and the facts a report gives, started and
//! waited for, and the faults that stop it and start it again (restart,
//! crash, wipe, halt) and a shell over its data. An engine supplies only
//! what is its own ([`Engine`]): how it is described now, what every start
//! needs, and how tools and people reach it. Each fault documents what
//! survives it.

use crate::backend::{BackendKind, Server, ServerInfo, ServerSpec, Stop, Stopped};
use crate::vocab::ServiceKind;
use crate::{Error, Result};

/// What a kind of server adds to a backend's server.
pub trait Engine: Send + Sync + std::fmt::Debug + Sized {
    /// The server as it must be started now (with what a fault changed).
    fn spec(&self, backend: BackendKind, password: &str) -> Result<ServerSpec>;
    /// Waits until it answers and does what every start needs (the
    /// application database, version facts).
    fn after_start(d: &mut Disposable<Self>) -> Result<()>;
    /// (program, script) for a user's command to find first on PATH: the
    /// server's own tools, aimed at it.
    fn shims(d: &Disposable<Self>) -> Vec<(String, String)>;
    /// How a person connects to it right now.
    fn connection_help(d: &Disposable<Self>) -> String;
}

/// A running (or stopped) disposable server of engine `E`. Dropping it
/// stops the server and deletes its data, unless [`Lifecycle::keep`] was
/// called.
#[derive(Debug)]
pub struct Disposable<E: Engine> {
    pub(crate) server: Box<dyn Server>,
    pub(crate) info: ServerInfo,
    /// Generated for this server: every client and tool gets it.
    pub(crate) password: String,
    /// Why the last start failed, while the server is down after it.
    pub(crate) down: Option<String>,
    pub(crate) engine: E,
}

impl<E: Engine> Disposable<E> {
    /// Starts a server of `kind` on `backend` and waits until it is ready.
    pub(crate) fn launch(backend: BackendKind, kind: ServiceKind, engine: E) -> Result<Self> {
        Self::launch_with(backend, kind, engine, |_, _| {})
    }

    /// [`Disposable::launch`], letting the engine take note of the
    /// generated password first.
    pub(crate) fn launch_with(
        backend: BackendKind,
        kind: ServiceKind,
        mut engine: E,
        prepare: impl FnOnce(&mut E, &str),
    ) -> Result<Self> {
        let password = crate::backend::new_password();
        prepare(&mut engine, &password);
        let spec = engine.spec(backend, &password)?;
        let server = backend.launch(&spec)?;
        let info = ServerInfo {
            service: kind,
            backend,
            source: server.source(),
            version: String::new(),
            timescaledb: None,
            flavour: String::new(),
        };
        let mut d = Disposable {
            server,
            info,
            password,
            down: None,
            engine,
        };
        E::after_start(&mut d)?;
        if d.info.flavour.is_empty() {
            let version = d.info.version.split_whitespace().next().unwrap_or("");
            d.info.flavour = format!("{kind} {version}");
        }
        Ok(d)
    }

    /// Whether the server is down because its last start failed, and why.
    pub fn down(&self) -> Option<&str> {
        self.down.as_deref()
    }
}

/// A disposable server of any engine, as the engine and the tests use it.
pub trait Lifecycle {
    /// The backend's server underneath.
    fn server(&self) -> &dyn Server;
    fn server_mut(&mut self) -> &mut dyn Server;
    /// Facts for the report: version, image or binaries.
    fn info(&self) -> &ServerInfo;
    /// Starts the stopped server again on its data; when it does not come
    /// up, it stays down and says why.
    fn start_again(&mut self) -> Result<()>;
    /// (program, script) for a user's command: the server's own tools.
    fn shims(&self) -> Vec<(String, String)>;
    /// How a person connects to it right now.
    fn connection_help(&self) -> String;

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

    /// Leaves the server running after the drill; how to reach and remove it.
    fn keep(&mut self) -> String {
        format!("{}\n  {}", self.server_mut().keep(), self.connection_help())
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

impl<E: Engine> Lifecycle for Disposable<E> {
    fn server(&self) -> &dyn Server {
        self.server.as_ref()
    }

    fn server_mut(&mut self) -> &mut dyn Server {
        self.server.as_mut()
    }

    fn info(&self) -> &ServerInfo {
        &self.info
    }

    fn start_again(&mut self) -> Result<()> {
        let spec = self.engine.spec(self.info.backend, &self.password)?;
        let started = self.server.start(&spec).and_then(|()| E::after_start(self));
        match &started {
            Ok(()) => self.down = None,
            Err(e) => self.down = Some(e.to_string()),
        }
        started
    }

    fn shims(&self) -> Vec<(String, String)> {
        E::shims(self)
    }

    fn connection_help(&self) -> String {
        E::connection_help(self)
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

/// The `start` step: starts the server on its data when it is down
/// (killed, stopped, or a start that failed); nothing when it runs.
pub(crate) fn start_step(l: &mut dyn Lifecycle) -> super::StepDone {
    let kind = l.server().kind();
    if l.server_mut().alive().is_ok() {
        return super::StepDone::done(format!("{kind} is running"));
    }
    match l.start_again() {
        Ok(()) => super::StepDone::done(format!("{kind} started on its data")),
        Err(e) => super::StepDone::failed(format!("{kind} did not start: {e}")),
    }
}

/// The `stop` step: a graceful stop (the engine's own signal), left down.
pub(crate) fn stop_step(l: &mut dyn Lifecycle) -> Result<super::StepDone> {
    let kind = l.server().kind();
    let stopped = l.server_mut().stop(Stop::Graceful)?;
    Ok(super::StepDone::done(format!("{kind} stopped: {stopped}")))
}
