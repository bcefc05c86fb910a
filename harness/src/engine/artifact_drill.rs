//! "Does last night's backup restore, and how long does it take?": restores
//! a user's backup file (or the newest whole one in a folder) into a
//! disposable server and checks it against the user's expectations. The
//! backup is inspected before anything is restored: a truncated gzip or a
//! checksum mismatch is a failed drill, not a half-restored database.

mod physical;

use std::path::PathBuf;
use std::time::Duration;

use drill_fixtures::Flavour;

use super::timeline::{Phase, Timeline};
use super::{DrillOptions, DrillReport, RecoveryReport, Verdict, WarningCode};
use crate::Result;
use crate::artifact::{self, Inspection};
use crate::check::{self, CheckKind, CheckResult};
use crate::scenario::{DumpFormat, PgEngine, RecoveryExpect, RecoveryTarget};
use crate::service::postgres::backup::Artifact;
use crate::service::postgres::checks::{probe, schema};
use crate::service::postgres::pitr;
use crate::service::postgres::restore::{
    PgRestoreOptions, PsqlRestoreOptions, pg_restore, psql_restore,
};
use crate::service::postgres::snapshot::{self, Fingerprint, Snapshot};
use crate::service::postgres::{PgSpec, Postgres, describe, refused_evidence, resolve_flavour};
use crate::service::{Lifecycle, StepDone};
use crate::vocab::fmt_duration;

/// What to restore and what must hold afterwards.
#[derive(Debug, Clone)]
pub struct ArtifactDrill {
    /// A dump file, a dump folder (`-Fd`), or a folder of backups.
    pub backup: PathBuf,
    pub engine: PgEngine,
    pub database: String,
    pub user: String,
    /// Remove pg_dump's stderr from plain dumps (default); off to test the
    /// plain `gunzip | psql` procedure.
    pub sanitize: bool,
    /// Tables that must exist (`public.` is assumed without a schema).
    pub tables: Vec<String>,
    /// (table, at least this many rows).
    pub min_rows: Vec<(String, i64)>,
    /// Schema fingerprint saved from production (`cargo xtask fingerprint`).
    pub fingerprint: Option<Fingerprint>,
    /// SQL that must return true.
    pub probes: Vec<String>,
    /// A restore that brings back no table passes (otherwise an empty
    /// restore is red: a backup job that dumps the wrong database would be
    /// green forever).
    pub allow_empty: bool,
    pub rto: Duration,
    /// The image to restore into (docker backend); None: the environment's
    /// or the official default.
    pub image: Option<String>,
    /// With a `pg_basebackup` output as `backup`: the WAL archive to
    /// replay from.
    pub wal_archive: Option<PathBuf>,
    /// A pgBackRest repository (posix) to restore from, and its stanza.
    pub pgbackrest_repo: Option<PathBuf>,
    pub stanza: Option<String>,
    /// Where a physical backup's recovery stops (default: latest).
    pub target: RecoveryTarget,
    /// The PostgreSQL major version to restore into (the forward-compat
    /// gate: last night's backups into the next version); None: the one
    /// drill finds. The fingerprint is then compared across versions.
    pub version: Option<u32>,
    /// Connections the restore uses: a plain dump's COPY data in chunks over
    /// N psql connections, `pg_restore -j N` for an archive (1 for a
    /// TimescaleDB target, whose restore takes one connection).
    pub jobs: usize,
}

const NAME: &str = "restore-artifact";

/// A restore under way.
struct Restore<'a> {
    d: &'a ArtifactDrill,
    tl: Timeline,
    report: DrillReport,
    checks: Vec<CheckResult>,
    /// Started once a backup passed what can be checked without one.
    server: Option<Postgres>,
    flavour: Flavour,
    backend: crate::vocab::BackendKind,
    run_id: String,
}

/// Restores the artifact and judges it. One "recovery" named `restore`; its
/// RTO runs from the start of the restore to every check green.
pub async fn restore_artifact(d: &ArtifactDrill, opts: &DrillOptions) -> Result<DrillReport> {
    let mut r = Restore::new(d, opts);
    if let Some((done, restore_at)) = r.restore_physical()? {
        let green = if done.status == "refused" {
            false
        } else {
            r.step_failed(&done);
            r.server.is_some() && done.ok && r.judge().await?
        };
        let rto = green.then(|| restore_at.elapsed());
        return Ok(r.finish(rto, done.errors, done.wal_bytes, opts));
    }
    let Some(inspection) = r.choose_backup()? else {
        return Ok(r.finish(None, vec![], None, opts));
    };
    if !r.compatible(&inspection)? {
        return Ok(r.finish(None, vec![], None, opts));
    }
    let restore = Phase::Recovery("restore".into());
    let restore_at = r.tl.start(&restore, "restore");
    let done = r.restore(&inspection)?;
    r.tl.finish(
        &restore,
        "restore",
        restore_at,
        done.ok,
        done.detail.clone(),
    );
    r.step_failed(&done);
    let errors = done.errors;
    let green = r.judge().await?;
    let rto = green.then(|| restore_at.elapsed());
    Ok(r.finish(rto, errors, None, opts))
}

impl Restore<'_> {
    /// A failed restore step is a red check with the tool's output.
    fn step_failed(&mut self, done: &StepDone) {
        if !done.ok {
            self.checks.push(CheckResult::new(
                CheckKind::Step,
                "step restore",
                "succeeds",
                done.status.clone(),
                false,
                Some(done.evidence.clone()),
            ));
        }
    }

    /// A restore about to begin: nothing started yet.
    fn new<'a>(d: &'a ArtifactDrill, opts: &DrillOptions) -> Restore<'a> {
        let run_id = super::new_run_id();
        let report = DrillReport {
            backend: opts.backend.name().into(),
            ..DrillReport::new(
                NAME,
                &format!("restore {}", d.backup.display()),
                d.backup.clone(),
                &run_id,
                d.rto,
            )
        };
        Restore {
            d,
            tl: Timeline::new(NAME, opts.progress.clone()),
            report,
            checks: Vec::new(),
            server: None,
            flavour: Flavour::Postgres,
            backend: opts.backend,
            run_id,
        }
    }

    /// The server to restore into, in the flavour asked for, started on
    /// first use.
    fn server(&mut self) -> Result<&Postgres> {
        self.server_with(Vec::new(), false)
    }

    /// [`Restore::server`], also sharing `extra` folders with it; for a
    /// `physical` backup, with what keeps a cluster from elsewhere from
    /// running anything (on its command line and in drill's sessions).
    fn server_with(&mut self, extra: Vec<PathBuf>, physical: bool) -> Result<&Postgres> {
        if self.server.is_none() {
            let d = self.d;
            let image = crate::vocab::postgres_image(d.image.as_deref(), d.version);
            let (flavour, flavour_note) =
                resolve_flavour(d.engine, self.backend, &image, d.version)?;
            // The server's own pg_restore reads the backup where it lies.
            let backup =
                std::path::absolute(&d.backup).map_err(crate::Error::io("resolve", &d.backup))?;
            let shared = if backup.is_dir() {
                backup
            } else {
                backup.parent().map(PathBuf::from).unwrap_or(backup)
            };
            let mut shared = vec![shared];
            shared.extend(extra);
            shared.sort();
            shared.dedup();
            let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
                list.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            let (mut settings, client_options) = if physical {
                (
                    pairs(pitr::UNTRUSTED_BACKUP_SETTINGS),
                    pairs(pitr::UNTRUSTED_SESSION_SETTINGS),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            // A physical backup may preload what this server lacks.
            if flavour == Flavour::Postgres {
                settings.push(("shared_preload_libraries".into(), String::new()));
            }
            let spec = PgSpec {
                timescaledb: flavour == Flavour::TimescaleDb,
                settings,
                client_options,
                image,
                shared,
                major: d.version,
                ..PgSpec::new(&d.database, &d.user, &self.run_id)
            };
            let backend = self.backend;
            let server = self.tl.timed(
                &Phase::Setup,
                "start postgres",
                || Postgres::start(backend, &spec),
                |s| describe(s.info()),
            )?;
            self.report.servers = vec![server.info().clone()];
            self.report.flavour = flavour_note;
            self.flavour = flavour;
            self.server = Some(server);
        }
        Ok(self.server.as_ref().expect("started above"))
    }

    /// The backup to restore: the file, or the newest whole one in a
    /// folder; the rejected ones are the integrity check's evidence. All
    /// that can be told without a server is told first: a backup that is
    /// not one starts no server.
    fn choose_backup(&mut self) -> Result<Option<Inspection>> {
        let d = self.d;
        let candidates = match self.candidates() {
            Ok(c) => c,
            Err(why) => {
                self.checks.push(unusable(&d.backup, &why.0));
                return Ok(None);
            }
        };
        let mut rejected: Vec<Inspection> = Vec::new();
        let mut chosen = None;
        for c in candidates {
            let name = c.file_name().map(|n| n.to_string_lossy().into_owned());
            let step = format!("inspect {}", name.unwrap_or_default());
            let t = self.tl.start(&Phase::Inspect, &step);
            let mut i = tokio::task::block_in_place(|| artifact::inspect_file(&c, &d.database));
            if i.ok && i.format != DumpFormat::Plain {
                let server = self.server()?;
                tokio::task::block_in_place(|| artifact::inspect_archive(&mut i, server))?;
            }
            let safe = i.refused_total == 0;
            let detail = match (i.ok, safe) {
                (true, true) => i.describe(),
                (true, false) => refused_evidence(i.refused_total, &i.refused),
                (false, _) => i.problems.join("; "),
            };
            self.tl
                .finish(&Phase::Inspect, &step, t, i.ok && safe, detail);
            if i.ok && !safe {
                // A tampered backup is the finding: no falling back past it.
                self.checks.push(integrity(Some(&i), &rejected));
                self.checks.push(safety(&i));
                return Ok(None);
            }
            if i.ok {
                chosen = Some(i);
                break;
            }
            rejected.push(i);
        }
        self.checks.push(integrity(chosen.as_ref(), &rejected));
        self.warn_about(chosen.as_ref(), &rejected);
        Ok(chosen)
    }

    /// The backups to try, newest first: the one named, or a folder's.
    fn candidates(&self) -> std::result::Result<Vec<PathBuf>, crate::errors::Refusal> {
        let d = self.d;
        artifact::readable_kind(&d.backup)?;
        let is_backup_folder = d.backup.is_dir() && !d.backup.join("toc.dat").is_file();
        if !is_backup_folder {
            return Ok(vec![d.backup.clone()]);
        }
        let found = artifact::candidates(&d.backup).map_err(|e| e.to_string())?;
        if found.is_empty() {
            return Err("the folder holds no backup: no gzip stream, no custom-format archive, no pg_dump SQL, and no toc.dat of a directory-format dump".into());
        }
        Ok(found)
    }

    /// What a person should know though it fails nothing: the backup used
    /// and why newer ones were not, pg_dump's stderr inside it.
    fn warn_about(&mut self, chosen: Option<&Inspection>, rejected: &[Inspection]) {
        if let Some(used) = chosen.filter(|_| !rejected.is_empty()) {
            let why: Vec<String> = rejected
                .iter()
                .map(|r| format!("{}: {}", r.path.display(), r.problems.join("; ")))
                .collect();
            self.report.warn(
                WarningCode::FellBack,
                format!(
                    "the newest backup was unusable; fell back to an older one, {} ({} rejected)",
                    used.path.display(),
                    rejected.len()
                ),
                why.join("\n"),
            );
        }
        if let Some(i) = chosen.filter(|i| i.stderr_lines > 0) {
            let restored_clean = if self.d.sanitize {
                "drill removes them before psql sees them; fix the backup job (2>/dev/null or a log file)"
            } else {
                "a plain `gunzip | psql` restore will fail"
            };
            self.report.warn(
                WarningCode::StderrInBackup,
                format!(
                    "the backup job writes pg_dump's stderr into the file: {} lines of it are inside {}; {restored_clean}",
                    i.stderr_lines,
                    i.path.display(),
                ),
                format!("{} stderr lines", i.stderr_lines),
            );
        }
    }

    /// Whether the server can take the dump: a TimescaleDB dump needs the
    /// extension, at the dump's version.
    fn compatible(&mut self, inspection: &Inspection) -> Result<bool> {
        if !inspection.timescaledb {
            return Ok(true);
        }
        self.server()?;
        if self.flavour != Flavour::TimescaleDb {
            self.checks.push(CheckResult::new(
                CheckKind::Extension,
                "timescaledb available",
                "the server has the timescaledb extension the dump needs",
                "not installed",
                false,
                Some(
                    "install TimescaleDB for this PostgreSQL, or restore into an image that has it"
                        .into(),
                ),
            ));
            return Ok(false);
        }
        let server_version = match self.server() {
            Ok(s) => s.info().timescaledb.clone(),
            Err(_) => None,
        };
        let ok = match (&inspection.timescaledb_version, &server_version) {
            (Some(dump), Some(server)) => dump == server,
            _ => true, // the dump does not say: nothing to compare
        };
        self.checks.push(CheckResult::new(
            CheckKind::Extension,
            "timescaledb version",
            format!("the server's ({})", server_version.as_deref().unwrap_or("?")),
            inspection
                .timescaledb_version
                .clone()
                .unwrap_or_else(|| "not recorded in the dump".into()),
            ok,
            (!ok).then(|| "TimescaleDB restores need the version the dump was taken with: install it, or restore into an image of that version".into()),
        ));
        Ok(ok)
    }

    /// Restores the chosen backup as a role that is no superuser (the
    /// backup is untrusted).
    fn restore(&mut self, inspection: &Inspection) -> Result<StepDone> {
        let artifact = Artifact {
            path: inspection.path.clone(),
            bytes: inspection.bytes,
            format: inspection.format,
            compressed: inspection.gzip,
            command: "user-supplied".into(),
            stderr_tail: String::new(),
            took: Duration::ZERO,
        };
        self.report.backup = Some(artifact.clone());
        let sanitize = self.d.sanitize;
        self.server()?;
        let wrap = inspection.timescaledb && self.flavour == Flavour::TimescaleDb;
        let server = self.server.as_ref().expect("started");
        let owners: Vec<String> = inspection.job_owners.names.iter().cloned().collect();
        tokio::task::block_in_place(|| {
            let role = Some(server.untrusted_role()?);
            // The jobs' owner is a `regrole`: it must exist for the rows to
            // load, even with --no-owner. A role that cannot log in.
            let created = server.ensure_roles(&owners)?;
            let mut done = match artifact.format {
                DumpFormat::Plain => {
                    let opts = PsqlRestoreOptions {
                        sanitize,
                        on_error_stop: true,
                        // Twice the RTO: red either way, and bounded.
                        timeout: Some(self.d.rto * 2),
                        timescaledb: wrap,
                        role,
                        jobs: self.d.jobs,
                    };
                    psql_restore(server, &artifact, opts)?.step_done()
                }
                DumpFormat::Custom | DumpFormat::Directory => {
                    let opts = PgRestoreOptions {
                        exit_on_error: true,
                        timescaledb: wrap,
                        role,
                        limit: Some(self.d.rto * 2),
                        jobs: self.d.jobs, // pg_restore takes one for a TimescaleDB target
                        ..Default::default()
                    };
                    pg_restore(server, &artifact.path, &opts)?.step_done()
                }
            };
            if !created.is_empty() {
                done.detail.push_str(&format!(
                    "; created role {} (NOLOGIN): the dump's TimescaleDB jobs are owned by it",
                    created.join(", ")
                ));
            }
            Ok(done)
        })
    }

    /// The user's expectations, checked on the restored database (a
    /// timeline step); whether every check so far is green.
    async fn judge(&mut self) -> Result<bool> {
        let restore = Phase::Recovery("restore".into());
        let t = self.tl.start(&restore, "checks");
        let server = self.server.as_ref().expect("restored into it");
        let coords = server.coordinates().clone();
        // A restored database that cannot be read (a dump that dropped it)
        // is the finding, with the reason: a red check, not a harness error.
        let now = match snapshot::take(&coords).await {
            Ok(now) => now,
            Err(e) => {
                self.checks.push(CheckResult::new(
                    CheckKind::Answers,
                    "restored database answers",
                    format!("database {} can be read", coords.database),
                    "unreadable",
                    false,
                    Some(e.to_string()),
                ));
                self.tl.finish(&restore, "checks", t, false, e.to_string());
                return Ok(false);
            }
        };
        self.checks.extend(expectations(self.d, &now));
        let mut conn = coords.connect().await?;
        for sql in &self.d.probes {
            let answer = snapshot::probe(&mut conn, sql).await;
            self.checks.push(probe(sql, &answer));
        }
        drop(conn);
        let green = self.checks.iter().all(|c| c.ok);
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: expected {}, got {}", c.name, c.expected, c.actual))
            .collect();
        let detail = if green {
            format!(
                "all green; {} tables, {} rows",
                now.rows.len(),
                now.rows.values().sum::<i64>()
            )
        } else {
            failed.join("; ")
        };
        self.tl.finish(&restore, "checks", t, green, detail);
        self.report.baseline_rows = now.rows;
        Ok(green)
    }

    fn finish(
        mut self,
        rto: Option<Duration>,
        errors: Vec<String>,
        wal_replayed_bytes: Option<u64>,
        opts: &DrillOptions,
    ) -> DrillReport {
        let mut report = self.report;
        let mut checks = self.checks;
        checks.push(check::rto(rto, report.rto_target));
        let met = checks.iter().all(|c| c.ok);
        let summary = match rto {
            Some(r) if met => format!("restored in {}", fmt_duration(r)),
            _ => format!(
                "NOT restored: {}",
                checks
                    .iter()
                    .filter(|c| !c.ok && c.kind != CheckKind::Rto)
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        report.recoveries.push(RecoveryReport {
            name: "restore".into(),
            expect: RecoveryExpect::Recovers,
            recovered: rto.is_some(),
            rto,
            rpo: None,
            rto_per_service: Vec::new(),
            rpo_per_service: Vec::new(),
            checks,
            errors,
            met_expectation: met,
            summary,
            wal_replayed_bytes,
        });
        report.verdict = if met { Verdict::Pass } else { Verdict::Fail };
        report.timeline = self.tl.entries;
        if let (true, Some(server)) = (opts.keep, self.server.as_mut()) {
            report.kept.push(server.keep());
        }
        report
    }
}

/// The integrity check: a whole backup was found; the rejected ones are
/// its evidence.
fn integrity(chosen: Option<&Inspection>, rejected: &[Inspection]) -> CheckResult {
    CheckResult::new(
        CheckKind::BackupIntegrity,
        "backup integrity",
        "a whole backup (gzip complete, checksum matching, readable)",
        match chosen {
            Some(c) if rejected.is_empty() => format!("{} is whole", c.path.display()),
            Some(c) => format!(
                "{} is whole; {} newer backups rejected",
                c.path.display(),
                rejected.len()
            ),
            None => "no usable backup".into(),
        },
        chosen.is_some(),
        (!rejected.is_empty()).then(|| {
            rejected
                .iter()
                .map(|r| format!("{}: {}", r.path.display(), r.problems.join("; ")))
                .collect::<Vec<_>>()
                .join("\n")
        }),
    )
}

/// The backup holds commands that would run on the restoring host: red,
/// with each line.
fn safety(i: &Inspection) -> CheckResult {
    CheckResult::new(
        CheckKind::BackupSafety,
        "backup safety",
        "nothing that runs on the restoring host or reaches another database",
        format!("{} commands refused; nothing restored", i.refused_total),
        false,
        Some(refused_evidence(i.refused_total, &i.refused)),
    )
}

/// The backup named is no backup drill can read: red, with what it is.
fn unusable(path: &std::path::Path, why: &str) -> CheckResult {
    CheckResult::new(
        CheckKind::BackupIntegrity,
        "backup integrity",
        "a whole backup (gzip complete, checksum matching, readable)",
        "no usable backup",
        false,
        Some(format!("{}: {why}", path.display())),
    )
}

/// `--require-table`, `--min-rows` and `--fingerprint` against the
/// restored database.
fn expectations(d: &ArtifactDrill, now: &Snapshot) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for table in &d.tables {
        let key = qualify(table);
        let n = now.rows.get(&key);
        out.push(CheckResult::new(
            CheckKind::Table,
            format!("table {key}"),
            "exists",
            if n.is_some() { "exists" } else { "missing" },
            n.is_some(),
            n.is_none()
                .then(|| format!("relation \"{key}\" does not exist")),
        ));
    }
    for (table, min) in &d.min_rows {
        let key = qualify(table);
        let n = now.rows.get(&key).copied();
        out.push(CheckResult::new(
            CheckKind::MinRows,
            format!("rows {key}"),
            format!(">= {min}"),
            n.map_or("missing".into(), |n| n.to_string()),
            n.is_some_and(|n| n >= *min),
            None,
        ));
    }
    if let Some(fp) = &d.fingerprint {
        out.push(match d.version {
            // Saved from another major version, perhaps: compare what a
            // version cannot change (see `Fingerprint::across_versions`).
            Some(v) => {
                let mut c = schema(&fp.across_versions(), &now.schema.across_versions());
                c.name = format!(
                    "{} (into PostgreSQL {v}; qualifiers in view definitions normalised)",
                    c.name
                );
                c
            }
            None => schema(fp, &now.schema),
        });
    }
    if let Some(ts) = &now.timescale {
        out.extend(crate::service::postgres::checks::timescaledb_restored(ts));
    }
    if !d.allow_empty && now.rows.is_empty() {
        out.push(CheckResult::new(
            CheckKind::Table,
            "restored tables",
            "at least one table",
            "none: the backup restored an empty database",
            false,
            Some("a backup job that dumps the wrong (or an empty) database passes every other check; pin what production holds with --require-table, --min-rows or --fingerprint (`cargo xtask fingerprint`), or pass --allow-empty if an empty database is right".into()),
        ));
    }
    out
}

/// `ticks` → `public.ticks`.
fn qualify(table: &str) -> String {
    if table.contains('.') {
        table.to_string()
    } else {
        format!("public.{table}")
    }
}
