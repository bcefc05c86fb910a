//! The servers of one drill and what is done to all of them: start them in
//! the runbook's order (PostgreSQL, Redis, ClickHouse), load their fixtures,
//! take their baselines and backups, start their writers, inject a fault at
//! one instant, and say how to reach them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drill_fixtures::{Dataset, Flavour};

use super::Timeline;
use crate::backend::{BackendKind, PgBinaries, ServerInfo, ServiceKind};
use crate::backup::{self, Artifact};
use crate::clickhouse::backup::{self as ch_backup, ChBackup};
use crate::clickhouse::{ClickHouse, ClickHouseSpec};
use crate::postgres::{PgSpec, Postgres, PostgresServer, snapshot};
use crate::redis::aof::Damage;
use crate::redis::{Redis, RedisSpec};
use crate::scenario::{
    BackupMethod, ClickHouseBackupMethod, Fault, FaultAction, PgEngine, Scenario,
};
use crate::workload::{ClickHouseSink, Ledger, RedisSink, Writer};
use crate::{Error, Result};

/// PostgreSQL in a drill.
#[derive(Debug)]
pub(crate) struct PgRun {
    pub(crate) server: Box<dyn PostgresServer>,
    pub(crate) flavour: Flavour,
}

/// Every server a drill runs.
#[derive(Debug, Default)]
pub(crate) struct Running {
    pub(crate) pg: Option<PgRun>,
    pub(crate) redis: Option<Redis>,
    pub(crate) ch: Option<ClickHouse>,
}

/// What each service looked like before the fault.
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    pub(crate) pg: Option<snapshot::Snapshot>,
    pub(crate) redis: Option<crate::redis::snapshot::Snapshot>,
    pub(crate) ch: Option<crate::clickhouse::Snapshot>,
}

/// The newest backup of each service.
#[derive(Debug, Default, Clone)]
pub(crate) struct Backups {
    pub(crate) pg: Option<Artifact>,
    pub(crate) redis: Option<PathBuf>,
    pub(crate) ch: Option<ChBackup>,
}

/// The writers while they run, one per service.
#[derive(Debug, Default)]
pub(crate) struct Writers(Vec<(ServiceKind, Writer)>);

/// What each writer had acknowledged when it stopped.
pub(crate) type Ledgers = BTreeMap<ServiceKind, Ledger>;

/// A backup of a service other than PostgreSQL, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupRecord {
    pub service: ServiceKind,
    pub path: PathBuf,
    pub bytes: u64,
    /// How it was made, e.g. `SAVE + dump.rdb copied`.
    pub method: String,
    #[serde(with = "crate::report::millis")]
    pub took: Duration,
}

impl Running {
    /// Starts every declared service on `backend`, recording each on the
    /// timeline; the flavour names what PostgreSQL ran as.
    pub(crate) fn start(
        sc: &Scenario,
        backend: BackendKind,
        run_id: &str,
        work: &Path,
        tl: &mut Timeline,
    ) -> Result<(Running, Vec<ServerInfo>, String)> {
        let mut running = Running::default();
        let mut infos = Vec::new();
        let mut flavour_name = String::new();
        let shared = vec![work.to_owned()];
        if let Some(pg) = &sc.services.postgres {
            let image = ServiceKind::Postgres.image(pg.image.as_deref());
            let has_timescaledb = match backend {
                BackendKind::Native => PgBinaries::locate()?.has_timescaledb(),
                BackendKind::Docker => crate::postgres::server::image_has_timescaledb(&image),
            };
            let flavour = match (pg.engine, has_timescaledb) {
                (PgEngine::Postgres, _) | (PgEngine::Auto, false) => Flavour::Postgres,
                (PgEngine::Auto, true) | (PgEngine::Timescaledb, _) => Flavour::TimescaleDb,
            };
            flavour_name = match flavour {
                Flavour::TimescaleDb => "timescaledb".into(),
                Flavour::Postgres if pg.engine == PgEngine::Auto => {
                    "postgres (timescaledb extension not installed)".into()
                }
                Flavour::Postgres => "postgres".into(),
            };
            let spec = PgSpec {
                timescaledb: flavour == Flavour::TimescaleDb,
                settings: pg
                    .settings
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                image,
                shared: shared.clone(),
                ..PgSpec::new(&pg.database, &pg.user, run_id)
            };
            let server = timed(
                tl,
                "start postgres",
                || Postgres::start(backend, &spec),
                |p| {
                    let i = p.info();
                    format!(
                        "PostgreSQL {} ({}: {}), timescaledb: {}",
                        i.version,
                        i.backend,
                        i.source,
                        i.timescaledb.as_deref().unwrap_or("not available")
                    )
                },
            )?;
            infos.push(server.info().clone());
            running.pg = Some(PgRun {
                server: Box::new(server),
                flavour,
            });
        }
        if let Some(r) = &sc.services.redis {
            let spec = RedisSpec {
                image: ServiceKind::Redis.image(r.image.as_deref()),
                appendonly: r.appendonly,
                appendfsync: r.appendfsync.clone(),
                save: r
                    .save
                    .clone()
                    .unwrap_or_else(|| RedisSpec::new(run_id).save),
                shared: shared.clone(),
                ..RedisSpec::new(run_id)
            };
            let server = timed(
                tl,
                "start redis",
                || Redis::start(backend, &spec),
                |r| {
                    format!(
                        "Redis {} ({}: {}), appendonly {}, appendfsync {}",
                        r.info().version,
                        r.info().backend,
                        r.info().source,
                        if r.spec().appendonly { "yes" } else { "no" },
                        r.spec().appendfsync
                    )
                },
            )?;
            infos.push(server.info().clone());
            running.redis = Some(server);
        }
        if let Some(c) = &sc.services.clickhouse {
            let spec = ClickHouseSpec {
                image: ServiceKind::ClickHouse.image(c.image.as_deref()),
                database: c.database.clone(),
                shared: shared.clone(),
                ..ClickHouseSpec::new(run_id)
            };
            let server = timed(
                tl,
                "start clickhouse",
                || ClickHouse::start(backend, &spec),
                |c| {
                    format!(
                        "ClickHouse {} ({}: {})",
                        c.info().version,
                        c.info().backend,
                        c.info().source
                    )
                },
            )?;
            infos.push(server.info().clone());
            running.ch = Some(server);
        }
        Ok((running, infos, flavour_name))
    }

    /// Loads each service's fixture from one dataset.
    pub(crate) async fn load_fixtures(&self, data: &Dataset, tl: &mut Timeline) -> Result<()> {
        if let Some(pg) = &self.pg {
            let t = tl.start("setup", "load fixture");
            let loaded =
                crate::postgres::fixture::load_nexwave(pg.server.coordinates(), pg.flavour, data)
                    .await?;
            let total: u64 = loaded.tables.iter().map(|(_, n)| n).sum();
            tl.finish(
                "setup",
                "load fixture",
                t,
                true,
                format!(
                    "nexwave, {total} rows in {} tables, seed {}",
                    loaded.tables.len(),
                    data.seed
                ),
            );
        }
        if let Some(r) = &self.redis {
            let t = tl.start("setup", "load redis fixture");
            let n = crate::redis::load_fixture(r, data).await?;
            tl.finish(
                "setup",
                "load redis fixture",
                t,
                true,
                format!(
                    "{n} commands: {} (newest {} ticks), price:*, session:*, cache:pairs, leaderboard:pnl",
                    drill_fixtures::market::PRICE_STREAM,
                    drill_fixtures::market::STREAM_MAX.min(data.ticks)
                ),
            );
        }
        if let Some(c) = &self.ch {
            let t = tl.start("setup", "load clickhouse fixture");
            let rows = crate::clickhouse::load_fixture(c, data).await?;
            tl.finish(
                "setup",
                "load clickhouse fixture",
                t,
                true,
                rows.iter()
                    .map(|(t, n)| format!("{t}: {n} rows"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        Ok(())
    }

    /// Every service's snapshot now.
    pub(crate) async fn snapshot(&self, tl: &mut Timeline) -> Result<Baseline> {
        let t = tl.start("setup", "baseline");
        let mut b = Baseline::default();
        let mut said = Vec::new();
        if let Some(pg) = &self.pg {
            let s = snapshot::take(pg.server.coordinates()).await?;
            said.push(format!(
                "postgres: {} tables, schema {} objects ({})",
                s.rows.len(),
                s.schema.objects.len(),
                s.schema.digest()
            ));
            b.pg = Some(s);
        }
        if let Some(r) = &self.redis {
            let mut con = r.connect().await?;
            let s = crate::redis::snapshot::take(&mut con).await?;
            said.push(format!("redis: {} keys", s.keys.len()));
            b.redis = Some(s);
        }
        if let Some(c) = &self.ch {
            let s = crate::clickhouse::snapshot(c).await?;
            said.push(format!(
                "clickhouse: {}",
                s.tables
                    .iter()
                    .map(|(t, x)| format!("{t} {} rows", x.rows))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            b.ch = Some(s);
        }
        tl.finish("setup", "baseline", t, true, said.join("; "));
        Ok(b)
    }

    /// One writer per service, at `rate` acknowledged writes per second.
    pub(crate) async fn start_writers(&self, rate: u32, seed: u64) -> Result<Writers> {
        let mut w = Vec::new();
        if let Some(pg) = &self.pg {
            w.push((
                ServiceKind::Postgres,
                Writer::start(pg.server.coordinates(), rate, seed).await?,
            ));
        }
        if let Some(r) = &self.redis {
            w.push((
                ServiceKind::Redis,
                Writer::spawn(RedisSink(r.connect().await?), rate, seed),
            ));
        }
        if let Some(c) = &self.ch {
            let db = c.spec().database.clone();
            c.execute(&format!(
                "CREATE TABLE IF NOT EXISTS {db}.{} (time DateTime, ms UInt16, symbol String, price Float64) \
                 ENGINE = MergeTree() ORDER BY (time, ms)",
                crate::workload::CLICKHOUSE_LIVE_TABLE
            ))
            .await?;
            w.push((
                ServiceKind::ClickHouse,
                Writer::spawn(
                    ClickHouseSink {
                        client: c.client(),
                        database: db,
                    },
                    rate,
                    seed,
                ),
            ));
        }
        Ok(Writers(w))
    }

    /// How to reach every service, for a person at a pause.
    pub(crate) fn connection_help(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.pg.as_ref().map(|pg| pg.server.connection_help()));
        v.extend(self.redis.as_ref().map(Redis::connection_help));
        v.extend(self.ch.as_ref().map(ClickHouse::connection_help));
        v
    }

    /// Leaves every server running; how to reach and remove each.
    pub(crate) fn keep(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.pg.as_mut().map(|pg| pg.server.keep()));
        v.extend(self.redis.as_mut().map(Redis::keep));
        v.extend(self.ch.as_mut().map(ClickHouse::keep));
        v
    }

    /// The environment a user's command gets: each service's variables,
    /// the backups' paths, the work dir, and the servers' own tools first
    /// on PATH (local binaries, or shims that run them in the containers).
    pub(crate) fn env(&self, backups: &Backups, work: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut shims: Vec<(String, String)> = Vec::new();
        if let Some(pg) = &self.pg {
            env.extend(
                pg.server
                    .coordinates()
                    .env()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            );
            shims.extend(pg.server.shims());
        }
        if let Some(r) = &self.redis {
            env.extend(r.env());
            shims.extend(r.shims());
        }
        if let Some(c) = &self.ch {
            env.extend(c.env());
            shims.extend(c.shims());
        }
        if let Some(a) = &backups.pg {
            env.push(("DRILL_BACKUP_FILE".into(), a.path.display().to_string()));
        }
        if let Some(p) = &backups.redis {
            env.push(("DRILL_REDIS_BACKUP_FILE".into(), p.display().to_string()));
        }
        if let Some(b) = &backups.ch {
            env.push((
                "DRILL_CLICKHOUSE_BACKUP_DIR".into(),
                b.dir.display().to_string(),
            ));
        }
        env.push(("DRILL_WORK_DIR".into(), work.display().to_string()));
        let bin = work.join("bin");
        if write_shims(&bin, &shims).is_ok() {
            let path = std::env::var("PATH").unwrap_or_default();
            env.push(("PATH".into(), format!("{}:{path}", bin.display())));
        }
        env
    }

    /// Takes each service's backup, recording each on the timeline.
    pub(crate) async fn backup(
        &self,
        sc: &Scenario,
        scenario_dir: &Path,
        work: &Path,
        tl: &mut Timeline,
        backups: &mut Backups,
        records: &mut Vec<BackupRecord>,
    ) -> Result<()> {
        if let (Some(pg), Some(method)) = (&self.pg, sc.backup.method) {
            let step = match method {
                BackupMethod::PgDump => "pg_dump",
                BackupMethod::Shell => "shell",
            };
            let t = tl.start("backup", step);
            let env = self.env(backups, work);
            let taken = tokio::task::block_in_place(|| match method {
                BackupMethod::PgDump => {
                    backup::pg_dump(pg.server.as_ref(), &sc.backup, work).map(|a| (a, None))
                }
                BackupMethod::Shell => {
                    let dir = work.join("backups");
                    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
                    let workdir =
                        scenario_dir.join(sc.backup.workdir.as_deref().unwrap_or(Path::new(".")));
                    backup::shell(
                        pg.server.as_ref(),
                        &sc.backup,
                        &env,
                        &workdir,
                        &dir,
                        &work.join("backup.log"),
                    )
                    .map(|(a, o)| (a, Some(o)))
                }
            });
            match taken {
                Ok((a, out)) => {
                    let output = out
                        .map(|o| {
                            format!("; output: {}", o.output_tail.lines().last().unwrap_or(""))
                        })
                        .unwrap_or_default();
                    tl.finish(
                        "backup",
                        step,
                        t,
                        true,
                        format!(
                            "{} → {} ({} bytes){output}",
                            a.command,
                            a.path.display(),
                            a.bytes
                        ),
                    );
                    backups.pg = Some(a);
                }
                Err(e) => {
                    tl.finish("backup", step, t, false, e.to_string());
                    return Err(e);
                }
            }
        }
        if let (Some(r), Some(_)) = (&self.redis, &sc.backup.redis) {
            let t = tl.start("backup", "redis rdb copy");
            let started = Instant::now();
            match r.backup_rdb(work).await {
                Ok(path) => {
                    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    tl.finish(
                        "backup",
                        "redis rdb copy",
                        t,
                        true,
                        format!("SAVE, then dump.rdb → {} ({bytes} bytes)", path.display()),
                    );
                    records.push(BackupRecord {
                        service: ServiceKind::Redis,
                        path: path.clone(),
                        bytes,
                        method: "SAVE + dump.rdb copied out".into(),
                        took: started.elapsed(),
                    });
                    backups.redis = Some(path);
                }
                Err(e) => {
                    tl.finish("backup", "redis rdb copy", t, false, e.to_string());
                    return Err(e);
                }
            }
        }
        if let (Some(c), Some(b)) = (&self.ch, &sc.backup.clickhouse) {
            let wanted = match b.method {
                ClickHouseBackupMethod::Auto => None,
                ClickHouseBackupMethod::Native => Some(ch_backup::Method::Native),
                ClickHouseBackupMethod::Freeze => Some(ch_backup::Method::Freeze),
                ClickHouseBackupMethod::Export => Some(ch_backup::Method::Export),
            };
            let t = tl.start("backup", "clickhouse backup");
            let taken = async {
                let (method, why) = ch_backup::resolve(c, wanted)?;
                ch_backup::take(c, method, work).await.map(|b| (b, why))
            }
            .await;
            match taken {
                Ok((b, why)) => {
                    tl.finish(
                        "backup",
                        "clickhouse backup",
                        t,
                        true,
                        format!(
                            "{} ({why}) → {} ({} bytes, {} tables)",
                            b.manifest.method.name(),
                            b.dir.display(),
                            b.bytes,
                            b.manifest.tables.len()
                        ),
                    );
                    records.push(BackupRecord {
                        service: ServiceKind::ClickHouse,
                        path: b.dir.clone(),
                        bytes: b.bytes,
                        method: format!("{} ({why})", b.manifest.method.name()),
                        took: b.took,
                    });
                    backups.ch = Some(b);
                }
                Err(e) => {
                    tl.finish("backup", "clickhouse backup", t, false, e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Injects the fault into its targets at one instant: first every
    /// target is killed (when the fault destroys or crashes), then each is
    /// dealt its fault. Returns what happened and, for a damaged AOF, the
    /// damage with the keys it costs.
    pub(crate) async fn inject(
        &mut self,
        fault: &Fault,
        declared: &[ServiceKind],
        base_settings: &BTreeMap<String, String>,
        seed: u64,
    ) -> Result<(String, Option<Damage>)> {
        let targets = fault.targets(declared);
        let mut said = Vec::new();
        let mut damage = None;
        if targets.len() > 1 && matches!(fault.action, FaultAction::Wipe | FaultAction::Crash) {
            // All at once, as when the machine or its disk goes: nothing is
            // written to one service after another has died.
            tokio::task::block_in_place(|| self.halt(&targets))?;
        }
        for t in targets {
            match t {
                ServiceKind::Postgres => {
                    let pg = self.pg.as_mut().expect("validated: postgres declared");
                    said.push(format!(
                        "postgres: {}",
                        crate::fault::inject(pg.server.as_mut(), fault, base_settings).await?
                    ));
                }
                ServiceKind::Redis => {
                    let r = self.redis.as_mut().expect("validated: redis declared");
                    let what = tokio::task::block_in_place(|| -> Result<String> {
                        Ok(match fault.action {
                            FaultAction::Wipe => {
                                r.wipe()?;
                                "volume destroyed; a fresh, empty redis".into()
                            }
                            FaultAction::Crash => {
                                r.crash()?;
                                "every process killed (SIGKILL); started again on its data".into()
                            }
                            FaultAction::Restart => {
                                let stopped = r.restart()?;
                                format!("SIGTERM ({stopped}); started again on its data")
                            }
                            FaultAction::CorruptAof => {
                                let kind = fault.damage.expect("validated: corrupt-aof has damage");
                                let (d, outcome) = r.corrupt_aof(kind, seed)?;
                                let text = format!(
                                    "AOF damaged ({:?} at byte {} of {}: the last {} of {} commands, {} keys); {outcome}",
                                    d.kind,
                                    d.offset,
                                    d.len,
                                    d.commands - d.first_lost,
                                    d.commands,
                                    d.lost_keys.len()
                                );
                                damage = Some(d);
                                text
                            }
                            other => unreachable!("validated: {other:?} is not a redis fault"),
                        })
                    })?;
                    said.push(format!("redis: {what}"));
                }
                ServiceKind::ClickHouse => {
                    let c = self.ch.as_mut().expect("validated: clickhouse declared");
                    let what = tokio::task::block_in_place(|| -> Result<String> {
                        Ok(match fault.action {
                            FaultAction::Wipe => {
                                c.wipe()?;
                                "volume destroyed; a fresh server with an empty database".into()
                            }
                            FaultAction::Crash => {
                                c.crash()?;
                                "every process killed (SIGKILL); started again on its data".into()
                            }
                            FaultAction::Restart => {
                                let stopped = c.restart()?;
                                format!("SIGTERM ({stopped}); started again on its data")
                            }
                            other => {
                                unreachable!("validated: {other:?} is not a clickhouse fault")
                            }
                        })
                    })?;
                    said.push(format!("clickhouse: {what}"));
                }
            }
        }
        Ok((said.join("; "), damage))
    }

    /// Kills the targets' servers at once (SIGKILL), before their faults.
    fn halt(&mut self, targets: &[ServiceKind]) -> Result<()> {
        for t in targets {
            match t {
                ServiceKind::Postgres => {
                    if let Some(pg) = &mut self.pg {
                        pg.server.halt()?;
                    }
                }
                ServiceKind::Redis => {
                    if let Some(r) = &mut self.redis {
                        r.halt()?;
                    }
                }
                ServiceKind::ClickHouse => {
                    if let Some(c) = &mut self.ch {
                        c.halt()?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Writers {
    /// Stops every writer; returns their ledgers.
    pub(crate) async fn stop(self) -> Result<Ledgers> {
        let mut out = Ledgers::new();
        for (k, w) in self.0 {
            out.insert(k, w.stop().await?);
        }
        Ok(out)
    }
}

/// Runs `f` as a timeline step of the setup, with `detail` on success.
fn timed<T>(
    tl: &mut Timeline,
    step: &str,
    f: impl FnOnce() -> Result<T>,
    detail: impl FnOnce(&T) -> String,
) -> Result<T> {
    let t = tl.start("setup", step);
    match tokio::task::block_in_place(f) {
        Ok(x) => {
            tl.finish("setup", step, t, true, detail(&x));
            Ok(x)
        }
        Err(e) => {
            tl.finish("setup", step, t, false, e.to_string());
            Err(e)
        }
    }
}

/// Writes each (program, script) into `bin` (again each time: a wipe or a
/// crash makes a new container).
fn write_shims(bin: &Path, shims: &[(String, String)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin)?;
    for (program, text) in shims {
        let path = bin.join(program);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}
