//! Reports consume finished [`DrillReport`](crate::engine::DrillReport)s and
//! never talk to a server: a summary table for the terminal ([`summary`]),
//! and for `--report-dir`: `report.json` ([`json`]), `junit.xml`
//! ([`junit`]), `summary.md` ([`markdown`]), one timeline SVG per scenario
//! ([`svg`]) and optionally `metrics.prom` ([`prometheus`]). RTO history and
//! the regression gate live in [`history`].

pub mod history;
mod json;
mod junit;
mod markdown;
pub mod predict;
mod prometheus;
pub mod run;
#[cfg(test)]
mod snapshots;
pub mod summary;
mod svg;
#[cfg(test)]
pub(crate) mod testdata;
pub mod trend_svg;

use std::path::{Path, PathBuf};

use crate::engine::DrillReport;
use crate::{Error, Result};
use history::Trend;

/// Which optional files to write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Also write `metrics.prom`.
    pub prometheus: bool,
}

/// Writes every report file into `dir`; returns the paths written.
/// `summary.md` is also appended to `$GITHUB_STEP_SUMMARY` when set.
pub fn write_all(
    dir: &Path,
    reports: &[DrillReport],
    trends: &[Trend],
    opts: WriteOptions,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let mut written = Vec::new();
    let mut put = |name: String, text: String| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(Error::io("write", &path))?;
        written.push(path);
        Ok(())
    };
    put(
        "report.json".into(),
        serde_json::to_string_pretty(&json::document(reports, trends)).expect("serialisable"),
    )?;
    put("junit.xml".into(), junit::render(reports, trends))?;
    let md = markdown::render(reports, trends);
    put("summary.md".into(), md.clone())?;
    for r in reports {
        put(
            format!("timeline-{}-{}.svg", r.name, r.backend),
            svg::render(r),
        )?;
        put(
            format!("timeline-{}-{}.txt", r.name, r.backend),
            timeline_text(r),
        )?;
    }
    if opts.prometheus {
        put("metrics.prom".into(), prometheus::render(reports))?;
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
        use std::io::Write;
        let path = PathBuf::from(summary);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        writeln!(f, "{md}").map_err(Error::io("append to", &path))?;
    }
    Ok(written)
}

/// (checks passed, checks) of one kind.
fn tally(checks: &[crate::CheckResult], kind: crate::CheckKind) -> (usize, usize) {
    checks
        .iter()
        .filter(|c| c.kind == kind)
        .fold((0, 0), |(ok, n), c| (ok + usize::from(c.ok), n + 1))
}

/// The rows column: tables whose count equals the baseline's, or (when
/// nothing was compared, as in restore-artifact) the row minimums met.
pub(crate) fn rows_column(checks: &[crate::CheckResult], equal: &str) -> String {
    let (ok, n) = tally(checks, crate::CheckKind::Rows);
    let (min_ok, min_n) = tally(checks, crate::CheckKind::MinRows);
    if n == 0 && min_n > 0 {
        format!("{min_ok}/{min_n} row minimums met")
    } else {
        format!("{ok}/{n} {equal}")
    }
}

/// The timeline as text: each step, its start, its duration, whether it
/// succeeded, and its output or detail.
/// What a compose file gave the drill, for a person: per service, what was
/// taken and what drill overrode (and, natively, what it could not apply).
pub fn compose_text(r: &DrillReport) -> Option<String> {
    use std::fmt::Write;
    let c = r.compose.as_ref()?;
    let mut out = format!("services of {} from {}", r.name, c.file.display());
    let native = r.backend.starts_with("native");
    for s in &c.services {
        let _ = write!(
            out,
            "\n  {} ← `{}` (container {})",
            s.kind, s.service, s.container
        );
        for t in &s.taken {
            let _ = write!(out, "\n    taken: {t}");
        }
        for o in &s.overridden {
            let _ = write!(out, "\n    overridden: {o}");
        }
        if native {
            for n in &s.not_native {
                let _ = write!(out, "\n    not applied natively: {n}");
            }
        }
    }
    if !c.not_drilled.is_empty() {
        let _ = write!(out, "\n  not drilled: {}", c.not_drilled.join(", "));
    }
    if !c.unset_variables.is_empty() {
        let _ = write!(
            out,
            "\n  variables not set (empty, as Compose does): {}",
            c.unset_variables.join(", ")
        );
    }
    Some(out)
}

pub fn timeline_text(r: &DrillReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for e in &r.timeline {
        let _ = writeln!(
            out,
            "{} [{:>10}] +{:<10} {} › {}\n      {}",
            if e.ok { "✓" } else { "✗" },
            crate::vocab::fmt_duration(e.start),
            crate::vocab::fmt_duration(e.duration),
            e.phase,
            e.step,
            e.detail.replace('\n', "\n      ")
        );
    }
    out
}
