//! The drill engine: runs one [`Scenario`] start to finish on one clock and
//! one timeline, and returns a [`DrillReport`].
//!
//! ```text
//! start services → load fixture → baseline → backup
//!   → for each [[recovery]]: fault (clock starts) → steps → checks (clock stops when all green)
//! ```
//!
//! Each recovery starts from a fresh injection of the fault, so a negative
//! control (the naive procedure, `expect = "fails"`) and the corrected one are
//! judged from the same broken state. Expectations that are missed make a
//! `fail` verdict; only the harness's own trouble is an `Err`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drill_fixtures::{Dataset, Flavour};

use crate::backend::{NativePostgres, PgBinaries, PgSpec, PostgresServer, ServerInfo};
use crate::backup::{self, Artifact};
use crate::check::{self, CheckResult};
use crate::postgres::{fixture, snapshot};
use crate::restore::{PsqlRestoreOptions, psql_restore};
use crate::scenario::{PgEngine, RecoveryExpect, RowsExpect, Scenario, SchemaExpect, Step};
use crate::{Error, Result};

/// Called as the drill moves, for live progress.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A progress event.
#[derive(Debug, Clone)]
pub enum Progress {
    Started { scenario: String, phase: String, step: String },
    Finished { scenario: String, entry: TimelineEntry },
}

/// How to run.
#[derive(Clone, Default)]
pub struct DrillOptions {
    /// Leave servers and backups in place after the drill.
    pub keep: bool,
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for DrillOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrillOptions").field("keep", &self.keep).finish()
    }
}

/// Pass or fail, for the scenario as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// One step on the timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineEntry {
    pub phase: String,
    pub step: String,
    /// Since the drill started.
    #[serde(rename = "start_ms", with = "crate::report::millis")]
    pub start: Duration,
    #[serde(rename = "duration_ms", with = "crate::report::millis")]
    pub duration: Duration,
    pub ok: bool,
    pub detail: String,
}

/// One recovery attempt, judged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryReport {
    pub name: String,
    pub expect: String,
    /// Every data check green.
    pub recovered: bool,
    /// Fault to all checks green; None when they never were.
    #[serde(rename = "rto_ms", with = "crate::report::millis::opt")]
    pub rto: Option<Duration>,
    pub checks: Vec<CheckResult>,
    /// Errors the recovery's tools printed (first few).
    pub errors: Vec<String>,
    /// The recovery did what the scenario expects of it.
    pub met_expectation: bool,
    /// One line a person reads first.
    pub summary: String,
}

/// Everything a drill found out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillReport {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub run_id: String,
    pub seed: u64,
    pub backend: String,
    pub server: Option<ServerInfo>,
    pub flavour: String,
    #[serde(rename = "rto_target_ms", with = "crate::report::millis")]
    pub rto_target: Duration,
    pub baseline_rows: std::collections::BTreeMap<String, i64>,
    pub backup: Option<Artifact>,
    pub recoveries: Vec<RecoveryReport>,
    pub verdict: Verdict,
    pub timeline: Vec<TimelineEntry>,
    /// How to reach what `--keep` left running.
    pub kept: Vec<String>,
}

impl DrillReport {
    /// The recovery that is expected to work (the first one, if several).
    pub fn main_recovery(&self) -> Option<&RecoveryReport> {
        self.recoveries.iter().find(|r| r.expect == "recovers")
    }
}

struct Timeline {
    t0: Instant,
    scenario: String,
    entries: Vec<TimelineEntry>,
    progress: Option<ProgressFn>,
}

impl Timeline {
    fn start(&self, phase: &str, step: &str) -> Instant {
        if let Some(p) = &self.progress {
            p(&Progress::Started { scenario: self.scenario.clone(), phase: phase.into(), step: step.into() });
        }
        Instant::now()
    }

    fn finish(&mut self, phase: &str, step: &str, started: Instant, ok: bool, detail: String) {
        let entry = TimelineEntry {
            phase: phase.into(),
            step: step.into(),
            start: started - self.t0,
            duration: started.elapsed(),
            ok,
            detail,
        };
        if let Some(p) = &self.progress {
            p(&Progress::Finished { scenario: self.scenario.clone(), entry: entry.clone() });
        }
        self.entries.push(entry);
    }
}

/// A fresh run id: 8 hex digits, in temp dir names and labels for reaping.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{:08x}", (u64::from(nanos) ^ (u64::from(std::process::id()) << 20)) as u32)
}

/// Runs one scenario. Servers are torn down before this returns (also on
/// error and panic) unless `opts.keep`.
pub async fn run(sc: &Scenario, opts: &DrillOptions) -> Result<DrillReport> {
    let run_id = new_run_id();
    let mut tl = Timeline { t0: Instant::now(), scenario: sc.name.clone(), entries: Vec::new(), progress: opts.progress.clone() };
    let pg = sc.services.postgres.as_ref().expect("validated: postgres is declared");
    let mut report = DrillReport {
        name: sc.name.clone(),
        description: sc.description.clone(),
        file: sc.path.clone(),
        run_id: run_id.clone(),
        seed: sc.seed,
        backend: "native".into(),
        server: None,
        flavour: String::new(),
        rto_target: sc.expect.rto.0,
        baseline_rows: Default::default(),
        backup: None,
        recoveries: Vec::new(),
        verdict: Verdict::Fail,
        timeline: Vec::new(),
        kept: Vec::new(),
    };

    // 1. Start services.
    let bins = PgBinaries::locate()?;
    let flavour = match (pg.engine, bins.has_timescaledb()) {
        (PgEngine::Postgres, _) | (PgEngine::Auto, false) => Flavour::Postgres,
        (PgEngine::Auto, true) | (PgEngine::Timescaledb, _) => Flavour::TimescaleDb,
    };
    report.flavour = match flavour {
        Flavour::TimescaleDb => "timescaledb".into(),
        Flavour::Postgres if pg.engine == PgEngine::Auto => "postgres (timescaledb extension not installed)".into(),
        Flavour::Postgres => "postgres".into(),
    };
    let spec = PgSpec {
        database: pg.database.clone(),
        user: pg.user.clone(),
        timescaledb: flavour == Flavour::TimescaleDb,
        settings: pg.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        run_id: run_id.clone(),
    };
    let t = tl.start("setup", "start postgres");
    let started = tokio::task::block_in_place(|| NativePostgres::start(&spec));
    let mut server: Box<dyn PostgresServer> = match started {
        Ok(s) => Box::new(s),
        Err(e) => {
            tl.finish("setup", "start postgres", t, false, e.to_string());
            return Err(e);
        }
    };
    let info = server.info().clone();
    tl.finish(
        "setup",
        "start postgres",
        t,
        true,
        format!(
            "PostgreSQL {} ({}), timescaledb: {}",
            info.version,
            info.source,
            info.timescaledb.as_deref().unwrap_or("not available")
        ),
    );
    report.server = Some(info);
    let work = tempfile::Builder::new()
        .prefix(&format!("{}{run_id}-", crate::backend::native::RUN_DIR_PREFIX))
        .tempdir()
        .map_err(Error::io("create temp dir in", std::env::temp_dir()))?;
    crate::backend::native::mark_owner(work.path())?;

    // 2. Fixture.
    let dataset = Dataset { seed: sc.seed, ticks: sc.fixture.ticks, tick_interval_ms: sc.fixture.tick_interval.0.as_millis() as u64 };
    let t = tl.start("setup", "load fixture");
    let loaded = fixture::load_nexwave(server.coordinates(), flavour, &dataset).await?;
    let total: u64 = loaded.tables.iter().map(|(_, n)| n).sum();
    tl.finish("setup", "load fixture", t, true, format!("nexwave ({}), {total} rows in {} tables, seed {}", report.flavour, loaded.tables.len(), sc.seed));

    // 3. Baseline.
    let t = tl.start("setup", "baseline");
    let baseline = snapshot::take(server.coordinates()).await?;
    tl.finish("setup", "baseline", t, true, format!("{} tables, schema {} objects ({})", baseline.rows.len(), baseline.schema.objects.len(), baseline.schema.digest()));
    report.baseline_rows = baseline.rows.clone();

    // 4. Backup.
    let t = tl.start("backup", "pg_dump");
    let artifact = tokio::task::block_in_place(|| backup::pg_dump(server.as_ref(), &sc.backup, work.path()))?;
    tl.finish("backup", "pg_dump", t, true, format!("{} ({} bytes)", artifact.command, artifact.bytes));
    report.backup = Some(artifact.clone());

    // 5. Each recovery from a fresh fault.
    for rec in &sc.recoveries {
        let phase = format!("recovery {}", rec.name);
        let fault_name = format!("fault: {:?}", sc.fault.action).to_lowercase();
        let fault_at = tl.start(&phase, &fault_name);
        let what = crate::fault::inject(server.as_mut(), sc.fault.action).await?;
        tl.finish(&phase, &fault_name, fault_at, true, what);

        let mut errors = Vec::new();
        for step in &rec.steps {
            let label = step.label();
            let t = tl.start(&phase, &label);
            let (ok, detail) = run_step(server.as_ref(), step, &artifact, flavour, &mut errors)?;
            tl.finish(&phase, &label, t, ok, detail);
        }

        let t = tl.start(&phase, "checks");
        let now = snapshot::take(server.coordinates()).await?;
        let mut checks = Vec::new();
        if sc.expect.rows == RowsExpect::SameAsBefore {
            checks.extend(check::rows(&baseline.rows, &now.rows));
        }
        if sc.expect.schema == SchemaExpect::SameAsBefore {
            checks.push(check::schema(&baseline.schema, &now.schema));
        }
        let recovered = checks.iter().all(|c| c.ok);
        let rto = recovered.then(|| fault_at.elapsed());
        checks.push(check::rto(rto, sc.expect.rto.0));
        let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.ok).collect();
        tl.finish(
            &phase,
            "checks",
            t,
            failed.is_empty(),
            if failed.is_empty() {
                "all green".into()
            } else {
                failed.iter().map(|c| format!("{}: expected {}, got {}", c.name, c.expected, c.actual)).collect::<Vec<_>>().join("; ")
            },
        );
        let met = match rec.expect {
            RecoveryExpect::Recovers => failed.is_empty(),
            RecoveryExpect::Fails => !recovered,
        };
        let summary = summarize(rec.expect, recovered, rto, &failed);
        report.recoveries.push(RecoveryReport {
            name: rec.name.clone(),
            expect: match rec.expect {
                RecoveryExpect::Recovers => "recovers".into(),
                RecoveryExpect::Fails => "fails".into(),
            },
            recovered,
            rto,
            checks,
            errors,
            met_expectation: met,
            summary,
        });
    }

    report.verdict = if report.recoveries.iter().all(|r| r.met_expectation) { Verdict::Pass } else { Verdict::Fail };
    if opts.keep {
        report.kept.push(server.keep());
        report.kept.push(format!("backups: {}", work.keep().display()));
    }
    report.timeline = tl.entries;
    Ok(report)
}

fn run_step(
    server: &dyn PostgresServer,
    step: &Step,
    artifact: &Artifact,
    flavour: Flavour,
    errors: &mut Vec<String>,
) -> Result<(bool, String)> {
    match step {
        Step::PsqlRestore { sanitize, on_error_stop, timeout } => {
            let opts = PsqlRestoreOptions {
                sanitize: *sanitize,
                on_error_stop: *on_error_stop,
                timeout: timeout.map(|t| t.0),
                timescaledb: flavour == Flavour::TimescaleDb,
            };
            let out = tokio::task::block_in_place(|| psql_restore(server, artifact, opts))?;
            errors.extend(out.first_errors.iter().cloned());
            let mut detail = format!("{}: exit {:?}, {} errors", out.command, out.exit_code, out.error_count);
            if out.timescaledb_wrapped {
                detail.push_str(", wrapped in timescaledb_pre_restore()/post_restore()");
            }
            if out.timed_out {
                detail.push_str(", killed at the timeout");
            }
            if let Some(s) = &out.sanitize {
                detail.push_str(&format!(
                    "; sanitizer removed {} of {} lines ({} kept as possible data)",
                    s.removed,
                    s.lines_in,
                    s.kept_suspicious.len()
                ));
            }
            if let Some(e) = out.first_errors.first() {
                detail.push_str(&format!("; first: {e}"));
            }
            Ok((out.exit_code == Some(0) && !out.timed_out, detail))
        }
    }
}

fn summarize(expect: RecoveryExpect, recovered: bool, rto: Option<Duration>, failed: &[&CheckResult]) -> String {
    let missing = failed.iter().filter(|c| c.name.starts_with("rows ") && c.actual == "missing").count();
    let short = failed.iter().filter(|c| c.name.starts_with("rows ") && c.actual != "missing").count();
    let schema = failed.iter().any(|c| c.name == "schema");
    let mut what = Vec::new();
    if missing > 0 {
        what.push(format!("{missing} tables missing"));
    }
    if short > 0 {
        what.push(format!("{short} tables short"));
    }
    if schema {
        what.push("schema differs".into());
    }
    let what = what.join(", ");
    match (expect, recovered) {
        (RecoveryExpect::Recovers, true) => match rto {
            Some(r) if failed.is_empty() => format!("recovered in {}", check::fmt_duration(r)),
            Some(r) => format!("recovered in {}, over the RTO", check::fmt_duration(r)),
            None => "recovered".into(),
        },
        (RecoveryExpect::Recovers, false) => format!("NOT recovered: {what}"),
        (RecoveryExpect::Fails, false) => format!("incident reproduced: {what}"),
        (RecoveryExpect::Fails, true) => "negative control recovered: the incident was NOT reproduced".into(),
    }
}
