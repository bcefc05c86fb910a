//! A finished drill report to feed the report writers in unit tests.

use std::time::Duration;

use crate::check::{self, CheckResult};
use crate::engine::{DrillReport, RecoveryReport, TimelineEntry, Verdict};

fn entry(phase: &str, step: &str, start_ms: u64, ms: u64, ok: bool) -> TimelineEntry {
    TimelineEntry {
        phase: phase.into(),
        step: step.into(),
        start: Duration::from_millis(start_ms),
        duration: Duration::from_millis(ms),
        ok,
        detail: format!("{step} <detail & \"quotes\">"),
    }
}

/// The verbose-dump drill, recovered in `rto` (or not, when None).
pub(crate) fn report(rto: Option<Duration>) -> DrillReport {
    let rows_ok = CheckResult {
        name: "rows public.ticks".into(),
        expected: "20000".into(),
        actual: "20000".into(),
        ok: true,
        evidence: None,
    };
    let rows_lost = CheckResult {
        name: "rows public.pairs".into(),
        expected: "34".into(),
        actual: "missing".into(),
        ok: false,
        evidence: Some("relation \"public.pairs\" does not exist".into()),
    };
    let target = Duration::from_secs(120);
    let naive = RecoveryReport {
        name: "naive".into(),
        expect: "fails".into(),
        recovered: false,
        rto: None,
        rpo: None,
        rto_per_service: Vec::new(),
        rpo_per_service: Vec::new(),
        checks: vec![rows_lost.clone(), check::rto(None, target)],
        errors: vec!["ERROR:  syntax error at or near \"pg_dump\"".into()],
        met_expectation: true,
        summary: "incident reproduced: 1 tables missing".into(),
    };
    let fixed = RecoveryReport {
        name: "sanitized".into(),
        expect: "recovers".into(),
        recovered: rto.is_some(),
        rto,
        rpo: None,
        rto_per_service: Vec::new(),
        rpo_per_service: Vec::new(),
        checks: vec![
            if rto.is_some() { rows_ok } else { rows_lost },
            check::rto(rto, target),
        ],
        errors: vec![],
        met_expectation: rto.is_some_and(|r| r <= target),
        summary: match rto {
            Some(r) => format!("recovered in {}", check::fmt_duration(r)),
            None => "NOT recovered: 1 tables missing".into(),
        },
    };
    let verdict = if naive.met_expectation && fixed.met_expectation {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let rto_ms = rto.map_or(900, |r| r.as_millis() as u64);
    DrillReport {
        name: "verbose-dump".into(),
        description: "pg_dump --verbose <merged> & restored".into(),
        file: "scenarios/verbose-dump.toml".into(),
        run_id: "0badc0de".into(),
        seed: 20251114,
        backend: "native".into(),
        servers: Vec::new(),
        backups: Vec::new(),
        flavour: "postgres".into(),
        rto_target: target,
        rpo_target: None,
        baseline_rows: [("public.ticks".to_string(), 20000)].into(),
        backup: None,
        recoveries: vec![naive, fixed],
        verdict,
        timeline: vec![
            entry("setup", "start postgres", 0, 700, true),
            entry("setup", "load fixture", 700, 500, true),
            entry("backup", "pg_dump", 1200, 150, true),
            entry("recovery naive", "fault: wipe", 1350, 800, true),
            entry("recovery naive", "psql-restore", 2150, 70, true),
            entry("recovery naive", "checks", 2220, 20, false),
            entry("recovery sanitized", "fault: wipe", 2240, 800, true),
            entry(
                "recovery sanitized",
                "psql-restore (sanitized)",
                3040,
                rto_ms.saturating_sub(830),
                rto.is_some(),
            ),
            entry(
                "recovery sanitized",
                "checks",
                3040 + rto_ms.saturating_sub(830),
                30,
                rto.is_some(),
            ),
        ],
        warnings: vec![],
        kept: vec![],
    }
}
