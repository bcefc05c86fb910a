//! Taking backups the way users take them. `pg_dump` runs as a real client
//! process; with `stderr = "merged"` its stderr shares the pipe with the
//! dump, exactly like `pg_dump --verbose ... 2>&1 | gzip > file` (seed 000).

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;

use async_trait::async_trait;

use crate::scenario::{Backup, Compress, DumpFormat, StderrMode};
use crate::service::postgres::{ClientTool, Postgres};
use crate::service::{BackupCx, BackupMethod, BackupTaken};
use crate::vocab::tail;
use crate::{Error, Result};

/// A backup file and how it was made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Artifact {
    pub path: PathBuf,
    pub bytes: u64,
    pub format: DumpFormat,
    /// gzip-compressed (plain format only).
    pub compressed: bool,
    /// The command, as a person would type it.
    pub command: String,
    /// pg_dump's stderr when kept apart (last lines).
    pub stderr_tail: String,
    #[serde(with = "crate::vocab::millis")]
    pub took: Duration,
}

/// Runs pg_dump against the server's application database into `dir`.
pub fn pg_dump(server: &Postgres, cfg: &Backup, dir: &Path) -> Result<Artifact> {
    pg_dump_with(server, cfg, dir, None, None)
}

/// As [`pg_dump`], with PostgreSQL `major`'s pg_dump (this machine's, see
/// [`Postgres::client_of`]) unless `None`: an upgrade's dump is taken with
/// the new version's tool; killed after `limit`, when given.
pub fn pg_dump_with(
    server: &Postgres,
    cfg: &Backup,
    dir: &Path,
    major: Option<u32>,
    limit: Option<Duration>,
) -> Result<Artifact> {
    let other = major.filter(|m| *m != server.major());
    if cfg.format != DumpFormat::Plain {
        return pg_dump_archive(server, cfg, dir, other, limit);
    }
    let started = Instant::now();
    let db = &server.coordinates().database;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    // Millisecond stamps: scheduled backups may come seconds apart.
    let stamp: String = drill_fixtures::timestamp_utc(stamp)[..23]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ' ')
        .collect();
    let gz = cfg.compress == Compress::Gzip;
    let path = dir.join(format!(
        "{db}_backup_{}.sql{}",
        stamp.replace(' ', "_"),
        if gz { ".gz" } else { "" }
    ));

    let mut cmd = match (cfg.stderr, other) {
        (_, Some(m)) => server.client_of(ClientTool::PgDump, Some(m))?,
        (StderrMode::Merged, None) => server.client_merged(ClientTool::PgDump),
        (StderrMode::Separate, None) => server.client(ClientTool::PgDump),
    };
    let mut args = vec!["--format=plain", "--no-owner", "--no-acl"];
    if cfg.verbose {
        args.push("--verbose");
    }
    cmd.args(&args).stdin(Stdio::null());
    let shown = format!(
        "{} {}{} {}",
        tool_name(other),
        args.join(" "),
        if cfg.stderr == StderrMode::Merged {
            " 2>&1"
        } else {
            ""
        },
        if gz {
            format!("| gzip > {}", path.display())
        } else {
            format!("> {}", path.display())
        }
    );

    tracing::debug!(command = %shown, "backup");
    let file = File::create(&path).map_err(Error::io("create", &path))?;
    let (reader, writer) = std::io::pipe().map_err(Error::io("create a pipe for", "pg_dump"))?;
    let mut stderr_thread = None;
    match cfg.stderr {
        StderrMode::Merged => {
            cmd.stdout(
                writer
                    .try_clone()
                    .map_err(Error::io("clone a pipe for", "pg_dump"))?,
            )
            .stderr(writer);
        }
        StderrMode::Separate => {
            cmd.stdout(writer).stderr(Stdio::piped());
        }
    }
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: shown.clone(),
        source,
    })?;
    drop(cmd); // closes our copies of the write end
    let dog = limit.map(|l| crate::shell::Watchdog::arm(child.id(), l));
    if let Some(mut err) = child.stderr.take() {
        stderr_thread = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }));
    }
    // Keep the end of the stream: in merged mode pg_dump's error is there.
    let mut reader = TailReader {
        inner: reader,
        tail: Vec::new(),
    };
    let written = write_dump(&mut reader, file, gz);
    if let Err(e) = written {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::io("write", &path)(e));
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        command: shown.clone(),
        source,
    })?;
    if dog.is_some_and(crate::shell::Watchdog::disarm) {
        return Err(timed_out(&shown, limit));
    }
    let stderr_text = match stderr_thread {
        Some(t) => t.join().unwrap_or_default(),
        None => String::from_utf8_lossy(&reader.tail)
            .lines()
            .filter(|l| l.starts_with("pg_dump: "))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if !status.success() {
        return Err(Error::Command {
            what: format!("backup command `{shown}`"),
            status: status.to_string(),
            output: tail(&stderr_text, 10),
        });
    }
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Artifact {
        path,
        bytes,
        format: DumpFormat::Plain,
        compressed: gz,
        command: shown,
        stderr_tail: tail(&stderr_text, 5),
        took: started.elapsed(),
    })
}

/// Copies the dump into the file, gzipped or not, and makes sure every byte
/// (the gzip trailer included) reached the disk: a backup that only looks
/// written is worse than none.
fn write_dump(reader: &mut impl Read, file: File, gz: bool) -> std::io::Result<()> {
    let file = if gz {
        let mut enc = GzEncoder::new(BufWriter::new(file), Compression::default());
        std::io::copy(reader, &mut enc)?;
        enc.finish()?.into_inner().map_err(|e| e.into_error())?
    } else {
        let mut w = BufWriter::new(file);
        std::io::copy(reader, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?
    };
    file.sync_all()
}

/// A reader that remembers the last 4 KiB it passed on.
struct TailReader<R> {
    inner: R,
    tail: Vec<u8>,
}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const KEEP: usize = 4096;
        let n = self.inner.read(buf)?;
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > 2 * KEEP {
            self.tail.drain(..self.tail.len() - KEEP);
        }
        Ok(n)
    }
}

fn timed_out(shown: &str, limit: Option<Duration>) -> Error {
    Error::Command {
        what: format!("backup command `{shown}`"),
        status: format!(
            "killed after {} (the step's timeout)",
            crate::fmt_duration(limit.unwrap_or_default())
        ),
        output: String::new(),
    }
}

/// `pg_dump`, or `pg_dump (18)` for another version's, as the timeline shows it.
fn tool_name(other: Option<u32>) -> String {
    match other {
        Some(m) => format!("pg_dump ({m})"),
        None => "pg_dump".into(),
    }
}

/// Custom (`-Fc`) or directory (`-Fd`) format, written by pg_dump itself.
fn pg_dump_archive(
    server: &Postgres,
    cfg: &Backup,
    dir: &Path,
    other: Option<u32>,
    limit: Option<Duration>,
) -> Result<Artifact> {
    let started = Instant::now();
    let db = server.coordinates().database.clone();
    let (flag, suffix) = if cfg.format == DumpFormat::Custom {
        ("--format=custom", "dump")
    } else {
        ("--format=directory", "dir")
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = dir.join(format!("{db}_backup_{stamp}.{suffix}"));
    let mut args = vec![
        flag.to_string(),
        "--no-owner".into(),
        "--no-acl".into(),
        format!("--file={}", path.display()),
    ];
    if cfg.verbose {
        args.push("--verbose".into());
    }
    let shown = format!("{} {}", tool_name(other), args.join(" "));
    tracing::debug!(command = %shown, "backup");
    let mut cmd = server.client_of(ClientTool::PgDump, other)?;
    cmd.args(&args);
    let out = match limit {
        Some(l) => {
            let done = crate::shell::output_within(&mut cmd, b"", l)?;
            if done.timed_out {
                return Err(timed_out(&shown, limit));
            }
            done.output
        }
        None => cmd.output().map_err(Error::spawn(&shown))?,
    };
    let stderr_text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(Error::command(format!("backup command `{shown}`"), &out));
    }
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(Artifact {
        path,
        bytes,
        format: cfg.format,
        compressed: false,
        command: shown,
        stderr_tail: tail(&stderr_text, 5),
        took: started.elapsed(),
    })
}

/// Runs the user's backup command with `env` (the servers' variables) and
/// `$DRILL_BACKUP_DIR` set to `dir`, then takes the newest file it wrote
/// there as the artifact.
pub fn shell(
    server: &Postgres,
    cfg: &Backup,
    env: &[(String, String)],
    workdir: &Path,
    dir: &Path,
    log: &Path,
) -> Result<(Artifact, crate::shell::ShellOutcome)> {
    let started = Instant::now();
    let script = cfg
        .run
        .as_deref()
        .expect("validated: shell backups have `run`");
    let mut env = env.to_vec();
    env.push(("DRILL_BACKUP_DIR".into(), dir.display().to_string()));
    let out = crate::shell::run(
        script,
        workdir,
        &env,
        cfg.timeout.map(|t| t.0),
        log,
        &crate::service::scrub_env(),
    )?;
    if !out.ok() {
        return Err(Error::Command {
            what: format!("backup command `{script}`"),
            status: if out.timed_out {
                "killed at its timeout".into()
            } else {
                format!("exit {}", crate::service::exit_code(out.exit_code))
            },
            output: out.output_tail.clone(),
        });
    }
    let newest = crate::artifact::candidates(dir)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::unexpected(
                format!("backup command `{script}`"),
                format!(
                    "it wrote nothing into $DRILL_BACKUP_DIR ({}); its output:\n{}",
                    dir.display(),
                    out.output_tail
                ),
            )
        })?;
    let inspected = crate::artifact::inspect(&newest, server)?;
    if !inspected.ok {
        return Err(Error::unexpected(
            format!("the backup `{script}` wrote ({})", newest.display()),
            format!("it is not usable: {}", inspected.problems.join("; ")),
        ));
    }
    let artifact = Artifact {
        path: newest,
        bytes: inspected.bytes,
        format: inspected.format,
        compressed: inspected.gzip,
        command: script.to_string(),
        stderr_tail: String::new(),
        took: started.elapsed(),
    };
    Ok((artifact, out))
}

/// `pg_dump` of the application database, as the scenario's `[backup]`
/// sets it (format, `--verbose`, stderr merged or apart, gzip).
#[derive(Debug)]
pub(crate) struct PgDump(pub(crate) Backup);

#[async_trait]
impl BackupMethod<Postgres> for PgDump {
    fn label(&self) -> String {
        "pg_dump".into()
    }

    async fn take(&self, server: &Postgres, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        let a = tokio::task::block_in_place(|| pg_dump(server, &self.0, cx.work))?;
        Ok(taken(a, String::new()))
    }
}

/// The user's own backup script (`method = "shell"`).
#[derive(Debug)]
pub(crate) struct ShellBackup(pub(crate) Backup);

#[async_trait]
impl BackupMethod<Postgres> for ShellBackup {
    fn label(&self) -> String {
        "shell".into()
    }

    async fn take(&self, server: &Postgres, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        let dir = cx.work.join("backups");
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let workdir = cx
            .scenario_dir
            .join(self.0.workdir.as_deref().unwrap_or(Path::new(".")));
        let log = cx.work.join("backup.log");
        let (a, out) =
            tokio::task::block_in_place(|| shell(server, &self.0, cx.env, &workdir, &dir, &log))?;
        let output = format!("; output: {}", out.output_tail.lines().last().unwrap_or(""));
        Ok(taken(a, output))
    }
}

fn taken(a: Artifact, output: String) -> BackupTaken {
    BackupTaken {
        detail: format!(
            "{} → {} ({} bytes){output}",
            a.command,
            a.path.display(),
            a.bytes
        ),
        record: None,
        artifact: Some(a),
    }
}
