//! `cargo xtask drill [SCENARIO...]`: validates every named scenario before
//! starting anything, runs them one after another with live progress on
//! stderr, prints the summary table, writes `report.json`, and exits with a
//! code that tells a missed expectation from a harness error.

use std::path::PathBuf;
use std::sync::Arc;

use drill::engine::{DrillOptions, Progress, Verdict};
use drill::scenario::Scenario;

use crate::{deps, exit};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Scenario names (file stems) or paths; all scenarios when omitted.
    scenarios: Vec<String>,
    /// Folder holding the scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Leave servers and backups running after the drill and print how to
    /// reach them (`cargo xtask clean` removes them).
    #[arg(long)]
    keep: bool,
    /// Where to run servers: `native` (local initdb + postgres). `auto`
    /// picks native until the container backend lands.
    #[arg(long, default_value = "auto", value_parser = ["auto", "native"])]
    backend: String,
    /// Where the reports go: report.json, junit.xml, summary.md, one
    /// timeline SVG per scenario (and metrics.prom with --prometheus).
    #[arg(long, default_value = "target/drill")]
    report_dir: PathBuf,
    /// Also write Prometheus text-format metrics (metrics.prom).
    #[arg(long)]
    prometheus: bool,
    /// Append this run's RTOs to this history file (JSON lines) and show the
    /// trend against it.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Fail (exit 4) when a scenario's RTO regressed beyond the margin against
    /// the median of its recent passing runs in --history.
    #[arg(long, requires = "history")]
    gate: bool,
    /// Allowed RTO slow-down over the median, in percent.
    #[arg(long, default_value_t = 25.0)]
    gate_margin: f64,
    /// ...and at least this much slower in absolute terms (e.g. "250ms").
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    gate_slack: std::time::Duration,
    /// How many recent passing runs the median is taken over.
    #[arg(long, default_value_t = 10)]
    gate_window: usize,
    /// Fewer passing runs than this in the history: no verdict yet.
    #[arg(long, default_value_t = 3)]
    gate_min_runs: usize,
    /// Validate the scenarios and flags, then stop without starting anything.
    #[arg(long)]
    validate_only: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    drill::scenario::parse_duration(s)
}

pub(crate) fn run(args: Args) -> u8 {
    let scenarios = match select(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if args.validate_only {
        for sc in &scenarios {
            println!("ok  {}  ({})", sc.name, sc.path.display());
        }
        return exit::OK;
    }
    if let Err(e) = deps::ensure() {
        eprintln!("error: {e}");
        return exit::HARNESS_ERROR;
    }
    eprintln!("drill: backend {} (local PostgreSQL binaries)", if args.backend == "auto" { "auto → native" } else { "native" });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    // Take over SIGINT before any server starts, so Ctrl-C always reaches
    // the teardown (a lazily registered handler could miss an early one).
    let mut sigint = {
        let _guard = runtime.enter();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot handle Ctrl-C: {e}");
                return exit::HARNESS_ERROR;
            }
        }
    };
    let progress: drill::engine::ProgressFn = Arc::new(|p: &Progress| match p {
        Progress::Started { .. } => {}
        Progress::Finished { scenario, entry } => {
            let mark = if entry.ok { "✓" } else { "✗" };
            eprintln!(
                "  {mark} [{:>9}] {scenario} › {} › {} ({}) {}",
                drill::check::fmt_duration(entry.start),
                entry.phase,
                entry.step,
                drill::check::fmt_duration(entry.duration),
                entry.detail
            );
        }
    });
    let opts = DrillOptions { keep: args.keep, progress: Some(progress) };
    let mut reports = Vec::new();
    let mut harness_failed = false;
    for sc in &scenarios {
        eprintln!("▶ {} — {}", sc.name, sc.description);
        let outcome = runtime.block_on(async {
            tokio::select! {
                biased;
                _ = sigint.recv() => Err(drill::Error::Interrupted),
                r = drill::engine::run(sc, &opts) => r,
            }
        });
        match outcome {
            Ok(r) => reports.push(r),
            Err(drill::Error::Interrupted) => {
                eprintln!("interrupted: servers and temp dirs removed");
                return exit::INTERRUPTED;
            }
            Err(e) => {
                eprintln!("error: {}: {e}", sc.name);
                harness_failed = true;
            }
        }
    }
    if !reports.is_empty() {
        println!("{}", drill::report::summary::table(&reports));
        for r in &reports {
            for rec in r.recoveries.iter().filter(|x| !x.recovered || !x.met_expectation) {
                let mark = if rec.met_expectation { "as expected" } else { "EXPECTATION MISSED" };
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
            for k in &r.kept {
                println!("kept: {k}");
            }
        }
    }
    let trends = match trend(&args, &reports) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            harness_failed = true;
            Vec::new()
        }
    };
    for t in &trends {
        let mark = if t.tripped { "✗ REGRESSION" } else { "trend" };
        println!("{mark}: {} [{}]: {}", t.scenario, t.backend, t.note);
    }
    if !reports.is_empty() {
        let opts = drill::report::WriteOptions { prometheus: args.prometheus };
        match drill::report::write_all(&args.report_dir, &reports, &trends, opts) {
            Ok(paths) => eprintln!("reports: {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")),
            Err(e) => {
                eprintln!("error: {e}");
                harness_failed = true;
            }
        }
    }
    if harness_failed {
        exit::HARNESS_ERROR
    } else if reports.iter().any(|r| r.verdict == Verdict::Fail) {
        exit::EXPECTATION_MISSED
    } else if args.gate && trends.iter().any(|t| t.tripped) {
        exit::REGRESSION
    } else {
        exit::OK
    }
}

/// Reads the history, judges this run against it, then appends this run.
fn trend(args: &Args, reports: &[drill::engine::DrillReport]) -> drill::Result<Vec<drill::report::history::Trend>> {
    use drill::report::history;
    let Some(path) = &args.history else { return Ok(Vec::new()) };
    let past = history::read(path)?;
    let policy = history::GatePolicy {
        margin: args.gate_margin / 100.0,
        slack: args.gate_slack,
        window: args.gate_window,
        min_runs: args.gate_min_runs,
    };
    let trends = history::judge(reports, &past, &policy);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    history::append(path, &history::entries(reports, now))?;
    Ok(trends)
}

fn select(args: &Args) -> Result<Vec<Scenario>, String> {
    let all = drill::scenario::load_dir(&args.scenarios_dir).map_err(|e| e.to_string())?;
    if args.scenarios.is_empty() {
        return Ok(all);
    }
    args.scenarios
        .iter()
        .map(|want| {
            let path = PathBuf::from(want);
            if path.extension().is_some_and(|e| e == "toml") {
                return drill::scenario::load_file(&path).map_err(|e| e.to_string());
            }
            all.iter().find(|s| &s.name == want).cloned().ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                format!("no scenario named `{want}`; known: {} (see `cargo xtask list`)", names.join(", "))
            })
        })
        .collect()
}
