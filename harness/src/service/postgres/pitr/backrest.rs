//! pgBackRest as the backup method: a posix repository in the run's
//! physical folder, `archive-push` as the `archive_command`,
//! `stanza-create` + `check` + a full backup first and then the scenario's
//! type, `restore --type=time|name|lsn|immediate|default
//! --target-action=promote` for point-in-time recovery, and `verify`,
//! `check`, `info` as steps judged by their output (2.45's `verify` exits 0
//! while it reports `status: error`).
//!
//! pgBackRest reads the data directory itself, so it runs beside the
//! server as the server's user: natively the local program (`runuser`
//! when drill is root), in a container through `docker exec`, and for a
//! restore (the server stopped) in a shell over the data.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::archive::Segment;
use super::{BaseBackup, Physical, PitrDone, PitrRun};
use crate::backend::sh_quote;
use crate::scenario::{BackrestCommand, BackrestType, BackupPick, BaseFormat};
use crate::service::postgres::Postgres;
use crate::service::{Lifecycle, StepDone};
use crate::{Error, Result};

/// The stanza drill's repository holds.
pub(crate) const STANZA: &str = "drill";

/// pgBackRest's configuration in the physical folder.
#[derive(Debug)]
pub(crate) struct Backrest {
    root: PathBuf,
    /// The stanza: drill's own, or the one a user's repository holds.
    pub(crate) stanza: String,
}

/// Runs pgBackRest as the owner of the data directory `data` when root
/// (`runuser`, or `su-exec`/`gosu` in images without it).
const AS_OWNER: &str = "d=\"$1\"; shift; if [ \"$(id -u)\" = 0 ]; then u=$(stat -c %U \"$d\"); \
    if command -v runuser >/dev/null 2>&1; then exec runuser -u \"$u\" -- pgbackrest \"$@\"; \
    elif command -v su-exec >/dev/null 2>&1; then exec su-exec \"$u\" pgbackrest \"$@\"; \
    else exec gosu \"$u\" pgbackrest \"$@\"; fi; fi; exec pgbackrest \"$@\"";

impl Backrest {
    pub(crate) fn new(root: &Path, stanza: &str) -> Backrest {
        Backrest {
            root: root.to_owned(),
            stanza: stanza.into(),
        }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.root.join("pgbackrest.conf")
    }

    /// The repository.
    pub(crate) fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    /// The stanza's WAL archive folder (`archive/drill/15-1`).
    pub(crate) fn archive_dir(&self) -> Result<PathBuf> {
        let base = self.repo().join("archive").join(&self.stanza);
        let Ok(entries) = std::fs::read_dir(&base) else {
            return Ok(base);
        };
        Ok(entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .max()
            .unwrap_or(base))
    }

    fn global_options(&self) -> Vec<String> {
        vec![
            format!("--config={}", self.config().display()),
            format!("--stanza={}", self.stanza),
        ]
    }

    /// `pgbackrest <config and stanza> <rest>` as one shell command.
    fn shell_command(&self, rest: &str) -> String {
        let options: Vec<String> = self.global_options().iter().map(|o| sh_quote(o)).collect();
        format!("pgbackrest {} {rest}", options.join(" "))
    }

    /// The `archive_command`.
    pub(crate) fn archive_push(&self) -> String {
        self.shell_command("archive-push %p")
    }

    /// The `restore_command`.
    pub(crate) fn archive_get(&self) -> String {
        self.shell_command("archive-get %f \"%p\"")
    }

    /// Writes the configuration for the server as it runs now (its data
    /// directory, port and socket, which a native restart changes).
    pub(crate) fn configure(&self, pg: &Postgres) -> Result<()> {
        let show = |what: &str| pg.psql(&format!("SHOW {what}"), "postgres");
        let data = show("data_directory")?;
        let port = show("port")?;
        let socket = show("unix_socket_directories")?;
        let socket = socket.split(',').next().unwrap_or("").trim().to_string();
        let user = pg.coordinates().user.clone();
        let stanza = &self.stanza;
        let r = self.root.display();
        let text = format!(
            "[global]\nrepo1-path={r}/repo\nrepo1-retention-full=4\nlog-path={r}/log\nlock-path={r}/lock\n\
             spool-path={r}/spool\nlog-level-console=info\nlog-level-file=off\nstart-fast=y\n\
             compress-type=lz4\nprocess-max=2\narchive-timeout=60\n\n[{stanza}]\npg1-path={data}\npg1-port={port}\n\
             pg1-socket-path={socket}\npg1-user={user}\n"
        );
        // Written aside and renamed: archive-push may be reading it.
        let path = self.config();
        let tmp = self.root.join(".pgbackrest.conf.tmp");
        std::fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(Error::io("chmod", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("rename into", &path))?;
        Ok(())
    }

    /// `pgbackrest ARGS` beside the running server, as its user.
    fn command(&self, pg: &Postgres, data: &str, args: &[&str]) -> Command {
        let mut cmd = pg.server().tool("sh", &[]);
        cmd.args(["-c", AS_OWNER, "pgbackrest", data]);
        cmd.args(self.global_options()).args(args);
        cmd
    }

    /// Runs one command beside the running server; (ok, output).
    fn run(&self, pg: &Postgres, args: &[&str], limit: Duration) -> Result<(bool, String, String)> {
        self.configure(pg)?;
        let data = pg.psql("SHOW data_directory", "postgres")?;
        let mut cmd = self.command(pg, &data, args);
        let out = crate::shell::output_within(&mut cmd, b"", limit)?.output;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = format!("pgbackrest --stanza={} {}", self.stanza, args.join(" "));
        Ok((out.status.success(), text, shown))
    }

    /// One backup: the first creates the stanza, checks the archive and
    /// takes a full one; later ones are of type `kind`.
    pub(crate) fn backup(
        &self,
        pg: &Postgres,
        first: bool,
        kind: BackrestType,
        limit: Duration,
    ) -> Result<(BaseBackup, String)> {
        let mut said = Vec::new();
        if first {
            for args in [&["stanza-create"][..], &["check"][..]] {
                let (ok, text, shown) = self.run(pg, args, limit)?;
                if !ok || has_error(&text) {
                    return Err(Error::Command {
                        what: shown,
                        status: "failed".into(),
                        output: crate::vocab::tail(&text, 15),
                    });
                }
                said.push(args[0].to_string());
            }
        }
        let kind = if first { BackrestType::Full } else { kind };
        let ty = format!("--type={}", kind.name());
        let started_at = Instant::now();
        let system_id = pg.psql(
            "SELECT system_identifier FROM pg_control_system()",
            "postgres",
        )?;
        let (ok, text, shown) = self.run(pg, &[&ty, "backup"], limit)?;
        if !ok || has_error(&text) {
            return Err(Error::Command {
                what: shown,
                status: "failed".into(),
                output: crate::vocab::tail(&text, 15),
            });
        }
        let ended_at = Instant::now();
        let (label, start, bytes) = self.newest_backup(pg, limit)?;
        said.push(format!("{} backup {label}", kind.name()));
        Ok((
            BaseBackup {
                location: label,
                format: BaseFormat::Plain,
                start,
                started_at,
                ended_at,
                system_id,
                bytes,
            },
            said.join(", "),
        ))
    }

    /// The newest backup's label, first WAL segment and size, from
    /// `pgbackrest info --output=json`.
    pub(crate) fn newest_backup(
        &self,
        pg: &Postgres,
        limit: Duration,
    ) -> Result<(String, Segment, u64)> {
        let (ok, text, shown) = self.run(pg, &["info", "--output=json"], limit)?;
        let json = text.find('[').map(|i| &text[i..]).unwrap_or("");
        let parsed: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| {
            Error::unexpected(
                "read pgbackrest info",
                format!(
                    "{shown} (ok: {ok}) printed no JSON ({e}): {}",
                    crate::vocab::tail(&text, 5)
                ),
            )
        })?;
        let newest = parsed
            .get(0)
            .and_then(|s| s.get("backup"))
            .and_then(|b| b.as_array())
            .and_then(|b| b.last())
            .ok_or_else(|| {
                let status = parsed[0]["status"]["message"]
                    .as_str()
                    .unwrap_or("no backup");
                let stanzas: Vec<String> = std::fs::read_dir(self.repo().join("backup"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                Error::bad_input(
                    format!("pgBackRest repository {}", self.repo().display()),
                    format!(
                        "stanza `{}`: {status}; the repository holds {}",
                        self.stanza,
                        if stanzas.is_empty() {
                            "no stanza: is this the repo1-path folder?".to_string()
                        } else {
                            format!("stanzas {}: pass one with --stanza", stanzas.join(", "))
                        }
                    ),
                )
            })?;
        let label = newest["label"].as_str().unwrap_or("?").to_string();
        let start = newest["archive"]["start"]
            .as_str()
            .and_then(Segment::parse)
            .ok_or_else(|| {
                Error::unexpected(
                    "read pgbackrest info",
                    format!("backup {label} names no start segment"),
                )
            })?;
        let bytes = newest["info"]["size"].as_u64().unwrap_or(0);
        Ok((label, start, bytes))
    }

    /// `verify`, `check` or `info` as a step, judged by its output.
    pub(crate) fn step(
        &self,
        pg: &Postgres,
        what: BackrestCommand,
        limit: Duration,
    ) -> Result<StepDone> {
        let (ok, text, shown) = self.run(pg, &[what.name()], limit)?;
        let problems: Vec<String> = text
            .lines()
            .filter(|l| line_is_problem(l))
            .map(|l| l.trim().to_string())
            .collect();
        if ok && problems.is_empty() {
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            return Ok(StepDone::done(format!(
                "{shown}: exit 0, no error reported; {last}"
            )));
        }
        let why = format!(
            "{shown}: exit {}, {} problem lines{}",
            if ok { "0" } else { "non-zero" },
            problems.len(),
            problems
                .first()
                .map_or(String::new(), |p| format!("; first: {p}"))
        );
        Ok(StepDone {
            ok: false,
            clean: false,
            detail: why.clone(),
            errors: problems.iter().take(5).cloned().collect(),
            status: if ok {
                "exit 0 but reported errors".into()
            } else {
                "failed".into()
            },
            evidence: crate::vocab::tail(&text, 20),
            wal_bytes: None,
        })
    }

    /// Point-in-time recovery with `pgbackrest restore` (the server
    /// stopped, in a shell over its data), then the same start, wait and
    /// log reading as drill's own procedure.
    pub(crate) fn pitr(
        &self,
        pg: &mut Postgres,
        phys: &Physical,
        run: &PitrRun<'_>,
    ) -> Result<PitrDone> {
        let pick = super::pick_base(&phys.bases, run.resolved.boundary.as_ref(), run.pick);
        let Some(base) = pick.cloned() else {
            return Ok(PitrDone {
                step: StepDone::refused(format!(
                    "no pgBackRest backup ends before the target {}",
                    run.target.describe()
                )),
                boundary: None,
            });
        };
        self.restore_from(pg, phys, run, &base, None)
    }

    /// A user's repository restored to the target: its newest backup (or
    /// the one pgBackRest picks for a time target), into a disposable
    /// server.
    pub(crate) fn restore_foreign(
        &self,
        pg: &mut Postgres,
        phys: &Physical,
        run: &PitrRun<'_>,
    ) -> Result<PitrDone> {
        let (label, start, bytes) = self.newest_backup(pg, run.limit)?;
        let base = BaseBackup {
            location: label,
            format: BaseFormat::Plain,
            start,
            started_at: Instant::now(),
            ended_at: Instant::now(),
            system_id: String::new(),
            bytes,
        };
        self.restore_from(pg, phys, run, &base, Some(super::FOREIGN_CONFIG))
    }

    /// `pgbackrest restore` in a shell over the stopped server's data,
    /// then the same start, wait and log reading as drill's own procedure.
    fn restore_from(
        &self,
        pg: &mut Postgres,
        phys: &Physical,
        run: &PitrRun<'_>,
        base: &BaseBackup,
        foreign: Option<&str>,
    ) -> Result<PitrDone> {
        let copy_started = Instant::now();
        let same_cluster = super::stop_for_restore(pg, base)?;
        let save_wal = run.unarchived_wal && same_cluster;
        let (ty, target) = &run.resolved.backrest;
        let mut args: Vec<String> = self.global_options();
        args.push("--pg1-path=$DATA".into());
        args.push(format!("--type={ty}"));
        if let Some(t) = target {
            args.push(format!("--target={t}"));
            args.push("--target-action=promote".into());
        }
        args.push("--target-timeline=current".into());
        if run.delta {
            args.push("--delta".into());
        }
        if run.pick == Some(BackupPick::Oldest) || ty == "name" {
            // A name target picks the newest backup unless told (FIELD-NOTES).
            args.push(format!("--set={}", base.location));
        }
        args.push("restore".into());
        let quoted: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains("$DATA") {
                    format!("\"{a}\"")
                } else {
                    sh_quote(a)
                }
            })
            .collect();
        let saved = sh_quote(&phys.root().join("unarchived-wal").display().to_string());
        let script = format!(
            "set -e\n{save}{empty}sh -c {as_owner} pgbackrest \"$DATA\" {args}\n{bring}",
            save = if save_wal {
                super::save_wal_script(&saved)
            } else {
                String::new()
            },
            // The server was stopped (or killed) here: a postmaster.pid
            // left by a kill would make pgBackRest refuse a delta restore.
            empty = if run.delta {
                "rm -f \"$DATA/postmaster.pid\"\n".to_string()
            } else {
                "find \"$DATA\" -mindepth 1 -delete\n".into()
            },
            as_owner = sh_quote(AS_OWNER),
            args = quoted.join(" "),
            bring = if save_wal {
                format!(
                    "owner=$(stat -c %u:%g \"$DATA\")\n{}chown -R \"$owner\" \"$DATA/pg_wal\"\n",
                    super::bring_wal_script(&saved)
                )
            } else {
                String::new()
            },
        );
        let script = format!("{script}{}", foreign.unwrap_or(""));
        if let Err(e) = pg.data_shell(&script) {
            return Ok(PitrDone {
                step: StepDone::failed(format!("pgbackrest restore failed: {e}")),
                boundary: None,
            });
        }
        let copied = copy_started.elapsed();
        let chain = phys.continuity_from(base.start)?;
        super::start_recovering(pg, run, self.archive_get(), copied, base, save_wal, &chain)
    }
}

/// Whether pgBackRest's output reports a problem, whatever its exit status.
fn has_error(text: &str) -> bool {
    text.lines().any(line_is_problem)
}

fn line_is_problem(l: &str) -> bool {
    let l = l.trim();
    // Counts of nothing are no problem ("missing: 0", "checksum invalid: 0").
    let zero_count = [
        "missing: 0",
        "checksum invalid: 0",
        "size invalid: 0",
        "other: 0",
    ]
    .iter()
    .any(|z| l.contains(z));
    l.contains("ERROR:")
        || l.contains("status: error")
        || l.contains("FATAL")
        || (!zero_count && (l.contains("invalid") || l.contains("missing:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_is_read_by_its_output_not_its_exit_status() {
        // pgBackRest 2.45 `verify` on an archive with a damaged segment:
        // exit 0, and this.
        let damaged = "P00   INFO: verify command begin 2.45: --stanza=drill\n\
            P00   INFO: stanza: drill\n                    status: error\n\
            P00   INFO: verify command end: completed successfully\n";
        assert!(has_error(damaged));
        let clean = "P00   INFO: verify command begin 2.45\nP00   INFO: stanza: drill\n    status: ok\n\
            P00   INFO: verify command end: completed successfully\n";
        assert!(!has_error(clean));
    }
}
