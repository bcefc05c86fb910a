//! `psql-restore`: streams a plain-format backup into psql, as
//! `gunzip -c backup.sql.gz | psql` does, optionally through the
//! [`sanitize`](super::sanitize) filter. psql's errors are collected as
//! evidence; whether the data came back is for the checks to say.

use std::fs::File;
use std::io::{BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;

use crate::sanitize::{FilterOptions, Guard, LineKind, LineSink, SanitizeReport, filter_lines};
use crate::service::postgres::backup::Artifact;
use crate::service::postgres::{ClientTool, PgCoordinates, Postgres};
use crate::{Error, Result};

const KEEP_ERRORS: usize = 10;

/// What psql did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PsqlOutcome {
    /// psql's exit code (None when killed at the timeout).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// `ERROR:` lines psql printed.
    pub error_count: u64,
    /// The first few of them, with their context lines.
    pub first_errors: Vec<String>,
    pub sanitize: Option<SanitizeReport>,
    /// Backslash commands (and `COPY ... PROGRAM`) the guard kept from
    /// psql: (line, text), the first few, and how many in all.
    pub refused: Vec<(u64, String)>,
    pub refused_total: u64,
    /// Wrapped in timescaledb_pre_restore() / timescaledb_post_restore().
    pub timescaledb_wrapped: bool,
    pub command: String,
    /// psql connections the data went over (1: psql's own order).
    #[serde(default = "one")]
    pub connections: usize,
    /// COPY chunks sent to the parallel connections.
    #[serde(default)]
    pub chunks: u64,
}

fn one() -> usize {
    1
}

/// How the restore is run.
#[derive(Debug, Clone, Default)]
pub struct PsqlRestoreOptions {
    /// Restore as this role (no superuser: an untrusted backup); default:
    /// the superuser.
    pub role: Option<PgCoordinates>,
    /// Stream through the sanitizer first.
    pub sanitize: bool,
    /// `psql -v ON_ERROR_STOP=1`.
    pub on_error_stop: bool,
    /// Kill psql after this long.
    pub timeout: Option<Duration>,
    /// The target runs TimescaleDB: create the extension and call
    /// `timescaledb_pre_restore()` before, `timescaledb_post_restore()`
    /// after (also when the restore fails), as TimescaleDB's docs require.
    pub timescaledb: bool,
    /// Connections the COPY data goes over (`pg_restore -j` for a plain
    /// dump; [`super::parallel`]); 0 and 1: one psql, psql's own order.
    /// TimescaleDB targets always take one.
    pub jobs: usize,
}

/// Restores `artifact` into the server's application database.
pub fn psql_restore(
    server: &Postgres,
    artifact: &Artifact,
    opts: PsqlRestoreOptions,
) -> Result<PsqlOutcome> {
    let wrapped = opts.timescaledb;
    let role = opts.role.clone();
    let meter = std::sync::Arc::new(super::progress::Meter::default());
    let outcome = super::with_timescaledb(server, wrapped, role.as_ref(), || {
        let _reporter = super::progress::Reporter::start(&artifact.path, meter.clone());
        if opts.jobs > 1 && !wrapped {
            stream_parallel(server, artifact, opts, meter.clone())
        } else {
            stream(server, artifact, opts, meter.clone())
        }
    })?;
    Ok(PsqlOutcome {
        timescaledb_wrapped: wrapped,
        ..outcome
    })
}

fn stream(
    server: &Postgres,
    artifact: &Artifact,
    opts: PsqlRestoreOptions,
    meter: std::sync::Arc<super::progress::Meter>,
) -> Result<PsqlOutcome> {
    let PsqlRestoreOptions {
        sanitize: sanitize_first,
        on_error_stop,
        timeout,
        role,
        ..
    } = opts;
    let mut cmd = psql(server, role.as_ref(), on_error_stop, &[]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let command = pipeline(artifact, sanitize_first, on_error_stop);
    let filter_opts = filter_options(server, sanitize_first);
    tracing::debug!(%command, "restore");
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: command.clone(),
        source,
    })?;
    let mut stdin = child.stdin.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");

    let path = artifact.path.clone();
    let compressed = artifact.compressed;
    let feeder = std::thread::spawn(move || -> std::io::Result<Option<SanitizeReport>> {
        let reader = open_backup(&path, compressed, &meter)?;
        let out = std::io::BufWriter::with_capacity(256 * 1024, &mut stdin);
        let mut sink = Metered { out, meter };
        let result = filter_lines(reader, &mut sink, &filter_opts).map(Some);
        drop(sink);
        drop(stdin); // EOF for psql
        match result {
            // psql stopped reading (ON_ERROR_STOP): its exit code says why.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
            other => other,
        }
    });
    let collector = std::thread::spawn(move || errors_of(Box::new(stderr)));
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })? {
            break Some(s);
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let filtered = feeder
        .join()
        .map_err(|_| Error::unexpected("feed the backup to psql", "the feeding thread panicked"))?
        .map_err(Error::io("read backup", &artifact.path))?;
    let (error_count, first_errors) = collector.join().unwrap_or_default();
    if let Some(sig) = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)) {
        return Err(Error::Command {
            what: format!("psql restoring {}", artifact.path.display()),
            status: format!("killed by signal {sig}"),
            output: first_errors.join("\n"),
        });
    }
    let (refused, refused_total) = filtered
        .as_ref()
        .map_or((Vec::new(), 0), |r| (r.refused.clone(), r.refused_total));
    Ok(PsqlOutcome {
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        error_count,
        first_errors,
        sanitize: filtered.filter(|_| sanitize_first),
        refused,
        refused_total,
        timescaledb_wrapped: false,
        command,
        connections: 1,
        chunks: 0,
    })
}

/// psql for a restore: no psqlrc, quiet, stopping at the first error when
/// asked, with `extra` flags.
fn psql(
    server: &Postgres,
    role: Option<&PgCoordinates>,
    on_error_stop: bool,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = server.client_as(ClientTool::Psql, role);
    cmd.args(["-X", "-q"]).args(extra).args([
        "-v",
        if on_error_stop {
            "ON_ERROR_STOP=1"
        } else {
            "ON_ERROR_STOP=0"
        },
    ]);
    cmd
}

/// The restore as a person would type it: `gunzip -c backup.sql.gz |
/// drill-guard | psql -X -q -v ON_ERROR_STOP=1`.
fn pipeline(artifact: &Artifact, sanitize: bool, on_error_stop: bool) -> String {
    format!(
        "{} {} | {} | psql -X -q -v ON_ERROR_STOP={}",
        if artifact.compressed {
            "gunzip -c"
        } else {
            "cat"
        },
        artifact.path.display(),
        if sanitize {
            "drill-sanitize --guard"
        } else {
            "drill-guard"
        },
        u8::from(on_error_stop)
    )
}

/// The sanitizer (when asked) and the guard, against the server's database.
fn filter_options(server: &Postgres, remove_stderr: bool) -> FilterOptions {
    FilterOptions {
        remove_stderr,
        guard: Some(Guard {
            database: server.coordinates().database.clone(),
            restrict_key: server.knows_restrict().then(crate::backend::new_password),
        }),
    }
}

/// The backup's text: read (and counted for the progress report), then
/// decompressed when gzipped.
fn open_backup(
    path: &std::path::Path,
    compressed: bool,
    meter: &std::sync::Arc<super::progress::Meter>,
) -> std::io::Result<BufReader<Box<dyn Read>>> {
    let file = super::progress::Counting::new(File::open(path)?, meter.clone());
    let reader: Box<dyn Read> = if compressed {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(BufReader::with_capacity(256 * 1024, reader))
}

/// psql's input, counting the rows and telling the phase as they pass.
struct Metered<W> {
    out: W,
    meter: std::sync::Arc<super::progress::Meter>,
}

impl<W: std::io::Write> LineSink for Metered<W> {
    fn line(&mut self, kind: LineKind, raw: &[u8]) -> std::io::Result<()> {
        match kind {
            LineKind::CopyRow => self.meter.row(),
            LineKind::CopyHeader => self.meter.phase(1),
            LineKind::Sql
                if (raw.starts_with(b"CREATE INDEX") || raw.starts_with(b"ALTER TABLE"))
                    && self.meter.rows.load(std::sync::atomic::Ordering::Relaxed) > 0 =>
            {
                self.meter.phase(2);
            }
            _ => {}
        }
        self.out.write_all(raw)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// psql's `ERROR:` lines (how many, and the first few with their context).
fn errors_of(stderr: Box<dyn Read + Send>) -> (u64, Vec<String>) {
    let mut count = 0u64;
    let mut first: Vec<String> = Vec::new();
    // Read to the end whatever the bytes (a LATIN1 dump's errors are not
    // UTF-8): stopping early would kill psql with SIGPIPE.
    crate::shell::each_line(stderr, |line| {
        if line.contains("ERROR:") {
            count += 1;
            if first.len() < KEEP_ERRORS {
                first.push(line.to_string());
            }
        } else if (line.starts_with("LINE ") || line.contains("DETAIL:"))
            && count as usize <= KEEP_ERRORS
            && let Some(last) = first.last_mut()
        {
            // The context of the error just kept.
            last.push_str(" | ");
            last.push_str(line.trim());
        }
    });
    (count, first)
}

/// The backup, decompressed and filtered as [`stream`] does, into `jobs`
/// psql connections ([`super::parallel`]).
fn stream_parallel(
    server: &Postgres,
    artifact: &Artifact,
    opts: PsqlRestoreOptions,
    meter: std::sync::Arc<super::progress::Meter>,
) -> Result<PsqlOutcome> {
    let PsqlRestoreOptions {
        sanitize: sanitize_first,
        on_error_stop,
        timeout,
        role,
        jobs,
        ..
    } = opts;
    let command = format!(
        "{} (schema), COPY over {jobs} psql connections in {} MiB chunks, then post-data",
        pipeline(artifact, sanitize_first, on_error_stop),
        super::parallel::CHUNK >> 20,
    );
    tracing::debug!(%command, "restore");
    // Unaligned tuples only: the sync markers come back as bare lines.
    let make = move || psql(server, role.as_ref(), on_error_stop, &["-A", "-t"]);
    let spawn_err = |source| Error::Spawn {
        command: command.clone(),
        source,
    };
    let mut splitter =
        super::parallel::Splitter::new(jobs, Box::new(make), errors_of).map_err(spawn_err)?;
    splitter.meter = Some(meter.clone());
    let pids = splitter.pids.clone();
    // The time limit: every psql killed, which ends the feeding too.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = timeout.map(|t| {
        let (done, timed_out, pids) = (done.clone(), timed_out.clone(), pids.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + t;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if Instant::now() > deadline {
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                    for &pid in pids.lock().expect("not poisoned").iter() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    let filter_opts = filter_options(server, sanitize_first);
    let fed = (|| -> std::io::Result<SanitizeReport> {
        let reader = open_backup(&artifact.path, artifact.compressed, &meter)?;
        crate::sanitize::filter_lines(reader, &mut splitter, &filter_opts)
    })();
    let chunks = splitter.chunks;
    let mut exit_code = Some(0);
    let (mut error_count, mut first_errors) = (0u64, Vec::new());
    let mut killed = None;
    for (mut child, stderr) in splitter.close() {
        let status = child.wait().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        let (n, first) = stderr.join().unwrap_or_default();
        error_count += n;
        first_errors.extend(first);
        if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
            killed = Some(sig);
        }
        if exit_code == Some(0) {
            exit_code = status.code();
        }
    }
    first_errors.truncate(KEEP_ERRORS);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
    if let (Some(sig), false) = (killed, timed_out) {
        return Err(Error::Command {
            what: format!("psql restoring {}", artifact.path.display()),
            status: format!("killed by signal {sig}"),
            output: first_errors.join("\n"),
        });
    }
    let filtered = match fed {
        Ok(r) => Some(r),
        // A psql stopped (ON_ERROR_STOP, or the time limit): its exit code says why.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => None,
        Err(e) => return Err(Error::io("read backup", &artifact.path)(e)),
    };
    let (refused, refused_total) = filtered
        .as_ref()
        .map_or((Vec::new(), 0), |r| (r.refused.clone(), r.refused_total));
    Ok(PsqlOutcome {
        exit_code: if timed_out { None } else { exit_code },
        timed_out,
        error_count,
        first_errors,
        sanitize: filtered.filter(|_| sanitize_first),
        refused,
        refused_total,
        timescaledb_wrapped: false,
        command,
        connections: jobs,
        chunks,
    })
}
