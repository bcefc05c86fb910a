//! `run.json`: a run's own record, written beside the other reports so that
//! the runs of N CI runners (`--partition M/N`) can be merged into one
//! report ([`merge`]) as if one machine had run them all. It holds every
//! [`DrillReport`] whole (the other files are rendered from them again), the
//! partition, the scenario list the partition was cut from, the drills that
//! did not finish, and this run's history lines.
//!
//! Merging refuses what would give a report nobody ran: runs of another
//! drill version or record format, partitions cut from different scenario
//! lists (another commit or filter) or by another scheme, the same
//! partition twice, a missing partition, and a scenario reported twice.

use std::path::{Path, PathBuf};

use super::history::HistoryEntry;
use crate::engine::DrillReport;
use crate::{Error, Result};

/// The record's file name in a report dir.
pub const FILE: &str = "run.json";
/// Bumped when an older drill could not read the record.
pub const FORMAT: u32 = 1;

/// One partition of a run: `hash:2/3` is share 2 of 3 by hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    /// `hash` or `count`, as nextest's `--partition`.
    pub scheme: String,
    pub m: u64,
    pub n: u64,
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.scheme, self.m, self.n)
    }
}

/// A drill that did not finish: no report, the harness's error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unfinished {
    pub scenario: String,
    pub error: String,
}

/// Everything one run (or one merge) found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub format: u32,
    pub drill_version: String,
    /// The share this run took; None for a whole run or a merge.
    pub partition: Option<Share>,
    /// Every scenario the run was chosen from, before partitioning, in the
    /// order a whole run takes them (empty for restore-artifact).
    pub selected_from: Vec<String>,
    /// Drills that did not finish (the run exits 2).
    pub unfinished: Vec<Unfinished>,
    /// This run's history lines (also appended to `--history` when given).
    pub history: Vec<HistoryEntry>,
    pub reports: Vec<DrillReport>,
}

impl RunRecord {
    /// A record of this drill version.
    pub fn new(partition: Option<Share>, selected_from: Vec<String>) -> RunRecord {
        RunRecord {
            format: FORMAT,
            drill_version: env!("CARGO_PKG_VERSION").into(),
            partition,
            selected_from,
            unfinished: Vec::new(),
            history: Vec::new(),
            reports: Vec::new(),
        }
    }

    /// Writes `dir/run.json`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let path = dir.join(FILE);
        let text = serde_json::to_string(self).expect("serialisable");
        std::fs::write(&path, text).map_err(Error::io("write", &path))?;
        Ok(path)
    }

    /// Reads `dir/run.json`.
    pub fn read(dir: &Path) -> Result<RunRecord> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::bad_input(
                    format!("{} has no {FILE}", dir.display()),
                    "name a folder a drill run wrote its reports into (--report-dir); \
                     a partition whose job failed before its reports were written leaves none: \
                     see that job's log"
                        .to_string(),
                ));
            }
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        // The format first, so a newer record gets that message rather
        // than a confusing missing field.
        #[derive(serde::Deserialize)]
        struct Head {
            format: u32,
            drill_version: String,
        }
        let head: Head = serde_json::from_str(&text).map_err(|e| not_a_record(&path, &e))?;
        if head.format != FORMAT {
            return Err(Error::bad_input(
                format!(
                    "{}: record format {} (drill {}), this drill reads format {FORMAT}",
                    path.display(),
                    head.format,
                    head.drill_version
                ),
                "merge with the drill version that ran the partitions".to_string(),
            ));
        }
        serde_json::from_str(&text).map_err(|e| not_a_record(&path, &e))
    }
}

fn not_a_record(path: &Path, e: &serde_json::Error) -> Error {
    Error::bad_input(
        format!(
            "{}:{}:{}: not a drill run record ({e})",
            path.display(),
            e.line(),
            e.column()
        ),
        "it is written by `drill run`; rerun the partition rather than editing it".to_string(),
    )
}

/// Merges the records of one run's partitions (or of runs of disjoint
/// scenarios) into one, its reports in the order a whole run gives them.
/// `names` say where each record came from, for the errors.
pub fn merge(records: Vec<(String, RunRecord)>) -> Result<RunRecord> {
    let refuse = |what: String, help: &str| Err(Error::bad_input(what, help.to_string()));
    let Some((first_name, first)) = records.first() else {
        return refuse(
            "nothing to merge".into(),
            "name the report dirs of the partitions",
        );
    };
    for (name, r) in &records[1..] {
        if r.drill_version != first.drill_version {
            return refuse(
                format!(
                    "{name} was written by drill {}, {first_name} by drill {}",
                    r.drill_version, first.drill_version
                ),
                "run every partition with the same drill build",
            );
        }
        if r.selected_from != first.selected_from {
            let only = |a: &RunRecord, b: &RunRecord| {
                a.selected_from
                    .iter()
                    .filter(|s| !b.selected_from.contains(s))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return refuse(
                format!(
                    "{name} and {first_name} were cut from different scenario lists \
                     (only in {name}: [{}]; only in {first_name}: [{}]; or another order)",
                    only(r, first),
                    only(first, r)
                ),
                "run every partition from the same commit with the same scenario arguments",
            );
        }
    }
    if let Some((p_name, s0)) = records
        .iter()
        .find_map(|(n, r)| r.partition.clone().map(|s| (n.clone(), s)))
    {
        let mut seen: Vec<u64> = Vec::new();
        for (name, r) in &records {
            let Some(s) = &r.partition else {
                return refuse(
                    format!("{name} is a whole run, {p_name} partition {s0}"),
                    "merge the partitions of one run, or runs without --partition",
                );
            };
            if s.scheme != s0.scheme || s.n != s0.n {
                return refuse(
                    format!("{name} is partition {s}, {p_name} partition {s0}"),
                    "every partition of one run uses the same scheme and count",
                );
            }
            if seen.contains(&s.m) {
                return refuse(
                    format!("partition {s} is given twice ({name})"),
                    "name each partition's report dir once",
                );
            }
            seen.push(s.m);
        }
        let missing: Vec<String> = (1..=s0.n)
            .filter(|m| !seen.contains(m))
            .map(|m| format!("{}:{m}/{}", s0.scheme, s0.n))
            .collect();
        if !missing.is_empty() {
            return refuse(
                format!(
                    "partition {} missing: {} of {} merged",
                    missing.join(", "),
                    seen.len(),
                    s0.n
                ),
                "its job produced no report dir (see that job's log), or the dir was not passed",
            );
        }
    }
    let mut merged = RunRecord::new(None, first.selected_from.clone());
    for (name, r) in records {
        for rep in r.reports {
            if let Some(dup) = merged
                .reports
                .iter()
                .find(|x| x.name == rep.name && x.backend == rep.backend)
            {
                return refuse(
                    format!(
                        "{name} reports {} on {} again (already merged from run {})",
                        rep.name, rep.backend, dup.run_id
                    ),
                    "each scenario belongs to one partition; merge each run's dir once",
                );
            }
            merged.reports.push(rep);
        }
        merged.unfinished.extend(r.unfinished);
        merged.history.extend(r.history);
    }
    let order = |name: &str| {
        merged
            .selected_from
            .iter()
            .position(|s| s == name)
            .unwrap_or(usize::MAX)
    };
    merged.reports.sort_by_key(|r| order(&r.name));
    merged.history.sort_by_key(|h| order(&h.scenario));
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    fn record(share: Option<(u64, u64)>, names: &[&str]) -> RunRecord {
        let from: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut r = RunRecord::new(
            share.map(|(m, n)| Share {
                scheme: "count".into(),
                m,
                n,
            }),
            from,
        );
        for n in names {
            let mut rep = testdata::report(Some(std::time::Duration::from_millis(900)));
            rep.name = (*n).into();
            r.reports.push(rep);
        }
        r
    }

    fn err(records: Vec<(&str, RunRecord)>) -> String {
        let e = merge(
            records
                .into_iter()
                .map(|(n, r)| (n.to_string(), r))
                .collect(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::BadInput, "{e}");
        e.to_string()
    }

    #[test]
    fn partitions_merge_in_the_order_a_whole_run_takes() {
        let m = merge(vec![
            ("p2".into(), record(Some((2, 2)), &["b"])),
            ("p1".into(), record(Some((1, 2)), &["c", "a"])),
        ])
        .unwrap();
        let names: Vec<&str> = m.reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(m.partition.is_none());
    }

    #[test]
    fn mismatched_runs_are_refused_with_what_differs() {
        let e = err(vec![("p1", record(Some((1, 2)), &["a"]))]);
        assert!(e.contains("count:2/2 missing"), "{e}");
        let e = err(vec![
            ("p1", record(Some((1, 2)), &["a"])),
            ("again", record(Some((1, 2)), &["b"])),
        ]);
        assert!(e.contains("given twice (again)"), "{e}");
        let e = err(vec![
            ("p1", record(Some((1, 2)), &["a"])),
            ("p2", record(Some((2, 3)), &["b"])),
        ]);
        assert!(e.contains("p2 is partition count:2/3"), "{e}");
        let mut other = record(Some((2, 2)), &["b"]);
        other.selected_from.push("d".into());
        let e = err(vec![("p1", record(Some((1, 2)), &["a"])), ("p2", other)]);
        assert!(e.contains("only in p2: [d]"), "{e}");
        let mut newer = record(Some((2, 2)), &["b"]);
        newer.drill_version = "9.9.9".into();
        let e = err(vec![("p1", record(Some((1, 2)), &["a"])), ("p2", newer)]);
        assert!(e.contains("drill 9.9.9"), "{e}");
        let e = err(vec![
            ("p1", record(None, &["a"])),
            ("p2", record(Some((2, 2)), &["b"])),
        ]);
        assert!(e.contains("whole run"), "{e}");
        let e = err(vec![
            ("x", record(None, &["a"])),
            ("y", record(None, &["a"])),
        ]);
        assert!(e.contains("y reports a on native again"), "{e}");
    }

    #[test]
    fn a_record_reads_back_whole_and_renders_the_same_reports() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record(None, &[]);
        r.reports = testdata::reports();
        r.write(dir.path()).unwrap();
        let back = RunRecord::read(dir.path()).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&r).unwrap()
        );
        let trends = [];
        assert_eq!(
            super::super::markdown::render(&back.reports, &trends),
            super::super::markdown::render(&r.reports, &trends)
        );
        assert_eq!(
            super::super::junit::render(&back.reports, &trends),
            super::super::junit::render(&r.reports, &trends)
        );
        assert_eq!(
            super::super::summary::table(&back.reports),
            super::super::summary::table(&r.reports)
        );
    }

    #[test]
    fn a_missing_or_foreign_record_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let e = RunRecord::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("has no run.json"), "{e}");
        std::fs::write(
            dir.path().join(FILE),
            "{\"format\": 7, \"drill_version\": \"9\"}",
        )
        .unwrap();
        let e = RunRecord::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("record format 7"), "{e}");
        std::fs::write(
            dir.path().join(FILE),
            "{\n\"format\": 1, \"drill_version\": 3}",
        )
        .unwrap();
        let e = RunRecord::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("run.json:2:"), "{e}");
    }
}
