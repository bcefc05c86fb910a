//! Checks compare a baseline with a measurement and return a verdict with
//! evidence. They are pure functions: they never touch a server. This file
//! holds PostgreSQL's and the shared ones (RTO, RPO); [`redis`] and
//! [`clickhouse`] hold theirs.

pub mod clickhouse;
pub mod redis;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::postgres::snapshot::Fingerprint;

/// One expectation, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckResult {
    /// e.g. `rows public.ticks`, `schema`, `rto`.
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
    /// Why it failed: a diff, missing keys, the error text.
    pub evidence: Option<String>,
}

/// One check per table of the baseline: the count must be equal. A table
/// that no longer exists is reported as `missing`.
pub fn rows(before: &BTreeMap<String, i64>, now: &BTreeMap<String, i64>) -> Vec<CheckResult> {
    before
        .iter()
        .map(|(table, &want)| {
            let got = now.get(table);
            CheckResult {
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
    expected: &BTreeMap<String, crate::scenario::RowCount>,
    now: &BTreeMap<String, i64>,
) -> Vec<CheckResult> {
    use crate::scenario::RowCount;
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
        name: "schema".into(),
        expected: describe(before),
        actual: describe(now),
        ok: diff.is_empty(),
        evidence,
    }
}

/// Recovery time against the objective. `measured` is None when the checks
/// never turned green.
pub fn rto(measured: Option<Duration>, target: Duration) -> CheckResult {
    CheckResult {
        name: "rto".into(),
        expected: format!("<= {}", fmt_duration(target)),
        actual: measured.map_or("not recovered".into(), fmt_duration),
        ok: measured.is_some_and(|m| m <= target),
        evidence: match measured {
            None => Some("the data checks never turned green".into()),
            Some(m) if m > target => {
                Some(format!("{} over the objective", fmt_duration(m - target)))
            }
            _ => None,
        },
    }
}

/// The data-loss window against the objective, with the lost writes as
/// evidence.
pub fn rpo(
    service: crate::backend::ServiceKind,
    m: &crate::workload::RpoMeasurement,
    target: Duration,
) -> CheckResult {
    CheckResult {
        name: format!("rpo {service}"),
        expected: format!("<= {}", fmt_duration(target)),
        actual: format!(
            "{} ({} of {} acknowledged writes lost)",
            fmt_duration(m.window),
            m.lost,
            m.acknowledged
        ),
        ok: m.window <= target,
        evidence: (m.lost > 0).then(|| {
            format!(
                "oldest lost writes (time symbol): {}",
                m.lost_sample.join(", ")
            )
        }),
    }
}

/// Referential integrity: at most `max` child rows without a parent, per
/// foreign key of the baseline; the evidence names each orphan key and its
/// count (seed 002: TRUMP, ICP, NEAR, STRK).
pub fn fk_orphans(measured: &[crate::postgres::snapshot::Orphans], max: u64) -> Vec<CheckResult> {
    measured
        .iter()
        .map(|o| {
            let total: i64 = o.keys.iter().map(|(_, n)| n).sum();
            CheckResult {
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

/// A probe: SQL that must return true.
pub fn probe(sql: &str, answer: &Result<bool, String>) -> CheckResult {
    CheckResult {
        name: format!("probe {sql}"),
        expected: "true".into(),
        actual: match answer {
            Ok(b) => b.to_string(),
            Err(e) => format!("error: {e}"),
        },
        ok: matches!(answer, Ok(true)),
        evidence: answer.as_ref().err().cloned(),
    }
}

/// `1.234s`, `2m 03.456s`: milliseconds, always.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 60_000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else {
        format!(
            "{}m {:02}.{:03}s",
            ms / 60_000,
            ms % 60_000 / 1000,
            ms % 1000
        )
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

    #[test]
    fn rto_is_judged_to_the_millisecond() {
        let t = Duration::from_secs(60);
        assert!(rto(Some(Duration::from_millis(60_000)), t).ok);
        let late = rto(Some(Duration::from_millis(60_001)), t);
        assert!(!late.ok);
        assert_eq!(late.evidence.as_deref(), Some("0.001s over the objective"));
        assert_eq!(rto(None, t).actual, "not recovered");
        assert_eq!(fmt_duration(Duration::from_millis(123_456)), "2m 03.456s");
    }
}
