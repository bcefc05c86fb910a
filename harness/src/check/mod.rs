//! Checks compare a baseline with a measurement and return a verdict with
//! evidence. They are pure functions: they never touch a server. This file
//! holds the result type, the kinds of check, and the checks every service
//! shares (RTO, RPO); each service's own checks live with the service
//! (`service/<engine>/checks.rs`).
//!
//! **Architecture Invariant:** nothing here talks to a server or knows where
//! one runs: `check/` imports no backend and no service.

use std::time::Duration;

use crate::vocab::{ServiceKind, fmt_duration};
use crate::workload::RpoMeasurement;

/// What a check compares. Reports group and count checks by their kind,
/// never by parsing their names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A table's row count (PostgreSQL, ClickHouse).
    Rows,
    /// A table's order-independent content checksum.
    Content,
    /// The catalog fingerprint, or a ClickHouse table's columns and engine.
    Schema,
    /// A table that must exist.
    Table,
    /// A table that must hold at least so many rows (nothing compared with
    /// a baseline).
    MinRows,
    /// Rows whose foreign-key parent is missing.
    FkOrphans,
    /// SQL that must return true.
    Probe,
    /// Redis keys against the baseline (or the predicted loss).
    Keys,
    /// A server setting or status read back (Redis INFO persistence).
    Persistence,
    /// Data of one service against another's (Redis keys rebuilt from PostgreSQL).
    CrossCheck,
    /// The server is up and its data can be read.
    Answers,
    /// The backup chosen is whole (gzip, checksum, readable).
    BackupIntegrity,
    /// The backup holds nothing that would run on the restoring host.
    BackupSafety,
    /// TimescaleDB's own state: hypertables and chunks, compression,
    /// continuous aggregates, background jobs.
    TimescaleDb,
    /// An extension the backup needs is there, at its version.
    Extension,
    /// A recovery step ran to its end.
    Step,
    /// Data lost against the objective.
    Rpo,
    /// What a failover lost, against the replica's lag at the fault.
    Failover,
    /// Recovery time against the objective.
    Rto,
}

/// One expectation, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    /// What is compared (`name` says it to people).
    pub kind: CheckKind,
    /// e.g. `rows public.ticks`, `schema`, `rto`.
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
    /// Why it failed: a diff, missing keys, the error text.
    pub evidence: Option<String>,
}

impl CheckResult {
    /// A check of `kind` named `name`; `evidence` only when it failed.
    pub fn new(
        kind: CheckKind,
        name: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        ok: bool,
        evidence: Option<String>,
    ) -> CheckResult {
        CheckResult {
            kind,
            name: name.into(),
            expected: expected.into(),
            actual: actual.into(),
            ok,
            evidence,
        }
    }
}

/// Recovery time against the objective. `measured` is None when the checks
/// never turned green.
pub(crate) fn rto(measured: Option<Duration>, target: Duration) -> CheckResult {
    CheckResult {
        kind: CheckKind::Rto,
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
pub(crate) fn rpo(service: ServiceKind, m: &RpoMeasurement, target: Duration) -> CheckResult {
    CheckResult {
        kind: CheckKind::Rpo,
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
            let over = if m.window > target {
                format!("{} over the target; ", fmt_duration(m.window - target))
            } else {
                String::new()
            };
            format!(
                "{over}oldest lost writes (time symbol): {}",
                m.lost_sample.join(", ")
            )
        }),
    }
}

/// The ledger's verdict on a recovery to a target: green only with no
/// acknowledged write from before the target missing and no write from
/// after it back.
pub(crate) fn ledger(service: ServiceKind, m: &RpoMeasurement) -> CheckResult {
    let p = m.pitr.clone().unwrap_or_default();
    let mut evidence = Vec::new();
    if m.lost > 0 {
        evidence.push(format!(
            "acknowledged before the target but missing: {}",
            m.lost_sample.join(", ")
        ));
    }
    if p.unexpected > 0 {
        evidence.push(format!(
            "sent after the target (or the fault, when the target lies after it) but present: {}",
            p.unexpected_sample.join(", ")
        ));
    }
    CheckResult {
        kind: CheckKind::Rpo,
        name: format!("ledger {service} at {}", p.target),
        expected: "0 lost, 0 unexpected".into(),
        actual: format!(
            "{} lost, {} unexpected (in flight at the target: {} present, {} absent; RPO {})",
            m.lost,
            p.unexpected,
            p.in_flight_present,
            p.in_flight_absent,
            fmt_duration(m.window)
        ),
        ok: m.lost == 0 && p.unexpected == 0,
        evidence: (!evidence.is_empty()).then(|| evidence.join("\n")),
    }
}

/// How far the loss measured after a failover may stray from the lag read
/// at the fault: the two readings are a few statements apart, and a write
/// is acknowledged up to one interval after it was sent.
pub(crate) const FAILOVER_SLACK: Duration = Duration::from_millis(1_500);

/// What a failover lost, explained by the replica's lag at the fault: with
/// synchronous replication nothing acknowledged may be lost; otherwise the
/// oldest lost write may be no older than the replica's newest data (plus
/// [`FAILOVER_SLACK`]), and a replica that was a second or more behind
/// must have lost something (else the lag reading was wrong). Red means
/// the loss is not the replication's: something else lost data too.
pub(crate) fn failover(service: ServiceKind, m: &RpoMeasurement) -> CheckResult {
    let lag = m.replication.clone().unwrap_or_default();
    let (expected, ok) = if lag.synchronous {
        ("0 lost (synchronous replication)".to_string(), m.lost == 0)
    } else {
        let explained = m.window <= lag.behind + FAILOVER_SLACK;
        let visible = lag.behind < Duration::from_secs(1) || m.lost > 0;
        (
            format!(
                "loss window within the lag at the fault ({} + {} slack)",
                fmt_duration(lag.behind),
                fmt_duration(FAILOVER_SLACK)
            ),
            explained && visible,
        )
    };
    CheckResult {
        kind: CheckKind::Failover,
        name: format!("failover {service} vs replication lag"),
        expected,
        actual: format!(
            "{} lost over {}; the replica was {} ({} bytes of WAL) behind at the fault, {}",
            m.lost,
            fmt_duration(m.window),
            fmt_duration(lag.behind),
            lag.bytes,
            lag.state
        ),
        ok,
        evidence: Some(format!(
            "primary at {}, replica received {} and replayed {}",
            lag.primary_lsn, lag.received_lsn, lag.replayed_lsn
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_over(lost: usize, window_ms: u64, behind_ms: u64, synchronous: bool) -> CheckResult {
        let m = RpoMeasurement {
            acknowledged: 400,
            lost,
            window: Duration::from_millis(window_ms),
            lost_sample: vec![],
            pitr: None,
            replication: Some(crate::workload::ReplicationLag {
                bytes: if behind_ms > 0 { 48_000 } else { 0 },
                behind: Duration::from_millis(behind_ms),
                synchronous,
                ..Default::default()
            }),
        };
        failover(ServiceKind::Postgres, &m)
    }

    #[test]
    fn a_failover_loss_is_green_only_when_the_lag_explains_it() {
        // The replica was 1.1 s behind: about a second of writes lost.
        assert!(failed_over(100, 1_000, 1_100, false).ok);
        // Lost more than the lag explains: something else lost data.
        assert!(!failed_over(300, 3_000, 1_100, false).ok);
        // Seconds behind, nothing lost: the lag reading was wrong.
        assert!(!failed_over(0, 0, 2_000, false).ok);
        // Caught up: nothing (or a write in flight) lost.
        assert!(failed_over(0, 0, 0, false).ok);
        // Synchronous: any acknowledged write lost is red.
        assert!(failed_over(0, 0, 1_000, true).ok);
        assert!(!failed_over(1, 10, 1_000, true).ok);
    }

    #[test]
    fn rto_is_judged_to_the_millisecond() {
        let t = Duration::from_secs(60);
        assert!(rto(Some(Duration::from_millis(60_000)), t).ok);
        let late = rto(Some(Duration::from_millis(60_001)), t);
        assert!(!late.ok);
        assert_eq!(late.evidence.as_deref(), Some("0.001s over the objective"));
        assert_eq!(rto(None, t).actual, "not recovered");
    }
}
