//! PostgreSQL (or TimescaleDB) in a drill: which flavour runs, the Nexwave
//! fixture, the baseline (row counts, checksums, the catalog), the writer,
//! its backups, the faults it takes, its recovery steps and its checks.

use std::any::Any;
use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use drill_fixtures::{Dataset, Flavour};

use super::backup::{Artifact, PgDump, ShellBackup};
use super::pitr::{self, Physical};
use super::replica::{self, Replication};
use super::restore::{
    PgRestoreOptions, PsqlRestoreOptions, pg_restore, psql_restore, run_sql_within,
};
use super::snapshot::{self, Snapshot};
use super::timescale::TsState;
use super::upgrade::{self, Upgrades};
use super::{PgBinaries, PgSpec, Postgres, checks, workload};
use crate::Result;
use crate::backend::{BackendKind, sh_quote};
use crate::check::CheckResult;
use crate::scenario::{
    Backup, BackupMethod as Method, DumpFormat, Fault, FixtureName, PgEngine, RowsExpect, Scenario,
    SchemaExpect, Step,
};
use crate::service::{
    BackupCx, BackupMethod, BackupTaken, JudgeCx, Lifecycle, Placement, Service, StepDone,
    exit_code,
};
use crate::vocab::{ServerInfo, ServiceKind};
use crate::workload::{Boundary, Ledger, RpoMeasurement, Writer};

/// How to get TimescaleDB where no registry serves it.
pub(crate) const TIMESCALEDB_HINT: &str = "with a registry: the official timescale/timescaledb image, or \
    Timescale's packages for this PostgreSQL; without one: DRILL_TIMESCALEDB_SRC=<its source tarball> \
    cargo xtask deps (native) or cargo xtask images (docker); or set `engine = \"postgres\"`";

/// Which flavour a server runs, and the sentence saying why.
pub(crate) fn resolve_flavour(
    engine: PgEngine,
    backend: BackendKind,
    image: &str,
    major: Option<u32>,
) -> Result<(Flavour, String)> {
    let installed = match backend {
        BackendKind::Native => PgBinaries::locate_version(major)?.has_timescaledb(),
        BackendKind::Docker => super::server::image_has_timescaledb(image),
    };
    Ok(match (engine, installed) {
        (PgEngine::Postgres, _) => (Flavour::Postgres, "postgres".into()),
        (PgEngine::Auto, false) => (
            Flavour::Postgres,
            "postgres (engine auto: the timescaledb extension is not installed)".into(),
        ),
        (PgEngine::Auto, true) => (
            Flavour::TimescaleDb,
            "timescaledb (engine auto: the extension is installed)".into(),
        ),
        (PgEngine::Timescaledb, true) => (Flavour::TimescaleDb, "timescaledb".into()),
        (PgEngine::Timescaledb, false) => {
            let looked_in = match backend {
                BackendKind::Native => {
                    let bins = PgBinaries::locate_version(major)?;
                    format!(
                        "{} and {}",
                        bins.share_dir().display(),
                        bins.pkglib_dir().display()
                    )
                }
                BackendKind::Docker => format!("image {image}"),
            };
            return Err(crate::Error::MissingTool {
                tool: "the timescaledb extension (engine = \"timescaledb\")".into(),
                looked_in,
                install: TIMESCALEDB_HINT.into(),
            });
        }
    })
}

/// The TimescaleDB version a dump of `server`'s application database
/// carries: the server's, when the database is TimescaleDB's.
fn timescaledb_of(server: &Postgres) -> Option<String> {
    server
        .spec()
        .timescaledb
        .then(|| server.info.timescaledb.clone())
        .flatten()
}

/// One line for the timeline once the server runs.
pub(crate) fn describe(info: &ServerInfo) -> String {
    format!(
        "PostgreSQL {} ({}: {}), timescaledb: {}",
        info.version,
        info.backend,
        info.source,
        info.timescaledb.as_deref().unwrap_or("not available")
    )
}

/// PostgreSQL in a drill.
#[derive(Debug)]
pub(crate) struct PostgresService {
    pub(crate) server: Postgres,
    pub(crate) flavour: Flavour,
    /// How the flavour was chosen, for the report.
    pub(crate) flavour_note: String,
    /// The service's own `-c` settings (a restart keeps them unless the
    /// fault overrides them).
    settings: BTreeMap<String, String>,
    backup_method: Option<Box<dyn BackupMethod<Postgres>>>,
    /// Which dataset the scenario loads.
    fixture: FixtureName,
    baseline: Option<Snapshot>,
    /// The major version the baseline was taken on.
    baseline_major: u32,
    /// The newest backup.
    dump: Option<Artifact>,
    /// The dump a `pg-dump` step took in this recovery (restored before
    /// `dump`).
    step_dump: Option<Artifact>,
    /// The TimescaleDB version of the server each of those dumps was taken
    /// from (None: a plain PostgreSQL database): (`dump`'s, `step_dump`'s).
    dumped_timescaledb: (Option<String>, Option<String>),
    /// The run's work dir, where a `pg-dump` step writes.
    work: std::path::PathBuf,
    /// The servers an upgrade step moved the service away from.
    upgrades: Upgrades,
    /// The backup section, for the physical methods' options.
    backup_cfg: Backup,
    /// The WAL archive and base backups, when the method is physical (or
    /// `wal-archive = true`).
    physical: Option<Physical>,
    /// When the first fault began: recovery targets are relative to it.
    fault_at: Option<Instant>,
    /// The restore point made before the fault, and when (between the
    /// call and its answer).
    restore_point: Option<(String, Instant, Instant)>,
    /// Where the last point-in-time recovery was asked to stop: the ledger
    /// judges the writes against it.
    recovered_to: Option<Boundary>,
    /// The streaming replica and the failover to it, when declared; last,
    /// so its private network outlives the server (fields drop in order).
    replication: Option<Replication>,
    /// How the replica was made, for the timeline's start line.
    replica_note: Option<String>,
}

impl PostgresService {
    /// Starts the server the scenario declares, in the flavour it asks for.
    pub(crate) fn start(sc: &Scenario, at: &Placement<'_>) -> Result<PostgresService> {
        let cfg = sc
            .services
            .postgres
            .as_ref()
            .expect("the engine starts declared services only");
        let image = crate::vocab::postgres_image(cfg.image.as_deref(), cfg.version);
        let engine = match (sc.fixture.name, cfg.engine) {
            // Seed 004's database is TimescaleDB's: auto must find it.
            (FixtureName::QuantTrading, PgEngine::Auto) => PgEngine::Timescaledb,
            (_, e) => e,
        };
        let (flavour, flavour_note) = resolve_flavour(engine, at.backend, &image, cfg.version)?;
        let archives = sc.backup.method.is_some_and(Method::archives_wal)
            || sc.backup.wal_archive == Some(true);
        let physical = archives
            .then(|| Physical::create(at.run_id, sc.backup.method == Some(Method::Pgbackrest)))
            .transpose()?;
        let mut settings: BTreeMap<String, String> = physical
            .as_ref()
            .map(|p| p.settings().into_iter().collect())
            .unwrap_or_default();
        // The scenario's own settings win (an archive_timeout, say).
        settings.extend(cfg.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut shared = at.shared.clone();
        shared.extend(physical.as_ref().map(|p| p.root().to_owned()));
        // A replica: a private network for the two, and a folder its base
        // backup passes through (shared with both).
        let replica_cfg = sc.services.postgres_replica.as_ref();
        let mut network = replica_cfg
            .map(|_| at.backend.network(at.run_id, "replication"))
            .transpose()?;
        let replica_dir = replica_cfg
            .map(|_| replica::folder(at.run_id))
            .transpose()?;
        shared.extend(replica_dir.as_ref().map(|d| d.path().to_owned()));
        let spec = PgSpec {
            timescaledb: flavour == Flavour::TimescaleDb,
            settings: settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            image,
            shared,
            network: network.as_ref().and_then(|n| n.name()),
            major: cfg.version,
            extras: cfg.extras.clone(),
            ..PgSpec::new(&cfg.database, &cfg.user, at.run_id)
        };
        let backup_method: Option<Box<dyn BackupMethod<Postgres>>> = match sc.backup.method {
            None => None,
            Some(Method::PgDump) => Some(Box::new(PgDump(sc.backup.clone()))),
            Some(Method::Shell) => Some(Box::new(ShellBackup(sc.backup.clone()))),
            Some(Method::BaseBackup | Method::Pgbackrest) => None,
        };
        let server = Postgres::start(at.backend, &spec)?;
        if let Some(p) = &physical {
            p.hand_to_server(&server)?;
        }
        // On an error the primary's container goes before the network
        // (locals drop in reverse order).
        let (replication, replica_note) = match (replica_cfg, replica_dir) {
            (Some(rc), Some(dir)) => {
                let d = sh_quote(&dir.path().display().to_string());
                server.data_shell(&format!("chown \"$(stat -c %u:%g \"$DATA\")\" {d}"))?;
                let (r, note) = Replication::start(&server, &spec, rc, dir, &mut network)?;
                (Some(r), Some(note))
            }
            _ => (None, None),
        };
        Ok(PostgresService {
            replication,
            replica_note,
            server,
            flavour,
            flavour_note,
            settings,
            backup_method,
            fixture: sc.fixture.name,
            baseline: None,
            baseline_major: 0,
            dump: None,
            step_dump: None,
            dumped_timescaledb: (None, None),
            work: at
                .shared
                .first()
                .cloned()
                .unwrap_or_else(std::env::temp_dir),
            upgrades: Upgrades::default(),
            backup_cfg: sc.backup.clone(),
            physical,
            fault_at: None,
            restore_point: None,
            recovered_to: None,
        })
    }

    /// The service's settings as `-c` pairs.
    fn base_settings(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A base backup or a pgBackRest backup into the physical folder.
    fn physical_backup(&mut self, method: Method) -> Result<BackupTaken> {
        let phys = self
            .physical
            .as_mut()
            .expect("physical methods make the folder");
        let started = Instant::now();
        let limit = self
            .backup_cfg
            .timeout
            .map_or(std::time::Duration::from_secs(3_600), |t| t.0);
        let (base, detail) = match (method, &phys.backrest) {
            (Method::Pgbackrest, Some(b)) => {
                let first = phys.bases.is_empty();
                b.backup(&self.server, first, self.backup_cfg.pgbackrest_type, limit)?
            }
            _ => {
                let format = self.backup_cfg.base_format;
                let base = pitr::base_backup(&self.server, phys, format, limit)?;
                let said = format!(
                    "pg_basebackup -D {} -F {} -X stream -c fast",
                    base.location,
                    match format {
                        crate::scenario::BaseFormat::Plain => "plain",
                        crate::scenario::BaseFormat::Tar => "tar",
                    }
                );
                (base, said)
            }
        };
        let took = started.elapsed();
        let archived = phys.archived()?.len();
        // The first backup's line says how the archive is fed, in full.
        let command = if phys.bases.is_empty() {
            phys.settings()
                .into_iter()
                .find(|(k, _)| k == "archive_command")
                .map_or(String::new(), |(_, v)| format!(" = {v}"))
        } else {
            String::new()
        };
        let detail = format!(
            "{detail}: {} MB from segment {} in {}; WAL archive {} ({archived} files) via archive_command{command}",
            base.bytes / 1_000_000,
            base.start,
            crate::fmt_duration(took),
            match &phys.backrest {
                Some(b) => b.repo().display().to_string(),
                None => phys.wal().display().to_string(),
            }
        );
        let record = crate::service::BackupRecord {
            service: ServiceKind::Postgres,
            path: match &phys.backrest {
                Some(b) => b
                    .repo()
                    .join("backup")
                    .join(pitr::backrest::STANZA)
                    .join(&base.location),
                None => std::path::PathBuf::from(&base.location),
            },
            bytes: base.bytes,
            method: if method == Method::Pgbackrest {
                "pgbackrest backup + archive-push".into()
            } else {
                "pg_basebackup -X stream + archive_command".into()
            },
            took,
        };
        phys.bases.push(base);
        Ok(BackupTaken {
            detail,
            record: Some(record),
            artifact: None,
        })
    }

    /// The `pitr` step.
    fn pitr_step(&mut self, step: &Step) -> Result<StepDone> {
        let Step::Pitr {
            target,
            tool,
            backup,
            delta,
            unarchived_wal,
            ..
        } = step
        else {
            unreachable!("called for pitr steps")
        };
        let Some(phys) = &self.physical else {
            return Ok(StepDone::refused(
                "no WAL archive is kept: set a physical backup method",
            ));
        };
        let resolved = match pitr::resolve(
            target,
            self.fault_at,
            self.restore_point
                .as_ref()
                .map(|(n, since, at)| (n.as_str(), *since, *at)),
            phys.bases.last().map(|b| (b.started_at, b.ended_at)),
        ) {
            Ok(r) => r,
            Err(why) => return Ok(StepDone::refused(why.0)),
        };
        let run = pitr::PitrRun {
            target,
            resolved,
            pick: *backup,
            unarchived_wal: *unarchived_wal,
            delta: *delta,
            base_settings: self.base_settings(),
            limit: step.time_limit(),
        };
        let use_backrest = match tool {
            Some(crate::scenario::PitrTool::Pgbackrest) => true,
            Some(crate::scenario::PitrTool::BaseBackup) => false,
            None => phys.backrest.is_some(),
        };
        let done = match (&phys.backrest, use_backrest) {
            (Some(b), true) => b.pitr(&mut self.server, phys, &run)?,
            (None, true) => {
                return Ok(StepDone::refused(
                    "`tool = \"pgbackrest\"` needs `method = \"pgbackrest\"`",
                ));
            }
            (_, false) => pitr::pitr(&mut self.server, phys, &run)?,
        };
        if done.step.ok {
            phys.hand_to_server(&self.server)?;
        }
        self.recovered_to = done.boundary;
        Ok(done.step)
    }

    /// Whether the server the application uses now loads TimescaleDB (a
    /// `new-server` may differ from the first).
    fn timescaledb(&self) -> bool {
        self.server.spec().timescaledb
    }

    /// `psql-restore` and `pg-restore`: the newest backup into the server.
    fn restore(&self, step: &Step) -> Result<StepDone> {
        let (artifact, dumped_ts) = match (&self.step_dump, &self.dump) {
            (Some(a), _) => (a, &self.dumped_timescaledb.1),
            (None, Some(a)) => (a, &self.dumped_timescaledb.0),
            (None, None) => return Ok(StepDone::refused("no postgres backup was taken")),
        };
        // As restore-artifact does: a TimescaleDB dump only into a server
        // with TimescaleDB at the dump's version. The dump's version is its
        // server's when it was taken (no second read of the whole dump).
        let server_ts = self
            .server
            .preloads_timescaledb()
            .then(|| self.server.info.timescaledb.clone())
            .flatten();
        if let Err(why) = upgrade::timescaledb_fits(
            dumped_ts.is_some(),
            dumped_ts.as_deref(),
            server_ts.as_deref(),
        ) {
            return Ok(StepDone::refused(why.0));
        }
        match step {
            Step::PsqlRestore {
                sanitize,
                on_error_stop,
                jobs,
                ..
            } => {
                if artifact.format != DumpFormat::Plain {
                    return Ok(StepDone::refused(format!(
                        "psql-restore needs a plain-format dump; {} is {}: use `pg-restore`",
                        artifact.path.display(),
                        artifact.format
                    )));
                }
                let opts = PsqlRestoreOptions {
                    sanitize: *sanitize,
                    on_error_stop: *on_error_stop,
                    timeout: Some(step.time_limit()),
                    timescaledb: self.timescaledb(),
                    role: None,
                    jobs: jobs.map_or(1, usize::from),
                };
                let out = psql_restore(&self.server, artifact, opts)?;
                Ok(out.step_done())
            }
            Step::PgRestore {
                exit_on_error,
                tables,
                data_only,
                disable_triggers,
                jobs,
                ..
            } => {
                if artifact.format == DumpFormat::Plain {
                    return Ok(StepDone::refused(format!(
                        "pg-restore needs a custom- or directory-format dump; {} is plain SQL: use `psql-restore`",
                        artifact.path.display()
                    )));
                }
                let o = PgRestoreOptions {
                    exit_on_error: *exit_on_error,
                    tables: tables.clone(),
                    data_only: *data_only,
                    disable_triggers: *disable_triggers,
                    // Data-only into a schema drill made: no catalog to protect.
                    timescaledb: self.timescaledb() && !*data_only,
                    role: None,
                    limit: Some(step.time_limit()),
                    // TimescaleDB restores on one connection, data-only too.
                    jobs: if self.timescaledb() {
                        1
                    } else {
                        jobs.map_or(1, usize::from)
                    },
                };
                let out = pg_restore(&self.server, &artifact.path, &o)?;
                Ok(out.step_done())
            }
            other => unreachable!("{} is not a restore", other.kind()),
        }
    }

    /// Row counts and checksums of the baseline's tables, with the
    /// workload's rows (from 2026-01-01) left to the RPO: the fixture's
    /// ticks must all be back, exactly.
    async fn rows_and_content(&self, now: &Snapshot, workload: bool) -> Result<Vec<CheckResult>> {
        let baseline = self.baseline.as_ref().expect("taken before any fault");
        let mut rows = checks::rows(&baseline.rows, &now.rows);
        let mut content =
            checks::content(&baseline.rows, &baseline.content, &now.rows, &now.content);
        if workload {
            let fixture = snapshot::filtered_stats(
                self.server.coordinates(),
                "public.ticks",
                &format!("time < '{}'", crate::workload::WORKLOAD_EPOCH_SQL),
            )
            .await?;
            checks::fixture_rows_only(baseline, fixture, &mut rows, &mut content);
        }
        rows.extend(content);
        Ok(rows)
    }
}

#[async_trait]
impl Service for PostgresService {
    fn server(&self) -> &dyn Lifecycle {
        &self.server
    }

    fn server_mut(&mut self) -> &mut dyn Lifecycle {
        &mut self.server
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::Postgres
    }

    fn started(&self) -> String {
        match &self.replica_note {
            Some(r) => format!("{}; {r}", describe(self.server.info())),
            None => describe(self.server.info()),
        }
    }

    fn flavour(&self) -> Option<String> {
        Some(self.flavour_note.clone())
    }

    async fn load_fixture(&self, data: &Dataset) -> Result<String> {
        if self.fixture == FixtureName::QuantTrading {
            let loaded = super::fixture::load_quant(self.server.coordinates(), data.seed).await?;
            let total: u64 = loaded.tables.iter().map(|(_, n)| n).sum();
            return Ok(format!(
                "quant-trading (seed 004), {total} rows in {} tables, seed {}",
                loaded.tables.len(),
                data.seed
            ));
        }
        let loaded =
            super::fixture::load_nexwave(self.server.coordinates(), self.flavour, data).await?;
        let total: u64 = loaded.tables.iter().map(|(_, n)| n).sum();
        Ok(format!(
            "nexwave, {total} rows in {} tables, seed {}",
            loaded.tables.len(),
            data.seed
        ))
    }

    async fn baseline(&mut self) -> Result<String> {
        let s = snapshot::take(self.server.coordinates()).await?;
        let mut said = format!(
            "postgres: {} tables, schema {} objects ({})",
            s.rows.len(),
            s.schema.objects.len(),
            s.schema.digest()
        );
        if let Some(ts) = &s.timescale {
            said.push_str(&format!("; {}", ts.summary()));
        }
        self.baseline = Some(s);
        self.baseline_major = self.server.major();
        Ok(said)
    }

    fn baseline_rows(&self) -> BTreeMap<String, i64> {
        self.baseline
            .as_ref()
            .map(|b| b.rows.clone())
            .unwrap_or_default()
    }

    async fn start_writer(&self, rate: u32, seed: u64) -> Result<Writer> {
        let conn = self.server.coordinates().connect().await?;
        Ok(Writer::spawn(workload::PgSink(conn), rate, seed))
    }

    fn backup_label(&self) -> Option<String> {
        match self.backup_cfg.method {
            Some(Method::BaseBackup) => Some("pg_basebackup".into()),
            Some(Method::Pgbackrest) => Some("pgbackrest backup".into()),
            _ => self.backup_method.as_ref().map(|m| m.label()),
        }
    }

    async fn backup(&mut self, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        if let Some(m @ (Method::BaseBackup | Method::Pgbackrest)) = self.backup_cfg.method {
            return tokio::task::block_in_place(|| self.physical_backup(m));
        }
        let method = self
            .backup_method
            .as_ref()
            .expect("the engine asks only services with a backup");
        let taken = method.take(&self.server, cx).await?;
        self.dump = taken.artifact.clone();
        self.dumped_timescaledb.0 = timescaledb_of(&self.server);
        Ok(taken)
    }

    async fn inject(&mut self, fault: &Fault, _seed: u64) -> Result<String> {
        let mut said = Vec::new();
        self.recovered_to = None;
        self.step_dump = None;
        if let Some(back) = tokio::task::block_in_place(|| self.upgrades.restore(&mut self.server))?
        {
            said.push(back);
        }
        if let Some(r) = &mut self.replication {
            let primary = &mut self.server;
            tokio::task::block_in_place(|| -> Result<()> {
                // A later recovery starts from a fresh fault: the primary
                // of before the first one gets a replica again.
                if r.dealt {
                    said.push(r.rebuild(primary)?);
                }
                r.dealt = true;
                let lag = r.lag(primary)?;
                said.push(format!(
                    "replica {} behind ({} bytes of WAL; {}; replayed to {})",
                    crate::fmt_duration(lag.behind),
                    lag.bytes,
                    lag.state,
                    lag.replayed_lsn
                ));
                r.at_fault = Some(lag);
                Ok(())
            })?;
        }
        said.push(super::fault::inject(&mut self.server, fault, &self.settings).await?);
        if let (Some(how), Some(phys)) = (fault.archive_damage, &self.physical) {
            said.push(tokio::task::block_in_place(|| phys.damage(how))?);
        }
        if fault.archive_lag.is_some()
            && let Some(phys) = &self.physical
        {
            phys.archive_writable(true)?;
        }
        Ok(said.join("; "))
    }

    fn fault_began(&mut self, at: Instant) {
        self.fault_at.get_or_insert(at);
    }

    async fn before_fault(&mut self, fault: &Fault) -> Result<Option<String>> {
        let mut said = Vec::new();
        if let Some(name) = &fault.restore_point {
            let asked = Instant::now();
            let lsn = tokio::task::block_in_place(|| {
                self.server.psql(
                    &format!(
                        "SELECT pg_create_restore_point('{}')",
                        name.replace('\'', "''")
                    ),
                    "postgres",
                )
            })?;
            self.restore_point = Some((name.clone(), asked, Instant::now()));
            said.push(format!("restore point `{name}` made at {lsn}"));
        }
        if let (Some(lag), Some(r)) = (fault.lag, &self.replication) {
            tokio::task::block_in_place(|| r.stall())?;
            tokio::time::sleep(lag.0).await;
            said.push(format!(
                "the replica received no WAL for {} (primary_conninfo emptied)",
                humantime::format_duration(lag.0)
            ));
        }
        let (Some(lag), Some(phys)) = (fault.archive_lag, &self.physical) else {
            return Ok((!said.is_empty()).then(|| said.join("; ")));
        };
        phys.archive_writable(false)?;
        tokio::time::sleep(lag.0).await;
        let stats = tokio::task::block_in_place(|| {
            self.server.psql(
                "SELECT format('failed_count %s, last_failed_wal %s, last_archived_wal %s, archived %s ago', \
                 failed_count, coalesce(last_failed_wal, '-'), coalesce(last_archived_wal, '-'), \
                 coalesce(date_trunc('millisecond', now() - last_archived_time)::text, 'never')) FROM pg_stat_archiver",
                "postgres",
            )
        })?;
        said.push(format!(
            "archive_command failing for {} (archive not writable); pg_stat_archiver: {stats}",
            humantime::format_duration(lag.0)
        ));
        Ok(Some(said.join("; ")))
    }

    fn servers_started(&self) -> Vec<ServerInfo> {
        self.upgrades.started.clone()
    }

    async fn run_step(&mut self, step: &Step) -> Result<StepDone> {
        tokio::task::block_in_place(|| match step {
            Step::PsqlRestore { .. } | Step::PgRestore { .. } => self.restore(step),
            Step::ApplySchema { .. } => {
                let files = match self.fixture {
                    FixtureName::Nexwave => drill_fixtures::nexwave_schema(self.flavour),
                    FixtureName::QuantTrading => drill_fixtures::quant_schema(),
                };
                for f in &files {
                    if let Err(e) = run_sql_within(&self.server, None, f.sql, step.time_limit()) {
                        return Ok(StepDone::failed(format!("fixtures/{} failed: {e}", f.path)));
                    }
                }
                let names: Vec<&str> = files.iter().map(|f| f.path).collect();
                Ok(StepDone::done(format!("applied {}", names.join(", "))))
            }
            Step::Sql { run, .. } => Ok(
                match run_sql_within(&self.server, None, run, step.time_limit()) {
                    Ok(out) => StepDone::done(match out.lines().next() {
                        Some(first) => format!("ok: {first}"),
                        None => "ok".into(),
                    }),
                    Err(e) => StepDone::failed(e.to_string()),
                },
            ),
            Step::Start { .. } => Ok(crate::service::start_step(&mut self.server)),
            Step::Pitr { .. } => self.pitr_step(step),
            Step::Pgbackrest { run, .. } => {
                match self.physical.as_ref().and_then(|p| p.backrest.as_ref()) {
                    Some(b) => b.step(&self.server, *run, step.time_limit()),
                    None => Ok(StepDone::refused(
                        "no pgBackRest repository: set `method = \"pgbackrest\"`",
                    )),
                }
            }
            Step::CheckArchive => match &self.physical {
                Some(p) => pitr::check_archive(&self.server, p),
                None => Ok(StepDone::refused("no WAL archive is kept")),
            },
            Step::Stop { .. } => crate::service::stop_step(&mut self.server),
            Step::PgDump { version, .. } => {
                match super::backup::pg_dump_with(
                    &self.server,
                    &self.backup_cfg,
                    &self.work,
                    *version,
                    Some(step.time_limit()),
                ) {
                    Ok(a) => {
                        let said = format!(
                            "{} → {} ({} bytes) in {}",
                            a.command,
                            a.path.display(),
                            a.bytes,
                            crate::fmt_duration(a.took)
                        );
                        self.step_dump = Some(a);
                        self.dumped_timescaledb.1 = timescaledb_of(&self.server);
                        Ok(StepDone::done(said))
                    }
                    Err(e) => Ok(StepDone::failed(e.to_string())),
                }
            }
            Step::NewServer {
                version,
                image,
                engine,
            } => upgrade::new_server(
                &mut self.upgrades,
                &mut self.server,
                *version,
                image.as_deref(),
                *engine,
            ),
            Step::PgUpgrade {
                version,
                mode,
                checksums,
                ..
            } => upgrade::pg_upgrade(
                &mut self.upgrades,
                &mut self.server,
                *version,
                *mode,
                *checksums,
                step.time_limit(),
            ),
            Step::Promote { .. } | Step::Repoint | Step::OldPrimary { .. } => {
                let Some(r) = &mut self.replication else {
                    return Ok(StepDone::refused("no replica is declared"));
                };
                match step {
                    Step::Promote { .. } => r.promote(step.time_limit()),
                    Step::Repoint => r.repoint(&mut self.server),
                    Step::OldPrimary { fence } => r.old_primary(&self.server, *fence),
                    _ => unreachable!("matched above"),
                }
            }
            Step::DataShell { run, .. } => Ok(match self.server.data_shell(run) {
                Ok(out) => StepDone::done(format!(
                    "ok{}",
                    String::from_utf8_lossy(&out)
                        .lines()
                        .last()
                        .map_or(String::new(), |l| format!(": {l}"))
                )),
                Err(e) => StepDone::failed(e.to_string()),
            }),
            other => unreachable!("validated: `{}` does not act on postgres", other.kind()),
        })
    }

    async fn judge(&self, cx: &JudgeCx<'_>) -> Result<Vec<CheckResult>> {
        let expect = &cx.scenario.expect;
        let coords = self.server.coordinates();
        let baseline = self.baseline.as_ref().expect("taken before any fault");
        let now = snapshot::take(coords).await?;
        let mut out = Vec::new();
        if expect.rows == RowsExpect::SameAsBefore {
            out.extend(self.rows_and_content(&now, cx.workload).await?);
        }
        out.extend(checks::table_rows(&expect.table_rows, &now.rows));
        if let Some(max) = expect.fk_orphans {
            let measured = snapshot::orphans(coords, &baseline.foreign_keys).await?;
            out.extend(checks::fk_orphans(&measured, max));
        }
        if !expect.probes.is_empty() {
            let mut conn = coords.connect().await?;
            for p in &expect.probes {
                out.push(checks::probe(p, &snapshot::probe(&mut conn, p).await));
            }
        }
        if expect.schema == SchemaExpect::SameAsBefore {
            let now_major = self.server.major();
            if now_major == self.baseline_major {
                out.push(checks::schema(&baseline.schema, &now.schema));
                if let Some(ts) = &baseline.timescale {
                    out.extend(checks::timescaledb(ts, now.timescale.as_ref()));
                }
            } else {
                // Another major version deparses the same definitions
                // differently: compare what it cannot change.
                let mut schema = checks::schema(
                    &baseline.schema.across_versions(),
                    &now.schema.across_versions(),
                );
                schema.name = format!(
                    "schema (PostgreSQL {} → {now_major}; qualifiers in view definitions normalised)",
                    self.baseline_major
                );
                out.push(schema);
                if let Some(ts) = &baseline.timescale {
                    out.extend(checks::timescaledb(
                        &ts.across_versions(),
                        now.timescale
                            .as_ref()
                            .map(TsState::across_versions)
                            .as_ref(),
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn measure_rpo(&self, ledger: &Ledger, fault_at: Instant) -> Result<RpoMeasurement> {
        let mut m = workload::measure_rpo(
            self.server.coordinates(),
            ledger,
            fault_at,
            self.recovered_to.as_ref(),
        )
        .await?;
        m.replication = self
            .replication
            .as_ref()
            .filter(|r| r.failed_over)
            .and_then(|r| r.at_fault.clone());
        Ok(m)
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .server
            .coordinates()
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if let Some(a) = &self.dump {
            env.push(("DRILL_BACKUP_FILE".into(), a.path.display().to_string()));
        }
        if let Some(p) = &self.physical {
            env.push(("DRILL_WAL_ARCHIVE".into(), p.wal().display().to_string()));
            if let Some(b) = &p.backrest {
                env.push((
                    "DRILL_PGBACKREST_CONFIG".into(),
                    b.config().display().to_string(),
                ));
                env.push((
                    "DRILL_PGBACKREST_STANZA".into(),
                    pitr::backrest::STANZA.into(),
                ));
            }
            if let Some(b) = p.bases.last() {
                env.push(("DRILL_BASE_BACKUP".into(), b.location.clone()));
            }
        }
        if let Some(r) = self.replication.as_ref().filter(|r| !r.failed_over) {
            let c = r.other.coordinates();
            env.push(("DRILL_REPLICA_HOST".into(), c.host.clone()));
            env.push(("DRILL_REPLICA_PORT".into(), c.port.to_string()));
        }
        env
    }

    fn keep(&mut self) -> String {
        let mut said = self.server.keep();
        if let Some(r) = &mut self.replication {
            said.push('\n');
            said.push_str(&r.keep());
        }
        said
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl super::restore::PsqlOutcome {
    /// As a step of a recovery.
    pub(crate) fn step_done(self) -> StepDone {
        let mut extra = String::new();
        if self.timescaledb_wrapped {
            extra.push_str(", wrapped in timescaledb_pre_restore()/post_restore()");
        }
        if self.timed_out {
            extra.push_str(", killed at the timeout");
        }
        if let Some(s) = &self.sanitize {
            extra.push_str(&format!(
                "; sanitizer removed {} of {} lines ({} kept as possible data)",
                s.removed,
                s.lines_in,
                s.kept_suspicious.len()
            ));
        }
        let mut done = tool_step(
            &self.command,
            self.exit_code,
            self.timed_out,
            self.error_count,
            self.first_errors,
            &extra,
        );
        if self.refused_total > 0 {
            let why = refused_evidence(self.refused_total, &self.refused);
            done.ok = false;
            done.clean = false;
            done.status = "refused commands".into();
            done.detail = format!("{}; {why}", done.detail);
            done.evidence = format!("{why}\n{}", done.evidence);
            done.errors.insert(0, why);
        }
        done
    }
}

impl super::restore::PgRestoreOutcome {
    /// As a step of a recovery.
    pub(crate) fn step_done(self) -> StepDone {
        tool_step(
            &self.command,
            self.exit_code,
            self.timed_out,
            self.error_count,
            self.first_errors,
            "",
        )
    }
}

/// What the guard kept from psql, for people: how many, and each line.
pub(crate) fn refused_evidence(total: u64, refused: &[(u64, String)]) -> String {
    let lines: Vec<String> = refused
        .iter()
        .map(|(n, text)| format!("line {n}: {text}"))
        .collect();
    format!(
        "the backup contains commands that run on the restoring host: {total} refused, none run ({}{})",
        lines.join("; "),
        if total as usize > refused.len() {
            "; ..."
        } else {
            ""
        }
    )
}

/// A restore tool's run as a step: done when it exited 0, clean when it
/// also printed no error; `extra` follows the error count in the detail.
fn tool_step(
    command: &str,
    code: Option<i32>,
    timed_out: bool,
    error_count: u64,
    first_errors: Vec<String>,
    extra: &str,
) -> StepDone {
    let mut detail = format!(
        "{command}: exit {}, {error_count} errors{extra}",
        exit_code(code)
    );
    if let Some(e) = first_errors.first() {
        detail.push_str(&format!("; first: {e}"));
    }
    let ok = code == Some(0) && !timed_out;
    StepDone {
        ok,
        clean: ok && error_count == 0,
        detail,
        status: if timed_out {
            "timed out".into()
        } else {
            format!("exit {}", exit_code(code))
        },
        evidence: first_errors.join("\n"),
        errors: first_errors,
        wal_bytes: None,
    }
}
