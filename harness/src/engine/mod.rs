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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drill_fixtures::{Dataset, Flavour};

use crate::backend::{BackendKind, PgBinaries, ServerInfo, ServiceKind};
use crate::backup::{self, Artifact};
use crate::check::{self, CheckResult};
use crate::postgres::{PgSpec, Postgres, PostgresServer};
use crate::postgres::{fixture, snapshot};
use crate::scenario::{BackupMethod, PgEngine, RecoveryExpect, RowsExpect, Scenario, SchemaExpect};
use crate::{Error, Result};

mod artifact_drill;
mod steps;

pub use artifact_drill::{ArtifactDrill, restore_artifact};
pub use steps::step_env;

/// Called as the drill moves, for live progress.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A progress event.
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        scenario: String,
        phase: String,
        step: String,
    },
    Finished {
        scenario: String,
        entry: TimelineEntry,
    },
}

/// Called at a `--pause-at` point with how to reach every service; returns
/// when the person wants the drill to go on.
pub type PauseFn = Arc<dyn Fn(&Pause) + Send + Sync>;

/// Where a drill paused.
#[derive(Debug, Clone)]
pub struct Pause {
    pub scenario: String,
    /// The phase and step just finished, e.g. `recovery naive › fault: wipe`.
    pub at: String,
    /// How to connect to each service.
    pub connect: Vec<String>,
}

/// How to run.
#[derive(Clone, Default)]
pub struct DrillOptions {
    /// Where servers run (resolve `--backend auto` with [`crate::backend::choose`]).
    pub backend: BackendKind,
    /// Leave servers and backups in place after the drill.
    pub keep: bool,
    pub progress: Option<ProgressFn>,
    /// Pause after these points: `fault`, `backup`, `checks`, a step's kind
    /// (`psql-restore`, `pg-restore`, `shell`) or its full label. Time spent
    /// paused is not counted in the RTO.
    pub pause_at: Vec<String>,
    pub pause: Option<PauseFn>,
}

impl std::fmt::Debug for DrillOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrillOptions")
            .field("backend", &self.backend)
            .field("keep", &self.keep)
            .field("pause_at", &self.pause_at)
            .finish()
    }
}

impl DrillOptions {
    /// Pauses if `names` hits `pause_at`; returns how long it paused.
    fn maybe_pause(
        &self,
        scenario: &str,
        phase: &str,
        names: &[&str],
        server: &dyn PostgresServer,
    ) -> Duration {
        let Some(pause) = &self.pause else {
            return Duration::ZERO;
        };
        if !self.pause_at.iter().any(|p| names.iter().any(|n| n == p)) {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let info = Pause {
            scenario: scenario.into(),
            at: format!("{phase} › {}", names[0]),
            connect: vec![server.connection_help()],
        };
        tokio::task::block_in_place(|| pause(&info));
        started.elapsed()
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
    /// The data loss measured from the workload's ledger (None without one).
    pub rpo: Option<crate::workload::RpoMeasurement>,
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
    /// Every server the drill ran, with its image or binaries.
    pub servers: Vec<ServerInfo>,
    pub flavour: String,
    #[serde(rename = "rto_target_ms", with = "crate::report::millis")]
    pub rto_target: Duration,
    #[serde(rename = "rpo_target_ms", with = "crate::report::millis::opt")]
    pub rpo_target: Option<Duration>,
    pub baseline_rows: std::collections::BTreeMap<String, i64>,
    pub backup: Option<Artifact>,
    pub recoveries: Vec<RecoveryReport>,
    pub verdict: Verdict,
    pub timeline: Vec<TimelineEntry>,
    /// Things a person should know that do not fail the drill (e.g. a
    /// backup that restores only because drill sanitized it).
    pub warnings: Vec<String>,
    /// How to reach what `--keep` left running.
    pub kept: Vec<String>,
}

impl DrillReport {
    /// An empty report for a drill about to run (verdict `fail` until judged).
    pub fn new(
        name: &str,
        description: &str,
        file: PathBuf,
        run_id: &str,
        rto_target: Duration,
    ) -> DrillReport {
        DrillReport {
            name: name.into(),
            description: description.into(),
            file,
            run_id: run_id.into(),
            seed: 0,
            backend: "native".into(),
            servers: Vec::new(),
            flavour: String::new(),
            rto_target,
            rpo_target: None,
            baseline_rows: Default::default(),
            backup: None,
            recoveries: Vec::new(),
            verdict: Verdict::Fail,
            timeline: Vec::new(),
            warnings: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The server of `service`, when the drill ran one.
    pub fn server(&self, service: ServiceKind) -> Option<&ServerInfo> {
        self.servers.iter().find(|s| s.service == service)
    }

    /// Where the drill ran, for people: the backend and each server's image
    /// (or binaries) and version.
    pub fn runs_on(&self) -> String {
        if self.servers.is_empty() {
            return self.backend.clone();
        }
        self.servers
            .iter()
            .map(ServerInfo::line)
            .collect::<Vec<_>>()
            .join("; ")
    }

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
            p(&Progress::Started {
                scenario: self.scenario.clone(),
                phase: phase.into(),
                step: step.into(),
            });
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
            p(&Progress::Finished {
                scenario: self.scenario.clone(),
                entry: entry.clone(),
            });
        }
        self.entries.push(entry);
    }
}

/// A fresh run id: 8 hex digits, in temp dir names and labels for reaping.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:08x}",
        (u64::from(nanos) ^ (u64::from(std::process::id()) << 20)) as u32
    )
}

/// Runs one scenario. Servers are torn down before this returns (also on
/// error and panic) unless `opts.keep`.
pub async fn run(sc: &Scenario, opts: &DrillOptions) -> Result<DrillReport> {
    let run_id = new_run_id();
    let mut tl = Timeline {
        t0: Instant::now(),
        scenario: sc.name.clone(),
        entries: Vec::new(),
        progress: opts.progress.clone(),
    };
    let pg = sc
        .services
        .postgres
        .as_ref()
        .expect("validated: postgres is declared");
    let mut report = DrillReport {
        seed: sc.seed,
        rpo_target: sc.expect.rpo.map(|r| r.0),
        ..DrillReport::new(
            &sc.name,
            &sc.description,
            sc.path.clone(),
            &run_id,
            sc.expect.rto.0,
        )
    };

    // 1. Start services.
    let backend = opts.backend;
    report.backend = backend.name().into();
    let image = ServiceKind::Postgres.image(pg.image.as_deref());
    let has_timescaledb = match backend {
        BackendKind::Native => PgBinaries::locate()?.has_timescaledb(),
        BackendKind::Docker => crate::postgres::server::image_has_timescaledb(&image),
    };
    let flavour = match (pg.engine, has_timescaledb) {
        (PgEngine::Postgres, _) | (PgEngine::Auto, false) => Flavour::Postgres,
        (PgEngine::Auto, true) | (PgEngine::Timescaledb, _) => Flavour::TimescaleDb,
    };
    report.flavour = match flavour {
        Flavour::TimescaleDb => "timescaledb".into(),
        Flavour::Postgres if pg.engine == PgEngine::Auto => {
            "postgres (timescaledb extension not installed)".into()
        }
        Flavour::Postgres => "postgres".into(),
    };
    // The work dir (backups, logs) is made and marked before any server
    // exists, so an interrupt can never find one of ours unmarked.
    let work = tempfile::Builder::new()
        .prefix(&format!(
            "{}{run_id}-",
            crate::backend::native::RUN_DIR_PREFIX
        ))
        .tempdir()
        .map_err(Error::io("create temp dir in", std::env::temp_dir()))?;
    crate::backend::native::mark_owner(work.path())?;
    let spec = PgSpec {
        timescaledb: flavour == Flavour::TimescaleDb,
        settings: pg
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        image,
        // Backups and logs live here; the server's own tools see them.
        shared: vec![work.path().to_owned()],
        ..PgSpec::new(&pg.database, &pg.user, &run_id)
    };
    let t = tl.start("setup", "start postgres");
    let started = tokio::task::block_in_place(|| Postgres::start(backend, &spec));
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
            "PostgreSQL {} ({}: {}), timescaledb: {}",
            info.version,
            info.backend,
            info.source,
            info.timescaledb.as_deref().unwrap_or("not available")
        ),
    );
    report.servers.push(info);

    // 2. Fixture.
    let dataset = Dataset {
        seed: sc.seed,
        ticks: sc.fixture.ticks,
        tick_interval_ms: sc.fixture.tick_interval.0.as_millis() as u64,
    };
    let t = tl.start("setup", "load fixture");
    let loaded = fixture::load_nexwave(server.coordinates(), flavour, &dataset).await?;
    let total: u64 = loaded.tables.iter().map(|(_, n)| n).sum();
    tl.finish(
        "setup",
        "load fixture",
        t,
        true,
        format!(
            "nexwave ({}), {total} rows in {} tables, seed {}",
            report.flavour,
            loaded.tables.len(),
            sc.seed
        ),
    );

    // 3. Baseline.
    let t = tl.start("setup", "baseline");
    let baseline = snapshot::take(server.coordinates()).await?;
    tl.finish(
        "setup",
        "baseline",
        t,
        true,
        format!(
            "{} tables, schema {} objects ({})",
            baseline.rows.len(),
            baseline.schema.objects.len(),
            baseline.schema.digest()
        ),
    );
    report.baseline_rows = baseline.rows.clone();

    // 4. Backup, and the workload with its backup schedule.
    let scenario_dir = sc.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut workload = None;
    if let Some(w) = &sc.workload {
        let t = tl.start("workload", "start writer");
        let writer = crate::workload::Writer::start(server.coordinates(), w.rate, sc.seed).await?;
        tl.finish(
            "workload",
            "start writer",
            t,
            true,
            format!(
                "{} ticks/s into public.ticks, every acknowledged write recorded",
                w.rate
            ),
        );
        workload = Some((writer, Instant::now()));
    }
    let mut artifact = take_backup(sc, server.as_ref(), &scenario_dir, work.path(), &mut tl)?;
    let mut fault_at = None;
    let mut ledger = None;
    let mut running_writer = None;
    if let (Some(w), Some((writer, started))) = (&sc.workload, workload) {
        let jitter = w.jitter.map_or(Duration::ZERO, |j| {
            use rand::{RngExt, SeedableRng};
            j.0.mul_f64(rand::rngs::StdRng::seed_from_u64(sc.seed).random_range(0.0..1.0))
        });
        let deadline = started + w.run_for.0 + jitter;
        if let Some(every) = sc.backup.every {
            let mut next = started + every.0;
            while next + Duration::from_millis(1) < deadline {
                tokio::time::sleep_until(next.into()).await;
                artifact = take_backup(sc, server.as_ref(), &scenario_dir, work.path(), &mut tl)?;
                next += every.0;
            }
        }
        tokio::time::sleep_until(deadline.into()).await;
        // The writer keeps writing into the fault: what is in flight then is
        // exactly what an incident catches.
        running_writer = Some(writer);
    }
    report.backup = Some(artifact.clone());
    opts.maybe_pause(&sc.name, "backup", &["backup"], server.as_ref());

    // 5. Each recovery from a fresh fault.
    for rec in &sc.recoveries {
        let phase = format!("recovery {}", rec.name);
        let fault_name = format!("fault: {}", sc.fault.action.name());
        let fault_started = tl.start(&phase, &fault_name);
        // RPO is measured against the first fault: that is when data was lost.
        let fault_at = *fault_at.get_or_insert(fault_started);
        let what = crate::fault::inject(server.as_mut(), &sc.fault, &pg.settings).await?;
        tl.finish(&phase, &fault_name, fault_started, true, what);
        if let Some(writer) = running_writer.take() {
            let t = tl.start("workload", "stop writer");
            let l = writer.stop().await?;
            tl.finish(
                "workload",
                "stop writer",
                t,
                true,
                format!(
                    "{} writes acknowledged, {} failed (in flight at the fault or after it)",
                    l.acks.len(),
                    l.failed
                ),
            );
            ledger = Some(l);
        }
        let mut paused =
            opts.maybe_pause(&sc.name, &phase, &[&fault_name, "fault"], server.as_ref());

        let mut errors = Vec::new();
        let mut step_checks = Vec::new();
        let ctx = steps::StepContext {
            server: server.as_ref(),
            artifact: &artifact,
            flavour,
            scenario_dir: &scenario_dir,
            work: work.path(),
        };
        for (i, step) in rec.steps.iter().enumerate() {
            let label = step.label();
            let t = tl.start(&phase, &label);
            let done = steps::run_step(&ctx, step, &format!("{}-{i}", rec.name))?;
            errors.extend(done.errors.iter().cloned());
            tl.finish(&phase, &label, t, done.clean, done.detail.clone());
            paused += opts.maybe_pause(&sc.name, &phase, &[&label, step.kind()], server.as_ref());
            if !done.ok {
                // A failing step fails the recovery; the checks still run for evidence.
                step_checks.push(CheckResult {
                    name: format!("step {label}"),
                    expected: "succeeds".into(),
                    actual: done.status,
                    ok: false,
                    evidence: Some(done.evidence),
                });
                break;
            }
        }

        let t = tl.start(&phase, "checks");
        let now = snapshot::take(server.coordinates()).await?;
        let mut checks = Vec::new();
        if sc.expect.rows == RowsExpect::SameAsBefore {
            let mut rows = check::rows(&baseline.rows, &now.rows);
            let mut content =
                check::content(&baseline.rows, &baseline.content, &now.rows, &now.content);
            if ledger.is_some() {
                // The workload adds ticks (from 2026-01-01): the fixture's
                // must all be back, exactly; the workload's are judged by
                // the RPO check.
                let fixture = snapshot::filtered_stats(
                    server.coordinates(),
                    "public.ticks",
                    &format!("time < '{}'", crate::workload::WORKLOAD_EPOCH_SQL),
                )
                .await?;
                let (want, want_sum) = (
                    baseline.rows["public.ticks"],
                    baseline.content["public.ticks"].clone(),
                );
                for c in rows.iter_mut().filter(|c| c.name == "rows public.ticks") {
                    c.name = "rows public.ticks (fixture rows)".into();
                    c.actual = fixture
                        .as_ref()
                        .map_or("missing".into(), |(n, _)| n.to_string());
                    c.ok = fixture.as_ref().is_some_and(|(n, _)| *n == want);
                    c.evidence = (!c.ok).then(|| {
                        format!(
                            "{} fixture rows lost or added",
                            fixture.as_ref().map_or(want, |(n, _)| (want - n).abs())
                        )
                    });
                }
                content.retain(|c| c.name != "content public.ticks");
                if let Some((n, sum)) = &fixture
                    && *n == want
                {
                    content.push(CheckResult {
                        name: "content public.ticks (fixture rows)".into(),
                        expected: "the checksum before the fault".into(),
                        actual: if *sum == want_sum {
                            "the same".into()
                        } else {
                            "different".into()
                        },
                        ok: *sum == want_sum,
                        evidence: (*sum != want_sum)
                            .then(|| "same number of fixture rows, different rows".into()),
                    });
                }
            }
            checks.extend(rows);
            checks.extend(content);
        }
        checks.extend(check::table_rows(&sc.expect.table_rows, &now.rows));
        if let Some(max) = sc.expect.fk_orphans {
            let measured = snapshot::orphans(server.coordinates(), &baseline.foreign_keys).await?;
            checks.extend(check::fk_orphans(&measured, max));
        }
        if !sc.expect.probes.is_empty() {
            let mut conn = server.coordinates().connect().await?;
            for p in &sc.expect.probes {
                let answer: std::result::Result<(bool,), _> =
                    sqlx::query_as(sqlx::AssertSqlSafe(p.clone()))
                        .fetch_one(&mut conn)
                        .await;
                checks.push(check::probe(
                    p,
                    &answer.map(|(b,)| b).map_err(|e| e.to_string()),
                ));
            }
        }
        let mut rpo = None;
        if let Some(l) = &ledger {
            let m = crate::workload::measure_rpo(server.coordinates(), l, fault_at).await?;
            if let Some(target) = sc.expect.rpo {
                checks.push(check::rpo(&m, target.0));
            }
            rpo = Some(m);
        }
        if sc.expect.schema == SchemaExpect::SameAsBefore {
            checks.push(check::schema(&baseline.schema, &now.schema));
        }
        let recovered = checks.iter().all(|c| c.ok) && step_checks.is_empty();
        checks.splice(0..0, step_checks);
        let rto = recovered.then(|| fault_started.elapsed().saturating_sub(paused));
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
                failed
                    .iter()
                    .map(|c| format!("{}: expected {}, got {}", c.name, c.expected, c.actual))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        );
        let met = match rec.expect {
            RecoveryExpect::Recovers => failed.is_empty(),
            RecoveryExpect::Fails => {
                let shown: Vec<&str> = errors
                    .iter()
                    .map(String::as_str)
                    .chain(
                        failed
                            .iter()
                            .flat_map(|c| [c.actual.as_str(), c.evidence.as_deref().unwrap_or("")]),
                    )
                    .collect();
                let reason_ok = rec
                    .expect_error
                    .as_ref()
                    .is_none_or(|want| shown.iter().any(|s| s.contains(want.as_str())));
                if !recovered && !reason_ok {
                    errors.push(format!(
                        "the negative control failed, but not with `{}`: it no longer reproduces the incident it names",
                        rec.expect_error.as_deref().unwrap_or("")
                    ));
                }
                !recovered && reason_ok
            }
        };
        let mut summary = summarize(rec.expect, recovered, rto, &failed);
        if rec.expect == RecoveryExpect::Fails && !recovered && !met {
            summary = format!(
                "failed, but not as the incident did (no `{}`)",
                rec.expect_error.as_deref().unwrap_or("")
            );
        }
        opts.maybe_pause(&sc.name, &phase, &["checks"], server.as_ref());
        report.recoveries.push(RecoveryReport {
            name: rec.name.clone(),
            expect: match rec.expect {
                RecoveryExpect::Recovers => "recovers".into(),
                RecoveryExpect::Fails => "fails".into(),
            },
            recovered,
            rto,
            rpo,
            checks,
            errors,
            met_expectation: met,
            summary,
        });
    }

    report.verdict = if report.recoveries.iter().all(|r| r.met_expectation) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if opts.keep {
        report.kept.push(server.keep());
        report
            .kept
            .push(format!("backups: {}", work.keep().display()));
    }
    report.timeline = tl.entries;
    Ok(report)
}

/// One backup, the built-in way or the user's, recorded on the timeline.
fn take_backup(
    sc: &Scenario,
    server: &dyn PostgresServer,
    scenario_dir: &Path,
    work: &Path,
    tl: &mut Timeline,
) -> Result<Artifact> {
    let (step_name, t) = match sc.backup.method {
        BackupMethod::PgDump => ("pg_dump", tl.start("backup", "pg_dump")),
        BackupMethod::Shell => ("shell", tl.start("backup", "shell")),
    };
    let taken = tokio::task::block_in_place(|| match sc.backup.method {
        BackupMethod::PgDump => backup::pg_dump(server, &sc.backup, work).map(|a| (a, None)),
        BackupMethod::Shell => {
            let dir = work.join("backups");
            std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
            let workdir = scenario_dir.join(sc.backup.workdir.as_deref().unwrap_or(Path::new(".")));
            backup::shell(server, &sc.backup, &workdir, &dir, &work.join("backup.log"))
                .map(|(a, o)| (a, Some(o)))
        }
    });
    match taken {
        Ok((a, out)) => {
            let output = out
                .map(|o| format!("; output: {}", o.output_tail.lines().last().unwrap_or("")))
                .unwrap_or_default();
            tl.finish(
                "backup",
                step_name,
                t,
                true,
                format!(
                    "{} → {} ({} bytes){output}",
                    a.command,
                    a.path.display(),
                    a.bytes
                ),
            );
            Ok(a)
        }
        Err(e) => {
            tl.finish("backup", step_name, t, false, e.to_string());
            Err(e)
        }
    }
}

fn summarize(
    expect: RecoveryExpect,
    recovered: bool,
    rto: Option<Duration>,
    failed: &[&CheckResult],
) -> String {
    let missing = failed
        .iter()
        .filter(|c| c.name.starts_with("rows ") && c.actual == "missing")
        .count();
    let short = failed
        .iter()
        .filter(|c| c.name.starts_with("rows ") && c.actual != "missing")
        .count();
    let schema = failed.iter().any(|c| c.name == "schema");
    let mut what: Vec<String> = failed
        .iter()
        .filter(|c| c.name.starts_with("step "))
        .map(|c| format!("{} failed", c.name))
        .collect();
    if missing > 0 {
        what.push(format!("{missing} tables missing"));
    }
    if short > 0 {
        what.push(format!("{short} tables short"));
    }
    let orphaned = failed
        .iter()
        .filter(|c| c.name.starts_with("fk orphans "))
        .count();
    if orphaned > 0 {
        what.push(format!("{orphaned} foreign keys with orphans"));
    }
    if failed.iter().any(|c| c.name == "rpo") {
        what.push("RPO missed".into());
    }
    let changed = failed
        .iter()
        .filter(|c| c.name.starts_with("content "))
        .count();
    if changed > 0 {
        what.push(format!("{changed} tables with changed rows"));
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
        (RecoveryExpect::Fails, true) => {
            "negative control recovered: the incident was NOT reproduced".into()
        }
    }
}
