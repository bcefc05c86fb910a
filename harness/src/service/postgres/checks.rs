//! PostgreSQL's checks: row counts, content checksums, the catalog
//! fingerprint, foreign-key orphans and probes, each a pure comparison of
//! the baseline with a measurement (see [`crate::check`]).

use std::collections::BTreeMap;

use super::snapshot::{Fingerprint, Orphans, Snapshot};
use super::timescale::{TsState, diff as ts_diff};
use crate::Result;
use crate::check::{CheckKind, CheckResult};
use crate::scenario::RowCount;

/// One check per table of the baseline: the count must be equal. A table
/// that no longer exists is reported as `missing`.
pub fn rows(before: &BTreeMap<String, i64>, now: &BTreeMap<String, i64>) -> Vec<CheckResult> {
    before
        .iter()
        .map(|(table, &want)| {
            let got = now.get(table);
            CheckResult {
                kind: CheckKind::Rows,
                name: format!("rows {table}"),
                expected: want.to_string(),
                actual: got.map_or("missing".into(), |n| n.to_string()),
                ok: got == Some(&want),
                evidence: match got {
                    None => Some(format!("relation \"{table}\" does not exist")),
                    Some(&n) if n != want => Some(format!(
                        "{} rows {}",
                        (want - n).abs(),
                        if n < want { "lost" } else { "extra" }
                    )),
                    _ => None,
                },
            }
        })
        .collect()
}

/// Row counts the scenario names: exact or at least.
pub fn table_rows(
    expected: &BTreeMap<String, RowCount>,
    now: &BTreeMap<String, i64>,
) -> Vec<CheckResult> {
    expected
        .iter()
        .map(|(table, want)| {
            let key = if table.contains('.') {
                table.clone()
            } else {
                format!("public.{table}")
            };
            let got = now.get(&key).copied();
            let (expected, ok) = match want {
                RowCount::Exactly(n) => (n.to_string(), got == Some(*n)),
                RowCount::AtLeast(n) => (format!(">= {n}"), got.is_some_and(|g| g >= *n)),
            };
            CheckResult {
                kind: CheckKind::Rows,
                name: format!("rows {key}"),
                expected,
                actual: got.map_or("missing".into(), |g| g.to_string()),
                ok,
                evidence: got
                    .is_none()
                    .then(|| format!("relation \"{key}\" does not exist")),
            }
        })
        .collect()
}

/// Tables whose row count came back right must also hold the same rows
/// (order-independent checksum); a table with the wrong count is already red
/// in [`rows`] and is not repeated here.
pub fn content(
    before_rows: &BTreeMap<String, i64>,
    before: &BTreeMap<String, String>,
    now_rows: &BTreeMap<String, i64>,
    now: &BTreeMap<String, String>,
) -> Vec<CheckResult> {
    before
        .iter()
        .filter(|(t, _)| before_rows.get(*t).is_some() && before_rows.get(*t) == now_rows.get(*t))
        .map(|(table, want)| {
            let got = now.get(table);
            let ok = got == Some(want);
            CheckResult {
                kind: CheckKind::Content,
                name: format!("content {table}"),
                expected: format!("checksum {}", short(want)),
                actual: got.map_or("missing".into(), |g| format!("checksum {}", short(g))),
                ok,
                evidence: (!ok).then(|| "same number of rows, different rows: some were lost and others added or changed".into()),
            }
        })
        .collect()
}

fn short(sum: &str) -> String {
    let n = sum.len();
    if n > 12 {
        format!("…{}", &sum[n - 12..])
    } else {
        sum.to_string()
    }
}

/// The schema fingerprint must equal the baseline's.
pub fn schema(before: &Fingerprint, now: &Fingerprint) -> CheckResult {
    let diff = before.diff(now);
    let describe = |f: &Fingerprint| format!("{} objects ({})", f.objects.len(), f.digest());
    let evidence = (!diff.is_empty()).then(|| {
        let rel = diff.missing_relations();
        let head = if rel.is_empty() {
            String::new()
        } else {
            format!("missing relations: {}\n", rel.join(", "))
        };
        format!("{head}{diff}")
    });
    CheckResult {
        kind: CheckKind::Schema,
        name: "schema".into(),
        expected: describe(before),
        actual: describe(now),
        ok: diff.is_empty(),
        evidence,
    }
}

/// Referential integrity: at most `max` child rows without a parent, per
/// foreign key of the baseline; the evidence names each orphan key and its
/// count (seed 002: TRUMP, ICP, NEAR, STRK).
pub fn fk_orphans(measured: &[Orphans], max: u64) -> Vec<CheckResult> {
    measured
        .iter()
        .map(|o| {
            let total: i64 = o.keys.iter().map(|(_, n)| n).sum();
            CheckResult {
                kind: CheckKind::FkOrphans,
                name: format!("fk orphans {}", o.foreign_key),
                expected: format!("<= {max}"),
                actual: format!("{total} rows in {} keys", o.keys.len()),
                ok: total as u64 <= max,
                evidence: (!o.keys.is_empty()).then(|| {
                    let shown: Vec<String> = o
                        .keys
                        .iter()
                        .take(20)
                        .map(|(k, n)| format!("{k}: {n}"))
                        .collect();
                    format!(
                        "child keys without a parent: {}{}",
                        shown.join(", "),
                        if o.keys.len() > 20 { ", ..." } else { "" }
                    )
                }),
            }
        })
        .collect()
}

/// TimescaleDB's state against the baseline's, in four checks
/// (hypertables and chunks, compression, continuous aggregates, jobs), each
/// with one line of evidence per difference.
pub fn timescaledb(before: &TsState, now: Option<&TsState>) -> Vec<CheckResult> {
    let d = ts_diff(before, now);
    let compressed = |s: &TsState| s.chunks.values().filter(|c| c.compressed).count();
    let stale = |s: &TsState| s.caggs.values().map(|c| c.stale_buckets).sum::<i64>();
    let now_or = |f: &dyn Fn(&TsState) -> String| now.map_or("no timescaledb".into(), f);
    let check = |name: &str, expected: String, actual: String, problems: Vec<String>| {
        CheckResult::new(
            CheckKind::TimescaleDb,
            name,
            expected,
            actual,
            problems.is_empty(),
            (!problems.is_empty()).then(|| problems.join("\n")),
        )
    };
    vec![
        check(
            "timescaledb hypertables",
            format!(
                "{} {} hypertables, {} chunks",
                before.version,
                before.hypertables.len(),
                before.chunks.len()
            ),
            now_or(&|s| {
                format!(
                    "{} {} hypertables, {} chunks",
                    s.version,
                    s.hypertables.len(),
                    s.chunks.len()
                )
            }),
            d.hypertables,
        ),
        check(
            "timescaledb compression",
            format!(">= {} chunks compressed", compressed(before)),
            now_or(&|s| {
                let (before, after) = s.hypertables.values().fold((0, 0), |(b, a), h| {
                    (
                        b + h.bytes_before_compression,
                        a + h.bytes_after_compression,
                    )
                });
                if before > 0 {
                    format!(
                        "{} chunks compressed ({} kB → {} kB)",
                        compressed(s),
                        before / 1024,
                        after / 1024
                    )
                } else {
                    format!("{} chunks compressed", compressed(s))
                }
            }),
            d.compression,
        ),
        check(
            "timescaledb continuous aggregates",
            format!("{} caggs, 0 buckets stale", before.caggs.len()),
            now_or(&|s| format!("{} caggs, {} buckets stale", s.caggs.len(), stale(s))),
            d.caggs,
        ),
        check(
            "timescaledb jobs",
            format!(
                "{} policies, scheduler {}",
                before.jobs.len(),
                if before.scheduler {
                    "running"
                } else {
                    "not required"
                }
            ),
            now_or(&|s| {
                format!(
                    "{} policies, scheduler {}",
                    s.jobs.len(),
                    if s.restoring {
                        "held (restoring)"
                    } else if s.scheduler {
                        "running"
                    } else {
                        "not running"
                    }
                )
            }),
            d.jobs,
        ),
    ]
}

/// TimescaleDB's checks for a restored backup, with no baseline to compare
/// with: what must hold of any restore (no aggregate stale, no database
/// left in restoring mode, the job scheduler running where there are
/// jobs), and the hypertables, chunks and compression as found.
pub fn timescaledb_restored(now: &TsState) -> Vec<CheckResult> {
    let mut want = now.clone();
    want.scheduler = !now.jobs.is_empty();
    want.restoring = false;
    for c in want.caggs.values_mut() {
        c.stale_buckets = 0;
    }
    timescaledb(&want, Some(now))
}

/// A probe: SQL that must return true.
pub fn probe(sql: &str, answer: &Result<bool>) -> CheckResult {
    CheckResult {
        kind: CheckKind::Probe,
        name: format!("probe {sql}"),
        expected: "true".into(),
        actual: match answer {
            Ok(b) => b.to_string(),
            Err(e) => format!("error: {e}"),
        },
        ok: matches!(answer, Ok(true)),
        evidence: answer.as_ref().err().map(ToString::to_string),
    }
}

/// With a workload, `ticks` holds the writer's rows too (from
/// 2026-01-01), which the RPO judges: its row and content checks are
/// replaced by checks of the fixture's rows only (`fixture`: their count
/// and checksum now), which must all be back, exactly.
pub fn fixture_rows_only(
    baseline: &Snapshot,
    fixture: Option<(i64, String)>,
    rows: &mut [CheckResult],
    content: &mut Vec<CheckResult>,
) {
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
        let same = *sum == want_sum;
        content.push(CheckResult::new(
            CheckKind::Content,
            "content public.ticks (fixture rows)",
            "the checksum before the fault",
            if same { "the same" } else { "different" },
            same,
            (!same).then(|| "same number of fixture rows, different rows".into()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_lost_and_missing_tables() {
        let before: BTreeMap<_, _> = [
            ("public.pairs".to_string(), 34),
            ("public.ticks".to_string(), 100),
        ]
        .into();
        let now: BTreeMap<_, _> = [("public.ticks".to_string(), 0)].into();
        let r = rows(&before, &now);
        assert_eq!(r[0].actual, "missing");
        assert_eq!(
            r[0].evidence.as_deref(),
            Some("relation \"public.pairs\" does not exist")
        );
        assert_eq!(r[1].evidence.as_deref(), Some("100 rows lost"));
        assert!(rows(&before, &before).iter().all(|c| c.ok));
    }
}
