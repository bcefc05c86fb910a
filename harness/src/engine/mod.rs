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

use drill_fixtures::Dataset;

use crate::check::CheckResult;
use crate::scenario::{RecoveryExpect, Scenario};
use crate::service::Placement;
use crate::service::postgres::backup::Artifact;
use crate::vocab::{BackendKind, ServerInfo, ServiceKind};
use crate::workload::RpoMeasurement;
use crate::{Error, Result};

mod artifact_drill;
mod docker_shim;
mod recover;
mod services;
mod steps;
mod timeline;

pub use crate::service::BackupRecord;
pub use artifact_drill::{ArtifactDrill, restore_artifact};
use services::{Ledgers, Services, Taken, Writers};
use timeline::Timeline;
pub use timeline::{Phase, TimelineEntry};

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
        phase: &Phase,
        names: &[&str],
        services: &Services,
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
            connect: services.connection_help(),
        };
        tokio::task::block_in_place(|| pause(&info));
        started.elapsed()
    }
}

/// Pass or fail, for the scenario as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// One recovery attempt, judged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RecoveryReport {
    pub name: String,
    pub expect: RecoveryExpect,
    /// Every data check green.
    pub recovered: bool,
    /// Fault to all checks green; None when they never were.
    #[serde(rename = "rto_ms", with = "crate::vocab::millis::opt")]
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
    /// Bytes of WAL the servers replayed in its steps (recoveries from a
    /// base backup and an archive), from their logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_replayed_bytes: Option<u64>,
}

/// One service's recovery time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServiceRto {
    pub service: ServiceKind,
    #[serde(rename = "rto_ms", with = "crate::vocab::millis::opt")]
    pub rto: Option<Duration>,
}

/// One service's data loss.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServiceRpo {
    pub service: ServiceKind,
    pub measurement: RpoMeasurement,
}

/// Everything a drill found out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    #[serde(rename = "rto_target_ms", with = "crate::vocab::millis")]
    pub rto_target: Duration,
    #[serde(rename = "rpo_target_ms", with = "crate::vocab::millis::opt")]
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
    pub warnings: Vec<Warning>,
    /// How to reach what `--keep` left running.
    pub kept: Vec<String>,
    /// What the services were imported from a compose file with: taken,
    /// overridden, and (natively) not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose: Option<crate::compose::Imported>,
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
            compose: None,
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
        self.recoveries
            .iter()
            .find(|r| r.expect == RecoveryExpect::Recovers)
    }
}

/// Something a person (and a CI job reading report.json or junit.xml)
/// should know that does not fail the drill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
    /// What it was read from (lines, files, counts).
    pub evidence: String,
}

/// The kinds of warning, as machines read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningCode {
    /// The backup job merges pg_dump's stderr into the dump (seed 000).
    StderrInBackup,
    /// The newest backup was unusable; an older one was restored.
    FellBack,
    /// The restore brought back no table (allowed with --allow-empty).
    EmptyBackup,
    /// `cpus`/`memory` set, but the servers ran natively, unlimited.
    LimitsNotApplied,
}

impl DrillReport {
    /// Records a warning.
    pub fn warn(&mut self, code: WarningCode, message: String, evidence: String) {
        self.warnings.push(Warning {
            code,
            message,
            evidence,
        });
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

/// The drill's work dir (backups, logs, shims), made and marked before any
/// server exists, so an interrupt can never find one of ours unmarked; its
/// owner's only.
fn work_dir(run_id: &str) -> Result<tempfile::TempDir> {
    crate::backend::native::run_dir(run_id, None)
}

/// Whether the scenario's fixture and workload fit the temp dir's disk,
/// with room to spare; Err says the estimate and what is free.
pub fn fits_on_disk(sc: &Scenario) -> Result<()> {
    let per_tick = crate::scenario::BYTES_PER_TICK;
    let writes = sc
        .workload
        .as_ref()
        .map_or(0, |w| u64::from(w.rate) * (w.run_for.0.as_secs() + 1));
    let services = sc.services.kinds().len() as u64;
    let need = (sc.fixture.ticks + writes) * per_tick * services.max(1);
    let dir = std::env::temp_dir();
    let Ok(fs) = nix::sys::statvfs::statvfs(&dir) else {
        return Ok(()); // cannot tell: let the run find out
    };
    let free = fs.blocks_available() * fs.fragment_size();
    if need.saturating_mul(2) > free {
        return Err(Error::bad_input(
            format!("{}: the fixture and workload", sc.path.display()),
            format!(
                "need about {} MB in {} ({} ticks and {} writes, about {per_tick} bytes each on every service), and only {} MB are free; use fewer ticks or point TMPDIR at a larger disk",
                need / 1_000_000,
                dir.display(),
                sc.fixture.ticks,
                writes,
                free / 1_000_000
            ),
        ));
    }
    Ok(())
}

/// Runs one scenario. Servers are torn down before this returns (also on
/// error and panic) unless `opts.keep`.
pub async fn run(sc: &Scenario, opts: &DrillOptions) -> Result<DrillReport> {
    fits_on_disk(sc)?;
    let run_id = new_run_id();
    tracing::info!(scenario = %sc.name, run_id, backend = %opts.backend, "drill starts");
    let mut tl = Timeline::new(&sc.name, opts.progress.clone());
    let mut report = DrillReport {
        seed: sc.seed,
        rpo_target: sc.expect.rpo.map(|r| r.0),
        backend: opts.backend.name().into(),
        ..DrillReport::new(
            &sc.name,
            &sc.description,
            sc.path.clone(),
            &run_id,
            sc.expect.rto.0,
        )
    };
    report.compose = sc.services.imported.clone();
    if opts.backend == BackendKind::Native {
        let limited: Vec<String> = sc
            .services
            .limits()
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(k, l)| format!("{k}: {l}"))
            .collect();
        if !limited.is_empty() {
            report.warn(
                WarningCode::LimitsNotApplied,
                "the scenario's cpus and memory limits apply to containers; natively the servers ran unlimited".into(),
                limited.join("; "),
            );
        }
    }
    let work = work_dir(&run_id)?;
    let placement = Placement {
        backend: opts.backend,
        run_id: &run_id,
        shared: vec![work.path().to_owned()],
    };
    let mut services = Services::start(sc, &placement, &mut tl)?;
    report.servers = services.infos();
    report.flavour = services.flavour();
    let dataset = Dataset {
        seed: sc.seed,
        ticks: sc.fixture.ticks,
        tick_interval_ms: sc.fixture.tick_interval.0.as_millis() as u64,
    };
    services.load_fixtures(&dataset, &mut tl).await?;
    report.baseline_rows = services.baselines(&mut tl).await?;
    let scenario_dir = sc.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let (writers, taken) =
        backups_under_workload(sc, &mut services, &scenario_dir, work.path(), &mut tl).await?;
    report.backup = taken.dump;
    report.backups = taken.records;
    opts.maybe_pause(&sc.name, &Phase::Backup, &["backup"], &services);
    let drill = Drill {
        sc,
        opts,
        scenario_dir: &scenario_dir,
        work: work.path(),
    };
    report.recoveries = drill.recoveries(&mut services, writers, &mut tl).await?;
    // Every server a step started too (an upgrade's new version).
    for info in services.0.iter().flat_map(|s| s.servers_started()) {
        if !report.servers.contains(&info) {
            report.servers.push(info);
        }
    }
    report.verdict = if report.recoveries.iter().all(|r| r.met_expectation) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if opts.keep {
        report.kept.extend(services.keep());
        report
            .kept
            .push(format!("backups: {}", work.keep().display()));
    }
    report.timeline = tl.entries;
    tracing::info!(scenario = %sc.name, verdict = ?report.verdict, "drill ends");
    Ok(report)
}

/// The writers (when the scenario has a workload) and the backups: the
/// first at once, then (with `every`) on the schedule until the fault.
/// Returns the writers still writing: they write into the fault, so what
/// is in flight then is exactly what an incident catches.
async fn backups_under_workload(
    sc: &Scenario,
    services: &mut Services,
    scenario_dir: &Path,
    work: &Path,
    tl: &mut Timeline,
) -> Result<(Option<Writers>, Taken)> {
    let mut writers = None;
    let mut deadline = None;
    if let Some(w) = &sc.workload {
        let t = tl.start(&Phase::Workload, "start writers");
        let ws = services.start_writers(w.rate, sc.seed).await?;
        let names: Vec<String> = services.0.iter().map(|s| s.kind().to_string()).collect();
        tl.finish(
            &Phase::Workload,
            "start writers",
            t,
            true,
            format!(
                "{} acknowledged writes/s into each of {}, every acknowledgement recorded",
                w.rate,
                names.join(", ")
            ),
        );
        let jitter = w.jitter.map_or(Duration::ZERO, |j| {
            use rand::{RngExt, SeedableRng};
            j.0.mul_f64(rand::rngs::StdRng::seed_from_u64(sc.seed).random_range(0.0..1.0))
        });
        deadline = Some(Instant::now() + w.run_for.0 + jitter);
        writers = Some(ws);
    }
    let mut taken = Taken::default();
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next.into()).await;
        services.backup(scenario_dir, work, tl, &mut taken).await?;
        let (Some(every), Some(deadline)) = (sc.backup.every, deadline) else {
            break;
        };
        next += every.0;
        if next + Duration::from_millis(1) >= deadline {
            break;
        }
    }
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
    Ok((writers, taken))
}

/// What every recovery of one drill shares.
struct Drill<'a> {
    sc: &'a Scenario,
    opts: &'a DrillOptions,
    scenario_dir: &'a Path,
    work: &'a Path,
}

impl Drill<'_> {
    /// Each recovery from a fresh injection of the fault; the writers stop
    /// right after the first.
    async fn recoveries(
        &self,
        services: &mut Services,
        mut writers: Option<Writers>,
        tl: &mut Timeline,
    ) -> Result<Vec<RecoveryReport>> {
        let sc = self.sc;
        let mut fault_at = None;
        let mut ledgers = Ledgers::new();
        let mut out = Vec::new();
        for rec in &sc.recoveries {
            let phase = Phase::Recovery(rec.name.clone());
            if fault_at.is_none() {
                // A timeline step only when a service did something.
                let t = Instant::now();
                let said = services.before_fault(&sc.fault).await?;
                if !said.is_empty() {
                    tl.finish(
                        &Phase::Workload,
                        "before the fault",
                        t,
                        true,
                        said.join("; "),
                    );
                }
            }
            let fault_name = format!("fault: {}", sc.fault.action.name());
            let fault_started = tl.start(&phase, &fault_name);
            // RPO is measured against the first fault: that is when data was lost.
            if fault_at.is_none() {
                services.fault_began(fault_started);
            }
            let fault_at = *fault_at.get_or_insert(fault_started);
            let what = services.inject(&sc.fault, sc.seed).await?;
            tl.finish(&phase, &fault_name, fault_started, true, what);
            // Writing on after the fault (the application has not noticed)
            // is not recovery time.
            let mut unnoticed = Duration::ZERO;
            if let Some(ws) = writers.take() {
                if let Some(after) = sc.workload.as_ref().and_then(|w| w.after_fault) {
                    let t = Instant::now();
                    tokio::time::sleep(after.0).await;
                    unnoticed = t.elapsed();
                }
                ledgers = stop_writers(ws, tl).await?;
            }
            let paused = unnoticed
                + self
                    .opts
                    .maybe_pause(&sc.name, &phase, &[&fault_name, "fault"], services);
            let cx = recover::RecoverCx {
                sc,
                rec,
                phase,
                ledgers: &ledgers,
                scenario_dir: self.scenario_dir,
                work: self.work,
                fault_started,
                fault_at,
                opts: self.opts,
            };
            out.push(recover::recover(&cx, services, tl, paused).await?);
        }
        Ok(out)
    }
}

/// Stops the writers (a timeline step); returns their ledgers.
async fn stop_writers(ws: Writers, tl: &mut Timeline) -> Result<Ledgers> {
    let t = tl.start(&Phase::Workload, "stop writers");
    let ledgers = ws.stop().await?;
    let said: Vec<String> = ledgers
        .iter()
        .map(|(k, l)| {
            format!(
                "{k}: {} writes acknowledged, {} failed (in flight at the fault or after it); {}",
                l.acks.len(),
                l.failed,
                l.pace()
            )
        })
        .collect();
    tl.finish(&Phase::Workload, "stop writers", t, true, said.join("; "));
    Ok(ledgers)
}
