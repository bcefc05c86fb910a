//! `metrics.prom`: Prometheus text exposition format, for users who scrape
//! drill results (e.g. through node_exporter's textfile collector).

use std::fmt::Write;

use crate::engine::{DrillReport, Verdict};

/// Renders drill_rto_seconds, drill_rto_target_seconds, drill_rpo_seconds
/// and drill_verdict (1 pass, 0 fail) per scenario and backend.
pub fn render(reports: &[DrillReport]) -> String {
    let mut out = String::new();
    let metrics: [(&str, &str, &str); 4] = [
        (
            "drill_rto_seconds",
            "gauge",
            "Measured recovery time of the drill's corrected recovery (absent when it did not recover).",
        ),
        (
            "drill_rto_target_seconds",
            "gauge",
            "Recovery time objective of the drill.",
        ),
        (
            "drill_rpo_seconds",
            "gauge",
            "Measured data-loss window (absent when not measured).",
        ),
        (
            "drill_verdict",
            "gauge",
            "1 when every expectation of the drill was met, else 0.",
        ),
    ];
    for (name, kind, help) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in reports {
            let labels = format!(
                "scenario=\"{}\",backend=\"{}\"",
                esc(&r.name),
                esc(&r.backend)
            );
            let value = match name {
                "drill_rto_seconds" => r
                    .main_recovery()
                    .and_then(|m| m.rto)
                    .map(|d| d.as_secs_f64()),
                "drill_rto_target_seconds" => Some(r.rto_target.as_secs_f64()),
                "drill_rpo_seconds" => r
                    .main_recovery()
                    .and_then(|m| m.rpo.as_ref())
                    .map(|m| m.window.as_secs_f64()),
                _ => Some(if r.verdict == Verdict::Pass { 1.0 } else { 0.0 }),
            };
            if let Some(v) = value {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_lines() {
        let text = super::render(&[crate::report::testdata::report(Some(
            std::time::Duration::from_millis(1500),
        ))]);
        assert!(
            text.contains("drill_rto_seconds{scenario=\"verbose-dump\",backend=\"native\"} 1.5\n"),
            "{text}"
        );
        assert!(text.contains("drill_verdict{scenario=\"verbose-dump\",backend=\"native\"} 1\n"));
        assert!(
            !text.contains("drill_rpo_seconds{"),
            "no RPO sample when not measured"
        );
    }
}
