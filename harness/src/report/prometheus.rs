//! `metrics.prom`: Prometheus text exposition format, for users who scrape
//! drill results (e.g. through node_exporter's textfile collector).

use std::fmt::Write;

use crate::engine::{DrillReport, Verdict};

/// Renders drill_rto_seconds, drill_rto_target_seconds, drill_rpo_seconds
/// and drill_verdict (1 pass, 0 fail) per scenario and backend.
pub(super) fn render(reports: &[DrillReport]) -> String {
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
    // Per service, for drills of several services: each family in one group.
    let (mut rto, mut rpo) = (String::new(), String::new());
    for r in reports {
        let Some(m) = r.main_recovery() else { continue };
        let labels = |service: &crate::vocab::ServiceKind| {
            format!(
                "scenario=\"{}\",backend=\"{}\",service=\"{service}\"",
                esc(&r.name),
                esc(&r.backend)
            )
        };
        for s in &m.rto_per_service {
            if let Some(d) = s.rto {
                let _ = writeln!(
                    rto,
                    "drill_service_rto_seconds{{{}}} {}",
                    labels(&s.service),
                    d.as_secs_f64()
                );
            }
        }
        for s in &m.rpo_per_service {
            let _ = writeln!(
                rpo,
                "drill_service_rpo_seconds{{{}}} {}",
                labels(&s.service),
                s.measurement.window.as_secs_f64()
            );
        }
    }
    if !rto.is_empty() {
        out.push_str("# HELP drill_service_rto_seconds Recovery time of one service: the fault to its checks green.\n# TYPE drill_service_rto_seconds gauge\n");
        out.push_str(&rto);
    }
    if !rpo.is_empty() {
        out.push_str("# HELP drill_service_rpo_seconds Data-loss window of one service against the same fault.\n# TYPE drill_service_rpo_seconds gauge\n");
        out.push_str(&rpo);
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
    use crate::engine::{ServiceRpo, ServiceRto};
    use crate::vocab::ServiceKind;
    use std::time::Duration;

    #[test]
    fn services_get_their_own_grouped_families() {
        let mut r = crate::report::testdata::report(Some(Duration::from_millis(3000)));
        let main = r
            .recoveries
            .iter_mut()
            .find(|x| x.expect == crate::scenario::RecoveryExpect::Recovers)
            .unwrap();
        main.rto_per_service = vec![
            ServiceRto {
                service: ServiceKind::Postgres,
                rto: Some(Duration::from_millis(1000)),
            },
            ServiceRto {
                service: ServiceKind::Redis,
                rto: Some(Duration::from_millis(3000)),
            },
        ];
        main.rpo_per_service = vec![ServiceRpo {
            service: ServiceKind::Redis,
            measurement: crate::workload::RpoMeasurement {
                acknowledged: 10,
                lost: 2,
                window: Duration::from_millis(250),
                lost_sample: vec![],
                pitr: None,
                replication: None,
            },
        }];
        let text = super::render(&[r]);
        assert!(text.contains("drill_service_rto_seconds{scenario=\"verbose-dump\",backend=\"native\",service=\"redis\"} 3\n"), "{text}");
        assert!(text.contains("drill_service_rpo_seconds{scenario=\"verbose-dump\",backend=\"native\",service=\"redis\"} 0.25\n"), "{text}");
        // One group per family: a family's samples follow its TYPE line.
        let rto_at = text.find("# TYPE drill_service_rto_seconds").unwrap();
        let rpo_at = text.find("# TYPE drill_service_rpo_seconds").unwrap();
        let last_rto_sample = text.rfind("drill_service_rto_seconds{").unwrap();
        assert!(
            rto_at < last_rto_sample && last_rto_sample < rpo_at,
            "{text}"
        );
    }

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
