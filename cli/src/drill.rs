//! `cargo xtask drill [SCENARIO...]` and `cargo xtask drill restore-artifact
//! --backup PATH`: validate everything before starting anything, run with live
//! progress on stderr, then print the summary table and the timeline, write
//! the reports, and exit with a code that tells a missed expectation from a
//! harness error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drill::backend::BackendChoice;
use drill::engine::{ArtifactDrill, DrillOptions, Pause, Progress, Verdict};
use drill::report::run::{RunRecord, Unfinished};
use drill::scenario::{PgEngine, Scenario};
use drill::{BackendKind, ServiceKind};

use anyhow::Context;

use crate::{Failure, Outcome, deps, exit};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    /// Scenario names (file stems) or paths; all scenarios when omitted.
    scenarios: Vec<String>,
    /// Folder holding the scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Run only this share of the scenarios, as nextest's `--partition`:
    /// `hash:M/N` (by a hash of the name: stable as scenarios are added)
    /// or `count:M/N` (round-robin by name). N runners, one M each.
    #[arg(long, value_parser = clap::value_parser!(crate::partition::Partition))]
    partition: Option<crate::partition::Partition>,
    /// Load this many ticks instead of each scenario's `[fixture] ticks`
    /// (the other tables scale with it): one drill at several sizes, the
    /// history --predict-rto fits production's RTO from.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    fixture_ticks: Option<u64>,
    /// Validate the scenarios (or restore-artifact's flags), then stop
    /// without starting anything.
    #[arg(long, global = true)]
    validate_only: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Restore an existing backup (a file, a dump folder, or a folder of
    /// backups: the newest whole one is used) into a disposable server and
    /// check it: "does last night's backup restore, and how long does it take?"
    RestoreArtifact(Box<ArtifactArgs>),
    /// Write starter scenarios (the same as `drill init`).
    Init(crate::init::Args),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ArtifactArgs {
    /// The backup: plain SQL (.sql or .sql.gz), custom format, a directory
    /// dump, or a folder of backups. A `<file>.sha256` sidecar is checked.
    #[arg(long)]
    backup: PathBuf,
    /// Server flavour: auto (TimescaleDB when installed), timescaledb, postgres.
    #[arg(long, default_value = "auto", value_parser = parse_engine)]
    engine: PgEngine,
    /// Database to restore into.
    #[arg(long, default_value = "restored")]
    database: String,
    /// Role to restore as (a superuser).
    #[arg(long, default_value = "postgres")]
    user: String,
    /// Do not remove pg_dump's stderr from a plain dump: test the plain
    /// `gunzip | psql` procedure.
    #[arg(long)]
    no_sanitize: bool,
    /// A table that must exist after the restore (repeatable).
    #[arg(long = "require-table")]
    tables: Vec<String>,
    /// `TABLE=N`: at least N rows (repeatable).
    #[arg(long = "min-rows", value_parser = parse_min_rows)]
    min_rows: Vec<(String, i64)>,
    /// A schema fingerprint saved from production with `cargo xtask fingerprint`.
    #[arg(long)]
    fingerprint: Option<PathBuf>,
    /// SQL returning one boolean that must be true (repeatable).
    #[arg(long = "probe")]
    probes: Vec<String>,
    /// Pass a restore that brings back no table (by default it is red: a
    /// backup job that dumps the wrong database would otherwise stay green).
    #[arg(long)]
    allow_empty: bool,
    /// Recovery time objective (seed 004: a full restore within 1 hour).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    rto: Duration,
    /// The server image to restore into with the docker backend (default:
    /// DRILL_POSTGRES_IMAGE, else the official timescale/timescaledb image).
    #[arg(long)]
    image: Option<String>,
    /// With a pg_basebackup output as --backup (a folder, or base.tar[.gz]):
    /// the WAL archive folder to replay from (read, never written: copied
    /// into the run's folder first).
    #[arg(long)]
    wal_archive: Option<PathBuf>,
    /// A pgBackRest repository (posix, `repo1-path`) to restore from, with
    /// --stanza; --backup is then only the report's name for it.
    #[arg(long, requires = "stanza")]
    pgbackrest_repo: Option<PathBuf>,
    /// The stanza in --pgbackrest-repo.
    #[arg(long)]
    stanza: Option<String>,
    /// Where a physical backup's recovery stops: latest (default), a time
    /// (`2026-01-22 14:30:00+00`), restore-point:NAME, or lsn:X/Y.
    #[arg(long, default_value = "latest", value_parser = parse_target)]
    target: drill::scenario::RecoveryTarget,
    /// Restore into this PostgreSQL major version (e.g. 18): the release
    /// gate before a version bump. The schema fingerprint is compared
    /// across versions.
    #[arg(long, value_parser = clap::value_parser!(u32).range(10..100))]
    into_version: Option<u32>,
    /// With a folder as --backup: restore each of its N newest backups, one
    /// result each (default: the newest usable one).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..1000))]
    newest: Option<u32>,
    /// Connections the restore uses: `auto` (this machine's cores, at most
    /// 4) or N. A plain dump's schema runs first, its rows then go in chunks
    /// over N psql connections, then its indexes and constraints; an archive
    /// gets `pg_restore -j N`. A TimescaleDB target always takes one. `1`
    /// restores exactly as `gunzip -c | psql` would.
    #[arg(long, default_value = "auto", value_parser = parse_jobs)]
    restore_jobs: usize,
    #[command(flatten)]
    run: RunArgs,
}

fn parse_target(s: &str) -> Result<drill::scenario::RecoveryTarget, String> {
    match drill::scenario::RecoveryTarget::parse(s).map_err(|e| e.0)? {
        drill::scenario::RecoveryTarget::Fault { .. }
        | drill::scenario::RecoveryTarget::Immediate => Err(format!(
            "`{s}`: restore-artifact has no fault to be relative to; use latest, a time, restore-point:NAME or lsn:X/Y"
        )),
        t => Ok(t),
    }
}

/// Flags every kind of drill run shares.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Where servers run: `docker` (containers from the official images,
    /// or DRILL_*_IMAGE), `native` (local binaries), or `auto`: docker when
    /// an engine answers and every image is present or pullable, else native.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: BackendChoice,
    /// Leave servers and backups running after the drill and print how to
    /// reach them (`cargo xtask clean` removes them).
    #[arg(long)]
    keep: bool,
    /// Run up to N drills at once, each with its own servers (give the
    /// services `cpus` and `memory` in the scenarios so they do not starve
    /// each other). Results are reported in the scenarios' order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Stop after this point (`fault`, `backup`, `checks`, a step kind such as
    /// `psql-restore` or `shell`, or a step's label), print how to connect to
    /// every service, and wait for Enter. Repeatable. Needs a terminal.
    #[arg(long = "pause-at")]
    pause_at: Vec<String>,
    /// Where the reports go: report.json, junit.xml, summary.md, one
    /// timeline SVG and text file per scenario, run.json (for `report
    /// merge`) and optionally metrics.prom.
    #[arg(long, default_value = "target/drill")]
    report_dir: PathBuf,
    #[command(flatten)]
    gate: GateArgs,
}

/// What to do with a finished run's results beside writing them: metrics,
/// the history and the gate (a run's and a merge's).
#[derive(Debug, clap::Args)]
pub(crate) struct GateArgs {
    /// Also write Prometheus text-format metrics (metrics.prom).
    #[arg(long)]
    prometheus: bool,
    /// Append this run's RTOs to this history file (JSON lines) and show the
    /// trend against it.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Fail (exit 4) when a scenario's RTO regressed beyond the margin: the
    /// median of its last --gate-confirm runs against the median of the
    /// passing runs before them in --history, per unit of server start time.
    #[arg(long, requires = "history")]
    gate: bool,
    /// Allowed RTO slow-down over the median, in percent.
    #[arg(long, default_value_t = 40.0)]
    gate_margin: f64,
    /// ...and at least this much slower in absolute terms (e.g. "250ms").
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    gate_slack: Duration,
    /// How many recent passing runs the median is taken over.
    #[arg(long, default_value_t = 10)]
    gate_window: usize,
    /// Fewer passing runs than this in the history: no verdict yet.
    #[arg(long, default_value_t = 3)]
    gate_min_runs: usize,
    /// How many runs (this one included) the recent median is taken over:
    /// 1 judges this run alone, 3 rides out one unlucky run.
    #[arg(long, default_value_t = 3)]
    gate_confirm: usize,
    /// Predict each scenario's RTO at production's backup size (e.g.
    /// `200GiB`) from its runs in --history at other sizes (a line fitted
    /// to restore time against backup size, with a 95% interval); with
    /// --gate, a prediction over the RTO target fails the run (exit 4).
    #[arg(long, requires = "history", value_parser = drill::report::predict::parse_size)]
    predict_rto: Option<u64>,
}

fn parse_duration(s: &str) -> Result<Duration, drill::scenario::BadDuration> {
    drill::scenario::parse_duration(s)
}

fn parse_backend(s: &str) -> drill::Result<BackendChoice> {
    s.parse()
}

fn parse_engine(s: &str) -> Result<PgEngine, String> {
    match s {
        "auto" => Ok(PgEngine::Auto),
        "timescaledb" => Ok(PgEngine::Timescaledb),
        "postgres" => Ok(PgEngine::Postgres),
        _ => Err(format!("`{s}`: use auto, timescaledb or postgres")),
    }
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    match s {
        "auto" => Ok(std::thread::available_parallelism().map_or(1, |n| n.get().min(4))),
        n => match n.parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => Ok(n),
            _ => Err(format!("`{s}`: write auto or a number from 1 to 64")),
        },
    }
}

fn parse_min_rows(s: &str) -> Result<(String, i64), String> {
    let (t, n) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write TABLE=N, e.g. ticks=1000"))?;
    Ok((
        t.trim().to_string(),
        n.trim()
            .parse()
            .map_err(|_| format!("`{n}` in `{s}` is not a number"))?,
    ))
}

/// One kind of work the runner does.
enum Work {
    Scenarios(Vec<Scenario>),
    /// One restore per backup (`--newest N`), or one of a folder's newest.
    Artifacts(Vec<ArtifactDrill>),
}

impl Work {
    /// Every service the drills run.
    fn services(&self) -> Vec<ServiceKind> {
        let mut all: Vec<ServiceKind> = self.images().into_iter().map(|(k, _)| k).collect();
        all.dedup();
        all
    }

    /// The PostgreSQL major versions the drills name whose binaries must be
    /// here: every one natively; in Docker those whose client runs here (a
    /// `pg-dump` step's).
    fn pg_versions(&self, backend: BackendKind) -> Vec<u32> {
        let s = match self {
            Work::Scenarios(s) => s,
            Work::Artifacts(a) => {
                return match backend {
                    BackendKind::Native => a.iter().take(1).filter_map(|a| a.version).collect(),
                    BackendKind::Docker => Vec::new(),
                };
            }
        };
        let mut v: Vec<u32> = s
            .iter()
            .flat_map(|s| match backend {
                BackendKind::Native => s.pg_versions(),
                // A `pg-dump` step's client runs here, whatever the servers.
                BackendKind::Docker => s.pg_client_versions(),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every image the drills would run, for the backend choice.
    fn images(&self) -> Vec<(ServiceKind, String)> {
        match self {
            Work::Scenarios(s) => {
                let mut all: Vec<(ServiceKind, String)> =
                    s.iter().flat_map(|s| s.images()).collect();
                all.sort();
                all.dedup();
                all
            }
            Work::Artifacts(a) => a
                .iter()
                .map(|a| {
                    (
                        ServiceKind::Postgres,
                        drill::postgres_image(a.image.as_deref(), a.version),
                    )
                })
                .take(1)
                .collect(),
        }
    }
}

pub(crate) fn run(args: Args) -> Outcome {
    if let Some(Sub::Init(a)) = args.sub {
        return crate::init::run(a);
    }
    execute(prepare(args)?)
}

/// `drill restore-artifact`: the same as `drill run restore-artifact`.
#[derive(Debug, clap::Args)]
pub struct TopArtifactArgs {
    /// Check the flags and the backup's presence, then stop.
    #[arg(long)]
    validate_only: bool,
    #[command(flatten)]
    artifact: ArtifactArgs,
}

pub(crate) fn run_artifact(a: TopArtifactArgs) -> Outcome {
    execute(prepare_artifacts(a.artifact, a.validate_only)?)
}

fn execute(prepared: Option<(Work, RunArgs, RunRecord)>) -> Outcome {
    let Some((work, run, mut record)) = prepared else {
        return Ok(());
    };
    if !run.pause_at.is_empty() && !std::io::stdin().is_terminal() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--pause-at waits for Enter and needs a terminal on stdin"
        )));
    }
    if let Some(log) = drill::logging::init(Some(&run.report_dir)) {
        eprintln!("drill: logging to stderr and {}", log.display());
    }
    restore_progress();
    let (backend, why) = drill::backend::choose(run.backend, &work.images())?;
    eprintln!(
        "drill: backend {} → {backend} ({why})",
        match run.backend {
            BackendChoice::Auto => "auto",
            BackendChoice::Docker => "docker",
            BackendChoice::Native => "native",
        }
    );
    if backend == BackendKind::Native {
        deps::ensure_for(&work.services())?;
    }
    // Another major version's client tools run here on either backend
    // (an upgrade's pg_dump); natively its servers too.
    for major in work.pg_versions(backend) {
        deps::ensure_pg_major(major)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    // Take over SIGINT (Ctrl-C), SIGTERM (a CI job cancelled) and SIGHUP
    // (the terminal closed) before any server starts, so each reaches the
    // teardown (a lazily registered handler could miss an early one).
    let mut signals = {
        let _guard = runtime.enter();
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ];
        kinds
            .into_iter()
            .map(signal)
            .collect::<Result<Vec<_>, _>>()
            .context("cannot handle Ctrl-C")?
    };
    let opts = DrillOptions {
        backend,
        ..options(&run)
    };
    let jobs: Vec<(String, String)> = match &work {
        Work::Scenarios(s) => s
            .iter()
            .map(|s| (s.name.clone(), s.description.clone()))
            .collect(),
        Work::Artifacts(a) => a
            .iter()
            .map(|a| {
                (
                    "restore-artifact".into(),
                    format!(
                        "restore {}{}",
                        a.backup.display(),
                        a.version
                            .map(|v| format!(" into PostgreSQL {v}"))
                            .unwrap_or_default()
                    ),
                )
            })
            .collect(),
    };
    let work = Arc::new(work);
    // Up to --jobs drills at once, each with its own servers; each runs as
    // a task so this thread sees Ctrl-C even while a step blocks (a
    // restore, initdb); teardown then does not wait for it.
    let permits = Arc::new(tokio::sync::Semaphore::new(usize::from(run.jobs)));
    let handles: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(i, (name, description))| {
            let (job, job_opts, permits) = (work.clone(), opts.clone(), permits.clone());
            let line = format!("▶ {name} — {description}");
            runtime.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("never closed");
                eprintln!("{line}");
                match &*job {
                    Work::Scenarios(s) => drill::engine::run(&s[i], &job_opts).await,
                    Work::Artifacts(a) => drill::engine::restore_artifact(&a[i], &job_opts).await,
                }
            })
        })
        .collect();
    for ((name, _), handle) in jobs.iter().zip(handles) {
        let [int, term, hup] = &mut signals[..] else {
            unreachable!("three signals registered")
        };
        let outcome = runtime.block_on(async {
            tokio::select! {
                biased;
                _ = int.recv() => None,
                _ = term.recv() => None,
                _ = hup.recv() => None,
                r = handle => Some(r),
            }
        });
        match outcome {
            None => {
                let removed = drill::backend::reap_own();
                eprintln!(
                    "interrupted: stopped and removed {} servers and temp dirs",
                    removed.len()
                );
                // Do not wait for a step that is still blocked on a server
                // that no longer exists.
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
            Some(Ok(Ok(r))) => record.reports.push(r),
            Some(Ok(Err(e))) => {
                eprintln!("error: {name}: {e}");
                record.unfinished.push(Unfinished {
                    scenario: name.clone(),
                    error: e.to_string(),
                });
            }
            Some(Err(panic)) => {
                eprintln!("error: {name}: the drill panicked: {panic}");
                record.unfinished.push(Unfinished {
                    scenario: name.clone(),
                    error: format!("the drill panicked: {panic}"),
                });
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    record.history = drill::report::history::entries(&record.reports, now);
    finish(&run.report_dir, &run.gate, record)
}

/// Parses and validates everything; None when --validate-only is done.
fn prepare(args: Args) -> Result<Option<(Work, RunArgs, RunRecord)>, Failure> {
    match args.sub {
        Some(Sub::RestoreArtifact(a)) => return prepare_artifacts(*a, args.validate_only),
        Some(Sub::Init(_)) => unreachable!("run() handles init"),
        None => {}
    }
    let mut scenarios = select(&args)?;
    let record = RunRecord::new(
        args.partition.map(|p| p.share()),
        scenarios.iter().map(|s| s.name.clone()).collect(),
    );
    if let Some(p) = args.partition {
        let all = scenarios.len();
        scenarios = p.select(scenarios, |s| s.name.as_str());
        eprintln!(
            "drill: partition {p}: {} of {all} scenarios",
            scenarios.len()
        );
    }
    if let Some(n) = args.fixture_ticks {
        for sc in &mut scenarios {
            sc.fixture.ticks = n;
        }
    }
    check_run_args(&args.run, &scenarios)?;
    if args.validate_only {
        for sc in &scenarios {
            println!("ok  {}  ({})", sc.name, sc.path.display());
        }
        return Ok(None);
    }
    Ok(Some((Work::Scenarios(scenarios), args.run, record)))
}

fn prepare_artifacts(
    a: ArtifactArgs,
    validate_only: bool,
) -> Result<Option<(Work, RunArgs, RunRecord)>, Failure> {
    {
        if !a.run.pause_at.is_empty() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--pause-at: restore-artifact does not pause; use --keep to look at the restored server"
            )));
        }
        check_run_args(&a.run, &[])?;
        // A backup that is missing or no backup is a red drill with a
        // report (the nightly question's answer), not an input error.
        let fingerprint = match &a.fingerprint {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| p.display().to_string())
                    .map_err(Failure::BadInput)?;
                Some(serde_json::from_str(&text).map_err(|e| {
                    Failure::bad_input(anyhow::anyhow!("{}:{}:{}: not a drill fingerprint ({e}); write one with `cargo xtask fingerprint`", p.display(), e.line(), e.column()))
                })?)
            }
            None => None,
        };
        let d = ArtifactDrill {
            backup: a.backup,
            engine: a.engine,
            database: a.database,
            user: a.user,
            sanitize: !a.no_sanitize,
            tables: a.tables,
            min_rows: a.min_rows,
            fingerprint,
            probes: a.probes,
            allow_empty: a.allow_empty,
            rto: a.rto,
            image: a.image,
            wal_archive: a.wal_archive,
            pgbackrest_repo: a.pgbackrest_repo,
            stanza: a.stanza,
            target: a.target,
            version: a.into_version,
            jobs: a.restore_jobs,
        };
        let drills = match a.newest {
            None => vec![d],
            Some(n) => {
                let folder = d.backup.is_dir() && !d.backup.join("toc.dat").is_file();
                let found = if folder {
                    drill::backups_newest_first(&d.backup)
                        .map_err(|e| Failure::bad_input(anyhow::Error::from(e)))?
                } else {
                    Vec::new()
                };
                if found.is_empty() {
                    // No backups to pick from: one drill, which is red and
                    // says so (a missing backup is the nightly's answer).
                    vec![d]
                } else {
                    found
                        .into_iter()
                        .take(n as usize)
                        .map(|backup| ArtifactDrill {
                            backup,
                            ..d.clone()
                        })
                        .collect()
                }
            }
        };
        if validate_only {
            for d in &drills {
                println!("ok  restore-artifact  ({})", d.backup.display());
            }
            return Ok(None);
        }
        Ok(Some((
            Work::Artifacts(drills),
            a.run,
            RunRecord::new(None, Vec::new()),
        )))
    }
}

/// Every flag and file a run reads, checked before any server starts.
fn check_run_args(run: &RunArgs, scenarios: &[Scenario]) -> Result<(), Failure> {
    let bad = |what: String| Err(Failure::bad_input(anyhow::anyhow!(what)));
    if run.report_dir.exists() && !run.report_dir.is_dir() {
        return bad(format!(
            "--report-dir {}: a file, not a folder; name a folder for the reports",
            run.report_dir.display()
        ));
    }
    if let Some(h) = &run.gate.history {
        drill::report::history::read(h).map_err(Failure::from)?;
    }
    let mut known: Vec<String> = ["fault", "backup", "checks"].map(String::from).to_vec();
    for sc in scenarios {
        known.push(format!("fault: {}", sc.fault.action.name()));
        for step in sc.recoveries.iter().flat_map(|r| &r.steps) {
            known.push(step.kind().to_string());
            known.push(step.label());
        }
    }
    if let Some(p) = run.pause_at.iter().find(|p| !known.contains(p)) {
        known.sort();
        known.dedup();
        return bad(format!(
            "--pause-at {p}: no such point in the drills to run; use one of: {}",
            known.join(", ")
        ));
    }
    for sc in scenarios {
        drill::engine::fits_on_disk(sc).map_err(Failure::from)?;
    }
    Ok(())
}

/// Long restores' progress on stderr: a bar per backup file on a terminal,
/// a plain line every few seconds otherwise (a CI log).
fn restore_progress() {
    use drill::logging::RestoreProgress;
    if !std::io::stderr().is_terminal() {
        drill::logging::set_progress(|p: &RestoreProgress| eprintln!("  … {}", p.line()));
        return;
    }
    let bars: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>> =
        Default::default();
    drill::logging::set_progress(move |p: &RestoreProgress| {
        let mut bars = bars.lock().expect("not poisoned");
        let bar = bars.entry(p.file.clone()).or_insert_with(|| {
            let b = indicatif::ProgressBar::new(p.total.max(1));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {bar:30} {binary_bytes}/{binary_total_bytes} {msg}",
                )
                .expect("a valid template"),
            );
            b
        });
        bar.set_position(p.read.min(p.total));
        bar.set_message(p.line());
        if p.finished {
            bar.finish_and_clear();
            eprintln!("  … {}", p.line());
            bars.remove(&p.file);
        }
    });
}

fn options(run: &RunArgs) -> DrillOptions {
    let progress: drill::engine::ProgressFn = Arc::new(|p: &Progress| match p {
        Progress::Started { .. } => {}
        Progress::Finished { scenario, entry } => {
            let mark = if entry.ok { "✓" } else { "✗" };
            eprintln!(
                "  {mark} [{:>9}] {scenario} › {} › {} ({}) {}",
                drill::fmt_duration(entry.start),
                entry.phase,
                entry.step,
                drill::fmt_duration(entry.duration),
                entry.detail
            );
        }
    });
    let pause: drill::engine::PauseFn = Arc::new(|p: &Pause| {
        eprintln!("\n⏸  {} paused after {}", p.scenario, p.at);
        for c in &p.connect {
            eprintln!("   {c}");
        }
        eprintln!("   (the RTO clock is stopped) press Enter to continue ...");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    });
    DrillOptions {
        backend: BackendKind::Native,
        keep: run.keep,
        progress: Some(progress),
        pause_at: run.pause_at.clone(),
        pause: Some(pause),
    }
}

/// Prints, judges against the history and writes a finished run or merge:
/// the table, what failed and why, the timelines, the trend; the report
/// files and run.json; then the exit code.
pub(crate) fn finish(report_dir: &Path, gate: &GateArgs, record: RunRecord) -> Outcome {
    let reports = &record.reports[..];
    let mut harness_failed = !record.unfinished.is_empty();
    if !reports.is_empty() {
        println!("{}", drill::report::summary::table(reports));
        for r in reports {
            if let Some(c) = drill::report::compose_text(r) {
                println!("{c}");
            }
            for w in &r.warnings {
                println!("⚠ {}: {}", r.name, w.message);
            }
            for rec in r
                .recoveries
                .iter()
                .filter(|x| !x.recovered || !x.met_expectation)
            {
                let mark = if rec.met_expectation {
                    "as expected"
                } else {
                    "EXPECTATION MISSED"
                };
                println!("\n{} › {} ({mark}): {}", r.name, rec.name, rec.summary);
                for e in rec.errors.iter().take(3) {
                    println!("  tool said: {e}");
                }
                for c in rec.checks.iter().filter(|c| !c.ok) {
                    println!("  ✗ {}: expected {}, got {}", c.name, c.expected, c.actual);
                    if let Some(ev) = &c.evidence {
                        for line in ev.lines() {
                            println!("      {line}");
                        }
                    }
                }
            }
            println!(
                "\ntimeline of {}:\n{}",
                r.name,
                drill::report::timeline_text(r)
            );
            for k in &r.kept {
                println!("kept: {k}");
            }
        }
    }
    // The history is read once: judged before this run, then with it.
    let (trends, history) = match trend(gate, &record) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            harness_failed = true;
            Default::default()
        }
    };
    for t in &trends {
        let mark = if t.tripped { "✗ REGRESSION" } else { "trend" };
        println!("{mark}: {} [{}]: {}", t.scenario, t.backend, t.note);
    }
    let predictions = predict(gate, reports, &history);
    for u in &record.unfinished {
        println!("✗ {} did not finish: {}", u.scenario, u.error);
    }
    let written = if reports.is_empty() {
        Ok(Vec::new())
    } else {
        let opts = drill::report::WriteOptions {
            prometheus: gate.prometheus,
        };
        drill::report::write_all(report_dir, reports, &trends, opts)
    };
    // run.json always: a partition that drew no scenario is still merged.
    match written.and_then(|mut paths| {
        paths.push(record.write(report_dir)?);
        if !predictions.is_empty() {
            paths.push(drill::report::predict::write(report_dir, &predictions)?);
        }
        if gate.history.is_some() && !reports.is_empty() {
            paths.push(drill::report::trend_svg::write(
                report_dir,
                reports,
                &history,
                &policy(gate),
            )?);
        }
        Ok(paths)
    }) {
        Ok(paths) => eprintln!(
            "reports: {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => {
            eprintln!("error: {e}");
            harness_failed = true;
        }
    }
    if harness_failed {
        Err(Failure::Harness(anyhow::anyhow!(
            "the harness could not do its job (see above)"
        )))
    } else if reports.iter().any(|r| r.verdict == Verdict::Fail) {
        Err(Failure::ExpectationMissed)
    } else if gate.gate && (trends.iter().any(|t| t.tripped) || predictions.iter().any(|p| p.over))
    {
        Err(Failure::Regression)
    } else {
        Ok(())
    }
}

/// The gate's settings, from the flags.
fn policy(gate: &GateArgs) -> drill::report::history::GatePolicy {
    drill::report::history::GatePolicy {
        margin: gate.gate_margin / 100.0,
        slack: gate.gate_slack,
        window: gate.gate_window,
        min_runs: gate.gate_min_runs,
        confirm: gate.gate_confirm,
    }
}

/// `--predict-rto`: each scenario's RTO at production's size, from the
/// history (this run included), printed and written to prediction.json.
fn predict(
    gate: &GateArgs,
    reports: &[drill::engine::DrillReport],
    all: &[drill::report::history::HistoryEntry],
) -> Vec<drill::report::predict::Prediction> {
    use drill::report::predict;
    let Some(size) = gate.predict_rto else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in reports {
        match predict::predict(all, &r.name, &r.backend, size, r.rto_target) {
            Ok(p) => {
                let mark = if p.over {
                    "✗ PREDICTED OVER TARGET"
                } else {
                    "prediction"
                };
                println!("{mark}: {}", p.line());
                out.push(p);
            }
            Err(why) => println!("prediction: {why}"),
        }
    }
    out
}

/// Reads the history, judges this run against it, then appends this run;
/// returns the trends and the history with this run.
fn trend(
    gate: &GateArgs,
    record: &RunRecord,
) -> drill::Result<(
    Vec<drill::report::history::Trend>,
    Vec<drill::report::history::HistoryEntry>,
)> {
    use drill::report::history;
    let Some(path) = &gate.history else {
        return Ok(Default::default());
    };
    let mut all = history::read(path)?;
    let trends = history::judge(&record.reports, &all, &policy(gate));
    history::append(path, &record.history)?;
    all.extend(record.history.iter().cloned());
    Ok((trends, all))
}

fn select(args: &Args) -> Result<Vec<Scenario>, Failure> {
    if args.scenarios.is_empty() {
        return Ok(drill::scenario::load_dir(&args.scenarios_dir)?);
    }
    let mut all: Option<Vec<Scenario>> = None;
    args.scenarios
        .iter()
        .map(|want| {
            let path = PathBuf::from(want);
            if path.extension().is_some_and(|e| e == "toml") {
                return Ok(drill::scenario::load_file(&path)?);
            }
            // By name: the file of that name first, so one broken scenario
            // does not block running another.
            let direct = args.scenarios_dir.join(format!("{want}.toml"));
            if direct.is_file() {
                return Ok(drill::scenario::load_file(&direct)?);
            }
            if all.is_none() {
                all = Some(drill::scenario::load_dir(&args.scenarios_dir)?);
            }
            let all = all.as_ref().expect("loaded");
            all.iter()
                .find(|s| &s.name == want)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                    Failure::bad_input(anyhow::anyhow!(
                        "no scenario named `{want}`; known: {} (see `cargo xtask list`)",
                        names.join(", ")
                    ))
                })
        })
        .collect()
}
