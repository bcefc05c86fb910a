//! Snapshot tests of every report writer on the fixed reports of
//! [`super::testdata`]: the terminal table, summary.md, junit.xml,
//! report.json, metrics.prom and the timeline SVG. A change to what a CI
//! consumer or a person reads shows up as a snapshot diff; accept an
//! intended one with `cargo insta review` (or `INSTA_UPDATE=always`).

use super::history::{self, GatePolicy, HistoryEntry};
use super::testdata::reports;
use super::{json, junit, markdown, prometheus, summary, svg, timeline_text};
use crate::engine::DrillReport;

fn trends(reports: &[DrillReport]) -> Vec<history::Trend> {
    let past: Vec<HistoryEntry> = [1000, 1100, 900, 1050]
        .iter()
        .enumerate()
        .map(|(i, &ms)| HistoryEntry {
            time: i as u64,
            run_id: format!("r{i}"),
            scenario: "verbose-dump".into(),
            backend: "native".into(),
            verdict: "pass".into(),
            rto_ms: Some(ms),
            ..HistoryEntry::default()
        })
        .collect();
    history::judge(
        &reports[..1],
        &past,
        &GatePolicy {
            confirm: 1,
            ..GatePolicy::default()
        },
    )
}

#[test]
fn terminal_summary() {
    insta::assert_snapshot!(summary::table(&reports()));
}

#[test]
fn summary_md() {
    let r = reports();
    insta::assert_snapshot!(markdown::render(&r, &trends(&r)));
}

#[test]
fn junit_xml() {
    let r = reports();
    insta::assert_snapshot!(junit::render(&r, &trends(&r)));
}

#[test]
fn report_json() {
    let r = reports();
    insta::assert_snapshot!(
        serde_json::to_string_pretty(&json::document(&r, &trends(&r))).unwrap()
    );
}

#[test]
fn metrics_prom() {
    insta::assert_snapshot!(prometheus::render(&reports()));
}

#[test]
fn timeline_svg_and_text() {
    for (i, r) in reports().iter().enumerate() {
        insta::assert_snapshot!(format!("svg_{i}"), svg::render(r));
        insta::assert_snapshot!(format!("text_{i}"), timeline_text(r));
    }
}
