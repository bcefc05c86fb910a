//! `trend.svg`: each scenario's RTO (and RPO, where measured) over its
//! recent runs in the history, one panel per scenario and backend, with the
//! RTO target as a line and the gate's band (from the median of the passing
//! runs to the limit the gate allows above it) shaded, so a nightly summary
//! shows at a glance what is drifting towards its target. Failed runs are
//! red dots at the top of their panel (no RTO to draw).

use std::fmt::Write as _;

use super::history::{GatePolicy, HistoryEntry};
use crate::engine::DrillReport;

/// Runs per panel.
pub const RUNS: usize = 30;

const W: f64 = 720.0;
const PANEL: f64 = 150.0;
const PAD: f64 = 48.0;

/// The picture; one panel per report, its runs from `history` (oldest
/// first, this run included).
pub fn render(reports: &[DrillReport], history: &[HistoryEntry], policy: &GatePolicy) -> String {
    let h = PAD + reports.len() as f64 * (PANEL + PAD);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{PAD}\" y=\"22\" font-size=\"14\">RTO (blue) and RPO (green) over the last {RUNS} runs; target dashed, gate band shaded</text>\n"
    );
    for (i, r) in reports.iter().enumerate() {
        let top = PAD + i as f64 * (PANEL + PAD);
        let runs: Vec<&HistoryEntry> = history
            .iter()
            .filter(|e| e.scenario == r.name && e.backend == r.backend)
            .collect();
        let runs = &runs[runs.len().saturating_sub(RUNS)..];
        panel(&mut svg, r, runs, policy, top);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Writes `dir/trend.svg` ([`render`]).
pub fn write(
    dir: &std::path::Path,
    reports: &[DrillReport],
    history: &[HistoryEntry],
    policy: &GatePolicy,
) -> crate::Result<std::path::PathBuf> {
    let path = dir.join("trend.svg");
    std::fs::write(&path, render(reports, history, policy))
        .map_err(crate::Error::io("write", &path))?;
    Ok(path)
}

fn panel(svg: &mut String, r: &DrillReport, runs: &[&HistoryEntry], policy: &GatePolicy, top: f64) {
    let ms = |e: &HistoryEntry| e.rto_ms.map(|v| v as f64);
    let passing: Vec<f64> = runs
        .iter()
        .filter(|e| e.verdict == "pass")
        .filter_map(|e| ms(e))
        .collect();
    let target = r.rto_target.as_secs_f64() * 1e3;
    let median = (!passing.is_empty()).then(|| super::history::median(passing.clone()));
    let limit =
        median.map(|m| (m * (1.0 + policy.margin)).max(m + policy.slack.as_secs_f64() * 1e3));
    let top_value = runs
        .iter()
        .filter_map(|e| {
            ms(e)
                .into_iter()
                .chain(e.rpo_ms.map(|v| v as f64))
                .reduce(f64::max)
        })
        .chain(limit)
        .fold(target.min(1.0), f64::max)
        .max(1.0)
        // The target line is drawn when it is within 3x of the runs.
        .max(if passing.iter().any(|&p| target < p * 3.0) {
            target
        } else {
            0.0
        })
        * 1.1;
    let n = runs.len().max(2) as f64;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1.0);
    let y = |v: f64| top + PANEL - PANEL * (v / top_value).min(1.0);
    let _ = writeln!(
        svg,
        "<text x=\"{PAD}\" y=\"{:.1}\" font-size=\"12\">{} [{}]: {} runs</text>\n\
         <line x1=\"{PAD}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>",
        top - 6.0,
        esc(&r.name),
        esc(&r.backend),
        runs.len(),
        top + PANEL,
        W - PAD,
        top + PANEL,
        PAD - 4.0,
        top + 8.0,
        crate::vocab::fmt_duration(std::time::Duration::from_millis((top_value / 1.1) as u64)),
        PAD - 4.0,
        top + PANEL,
    );
    if let (Some(m), Some(l)) = (median, limit) {
        let _ = writeln!(
            svg,
            "<rect x=\"{PAD}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fff3cd\"><title>gate band: median {} to limit {}</title></rect>",
            y(l),
            W - 2.0 * PAD,
            (y(m) - y(l)).max(0.5),
            crate::vocab::fmt_duration(std::time::Duration::from_millis(m as u64)),
            crate::vocab::fmt_duration(std::time::Duration::from_millis(l as u64)),
        );
    }
    if target <= top_value {
        let _ = writeln!(
            svg,
            "<line x1=\"{PAD}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c62828\" stroke-dasharray=\"6 4\"><title>RTO target {}</title></line>",
            y(target),
            W - PAD,
            y(target),
            crate::vocab::fmt_duration(r.rto_target),
        );
    }
    for (values, colour) in [
        (runs.iter().map(|e| ms(e)).collect::<Vec<_>>(), "#1565c0"),
        (
            runs.iter().map(|e| e.rpo_ms.map(|v| v as f64)).collect(),
            "#2e7d32",
        ),
    ] {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        if points.len() > 1 {
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                    x(i),
                    y(*v)
                );
            }
        }
    }
    for (i, e) in runs.iter().enumerate() {
        if e.verdict != "pass" {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#c62828\"><title>run {} failed</title></circle>",
                x(i),
                top + 4.0,
                esc(&e.run_id)
            );
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::report;

    #[test]
    fn the_picture_has_each_run_the_target_and_the_band_and_parses() {
        let r = report(Some(std::time::Duration::from_millis(1455)));
        let mut history: Vec<HistoryEntry> = [1000, 1100, 900, 1050, 1455]
            .iter()
            .enumerate()
            .map(|(i, &ms)| HistoryEntry {
                run_id: format!("r{i}"),
                scenario: r.name.clone(),
                backend: r.backend.clone(),
                verdict: "pass".into(),
                rto_ms: Some(ms),
                rpo_ms: Some(200 + i as u64),
                ..HistoryEntry::default()
            })
            .collect();
        history[2].verdict = "fail".into();
        let svg = render(std::slice::from_ref(&r), &history, &GatePolicy::default());
        assert_eq!(
            svg.matches("fill=\"#1565c0\"").count(),
            5,
            "one dot per RTO"
        );
        assert_eq!(
            svg.matches("fill=\"#2e7d32\"").count(),
            5,
            "one dot per RPO"
        );
        assert!(svg.contains("run r2 failed"));
        assert!(svg.contains("gate band: median"));
        // Well-formed, as the renderer the timeline pictures use reads it.
        resvg::usvg::Tree::from_str(&svg, &resvg::usvg::Options::default()).expect("valid SVG");
    }
}
