//! The timeline picture (SVG), one per scenario: for each recovery, a row per
//! step from the fault onwards (fault, recovery steps, checks), the moment
//! the checks turned green, and the measured RTO drawn against the target.
//! RPO gets the same treatment once a workload measures it. Hand-written
//! SVG: no fonts to embed, no dependencies; `tests` render it to PNG.

use std::fmt::Write;
use std::time::Duration;

use crate::engine::{DrillReport, RecoveryReport, TimelineEntry, Verdict};
use crate::vocab::fmt_duration;

const W: f64 = 960.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = 920.0;
const ROW: f64 = 26.0;
const OK: &str = "#2e9e5b";
const BAD: &str = "#d64545";
const FAULT: &str = "#e08a1e";
const RTO: &str = "#2563eb";

/// Renders the picture for one scenario.
pub(super) fn render(r: &DrillReport) -> String {
    let mut p = Picture {
        body: String::new(),
        y: 20.0,
    };
    p.header(r);
    for rec in &r.recoveries {
        let steps: Vec<&TimelineEntry> = r
            .timeline
            .iter()
            .filter(|e| e.phase.recovery() == Some(rec.name.as_str()))
            .collect();
        if !steps.is_empty() {
            p.recovery(r, rec, &steps);
        }
    }
    let height = p.y + 20.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height:.0}\" viewBox=\"0 0 {W} {height:.0}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{}</svg>\n",
        p.body
    )
}

/// The SVG being drawn, top to bottom.
struct Picture {
    body: String,
    /// Where the next row goes.
    y: f64,
}

/// A recovery's time axis: seconds since its fault to x.
struct Axis {
    scale: f64,
    target_s: f64,
    target_on_scale: bool,
}

impl Axis {
    fn new(end: Duration, target: Duration) -> Axis {
        let end_s = end.as_secs_f64().max(0.001);
        let target_s = target.as_secs_f64();
        let target_on_scale = target_s <= end_s * 4.0;
        let scale = if target_on_scale {
            target_s.max(end_s) * 1.08
        } else {
            end_s * 1.15
        };
        Axis {
            scale,
            target_s,
            target_on_scale,
        }
    }

    fn x(&self, s: f64) -> f64 {
        LEFT + (RIGHT - LEFT) * (s / self.scale)
    }
}

impl Picture {
    /// The scenario, its verdict, where it ran and the setup's time.
    fn header(&mut self, r: &DrillReport) {
        let verdict = if r.verdict == Verdict::Pass {
            ("PASS", OK)
        } else {
            ("FAIL", BAD)
        };
        let _ = writeln!(
            self.body,
            r#"<text x="20" y="{}" font-size="18" font-weight="bold">{} <tspan fill="{}">{}</tspan></text>"#,
            self.y + 10.0,
            esc(&r.name),
            verdict.1,
            verdict.0
        );
        self.y += 30.0;
        let setup: Duration = r
            .timeline
            .iter()
            .filter(|e| e.phase.recovery().is_none())
            .map(|e| e.duration)
            .sum();
        let y = self.y;
        let _ = writeln!(
            self.body,
            r##"<text x="20" y="{y}" font-size="12" fill="#444">{} · {} · setup and backup took {} · RTO target {}</text>"##,
            esc(&r.runs_on()),
            esc(&r.flavour),
            fmt_duration(setup),
            fmt_duration(r.rto_target)
        );
        self.y += 20.0;
    }

    /// One recovery: its title, a row per step, the axis, RTO and RPO.
    fn recovery(&mut self, r: &DrillReport, rec: &RecoveryReport, steps: &[&TimelineEntry]) {
        let origin = steps[0].start;
        let end = steps
            .iter()
            .map(|e| e.start + e.duration - origin)
            .max()
            .unwrap_or_default();
        let axis = Axis::new(end, r.rto_target);
        self.y += 18.0;
        let colour = if rec.met_expectation { OK } else { BAD };
        let y = self.y;
        let _ = writeln!(
            self.body,
            r##"<text x="20" y="{y}" font-size="14" font-weight="bold">recovery {} <tspan font-weight="normal" fill="#444">(expect: {})</tspan> <tspan fill="{colour}">{}</tspan></text>"##,
            esc(&rec.name),
            esc(rec.expect.name()),
            esc(&rec.summary)
        );
        self.y += 10.0;
        let top = self.y;
        for e in steps {
            self.step(e, origin, &axis, rec.recovered);
        }
        self.axis(&axis);
        self.rto(r, rec, &axis, top);
        self.y += 30.0;
        self.rpo(r, rec);
        self.y += 10.0;
    }

    /// One step's bar, and the green mark where the checks turned green.
    fn step(&mut self, e: &TimelineEntry, origin: Duration, axis: &Axis, recovered: bool) {
        let y = self.y;
        let start = (e.start - origin).as_secs_f64();
        let fill = if e.step.starts_with("fault") {
            FAULT
        } else if e.ok {
            OK
        } else {
            BAD
        };
        let width = (axis.x(start + e.duration.as_secs_f64()) - axis.x(start)).max(2.0);
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text><rect x="{:.1}" y="{:.1}" width="{width:.1}" height="{}" fill="{fill}" rx="2"><title>{}: {} — {}</title></rect>"#,
            LEFT - 8.0,
            y + ROW * 0.62,
            esc(&e.step),
            axis.x(start),
            y + 4.0,
            ROW - 8.0,
            esc(&e.step),
            fmt_duration(e.duration),
            esc(&e.detail)
        );
        if e.step == "checks" && recovered {
            let cx = axis.x(start + e.duration.as_secs_f64());
            let cy = y + ROW / 2.0;
            let _ = writeln!(
                self.body,
                r##"<path d="M{cx:.1} {:.1} L{:.1} {cy:.1} L{cx:.1} {:.1} L{:.1} {cy:.1} Z" fill="{OK}" stroke="#fff"/><text x="{:.1}" y="{:.1}" font-size="11" fill="{OK}">all checks green</text>"##,
                cy - 7.0,
                cx + 7.0,
                cy + 7.0,
                cx - 7.0,
                cx + 10.0,
                cy + 4.0
            );
        }
        self.y += ROW;
    }

    /// The time axis under the steps, with five ticks.
    fn axis(&mut self, axis: &Axis) {
        let y = self.y;
        let _ = writeln!(
            self.body,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#999"/>"##
        );
        for i in 0..=4 {
            let s = axis.scale * f64::from(i) / 4.0;
            let _ = writeln!(
                self.body,
                r##"<line x1="{0:.1}" y1="{y:.1}" x2="{0:.1}" y2="{1:.1}" stroke="#999"/><text x="{0:.1}" y="{2:.1}" font-size="10" text-anchor="middle" fill="#666">{3}</text>"##,
                axis.x(s),
                y + 4.0,
                y + 15.0,
                fmt_duration(Duration::from_secs_f64(s))
            );
        }
    }

    /// The RTO target (or a note that it is off scale) and the measured RTO.
    fn rto(&mut self, r: &DrillReport, rec: &RecoveryReport, axis: &Axis, top: f64) {
        let y = self.y;
        if axis.target_on_scale {
            let tx = axis.x(axis.target_s);
            let _ = writeln!(
                self.body,
                r#"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{y:.1}" stroke="{BAD}" stroke-dasharray="5,4"/><text x="{tx:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="{BAD}">RTO target {}</text>"#,
                top - 2.0,
                top - 4.0,
                fmt_duration(r.rto_target)
            );
        } else {
            let _ = writeln!(
                self.body,
                r#"<text x="{RIGHT}" y="{:.1}" font-size="11" text-anchor="end" fill="{BAD}">RTO target {} (off scale) →</text>"#,
                top - 4.0,
                fmt_duration(r.rto_target)
            );
        }
        if let Some(rto) = rec.rto {
            let mx = axis.x(rto.as_secs_f64());
            let _ = writeln!(
                self.body,
                r#"<line x1="{mx:.1}" y1="{:.1}" x2="{mx:.1}" y2="{y:.1}" stroke="{RTO}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="{RTO}">RTO {}</text>"#,
                top,
                mx - 4.0,
                top + 12.0,
                fmt_duration(rto)
            );
        }
    }

    /// The data loss the workload measured, against its target.
    fn rpo(&mut self, r: &DrillReport, rec: &RecoveryReport) {
        let y = self.y;
        let rpo_line =
            match (&rec.rpo, r.rpo_target) {
                (Some(m), target) => format!(
                "RPO {} ({} of {} acknowledged writes lost){}{}",
                fmt_duration(m.window),
                m.lost,
                m.acknowledged,
                target.map_or(String::new(), |t| format!(" · target {}", fmt_duration(t))),
                m.replication.as_ref().map_or(String::new(), |l| format!(
                    " · failed over to the {} replica, {} ({} bytes of WAL) behind at the fault",
                    if l.synchronous { "synchronous" } else { "asynchronous" },
                    fmt_duration(l.behind),
                    l.bytes
                ))
            ),
                (None, _) => "RPO: not measured (this scenario runs no workload)".into(),
            };
        let colour = match (&rec.rpo, r.rpo_target) {
            (Some(m), Some(t)) if m.window > t => BAD,
            (Some(_), _) => RTO,
            _ => "#666",
        };
        let _ = writeln!(
            self.body,
            r#"<text x="20" y="{y:.1}" font-size="11" fill="{colour}">{}</text>"#,
            esc(&rpo_line)
        );
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::report;

    /// Renders with a real SVG renderer (resvg) to PNG: it must parse, have
    /// the expected size, and draw the bars in their colours.
    #[test]
    fn renders_to_png() {
        for r in [report(Some(Duration::from_millis(1455))), report(None)] {
            let svg = render(&r);
            let mut opts = resvg::usvg::Options::default();
            opts.fontdb_mut().load_system_fonts(); // text renders where fonts exist
            let tree = resvg::usvg::Tree::from_str(&svg, &opts).expect("valid SVG");
            let size = tree.size().to_int_size();
            assert_eq!(size.width(), 960);
            let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
            resvg::render(
                &tree,
                resvg::tiny_skia::Transform::default(),
                &mut pixmap.as_mut(),
            );
            let has = |rgb: (u8, u8, u8)| {
                pixmap
                    .pixels()
                    .iter()
                    .any(|p| (p.red(), p.green(), p.blue()) == rgb)
            };
            assert!(has((0xe0, 0x8a, 0x1e)), "fault bars drawn");
            assert!(has((0xd6, 0x45, 0x45)), "red checks drawn");
            if let Ok(dir) = std::env::var("DRILL_SVG_PNG_DIR") {
                pixmap
                    .save_png(format!(
                        "{dir}/{}-{}.png",
                        r.name,
                        r.verdict == Verdict::Pass
                    ))
                    .unwrap();
            }
        }
    }
}
