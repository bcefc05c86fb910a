//! The native backend: a disposable PostgreSQL server from the locally
//! installed binaries (initdb + postgres), in a temp dir, on a free loopback
//! port, with a generated password.
//!
//! initdb and postgres refuse to run as root, so when the harness is root the
//! server runs as the `postgres` system user (or `nobody`). The temp dir is
//! named `drill-pg-<run id>-*` and holds a marker with the harness's pid, so
//! [`reap_leftovers`] can remove what a killed run left behind. Dropping a
//! [`NativePostgres`] stops the server (fast shutdown, then SIGKILL) and
//! deletes the dir, on success, failure and panic alike.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use rand::RngExt;
use rand::distr::Alphanumeric;

use super::{ClientTool, PgBinaries, PgSpec, PostgresServer, ServerInfo};
use crate::postgres::PgCoordinates;
use crate::{Error, Result};

const MARKER: &str = "drill-owner";
const DIR_PREFIX: &str = "drill-pg-";
/// Prefix of the engine's per-run work dirs (backups).
pub(crate) const RUN_DIR_PREFIX: &str = "drill-run-";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server. See the module docs.
#[derive(Debug)]
pub struct NativePostgres {
    spec: PgSpec,
    bins: PgBinaries,
    dir: Option<tempfile::TempDir>,
    run_as: Option<User>,
    child: Option<Child>,
    coords: PgCoordinates,
    info: ServerInfo,
    keep: bool,
}

impl NativePostgres {
    /// initdb, start, wait until it answers, create the application database.
    pub fn start(spec: &PgSpec) -> Result<NativePostgres> {
        let bins = PgBinaries::locate()?;
        if spec.timescaledb && !bins.has_timescaledb() {
            return Err(Error::MissingTool {
                tool: "the timescaledb extension".into(),
                looked_in: format!("{} and {}", bins.share_dir().display(), bins.pkglib_dir().display()),
                install: "TimescaleDB's packages for this PostgreSQL version, or set `engine = \"postgres\"`".into(),
            });
        }
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .or_else(|| User::from_name("nobody").ok().flatten());
            Some(user.ok_or_else(|| {
                Error::server(
                    "find an unprivileged user to run postgres as",
                    "neither `postgres` nor `nobody` exists; create one with `useradd postgres`",
                )
            })?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", spec.run_id))
            .tempdir()
            .map_err(Error::io("create temp dir in", std::env::temp_dir()))?;
        mark_owner(dir.path())?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(Error::io("chmod", dir.path()))?;
        if let Some(u) = &run_as {
            nix::unistd::chown(dir.path(), Some(u.uid), Some(u.gid)).map_err(|e| {
                Error::server(format!("chown {} to {}", dir.path().display(), u.name), e)
            })?;
        }
        let password: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let coords = PgCoordinates {
            host: "127.0.0.1".into(),
            port: 0,
            user: spec.user.clone(),
            password,
            database: spec.database.clone(),
        };
        let info = ServerInfo {
            backend: "native",
            source: bins.bin_dir.display().to_string(),
            version: String::new(),
            timescaledb: None,
        };
        let mut pg = NativePostgres {
            spec: spec.clone(),
            bins,
            dir: Some(dir),
            run_as,
            child: None,
            coords,
            info,
            keep: false,
        };
        pg.init_and_start()?;
        Ok(pg)
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .expect("temp dir is present until drop")
    }

    fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root().join("postgres.log")
    }

    fn command(&self, program: PathBuf) -> Command {
        let mut cmd = Command::new(program);
        if let Some(u) = &self.run_as {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        cmd.current_dir(self.root()).env("LC_ALL", "C.UTF-8");
        cmd
    }

    fn init_and_start(&mut self) -> Result<()> {
        self.initdb()?;
        let mut last = None;
        // The port is picked free but could be taken before postgres binds it.
        for _ in 0..3 {
            self.coords.port = free_port()?;
            match self.spawn_and_wait() {
                Ok(()) => {
                    self.after_start()?;
                    return Ok(());
                }
                Err(e) => {
                    let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                    if !log.contains("could not bind") {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.expect("loop ran"))
    }

    fn initdb(&self) -> Result<()> {
        let pwfile = self.root().join("pwfile");
        fs::write(&pwfile, &self.coords.password).map_err(Error::io("write", &pwfile))?;
        if let Some(u) = &self.run_as {
            let _ = nix::unistd::chown(&pwfile, Some(u.uid), Some(u.gid));
        }
        let out = self
            .command(self.bins.tool("initdb"))
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                &self.spec.user,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|source| Error::Spawn {
                command: "initdb".into(),
                source,
            })?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(Error::server(
                "initdb failed",
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        Ok(())
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let log =
            fs::File::create(self.log_path()).map_err(Error::io("create", self.log_path()))?;
        if let Some(u) = &self.run_as {
            let _ = nix::unistd::chown(&self.log_path(), Some(u.uid), Some(u.gid));
        }
        let mut cmd = self.command(self.bins.tool("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.coords.port.to_string());
        let mut settings = vec![
            ("listen_addresses".to_string(), "127.0.0.1".to_string()),
            (
                "unix_socket_directories".to_string(),
                self.root().display().to_string(),
            ),
        ];
        if self.spec.timescaledb {
            settings.push(("shared_preload_libraries".into(), "timescaledb".into()));
            settings.push(("timescaledb.telemetry_level".into(), "off".into()));
        }
        settings.extend(self.spec.settings.iter().cloned());
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        // Own process group: a terminal's Ctrl-C reaches the harness, which
        // then shuts the server down in order (and --keep can keep it).
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(Error::io("open", self.log_path()))?,
            )
            .stderr(log);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: "postgres".into(),
            source,
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(Error::server(
                    format!("postgres exited during start-up ({status})"),
                    crate::backup::tail(
                        &fs::read_to_string(self.log_path()).unwrap_or_default(),
                        15,
                    ),
                ));
            }
            if self.answers() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::server(
                    "postgres did not accept connections within 60s",
                    crate::backup::tail(
                        &fs::read_to_string(self.log_path()).unwrap_or_default(),
                        15,
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// pg_isready: the server accepts connections (not "starting up").
    fn answers(&self) -> bool {
        Command::new(self.bins.tool("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.coords.port.to_string(),
                "-d",
                "postgres",
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Creates the application database (as the official image's POSTGRES_DB)
    /// and records version facts.
    fn after_start(&mut self) -> Result<()> {
        let psql = |sql: &str, db: &str| -> Result<String> {
            let out = self
                .client(ClientTool::Psql)
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    db,
                    "-c",
                    sql,
                ])
                .output()
                .map_err(|source| Error::Spawn {
                    command: "psql".into(),
                    source,
                })?;
            if !out.status.success() {
                return Err(Error::server(
                    format!("`{sql}` failed"),
                    String::from_utf8_lossy(&out.stderr),
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        if self.spec.database != "postgres" {
            psql(
                &format!("CREATE DATABASE {}", quote_ident(&self.spec.database)),
                "postgres",
            )?;
        }
        let version = psql("SHOW server_version", "postgres")?;
        let ts = psql(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'",
            "postgres",
        )?;
        self.info.version = version;
        self.info.timescaledb = (!ts.is_empty()).then_some(ts);
        Ok(())
    }

    /// Fast shutdown, then SIGKILL after 10 s.
    fn stop(&mut self) {
        self.stop_with(Signal::SIGINT);
    }

    /// Stops with `signal` (SIGINT: fast shutdown with a checkpoint; SIGQUIT:
    /// immediate, no checkpoint, crash recovery at the next start), then
    /// SIGKILL after 10 s.
    fn stop_with(&mut self, signal: Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The postmaster's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The temp dir holding data, socket and log.
    pub fn dir(&self) -> &Path {
        self.root()
    }
}

impl PostgresServer for NativePostgres {
    fn coordinates(&self) -> &PgCoordinates {
        &self.coords
    }

    fn info(&self) -> &ServerInfo {
        &self.info
    }

    fn client(&self, tool: ClientTool) -> Command {
        let mut cmd = Command::new(self.bins.tool(tool.program()));
        crate::postgres::scrub_pg_env(&mut cmd);
        cmd.envs(self.coords.env());
        cmd
    }

    fn wipe(&mut self) -> Result<()> {
        self.stop();
        let data = self.data_dir();
        fs::remove_dir_all(&data).map_err(Error::io("remove", &data))?;
        self.init_and_start()
    }

    fn restart_with(&mut self, settings: &[(String, String)], reattach: bool) -> Result<()> {
        // Abruptly, as a container is when compose recreates it: what was
        // acknowledged survives only through the WAL and the new settings.
        self.stop_with(Signal::SIGQUIT);
        self.spec.settings = settings.to_vec();
        if !reattach {
            let data = self.data_dir();
            fs::remove_dir_all(&data).map_err(Error::io("remove", &data))?;
            return self.init_and_start();
        }
        self.coords.port = free_port()?;
        self.spawn_and_wait()
    }

    fn keep(&mut self) -> String {
        self.keep = true;
        format!("{}\n  remove with: cargo xtask clean", self.help())
    }

    fn connection_help(&self) -> String {
        self.help()
    }
}

impl NativePostgres {
    fn help(&self) -> String {
        format!(
            "postgres (native, pid {}): psql '{}'  (data and log: {})",
            self.pid().unwrap_or(0),
            self.coords.url(),
            self.root().display()
        )
    }
}

impl Drop for NativePostgres {
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
        self.stop();
        // TempDir's own drop removes the folder.
    }
}

/// Writes the marker that ties a temp dir to this process, for reaping.
pub(crate) fn mark_owner(dir: &Path) -> Result<()> {
    fs::write(dir.join(MARKER), format!("{}\n", std::process::id()))
        .map_err(Error::io("write", dir.join(MARKER)))
}

/// Stops servers and removes temp dirs that earlier runs left behind (a run
/// killed with SIGKILL, or one started with `--keep`): `drill-pg-*` server
/// dirs and `drill-run-*` backup dirs. A dir whose owning harness process is
/// still alive is left alone. Returns what was removed.
pub fn reap_leftovers() -> Vec<String> {
    reap(|owner| match owner {
        Some(pid) if pid as u32 != std::process::id() => !matches!(
            kill(Pid::from_raw(pid), None),
            Ok(()) | Err(nix::errno::Errno::EPERM)
        ),
        _ => true,
    })
}

/// Emergency teardown for Ctrl-C: stops the servers and removes the dirs of
/// this process only, even while a drill step is still blocked on them.
pub fn reap_own() -> Vec<String> {
    reap(|owner| owner == Some(std::process::id() as i32))
}

/// Removes every drill dir for which `take(owner pid)` says yes.
fn reap(take: impl Fn(Option<i32>) -> bool) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) && !name.starts_with(RUN_DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner: Option<i32> = fs::read_to_string(dir.join(MARKER))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if !take(owner) {
            continue; // e.g. a live drill owns it
        }
        // Only signal the pid in postmaster.pid if it really is this dir's
        // postgres: after a reboot the number may belong to anything.
        if let Some(pm) = fs::read_to_string(dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            .filter(|pid| is_postgres_of(*pid, &dir))
        {
            let pid = Pid::from_raw(pm);
            let _ = kill(pid, Signal::SIGQUIT); // immediate shutdown
            let deadline = Instant::now() + Duration::from_secs(10);
            while running(pm) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
        // The postmaster's children may still be writing for a moment after
        // it died: retry until the folder is really gone.
        for _ in 0..50 {
            if fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                removed.push(dir.display().to_string());
                break;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    }
    removed
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

/// Whether `pid` is a postgres process serving a data dir inside `dir`.
fn is_postgres_of(pid: i32, dir: &Path) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let exe_is_postgres = args
        .first()
        .is_some_and(|a| a.ends_with(b"/postgres") || *a == b"postgres");
    let data = dir.join("data");
    exe_is_postgres
        && args
            .iter()
            .any(|a| *a == data.as_os_str().as_encoded_bytes())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind", "127.0.0.1:0"))?;
    Ok(l.local_addr()
        .map_err(Error::io("bind", "127.0.0.1:0"))?
        .port())
}

/// Double-quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
