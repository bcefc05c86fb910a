//! Backup artifacts as users have them: what format a file is, whether it is
//! whole (gzip stream complete, `.sha256` sidecar matching, custom-format
//! table of contents readable), and which of a folder of backups to use (the
//! newest that is whole; seed 003's "try an older backup"). All of this runs
//! before any restore starts.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sanitize::{FilterOptions, Guard, filter};
use crate::service::postgres::{ClientTool, Postgres};
use crate::{Error, Result};

pub(crate) use crate::scenario::DumpFormat;

/// What inspecting a backup found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Inspection {
    pub path: PathBuf,
    pub format: DumpFormat,
    pub gzip: bool,
    pub bytes: u64,
    /// `Some(true)` matched, `Some(false)` mismatched, None: no sidecar.
    pub sha256_matches: Option<bool>,
    /// Whole and usable; otherwise `problems` says why.
    pub ok: bool,
    pub problems: Vec<String>,
    /// The dump creates the timescaledb extension.
    pub timescaledb: bool,
    /// The TimescaleDB version the dump was taken with (from its
    /// `_timescaledb_catalog.metadata` rows), when it says.
    pub timescaledb_version: Option<String>,
    /// The roles owning the dump's TimescaleDB jobs (`bgw_job.owner`, a
    /// `regrole`: the restore fails where they do not exist, even with
    /// `--no-owner`).
    pub job_owners: JobOwners,
    /// Lines of pg_dump's own stderr found in a plain dump (verbose output
    /// merged into the file, seed 000): exactly what the sanitizer removes.
    pub stderr_lines: u64,
    /// psql commands in a plain dump that would run on the restoring host
    /// or reach another database, and `COPY ... PROGRAM` (line, text; the
    /// first few): a backup holding any is not restored.
    pub refused: Vec<(u64, String)>,
    pub refused_total: u64,
}

impl Inspection {
    /// One line for people: format, size and checksum.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}{}, {} bytes, sha256 {}",
            self.format,
            if self.gzip { " (gzip)" } else { "" },
            self.bytes,
            match self.sha256_matches {
                Some(true) => "matches its sidecar",
                Some(false) => "MISMATCH",
                None => "not given",
            }
        )
    }
}

/// Inspects one backup: [`inspect_file`], then [`inspect_archive`].
pub(crate) fn inspect(path: &Path, server: &Postgres) -> Result<Inspection> {
    let mut i = inspect_file(path, &server.coordinates().database);
    inspect_archive(&mut i, server)?;
    Ok(i)
}

/// What can be told of a backup without a server: that it is a file or a
/// dump folder drill may read (a FIFO, a device or a symlink loop is named
/// as such, and never opened), its format by its magic bytes, whether its
/// name agrees, its `.sha256` sidecar, and for plain SQL the whole stream
/// read through the sanitizer and the guard (a truncated gzip, pg_dump's
/// stderr, commands that would run on the host, no SQL at all).
pub(crate) fn inspect_file(path: &Path, database: &str) -> Inspection {
    let mut i = Inspection {
        path: path.to_owned(),
        format: DumpFormat::Plain,
        gzip: false,
        bytes: 0,
        sha256_matches: None,
        ok: true,
        problems: Vec::new(),
        timescaledb: false,
        timescaledb_version: None,
        job_owners: JobOwners::default(),
        stderr_lines: 0,
        refused: Vec::new(),
        refused_total: 0,
    };
    if let Err(why) = readable_kind(path) {
        i.problems.push(why.0);
    } else if path.is_dir() {
        i.format = DumpFormat::Directory;
        if !path.join("toc.dat").is_file() {
            i.problems
                .push("folder has no toc.dat: not a pg_dump directory-format backup".into());
        }
    } else {
        inspect_regular(&mut i);
    }
    if i.format == DumpFormat::Plain
        && i.problems.is_empty()
        && let Err(e) = scan_plain(&mut i, database)
    {
        i.problems.push(e.to_string());
    }
    i.ok = i.problems.is_empty();
    i
}

/// A regular file: its size, magic bytes against its name, its sidecar.
fn inspect_regular(i: &mut Inspection) {
    let path = i.path.clone();
    let mut head = [0u8; 5];
    let n = match File::open(&path).and_then(|mut f| {
        i.bytes = f.metadata()?.len();
        f.read(&mut head)
    }) {
        Ok(n) => n,
        Err(e) => {
            i.problems.push(format!("cannot read it ({e})"));
            return;
        }
    };
    i.gzip = n >= 2 && head[..2] == [0x1f, 0x8b];
    if n == 5 && &head == b"PGDMP" {
        i.format = DumpFormat::Custom;
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    if i.bytes == 0 {
        i.problems.push("file is empty".into());
    } else if name.ends_with(".gz") && !i.gzip {
        i.problems.push(format!(
            "not gzip: the name ends in .gz, but the file does not begin with gzip's magic bytes 1f 8b (it begins {})",
            hex(&head[..n])
        ));
    } else if [".dump", ".custom", ".backup", ".pgdump"]
        .iter()
        .any(|e| name.ends_with(e))
        && i.format != DumpFormat::Custom
    {
        i.problems.push(format!(
            "not a pg_dump archive: bad magic (a custom-format archive begins with PGDMP; this file begins {})",
            hex(&head[..n])
        ));
    }
    match sidecar(&path) {
        Ok(Some(expected)) => match sha256_file(&path) {
            Ok(actual) => {
                i.sha256_matches = Some(actual == expected);
                if actual != expected {
                    i.problems.push(format!(
                        "sha256 mismatch: sidecar says {expected}, file is {actual}"
                    ));
                }
            }
            Err(e) => i.problems.push(e.to_string()),
        },
        Ok(None) => {}
        Err(e) => i.problems.push(e.to_string()),
    }
}

/// Custom and directory archives, with the server's own pg_restore: the
/// table of contents, a full read (a cut-off archive shows here), and
/// TimescaleDB's version when the archive holds the extension.
pub(crate) fn inspect_archive(i: &mut Inspection, server: &Postgres) -> Result<()> {
    if i.format == DumpFormat::Plain || !i.problems.is_empty() {
        return Ok(());
    }
    let path = &server.server.readable(&i.path)?;
    let out = server
        .client(ClientTool::PgRestore)
        .arg("--list")
        .arg(path)
        .output()
        .map_err(Error::spawn("pg_restore --list"))?;
    // --list reads only the table of contents: read the data too, so a
    // cut-off archive is caught before the restore.
    let full = server
        .client(ClientTool::PgRestore)
        .args(["-f", "/dev/null"])
        .arg(path)
        .output()
        .map_err(Error::spawn("pg_restore -f /dev/null"))?;
    if out.status.success() && !full.status.success() {
        i.problems.push(format!(
            "the archive is damaged or cut off: {}",
            String::from_utf8_lossy(&full.stderr).trim()
        ));
    } else if out.status.success() {
        let toc = String::from_utf8_lossy(&out.stdout);
        i.timescaledb = toc.lines().any(|l| {
            l.contains("EXTENSION - timescaledb") || l.contains(" EXTENSION public timescaledb")
        });
        if i.timescaledb {
            // The metadata table's data, as SQL on stdout.
            let meta = server
                .client(ClientTool::PgRestore)
                .args([
                    "--data-only",
                    "--schema=_timescaledb_catalog",
                    "--table=metadata",
                    "-f",
                    "-",
                ])
                .arg(path)
                .output()
                .map_err(Error::spawn("pg_restore --data-only --table=metadata"))?;
            i.timescaledb_version = String::from_utf8_lossy(&meta.stdout)
                .lines()
                .find_map(version_row);
            let jobs = server
                .client(ClientTool::PgRestore)
                .args(["--data-only", "--table=bgw_job", "-f", "-"])
                .arg(path)
                .output()
                .map_err(Error::spawn("pg_restore --data-only --table=bgw_job"))?;
            for line in String::from_utf8_lossy(&jobs.stdout).lines() {
                i.job_owners.line(line);
            }
        }
    } else {
        i.problems.push(format!(
            "pg_restore cannot read it: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    i.ok = i.problems.is_empty();
    Ok(())
}

/// Ok when `path` is a regular file or a folder this process may read;
/// otherwise what it is instead. Never opens anything (a FIFO would block).
pub(crate) fn readable_kind(path: &Path) -> std::result::Result<(), crate::errors::Refusal> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err("a symlink loop (too many levels of symbolic links): point --backup at the file itself".into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if std::fs::symlink_metadata(path).is_ok() {
                "a symlink to nothing (its target does not exist)".into()
            } else {
                "no such file or folder".into()
            });
        }
        Err(e) => return Err(format!("cannot look at it ({e})").into()),
    };
    let t = meta.file_type();
    let other = if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        None
    };
    if let Some(what) = other {
        return Err(
            format!("{what}, not a file: drill reads backups from files and dump folders").into(),
        );
    }
    let readable = if t.is_dir() {
        std::fs::read_dir(path).map(|_| ())
    } else {
        File::open(path).map(|_| ())
    };
    readable.map_err(|e| {
        format!("cannot read it ({e}); run drill as a user who can, or copy the backup").into()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the whole plain dump (through gzip) as drill would restore it:
/// through the sanitizer and the guard. A truncated or corrupt gzip stream,
/// pg_dump's stderr and commands that would run on the host show up here,
/// before psql sees a byte.
fn scan_plain(i: &mut Inspection, database: &str) -> Result<()> {
    let file = File::open(&i.path).map_err(Error::io("read", &i.path))?;
    let reader: Box<dyn Read> = if i.gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let reader = BufReader::with_capacity(256 * 1024, reader);
    let opts = FilterOptions {
        remove_stderr: true,
        guard: Some(Guard {
            database: database.to_string(),
            restrict_key: None,
        }),
    };
    let mut facts = PlainFacts::default();
    let report = match filter(reader, &mut facts, &opts) {
        Ok(r) => r,
        Err(e) => {
            let total = facts.bytes;
            i.problems.push(if i.gzip {
                format!("gzip stream is damaged or truncated after {total} bytes of SQL ({e})")
            } else {
                format!("cannot read after {total} bytes ({e})")
            });
            return Ok(());
        }
    };
    i.stderr_lines = report.removed;
    i.refused = report.refused;
    i.refused_total = report.refused_total;
    i.timescaledb = facts.timescaledb;
    i.timescaledb_version = facts.timescaledb_version;
    i.job_owners = facts.job_owners;
    if report.bytes_in == 0 {
        i.problems.push("the dump holds no SQL".into());
    } else if facts.binary {
        i.problems.push(format!(
            "binary data, not SQL (a NUL byte at byte {}){}",
            facts.first_nul,
            if i.gzip {
                ", inside a valid gzip stream"
            } else {
                ""
            }
        ));
    } else if !facts.header && facts.statements == 0 {
        i.problems.push(format!(
            "no SQL statements in {} bytes of text: not a pg_dump plain dump",
            report.bytes_in
        ));
    } else if !facts.header {
        i.problems
            .push("not written by pg_dump: no `-- PostgreSQL database dump` header line".into());
    } else if !facts.complete {
        // pg_dump died mid-way (`pg_dump | gzip` still closes the gzip
        // stream): the last line pg_dump writes is missing.
        i.problems.push(format!("the dump is cut off: pg_dump's closing line `-- PostgreSQL database dump complete` is missing after {} bytes", report.bytes_in));
    }
    Ok(())
}

/// What the lines of a plain dump say about it, read as they stream by.
#[derive(Debug, Default)]
struct PlainFacts {
    bytes: u64,
    partial: Vec<u8>,
    /// pg_dump's first lines: `-- PostgreSQL database dump`.
    header: bool,
    /// Lines ending a statement (`;`).
    statements: u64,
    /// A NUL byte: not text at all.
    binary: bool,
    first_nul: u64,
    complete: bool,
    timescaledb: bool,
    timescaledb_version: Option<String>,
    job_owners: JobOwners,
}

/// The owners named in a dump's `bgw_job` COPY block, read line by line.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct JobOwners {
    /// Inside the block: the owner column's index.
    #[serde(skip)]
    column: Option<usize>,
    pub names: std::collections::BTreeSet<String>,
}

impl JobOwners {
    pub(crate) fn line(&mut self, line: &str) {
        match self.column {
            None => {
                if let Some(rest) = line
                    .strip_prefix("COPY _timescaledb_config.bgw_job (")
                    .or_else(|| line.strip_prefix("COPY _timescaledb_catalog.bgw_job ("))
                {
                    let cols = rest.split(')').next().unwrap_or_default();
                    self.column = cols.split(", ").position(|c| c.trim() == "owner");
                }
            }
            Some(_) if line == "\\." => self.column = None,
            Some(i) => {
                if let Some(owner) = line.split('\t').nth(i)
                    && owner != "\\N"
                    && !owner.is_empty()
                {
                    self.names.insert(owner.trim_matches('"').to_string());
                }
            }
        }
    }
}

impl PlainFacts {
    fn line(&mut self, line: &[u8]) {
        if line.starts_with(b"-- PostgreSQL database dump complete") {
            self.complete = true;
        } else if line.starts_with(b"-- PostgreSQL database dump") {
            self.header = true;
        }
        if line.trim_ascii_end().ends_with(b";") {
            self.statements += 1;
        }
        if !self.timescaledb
            && line.starts_with(b"CREATE EXTENSION")
            && line.windows(11).any(|w| w == b"timescaledb")
        {
            self.timescaledb = true;
        }
        if self.timescaledb
            && self.timescaledb_version.is_none()
            && line.starts_with(b"timescaledb_version\t")
        {
            self.timescaledb_version = version_row(&String::from_utf8_lossy(line));
        }
        // Only the bgw_job block is decoded: every other line of a large
        // dump passes with one prefix comparison.
        if self.timescaledb
            && (self.job_owners.column.is_some() || line.starts_with(b"COPY _timescaledb_"))
        {
            self.job_owners.line(&String::from_utf8_lossy(line));
        }
    }
}

impl std::io::Write for PlainFacts {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.binary
            && let Some(at) = buf.iter().position(|&c| c == 0)
        {
            self.binary = true;
            self.first_nul = self.bytes + at as u64;
        }
        self.bytes += buf.len() as u64;
        let mut rest = buf;
        while let Some(n) = rest.iter().position(|&c| c == b'\n') {
            if self.partial.is_empty() {
                self.line(&rest[..n]);
            } else {
                self.partial.extend_from_slice(&rest[..n]);
                let whole = std::mem::take(&mut self.partial);
                self.line(&whole);
            }
            rest = &rest[n + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last);
        }
        Ok(())
    }
}

/// `timescaledb_version<TAB>2.22.1<TAB>f` (a metadata COPY row) → `2.22.1`.
fn version_row(line: &str) -> Option<String> {
    let mut f = line.trim_end().split('\t');
    (f.next()? == "timescaledb_version")
        .then(|| f.next().map(str::to_string))
        .flatten()
}

/// The expected digest from `<file>.sha256` (sha256sum's format), if any.
fn sidecar(path: &Path) -> Result<Option<String>> {
    let mut name = path.as_os_str().to_owned();
    name.push(".sha256");
    let side = PathBuf::from(name);
    match std::fs::read_to_string(&side) {
        Ok(text) => {
            let digest = text
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::bad_input(
                    format!("{} is not a sha256 sidecar", side.display()),
                    "expected `<64 hex digits>  <file name>` as written by sha256sum",
                ));
            }
            Ok(Some(digest))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &side)(e)),
    }
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(Error::io("read", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Whether a path looks like a pg_dump backup at all: a gzip stream, a
/// custom-format archive, a directory dump, or plain SQL with pg_dump's
/// header. Sidecars, logs and notes are not candidates.
pub(crate) fn looks_like_dump(p: &Path) -> bool {
    if p.is_dir() {
        return p.join("toc.dat").is_file();
    }
    if !std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
        return false; // a FIFO would block the read below
    }
    let mut head = vec![0u8; 4096];
    let n = File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"PGDMP")
        || head.windows(24).any(|w| w == b"PostgreSQL database dump")
}

/// Candidates in a folder, newest first (by modification time, then name):
/// dumps and dump folders, not sidecars or logs.
pub fn candidates(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map_err(Error::io("list", dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.starts_with('.')
                && !name.ends_with(".sha256")
                && !name.ends_with(".log")
                && looks_like_dump(p)
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::JobOwners;

    #[test]
    fn job_owners_are_read_from_the_bgw_job_copy_block() {
        let mut o = JobOwners::default();
        for line in [
            "COPY _timescaledb_config.bgw_job (id, application_name, schedule_interval, owner, scheduled) FROM stdin;",
            "1000\tColumnstore Policy [1000]\t1 day\tnexwave\tt",
            "1001\tRefresh Continuous Aggregate Policy [1001]\t1 day\t\"Ops Team\"\tt",
            "\\.",
            "1002\tnot a job row\t1 day\tintruder\tt",
        ] {
            o.line(line);
        }
        assert_eq!(
            o.names.into_iter().collect::<Vec<_>>(),
            vec!["Ops Team".to_string(), "nexwave".to_string()]
        );
    }
}
