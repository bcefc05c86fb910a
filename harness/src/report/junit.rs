//! `junit.xml`: one test suite per scenario and backend, holding one test
//! case; a failed drill carries every missed expectation and its evidence in
//! the failure. Measured RTO/RPO and targets are suite properties (the place
//! every JUnit reader accepts them). `tests/junit.xsd` in this crate is the
//! schema it is validated against.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::history::Trend;
use super::json::checks;
use crate::engine::{DrillReport, Verdict};

/// Renders the JUnit XML.
pub(super) fn render(reports: &[DrillReport], trends: &[Trend]) -> String {
    let mut report = Report::new("drill");
    for r in reports {
        let mut suite = TestSuite::new(format!("drill.{}", r.name));
        let mut props: Vec<(String, String)> = vec![
            ("backend".into(), r.backend.clone()),
            ("flavour".into(), r.flavour.clone()),
            ("seed".into(), r.seed.to_string()),
            ("run_id".into(), r.run_id.clone()),
            (
                "rto_target_seconds".into(),
                format!("{:.3}", r.rto_target.as_secs_f64()),
            ),
        ];
        match r.main_recovery().and_then(|m| m.rpo.as_ref()) {
            Some(m) => props.push((
                "rpo_seconds".into(),
                format!("{:.3}", m.window.as_secs_f64()),
            )),
            None => props.push(("rpo_seconds".into(), "not measured".into())),
        }
        if let Some(t) = r.rpo_target {
            props.push((
                "rpo_target_seconds".into(),
                format!("{:.3}", t.as_secs_f64()),
            ));
        }
        if let Some(rto) = r.main_recovery().and_then(|m| m.rto) {
            props.push(("rto_seconds".into(), format!("{:.3}", rto.as_secs_f64())));
        }
        if let Some(m) = r.main_recovery() {
            for s in &m.rto_per_service {
                if let Some(rto) = s.rto {
                    props.push((
                        format!("rto_seconds_{}", s.service),
                        format!("{:.3}", rto.as_secs_f64()),
                    ));
                }
            }
            for s in &m.rpo_per_service {
                props.push((
                    format!("rpo_seconds_{}", s.service),
                    format!("{:.3}", s.measurement.window.as_secs_f64()),
                ));
            }
        }
        for s in &r.servers {
            props.push((format!("{}_version", s.service), s.version.clone()));
            props.push((format!("{}_source", s.service), s.source.clone()));
        }
        let trend = trends
            .iter()
            .find(|t| t.scenario == r.name && t.backend == r.backend);
        if let Some(t) = trend {
            props.push(("rto_trend".into(), t.note.clone()));
        }
        suite.add_properties(props);

        let gate_tripped = trend.is_some_and(|t| t.tripped);
        let status = if r.verdict == Verdict::Pass && !gate_tripped {
            TestCaseStatus::success()
        } else {
            let mut lines = Vec::new();
            for c in checks(r).iter().filter(|c| !c.ok) {
                lines.push(format!(
                    "{}: expected {}, got {}",
                    c.name, c.expected, c.actual
                ));
                if let Some(e) = &c.evidence {
                    lines.extend(e.lines().map(|l| format!("    {l}")));
                }
            }
            if let Some(t) = trend.filter(|t| t.tripped) {
                lines.push(t.note.clone());
            }
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let headline = if r.verdict == Verdict::Fail {
                "expectations missed"
            } else {
                "RTO regression gate tripped"
            };
            s.set_message(format!("{}: {headline}", r.name))
                .set_type(headline)
                .set_description(lines.join("\n"));
            s
        };
        let mut case = TestCase::new(format!("{} [{}]", r.name, r.backend), status);
        case.set_classname(format!("drill.{}", r.name));
        let total: std::time::Duration = r.timeline.iter().map(|e| e.duration).sum();
        case.set_time(total);
        case.set_system_out(
            r.timeline
                .iter()
                .map(|e| {
                    format!(
                        "[{:>9.3}s] {} › {} ({:.3}s) {}",
                        e.start.as_secs_f64(),
                        e.phase,
                        e.step,
                        e.duration.as_secs_f64(),
                        e.detail
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        if !r.warnings.is_empty() {
            // Warnings fail nothing, but a CI viewer shows them.
            case.set_system_err(
                r.warnings
                    .iter()
                    .map(|w| {
                        let code = serde_json::to_value(w.code)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default();
                        format!("warning [{code}]: {} ({})", w.message, w.evidence)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        suite.set_time(total);
        suite.add_test_case(case);
        report.add_test_suite(suite);
    }
    report.to_string().expect("JUnit serialises")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::testdata::report;

    /// Validates against `tests/junit.xsd` with xmllint (installed by
    /// `cargo xtask test`), for a passing and a failing drill.
    #[test]
    fn validates_against_the_junit_schema() {
        let xml = render(
            &[report(Some(Duration::from_millis(1455))), report(None)],
            &[],
        );
        assert!(
            xml.contains(r#"<property name="rto_seconds" value="1.455"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains("sanitized/rows public.pairs: expected 34, got missing"),
            "{xml}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junit.xml");
        std::fs::write(&file, &xml).unwrap();
        let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit.xsd");
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", xsd])
            .arg(&file)
            .output()
            .expect("xmllint is needed for this test: apt-get install libxml2-utils (cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "junit.xml does not validate:\n{}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
