//! RTO history and the regression gate. Each run can append one line of JSON
//! per scenario to a history file; `--gate` compares this run's RTO with the
//! median of the recent passing runs of the same scenario on the same
//! backend and trips when it is slower by more than the margin (a relative
//! margin *and* an absolute slack must both be exceeded, so sub-second drills
//! do not flap on noise).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::engine::{DrillReport, Verdict};
use crate::{Error, Result};

/// One line of the history file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// Seconds since the Unix epoch when the run finished.
    pub time: u64,
    pub run_id: String,
    pub scenario: String,
    pub backend: String,
    pub verdict: String,
    /// The corrected recovery's RTO; None when it did not recover.
    pub rto_ms: Option<u64>,
}

/// Gate settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatePolicy {
    /// Allowed slow-down over the median, as a fraction (0.25 = 25 %).
    pub margin: f64,
    /// And at least this much slower in absolute terms.
    pub slack: Duration,
    /// How many recent passing runs the median is taken over.
    pub window: usize,
    /// Fewer passing runs than this: no verdict yet, the gate stays open.
    pub min_runs: usize,
}

impl Default for GatePolicy {
    fn default() -> Self {
        GatePolicy {
            margin: 0.25,
            slack: Duration::from_millis(250),
            window: 10,
            min_runs: 3,
        }
    }
}

/// The gate's judgement of one scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trend {
    pub scenario: String,
    pub backend: String,
    #[serde(with = "crate::vocab::millis::opt")]
    pub rto_ms: Option<Duration>,
    /// Median RTO of the recent passing runs.
    #[serde(with = "crate::vocab::millis::opt")]
    pub median_ms: Option<Duration>,
    /// How many past runs the median covers.
    pub samples: usize,
    /// Change against the median, in percent.
    pub change_percent: Option<f64>,
    pub tripped: bool,
    pub note: String,
}

/// Reads a history file; a missing file is an empty history. A malformed
/// line is an error naming the file and line.
pub fn read(path: &Path) -> Result<Vec<HistoryEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::bad_input(
                    format!("history file {}:{} is malformed", path.display(), i + 1),
                    format!("{e}; fix or delete that line"),
                )
            })
        })
        .collect()
}

/// Appends this run's entries.
pub fn append(path: &Path, entries: &[HistoryEntry]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    // A hand-edited file may lack its final newline: never glue two lines.
    let needs_newline = std::fs::read(path).is_ok_and(|b| b.last().is_some_and(|&c| c != b'\n'));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    if needs_newline {
        writeln!(f).map_err(Error::io("append to", path))?;
    }
    for e in entries {
        writeln!(f, "{}", serde_json::to_string(e).expect("serialisable"))
            .map_err(Error::io("append to", path))?;
    }
    Ok(())
}

/// This run's history lines.
pub fn entries(reports: &[DrillReport], now_secs: u64) -> Vec<HistoryEntry> {
    reports
        .iter()
        .map(|r| HistoryEntry {
            time: now_secs,
            run_id: r.run_id.clone(),
            scenario: r.name.clone(),
            backend: r.backend.clone(),
            verdict: if r.verdict == Verdict::Pass {
                "pass".into()
            } else {
                "fail".into()
            },
            rto_ms: r
                .main_recovery()
                .and_then(|m| m.rto)
                .map(|d| d.as_millis() as u64),
        })
        .collect()
}

/// Judges each report's RTO against the history (which must not yet hold
/// this run).
pub fn judge(reports: &[DrillReport], history: &[HistoryEntry], policy: &GatePolicy) -> Vec<Trend> {
    reports
        .iter()
        .map(|r| {
            let rto = r.main_recovery().and_then(|m| m.rto);
            let mut past: Vec<u64> = history
                .iter()
                .filter(|h| h.scenario == r.name && h.backend == r.backend && h.verdict == "pass")
                .filter_map(|h| h.rto_ms)
                .collect();
            past = past.split_off(past.len().saturating_sub(policy.window));
            let samples = past.len();
            let median = median_ms(&mut past).map(Duration::from_millis);
            let mut t = Trend {
                scenario: r.name.clone(),
                backend: r.backend.clone(),
                rto_ms: rto,
                median_ms: median,
                samples,
                change_percent: None,
                tripped: false,
                note: String::new(),
            };
            match (rto, median) {
                (None, _) => t.note = "not recovered: no RTO to compare".into(),
                (Some(_), None) => t.note = format!("no past passing runs; {} needed for a verdict", policy.min_runs),
                (Some(now), Some(med)) => {
                    let pct = change(now, med);
                    t.change_percent = Some(pct);
                    let limit = med.mul_f64(1.0 + policy.margin).max(med + policy.slack);
                    if samples < policy.min_runs {
                        t.note = format!("{samples} of {} past runs needed for a verdict", policy.min_runs);
                    } else if now > limit {
                        t.tripped = true;
                        t.note = format!(
                            "RTO regressed: {} vs median {} of {samples} runs ({pct:+.0}%, limit {})",
                            crate::vocab::fmt_duration(now),
                            crate::vocab::fmt_duration(med),
                            crate::vocab::fmt_duration(limit)
                        );
                    } else {
                        t.note = format!("{pct:+.0}% against the median of {samples} runs");
                    }
                }
            }
            t
        })
        .collect()
}

fn change(now: Duration, median: Duration) -> f64 {
    if median.is_zero() {
        return 0.0;
    }
    (now.as_secs_f64() / median.as_secs_f64() - 1.0) * 100.0
}

fn median_ms(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::report;

    fn past(rtos: &[u64]) -> Vec<HistoryEntry> {
        rtos.iter()
            .enumerate()
            .map(|(i, &ms)| HistoryEntry {
                time: i as u64,
                run_id: format!("r{i}"),
                scenario: "verbose-dump".into(),
                backend: "native".into(),
                verdict: "pass".into(),
                rto_ms: Some(ms),
            })
            .collect()
    }

    #[test]
    fn an_injected_regression_trips_the_gate() {
        let p = GatePolicy::default();
        let slow = report(Some(Duration::from_millis(3_000)));
        let t = &judge(&[slow], &past(&[1_000, 1_100, 900, 1_050]), &p)[0];
        assert!(t.tripped, "{t:?}");
        assert_eq!(t.median_ms, Some(Duration::from_millis(1_025)));
        assert!(
            t.note
                .starts_with("RTO regressed: 3.000s vs median 1.025s of 4 runs"),
            "{}",
            t.note
        );
    }

    #[test]
    fn normal_variation_passes() {
        let p = GatePolicy::default();
        let ok = report(Some(Duration::from_millis(1_200)));
        let t = &judge(&[ok], &past(&[1_000, 1_100, 900, 1_050]), &p)[0];
        assert!(!t.tripped, "{t:?}");
        // Sub-second: +100% but under the absolute slack.
        let tiny = report(Some(Duration::from_millis(200)));
        assert!(!judge(&[tiny], &past(&[100, 100, 100]), &p)[0].tripped);
    }

    #[test]
    fn too_little_history_gives_no_verdict() {
        let p = GatePolicy::default();
        let slow = report(Some(Duration::from_millis(9_000)));
        let t = &judge(&[slow], &past(&[1_000, 1_000]), &p)[0];
        assert!(!t.tripped);
        assert!(t.note.contains("2 of 3 past runs"), "{}", t.note);
    }

    #[test]
    fn history_round_trips_and_bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h/history.jsonl");
        append(&path, &past(&[1, 2])).unwrap();
        append(&path, &past(&[3])).unwrap();
        assert_eq!(read(&path).unwrap().len(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap(); // hand-edited: no final newline
        append(&path, &past(&[4])).unwrap();
        assert_eq!(read(&path).unwrap().len(), 4);
        std::fs::write(&path, "{\"bad\": 1}\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("history.jsonl:1 is malformed"), "{e}");
        assert!(read(&dir.path().join("none")).unwrap().is_empty());
    }
}
