//! "Does last night's backup restore, and how long does it take?": restores
//! a user's backup file (or the newest whole one in a folder) into a
//! disposable server and checks it against the user's expectations. The
//! backup is inspected before anything is restored: a truncated gzip or a
//! checksum mismatch is a failed drill, not a half-restored database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use drill_fixtures::Flavour;

use super::{DrillOptions, DrillReport, RecoveryReport, Timeline, Verdict};
use crate::Result;
use crate::artifact::{self, Inspection};
use crate::backend::{BackendKind, PgBinaries, ServiceKind};
use crate::backup::Artifact;
use crate::check::{self, CheckResult};
use crate::postgres::snapshot::{self, Fingerprint};
use crate::postgres::{PgSpec, Postgres, PostgresServer};
use crate::restore::{PsqlRestoreOptions, pg_restore, psql_restore};
use crate::scenario::{DumpFormat, PgEngine};

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
    pub rto: Duration,
    /// The image to restore into (docker backend); None: the environment's
    /// or the official default.
    pub image: Option<String>,
}

/// Restores the artifact and judges it. One "recovery" named `restore`; its
/// RTO runs from the start of the restore to every check green.
pub async fn restore_artifact(d: &ArtifactDrill, opts: &DrillOptions) -> Result<DrillReport> {
    let run_id = super::new_run_id();
    let name = "restore-artifact".to_string();
    let mut tl = Timeline {
        t0: Instant::now(),
        scenario: name.clone(),
        entries: Vec::new(),
        progress: opts.progress.clone(),
    };
    let has_timescaledb = match opts.backend {
        BackendKind::Native => PgBinaries::locate()?.has_timescaledb(),
        BackendKind::Docker => crate::postgres::server::image_has_timescaledb(
            &ServiceKind::Postgres.image(d.image.as_deref()),
        ),
    };
    let flavour = match (d.engine, has_timescaledb) {
        (PgEngine::Postgres, _) | (PgEngine::Auto, false) => Flavour::Postgres,
        _ => Flavour::TimescaleDb,
    };
    // The server's own pg_restore reads the backup where it lies.
    let backup_dir =
        std::path::absolute(&d.backup).map_err(crate::Error::io("resolve", &d.backup))?;
    let shared = if backup_dir.is_dir() {
        backup_dir
    } else {
        backup_dir.parent().map(PathBuf::from).unwrap_or(backup_dir)
    };
    let spec = PgSpec {
        timescaledb: flavour == Flavour::TimescaleDb,
        image: ServiceKind::Postgres.image(d.image.as_deref()),
        shared: vec![shared],
        ..PgSpec::new(&d.database, &d.user, &run_id)
    };
    let t = tl.start("setup", "start postgres");
    let server: Box<dyn PostgresServer> = Box::new(tokio::task::block_in_place(|| {
        Postgres::start(opts.backend, &spec)
    })?);
    let info = server.info().clone();
    tl.finish(
        "setup",
        "start postgres",
        t,
        true,
        format!(
            "PostgreSQL {} ({}: {}), timescaledb: {}",
            info.version,
            info.backend,
            info.source,
            info.timescaledb.as_deref().unwrap_or("not available")
        ),
    );
    let mut report = DrillReport {
        backend: info.backend.name().into(),
        servers: vec![info],
        flavour: if flavour == Flavour::TimescaleDb {
            "timescaledb".into()
        } else {
            "postgres".into()
        },
        ..DrillReport::new(
            &name,
            &format!("restore {}", d.backup.display()),
            d.backup.clone(),
            &run_id,
            d.rto,
        )
    };

    // Pick the backup: the file, or the newest whole one in a folder.
    let is_backup_folder = d.backup.is_dir() && !d.backup.join("toc.dat").is_file();
    let candidates = if is_backup_folder {
        artifact::candidates(&d.backup)?
    } else {
        vec![d.backup.clone()]
    };
    let mut rejected: Vec<Inspection> = Vec::new();
    let mut chosen = None;
    for c in candidates {
        let step = format!(
            "inspect {}",
            c.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let t = tl.start("inspect", &step);
        let i = tokio::task::block_in_place(|| artifact::inspect(&c, server.as_ref()))?;
        let detail = if i.ok {
            format!(
                "{:?}{}, {} bytes, sha256 {}",
                i.format,
                if i.gzip { " (gzip)" } else { "" },
                i.bytes,
                match i.sha256_matches {
                    Some(true) => "matches its sidecar",
                    Some(false) => "MISMATCH",
                    None => "not given",
                }
            )
        } else {
            i.problems.join("; ")
        };
        tl.finish("inspect", &step, t, i.ok, detail);
        if i.ok {
            chosen = Some(i);
            break;
        }
        rejected.push(i);
    }
    let mut checks: Vec<CheckResult> = Vec::new();
    checks.push(CheckResult {
        name: "backup integrity".into(),
        expected: "a whole backup (gzip complete, checksum matching, readable)".into(),
        actual: match &chosen {
            Some(c) if rejected.is_empty() => format!("{} is whole", c.path.display()),
            Some(c) => format!(
                "{} is whole; {} newer backups rejected",
                c.path.display(),
                rejected.len()
            ),
            None => "no usable backup".into(),
        },
        ok: chosen.is_some(),
        evidence: (!rejected.is_empty()).then(|| {
            rejected
                .iter()
                .map(|r| format!("{}: {}", r.path.display(), r.problems.join("; ")))
                .collect::<Vec<_>>()
                .join("\n")
        }),
    });
    if chosen.is_some() && !rejected.is_empty() {
        report.warnings.push(format!(
            "the newest backup was unusable; fell back to an older one ({} rejected)",
            rejected.len()
        ));
    }
    let Some(inspection) = chosen else {
        return Ok(finish(report, tl, checks, None, vec![], opts, server));
    };
    if inspection.stderr_lines > 0 {
        report.warnings.push(format!(
            "{} lines of pg_dump's own stderr are inside {} (verbose output merged into the backup, as in seed 000); {}",
            inspection.stderr_lines,
            inspection.path.display(),
            if d.sanitize { "drill sanitized them away; fix the backup job (2>/dev/null or a log file)" } else { "a plain `gunzip | psql` restore will fail" }
        ));
    }
    if inspection.timescaledb && flavour != Flavour::TimescaleDb {
        checks.push(CheckResult {
            name: "timescaledb available".into(),
            expected: "the server has the timescaledb extension the dump needs".into(),
            actual: "not installed".into(),
            ok: false,
            evidence: Some(
                "install TimescaleDB for this PostgreSQL, or restore into an image that has it"
                    .into(),
            ),
        });
        return Ok(finish(report, tl, checks, None, vec![], opts, server));
    }
    if inspection.timescaledb && flavour == Flavour::TimescaleDb {
        let server_version = report
            .server(crate::backend::ServiceKind::Postgres)
            .and_then(|s| s.timescaledb.clone());
        let ok = match (&inspection.timescaledb_version, &server_version) {
            (Some(dump), Some(server)) => dump == server,
            _ => true, // the dump does not say: nothing to compare
        };
        checks.push(CheckResult {
            name: "timescaledb version".into(),
            expected: format!("the server's ({})", server_version.as_deref().unwrap_or("?")),
            actual: inspection.timescaledb_version.clone().unwrap_or_else(|| "not recorded in the dump".into()),
            ok,
            evidence: (!ok).then(|| "TimescaleDB restores need the version the dump was taken with: install it, or restore into an image of that version".into()),
        });
        if !ok {
            return Ok(finish(report, tl, checks, None, vec![], opts, server));
        }
    }
    let artifact = Artifact {
        path: inspection.path.clone(),
        bytes: inspection.bytes,
        format: inspection.format,
        compressed: inspection.gzip,
        command: "user-supplied".into(),
        stderr_tail: String::new(),
        took: Duration::ZERO,
    };
    report.backup = Some(artifact.clone());

    // Restore; the clock starts here.
    let wrap = inspection.timescaledb && flavour == Flavour::TimescaleDb;
    let restore_at = tl.start("recovery restore", "restore");
    let (ok, detail, errors) =
        tokio::task::block_in_place(|| -> Result<(bool, String, Vec<String>)> {
            Ok(match artifact.format {
                DumpFormat::Plain => {
                    let o = psql_restore(
                        server.as_ref(),
                        &artifact,
                        PsqlRestoreOptions {
                            sanitize: d.sanitize,
                            on_error_stop: true,
                            timeout: None,
                            timescaledb: wrap,
                        },
                    )?;
                    let removed = o.sanitize.as_ref().map_or(String::new(), |s| {
                        format!("; sanitizer removed {} lines", s.removed)
                    });
                    (
                        o.exit_code == Some(0),
                        format!(
                            "{}: exit {:?}, {} errors{removed}",
                            o.command, o.exit_code, o.error_count
                        ),
                        o.first_errors,
                    )
                }
                DumpFormat::Custom | DumpFormat::Directory => {
                    let o = pg_restore(
                        server.as_ref(),
                        &artifact.path,
                        &crate::restore::PgRestoreOptions {
                            exit_on_error: true,
                            timescaledb: wrap,
                            ..Default::default()
                        },
                    )?;
                    (
                        o.exit_code == Some(0),
                        format!(
                            "{}: exit {:?}, {} errors",
                            o.command, o.exit_code, o.error_count
                        ),
                        o.first_errors,
                    )
                }
            })
        })?;
    tl.finish(
        "recovery restore",
        "restore",
        restore_at,
        ok,
        detail.clone(),
    );
    if !ok {
        checks.push(CheckResult {
            name: "step restore".into(),
            expected: "succeeds".into(),
            actual: "failed".into(),
            ok: false,
            evidence: Some(errors.join("\n")),
        });
    }

    let t = tl.start("recovery restore", "checks");
    let now = snapshot::take(server.coordinates()).await?;
    for table in &d.tables {
        let key = qualify(table);
        let n = now.rows.get(&key);
        checks.push(CheckResult {
            name: format!("table {key}"),
            expected: "exists".into(),
            actual: if n.is_some() {
                "exists".into()
            } else {
                "missing".into()
            },
            ok: n.is_some(),
            evidence: n
                .is_none()
                .then(|| format!("relation \"{key}\" does not exist")),
        });
    }
    for (table, min) in &d.min_rows {
        let key = qualify(table);
        let n = now.rows.get(&key).copied();
        checks.push(CheckResult {
            name: format!("rows {key}"),
            expected: format!(">= {min}"),
            actual: n.map_or("missing".into(), |n| n.to_string()),
            ok: n.is_some_and(|n| n >= *min),
            evidence: None,
        });
    }
    if let Some(fp) = &d.fingerprint {
        checks.push(check::schema(fp, &now.schema));
    }
    let mut conn = server.coordinates().connect().await?;
    for probe in &d.probes {
        let got: std::result::Result<(bool,), _> =
            sqlx::query_as(sqlx::AssertSqlSafe(probe.clone()))
                .fetch_one(&mut conn)
                .await;
        checks.push(check::probe(
            probe,
            &got.map(|(b,)| b).map_err(|e| e.to_string()),
        ));
    }
    drop(conn);
    let green = checks.iter().all(|c| c.ok);
    let rto = green.then(|| restore_at.elapsed());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: expected {}, got {}", c.name, c.expected, c.actual))
        .collect();
    tl.finish(
        "recovery restore",
        "checks",
        t,
        green,
        if green {
            format!(
                "all green; {} tables, {} rows",
                now.rows.len(),
                now.rows.values().sum::<i64>()
            )
        } else {
            failed.join("; ")
        },
    );
    report.baseline_rows = now.rows;
    Ok(finish(report, tl, checks, rto, errors, opts, server))
}

fn finish(
    mut report: DrillReport,
    tl: Timeline,
    mut checks: Vec<CheckResult>,
    rto: Option<Duration>,
    errors: Vec<String>,
    opts: &DrillOptions,
    mut server: Box<dyn PostgresServer>,
) -> DrillReport {
    checks.push(check::rto(rto, report.rto_target));
    let met = checks.iter().all(|c| c.ok);
    let summary = match rto {
        Some(r) if met => format!("restored in {}", check::fmt_duration(r)),
        _ => format!(
            "NOT restored: {}",
            checks
                .iter()
                .filter(|c| !c.ok && c.name != "rto")
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    report.recoveries.push(RecoveryReport {
        name: "restore".into(),
        expect: "recovers".into(),
        recovered: rto.is_some(),
        rto,
        rpo: None,
        rto_per_service: Vec::new(),
        rpo_per_service: Vec::new(),
        checks,
        errors,
        met_expectation: met,
        summary,
    });
    report.verdict = if met { Verdict::Pass } else { Verdict::Fail };
    report.timeline = tl.entries;
    if opts.keep {
        report.kept.push(server.keep());
    }
    report
}

/// `ticks` → `public.ticks`.
fn qualify(table: &str) -> String {
    if table.contains('.') {
        table.to_string()
    } else {
        format!("public.{table}")
    }
}
