//! "Does last night's physical backup restore?": a `pg_basebackup` output
//! (a folder, or `base.tar[.gz]`, with or without `backup_manifest`) plus
//! a WAL archive folder, or a pgBackRest repository, restored into a
//! disposable server and replayed to a target.
//!
//! Before anything is restored: the backup's own facts (`backup_label`,
//! `PG_VERSION`), `pg_verifybackup` against the manifest (plain backups;
//! PostgreSQL 15's cannot read tar), `pgbackrest verify` read by its
//! output, and drill's scan of the archive for gaps from the backup's first
//! segment. After: the target reached (the server's log), then the usual
//! checks. The archive and the repository are copied into the run's folder
//! first: the user's files are never written, and the server's user can
//! read the copies.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Restore, unusable};
use crate::check::{CheckKind, CheckResult};
use crate::engine::timeline::Phase;
use crate::errors::Refusal;
use crate::scenario::{BaseFormat, RecoveryTarget};
use crate::service::StepDone;
use crate::service::postgres::pitr::{self, BaseBackup, Physical, archive};
use crate::service::postgres::{ClientTool, Postgres};
use crate::{Error, Result};

/// What a physical backup is, read without a server.
#[derive(Debug, Clone)]
pub(crate) struct BaseFacts {
    pub(crate) dir: PathBuf,
    pub(crate) format: BaseFormat,
    pub(crate) gzip: bool,
    pub(crate) start: archive::Segment,
    /// `PG_VERSION`: the major version it needs.
    pub(crate) pg_major: String,
    pub(crate) manifest: bool,
}

/// Whether `dir` looks like a `pg_basebackup` output.
pub(crate) fn is_base_backup(dir: &Path) -> bool {
    dir.is_dir()
        && (dir.join("backup_label").is_file()
            || dir.join("base.tar").is_file()
            || dir.join("base.tar.gz").is_file())
}

/// Reads `backup_label` and `PG_VERSION` from a folder or a tar.
pub(crate) fn inspect(dir: &Path) -> std::result::Result<BaseFacts, Refusal> {
    let (format, gzip) = if dir.join("base.tar.gz").is_file() {
        (BaseFormat::Tar, true)
    } else if dir.join("base.tar").is_file() {
        (BaseFormat::Tar, false)
    } else {
        (BaseFormat::Plain, false)
    };
    let read = |name: &str| -> std::result::Result<String, Refusal> {
        match format {
            BaseFormat::Plain => std::fs::read_to_string(dir.join(name))
                .map_err(|e| Refusal(format!("{}: {e}", dir.join(name).display()))),
            BaseFormat::Tar => {
                let tar = dir.join(if gzip { "base.tar.gz" } else { "base.tar" });
                let out = Command::new("tar")
                    .arg(if gzip { "-xzOf" } else { "-xOf" })
                    .arg(&tar)
                    .arg(name)
                    .output()
                    .map_err(|e| Refusal(format!("tar: {e}")))?;
                if !out.status.success() {
                    return Err(Refusal(format!(
                        "{} holds no {name}: {}",
                        tar.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
        }
    };
    let label = read("backup_label")?;
    let start = pitr::start_segment(&label).ok_or(Refusal::from(
        "its backup_label has no `START WAL LOCATION` line: not a pg_basebackup output",
    ))?;
    let pg_major = read("PG_VERSION")?.trim().to_string();
    refuse_outside_links(dir, format, gzip)?;
    Ok(BaseFacts {
        dir: dir.to_owned(),
        format,
        gzip,
        start,
        pg_major,
        manifest: dir.join("backup_manifest").is_file(),
    })
}

/// A backup is restored by root (natively) or into a volume: it may hold
/// only folders and regular files. Symbolic links (tablespaces under
/// `pg_tblspc`, a `pg_wal` elsewhere), devices, FIFOs and sockets would
/// reach outside the disposable server, and tablespace tars are not
/// restored here: refused, named.
fn refuse_outside_links(
    dir: &Path,
    format: BaseFormat,
    gzip: bool,
) -> std::result::Result<(), Refusal> {
    let odd: Vec<String> = match format {
        BaseFormat::Plain => {
            let mut odd = Vec::new();
            walk_odd(dir, dir, &mut odd);
            odd
        }
        BaseFormat::Tar => {
            let mut odd: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| Refusal(format!("{}: {e}", dir.display())))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (n.ends_with(".tar") || n.ends_with(".tar.gz"))
                        && !n.starts_with("base.")
                        && !n.starts_with("pg_wal.")
                })
                .map(|n| format!("{n} (a tablespace)"))
                .collect();
            let tar = dir.join(if gzip { "base.tar.gz" } else { "base.tar" });
            let out = Command::new("tar")
                .arg(if gzip { "-tvzf" } else { "-tvf" })
                .arg(&tar)
                .output()
                .map_err(|e| Refusal(format!("tar: {e}")))?;
            if !out.status.success() {
                return Err(Refusal(format!(
                    "{} cannot be listed: {}",
                    tar.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            odd.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !matches!(l.chars().next(), Some('-' | 'd')))
                    .map(|l| l.to_string()),
            );
            odd
        }
    };
    if odd.is_empty() {
        return Ok(());
    }
    Err(Refusal(format!(
        "it holds {} entries that are neither folders nor regular files (symbolic links such as tablespaces, devices, FIFOs), which a restore would follow outside the disposable server: {}{}; restore a backup without tablespaces (pg_basebackup of a cluster whose data all lies in its data directory)",
        odd.len(),
        odd.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        if odd.len() > 5 { ", ..." } else { "" }
    )))
}

fn walk_odd(root: &Path, dir: &Path, odd: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(t) = e.file_type() else { continue };
        let p = e.path();
        if t.is_dir() {
            walk_odd(root, &p, odd);
        } else if !t.is_file() {
            odd.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
        }
    }
}

/// Copies the regular files of `from` (and one level of folders, as
/// pgBackRest keeps them) into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .map_err(Error::spawn("cp -a"))?;
    if !out.status.success() {
        return Err(Error::command(
            format!("cp -a {} {}", from.display(), to.display()),
            &out,
        ));
    }
    Ok(pitr::dir_bytes(to))
}

impl Restore<'_> {
    /// The physical path of `restore-artifact`; Ok(None) when the backup
    /// is not a physical one.
    pub(super) fn restore_physical(&mut self) -> Result<Option<(StepDone, std::time::Instant)>> {
        let d = self.d;
        let repo = d.pgbackrest_repo.clone();
        if repo.is_none() && d.wal_archive.is_none() && !is_base_backup(&d.backup) {
            return Ok(None);
        }
        // What can be told without a server.
        let inspect_at = self.tl.start(&Phase::Inspect, "inspect physical backup");
        let facts = match &repo {
            Some(_) => None,
            None => match inspect(&d.backup) {
                Ok(f) => Some(f),
                Err(Refusal(why)) => {
                    self.tl.finish(
                        &Phase::Inspect,
                        "inspect physical backup",
                        inspect_at,
                        false,
                        why.clone(),
                    );
                    self.checks.push(unusable(&d.backup, &why));
                    return Ok(Some((StepDone::refused(why), std::time::Instant::now())));
                }
            },
        };
        let mut phys = Physical::create(&self.run_id, repo.is_some())?;
        if let (Some(b), Some(stanza)) = (phys.backrest.as_mut(), &d.stanza) {
            b.stanza = stanza.clone();
        }
        let mut said = Vec::new();
        if let Some(f) = &facts {
            said.push(format!(
                "{} ({}{}), PostgreSQL {}, from segment {}{}",
                f.dir.display(),
                match f.format {
                    BaseFormat::Plain => "plain",
                    BaseFormat::Tar => "tar",
                },
                if f.gzip { ".gz" } else { "" },
                f.pg_major,
                f.start,
                if f.manifest {
                    ", with backup_manifest"
                } else {
                    ", no manifest"
                }
            ));
        }
        match (&repo, &d.wal_archive) {
            (Some(r), _) => {
                let bytes = copy_tree(r, &phys.backrest.as_ref().expect("made with one").repo())?;
                said.push(format!(
                    "pgBackRest repository {} copied ({} MB)",
                    r.display(),
                    bytes / 1_000_000
                ));
            }
            (None, Some(w)) => {
                let bytes = copy_tree(w, &phys.wal())?;
                said.push(format!(
                    "WAL archive {} copied ({} MB)",
                    w.display(),
                    bytes / 1_000_000
                ));
            }
            (None, None) => {
                said.push("no WAL archive given: only the WAL inside the backup".into())
            }
        }
        self.tl.finish(
            &Phase::Inspect,
            "inspect physical backup",
            inspect_at,
            true,
            said.join("; "),
        );
        let mut shared = vec![phys.root().to_owned()];
        if facts.is_some() {
            shared.push(std::path::absolute(&d.backup).map_err(Error::io("resolve", &d.backup))?);
        }
        self.server_with(shared, true)?;
        let server = self.server.as_mut().expect("started");
        phys.hand_to_server(server)?;
        // The major versions must match: a physical backup restores only
        // into its own.
        let major = server
            .psql("SHOW server_version_num", "postgres")?
            .parse::<u32>()
            .map(|n| (n / 10_000).to_string())
            .unwrap_or_default();
        if let Some(f) = facts.as_ref().filter(|f| f.pg_major != major) {
            let why = format!(
                "the backup is of PostgreSQL {}, the server is {major}: a physical backup restores only into its own major version; pass --image (docker) or DRILL_PG_BINDIR (native) for PostgreSQL {}",
                f.pg_major, f.pg_major
            );
            self.checks.push(unusable(&d.backup, &why));
            return Ok(Some((StepDone::refused(why), std::time::Instant::now())));
        }
        // Verification before the restore.
        let verified = self.verify_physical(&phys, facts.as_ref())?;
        if !verified {
            return Ok(Some((
                StepDone::refused("the backup failed verification (see the checks)"),
                std::time::Instant::now(),
            )));
        }
        let restore_at = self.tl.start(&Phase::Recovery("restore".into()), "restore");
        let resolved = pitr::resolve(&d.target, None, None, None).map_err(|e| {
            Error::bad_input(
                "--target",
                format!(
                    "{e}; restore-artifact takes latest, a time, restore-point:NAME or lsn:X/Y"
                ),
            )
        })?;
        let server = self.server.as_mut().expect("started");
        let run = pitr::PitrRun {
            target: &d.target,
            resolved,
            pick: None,
            unarchived_wal: false,
            delta: false,
            base_settings: server.spec().settings.clone(),
            limit: d.rto * 2,
        };
        let done = match (&phys.backrest, &facts) {
            (Some(b), _) => b.restore_foreign(server, &phys, &run)?,
            (None, Some(f)) => {
                let base = BaseBackup {
                    location: std::path::absolute(&f.dir)
                        .map_err(Error::io("resolve", &f.dir))?
                        .display()
                        .to_string(),
                    format: f.format,
                    start: f.start,
                    started_at: std::time::Instant::now(),
                    ended_at: std::time::Instant::now(),
                    system_id: String::new(),
                    bytes: pitr::dir_bytes(&f.dir),
                };
                let (copied, _) =
                    pitr::restore_base(server, &base, None, false, Some(pitr::FOREIGN_CONFIG))?;
                let restore_command = format!(
                    "cp {} %p",
                    crate::backend::sh_quote(&format!("{}/%f", phys.wal().display()))
                );
                let chain = phys.continuity_from(f.start)?;
                pitr::start_recovering(server, &run, restore_command, copied, &base, false, &chain)?
            }
            (None, None) => unreachable!("a base backup or a repository"),
        };
        self.tl.finish(
            &Phase::Recovery("restore".into()),
            "restore",
            restore_at,
            done.step.ok,
            done.step.detail.clone(),
        );
        Ok(Some((done.step, restore_at)))
    }

    /// `pg_verifybackup` (plain with a manifest), `pgbackrest verify`, and
    /// the archive's continuity; each a check. Whether to go on.
    fn verify_physical(&mut self, phys: &Physical, facts: Option<&BaseFacts>) -> Result<bool> {
        let d = self.d;
        let server = self.server.as_ref().expect("started");
        let t = self.tl.start(&Phase::Inspect, "verify");
        let mut ok = true;
        let mut said = Vec::new();
        if let Some(f) = facts {
            let check = match (f.manifest, f.format) {
                (true, BaseFormat::Plain) => {
                    let mut cmd = server.client(ClientTool::PgVerifybackup);
                    cmd.arg("--no-parse-wal")
                        .arg(std::path::absolute(&f.dir).map_err(Error::io("resolve", &f.dir))?);
                    let out = crate::shell::output_within(&mut cmd, b"", d.rto)?.output;
                    let text = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let good = out.status.success();
                    said.push(format!("pg_verifybackup: {}", text.trim()));
                    Some(CheckResult::new(
                        CheckKind::BackupIntegrity,
                        "pg_verifybackup",
                        "every file matches backup_manifest",
                        if good { "verified" } else { "mismatch" },
                        good,
                        (!good).then(|| crate::vocab::tail(&text, 10)),
                    ))
                }
                (true, BaseFormat::Tar) => {
                    said.push(
                        "pg_verifybackup skipped: PostgreSQL 15's reads plain backups only".into(),
                    );
                    None
                }
                (false, _) => {
                    said.push("no backup_manifest: nothing to verify the files against".into());
                    None
                }
            };
            if let Some(verified) = check {
                ok &= verified.ok;
                self.checks.push(verified);
            }
        }
        if let Some(b) = &phys.backrest {
            let step = b.step(server, crate::scenario::BackrestCommand::Verify, d.rto)?;
            said.push(step.detail.clone());
            self.checks.push(CheckResult::new(
                CheckKind::BackupIntegrity,
                "pgbackrest verify",
                "no error in its output",
                if step.ok {
                    "no error"
                } else {
                    step.status.as_str()
                },
                step.ok,
                (!step.ok).then(|| step.evidence.clone()),
            ));
            ok &= step.ok;
        }
        // The archive's continuity from the backup's first segment.
        let start = match facts {
            Some(f) => Some(f.start),
            // A repository pgBackRest cannot read was named by verify.
            None => match phys
                .backrest
                .as_ref()
                .map(|b| b.newest_start(server, d.rto))
            {
                Some(Ok(start)) => Some(start),
                Some(Err(e)) => {
                    said.push(e.to_string());
                    ok = false;
                    self.checks.push(CheckResult::new(
                        CheckKind::BackupIntegrity,
                        "pgbackrest info",
                        "a backup in the stanza",
                        "none readable",
                        false,
                        Some(e.to_string()),
                    ));
                    None
                }
                None => None,
            },
        };
        if let Some(start) = start {
            let chain = phys.continuity_from(start)?;
            said.push(format!("archive {}", chain.describe()));
            let latest = d.target == RecoveryTarget::Latest;
            let gap_ok = chain.missing.is_empty();
            let given = d.wal_archive.is_some() || phys.backrest.is_some();
            if given {
                self.checks.push(CheckResult::new(
                    CheckKind::BackupIntegrity,
                    "archive continuity",
                    "no segment missing from the backup's first on",
                    if gap_ok {
                        "continuous".to_string()
                    } else {
                        format!("{} missing", chain.missing.len())
                    },
                    gap_ok || !latest,
                    (!gap_ok).then(|| chain.describe()),
                ));
                // A gap is red for latest; a target before it may still be
                // reached (the server's log says).
                ok &= gap_ok || !latest;
            }
        }
        self.tl
            .finish(&Phase::Inspect, "verify", t, ok, said.join("; "));
        Ok(ok)
    }
}

impl pitr::backrest::Backrest {
    /// The newest backup's first segment.
    pub(crate) fn newest_start(
        &self,
        pg: &Postgres,
        limit: std::time::Duration,
    ) -> Result<archive::Segment> {
        self.newest_backup(pg, limit).map(|(_, start, _)| start)
    }
}
