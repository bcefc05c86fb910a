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

use std::collections::BTreeMap;

use drill_fixtures::Dataset;

use crate::backend::{BackendKind, ServerInfo, ServiceKind};
use crate::backup::Artifact;
use crate::check::{self, CheckResult};
use crate::scenario::{RecoveryExpect, Scenario};
use crate::workload::RpoMeasurement;
use crate::{Error, Result};

mod artifact_drill;
mod judge;
mod services;
mod steps;

pub use artifact_drill::{ArtifactDrill, restore_artifact};
pub use services::BackupRecord;
use services::{Backups, Baseline, Ledgers, Running};
use steps::StepContext;

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
        running: &Running,
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
            connect: running.connection_help(),
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
    /// The data loss measured from the workload's ledgers (None without a
    /// workload): the largest window of any service.
    pub rpo: Option<crate::workload::RpoMeasurement>,
    /// With several services: each one's RTO (fault to its checks green).
    pub rto_per_service: Vec<ServiceRto>,
    /// With several services: each one's data loss against the same fault.
    pub rpo_per_service: Vec<ServiceRpo>,
    pub checks: Vec<CheckResult>,
    /// Errors the recovery's tools printed (first few).
    pub errors: Vec<String>,
    /// The recovery did what the scenario expects of it.
    pub met_expectation: bool,
    /// One line a person reads first.
    pub summary: String,
}

/// One service's recovery time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceRto {
    pub service: ServiceKind,
    #[serde(rename = "rto_ms", with = "crate::report::millis::opt")]
    pub rto: Option<Duration>,
}

/// One service's data loss.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceRpo {
    pub service: ServiceKind,
    pub measurement: RpoMeasurement,
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
    /// PostgreSQL's backup.
    pub backup: Option<Artifact>,
    /// Redis's and ClickHouse's backups.
    pub backups: Vec<BackupRecord>,
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
            backups: Vec::new(),
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
    let backend = opts.backend;
    report.backend = backend.name().into();
    let declared = sc.services.kinds();

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

    // 1. Start services, in the runbook's order.
    let (mut running, infos, flavour) = Running::start(sc, backend, &run_id, work.path(), &mut tl)?;
    report.servers = infos;
    report.flavour = flavour;

    // 2. Fixtures, 3. baselines.
    let dataset = Dataset {
        seed: sc.seed,
        ticks: sc.fixture.ticks,
        tick_interval_ms: sc.fixture.tick_interval.0.as_millis() as u64,
    };
    running.load_fixtures(&dataset, &mut tl).await?;
    let baseline = running.snapshot(&mut tl).await?;
    if let Some(b) = &baseline.pg {
        report.baseline_rows = b.rows.clone();
    }
    if let Some(b) = &baseline.ch {
        report
            .baseline_rows
            .extend(b.tables.iter().map(|(t, x)| (t.clone(), x.rows as i64)));
    }

    // 4. Backups, and the workload with its backup schedule.
    let scenario_dir = sc.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut writers = None;
    if let Some(w) = &sc.workload {
        let t = tl.start("workload", "start writers");
        let ws = running.start_writers(w.rate, sc.seed).await?;
        tl.finish(
            "workload",
            "start writers",
            t,
            true,
            format!(
                "{} acknowledged writes/s into each of {}, every acknowledgement recorded",
                w.rate,
                declared
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        writers = Some((ws, Instant::now()));
    }
    // The first backup at once; with a workload and `every`, more on the
    // schedule until the fault.
    let deadline = match (&sc.workload, &writers) {
        (Some(w), Some((_, started))) => {
            let jitter = w.jitter.map_or(Duration::ZERO, |j| {
                use rand::{RngExt, SeedableRng};
                j.0.mul_f64(rand::rngs::StdRng::seed_from_u64(sc.seed).random_range(0.0..1.0))
            });
            Some(*started + w.run_for.0 + jitter)
        }
        _ => None,
    };
    let mut backups = Backups::default();
    let mut next = writers.as_ref().map_or_else(Instant::now, |(_, s)| *s);
    loop {
        tokio::time::sleep_until(next.into()).await;
        running
            .backup(
                sc,
                &scenario_dir,
                work.path(),
                &mut tl,
                &mut backups,
                &mut report.backups,
            )
            .await?;
        let (Some(every), Some(deadline)) = (sc.backup.every, deadline) else {
            break;
        };
        next += every.0;
        if next + Duration::from_millis(1) >= deadline {
            break;
        }
    }
    let mut running_writers = None;
    if let (Some(deadline), Some((ws, _))) = (deadline, writers) {
        tokio::time::sleep_until(deadline.into()).await;
        // The writers keep writing into the fault: what is in flight then is
        // exactly what an incident catches.
        running_writers = Some(ws);
    }
    report.backup = backups.pg.clone();
    opts.maybe_pause(&sc.name, "backup", &["backup"], &running);

    // 5. Each recovery from a fresh fault.
    let base_settings = sc
        .services
        .postgres
        .as_ref()
        .map(|p| p.settings.clone())
        .unwrap_or_default();
    let mut fault_at = None;
    let mut ledgers = Ledgers::new();
    for rec in &sc.recoveries {
        let phase = format!("recovery {}", rec.name);
        let fault_name = format!("fault: {}", sc.fault.action.name());
        let fault_started = tl.start(&phase, &fault_name);
        // RPO is measured against the first fault: that is when data was lost.
        let fault_at = *fault_at.get_or_insert(fault_started);
        let (what, damage) = running
            .inject(&sc.fault, &declared, &base_settings, sc.seed)
            .await?;
        tl.finish(&phase, &fault_name, fault_started, true, what);
        if let Some(ws) = running_writers.take() {
            let t = tl.start("workload", "stop writers");
            ledgers = ws.stop().await?;
            tl.finish(
                "workload",
                "stop writers",
                t,
                true,
                ledgers
                    .iter()
                    .map(|(k, l)| {
                        format!(
                            "{k}: {} writes acknowledged, {} failed (in flight at the fault or after it)",
                            l.acks.len(),
                            l.failed
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        let mut paused = opts.maybe_pause(&sc.name, &phase, &[&fault_name, "fault"], &running);
        let outcome = recover(
            sc,
            rec,
            RecoverCtx {
                phase: &phase,
                declared: &declared,
                baseline: &baseline,
                ledgers: &ledgers,
                backups: &backups,
                scenario_dir: &scenario_dir,
                work: work.path(),
                fault_started,
                fault_at,
                damage: damage.as_ref(),
            },
            &mut running,
            &mut tl,
            opts,
            &mut paused,
        )
        .await?;
        report.recoveries.push(outcome);
    }

    report.verdict = if report.recoveries.iter().all(|r| r.met_expectation) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if opts.keep {
        report.kept.extend(running.keep());
        report
            .kept
            .push(format!("backups: {}", work.keep().display()));
    }
    report.timeline = tl.entries;
    Ok(report)
}

/// What a recovery needs to know besides the servers.
struct RecoverCtx<'a> {
    phase: &'a str,
    declared: &'a [ServiceKind],
    baseline: &'a Baseline,
    ledgers: &'a Ledgers,
    backups: &'a Backups,
    scenario_dir: &'a Path,
    work: &'a Path,
    fault_started: Instant,
    fault_at: Instant,
    damage: Option<&'a crate::redis::aof::Damage>,
}

/// Runs one recovery's steps after its fault, judging each service right
/// after the last step that acts on it (so its RTO is its own), and then
/// the recovery as a whole.
async fn recover(
    sc: &Scenario,
    rec: &crate::scenario::Recovery,
    cx: RecoverCtx<'_>,
    running: &mut Running,
    tl: &mut Timeline,
    opts: &DrillOptions,
    paused: &mut Duration,
) -> Result<RecoveryReport> {
    let phase = cx.phase;
    // The last step that acts on each service (a step without a service
    // acts on all of them); None: its checks run right after the fault.
    let last_step: BTreeMap<ServiceKind, Option<usize>> = cx
        .declared
        .iter()
        .map(|k| {
            let last = rec
                .steps
                .iter()
                .rposition(|s| s.service().is_none_or(|x| x == *k));
            (*k, last)
        })
        .collect();
    let mut errors = Vec::new();
    let mut step_checks = Vec::new();
    let mut judged: BTreeMap<ServiceKind, Outcome> = BTreeMap::new();
    let multi = cx.declared.len() > 1;
    let judge_now = |k: ServiceKind| last_step[&k].is_none();
    // Services no step touches are judged at once.
    for k in cx.declared.iter().copied().filter(|k| judge_now(*k)) {
        let j = judge_one(k, sc, &cx, running, tl, multi).await?;
        judged.insert(k, j.finish(cx.fault_started, *paused));
    }
    let mut step_failed = false;
    for (i, step) in rec.steps.iter().enumerate() {
        let label = step.label();
        let t = tl.start(phase, &label);
        let mut ctx = StepContext {
            running,
            backups: cx.backups,
            scenario_dir: cx.scenario_dir,
            work: cx.work,
        };
        let done = steps::run_step(&mut ctx, step, &format!("{}-{i}", rec.name)).await?;
        errors.extend(done.errors.iter().cloned());
        tl.finish(phase, &label, t, done.clean, done.detail.clone());
        *paused += opts.maybe_pause(&sc.name, phase, &[&label, step.kind()], running);
        if !done.ok {
            // A failing step fails the recovery; the checks still run for evidence.
            step_checks.push(CheckResult {
                name: format!("step {label}"),
                expected: "succeeds".into(),
                actual: done.status,
                ok: false,
                evidence: Some(done.evidence),
            });
            step_failed = true;
            break;
        }
        for k in cx.declared.iter().copied() {
            if last_step[&k] == Some(i) {
                let j = judge_one(k, sc, &cx, running, tl, multi).await?;
                judged.insert(k, j.finish(cx.fault_started, *paused));
            }
        }
    }
    // After a failed step: every service not judged yet, for evidence.
    for k in cx.declared.iter().copied() {
        if let std::collections::btree_map::Entry::Vacant(slot) = judged.entry(k) {
            let j = judge_one(k, sc, &cx, running, tl, multi).await?;
            slot.insert(j.finish(cx.fault_started, *paused));
        }
    }
    // A service judged before the last step is judged again at the end: a
    // later step (another service's, or a user's command) may have undone
    // it. Its RTO stays the moment it first turned green, unless it
    // regressed.
    let last = rec.steps.len().checked_sub(1);
    if multi && !step_failed {
        for k in cx.declared.iter().copied() {
            if last_step[&k] == last {
                continue;
            }
            let again = judge_one(k, sc, &cx, running, tl, multi).await?;
            if again.checks.iter().any(|c| !c.ok) {
                judged.insert(
                    k,
                    Outcome {
                        checks: again.checks,
                        rpo: again.rpo,
                        green: None,
                    },
                );
            }
        }
    }

    let mut checks: Vec<CheckResult> = step_checks;
    let mut per_service = Vec::new();
    let mut rpo_per_service = Vec::new();
    for k in cx.declared {
        let Outcome {
            checks: c,
            rpo,
            green,
        } = judged.remove(k).expect("every service judged");
        checks.extend(c);
        per_service.push(ServiceRto {
            service: *k,
            rto: if step_failed { None } else { green },
        });
        if let Some(m) = rpo {
            rpo_per_service.push(ServiceRpo {
                service: *k,
                measurement: m,
            });
        }
    }
    let recovered = checks.iter().all(|c| c.ok);
    let rto = recovered
        .then(|| per_service.iter().filter_map(|s| s.rto).max())
        .flatten();
    checks.push(check::rto(rto, sc.expect.rto.0));
    let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.ok).collect();
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
    opts.maybe_pause(&sc.name, phase, &["checks"], running);
    let rpo = rpo_per_service
        .iter()
        .map(|r| r.measurement.clone())
        .max_by_key(|m| m.window);
    Ok(RecoveryReport {
        name: rec.name.clone(),
        expect: match rec.expect {
            RecoveryExpect::Recovers => "recovers".into(),
            RecoveryExpect::Fails => "fails".into(),
        },
        recovered,
        rto,
        rpo,
        rto_per_service: if multi { per_service } else { Vec::new() },
        rpo_per_service: if multi { rpo_per_service } else { Vec::new() },
        checks,
        errors,
        met_expectation: met,
        summary,
    })
}

/// One service's checks, as a timeline step.
async fn judge_one(
    k: ServiceKind,
    sc: &Scenario,
    cx: &RecoverCtx<'_>,
    running: &Running,
    tl: &mut Timeline,
    multi: bool,
) -> Result<judge::Judged> {
    let step = if multi {
        format!("checks {k}")
    } else {
        "checks".to_string()
    };
    let t = tl.start(cx.phase, &step);
    // A server that cannot be read is a service that did not come back:
    // a red check with the reason, not the end of the drill.
    let j = judge::service(
        k,
        running,
        cx.baseline,
        sc,
        cx.ledgers,
        cx.fault_at,
        cx.damage,
    )
    .await
    .unwrap_or_else(|e| judge::Judged {
        checks: vec![CheckResult {
            name: format!("{k} answers"),
            expected: "its data can be read".into(),
            actual: "unreachable".into(),
            ok: false,
            evidence: Some(e.to_string()),
        }],
        rpo: None,
    });
    let failed: Vec<&CheckResult> = j.checks.iter().filter(|c| !c.ok).collect();
    tl.finish(
        cx.phase,
        &step,
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
    Ok(j)
}

/// One service after a recovery.
struct Outcome {
    checks: Vec<CheckResult>,
    rpo: Option<RpoMeasurement>,
    /// Fault to its checks green (minus time paused); None when red.
    green: Option<Duration>,
}

impl judge::Judged {
    /// The outcome, timed now.
    fn finish(self, fault_started: Instant, paused: Duration) -> Outcome {
        let green = self
            .checks
            .iter()
            .all(|c| c.ok)
            .then(|| fault_started.elapsed().saturating_sub(paused));
        Outcome {
            checks: self.checks,
            rpo: self.rpo,
            green,
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
    if failed.iter().any(|c| c.name.starts_with("rpo")) {
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
