//! Runs every scenario file in `scenarios/` as a test case on each backend
//! (datatest-stable), so nextest gives filtering, parallelism, retries and
//! JUnit for free: `cargo nextest run -p drill-scenarios -E 'test(verbose-dump)'`
//! runs `native::verbose-dump.toml` and `docker::verbose-dump.toml`. The
//! docker cases skip with a message when no engine or image is there, and
//! fail instead when `DRILL_REQUIRE_DOCKER` is set (CI); the scenarios that
//! need TimescaleDB skip the same way without it, and fail instead under
//! `CI=true` or `DRILL_REQUIRE_TIMESCALEDB`.
//!
//! A case passes when the drill's verdict is `pass`: each corrected recovery
//! brought everything back within the RTO and each naive one reproduced its
//! incident. On failure the message holds the summary table and every missed
//! expectation with its evidence.

use std::path::Path;
use std::sync::Arc;

use drill::engine::{DrillOptions, Progress, Verdict};
use drill::testing::available_for_tests;
use drill::{BackendKind, ServiceKind};

fn native(path: &Path) -> datatest_stable::Result<()> {
    drill(path, BackendKind::Native)
}

fn docker(path: &Path) -> datatest_stable::Result<()> {
    drill(path, BackendKind::Docker)
}

fn drill(path: &Path, backend: BackendKind) -> datatest_stable::Result<()> {
    let scenario = drill::scenario::load_file(path)?;
    let services: Vec<ServiceKind> = scenario.services.kinds();
    if !available_for_tests(backend, &services, &scenario.name) {
        return Ok(());
    }
    let needs_timescaledb = scenario.fixture.name == drill::scenario::FixtureName::QuantTrading
        || scenario
            .services
            .postgres
            .as_ref()
            .is_some_and(|p| p.engine == drill::scenario::PgEngine::Timescaledb);
    if needs_timescaledb && !drill::testing::timescaledb_for_tests(backend, &scenario.name) {
        return Ok(());
    }
    // Another major version: its image (Docker) and its binaries (natively,
    // and on either backend for a `pg-dump` step's client).
    let servers = scenario.pg_server_versions();
    for major in scenario.pg_versions() {
        let here = servers.contains(&major)
            && !drill::testing::pg_version_for_tests(backend, major, &scenario.name);
        if here || !drill::testing::pg_version_for_tests(BackendKind::Native, major, &scenario.name)
        {
            return Ok(());
        }
    }
    let progress: drill::engine::ProgressFn = Arc::new(|p: &Progress| {
        if let Progress::Finished { entry, .. } = p {
            eprintln!(
                "{} {} › {} ({:?}) {}",
                if entry.ok { "✓" } else { "✗" },
                entry.phase,
                entry.step,
                entry.duration,
                entry.detail
            );
        }
    });
    let opts = DrillOptions {
        backend,
        progress: Some(progress),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(drill::engine::run(&scenario, &opts))?;
    println!(
        "{}",
        drill::report::summary::table(std::slice::from_ref(&report))
    );
    if report.verdict == Verdict::Pass {
        return Ok(());
    }
    let mut why = String::new();
    for rec in report.recoveries.iter().filter(|r| !r.met_expectation) {
        why.push_str(&format!(
            "{} › {}: {}\n",
            report.name, rec.name, rec.summary
        ));
        for c in rec.checks.iter().filter(|c| !c.ok) {
            why.push_str(&format!(
                "  ✗ {}: expected {}, got {}\n",
                c.name, c.expected, c.actual
            ));
            if let Some(e) = &c.evidence {
                why.push_str(&format!("    {}\n", e.replace('\n', "\n    ")));
            }
        }
    }
    Err(why.into())
}

datatest_stable::harness! {
    { test = native, root = ".", pattern = r"^[a-z0-9-]+\.toml$" },
    { test = docker, root = ".", pattern = r"^[a-z0-9-]+\.toml$" },
}
