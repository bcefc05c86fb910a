//! A disposable Redis server with RDB snapshots and AOF on, as seed 003's
//! runbook describes, on either backend; its market-state fixture, its
//! backup (a manual RDB copy), and the AOF damage and its repair.
//!
//! Natively it is the local `redis-server`; in a container the official
//! image with `redis-server --dir /data ...` as its command, data on a named
//! volume. Every server gets a generated password (`requirepass`, as seed
//! 001's hardening did); tools get it through `REDISCLI_AUTH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ::redis::AsyncConnectionConfig;
use ::redis::aio::MultiplexedConnection;
use nix::sys::signal::Signal;

use super::aof;
use crate::backend::{
    BackendKind, ContainerSpec, NativeSpec, Readiness, ServerSpec, ServiceKind, Stop, sh_quote,
    wait_ready,
};
use crate::service::{Disposable, Engine, Lifecycle};
use crate::{Error, Result};

/// The port Redis listens on inside its image.
pub const PORT: u16 = 6379;
const DATA: &str = "/data";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct RedisSpec {
    pub run_id: String,
    /// The image (docker backend).
    pub image: String,
    /// `--appendonly`: the AOF on (the runbook's "both RDB snapshots and
    /// AOF persistence").
    pub appendonly: bool,
    /// `--appendfsync` (`everysec`, `always`, `no`).
    pub appendfsync: String,
    /// `--save` points for RDB snapshots (`""` turns them off).
    pub save: String,
    /// Host folders the server's tools must see (see [`ServerSpec::shared`]).
    pub shared: Vec<PathBuf>,
    /// `aof-timestamp-enabled yes`: `#TS:` annotations in the AOF.
    pub aof_timestamps: bool,
    /// Other directives (`maxmemory`), before drill's own.
    pub settings: Vec<(String, String)>,
    /// A compose file's container environment.
    pub extras: crate::scenario::Extras,
}

impl RedisSpec {
    /// The runbook's settings: AOF every second, RDB snapshots on Redis's
    /// default schedule.
    pub fn new(run_id: &str) -> RedisSpec {
        RedisSpec {
            run_id: run_id.into(),
            image: ServiceKind::Redis.image(None),
            appendonly: true,
            appendfsync: "everysec".into(),
            save: "3600 1 300 100 60 10000".into(),
            shared: Vec::new(),
            aof_timestamps: false,
            settings: Vec::new(),
            extras: Default::default(),
        }
    }
}

/// What Redis adds to a backend's server: its spec, and flags that differ
/// from it for the current start only (e.g. `--appendonly no` while an RDB
/// file is loaded).
#[derive(Debug)]
pub struct RedisEngine {
    spec: RedisSpec,
    overrides: Vec<(String, String)>,
}

/// A running disposable Redis server, whatever the backend.
pub type Redis = Disposable<RedisEngine>;

impl Engine for RedisEngine {
    fn spec(&self, backend: BackendKind, password: &str) -> Result<ServerSpec> {
        server_spec(backend, &self.spec, password, &self.overrides)
    }

    fn after_start(r: &mut Redis) -> Result<()> {
        r.wait()
    }

    /// `redis-cli` and `redis-check-aof` of the server's version for a
    /// user's script, aimed at this server (the password comes from
    /// `REDISCLI_AUTH`).
    fn shims(r: &Redis) -> Vec<(String, String)> {
        let args: Vec<String> = match r.info.backend {
            // Inside the container the defaults (127.0.0.1:6379) are right.
            BackendKind::Docker => vec![],
            BackendKind::Native => {
                let (h, p) = r.server.addr(PORT);
                vec!["-h".into(), h, "-p".into(), p.to_string()]
            }
        };
        vec![
            (
                "redis-cli".into(),
                r.server
                    .tool_shim("redis-cli", &[], &["REDISCLI_AUTH"], &args),
            ),
            (
                "redis-check-aof".into(),
                r.server.tool_shim("redis-check-aof", &[], &[], &[]),
            ),
        ]
    }

    fn connection_help(r: &Redis) -> String {
        let (h, p) = r.server.addr(PORT);
        format!(
            "redis-cli -h {h} -p {p} --pass '{}'   ({})",
            r.password,
            r.server.describe()
        )
    }
}

impl Redis {
    /// Starts a server on `backend` and waits until it answers PING.
    pub fn start(backend: BackendKind, spec: &RedisSpec) -> Result<Redis> {
        let engine = RedisEngine {
            spec: spec.clone(),
            overrides: Vec::new(),
        };
        Disposable::launch(backend, ServiceKind::Redis, engine)
    }

    pub fn spec(&self) -> &RedisSpec {
        &self.engine.spec
    }

    /// `redis://:password@127.0.0.1:port/0`, as the harness reaches it.
    pub fn url(&self) -> String {
        let (host, port) = self.server.addr(PORT);
        format!("redis://:{}@{host}:{port}/0", self.password)
    }

    /// The variables tools and scripts read: REDIS_URL, REDIS_HOST,
    /// REDIS_PORT, REDIS_PASSWORD and REDISCLI_AUTH (redis-cli's).
    pub fn env(&self) -> Vec<(String, String)> {
        let (host, port) = self.server.addr(PORT);
        vec![
            ("REDIS_URL".into(), self.url()),
            ("REDIS_HOST".into(), host),
            ("REDIS_PORT".into(), port.to_string()),
            ("REDIS_PASSWORD".into(), self.password.clone()),
            ("REDISCLI_AUTH".into(), self.password.clone()),
        ]
    }

    /// `redis-cli` of the server's own version, aimed at it.
    pub fn cli(&self) -> Command {
        let (host, port) = self.server.tool_addr(PORT);
        let mut cmd = self.server.tool(
            "redis-cli",
            &[("REDISCLI_AUTH".to_string(), self.password.clone())],
        );
        cmd.args(["-h", &host, "-p", &port.to_string()]);
        cmd
    }

    /// A connection that waits as long as a command takes (BGSAVE waits,
    /// big XRANGEs): the crate's 500 ms default would cut them off.
    pub async fn connect(&self) -> Result<MultiplexedConnection> {
        let client = ::redis::Client::open(self.url()).map_err(Error::redis("open a client"))?;
        let cfg = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(5)));
        client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(Error::redis(format!("connect to {}", self.addr())))
    }

    fn addr(&self) -> String {
        let (h, p) = self.server.addr(PORT);
        format!("{h}:{p}")
    }

    /// `INFO <section>` as key → value.
    pub async fn info_section(&self, section: &str) -> Result<BTreeMap<String, String>> {
        let mut con = self.connect().await?;
        let text: String = ::redis::cmd("INFO")
            .arg(section)
            .query_async(&mut con)
            .await
            .map_err(Error::redis(format!("INFO {section}")))?;
        Ok(parse_info(&text))
    }

    fn wait(&mut self) -> Result<()> {
        let url = self.url();
        wait_ready(self.server.as_mut(), READY_TIMEOUT, |_| probe(&url))?;
        if self.info.version.is_empty() {
            let v = crate::backend::block_on(async {
                self.info_section("server")
                    .await
                    .map(|m| m.get("redis_version").cloned().unwrap_or_default())
            })?;
            self.info.version = v;
        }
        Ok(())
    }

    /// Starts the server (again) on its data, with the spec's settings
    /// overridden by `overrides` (e.g. `appendonly` = `no`) for this start.
    /// Err when it does not come up (a damaged AOF): the server stays down
    /// and [`Redis::down`] says why.
    pub fn start_with(&mut self, overrides: &[(String, String)]) -> Result<()> {
        self.engine.overrides = overrides.to_vec();
        self.start_again()
    }

    /// Stops the server: SIGTERM, which makes Redis fsync its AOF and save
    /// an RDB snapshot first (when save points are set), as `docker compose
    /// stop` does.
    pub fn stop(&mut self) -> Result<crate::backend::Stopped> {
        self.server.stop(Stop::Graceful)
    }

    /// A manual RDB backup (the runbook's "manual RDB backup"): SAVE, then
    /// the snapshot copied out of the data dir or volume into `dir`.
    pub async fn backup_rdb(&self, dir: &Path) -> Result<PathBuf> {
        let mut con = self.connect().await?;
        let _: String = ::redis::cmd("SAVE")
            .query_async(&mut con)
            .await
            .map_err(Error::redis("SAVE"))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let dst = dir.join(format!("redis_dump_{stamp}.rdb"));
        tokio::task::block_in_place(|| {
            self.data_shell(&format!(
                "cp \"$DATA/dump.rdb\" {} && sync",
                sh_quote(&dst.display().to_string())
            ))
        })?;
        Ok(dst)
    }
}

impl Redis {
    /// The AOF's incremental file, relative to `$DATA`.
    fn incr_file(&self) -> Result<String> {
        let manifest = self.data_shell("cat \"$DATA\"/appendonlydir/*.manifest")?;
        aof::incr_file(&String::from_utf8_lossy(&manifest))
            .map(|f| format!("appendonlydir/{f}"))
            .ok_or_else(|| {
                Error::unexpected(
                    "find redis's AOF",
                    "no incremental file in appendonlydir's manifest (is appendonly on?)",
                )
            })
    }

    /// Fault: the server is stopped, its AOF damaged as `kind` says (the
    /// place chosen from `seed`), and started again. A cut-off tail loads
    /// (`aof-load-truncated yes`); damage in the middle leaves the server
    /// down, as in the runbook's "Redis fails to start with AOF errors".
    /// Survives: the commands before the damage; the returned [`aof::Damage`]
    /// names the keys that do not.
    ///
    /// The first time, the AOF as it was is kept in the first shared dir;
    /// a later injection (the next recovery's) puts it back first, so every
    /// recovery starts from the same damage.
    pub fn corrupt_aof(
        &mut self,
        kind: crate::scenario::DamageKind,
        seed: u64,
    ) -> Result<(aof::Damage, String)> {
        self.stop()?;
        if let Some(keep) = self
            .engine
            .spec
            .shared
            .first()
            .map(|d| d.join("redis-aof-before-damage"))
        {
            let keep = sh_quote(&keep.display().to_string());
            self.data_shell(&format!(
                "if [ -d {keep} ]; then rm -rf \"$DATA/appendonlydir\" && cp -a {keep} \"$DATA/appendonlydir\"; \
                 else cp -a \"$DATA/appendonlydir\" {keep}; fi"
            ))?;
        }
        let file = self.incr_file()?;
        let bytes = self.data_shell(&format!("cat \"$DATA/{file}\""))?;
        let damage = aof::plan(&bytes, kind, seed)?;
        self.data_shell(&damage.script(&format!("$DATA/{file}")))?;
        let outcome = match self.start_with(&[]) {
            Ok(()) => "redis started on the damaged AOF".to_string(),
            // Redis's own words: from its log, or from the error that
            // carries the log's tail (a container gone before its log was
            // read leaves only the latter).
            Err(e) => {
                let said = format!("{}\n{e}", self.server.log_tail(30));
                format!(
                    "redis refused to start: {}",
                    said.lines()
                        .rev()
                        .find(|l| l.contains("Bad file format"))
                        .or_else(|| said.lines().rev().find(|l| l.contains("AOF")))
                        .unwrap_or("(see its log)")
                        .trim()
                )
            }
        };
        Ok((damage, outcome))
    }

    /// Point in time: stops the server (SIGTERM: the AOF is flushed), cuts
    /// the AOF back with `redis-check-aof --truncate-to-timestamp ts` (every
    /// command annotated after second `ts` goes, in the incremental files
    /// the manifest lists) and starts it again. Survives: the commands of
    /// second `ts` and before. Returns what the tool printed of it.
    pub fn truncate_aof_to(&mut self, ts: u64) -> Result<String> {
        self.stop()?;
        let manifest = self.data_shell("cd \"$DATA/appendonlydir\" && ls *.manifest")?;
        let manifest = String::from_utf8_lossy(&manifest).trim().to_string();
        if manifest.is_empty() || manifest.contains('\n') {
            return Err(Error::unexpected(
                "find redis's AOF manifest",
                format!("appendonlydir holds `{manifest}`"),
            ));
        }
        let out = self.data_shell(&format!(
            "redis-check-aof --truncate-to-timestamp {ts} \"$DATA/appendonlydir/{manifest}\" 2>&1"
        ))?;
        let said = String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| l.contains("truncated") || l.contains("Truncate") || l.contains("valid"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" | ");
        self.start_with(&[])?;
        Ok(said)
    }

    /// Repair: `redis-check-aof --fix` on the AOF's incremental file, with
    /// the server's own tool over its data (the runbook's `docker run --rm
    /// -v redis_data:/data redis redis-check-aof --fix ...`), answering its
    /// y/N question. Returns what it printed.
    pub fn check_aof_fix(&mut self) -> Result<String> {
        self.server.stop(Stop::Graceful)?;
        let file = self.incr_file()?;
        let out = self.data_shell(&format!(
            "echo y | redis-check-aof --fix \"$DATA/{file}\" 2>&1"
        ))?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Restores an RDB file (the runbook's "Manual RDB Restore"): stop,
    /// copy it over `dump.rdb` in the data dir or volume, start. With
    /// `aof_off_while_loading`, the AOF is switched off for that start (a
    /// Redis with `appendonly yes` loads its AOF, not the RDB, and would
    /// come back empty), then `CONFIG SET appendonly yes` writes a fresh
    /// AOF from memory and the server is restarted with its own settings.
    pub fn restore_rdb(&mut self, rdb: &Path, aof_off_while_loading: bool) -> Result<String> {
        self.stop()?;
        self.data_shell(&format!(
            "rm -rf \"$DATA/appendonlydir\" && cp {} \"$DATA/dump.rdb\"",
            sh_quote(&rdb.display().to_string())
        ))?;
        if !aof_off_while_loading || !self.engine.spec.appendonly {
            self.start_with(&[])?;
            return Ok(format!(
                "copied {} into the data dir and started",
                rdb.display()
            ));
        }
        self.start_with(&[("appendonly".into(), "no".into())])?;
        crate::backend::block_on(async {
            let mut con = self.connect().await?;
            let _: () = ::redis::cmd("CONFIG")
                .arg("SET")
                .arg("appendonly")
                .arg("yes")
                .query_async(&mut con)
                .await
                .map_err(Error::redis("CONFIG SET appendonly yes"))?;
            // The rewrite that makes the AOF from what was loaded.
            for _ in 0..600 {
                let info = self.info_section("persistence").await?;
                if info.get("aof_last_bgrewrite_status").map(String::as_str) == Some("err") {
                    return Err(Error::unexpected(
                        "switch redis's AOF back on",
                        "the AOF rewrite failed (aof_last_bgrewrite_status:err); see redis's log",
                    ));
                }
                let done = info.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
                    && info.get("aof_rewrite_scheduled").map(String::as_str) == Some("0")
                    && info.get("aof_enabled").map(String::as_str) == Some("1");
                if done {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(Error::unexpected(
                "switch redis's AOF back on",
                "the AOF rewrite did not finish within 30 s",
            ))
        })?;
        self.stop()?;
        self.start_with(&[])?;
        Ok(format!(
            "copied {}; started with appendonly no, CONFIG SET appendonly yes (AOF rewritten from memory), restarted with AOF on",
            rdb.display()
        ))
    }
}

/// The server described for both backends; `overrides` replace the spec's
/// flags for one start.
fn server_spec(
    backend: BackendKind,
    spec: &RedisSpec,
    password: &str,
    overrides: &[(String, String)],
) -> Result<ServerSpec> {
    let mut flags: Vec<(String, String)> = spec.settings.clone();
    flags.extend([
        (
            "appendonly".into(),
            if spec.appendonly { "yes" } else { "no" }.into(),
        ),
        ("appendfsync".into(), spec.appendfsync.clone()),
        ("save".into(), spec.save.clone()),
        ("requirepass".into(), password.into()),
        ("protected-mode".into(), "no".into()),
    ]);
    if spec.aof_timestamps {
        flags.push(("aof-timestamp-enabled".into(), "yes".into()));
    }
    for (k, v) in overrides {
        match flags.iter_mut().find(|(fk, _)| fk == k) {
            Some(slot) => slot.1 = v.clone(),
            None => flags.push((k.clone(), v.clone())),
        }
    }
    let as_args = |flags: &[(String, String)]| -> Vec<String> {
        flags
            .iter()
            .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
            .collect()
    };
    let native = match backend {
        BackendKind::Docker => NativeSpec::default(),
        BackendKind::Native => {
            let program =
                crate::backend::which("redis-server").ok_or_else(|| Error::MissingTool {
                    tool: "redis-server".into(),
                    looked_in: "PATH".into(),
                    install: "apt-get install -y redis-server (or `cargo xtask deps`)".into(),
                })?;
            let mut args: Vec<String> = [
                "--port",
                "{port:6379}",
                "--bind",
                "127.0.0.1",
                "--dir",
                "{data}",
                "--daemonize",
                "no",
            ]
            .map(String::from)
            .to_vec();
            args.extend(as_args(&flags));
            NativeSpec {
                tools_dir: program.parent().map(Path::to_path_buf),
                program,
                args,
                init: None,
                files: vec![],
                run_as: vec![],
                env: vec![],
            }
        }
    };
    let mut cmd = vec!["redis-server".to_string(), "--dir".into(), DATA.into()];
    cmd.extend(as_args(&flags));
    Ok(ServerSpec {
        kind: ServiceKind::Redis,
        run_id: spec.run_id.clone(),
        ports: vec![PORT],
        shared: spec.shared.clone(),
        stop_signal: Signal::SIGTERM,
        secrets: vec![password.to_string()],
        scrub_env: vec![],
        container: ContainerSpec {
            limits: spec.extras.limits,
            image: spec.image.clone(),
            data: DATA.into(),
            env: spec.extras.env.clone(),
            cmd,
            files: vec![],
            borrow_volume: None,
            network: None,
        },
        native,
    })
}

/// Ready once PING answers PONG (not LOADING).
fn probe(url: &str) -> Readiness {
    let client = match ::redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => return Readiness::NotYet(e.to_string()),
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return Readiness::NotYet(String::new());
    };
    match ::redis::cmd("PING").query::<String>(&mut con) {
        Ok(p) if p == "PONG" => Readiness::Ready,
        Ok(other) => Readiness::NotYet(other),
        Err(e) if e.code() == Some("LOADING") => Readiness::NotYet(String::new()),
        Err(e) => Readiness::NotYet(e.to_string()),
    }
}

/// `INFO` text (`key:value` lines, `#` sections) as a map.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads the dataset's market state with pipelined commands.
pub async fn load_fixture(r: &Redis, data: &drill_fixtures::Dataset) -> Result<usize> {
    let mut con = r.connect().await?;
    let cmds = data.redis_commands();
    for chunk in cmds.chunks(1000) {
        let mut pipe = ::redis::pipe();
        for c in chunk {
            let mut cmd = ::redis::cmd(&c[0]);
            for a in &c[1..] {
                cmd.arg(a);
            }
            pipe.add_command(cmd).ignore();
        }
        let () = pipe
            .query_async(&mut con)
            .await
            .map_err(Error::redis("load the fixture"))?;
    }
    Ok(cmds.len())
}
