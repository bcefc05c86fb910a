//! Physical backups and point-in-time recovery: a continuous WAL archive
//! (`archive_mode = on`), base backups (`pg_basebackup -X stream`, or
//! pgBackRest, [`backrest`]) on the schedule, and the `pitr` step that
//! restores one and replays the archive to a target.
//!
//! Everything physical lives in one folder of the run that survives the
//! server's faults (a wipe destroys the data directory or volume, never
//! this folder): `wal/` (the archive), `base/N/` (base backups), `repo/`
//! (pgBackRest's repository), `unarchived-wal/` (what the PostgreSQL
//! manual's recovery step 2 saves from the old `pg_wal`). It is shared
//! with the server's container at the same path, like the work dir.
//!
//! A recovery is judged by the server's own log ([`log::RecoveryLog`]),
//! not by its answering: PostgreSQL promotes silently at the first segment
//! the archive lacks when there is no target.

pub(crate) mod archive;
pub(crate) mod backrest;
pub(crate) mod log;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use archive::Segment;
use log::RecoveryLog;

use super::{ClientTool, Postgres};
use crate::backend::{Stop, sh_quote};
use crate::errors::Refusal;
use crate::scenario::{ArchiveDamage, BackupPick, BaseFormat, RecoveryTarget};
use crate::service::{Lifecycle, StepDone};
use crate::workload::Boundary;
use crate::{Error, Result};

/// The run's folder of physical backups, and what was taken into it.
#[derive(Debug)]
pub(crate) struct Physical {
    root: tempfile::TempDir,
    /// pgBackRest's stanza and config, when it is the backup method.
    pub(crate) backrest: Option<backrest::Backrest>,
    /// Base backups in the order taken (drill's own `pg_basebackup`s; for
    /// pgBackRest, the moments its backups ended).
    pub(crate) bases: Vec<BaseBackup>,
}

/// Where `corrupt-segment` damage starts: past the long page header (40
/// bytes) and the first record, inside the records that follow.
const CORRUPT_FROM: u64 = 512;

/// One base backup.
#[derive(Debug, Clone)]
pub(crate) struct BaseBackup {
    /// Its folder (`pg_basebackup -D`), or pgBackRest's backup label.
    pub(crate) location: String,
    pub(crate) format: BaseFormat,
    /// The first WAL segment it needs.
    pub(crate) start: Segment,
    /// When it began and finished: a recovery target must lie after the
    /// end; `immediate` stops between the two.
    pub(crate) started_at: Instant,
    pub(crate) ended_at: Instant,
    /// The cluster it was taken of (`pg_control_system()`).
    pub(crate) system_id: String,
    pub(crate) bytes: u64,
}

impl Physical {
    /// Makes the folder (marked as the run's, so `cargo xtask clean` finds
    /// it after a killed run).
    pub(crate) fn create(run_id: &str, backrest: bool) -> Result<Physical> {
        let root = crate::backend::native::run_dir(run_id, Some("archive"))?;
        for sub in ["wal", "base", "unarchived-wal"] {
            let d = root.path().join(sub);
            std::fs::create_dir(&d).map_err(Error::io("create", &d))?;
        }
        let backrest = backrest.then(|| backrest::Backrest::new(root.path(), backrest::STANZA));
        Ok(Physical {
            root,
            backrest,
            bases: Vec::new(),
        })
    }

    /// The folder, to share with the server's container.
    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    /// The WAL archive (`base-backup` and `shell`).
    pub(crate) fn wal(&self) -> PathBuf {
        self.root().join("wal")
    }

    /// The server settings that archive every segment.
    pub(crate) fn settings(&self) -> Vec<(String, String)> {
        let command = match &self.backrest {
            Some(b) => b.archive_push(),
            None => {
                // Never overwrite a different segment; a copy a kill cut
                // short never takes the segment's name (PostgreSQL's
                // basic_archive does the same).
                let dest = sh_quote(&format!("{}/%f", self.wal().display()));
                let tmp = sh_quote(&format!("{}/.%f.tmp", self.wal().display()));
                format!(
                    "if [ -f {dest} ]; then cmp -s %p {dest}; else cp %p {tmp} && mv {tmp} {dest}; fi"
                )
            }
        };
        vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), command),
            ("wal_level".into(), "replica".into()),
        ]
    }

    /// After a start: the folder belongs to the server's user (who archives
    /// into it), as the data directory does.
    pub(crate) fn hand_to_server(&self, pg: &Postgres) -> Result<()> {
        let root = sh_quote(&self.root().display().to_string());
        pg.data_shell(&format!("chown -R \"$(stat -c %u:%g \"$DATA\")\" {root}"))?;
        Ok(())
    }

    /// Makes the archive (not) writable for the server's user: a failing
    /// `archive_command`, as a full or read-only archive volume makes it.
    pub(crate) fn archive_writable(&self, writable: bool) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = match &self.backrest {
            Some(b) => b.repo().join("archive"),
            None => self.wal(),
        };
        let mode = if writable { 0o700 } else { 0o500 };
        let mut dirs = vec![dir.clone()];
        if let Ok(entries) = walk_dirs(&dir) {
            dirs.extend(entries);
        }
        for d in dirs {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                .map_err(Error::io("chmod", &d))?;
        }
        Ok(())
    }

    /// Where the next base backup goes.
    fn next_base_dir(&self) -> PathBuf {
        self.root()
            .join("base")
            .join(format!("{:03}", self.bases.len() + 1))
    }

    /// The file names in the archive.
    pub(crate) fn archived(&self) -> Result<Vec<String>> {
        let dir = match &self.backrest {
            Some(b) => b.archive_dir()?,
            None => self.wal(),
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            // pgBackRest keeps segments in one folder per 256 (`0000000100000000/`).
            if p.is_dir() {
                for f in std::fs::read_dir(&p)
                    .map_err(Error::io("read", &p))?
                    .flatten()
                {
                    out.push(f.file_name().to_string_lossy().into_owned());
                }
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The path of an archived segment.
    fn segment_path(&self, s: Segment) -> Result<Option<PathBuf>> {
        let dir = match &self.backrest {
            Some(b) => b.archive_dir()?.join(&s.name()[..16]),
            None => self.wal(),
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        Ok(entries.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(Segment::from_file)
                == Some(s)
        }))
    }

    /// The archive's continuity from the oldest base backup on.
    pub(crate) fn continuity(&self) -> Result<Option<archive::Continuity>> {
        let Some(first) = self.bases.first() else {
            return Ok(None);
        };
        self.continuity_from(first.start).map(Some)
    }

    /// The archive's continuity from `start` on.
    pub(crate) fn continuity_from(&self, start: Segment) -> Result<archive::Continuity> {
        let files = self.archived()?;
        Ok(archive::continuity(start, files.iter().map(String::as_str)))
    }

    /// Fault: one archived segment after the first base backup's start
    /// and before the newest backup's (or in the middle of what followed)
    /// is removed or overwritten; says which.
    pub(crate) fn damage(&self, how: ArchiveDamage) -> Result<String> {
        let Some(c) = self.continuity()? else {
            return Ok("no base backup was taken: the archive was left alone".into());
        };
        let Some(newest) = c.newest else {
            return Ok("the archive holds no segment yet: nothing to damage".into());
        };
        let upper = self
            .bases
            .last()
            .filter(|b| self.bases.len() > 1 && b.start.number > c.from.number + 1)
            .map_or(newest.number, |b| b.start.number);
        // Strictly between the first backup's start and the upper bound.
        let victim = Segment {
            number: c.from.number + (upper - c.from.number).div_ceil(2).max(1),
            ..c.from
        };
        let victim = if victim.number >= newest.number && newest.number > c.from.number {
            Segment {
                number: newest.number - 1,
                ..victim
            }
        } else {
            victim
        };
        let Some(path) = self.segment_path(victim)? else {
            return Ok(format!(
                "segment {victim} is not in the archive: nothing to damage"
            ));
        };
        match how {
            ArchiveDamage::RemoveSegment => {
                std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                Ok(format!(
                    "archived segment {victim} removed ({})",
                    path.display()
                ))
            }
            ArchiveDamage::CorruptSegment => {
                use std::io::{Seek, SeekFrom, Write};
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(Error::io("open", &path))?;
                // Just past the segment's long page header, where its first
                // records are: a segment switched early by archive_timeout
                // is mostly unused zeros, and damage there harms nothing.
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                let at = CORRUPT_FROM.min(len);
                f.seek(SeekFrom::Start(at))
                    .and_then(|_| f.write_all(&vec![0xa5u8; (16 * 1024).min((len - at) as usize)]))
                    .map_err(Error::io("overwrite", &path))?;
                Ok(format!(
                    "archived segment {victim} overwritten from byte {at} (its first records) ({})",
                    path.display()
                ))
            }
        }
    }
}

/// `pg_basebackup -X stream` into the physical folder.
pub(crate) fn base_backup(
    pg: &Postgres,
    phys: &Physical,
    format: BaseFormat,
    limit: Duration,
) -> Result<BaseBackup> {
    let dir = phys.next_base_dir();
    let started_at = Instant::now();
    let system_id = pg.psql(
        "SELECT system_identifier FROM pg_control_system()",
        "postgres",
    )?;
    let fmt = match format {
        BaseFormat::Plain => "plain",
        BaseFormat::Tar => "tar",
    };
    let mut cmd = pg.client(ClientTool::PgBasebackup);
    let label = format!("drill base backup {}", phys.bases.len() + 1);
    cmd.arg("-D").arg(&dir).args([
        "-F",
        fmt,
        "-X",
        "stream",
        "-c",
        "fast",
        "--no-password",
        "-l",
        &label,
    ]);
    let run = crate::shell::output_within(&mut cmd, b"", limit)?.output;
    if !run.status.success() {
        return Err(Error::command(
            format!("pg_basebackup -D {} -F {fmt} -X stream", dir.display()),
            &run,
        ));
    }
    let ended_at = Instant::now();
    let backup_label = match format {
        BaseFormat::Plain => std::fs::read_to_string(dir.join("backup_label"))
            .map_err(Error::io("read", dir.join("backup_label")))?,
        BaseFormat::Tar => {
            let tar = dir.join("base.tar");
            let out = std::process::Command::new("tar")
                .arg("-xOf")
                .arg(&tar)
                .arg("backup_label")
                .output()
                .map_err(Error::spawn("tar -xOf base.tar backup_label"))?;
            if !out.status.success() {
                return Err(Error::command(
                    format!("tar -xOf {} backup_label", tar.display()),
                    &out,
                ));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let start = start_segment(&backup_label).ok_or_else(|| {
        Error::unexpected(
            "read the base backup's backup_label",
            format!("no `START WAL LOCATION` line in:\n{backup_label}"),
        )
    })?;
    Ok(BaseBackup {
        location: dir.display().to_string(),
        format,
        start,
        started_at,
        ended_at,
        system_id,
        bytes: dir_bytes(&dir),
    })
}

/// `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)`.
pub(crate) fn start_segment(backup_label: &str) -> Option<Segment> {
    backup_label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|rest| rest.split("(file ").nth(1))
        .and_then(|f| Segment::parse(f.trim_end_matches(')').trim()))
}

/// Every folder under `dir`.
fn walk_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_dirs(&p)?);
            out.push(p);
        }
    }
    Ok(out)
}

/// Bytes under `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return std::fs::metadata(dir).map(|m| m.len()).unwrap_or(0);
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// A target resolved on the drill's clock.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The `-c` recovery settings that say where to stop.
    pub(crate) settings: Vec<(String, String)>,
    /// Where the ledger judges the recovery (None: latest, every
    /// acknowledged write must be back).
    pub(crate) boundary: Option<Boundary>,
    /// pgBackRest's `--type` and `--target`.
    pub(crate) backrest: (String, Option<String>),
}

/// Resolves `target` against the fault's first instant and the restore
/// point's, and the newest base backup's end (for `immediate`).
pub(crate) fn resolve(
    target: &RecoveryTarget,
    fault_at: Option<Instant>,
    restore_point: Option<(&str, Instant, Instant)>,
    base: Option<(Instant, Instant)>,
) -> std::result::Result<Resolved, Refusal> {
    let wall = |at: Instant| -> String {
        let now_wall = SystemTime::now();
        let now = Instant::now();
        let t = if at <= now {
            now_wall - (now - at)
        } else {
            now_wall + (at - now)
        };
        // PostgreSQL reads ISO 8601 with a zone; microseconds, as it keeps them.
        humantime::format_rfc3339_micros(t)
            .to_string()
            .replace('T', " ")
            .replace('Z', "+00")
    };
    Ok(match target {
        RecoveryTarget::Latest => Resolved {
            settings: vec![],
            boundary: None,
            backrest: ("default".into(), None),
        },
        RecoveryTarget::Immediate => Resolved {
            settings: vec![("recovery_target".into(), "immediate".into())],
            // Consistency lies between the newest backup's start and end.
            boundary: base.map(|(since, at)| Boundary {
                since,
                at,
                label: "immediate (the base backup's end)".into(),
            }),
            backrest: ("immediate".into(), None),
        },
        RecoveryTarget::Fault { offset_ms } => {
            let fault = fault_at.ok_or(Refusal::from("no fault has happened yet"))?;
            let shift = Duration::from_millis(offset_ms.unsigned_abs());
            let at = if *offset_ms < 0 {
                fault
                    .checked_sub(shift)
                    .ok_or(Refusal::from("the target lies before the drill began"))?
            } else {
                fault + shift
            };
            let time = wall(at);
            Resolved {
                settings: vec![("recovery_target_time".into(), time.clone())],
                boundary: Some(Boundary {
                    since: at,
                    at,
                    label: format!("{} ({time})", target.describe()),
                }),
                backrest: ("time".into(), Some(time)),
            }
        }
        RecoveryTarget::RestorePoint(name) => {
            // A restore point drill made has a time the ledger can judge
            // by; one in a backup from elsewhere (restore-artifact) has not.
            let boundary = match restore_point {
                Some((made, _, _)) if made != name => {
                    return Err(Refusal(format!(
                        "the restore point made before the fault is `{made}`, not `{name}`"
                    )));
                }
                // The restore point's record lies between the call and its answer.
                Some((_, since, at)) => Some(Boundary {
                    since,
                    at,
                    label: format!("{} ({})", target.describe(), wall(at)),
                }),
                None => None,
            };
            Resolved {
                settings: vec![("recovery_target_name".into(), name.clone())],
                boundary,
                backrest: ("name".into(), Some(name.clone())),
            }
        }
        RecoveryTarget::Lsn(lsn) => Resolved {
            settings: vec![("recovery_target_lsn".into(), lsn.clone())],
            boundary: None,
            backrest: ("lsn".into(), Some(lsn.clone())),
        },
        RecoveryTarget::Time(time) => Resolved {
            settings: vec![("recovery_target_time".into(), time.clone())],
            boundary: None,
            backrest: ("time".into(), Some(time.clone())),
        },
    })
}

/// What a point-in-time recovery did, for the step and the report.
#[derive(Debug)]
pub(crate) struct PitrDone {
    pub(crate) step: StepDone,
    /// Where the ledger judges it, when it promoted.
    pub(crate) boundary: Option<Boundary>,
}

/// How one recovery runs.
pub(crate) struct PitrRun<'a> {
    pub(crate) target: &'a RecoveryTarget,
    pub(crate) resolved: Resolved,
    pub(crate) pick: Option<BackupPick>,
    pub(crate) unarchived_wal: bool,
    pub(crate) delta: bool,
    /// The service's own settings (the archive's included), restored after.
    pub(crate) base_settings: Vec<(String, String)>,
    pub(crate) limit: Duration,
}

/// The base backup a recovery to `boundary` starts from.
fn pick_base<'a>(
    bases: &'a [BaseBackup],
    boundary: Option<&Boundary>,
    pick: Option<BackupPick>,
) -> Option<&'a BaseBackup> {
    let usable = bases
        .iter()
        .filter(|b| boundary.is_none_or(|t| b.ended_at <= t.at));
    match pick {
        Some(BackupPick::Oldest) => usable.min_by_key(|b| b.ended_at),
        _ => usable.max_by_key(|b| b.ended_at),
    }
}

/// Point-in-time recovery with drill's own procedure (the PostgreSQL
/// manual's): stop the server, save the old `pg_wal`'s unarchived segments
/// (same cluster only), empty the data directory, restore the base backup,
/// `recovery.signal`, `restore_command` from the archive and the target's
/// settings with `recovery_target_action = promote`, start, and wait for
/// the promotion. Timed by phase: copy, replay, promotion.
pub(crate) fn pitr(pg: &mut Postgres, phys: &Physical, run: &PitrRun<'_>) -> Result<PitrDone> {
    let Some(base) = pick_base(&phys.bases, run.resolved.boundary.as_ref(), run.pick).cloned()
    else {
        return Ok(PitrDone {
            step: StepDone::refused(format!(
                "no base backup ends before the target {} ({} taken)",
                run.target.describe(),
                phys.bases.len()
            )),
            boundary: None,
        });
    };
    let saved = phys.root().join("unarchived-wal");
    let archive = phys.wal();
    let (copied, save_wal) = match restore_base(pg, &base, Some(&saved), run.unarchived_wal, None) {
        Ok(r) => r,
        Err(e) => {
            return Ok(PitrDone {
                step: StepDone::failed(format!(
                    "restoring base backup {} failed: {e}",
                    base.location
                )),
                boundary: None,
            });
        }
    };
    let restore_command = format!("cp {} %p", sh_quote(&format!("{}/%f", archive.display())));
    let chain = phys.continuity_from(base.start)?;
    start_recovering(pg, run, restore_command, copied, &base, save_wal, &chain)
}

/// Stops the server and puts `base` in place of its data directory, with
/// `recovery.signal`; returns how long that took and whether the old
/// `pg_wal`'s segments were saved into `saved` and brought along (same
/// cluster only, and only when `unarchived_wal`). A `foreign` backup (one
/// drill did not take) gets the settings a disposable server needs: its
/// own `pg_hba.conf` (production's kept beside it), the image's port,
/// listen address and socket ([`FOREIGN_CONFIG`]; what could run anything
/// is overridden on the command line, [`UNTRUSTED_BACKUP_SETTINGS`]).
pub(crate) fn restore_base(
    pg: &mut Postgres,
    base: &BaseBackup,
    saved: Option<&Path>,
    unarchived_wal: bool,
    foreign: Option<&str>,
) -> Result<(Duration, bool)> {
    let copy_started = Instant::now();
    let same_cluster = stop_for_restore(pg, base)?;
    let save_wal = unarchived_wal && same_cluster && saved.is_some();
    let saved = saved
        .map(|p| sh_quote(&p.display().to_string()))
        .unwrap_or_default();
    let b = sh_quote(&base.location);
    // Whatever pg_basebackup wrote: a folder, or base.tar[.gz] with
    // pg_wal.tar[.gz] beside it.
    let restore = format!(
        "if [ -f {b}/base.tar.gz ]; then tar -xzf {b}/base.tar.gz -C \"$DATA\"; \
         elif [ -f {b}/base.tar ]; then tar -xf {b}/base.tar -C \"$DATA\"; \
         else cp -a {b}/. \"$DATA\"/; fi\n\
         mkdir -p \"$DATA/pg_wal\"\n\
         if [ -f {b}/pg_wal.tar.gz ]; then tar -xzf {b}/pg_wal.tar.gz -C \"$DATA/pg_wal\"; \
         elif [ -f {b}/pg_wal.tar ]; then tar -xf {b}/pg_wal.tar -C \"$DATA/pg_wal\"; fi\n\
         rm -f \"$DATA/backup_manifest\" \"$DATA/postmaster.pid\""
    );
    let script = format!(
        "set -e\nowner=$(stat -c %u:%g \"$DATA\")\n\
         {save}\
         find \"$DATA\" -mindepth 1 -delete\n\
         {restore}\n\
         {bring}\
         {foreign}\
         touch \"$DATA/recovery.signal\"\n\
         chown -R \"$owner\" \"$DATA\" && chmod 700 \"$DATA\"\n",
        save = if save_wal {
            save_wal_script(&saved)
        } else {
            String::new()
        },
        bring = if save_wal {
            bring_wal_script(&saved)
        } else {
            String::new()
        },
        foreign = foreign.unwrap_or(""),
    );
    pg.data_shell(&script)?;
    Ok((copy_started.elapsed(), save_wal))
}

/// Settings on the command line (which wins over the backup's
/// `postgresql.conf`, its includes and `postgresql.auto.conf`) of a server
/// started on a backup from elsewhere: nothing in the backup may run a
/// command or load a library on the machine (natively the server is a
/// host process), write outside its data directory, or archive anywhere.
pub(crate) const UNTRUSTED_BACKUP_SETTINGS: &[(&str, &str)] = &[
    ("archive_mode", "off"),
    ("archive_command", ""),
    ("archive_cleanup_command", ""),
    ("recovery_end_command", ""),
    ("local_preload_libraries", ""),
    ("session_preload_libraries", ""),
    ("dynamic_library_path", "$libdir"),
    ("jit", "off"),
    ("ssl", "off"),
    ("ssl_passphrase_command", ""),
    ("external_pid_file", ""),
    ("logging_collector", "off"),
    // A copy of a standby must not follow production's primary.
    ("primary_conninfo", ""),
    ("primary_slot_name", ""),
    // The recovery is judged by its log: in English, to stderr, at LOG.
    ("lc_messages", "C"),
    ("log_destination", "stderr"),
    ("log_min_messages", "warning"),
    ("log_error_verbosity", "default"),
    ("log_line_prefix", "%m [%p] "),
];

/// What drill's own sessions set when they connect to a server restored
/// from a backup from elsewhere: settings the backup's catalog may set per
/// role or database (`ALTER ROLE ... SET`), which the server's command line
/// does not outrank but a session's startup options do.
pub(crate) const UNTRUSTED_SESSION_SETTINGS: &[(&str, &str)] = &[
    ("session_preload_libraries", ""),
    ("local_preload_libraries", ""),
    ("jit", "off"),
];

/// Shell lines that keep the old `pg_wal`'s segments in `saved` (a quoted
/// folder), never replacing one kept before: the first copy of a segment
/// is the original cluster's.
pub(crate) fn save_wal_script(saved: &str) -> String {
    format!(
        "for f in \"$DATA\"/pg_wal/0*; do [ -f \"$f\" ] && cp -n \"$f\" {saved}/ || true; done\n"
    )
}

/// Shell lines that bring the kept segments into the restored `pg_wal`.
pub(crate) fn bring_wal_script(saved: &str) -> String {
    format!("for f in {saved}/0*; do [ -f \"$f\" ] && cp \"$f\" \"$DATA/pg_wal/\" || true; done\n")
}

/// Stops the server before `base` replaces its data; whether it runs the
/// cluster `base` was taken of (then its `pg_wal` is worth saving). The
/// same cluster stops gracefully, so its last segments reach the archive;
/// a fresh one (after a wipe) has nothing of ours to archive, and its
/// archiver would retry for seconds: it is killed.
pub(crate) fn stop_for_restore(pg: &mut Postgres, base: &BaseBackup) -> Result<bool> {
    let id = match pg.psql(
        "SELECT system_identifier FROM pg_control_system()",
        "postgres",
    ) {
        Ok(id) => Some(id),
        // Down (a `stop` step, a crash): its pg_control still says.
        Err(_) => system_id_on_disk(pg),
    };
    let same_cluster = !base.system_id.is_empty() && id.is_some_and(|id| id == base.system_id);
    pg.server_mut().stop(if same_cluster {
        Stop::Graceful
    } else {
        Stop::Kill
    })?;
    Ok(same_cluster)
}

/// The system identifier in the data directory's `pg_control`
/// (`pg_controldata`, natively from the server's own binaries).
fn system_id_on_disk(pg: &Postgres) -> Option<String> {
    let path = match pg.info().backend {
        crate::vocab::BackendKind::Native => {
            format!("PATH={}:\"$PATH\"; ", sh_quote(&pg.info().source))
        }
        crate::vocab::BackendKind::Docker => String::new(),
    };
    let out = pg
        .data_shell(&format!(
            "{path}pg_controldata \"$DATA\" | sed -n 's/^Database system identifier: *//p'"
        ))
        .ok()?;
    let id = String::from_utf8_lossy(&out).trim().to_string();
    (!id.is_empty()).then_some(id)
}

/// What a backup from elsewhere needs to start as a disposable server: a
/// `pg_hba.conf` that lets the drill in (production's is kept as
/// `pg_hba.conf.production`; the server listens on loopback or a container
/// port published on 127.0.0.1 only), and settings that would reach
/// outside it or need files it lacks turned off (later lines of
/// `postgresql.auto.conf` win; the command line wins over both).
pub(crate) const FOREIGN_CONFIG: &str = "\
    rm -f \"$DATA/standby.signal\"\n\
    [ -f \"$DATA/pg_hba.conf\" ] && mv \"$DATA/pg_hba.conf\" \"$DATA/pg_hba.conf.production\"\n\
    printf 'local all all trust\\nhost all all all trust\\nhost replication all all trust\\n' > \"$DATA/pg_hba.conf\"\n\
    touch \"$DATA/postgresql.conf\" \"$DATA/pg_ident.conf\"\n\
    printf \"\\n# drill: a disposable copy\\nhba_file = '%s/pg_hba.conf'\\nident_file = '%s/pg_ident.conf'\\nport = '5432'\\nlisten_addresses = '*'\\nunix_socket_directories = '/var/run/postgresql'\\n\" \"$DATA\" \"$DATA\" >> \"$DATA/postgresql.auto.conf\"\n";

/// Starts the server on a restored data directory with the recovery
/// settings, waits for the promotion (or the server's refusal), and reads
/// what happened from its log.
pub(crate) fn start_recovering(
    pg: &mut Postgres,
    run: &PitrRun<'_>,
    restore_command: String,
    copied: Duration,
    base: &BaseBackup,
    saved_wal: bool,
    chain: &archive::Continuity,
) -> Result<PitrDone> {
    let mut settings = run.base_settings.clone();
    settings.push(("restore_command".into(), restore_command));
    settings.push(("recovery_target_action".into(), "promote".into()));
    // Each recovery replays the history the fault interrupted, not an
    // earlier recovery's timeline.
    settings.push(("recovery_target_timeline".into(), "current".into()));
    settings.extend(run.resolved.settings.iter().cloned());
    pg.set_settings(settings);
    let started = Instant::now();
    let came_up = pg.start_again();
    pg.set_settings(run.base_settings.clone());
    let promoted = came_up.and_then(|()| wait_promoted(pg, run.limit, started));
    let log = RecoveryLog::parse(&pg.server().log_tail(20_000));
    let total = started.elapsed();
    let phases = match (log.replay_ms, log.promote_ms) {
        (Some(r), Some(p)) => format!(
            "copy {}, replay {}, promote {}",
            crate::fmt_duration(copied),
            crate::fmt_duration(Duration::from_millis(r as u64)),
            crate::fmt_duration(Duration::from_millis(p as u64))
        ),
        _ => format!(
            "copy {}, replay and promote {}",
            crate::fmt_duration(copied),
            crate::fmt_duration(total)
        ),
    };
    let from = format!(
        "base backup {} ({}, {} MB, from {}){}",
        base.location,
        match base.format {
            BaseFormat::Plain => "plain",
            BaseFormat::Tar => "tar",
        },
        base.bytes / 1_000_000,
        base.start,
        if saved_wal {
            " + the old pg_wal's unarchived segments"
        } else {
            ""
        }
    );
    let evidence = log.evidence();
    // With no target PostgreSQL promotes at the first segment it cannot
    // fetch, without a warning: compare with what the archive holds.
    // Replay may also end early without a missing file: at a damaged
    // record (its segment is older than the archive's newest).
    let ended_in = log
        .redo_done_at
        .as_deref()
        .and_then(|lsn| Segment::of_lsn(chain.from.timeline, lsn));
    let stopped_early = match (ended_in, chain.newest, &log.end_of_wal) {
        (Some(e), Some(n), Some(why)) if chain.missing.is_empty() && e.number < n.number => {
            Some(format!(
                "recovery to latest stopped in segment {e}, before the archive's newest {n}, and promoted without a warning: {why}; replay ended at {}",
                log.redo_done_at.as_deref().unwrap_or("?")
            ))
        }
        _ => None,
    };
    let short = match (run.target, chain.missing.first()) {
        (RecoveryTarget::Latest, None) => stopped_early,
        (RecoveryTarget::Latest, Some(first)) => Some(format!(
            "recovery to latest stopped at the archive's gap and promoted without a warning: first missing segment {first}, {} archived segments after it never replayed (newest {}); replay ended at {}{}",
            chain.newest.map_or(0, |n| n.number - first.number),
            chain.newest.map_or("?".into(), |n| n.to_string()),
            log.redo_done_at.as_deref().unwrap_or("?"),
            log.last_completed
                .as_deref()
                .map_or(String::new(), |t| format!(
                    ", last completed transaction at {t}"
                ))
        )),
        _ => None,
    };
    let reached = match run.target {
        RecoveryTarget::Latest => short.is_none(),
        _ => log.stopping.is_some(),
    };
    let mut step = match promoted {
        Ok(()) if reached => StepDone::done(format!(
            "{from}; {} segments restored from the archive{}; {}; promoted on timeline {}; {phases}",
            log.restored.len(),
            log.replayed_bytes().map_or(String::new(), |b| format!(
                ", {} of WAL replayed",
                crate::vocab::fmt_bytes(b)
            )),
            log.stopping
                .clone()
                .or(log
                    .last_completed
                    .clone()
                    .map(|t| format!("last completed transaction at {t}")))
                .unwrap_or_else(|| format!(
                    "redo done at {}",
                    log.redo_done_at.as_deref().unwrap_or("?")
                )),
            log.new_timeline.map_or("?".into(), |t| t.to_string()),
        )),
        Ok(()) => {
            let why = short.clone().unwrap_or_else(|| {
                format!(
                    "promoted WITHOUT reaching the target {} (the log has no `recovery stopping` line)",
                    run.target.describe()
                )
            });
            StepDone {
                ok: false,
                clean: false,
                detail: format!("{from}; {why}"),
                errors: vec![why],
                status: "target not reached".into(),
                evidence,
                wal_bytes: None,
            }
        }
        Err(e) => {
            let why = match log.target_missed() {
                Some(line) => format!(
                    "target {} not reached: {line}; replay ended at {}{}",
                    run.target.describe(),
                    log.redo_done_at.as_deref().unwrap_or("?"),
                    log.last_completed
                        .as_deref()
                        .map_or(String::new(), |t| format!(
                            ", last completed transaction at {t}"
                        ))
                ),
                None => format!("the server did not come back from recovery: {e}"),
            };
            StepDone {
                ok: false,
                clean: false,
                detail: format!("{from}; {why}"),
                errors: vec![why.clone()],
                status: "target not reached".into(),
                evidence: format!("{evidence}\n{}", pg.server().log_tail(15)),
                wal_bytes: None,
            }
        }
    };
    let boundary = step.ok.then(|| run.resolved.boundary.clone()).flatten();
    // Replay is a fact whether or not the target was reached.
    step.wal_bytes = log.replayed_bytes();
    Ok(PitrDone { step, boundary })
}

/// Polls until the server leaves recovery; Err when it stops (a FATAL
/// ended recovery) or `limit` passes.
fn wait_promoted(pg: &mut Postgres, limit: Duration, since: Instant) -> Result<()> {
    loop {
        pg.server_mut().alive()?;
        if let Ok(v) = pg.psql("SELECT pg_is_in_recovery()", "postgres")
            && v == "f"
        {
            return Ok(());
        }
        if since.elapsed() > limit {
            return Err(Error::unexpected(
                "wait for the promotion",
                format!(
                    "still in recovery after {}",
                    crate::fmt_duration(since.elapsed())
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// drill's own archive check as a step: continuity from the oldest base
/// backup, then `pg_waldump` over what is there, which stops at the first
/// damaged record.
pub(crate) fn check_archive(pg: &Postgres, phys: &Physical) -> Result<StepDone> {
    let Some(c) = phys.continuity()? else {
        return Ok(StepDone::refused(
            "no base backup was taken: nothing to check the archive from",
        ));
    };
    if !c.complete() {
        // Which base backups still reach the archive's end: a recovery to
        // latest must start from one of them.
        let files = phys.archived()?;
        let from_each: Vec<archive::Continuity> = phys
            .bases
            .iter()
            .map(|b| archive::continuity(b.start, files.iter().map(String::as_str)))
            .collect();
        let mut reach = Vec::new();
        for (i, (b, from)) in phys.bases.iter().zip(&from_each).enumerate() {
            reach.push(format!(
                "backup {} ({}): {}",
                i + 1,
                b.location,
                if from.complete() {
                    "reaches the newest segment".to_string()
                } else {
                    format!(
                        "stops before {}",
                        from.missing.first().map_or("?".into(), |m| m.to_string())
                    )
                }
            ));
        }
        let usable = from_each.iter().any(archive::Continuity::complete);
        let why = format!("{}; {}", c.describe(), reach.join("; "));
        return Ok(StepDone {
            ok: usable,
            clean: false,
            detail: why.clone(),
            errors: vec![why.clone()],
            status: "gap in the archive".into(),
            evidence: why,
            wal_bytes: None,
        });
    }
    if phys.backrest.is_some() {
        // pgBackRest's segments are compressed with a checksum in their
        // name: `pgbackrest verify` reads them.
        return Ok(StepDone::done(c.describe()));
    }
    let newest = c.newest.expect("complete");
    let mut cmd = pg.client(ClientTool::PgWaldump);
    cmd.arg("-q")
        .arg("-p")
        .arg(phys.wal())
        .arg(c.from.name())
        .arg(newest.name());
    let out = crate::shell::output_within(&mut cmd, b"", Duration::from_secs(300))?.output;
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // pg_waldump ends with an error at the end of WAL, always; any other
    // failure (a file it cannot read) says nothing about the records.
    let read_to_an_end = out.status.success() || text.contains("error in WAL record at");
    if !read_to_an_end {
        let why = format!("pg_waldump could not read the archive: {text}");
        return Ok(StepDone {
            ok: false,
            clean: false,
            detail: why.clone(),
            errors: vec![why.clone()],
            status: "archive unreadable".into(),
            evidence: text,
            wal_bytes: None,
        });
    }
    // pg_waldump stops at the first record it cannot read: at the end of
    // the newest segment that is the end of WAL; before it, damage.
    let stopped_in = text
        .split(" at ")
        .nth(1)
        .and_then(|rest| {
            rest.split(|ch: char| ch == ':' || ch.is_whitespace())
                .next()
        })
        .and_then(|lsn| Segment::of_lsn(c.from.timeline, lsn));
    match stopped_in {
        Some(s) if s.number < newest.number => {
            // A base backup that starts after the damage still reaches the end.
            let past: Vec<String> = phys
                .bases
                .iter()
                .enumerate()
                .filter(|(_, b)| b.start.number > s.number)
                .map(|(i, b)| format!("backup {} ({})", i + 1, b.location))
                .collect();
            let why = format!(
                "damaged: pg_waldump stops in segment {s}, before the newest archived {newest}: {text}; {}",
                if past.is_empty() {
                    "no base backup starts after it".to_string()
                } else {
                    format!("{} start after it and reach the end", past.join(", "))
                }
            );
            Ok(StepDone {
                ok: !past.is_empty(),
                clean: false,
                detail: why.clone(),
                errors: vec![why.clone()],
                status: "damaged archive".into(),
                evidence: text,
                wal_bytes: None,
            })
        }
        _ => Ok(StepDone::done(format!(
            "{}; every record reads (pg_waldump)",
            c.describe()
        ))),
    }
}
