//! `report.json`: the machine-readable report. Per scenario: `name`,
//! `backend`, `verdict`, `rto_seconds`, `rpo_seconds` (null where not
//! measured), `checks` (`name`, `expected`, `actual`, `ok`, `evidence`), the
//! recoveries in detail, the timeline, and `warnings` (`code`, `message`,
//! `evidence`). Times are seconds (fractional).

use std::time::Duration;

use super::history::Trend;
use crate::engine::{DrillReport, Verdict};
use crate::scenario::RecoveryExpect;

/// The whole file.
#[derive(Debug, serde::Serialize)]
pub(super) struct JsonReport<'a> {
    /// Format version of this file; bumped on incompatible changes.
    pub format: u32,
    pub drill_version: &'static str,
    pub scenarios: Vec<JsonScenario<'a>>,
}

#[derive(Debug, serde::Serialize)]
pub(super) struct JsonScenario<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub file: String,
    pub run_id: &'a str,
    pub seed: u64,
    pub backend: &'a str,
    /// Every server with its service, backend, image (or binaries) and version.
    pub servers: &'a [crate::vocab::ServerInfo],
    pub flavour: &'a str,
    pub verdict: Verdict,
    /// The corrected recovery's RTO; null when it did not recover.
    pub rto_seconds: Option<f64>,
    pub rto_target_seconds: f64,
    /// Data-loss window measured from the workload's acknowledged writes;
    /// null when the scenario runs no workload.
    pub rpo_seconds: Option<f64>,
    pub rpo_target_seconds: Option<f64>,
    /// With several services: each one's RTO (null when it did not come
    /// back) and data-loss window, from the corrected recovery.
    pub rto_seconds_per_service: std::collections::BTreeMap<String, Option<f64>>,
    pub rpo_seconds_per_service: std::collections::BTreeMap<String, f64>,
    /// Redis's and ClickHouse's backups.
    pub backups: &'a [crate::engine::BackupRecord],
    /// Every check of every recovery, named `recovery/check`; a negative
    /// control contributes one check saying whether it reproduced the incident.
    pub checks: Vec<JsonCheck>,
    pub recoveries: &'a [crate::engine::RecoveryReport],
    pub timeline: Vec<JsonStep<'a>>,
    pub trend: Option<&'a Trend>,
    pub backup: Option<&'a crate::service::postgres::backup::Artifact>,
    /// What a CI job should know though the drill passed: `code`,
    /// `message`, `evidence` (e.g. `stderr-in-backup`, `fell-back`).
    pub warnings: &'a [crate::engine::Warning],
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(super) struct JsonCheck {
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
    pub evidence: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub(super) struct JsonStep<'a> {
    pub phase: String,
    pub step: &'a str,
    pub start_seconds: f64,
    pub duration_seconds: f64,
    pub ok: bool,
    pub detail: &'a str,
}

fn secs(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// Flattened checks of a report (also used by JUnit and Markdown).
pub(super) fn checks(r: &DrillReport) -> Vec<JsonCheck> {
    let mut out = Vec::new();
    for rec in &r.recoveries {
        if rec.expect == RecoveryExpect::Fails {
            out.push(JsonCheck {
                name: format!("{}/reproduces the incident", rec.name),
                expected: "the recovery fails (negative control)".into(),
                actual: rec.summary.clone(),
                ok: rec.met_expectation,
                evidence: rec.errors.first().cloned(),
            });
        } else {
            out.extend(rec.checks.iter().map(|c| JsonCheck {
                name: format!("{}/{}", rec.name, c.name),
                expected: c.expected.clone(),
                actual: c.actual.clone(),
                ok: c.ok,
                evidence: c.evidence.clone(),
            }));
        }
    }
    out
}

/// Builds the document.
pub(super) fn document<'a>(reports: &'a [DrillReport], trends: &'a [Trend]) -> JsonReport<'a> {
    JsonReport {
        format: 1,
        drill_version: env!("CARGO_PKG_VERSION"),
        scenarios: reports
            .iter()
            .map(|r| JsonScenario {
                name: &r.name,
                description: &r.description,
                file: r.file.display().to_string(),
                run_id: &r.run_id,
                seed: r.seed,
                backend: &r.backend,
                servers: &r.servers,
                flavour: &r.flavour,
                verdict: r.verdict,
                rto_seconds: r.main_recovery().and_then(|m| m.rto).map(secs),
                rto_target_seconds: secs(r.rto_target),
                rpo_seconds: r
                    .main_recovery()
                    .and_then(|m| m.rpo.as_ref())
                    .map(|m| secs(m.window)),
                rpo_target_seconds: r.rpo_target.map(secs),
                rto_seconds_per_service: r
                    .main_recovery()
                    .map(|m| {
                        m.rto_per_service
                            .iter()
                            .map(|s| (s.service.to_string(), s.rto.map(secs)))
                            .collect()
                    })
                    .unwrap_or_default(),
                rpo_seconds_per_service: r
                    .main_recovery()
                    .map(|m| {
                        m.rpo_per_service
                            .iter()
                            .map(|s| (s.service.to_string(), secs(s.measurement.window)))
                            .collect()
                    })
                    .unwrap_or_default(),
                backups: &r.backups,
                checks: checks(r),
                recoveries: &r.recoveries,
                timeline: r
                    .timeline
                    .iter()
                    .map(|e| JsonStep {
                        phase: e.phase.to_string(),
                        step: &e.step,
                        start_seconds: secs(e.start),
                        duration_seconds: secs(e.duration),
                        ok: e.ok,
                        detail: &e.detail,
                    })
                    .collect(),
                trend: trends
                    .iter()
                    .find(|t| t.scenario == r.name && t.backend == r.backend),
                backup: r.backup.as_ref(),
                warnings: &r.warnings,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::report;

    #[test]
    fn has_the_fields_ci_consumers_read() {
        let reports = [report(Some(Duration::from_millis(1455)))];
        let v = serde_json::to_value(document(&reports, &[])).unwrap();
        let s = &v["scenarios"][0];
        assert_eq!(s["name"], "verbose-dump");
        assert_eq!(s["backend"], "native");
        assert_eq!(s["verdict"], "pass");
        assert_eq!(s["rto_seconds"], 1.455);
        assert!(s["rpo_seconds"].is_null());
        let c = &s["checks"][0];
        assert_eq!(c["name"], "naive/reproduces the incident");
        for k in ["name", "expected", "actual", "ok"] {
            assert!(!c[k].is_null(), "check lacks {k}");
        }
        assert_eq!(s["timeline"][0]["step"], "start postgres");
    }
}
