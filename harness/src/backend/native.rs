//! The native backend: a disposable server from the locally installed
//! binaries, in a temp dir, on free loopback ports.
//!
//! The temp dir is named `drill-<service>-<run id>-*` and holds a marker
//! with the harness's pid, the data dir (`data/`), config files and the
//! server's log. The server runs in its own process group, so a crash
//! ([`Stop::Kill`]) kills all of its processes at once, as a container's
//! would die. Servers that refuse root (postgres) run as the `postgres`
//! system user (or `nobody`) when the harness is root. Dropping a
//! [`NativeServer`] stops the server and deletes the dir, on success,
//! failure and panic alike; [`reap`] removes what a killed run
//! left behind.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, User};

use super::owner::{Decision, Owner, State, Whose, legacy_state, start_time};
use super::{BackendKind, ServerSpec, ServiceKind, Stop};
use crate::{Error, Result};

const MARKER: &str = "drill-owner";
/// `pid starttime` of the server process, for reaping.
const SERVER_RECORD: &str = "drill-server";
/// Prefix of every native server's temp dir.
const DIR_PREFIX: &str = "drill-srv-";
/// Prefix of the engine's per-run work dirs (backups, logs).
pub(crate) const RUN_DIR_PREFIX: &str = "drill-run-";

/// A server process. See the module docs.
#[derive(Debug)]
pub(crate) struct NativeServer {
    spec: ServerSpec,
    dir: Option<tempfile::TempDir>,
    run_as: Option<User>,
    child: Option<Child>,
    /// Image port → local port, chosen at each start.
    ports: BTreeMap<u16, u16>,
    keep: bool,
}

impl NativeServer {
    /// Makes the dir, initialises the data when the spec says how, and
    /// starts the server (without waiting for it to answer).
    pub(crate) fn launch(spec: &ServerSpec) -> Result<NativeServer> {
        let run_as = if !spec.native.run_as.is_empty() && super::is_root() {
            let user = spec
                .native
                .run_as
                .iter()
                .find_map(|name| User::from_name(name).ok().flatten());
            Some(user.ok_or_else(|| Error::MissingTool {
                tool: format!("an unprivileged user to run {} as", spec.kind),
                looked_in: spec.native.run_as.join(", "),
                install: format!("useradd {}", spec.native.run_as[0]),
            })?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-{}-", spec.kind, spec.run_id))
            .tempdir()
            .map_err(Error::io("create temp dir in", std::env::temp_dir()))?;
        mark_owner(dir.path())?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(Error::io("chmod", dir.path()))?;
        let mut server = NativeServer {
            spec: spec.clone(),
            dir: Some(dir),
            run_as,
            child: None,
            ports: BTreeMap::new(),
            keep: false,
        };
        server.chown(server.root())?;
        // The server's own tools run as its user (never root): the drill's
        // own run dirs (marked) are theirs to write backups into. A user's
        // folder is never touched.
        for dir in spec.shared.iter().filter(|d| d.join(MARKER).is_file()) {
            server.chown(dir)?;
        }
        super::Server::start(&mut server, spec)?;
        Ok(server)
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .expect("temp dir is present until drop")
    }

    /// The data dir.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root().join("server.log")
    }

    /// The server's pid while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn chown(&self, path: &Path) -> Result<()> {
        if let Some(u) = &self.run_as {
            nix::unistd::chown(path, Some(u.uid), Some(u.gid)).map_err(|e| Error::Io {
                action: "chown",
                path: path.to_owned(),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    /// `{data}`, `{dir}` and `{port:N}` replaced.
    fn expand(&self, s: &str) -> String {
        let mut out = s
            .replace("{data}", &self.data_dir().display().to_string())
            .replace("{dir}", &self.root().display().to_string());
        for (inner, local) in &self.ports {
            out = out.replace(&format!("{{port:{inner}}}"), &local.to_string());
        }
        out
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some(u) = &self.run_as {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        cmd.current_dir(self.root())
            .env("LC_ALL", "C.UTF-8")
            .envs(self.spec.native.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn init_if_empty(&self) -> Result<()> {
        let data = self.data_dir();
        if !data.exists() {
            fs::create_dir_all(&data).map_err(Error::io("create", &data))?;
            fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
                .map_err(Error::io("chmod", &data))?;
            self.chown(&data)?;
        }
        let empty = fs::read_dir(&data)
            .map_err(Error::io("read", &data))?
            .next()
            .is_none();
        if let (true, Some((program, args))) = (empty, &self.spec.native.init) {
            let out = self
                .command(program)
                .args(args.iter().map(|a| self.expand(a)))
                .output()
                .map_err(|source| Error::Spawn {
                    command: program.display().to_string(),
                    source,
                })?;
            if !out.status.success() {
                return Err(Error::command(program.display().to_string(), &out));
            }
        }
        Ok(())
    }

    fn write_files(&self) -> Result<()> {
        for (name, text) in &self.spec.native.files {
            let path = self.root().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                self.chown(parent)?;
            }
            fs::write(&path, self.expand(text)).map_err(Error::io("write", &path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(Error::io("chmod", &path))?;
            self.chown(&path)?;
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        self.write_files()?;
        let log =
            fs::File::create(self.log_path()).map_err(Error::io("create", self.log_path()))?;
        self.chown(&self.log_path())?;
        let program = self.spec.native.program.clone();
        let mut cmd = self.command(&program);
        cmd.args(self.spec.native.args.iter().map(|a| self.expand(a)))
            // Own process group: a terminal's Ctrl-C reaches the harness,
            // which shuts the server down in order; a crash kills the group.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(Error::io("open", self.log_path()))?,
            )
            .stderr(log);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: program.display().to_string(),
            source,
        })?;
        let pid = child.id() as i32;
        let args: Vec<String> = self
            .spec
            .native
            .args
            .iter()
            .map(|a| self.expand(a))
            .collect();
        tracing::debug!(service = %self.spec.kind, pid, program = %program.display(), args = %self.spec.redact(&args.join(" ")), "server started");
        self.child = Some(child);
        let record = self.root().join(SERVER_RECORD);
        fs::write(&record, format!("{pid} {}\n", start_time(pid).unwrap_or(0)))
            .map_err(Error::io("write", &record))
    }

    /// `program` of the server's own version: in the spec's tools dir,
    /// else on PATH; absolute.
    fn resolve(&self, program: &str) -> Option<PathBuf> {
        self.spec
            .native
            .tools_dir
            .as_ref()
            .map(|d| d.join(program))
            .filter(|p| p.is_file())
            .or_else(|| crate::backend::which(program))
    }

    fn help(&self) -> String {
        format!(
            "{} (native, pid {}, ports {}): data and log in {}",
            self.spec.kind,
            self.pid().unwrap_or(0),
            self.ports
                .values()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.root().display()
        )
    }
}

impl super::Server for NativeServer {
    fn kind(&self) -> ServiceKind {
        self.spec.kind
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Native
    }

    fn source(&self) -> String {
        self.spec
            .native
            .program
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    fn addr(&self, port: u16) -> (String, u16) {
        ("127.0.0.1".into(), *self.ports.get(&port).unwrap_or(&port))
    }

    fn tool_addr(&self, port: u16) -> (String, u16) {
        self.addr(port)
    }

    fn tool(&self, program: &str, env: &[(String, String)]) -> Command {
        tracing::debug!(service = %self.spec.kind, program, user = self.run_as.as_ref().map(|u| u.name.as_str()), "tool");
        let path = self
            .resolve(program)
            .unwrap_or_else(|| PathBuf::from(program));
        let mut cmd = Command::new(path);
        if let Some(u) = &self.run_as {
            // As the server's user, in the server's dir: a backup that
            // fooled a client tool still could not act as root.
            cmd.uid(u.uid.as_raw())
                .gid(u.gid.as_raw())
                .current_dir(self.root())
                .env("HOME", self.root());
        }
        super::scrub_env(&mut cmd, &self.spec.scrub_env);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn tool_shim(
        &self,
        program: &str,
        fixed: &[(String, String)],
        _passthrough: &[&str],
        args: &[String],
    ) -> String {
        let q = super::sh_quote;
        // An absolute path: the shim's own folder comes first on the
        // caller's PATH, and a bare name would run the shim again.
        let Some(path) = self.resolve(program) else {
            return format!(
                "#!/bin/sh\necho \"drill: {program} is not installed here; install the package that has it (Debian: apt-get install ...)\" >&2\nexit 127\n"
            );
        };
        let mut script = format!("#!/bin/sh\n# drill: {program} of the server's own version\n");
        for (k, v) in fixed {
            script.push_str(&format!("export {k}={}\n", q(v)));
        }
        script.push_str(&format!("exec {}", q(&path.to_string_lossy())));
        for a in args {
            script.push_str(&format!(" {}", q(a)));
        }
        script.push_str(" \"$@\"\n");
        script
    }

    fn readable(&self, path: &Path) -> Result<PathBuf> {
        let Some(u) = &self.run_as else {
            return Ok(path.to_owned());
        };
        let probe = if path.is_dir() {
            path.join("toc.dat")
        } else {
            path.to_owned()
        };
        let readable = Command::new("test")
            .arg("-r")
            .arg(&probe)
            .uid(u.uid.as_raw())
            .gid(u.gid.as_raw())
            .status()
            .is_ok_and(|s| s.success());
        if readable {
            return Ok(path.to_owned());
        }
        let copy = self.root().join("staged").join(
            path.file_name()
                .map_or_else(|| "backup".into(), |n| n.to_os_string()),
        );
        tracing::debug!(from = %path.display(), to = %copy.display(), user = %u.name, "the tool user cannot read the backup: staged a copy");
        let _ = fs::remove_dir_all(&copy);
        let staged = copy.parent().unwrap_or(&copy);
        fs::create_dir_all(staged).map_err(Error::io("create", staged))?;
        let out = Command::new("cp")
            .arg("-R")
            .arg(path)
            .arg(&copy)
            .output()
            .map_err(Error::spawn("cp -R"))?;
        if !out.status.success() {
            return Err(Error::command(format!("cp -R {}", path.display()), &out));
        }
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(copy.parent().unwrap_or(&copy))
            .output()
            .map_err(Error::spawn("chown -R"))?;
        if !out.status.success() {
            return Err(Error::command("chown -R", &out));
        }
        Ok(copy)
    }

    fn data_location(&self) -> String {
        self.data_dir().display().to_string()
    }

    fn data_shell_with(&self, script: &str, others: &[(String, String)]) -> Result<Output> {
        tracing::debug!(service = %self.spec.kind, script, "data shell");
        Command::new("sh")
            .args(["-c", script])
            .env("DATA", self.data_dir())
            .envs(others.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                command: format!("sh -c {script}"),
                source,
            })
    }

    fn alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::Down {
                service: self.spec.kind,
                why: "it was never started".into(),
                log_tail: self.log_tail(15),
            });
        };
        if let Some(status) = child.try_wait().ok().flatten() {
            self.child = None;
            return Err(Error::Down {
                service: self.spec.kind,
                why: format!("it exited ({status})"),
                log_tail: self.log_tail(15),
            });
        }
        Ok(())
    }

    fn log_tail(&self, lines: usize) -> String {
        crate::vocab::tail(
            &String::from_utf8_lossy(&fs::read(self.log_path()).unwrap_or_default()),
            lines,
        )
    }

    fn stop(&mut self, how: Stop) -> Result<super::Stopped> {
        let Some(mut child) = self.child.take() else {
            return Ok(super::Stopped::default());
        };
        let started = Instant::now();
        let done = |escalated| super::Stopped {
            was_running: true,
            escalated,
            took: started.elapsed(),
        };
        let pid = Pid::from_raw(child.id() as i32);
        tracing::debug!(service = %self.spec.kind, pid = pid.as_raw(), ?how, "stop");
        let signal = match how {
            Stop::Graceful => self.spec.stop_signal,
            Stop::Signal(s) => s,
            Stop::Kill => {
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = child.wait();
                return Ok(done(false));
            }
        };
        let _ = kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                // Children that outlive their parent die with the group.
                let _ = killpg(pid, Signal::SIGKILL);
                return Ok(done(false));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::debug!(service = %self.spec.kind, pid = pid.as_raw(), "still running 10 s after its signal: SIGKILL");
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = child.wait();
        Ok(done(true))
    }

    fn start(&mut self, spec: &ServerSpec) -> Result<()> {
        self.stop(Stop::Graceful)?;
        self.spec = spec.clone();
        self.write_files()?;
        self.init_if_empty()?;
        let mut last = None;
        // The ports it had, first: a server started again keeps its address
        // (as a published port does), so clients and a script's PGPORT
        // still reach it. A port is picked free but could be taken before
        // the server binds it: try again with others.
        let before = std::mem::take(&mut self.ports);
        for attempt in 0..4 {
            let same = before.len() == spec.ports.len()
                && spec.ports.iter().all(|p| before.contains_key(p));
            self.ports = if attempt == 0 && same {
                before.clone()
            } else {
                spec.ports
                    .iter()
                    .map(|p| free_port().map(|l| (*p, l)))
                    .collect::<Result<_>>()?
            };
            self.spawn()?;
            // Give a bind failure a moment to show.
            std::thread::sleep(Duration::from_millis(30));
            match super::Server::alive(self) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = self.log_tail(30);
                    if !(log.contains("could not bind")
                        || log.contains("Address already in use")
                        || log.contains("Address in use"))
                    {
                        return Err(e);
                    }
                    tracing::debug!(service = %spec.kind, ports = ?self.ports, "port taken before the server bound it; retrying with others");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("loop ran"))
    }

    fn wipe(&mut self) -> Result<()> {
        self.stop(Stop::Kill)?;
        let data = self.data_dir();
        tracing::debug!(service = %self.spec.kind, data = %data.display(), "wipe: remove the data dir");
        remove_dir_retrying(&data)?;
        Ok(())
    }

    fn keep(&mut self) -> String {
        self.keep = true;
        format!("{}\n  remove with: cargo xtask clean", self.help())
    }

    fn describe(&self) -> String {
        self.help()
    }

    #[cfg(feature = "test-support")]
    fn resources(&self) -> Vec<super::Resource> {
        let mut r = vec![super::Resource::Dir(self.root().to_owned())];
        r.extend(self.pid().map(super::Resource::Process));
        r
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        if self.keep {
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
            if let Some(child) = self.child.take() {
                std::mem::forget(child);
            }
            return;
        }
        let _ = super::Server::stop(self, Stop::Graceful);
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            if dir.close().is_err() {
                let _ = remove_dir_retrying(&path);
            }
        }
    }
}

/// The server's children may still be writing for a moment after it died:
/// retry until the folder is really gone.
fn remove_dir_retrying(dir: &Path) -> Result<()> {
    let mut last = None;
    for _ in 0..50 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    Err(Error::io("remove", dir)(last.expect("loop ran")))
}

/// A folder of the run's in the temp dir (`drill-run-<id>-<what>-*`, or
/// `drill-run-<id>-*` without `what`): its owner's only (backups, logs,
/// shims with passwords) and marked as this process's before anything is
/// put in it, so an interrupt never finds one of ours unmarked.
pub(crate) fn run_dir(run_id: &str, what: Option<&str>) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let what = what.map_or(String::new(), |w| format!("{w}-"));
    let dir = tempfile::Builder::new()
        .prefix(&format!("{RUN_DIR_PREFIX}{run_id}-{what}"))
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(Error::io("create temp dir in", std::env::temp_dir()))?;
    mark_owner(dir.path())?;
    Ok(dir)
}

/// Writes the marker that ties a temp dir to this process, for reaping.
pub(crate) fn mark_owner(dir: &Path) -> Result<()> {
    fs::write(
        dir.join(MARKER),
        format!("{}\n", super::owner::Owner::me().label()),
    )
    .map_err(Error::io("write", dir.join(MARKER)))
}

/// Stops servers and removes temp dirs that earlier runs left behind (a
/// run killed with SIGKILL, or one started with `--keep`): server dirs and
/// work dirs, as `whose` selects. A dir whose owning harness is alive is
/// left alone and listed.
pub(crate) fn reap(whose: Whose) -> super::Sweep {
    let mut sweep = super::Sweep::default();
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return sweep;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) && !name.starts_with(RUN_DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner: Option<(State, String)> =
            fs::read_to_string(dir.join(MARKER))
                .ok()
                .and_then(|s| match Owner::parse(&s) {
                    Some(o) => Some((o.state(), o.describe())),
                    // Written before owners were recorded in full: a pid.
                    None => s.trim().parse().ok().map(|pid| {
                        (
                            legacy_state(pid, None),
                            format!("pid {pid}, an older drill"),
                        )
                    }),
                });
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        let decision = match (whose, owner) {
            (_, Some((state, who))) => whose.decide(&who, state, Some(age)),
            // No marker: a run killed before it wrote one, or one writing
            // it right now; only the former is a minute old.
            (Whose::Dead { .. }, None) if age > Duration::from_secs(60) => Decision::Take,
            _ => Decision::Skip,
        };
        match decision {
            Decision::Take => {}
            Decision::Leave(why) => {
                sweep.left.push(format!("{}: {why}", dir.display()));
                continue;
            }
            Decision::Skip => continue,
        }
        // Only signal a process that really serves this dir: after a
        // reboot a pid may belong to anything.
        // The server and every process it started share its group; its
        // data is about to be deleted, so nothing is gained by a gentler
        // signal.
        for pid in server_pids_of(&dir) {
            let p = Pid::from_raw(pid);
            tracing::debug!(pid, dir = %dir.display(), "reap: SIGKILL to the server's process group");
            let _ = killpg(p, Signal::SIGKILL);
            let _ = kill(p, Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        tracing::debug!(dir = %dir.display(), "reap: remove");
        if remove_dir_retrying(&dir).is_ok() {
            sweep.removed.push(dir.display().to_string());
        }
    }
    sweep
}

/// The server drill started in `dir`, from the record [`spawn`] wrote
/// (`pid starttime`), when that pid still is the same process: after a
/// reboot or a long time, a pid may belong to anything.
fn server_pids_of(dir: &Path) -> Vec<i32> {
    let Ok(text) = fs::read_to_string(dir.join(SERVER_RECORD)) else {
        return Vec::new();
    };
    let mut parts = text.split_whitespace();
    let (Some(pid), Some(started)) = (
        parts.next().and_then(|p| p.parse::<i32>().ok()),
        parts.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return Vec::new();
    };
    if start_time(pid) == Some(started) {
        vec![pid]
    } else {
        Vec::new()
    }
}

/// Alive and not a zombie.
fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind", "127.0.0.1:0"))?;
    Ok(l.local_addr()
        .map_err(Error::io("bind", "127.0.0.1:0"))?
        .port())
}
