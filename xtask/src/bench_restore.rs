//! `cargo xtask bench --only restore`: drill's restore of a plain
//! `pg_dump | gzip` file next to `gunzip -c | psql` into the same kind of
//! server, at several sizes, in one run: wall time, CPU seconds by process
//! (the clients: gunzip and psql, or drill's own threads and its psqls;
//! the server's backends: the machine's busy time less those), the checks
//! drill runs after (row counts, checksums, the catalog fingerprint) against
//! the restore, and a curve of restore time against dump size
//! (`docs/restore-curve.svg`). Run it under `taskset -c 0` for the one-core
//! figures: the section is named by the cores the process may use.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drill::service::postgres::backup::Artifact;
use drill::service::postgres::restore::{PsqlRestoreOptions, psql_restore};
use drill::service::postgres::{PgSpec, Postgres};
use drill_fixtures::{Dataset, Flavour};

use crate::bench_phases::{Phase, Phases, Sampler, Who};

/// CPU seconds so far: the whole machine's busy time, this process's, and
/// its waited-for children's.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    machine: f64,
    me: f64,
    children: f64,
}

fn cpu_now() -> Cpu {
    use nix::sys::resource::{UsageWho, getrusage};
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle, iowait.
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, v)| v)
        .sum();
    let secs = |who| {
        getrusage(who).map_or(0.0, |u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
    };
    Cpu {
        machine: busy / 100.0,
        me: secs(UsageWho::RUSAGE_SELF),
        children: secs(UsageWho::RUSAGE_CHILDREN),
    }
}

/// Wall time and CPU seconds of one restore.
#[derive(Debug, Clone, Default)]
struct Took {
    wall: f64,
    /// drill's own threads (decompression, sanitizer, splitting).
    me: f64,
    /// Client processes: gunzip and psql.
    clients: f64,
    /// The server's backends (the machine's busy time less the above).
    server: f64,
    /// Wall and CPU seconds by phase and process, sampled from `/proc`.
    phases: Phases,
}

fn measure<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Took)> {
    let sampler = Sampler::start();
    let (c0, t0) = (cpu_now(), Instant::now());
    let out = f()?;
    let (c1, wall) = (cpu_now(), t0.elapsed().as_secs_f64());
    let phases = sampler.stop();
    let me = c1.me - c0.me;
    let clients = c1.children - c0.children;
    Ok((
        out,
        Took {
            wall,
            me,
            clients,
            server: (c1.machine - c0.machine - me - clients).max(0.0),
            phases,
        },
    ))
}

fn median_by(v: &[Took], f: impl Fn(&Took) -> f64) -> f64 {
    super::bench::median(v.iter().map(f).collect())
}

/// One size's medians.
struct Size {
    ticks: u64,
    dump_bytes: u64,
    raw: Vec<Took>,
    drill: Vec<Took>,
    checks: Vec<f64>,
    jobs: usize,
    /// This process's peak resident memory after this size (it runs
    /// drill's restores: flat across sizes means streaming).
    peak_rss: u64,
}

fn server(name: &str) -> anyhow::Result<Postgres> {
    Ok(Postgres::native(&PgSpec::new(
        "nexwave",
        "nexwave",
        &format!("bench-{name}"),
    ))?)
}

/// A plain `pg_dump | gzip` of `ticks` (kept in `dir` between runs).
async fn dump_of(ticks: u64, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("plain-{ticks}.sql.gz"));
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("bench: loading {ticks} ticks and dumping them ...");
    let src = server(&format!("src-{ticks}"))?;
    drill::service::postgres::fixture::load_nexwave(
        src.coordinates(),
        Flavour::Postgres,
        &Dataset {
            ticks,
            ..Dataset::default()
        },
    )
    .await?;
    let tmp = path.with_extension("partial");
    super::bench::sh(
        &format!("pg_dump --no-owner --no-acl | gzip > {}", tmp.display()),
        &super::bench::env_of(&src),
    )?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

async fn one_size(ticks: u64, reps: usize, dir: &Path) -> anyhow::Result<Size> {
    let dump = dump_of(ticks, dir).await?;
    let bytes = std::fs::metadata(&dump)?.len();
    // The parallel path on one core too: its speed-up from one core to two
    // is what a bigger runner multiplies.
    let jobs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(2);
    let mut s = Size {
        ticks,
        dump_bytes: bytes,
        raw: Vec::new(),
        drill: Vec::new(),
        checks: Vec::new(),
        jobs,
        peak_rss: 0,
    };
    for i in 0..reps {
        eprintln!(
            "bench: restore {ticks} ticks, repetition {} of {reps} ...",
            i + 1
        );
        let pg = server(&format!("raw-{ticks}-{i}"))?;
        let script = format!(
            "gunzip -c {} | psql -X -q -v ON_ERROR_STOP=1 > /dev/null",
            dump.display()
        );
        let env = super::bench::env_of(&pg);
        let ((), took) = measure(|| super::bench::sh(&script, &env).map(|_| ()))?;
        s.raw.push(took);
        drop(pg);

        let pg = server(&format!("drill-{ticks}-{i}"))?;
        let artifact = Artifact {
            path: dump.clone(),
            bytes,
            format: drill::scenario::DumpFormat::Plain,
            compressed: true,
            command: "pg_dump | gzip".into(),
            stderr_tail: String::new(),
            took: Duration::ZERO,
        };
        let opts = PsqlRestoreOptions {
            sanitize: true,
            on_error_stop: true,
            timeout: None,
            timescaledb: false,
            role: None,
            jobs,
        };
        let (out, took) = measure(|| Ok(psql_restore(&pg, &artifact, opts)?))?;
        anyhow::ensure!(
            out.exit_code == Some(0) && out.error_count == 0,
            "drill's restore of {} failed: {:?}",
            dump.display(),
            out.first_errors
        );
        s.drill.push(took);
        let t = Instant::now();
        let snap = drill::service::postgres::snapshot::take(pg.coordinates()).await?;
        s.checks.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            snap.rows.get("public.ticks").copied() == Some(ticks as i64),
            "the restore brought back {:?} ticks, not {ticks}",
            snap.rows.get("public.ticks")
        );
    }
    s.peak_rss = super::bench::vm_hwm_kib("self") * 1024;
    Ok(s)
}

/// The section for BENCHMARKS.md, and the curve's SVG.
pub(crate) async fn run(
    reps: usize,
    sizes: &[u64],
    dir: &Path,
) -> anyhow::Result<(String, String, String)> {
    let mut all = Vec::new();
    for &n in sizes {
        // The largest sizes take minutes per repetition: two at most.
        let r = if n > 1_000_000 { reps.min(2) } else { reps };
        all.push(one_size(n, r.max(1), dir).await?);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = all.first().map_or(1, |s| s.jobs);
    let header = format!(
        "## Plain-dump restore on {cores} core{}: drill next to gunzip -c | psql",
        if cores == 1 { "" } else { "s" }
    );
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n{header}\n\n`{}cargo xtask bench --only restore --reps {reps}` at commit {} on {}; medians. \
         Each restore into a fresh native server; drill's is `psql_restore` with the sanitizer and the guard on over {jobs} connections (`--restore-jobs {jobs}`), the raw one `gunzip -c dump.sql.gz | psql -X -q -v ON_ERROR_STOP=1`. \
         CPU seconds: the clients (gunzip and psql; drill's threads and its psqls), and the server's backends (the machine's busy time less the clients').\n",
        if cores == 1 { "taskset -c 0 " } else { "" },
        super::bench::rev(),
        super::bench::machine(),
    );
    t.push_str("| ticks | dump (gzip) | gunzip -c \\| psql | drill | drill/raw | CPU s raw: clients + server | CPU s drill: drill + psql + server | checks | checks/restore | peak memory |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for s in &all {
        let (rw, dw) = (
            median_by(&s.raw, |t| t.wall),
            median_by(&s.drill, |t| t.wall),
        );
        let ck = super::bench::median(s.checks.clone());
        let _ = writeln!(
            t,
            "| {} | {} | {rw:.2} s | {dw:.2} s | {:.2} | {:.1} + {:.1} | {:.1} + {:.1} + {:.1} | {ck:.2} s | {:.0}% | {} |",
            s.ticks,
            drill::report::predict::fmt_bytes(s.dump_bytes),
            dw / rw,
            median_by(&s.raw, |t| t.clients),
            median_by(&s.raw, |t| t.server),
            median_by(&s.drill, |t| t.me),
            median_by(&s.drill, |t| t.clients),
            median_by(&s.drill, |t| t.server),
            100.0 * ck / dw,
            drill::report::predict::fmt_bytes(s.peak_rss),
        );
    }
    phase_table(&mut t, &all, cores);
    t.push_str("\nPeak memory is the bench process's high-water mark (`VmHWM`) after each size; the process runs drill's restores (decompression, the sanitizer, the chunks in flight), so a mark that does not grow with the dump says the restore streams.\n");
    let _ = writeln!(
        t,
        "\n![restore time against dump size, {cores} core{}](docs/restore-curve-{cores}cpu.svg)",
        if cores == 1 { "" } else { "s" }
    );
    let svg = curve(&all, cores);
    Ok((header, t, svg))
}

/// The repetition with the median wall time (the lower one of two).
fn typical(v: &[Took]) -> Option<&Took> {
    let mut sorted: Vec<&Took> = v.iter().collect();
    sorted.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// Wall and CPU seconds per phase and process, both restores side by
/// side: where the cores go, and whether both restores keep them busy.
fn phase_table(t: &mut String, all: &[Size], cores: usize) {
    let _ = writeln!(
        t,
        "\nBy phase (sampled from `/proc` every 50 ms; the repetition with the median wall time). \
         The phase is what the server's backends show: schema before the first `COPY`, data while any `COPY` runs, indexes and constraints after. \
         Busy is the CPU seconds over the wall time times {cores} core{}: near 100% the restore is bound by the cores.\n",
        if cores == 1 { "" } else { "s" }
    );
    t.push_str("| ticks | phase | gunzip -c \\| psql | CPU s: gunzip + psql + server | busy | drill | CPU s: drill + psql + server | busy |\n|---|---|---|---|---|---|---|---|\n");
    let busy = |p: &Phases, ph: Phase| {
        let w = p.wall(ph);
        if w > 0.0 {
            format!("{:.0}%", 100.0 * p.cpu_total(ph) / (w * cores as f64))
        } else {
            "-".into()
        }
    };
    for s in all {
        let (Some(raw), Some(dr)) = (typical(&s.raw), typical(&s.drill)) else {
            continue;
        };
        let (r, d) = (&raw.phases, &dr.phases);
        for ph in Phase::ALL {
            let _ = writeln!(
                t,
                "| {} | {} | {:.2} s | {:.2} + {:.2} + {:.2} | {} | {:.2} s | {:.2} + {:.2} + {:.2} | {} |",
                s.ticks,
                ph.name(),
                r.wall(ph),
                r.cpu(ph, Who::Gunzip),
                r.cpu(ph, Who::Psql),
                r.cpu(ph, Who::Server),
                busy(r, ph),
                d.wall(ph),
                d.cpu(ph, Who::Drill),
                d.cpu(ph, Who::Psql),
                d.cpu(ph, Who::Server),
                busy(d, ph),
            );
        }
    }
}

/// Restore time against dump size, both restores, as an SVG line chart.
fn curve(all: &[Size], cores: usize) -> String {
    let (w, h, pad) = (640.0, 360.0, 56.0);
    let max_x = all.iter().map(|s| s.dump_bytes).max().unwrap_or(1) as f64;
    let max_y = all
        .iter()
        .map(|s| median_by(&s.raw, |t| t.wall).max(median_by(&s.drill, |t| t.wall)))
        .fold(0.1, f64::max);
    let x = |b: u64| pad + (w - 2.0 * pad) * b as f64 / max_x;
    let y = |secs: f64| h - pad - (h - 2.0 * pad) * secs / max_y;
    let line = |f: &dyn Fn(&Size) -> f64| {
        all.iter()
            .map(|s| format!("{:.1},{:.1}", x(s.dump_bytes), y(f(s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{pad}\" y=\"24\" font-size=\"14\">Restore time against dump size ({cores} core{})</text>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">dump size (gzip)</text>\n\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">seconds</text>\n",
        if cores == 1 { "" } else { "s" },
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        w / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0,
    );
    for s in all {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(s.dump_bytes),
            h - pad + 16.0,
            drill::report::predict::fmt_bytes(s.dump_bytes)
        );
    }
    for frac in [0.5, 1.0] {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0} s</text>",
            pad - 6.0,
            y(max_y * frac) + 4.0,
            max_y * frac
        );
    }
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#888\" stroke-width=\"2\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" points=\"{}\"/>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#888\">gunzip -c | psql</text>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#1565c0\">drill ({cores} connection{})</text>\n</svg>",
        line(&|s| median_by(&s.raw, |t| t.wall)),
        line(&|s| median_by(&s.drill, |t| t.wall)),
        pad + 10.0,
        pad + 10.0,
        pad + 10.0,
        pad + 26.0,
        if cores == 1 { "" } else { "s" },
    );
    svg
}
