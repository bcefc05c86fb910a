//! `summary.md`: the summary table for a person, in Markdown (for CI job
//! summaries and pull requests), with each red check and the RTO trend.

use std::fmt::Write;

use super::history::Trend;
use super::json::checks;
use crate::check::CheckKind;
use crate::engine::{DrillReport, Verdict};
use crate::vocab::fmt_duration;

/// Renders the Markdown summary.
pub(super) fn render(reports: &[DrillReport], trends: &[Trend]) -> String {
    let mut md = String::from("## drill results\n\n");
    md.push_str("| scenario | backend | verdict | RTO | target | RPO | trend | rows | schema |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let main = r.main_recovery();
        let rto = main
            .and_then(|m| m.rto)
            .map_or("not recovered".into(), fmt_duration);
        let trend = trends
            .iter()
            .find(|t| t.scenario == r.name && t.backend == r.backend);
        let trend_cell = match trend {
            Some(t) if t.tripped => format!("🔴 {}", t.note),
            Some(t) => t.note.clone(),
            None => "–".into(),
        };
        let rows = main.map_or("–".into(), |m| super::rows_column(&m.checks, "equal"));
        let schema = main
            .map(|m| {
                m.checks
                    .iter()
                    .filter(|c| c.kind == CheckKind::Schema)
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .map_or("–", |s| {
                if s.iter().all(|c| c.ok) {
                    "equal"
                } else {
                    "differs"
                }
            });
        let verdict = if r.verdict == Verdict::Pass {
            "✅ pass"
        } else {
            "❌ fail"
        };
        let rpo = main.and_then(|m| m.rpo.as_ref()).map_or("–".into(), |m| {
            format!("{} ({} lost)", fmt_duration(m.window), m.lost)
        });
        let _ = writeln!(
            md,
            "| {} | {} | {verdict} | {rto} | {} | {rpo} | {} | {rows} | {schema} |",
            cell(&r.name),
            cell(&r.runs_on()),
            fmt_duration(r.rto_target),
            cell(&trend_cell)
        );
    }
    for r in reports {
        if let Some(c) = super::compose_text(r) {
            let _ = writeln!(
                md,
                "\n<details><summary>{}</summary>\n\n```\n{c}\n```\n</details>",
                cell(&format!(
                    "{}: services from {}",
                    r.name,
                    r.compose
                        .as_ref()
                        .map(|c| c.file.display().to_string())
                        .unwrap_or_default()
                ))
            );
        }
        for w in &r.warnings {
            let _ = writeln!(
                md,
                "\n> ⚠ **{}**: {}",
                cell(&r.name),
                w.message.replace('\n', " ")
            );
        }
        let red: Vec<_> = checks(r).into_iter().filter(|c| !c.ok).collect();
        if red.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n### {} — missed expectations\n", r.name);
        for c in red {
            let _ = writeln!(
                md,
                "- **{}**: expected {}, got {}",
                cell(&c.name),
                cell(&c.expected),
                cell(&c.actual)
            );
            if let Some(e) = c.evidence {
                let _ = writeln!(md, "  ```\n  {}\n  ```", e.replace('\n', "\n  "));
            }
        }
    }
    md
}

/// Escapes what would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::report;

    #[test]
    fn table_and_red_checks() {
        let md = render(
            &[
                report(Some(std::time::Duration::from_millis(1455))),
                report(None),
            ],
            &[],
        );
        assert!(
            md.contains(
                "| verbose-dump | native | ✅ pass | 1.455s | 2m 00.000s | – | – | 1/1 equal | – |"
            ),
            "{md}"
        );
        assert!(md.contains("❌ fail | not recovered"), "{md}");
        assert!(
            md.contains("- **sanitized/rows public.pairs**: expected 34, got missing"),
            "{md}"
        );
    }
}
