//! `cargo xtask bench`: what a drill costs, side by side with the raw tools,
//! run in one process, alternating drill and raw for each repetition, medians
//! reported with the ratio. Writes the table to BENCHMARKS.md with the exact
//! command and the machine it ran on. Benchmarks, not timed tests: nothing
//! here fails a build; the targets are reported as met or missed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drill::engine::{ArtifactDrill, DrillOptions};
use drill::scenario::PgEngine;
use drill::service::Lifecycle;
use drill::service::postgres::PgBinaries;
use drill::service::postgres::{PgSpec, Postgres};
use drill_fixtures::{Dataset, Flavour};

use crate::{Failure, Outcome};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Smaller sizes (128 MiB dump, scale up to 1M ticks) for a quick look.
    #[arg(long)]
    quick: bool,
    /// Repetitions per pair.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Where to write the table.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Measure only this (`pitr`, or `restore`: plain dumps at 250k, 1M,
    /// 3M and 10M ticks, drill next to gunzip | psql, with the curve) and
    /// replace its section in --out.
    #[arg(long)]
    only: Option<String>,
}

/// One compared measurement.
struct Row {
    what: String,
    drill: String,
    raw: String,
    ratio: String,
    target: String,
    met: Option<bool>,
    /// Why a target was missed, from the numbers.
    note: Option<String>,
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spec(run: &str) -> PgSpec {
    PgSpec::new("nexwave", "nexwave", &format!("bench-{run}"))
}

pub(crate) fn sh(script: &str, env: &[(String, String)]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = Command::new("bash")
        .args(["-c", script])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()?;
    anyhow::ensure!(status.success(), "`{script}` failed: {status}");
    Ok(t.elapsed())
}

pub(crate) fn env_of(pg: &Postgres) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = pg
        .coordinates()
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let path = std::env::var("PATH").unwrap_or_default();
    env.push(("PATH".into(), format!("{}:{path}", pg.info().source)));
    env
}

pub(crate) fn run(args: Args) -> Outcome {
    // Measure optimised code: a debug build would make drill look slow.
    if cfg!(debug_assertions) {
        eprintln!("bench: re-running itself as a release build ...");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "xtask",
                "--",
                "bench",
            ])
            .args(std::env::args().skip_while(|a| a != "bench").skip(1))
            .status();
        return match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(Failure::Harness(anyhow::anyhow!(
                "the release build of bench ended with {s}"
            ))),
            Err(e) => Err(Failure::Harness(e.into())),
        };
    }
    crate::deps::ensure()?;
    // The container rows and the docker suite use the images the tests use.
    match crate::test::image_env() {
        Ok(env) => {
            for (k, v) in env {
                // SAFETY: single-threaded here, before any runtime starts.
                unsafe { std::env::set_var(k, v) };
            }
        }
        Err(e) => eprintln!("bench: no container images ({e:#}); the docker rows will say why"),
    }
    Ok(bench(&args)?)
}

fn bench(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir)?;
    if args.only.as_deref() == Some("restore") {
        let sizes: &[u64] = if args.quick {
            &[100_000, 250_000, 1_000_000]
        } else {
            &[250_000, 1_000_000, 3_000_000, 10_000_000]
        };
        let (header, section, svg) =
            runtime.block_on(crate::bench_restore::run(args.reps, sizes, &dir))?;
        let old = std::fs::read_to_string(&args.out).unwrap_or_default();
        let mut text = splice(&old, &header, &section);
        // The loader's row of the main table, measured again beside it
        // (not on one core: the table's figures are the machine's).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores > 1 {
            eprintln!("bench: fixture load ...");
            let load = runtime.block_on(load(args.reps, &dir))?;
            let row = format!(
                "| {} | {} | {} | {} | {} | {} |",
                load.what,
                load.drill,
                load.raw,
                load.ratio,
                load.target,
                if load.met == Some(true) {
                    "yes"
                } else {
                    "**no**"
                }
            );
            println!("{row}");
            if let Some(at) = text.find("| fixture load, ") {
                let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                text.replace_range(at..end, &row);
            }
        }
        std::fs::write(&args.out, text)?;
        let curve = PathBuf::from(format!("docs/restore-curve-{cores}cpu.svg"));
        std::fs::create_dir_all("docs")?;
        std::fs::write(&curve, svg)?;
        println!("{section}");
        eprintln!("written to {} and {}", args.out.display(), curve.display());
        return Ok(());
    }
    if let Some(only) = &args.only {
        anyhow::ensure!(
            only == "pitr",
            "--only {only}: the measurements that run alone are `pitr` and `restore`"
        );
        eprintln!("bench: pitr ...");
        let row = runtime.block_on(pitr(args.reps, &dir))?;
        let old = std::fs::read_to_string(&args.out).unwrap_or_default();
        let text = splice(&old, PITR_HEADER, &render_pitr(args, &row));
        println!("{}", render_pitr(args, &row));
        std::fs::write(&args.out, text)?;
        eprintln!("written to {}", args.out.display());
        return Ok(());
    }
    let mut rows = Vec::new();
    eprintln!("bench: server start ...");
    rows.push(start(args.reps)?);
    eprintln!("bench: container start ...");
    rows.push(container_start(args.reps)?);
    eprintln!("bench: fixture load ...");
    rows.push(runtime.block_on(load(args.reps, &dir))?);
    eprintln!("bench: sanitizer ...");
    rows.extend(sanitizer(args, &dir)?);
    eprintln!("bench: restore overhead ...");
    rows.push(runtime.block_on(restore(args.reps, &dir))?);
    eprintln!("bench: pitr ...");
    let pitr_row = runtime.block_on(pitr(args.reps, &dir))?;
    eprintln!("bench: scale ...");
    let scale = runtime.block_on(scale(args))?;
    eprintln!("bench: whole suite ...");
    let suite = suite()?;
    let mut text = render(args, &rows, &scale, &suite);
    text.push_str(&render_pitr(args, &pitr_row));
    println!("{text}");
    std::fs::write(&args.out, text)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

/// Native start to ready vs initdb + pg_ctl start -w + createdb.
fn start(reps: usize) -> anyhow::Result<Row> {
    let bins = PgBinaries::locate()?;
    let (mut d, mut r) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let t = Instant::now();
        let pg = Postgres::native(&spec(&format!("start{i}")))?;
        d.push(t.elapsed().as_secs_f64());
        drop(pg);

        let tmp = tempfile::Builder::new()
            .prefix("drill-bench-raw-")
            .tempdir()?;
        let p = tmp.path().display().to_string();
        let bin = bins.bin_dir.display().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Command::new("chown").args(["postgres", &p]).status()?;
        let as_pg = |cmd: &str| format!("runuser -u postgres -- bash -c '{cmd}'");
        let script = format!(
            "{} && {} && {}",
            as_pg(&format!(
                "{bin}/initdb -D {p}/data -U postgres -A trust -E UTF8 --locale=C --no-instructions --no-sync >/dev/null"
            )),
            as_pg(&format!(
                "{bin}/pg_ctl -D {p}/data -l {p}/log -o \"-p {port} -k {p} -c listen_addresses=127.0.0.1\" -w start >/dev/null"
            )),
            format_args!("{bin}/createdb -h 127.0.0.1 -p {port} -U postgres nexwave"),
        );
        r.push(sh(&script, &[])?.as_secs_f64());
        let _ = sh(
            &as_pg(&format!(
                "{bin}/pg_ctl -D {p}/data -m fast -w stop >/dev/null"
            )),
            &[],
        );
    }
    let (dm, rm) = (median(d), median(r));
    Ok(Row {
        what: "server start to ready (native)".into(),
        drill: format!("{dm:.3} s"),
        raw: format!("{rm:.3} s (initdb --no-sync + pg_ctl start -w + createdb)"),
        ratio: format!("{:.2}", dm / rm),
        target: "≤ 1.2".into(),
        met: Some(dm / rm <= 1.2),
        note: None,
    })
}

/// Docker backend start to ready (volume, container, first query, the
/// application database checked) vs `docker run` of the same image polled
/// with pg_isready until it accepts connections.
fn container_start(reps: usize) -> anyhow::Result<Row> {
    use drill::backend::{BackendKind, ServiceKind};
    let image = ServiceKind::Postgres.image(None);
    let what = "server start to ready (docker)".to_string();
    if let Err(e) = drill::backend::choose(
        drill::backend::BackendChoice::Docker,
        &[(ServiceKind::Postgres, image.clone())],
    ) {
        return Ok(Row {
            what,
            drill: "not measured".into(),
            raw: format!("docker run of {image} until pg_isready"),
            ratio: "–".into(),
            target: "≤ 1.2".into(),
            met: None,
            note: Some(format!("no docker backend here: {e}")),
        });
    }
    let bins = PgBinaries::locate()?;
    let (mut d, mut r) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let t = Instant::now();
        let pg = Postgres::start(BackendKind::Docker, &spec(&format!("dstart{i}")))?;
        d.push(t.elapsed().as_secs_f64());
        drop(pg);

        let name = format!("drill-bench-raw-{}-{i}", std::process::id());
        let script = format!(
            "set -e; docker run -d --name {name} --label org.drill.run=bench \
               --label org.drill.owner-pid={pid} --label org.drill.owner-host=$(hostname) \
               -e POSTGRES_PASSWORD=pw -e POSTGRES_USER=nexwave \
               -e POSTGRES_DB=nexwave -p 127.0.0.1::5432 {image} >/dev/null
             port=$(docker port {name} 5432 | head -1 | cut -d: -f2)
             timeout 120 sh -c 'until {bin}/pg_isready -q -h 127.0.0.1 -p \"$1\" -d nexwave; do sleep 0.025; done' sh \"$port\"",
            pid = std::process::id(),
            bin = bins.bin_dir.display()
        );
        let took = sh(&script, &[]);
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        r.push(took?.as_secs_f64());
    }
    let (dm, rm) = (median(d), median(r));
    Ok(Row {
        what,
        drill: format!("{dm:.3} s ({image})"),
        raw: format!("{rm:.3} s (docker run -d, then pg_isready every 25 ms)"),
        ratio: format!("{:.2}", dm / rm),
        target: "≤ 1.2".into(),
        met: Some(dm / rm <= 1.2),
        note: (dm / rm > 1.2).then(|| {
            "drill also creates a labelled volume, waits for a real query (not only \
             pg_isready) and checks the application database"
                .to_string()
        }),
    })
}

/// drill's COPY loader (generating rows as it goes) vs psql \copy of the same rows from a file.
async fn load(reps: usize, dir: &Path) -> anyhow::Result<Row> {
    let n = 1_000_000u64;
    let pg = Postgres::native(&spec("load"))?;
    let data = Dataset {
        ticks: n,
        ..Dataset::default()
    };
    let mut conn = pg.coordinates().connect().await?;
    for f in drill_fixtures::nexwave_schema(Flavour::Postgres) {
        drill::service::postgres::execute_script(&mut conn, f.sql, f.path).await?;
    }
    let mut tables = data.tables();
    let mut pairs = tables.remove(0);
    drill::service::postgres::fixture::copy_rows(
        &mut conn,
        pairs.table,
        pairs.columns,
        pairs.rows.as_mut(),
    )
    .await?;
    let file = dir.join("ticks.copy");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let mut t = data.tables().remove(1);
        let mut buf = Vec::new();
        while t.rows.next_row(&mut buf) {
            if buf.len() > 1 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
    }
    let cols = data.tables()[1].columns.join(", ");
    let env = env_of(&pg);
    let (mut d, mut r) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        drill::service::postgres::execute_script(&mut conn, "TRUNCATE ticks", "truncate").await?;
        let ticks = data.tables().remove(1);
        let t = Instant::now();
        // As the fixture loader does for a large table: every core.
        drill::service::postgres::fixture::copy_rows_parallel(
            pg.coordinates(),
            ticks.table,
            ticks.columns,
            ticks.rows,
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        )
        .await?;
        d.push(n as f64 / t.elapsed().as_secs_f64());
        drill::service::postgres::execute_script(&mut conn, "TRUNCATE ticks", "truncate").await?;
        let raw = sh(
            &format!(
                "psql -X -q -c \"\\copy ticks ({cols}) FROM '{}'\"",
                file.display()
            ),
            &env,
        )?;
        r.push(n as f64 / raw.as_secs_f64());
    }
    let (dm, rm) = (median(d), median(r));
    Ok(Row {
        what: format!("fixture load, {n} ticks"),
        drill: format!("{:.0} rows/s", dm),
        raw: format!("{:.0} rows/s (psql \\copy from a file)", rm),
        ratio: format!("{:.2}", dm / rm),
        target: "≥ 1.0".into(),
        met: Some(dm / rm >= 1.0),
        note: None,
    })
}

/// Writes a plain dump with pg_dump's stderr mixed in: COPY blocks with
/// noise, about `bytes` uncompressed, gzipped fast.
fn noisy_dump(path: &Path, bytes: u64) -> anyhow::Result<u64> {
    if let Ok(m) = std::fs::metadata(path.with_extension("size"))
        && m.len() > 0
        && path.exists()
    {
        return Ok(std::fs::read_to_string(path.with_extension("size"))?
            .trim()
            .parse()?);
    }
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(path)?),
        flate2::Compression::fast(),
    );
    let mut written = 0u64;
    let mut table = 0;
    while written < bytes {
        let mut block = format!(
            "pg_dump: processing data for table \"public.t{table}\"\nCOPY public.t{table} (id, symbol, note) FROM stdin;\npg_dump: dumping contents of table \"public.t{table}\"\n"
        );
        for i in 0..100_000u64 {
            let _ = writeln!(
                block,
                "{i}\tBTC\tpg_dump: a row whose text begins like a message, padded to about a hundred bytes {i}"
            );
        }
        block.push_str(
            "\\.\n\npg_dump: creating INDEX \"public.ix\"\nCREATE INDEX ix ON public.t (id);\n",
        );
        gz.write_all(block.as_bytes())?;
        written += block.len() as u64;
        table += 1;
    }
    gz.finish()?;
    std::fs::write(path.with_extension("size"), written.to_string())?;
    Ok(written)
}

/// Runs `gunzip -c dump | <exe> sanitize > /dev/null`, returning the wall
/// time and the sanitizer's peak resident memory (VmHWM, polled).
fn run_sanitizer(dump: &Path) -> anyhow::Result<(Duration, u64)> {
    let t = Instant::now();
    let mut gunzip = Command::new("gunzip")
        .arg("-c")
        .arg(dump)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut san = Command::new(std::env::current_exe()?)
        .arg("sanitize")
        .stdin(gunzip.stdout.take().expect("piped"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut peak = 0u64;
    loop {
        peak = peak.max(vm_hwm_kib(&san.id().to_string()));
        if san.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gunzip.wait()?;
    Ok((t.elapsed(), peak))
}

/// MB/s against grep -v, and memory on a small and a large dump.
fn sanitizer(args: &Args, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let big_size = if args.quick { 128 << 20 } else { 1 << 30 };
    let small = dir.join("dump-64MiB.sql.gz");
    let big = dir.join(format!("dump-{}MiB.sql.gz", big_size >> 20));
    let small_bytes = noisy_dump(&small, 64 << 20)?;
    let big_bytes = noisy_dump(&big, big_size)?;
    let (mut d, mut r) = (Vec::new(), Vec::new());
    let mut peak_big = 0;
    for _ in 0..args.reps.min(3) {
        let (t, p) = run_sanitizer(&big)?;
        peak_big = peak_big.max(p);
        d.push(big_bytes as f64 / 1e6 / t.as_secs_f64());
        let raw = sh(
            &format!(
                "gunzip -c {} | grep -v '^pg_dump:' > /dev/null",
                big.display()
            ),
            &[],
        )?;
        r.push(big_bytes as f64 / 1e6 / raw.as_secs_f64());
    }
    let (_, peak_small) = run_sanitizer(&small)?;
    let (dm, rm) = (median(d), median(r));
    Ok(vec![
        Row {
            what: format!("dump sanitizer, {:.0} MiB dump (through gunzip)", big_bytes as f64 / (1 << 20) as f64),
            drill: format!("{dm:.0} MB/s"),
            raw: format!("{rm:.0} MB/s (gunzip | grep -v '^pg_dump:', which drops data)"),
            ratio: format!("{:.2}", dm / rm),
            target: "≥ 1.0".into(),
            met: Some(dm / rm >= 1.0),
            note: Some("Both pipelines include gunzip, which bounds them; grep -v also drops legitimate rows that begin with `pg_dump:`.".into()),
        },
        Row {
            what: "sanitizer peak memory (VmHWM)".into(),
            drill: format!("{} MiB on {:.0} MiB, {} MiB on {:.0} MiB", peak_big / 1024, big_bytes as f64 / (1 << 20) as f64, peak_small / 1024, small_bytes as f64 / (1 << 20) as f64),
            raw: "–".into(),
            ratio: format!("{:.2}", peak_big as f64 / peak_small.max(1) as f64),
            target: "flat (ratio ≈ 1)".into(),
            met: Some((peak_big as f64) < peak_small as f64 * 1.5 + 4096.0),
            note: None,
        },
    ])
}

/// drill's measured RTO restoring a clean plain dump vs `gunzip -c | psql`.
async fn restore(reps: usize, dir: &Path) -> anyhow::Result<Row> {
    let n = 1_000_000u64;
    let src = Postgres::native(&spec("restore-src"))?;
    drill::service::postgres::fixture::load_nexwave(
        src.coordinates(),
        Flavour::Postgres,
        &Dataset {
            ticks: n,
            ..Dataset::default()
        },
    )
    .await?;
    let dump = dir.join("clean.sql.gz");
    sh(
        &format!("pg_dump --no-owner --no-acl | gzip -1 > {}", dump.display()),
        &env_of(&src),
    )?;
    drop(src);
    let (mut d, mut r, mut checks) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..reps {
        let pg = Postgres::native(&spec(&format!("restore-raw{i}")))?;
        r.push(
            sh(
                &format!(
                    "gunzip -c {} | psql -X -q -v ON_ERROR_STOP=1 > /dev/null",
                    dump.display()
                ),
                &env_of(&pg),
            )?
            .as_secs_f64(),
        );
        drop(pg);
        let a = ArtifactDrill {
            backup: dump.clone(),
            engine: PgEngine::Postgres,
            database: "nexwave".into(),
            user: "nexwave".into(),
            sanitize: true,
            tables: vec![],
            min_rows: vec![],
            fingerprint: None,
            probes: vec![],
            allow_empty: false,
            rto: Duration::from_secs(3600),
            image: None,
            wal_archive: None,
            pgbackrest_repo: None,
            stanza: None,
            target: Default::default(),
            version: None,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let report = drill::engine::restore_artifact(&a, &DrillOptions::default()).await?;
        let rto = report
            .main_recovery()
            .and_then(|m| m.rto)
            .ok_or_else(|| anyhow::anyhow!("the drill did not restore"))?;
        d.push(rto.as_secs_f64());
        checks.push(
            report
                .timeline
                .iter()
                .filter(|e| e.step == "checks")
                .map(|e| e.duration.as_secs_f64())
                .sum(),
        );
    }
    let (dm, rm, cm) = (median(d), median(r), median(checks));
    let limit = 1.05 * rm + 0.3;
    Ok(Row {
        what: format!("restore overhead, clean plain dump of {n} ticks"),
        drill: format!(
            "{dm:.3} s (measured RTO = restore {:.3} s + checks {cm:.3} s)",
            dm - cm
        ),
        raw: format!("{rm:.3} s (gunzip -c | psql)"),
        ratio: format!("{:.2}", dm / rm),
        target: format!("≤ 1.05 × raw + 0.3 s = {limit:.3} s"),
        met: Some(dm <= limit),
        note: Some(format!(
            "drill's RTO stops only when every check is green: row counts, a checksum scan of every table and the catalog fingerprint ({cm:.3} s here); the raw command proves nothing about what came back. The restore alone took {:.3} s, which is {} the target of {limit:.3} s.",
            dm - cm,
            if dm - cm <= limit { "within" } else { "over" }
        )),
    })
}

const PITR_HEADER: &str = "## Point-in-time recovery: the pitr step next to the same by hand";

/// The pitr section.
/// A process's peak resident memory (`VmHWM`) in KiB: `pid` or `self`;
/// 0 once it is gone.
pub(crate) fn vm_hwm_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The commit measured.
pub(crate) fn rev() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn render_pitr(args: &Args, r: &Row) -> String {
    let rev = rev();
    format!(
        "\n{PITR_HEADER}\n\n`cargo xtask bench --only pitr --reps {}` at commit {rev} on {}; medians.\n\n\
         | measurement | drill | by hand | drill/raw | target | met |\n|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} | {} |\n{}",
        args.reps,
        machine(),
        r.what,
        r.drill,
        r.raw,
        r.ratio,
        r.target,
        match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        },
        r.note
            .as_deref()
            .map_or(String::new(), |n| format!("\n{n}\n"))
    )
}

/// `old` with the section under `header` (up to the next `## `) replaced
/// by `section`, or `section` appended.
fn splice(old: &str, header: &str, section: &str) -> String {
    let Some(at) = old.find(header) else {
        return format!("{}\n{}", old.trim_end(), section);
    };
    let start = old[..at].trim_end().len();
    let rest = &old[at + header.len()..];
    let end = rest
        .find("\n## ")
        .map_or(old.len(), |i| at + header.len() + i + 1);
    format!("{}\n{}{}", &old[..start], section, &old[end..])
}

/// drill's restore of a base backup + WAL archive to latest (the `pitr`
/// procedure, through restore-artifact) next to the manual's steps by
/// hand: `cp -a` the base backup, `recovery.signal` and `restore_command`,
/// `pg_ctl start -w`, poll `pg_is_in_recovery()`. The backups are made by
/// the tests' script, without drill.
async fn pitr(reps: usize, dir: &Path) -> anyhow::Result<Row> {
    let n = 1_000_000u64;
    let root = std::path::absolute(dir.join("pitr"))?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let prod = root.join("prod");
    sh(
        &format!(
            "sh xtask/tests/data/make-physical-backups.sh {} {port} {n} >/dev/null",
            prod.display()
        ),
        &[],
    )?;
    let (base, archive) = (prod.join("base-plain"), prod.join("archive"));
    let bindir = drill::service::postgres::PgBinaries::locate()?.bin_dir;
    let (mut d, mut r, mut rto) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..reps {
        let data = root.join(format!("raw{i}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = format!(
            "set -e\nD={d}\nmkdir -p $D\ncp -a {b}/. $D/\nrm -f $D/backup_manifest\ntouch $D/recovery.signal\n\
             printf \"restore_command = 'cp {a}/%%f %%p'\\nrecovery_target_action = 'promote'\\nport = {port}\\n\
             unix_socket_directories = '$D'\\nlisten_addresses = ''\\narchive_mode = off\\n\" >> $D/postgresql.auto.conf\n\
             chown -R postgres $D && chmod 700 $D\n\
             runuser -u postgres -- {bin}/pg_ctl -D $D -l $D/startup.log -w start >/dev/null\n\
             until [ \"$(runuser -u postgres -- {bin}/psql -X -h $D -p {port} -U postgres -Atc 'SELECT pg_is_in_recovery()')\" = f ]; do sleep 0.1; done",
            d = data.display(),
            b = base.display(),
            a = archive.display(),
            bin = bindir.display(),
        );
        r.push(sh(&script, &[])?.as_secs_f64());
        let _ = sh(
            &format!(
                "runuser -u postgres -- {}/pg_ctl -D {} -m immediate -w stop >/dev/null; rm -rf {}",
                bindir.display(),
                data.display(),
                data.display()
            ),
            &[],
        );
        let a = ArtifactDrill {
            backup: base.clone(),
            engine: PgEngine::Postgres,
            database: "trading".into(),
            user: "postgres".into(),
            sanitize: true,
            tables: vec![],
            min_rows: vec![("trades".into(), 3 * n as i64)],
            fingerprint: None,
            probes: vec![],
            allow_empty: false,
            rto: Duration::from_secs(3600),
            image: None,
            wal_archive: Some(archive.clone()),
            pgbackrest_repo: None,
            stanza: None,
            target: Default::default(),
            version: None,
            jobs: 1,
        };
        let report = drill::engine::restore_artifact(&a, &DrillOptions::default()).await?;
        let m = report
            .main_recovery()
            .and_then(|m| m.rto)
            .ok_or_else(|| anyhow::anyhow!("the drill did not restore: {:?}", report.recoveries))?;
        rto.push(m.as_secs_f64());
        d.push(
            report
                .timeline
                .iter()
                .filter(|e| e.step == "restore")
                .map(|e| e.duration.as_secs_f64())
                .sum(),
        );
    }
    let (dm, rm, tm) = (median(d), median(r), median(rto));
    let limit = 1.1 * rm + 0.5;
    let bytes = drill_bytes(&base);
    Ok(Row {
        what: format!(
            "pitr to latest: plain base backup ({} MB, {} rows) + its WAL archive",
            bytes / 1_000_000,
            n
        ),
        drill: format!("{dm:.3} s (the restore step: stop, copy, start, replay, promotion; RTO with checks {tm:.3} s)"),
        raw: format!("{rm:.3} s (cp -a, recovery.signal + restore_command, pg_ctl start -w, poll pg_is_in_recovery())"),
        ratio: format!("{:.2}", dm / rm),
        target: format!("≤ 1.1 × raw + 0.5 s = {limit:.3} s"),
        met: Some(dm <= limit),
        note: Some(
            "Not in either column: drill starts its disposable server (initdb) and copies the archive into the run's folder before the step; the by-hand column reuses the archive in place."
                .into(),
        ),
    })
}

fn drill_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                drill_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Phase times of the verbose-dump drill (no workload) as the data grows.
async fn scale(args: &Args) -> anyhow::Result<Vec<(u64, Vec<(String, f64)>)>> {
    let sizes: &[u64] = if args.quick {
        &[100_000, 1_000_000]
    } else {
        &[100_000, 1_000_000, 10_000_000]
    };
    let path = Path::new("scenarios/verbose-dump.toml");
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for &n in sizes {
        let mut t = text.replace("ticks = 20000 ", &format!("ticks = {n} "));
        if let (Some(a), Some(b)) = (t.find("[workload]"), t.find("[backup]")) {
            t.replace_range(a..b, "");
        }
        t = t
            .lines()
            .filter(|l| !l.starts_with("rpo =") && !l.starts_with("every ="))
            .collect::<Vec<_>>()
            .join("\n");
        t = t.replace("rto = \"2 min\"", "rto = \"1h\"");
        let sc = drill::scenario::parse_str(&t, path)?;
        eprintln!("  {n} ticks ...");
        let report = drill::engine::run(&sc, &DrillOptions::default()).await?;
        anyhow::ensure!(
            report.verdict == drill::engine::Verdict::Pass,
            "the drill failed at {n} ticks"
        );
        let pick = |phase: &str, step: &str| -> f64 {
            report
                .timeline
                .iter()
                .filter(|e| e.phase.to_string().contains(phase) && e.step == step)
                .map(|e| e.duration.as_secs_f64())
                .sum()
        };
        out.push((
            n,
            vec![
                ("load".into(), pick("setup", "load postgres fixture")),
                ("backup".into(), pick("backup", "pg_dump")),
                ("fault".into(), pick("sanitized", "fault: wipe")),
                (
                    "restore".into(),
                    pick("sanitized", "psql-restore (sanitized)"),
                ),
                ("checks".into(), pick("sanitized", "checks")),
            ],
        ));
    }
    Ok(out)
}

/// The scenario suite under nextest: every scenario on the native backend
/// with one test thread and with two, and on the docker backend with two
/// when an engine and the images are there.
fn suite() -> anyhow::Result<Vec<(String, usize, f64)>> {
    use drill::ServiceKind;
    use drill::backend::BackendChoice;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["nextest", "run", "-p", "drill-scenarios", "--no-run"])
        .status()?;
    anyhow::ensure!(status.success(), "building the scenario tests failed");
    let mut runs = vec![("native", 1usize), ("native", 2)];
    let images: Vec<(ServiceKind, String)> = ServiceKind::ALL
        .iter()
        .map(|k| (*k, k.image(None)))
        .collect();
    match drill::backend::choose(BackendChoice::Docker, &images) {
        Ok(_) => runs.push(("docker", 2)),
        Err(e) => eprintln!("bench: no docker suite ({e})"),
    }
    let mut out = Vec::new();
    for (backend, threads) in runs {
        let t = Instant::now();
        let status = Command::new(&cargo)
            .args([
                "nextest",
                "run",
                "-p",
                "drill-scenarios",
                "--test-threads",
                &threads.to_string(),
                "-E",
                &format!("test(/^{backend}::/)"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "the scenario suite failed on {backend}");
        out.push((backend.to_string(), threads, t.elapsed().as_secs_f64()));
    }
    Ok(out)
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .unwrap_or_default();
    let mem_gib = mem.parse::<f64>().unwrap_or(0.0) / 1024.0 / 1024.0;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let pg = Command::new("pg_dump")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let plural = if cores == 1 { "" } else { "s" };
    format!("{cores} core{plural} ({cpu}), {mem_gib:.0} GiB memory; {pg}")
}

fn render(
    args: &Args,
    rows: &[Row],
    scale: &[(u64, Vec<(String, f64)>)],
    suite: &[(String, usize, f64)],
) -> String {
    let mut md = String::from("# Benchmarks\n\n");
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "Produced by `cargo xtask bench{}{}` at commit {rev} on {}.\nEach pair ran in one process, drill and raw alternating, {} repetitions; the table shows medians.\n",
        if args.quick { " --quick" } else { "" },
        if args.reps != 5 {
            format!(" --reps {}", args.reps)
        } else {
            String::new()
        },
        machine(),
        args.reps
    );
    md.push_str("| measurement | drill | raw tool | drill/raw | target | met |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {met} |",
            r.what,
            r.drill,
            r.raw.replace('|', "\\|"),
            r.ratio,
            r.target
        );
    }
    md.push_str("\n### Missed targets, and why\n\n");
    let missed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.met == Some(false) || (r.met.is_none() && r.note.is_some()))
        .collect();
    if missed.is_empty() {
        md.push_str("None of the measured ones.\n");
    }
    for r in missed {
        let why = r.note.as_deref().unwrap_or("see the numbers above.");
        let _ = writeln!(
            md,
            "- **{}**: {} vs {} (target {}). {why}",
            r.what, r.drill, r.raw, r.target
        );
    }
    md.push_str("\n## Scale: the verbose-dump drill (sanitized recovery), seconds per phase\n\n| ticks | load | backup | fault (wipe) | restore | checks | restore s per 1M ticks |\n|---|---|---|---|---|---|---|\n");
    for (n, phases) in scale {
        let get = |k: &str| phases.iter().find(|(p, _)| p == k).map_or(0.0, |(_, v)| *v);
        let _ = writeln!(
            md,
            "| {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            get("load"),
            get("backup"),
            get("fault"),
            get("restore"),
            get("checks"),
            get("restore") / (*n as f64 / 1e6)
        );
    }
    md.push_str("\n## Whole suite (every scenario under nextest)\n\n| backend | test threads | wall time |\n|---|---|---|\n");
    for (b, t, s) in suite {
        let _ = writeln!(md, "| {b} | {t} | {s:.1} s |");
    }
    md
}
