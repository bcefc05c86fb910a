//! The summary table a person reads at the end of a run: one row per
//! recovery, with the verdict, RTO against its target, rows and schema.

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::check::CheckKind;
use crate::engine::{DrillReport, Verdict};
use crate::vocab::fmt_duration;

/// Renders reports as a table that fits the terminal (`COLUMNS`, else the
/// terminal's width, else 160 columns): long cells wrap; summary.md keeps
/// every line whole.
pub fn table(reports: &[DrillReport]) -> String {
    let mut t = Table::new();
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
        .or_else(|| t.width())
        .unwrap_or(160);
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(vec![
            "scenario",
            "backend",
            "recovery",
            "expect",
            "result",
            "RTO (target)",
            "RPO (target)",
            "rows",
            "schema",
        ]);
    for r in reports {
        // The backend, then each server: what ran, from which image.
        let mut backend = r.backend.clone();
        for s in &r.servers {
            backend.push_str(&format!("\n{}\n{}", s.flavour, s.source));
        }
        for (i, rec) in r.recoveries.iter().enumerate() {
            let rows = super::rows_column(&rec.checks, "tables equal");
            // PostgreSQL's catalog and each ClickHouse table's columns and engine.
            let schemas: Vec<_> = rec
                .checks
                .iter()
                .filter(|c| c.kind == CheckKind::Schema)
                .collect();
            let schema = if schemas.is_empty() {
                "-".to_string()
            } else if schemas.iter().all(|c| c.ok) {
                "equal".to_string()
            } else {
                "DIFFERS".to_string()
            };
            let mut rto = match rec.rto {
                Some(d) => format!("{} ({})", fmt_duration(d), fmt_duration(r.rto_target)),
                None => format!("— ({})", fmt_duration(r.rto_target)),
            };
            // With several services, each one's own, then the total.
            for s in &rec.rto_per_service {
                rto.push_str(&format!(
                    "\n{} {}",
                    s.service,
                    s.rto.map_or("—".into(), fmt_duration)
                ));
            }
            let mut rpo = match (&rec.rpo, r.rpo_target) {
                (Some(m), t) => format!(
                    "{} ({}), {} lost",
                    fmt_duration(m.window),
                    t.map_or("–".into(), fmt_duration),
                    m.lost
                ),
                (None, _) => "–".into(),
            };
            for s in &rec.rpo_per_service {
                rpo.push_str(&format!(
                    "\n{} {}, {} lost",
                    s.service,
                    fmt_duration(s.measurement.window),
                    s.measurement.lost
                ));
            }
            let result = if rec.met_expectation {
                Cell::new(&rec.summary).fg(Color::Green)
            } else {
                Cell::new(&rec.summary).fg(Color::Red)
            };
            let name = if i == 0 {
                let v = if r.verdict == Verdict::Pass {
                    "PASS"
                } else {
                    "FAIL"
                };
                Cell::new(format!("{} {v}", r.name)).fg(if r.verdict == Verdict::Pass {
                    Color::Green
                } else {
                    Color::Red
                })
            } else {
                Cell::new("")
            };
            t.add_row(vec![
                name,
                Cell::new(if i == 0 {
                    backend.clone()
                } else {
                    String::new()
                }),
                Cell::new(&rec.name),
                Cell::new(rec.expect),
                result,
                Cell::new(rto),
                Cell::new(rpo),
                Cell::new(&rows),
                Cell::new(schema),
            ]);
        }
    }
    // Where the width runs short, the result column keeps the most.
    use comfy_table::{ColumnConstraint, Width};
    // The scenario and its verdict stay on one line, to be found by grep.
    if let Some(c) = t.column_mut(0) {
        c.set_constraint(ColumnConstraint::ContentWidth);
    }
    for (i, most) in [(1, 30), (2, 24), (5, 22), (6, 26), (7, 22)] {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(ColumnConstraint::UpperBoundary(Width::Fixed(most)));
        }
    }
    if let Some(c) = t.column_mut(4) {
        c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
            width.saturating_sub(120).max(24),
        )));
    }
    t.to_string()
}
