//! Backends start, stop, kill and wipe disposable servers, and run programs
//! beside them (a client tool of the server's own version, a shell over the
//! server's data). They know nothing of scenarios nor of SQL: what is
//! specific to an engine (its command line, its readiness probe) comes from
//! the service as a [`ServerSpec`], which describes one server for both
//! backends.
//!
//! - [`native`]: a local process in a temp dir, on free loopback ports.
//! - [`docker`]: a container (testcontainers) whose data lives on a named
//!   Docker volume, its ports published on 127.0.0.1 only.
//!
//! Both implement [`Server`], and the same tests run against both. Every
//! server, volume and temp dir carries the run's id and the harness's pid,
//! so [`reap_leftovers`] can remove what a killed run left behind.

pub(crate) mod docker;
pub mod images;
pub(crate) mod native;
mod owner;

pub use crate::vocab::{BackendKind, ServerInfo, ServiceKind};

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::{Error, Result};

impl BackendKind {
    /// Starts a server described by `spec` (not yet waited for: the service
    /// probes readiness with [`wait_ready`]).
    pub(crate) fn launch(self, spec: &ServerSpec) -> Result<Box<dyn Server>> {
        Ok(match self {
            BackendKind::Native => Box::new(native::NativeServer::launch(spec)?),
            BackendKind::Docker => Box::new(docker::ContainerServer::launch(spec)?),
        })
    }
}

/// What the person asked for with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Docker when an engine answers and every image is present or
    /// pullable; native otherwise.
    #[default]
    Auto,
    Native,
    Docker,
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "native" => Ok(BackendChoice::Native),
            "docker" => Ok(BackendChoice::Docker),
            _ => Err(Error::bad_input(
                format!("--backend {s}"),
                "use auto, docker or native",
            )),
        }
    }
}

/// Resolves a choice for drills needing `images`; returns the backend and a
/// sentence saying why, or (for an explicit `docker`) why it cannot be.
pub fn choose(
    choice: BackendChoice,
    images: &[(ServiceKind, String)],
) -> Result<(BackendKind, String)> {
    let docker_ok = || -> Result<String> {
        if !images::docker_answers() {
            return Err(Error::MissingTool {
                tool: "a Docker engine".into(),
                looked_in: "DOCKER_HOST, else the local socket".into(),
                install: "Docker Engine (docker.io), started".into(),
            });
        }
        for (kind, image) in images {
            images::ensure_image(*kind, image)?;
        }
        let mut names: Vec<&str> = images.iter().map(|(_, i)| i.as_str()).collect();
        names.sort();
        names.dedup();
        Ok(format!("images {}", names.join(", ")))
    };
    match choice {
        BackendChoice::Native => Ok((BackendKind::Native, "as asked".into())),
        BackendChoice::Docker => docker_ok().map(|why| (BackendKind::Docker, why)),
        BackendChoice::Auto => Ok(match docker_ok() {
            Ok(why) => (
                BackendKind::Docker,
                format!("a Docker engine answers; {why}"),
            ),
            Err(why) => (
                BackendKind::Native,
                format!("{why}; local binaries instead"),
            ),
        }),
    }
}

/// One server, described for both backends.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub kind: ServiceKind,
    /// Labels, names and temp dirs carry it, for reaping.
    pub run_id: String,
    /// The ports the server listens on, numbered as in its image (5432;
    /// 8123 and 9000). Natively each gets a free loopback port.
    pub ports: Vec<u16>,
    /// Host folders the server's own tools must see at the same path (the
    /// run's work dir with its backups, a backup's folder): bind-mounted
    /// into the container; natively they are simply there.
    pub shared: Vec<PathBuf>,
    /// Sent for a graceful stop (postgres: SIGINT, its fast shutdown).
    pub stop_signal: Signal,
    /// Inherited variables (names, or prefixes ending in `*`) removed from
    /// every tool command run beside the server: variables that would point
    /// a client at another server (libpq's `PG*`).
    pub scrub_env: Vec<&'static str>,
    /// Values never written to a log (the generated password).
    pub secrets: Vec<String>,
    pub container: ContainerSpec,
    pub native: NativeSpec,
}

/// The container form: the official image's conventions.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub image: String,
    /// Where the data volume is mounted (`/var/lib/postgresql/data`).
    pub data: String,
    pub env: Vec<(String, String)>,
    /// The container's command; empty keeps the image's own.
    pub cmd: Vec<String>,
    /// Files copied into the container before it starts (path, content):
    /// config snippets the image reads from its `*.d` folders.
    pub files: Vec<(String, Vec<u8>)>,
    /// A private network ([`Network`]) to join instead of the default
    /// bridge, so two servers of one drill reach each other by name.
    pub network: Option<String>,
    /// Another server's volume ([`Server::data_location`]) to mount instead
    /// of a volume of its own, and the folder of it this server's data
    /// lives in (the image is told, e.g. `PGDATA`): two clusters on one file
    /// system, as `pg_upgrade --link` needs. `$DATA` in its data shells is
    /// that folder; the folder is removed with the server (the volume stays
    /// its owner's), and a wipe is refused.
    pub borrow_volume: Option<(String, String)>,
    /// `--cpus` and `--memory`.
    pub limits: crate::vocab::Limits,
}

/// A network only a drill's own servers share (a primary and its
/// replica): a labelled Docker bridge network, removed on drop after the
/// containers on it; natively nothing (loopback).
#[derive(Debug)]
pub struct Network(Option<docker::PrivateNetwork>);

impl Network {
    /// The name a [`ContainerSpec::network`] joins (None natively).
    pub fn name(&self) -> Option<String> {
        self.0.as_ref().map(|n| n.name.clone())
    }

    /// Leaves it in place after the drill (with the servers on it).
    pub fn keep(&mut self) {
        if let Some(n) = &mut self.0 {
            n.keep();
        }
    }
}

impl BackendKind {
    /// A private network for servers that must reach each other.
    pub(crate) fn network(self, run_id: &str, purpose: &str) -> Result<Network> {
        Ok(Network(match self {
            BackendKind::Native => None,
            BackendKind::Docker => Some(docker::PrivateNetwork::create(run_id, purpose)?),
        }))
    }
}

/// The native form. In `args`, `init` and `files`, `{data}` is the data
/// dir, `{dir}` the server's temp dir and `{port:N}` the local port that
/// stands for port N.
#[derive(Debug, Clone, Default)]
pub struct NativeSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Run once into an empty data dir before the first start (initdb).
    pub init: Option<(PathBuf, Vec<String>)>,
    /// Written into `{dir}` before each start (config files).
    pub files: Vec<(String, String)>,
    /// When the harness is root, run as the first of these users that
    /// exists (postgres refuses to run as root); empty: as the harness.
    pub run_as: Vec<&'static str>,
    /// Where tools of the server's own version are looked up first.
    pub tools_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// How to stop a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The spec's stop signal, then SIGKILL after 10 s.
    Graceful,
    /// This signal (e.g. postgres's SIGQUIT, an immediate shutdown), then
    /// SIGKILL after 10 s.
    Signal(Signal),
    /// SIGKILL to every process of the server at once: a crash.
    Kill,
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stopped {
    /// It was running.
    pub was_running: bool,
    /// It did not exit within 10 s of its signal and was killed.
    pub escalated: bool,
    pub took: Duration,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.was_running, self.escalated) {
            (false, _) => f.write_str("it was not running"),
            (true, false) => write!(f, "it exited after {} ms", self.took.as_millis()),
            (true, true) => write!(
                f,
                "it was still running {} s after the signal and was killed (SIGKILL), as `docker stop` does",
                self.took.as_secs()
            ),
        }
    }
}

/// A running (or stopped) disposable server. Dropping it stops the server
/// and deletes its data (temp dir; container and volume), unless
/// [`Server::keep`] was called.
pub trait Server: Send + Sync + std::fmt::Debug {
    /// The service it runs.
    fn kind(&self) -> ServiceKind;
    fn backend(&self) -> BackendKind;
    /// The image, or the folder holding the local binaries.
    fn source(&self) -> String;
    /// Where the harness reaches the server's `port` (host, port).
    fn addr(&self, port: u16) -> (String, u16);
    /// Where a program started by [`Server::tool`] reaches it.
    fn tool_addr(&self, port: u16) -> (String, u16);
    /// Where another server of the drill reaches it (a replica its
    /// primary): loopback natively; its container's name on the private
    /// network both joined ([`ContainerSpec::network`]).
    fn peer_addr(&self, port: u16) -> (String, u16) {
        self.addr(port)
    }
    /// `program` run beside the server, with `env`: natively the local
    /// program (from the spec's tools dir first); in a container through
    /// `docker exec -i`, so its version matches the server's.
    fn tool(&self, program: &str, env: &[(String, String)]) -> Command;
    /// Like [`Server::tool`], but the program's stderr is merged into its
    /// stdout where it runs (`2>&1` beside it), so the two keep their
    /// order. Natively the caller points both at one pipe, which is the
    /// same thing; `docker exec` carries them as two streams and would
    /// interleave them at arbitrary byte boundaries.
    fn tool_merged(&self, program: &str, env: &[(String, String)]) -> Command {
        self.tool(program, env)
    }
    /// A shell script that runs `program` as [`Server::tool`] does, for a
    /// user's script to find first on its PATH: `fixed` variables are set,
    /// `passthrough` ones are taken from the caller's environment, `args`
    /// come before the caller's arguments.
    fn tool_shim(
        &self,
        program: &str,
        fixed: &[(String, String)],
        passthrough: &[&str],
        args: &[String],
    ) -> String;
    /// `path` (a backup) where [`Server::tool`] can read it: the path
    /// itself, or a copy in the server's dir when the tool's user (native,
    /// an unprivileged one) cannot read the original.
    fn readable(&self, path: &std::path::Path) -> Result<PathBuf> {
        Ok(path.to_owned())
    }
    /// Runs `script` under `sh` with `$DATA` naming the server's data: the
    /// data dir, or the volume mounted into a throwaway container of the
    /// same image (the runbook's `docker run --rm -v vol:/data ...`). The
    /// spec's shared folders are visible at their own paths.
    fn data_shell(&self, script: &str) -> Result<Output> {
        self.data_shell_with(script, &[])
    }
    /// As [`Server::data_shell`], with other servers' data too: each
    /// `(VAR, location)` (a [`Server::data_location`] of the same backend)
    /// is visible under `$VAR` (natively the data dir; in Docker the
    /// volume, mounted into the same throwaway container).
    fn data_shell_with(&self, script: &str, others: &[(String, String)]) -> Result<Output>;
    /// Where the data lives, for another server's
    /// [`Server::data_shell_with`]: the data dir, or the volume's name.
    fn data_location(&self) -> String;
    /// Err (with the server's last log lines) when it is not running.
    fn alive(&mut self) -> Result<()>;
    /// The container it runs in (Docker), for `docker exec` by a user's
    /// command; None natively.
    fn container(&self) -> Option<String> {
        None
    }
    /// The last lines the server logged.
    fn log_tail(&self, lines: usize) -> String;
    /// Stops the server (nothing when it is not running) and says how it
    /// went: like `docker stop`, a server still running 10 s after its
    /// signal is killed.
    fn stop(&mut self, how: Stop) -> Result<Stopped>;
    /// Starts again on the same data with `spec` (whose command line may
    /// differ): a new process, or a new container on the same volume.
    fn start(&mut self, spec: &ServerSpec) -> Result<()>;
    /// Kills the server and destroys its data (the data dir; the volume,
    /// removed and created again empty). Survives: nothing. The next
    /// [`Server::start`] initialises a fresh server.
    fn wipe(&mut self) -> Result<()>;
    /// Leaves the server (and its data) behind after the drill; returns
    /// how to inspect it and how to remove it.
    fn keep(&mut self) -> String;
    /// Where it runs, for people: pid and dir, or container and volume.
    fn describe(&self) -> String;
    /// What exists on this machine because of this server (and must be gone
    /// after it is dropped, unless kept).
    #[cfg(feature = "test-support")]
    fn resources(&self) -> Vec<Resource>;
}

/// Something a server occupies on the machine (for the tests that check
/// nothing is left behind).
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Dir(PathBuf),
    Process(u32),
    Container(String),
    Volume(String),
}

#[cfg(feature = "test-support")]
impl Resource {
    /// Whether it still exists (a zombie process does not count).
    pub fn exists(&self) -> bool {
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        match self {
            Resource::Dir(p) => p.exists(),
            Resource::Process(pid) => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next())
                        != Some("Z")
                }),
            Resource::Container(id) => docker(&["container", "inspect", id]),
            Resource::Volume(name) => docker(&["volume", "inspect", name]),
        }
    }
}

/// What a readiness probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; what it answered (empty: nothing), kept for the error.
    NotYet(String),
}

/// Polls `ready` until it says yes, failing early when the server dies
/// and after `timeout` with the server's last log lines.
pub fn wait_ready(
    server: &mut dyn Server,
    timeout: Duration,
    mut ready: impl FnMut(&dyn Server) -> Readiness,
) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    let mut polls = 0u32;
    loop {
        server.alive()?;
        match ready(server) {
            Readiness::Ready => {
                tracing::debug!(service = %server.kind(), polls, waited_ms = started.elapsed().as_millis() as u64, "ready");
                return Ok(());
            }
            Readiness::NotYet(answer) => {
                if !answer.is_empty() && answer != last {
                    tracing::debug!(service = %server.kind(), %answer, "not ready yet; retrying");
                }
                if !answer.is_empty() {
                    last = answer;
                }
            }
        }
        polls += 1;
        if started.elapsed() > timeout {
            return Err(Error::NotReady {
                service: server.kind(),
                waited: timeout,
                last_answer: last,
                log_tail: server.log_tail(15),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The command's process gets SIGKILL when the thread that started it
/// dies with the harness (Linux's `PR_SET_PDEATHSIG`): a `docker run`
/// client still starting a throwaway container when the harness is killed
/// would otherwise start it after `cargo xtask clean` ran, and Docker would
/// make the bind-mounted folders again. Only for commands waited for on
/// the thread that starts them (`output()`), which outlives them.
pub(crate) fn die_with_harness(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe work happens
    // here: one prctl(2) call, no allocation, no lock.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        })
    }
}

/// Runs a future to completion from synchronous code, wherever that code
/// runs: on a multi-threaded runtime's worker (the engine), on a
/// current-thread runtime, or outside any runtime (benchmarks, plain tests).
pub(crate) fn block_on<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    use std::sync::OnceLock;
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drill-backend")
            .enable_all()
            .build()
            .expect("a tokio runtime for the backends")
    });
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| rt.block_on(fut))
        }
        Ok(_) => std::thread::scope(|s| {
            s.spawn(|| rt.block_on(fut))
                .join()
                .expect("the backend thread panicked")
        }),
        Err(_) => rt.block_on(fut),
    }
}

/// Removes what earlier runs left behind (killed with SIGKILL, or kept
/// with `--keep`): temp dirs whose harness is gone, with their servers,
/// and containers and volumes labelled by a harness that is gone. With
/// `foreign_older_than`, also what a harness this process cannot check
/// left (another boot, machine or container) once it is that old: after a
/// reboot nothing tells a dead run from a live one on another machine but
/// age. Returns what was removed and what was left, with why.
pub fn reap_leftovers(foreign_older_than: Option<Duration>) -> Sweep {
    // Containers first: one still starting would make its bind-mounted
    // folders again after they were removed.
    let whose = owner::Whose::Dead { foreign_older_than };
    let mut sweep = docker::reap(whose);
    sweep.extend(native::reap(whose));
    sweep
}

/// What a sweep removed, and what it left with why (a live drill's, or one
/// whose owner cannot be checked from here).
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    pub removed: Vec<String>,
    pub left: Vec<String>,
}

impl Sweep {
    fn extend(&mut self, other: Sweep) {
        self.removed.extend(other.removed);
        self.left.extend(other.left);
    }
}

/// Emergency teardown for Ctrl-C: this process's servers, containers,
/// volumes and temp dirs, even while a drill step is still blocked on them.
pub fn reap_own() -> Vec<String> {
    let mut sweep = docker::reap(owner::Whose::Mine);
    sweep.extend(native::reap(owner::Whose::Mine));
    sweep.removed
}

#[cfg(feature = "test-support")]
/// For tests that run on every backend: whether `backend` can run these
/// services here. Native always can (its tests fail loudly when binaries
/// are missing). Docker needs an answering engine and the images (see
/// [`ServiceKind::image`]); without them the test should print why and
/// skip, unless `DRILL_REQUIRE_DOCKER` is set (CI sets it), in which case
/// this panics: a CI run must not pass by skipping.
pub fn available_for_tests(backend: BackendKind, services: &[ServiceKind], test: &str) -> bool {
    if backend == BackendKind::Native {
        return true;
    }
    let images: Vec<(ServiceKind, String)> = services.iter().map(|k| (*k, k.image(None))).collect();
    match choose(BackendChoice::Docker, &images) {
        Ok(_) => true,
        Err(e) if std::env::var_os("DRILL_REQUIRE_DOCKER").is_some() => {
            panic!("{test}: the docker backend is required here (DRILL_REQUIRE_DOCKER) but: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test} on docker: {e}");
            false
        }
    }
}

impl ServerSpec {
    /// `text` with the spec's secrets replaced by `***`, for logs.
    pub(crate) fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
    }
}

/// Removes the spec's inherited variables from `cmd`'s environment.
pub(crate) fn scrub_env(cmd: &mut Command, scrub: &[&str]) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        let hit = scrub.iter().any(|s| match s.strip_suffix('*') {
            Some(prefix) => key_text.starts_with(prefix),
            None => key_text == *s,
        });
        if hit {
            cmd.env_remove(&key);
        }
    }
}

/// A program on PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    which_program(program)
}

/// Where `program` is on PATH (or in /usr/bin, /usr/sbin).
pub fn which_program(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A fresh password for a disposable server: 24 random letters and
/// digits (safe in URLs, config files and shell words).
pub fn new_password() -> String {
    use rand::RngExt;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Single-quotes a word for sh.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
