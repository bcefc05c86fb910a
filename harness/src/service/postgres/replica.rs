//! A streaming replica of the drill's PostgreSQL server, and the failover
//! to it (seed 004's disaster plan: "promote the read replica").
//!
//! The replica is a second server of the same image and flavour, made from
//! the primary with `pg_basebackup -R` and streaming from it: natively a
//! second server on loopback, in Docker a second container on a private
//! network only the two share. Asynchronous by default; `synchronous =
//! true` names it in the primary's `synchronous_standby_names`, and
//! `synchronous-commit` sets how long a commit waits.
//!
//! What a failover loses is exactly what the replica had not received when
//! the primary died, so the lag is read at the fault (bytes from the WAL
//! positions, time from `pg_last_xact_replay_timestamp()`), and a `lag`
//! fault holds the replica back (it is told to stop receiving WAL:
//! `primary_conninfo` emptied and reloaded) for a set time first.
//!
//! Faults say what survives: a `lag` stall loses, on failover, the commits
//! the primary acknowledged during it (none when synchronous: those commits
//! wait instead); the old primary keeps its data directory, with commits
//! the promoted server never saw.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::server::PORT;
use super::{ClientTool, PgSpec, Postgres};
use crate::backend::{Network, Stop, sh_quote};
use crate::scenario::{REPLICA_NAME, ReplicaConfig};
use crate::service::{Lifecycle, StepDone};
use crate::workload::ReplicationLag;
use crate::{Error, Result};

/// How long the replica may take to stream, to promote, to answer.
const WAIT: Duration = Duration::from_secs(60);

/// The replica and what the failover needs to know.
#[derive(Debug)]
pub(crate) struct Replication {
    /// The standby; after a `repoint`, the old primary (the two swap).
    pub(crate) other: Postgres,
    cfg: ReplicaConfig,
    /// The primary's spec, for a replica built again.
    spec: PgSpec,
    /// Where base backups for the replica are made (shared with both).
    dir: tempfile::TempDir,
    /// The application moved to the replica: `other` is the old primary.
    pub(crate) failed_over: bool,
    /// A fault was dealt already: the next one needs a fresh replica.
    pub(crate) dealt: bool,
    /// The lag when the primary died.
    pub(crate) at_fault: Option<ReplicationLag>,
    builds: usize,
    /// Dropped last: the servers on it are gone by then.
    pub(crate) network: Network,
}

/// The folder the replica's base backups go through, made before the
/// primary starts (it must be shared with its container), marked as the
/// run's for `cargo xtask clean`.
pub(crate) fn folder(run_id: &str) -> Result<tempfile::TempDir> {
    crate::backend::native::run_dir(run_id, Some("replica"))
}

impl Replication {
    /// Builds the replica from `primary` (started with `spec`, on
    /// `network`, sharing `dir`) and waits until it streams; turns on
    /// synchronous replication when asked. Returns it and a line for the
    /// timeline. The network is taken only once the replica runs: on an
    /// error it stays with the caller, to go after the primary's container.
    pub(crate) fn start(
        primary: &Postgres,
        spec: &PgSpec,
        cfg: &ReplicaConfig,
        dir: tempfile::TempDir,
        network: &mut Option<Network>,
    ) -> Result<(Replication, String)> {
        let started = Instant::now();
        let other = build(primary, spec, cfg, dir.path(), 1)?;
        let network = network.take().expect("the caller made the network");
        let mut r = Replication {
            other,
            cfg: cfg.clone(),
            spec: spec.clone(),
            dir,
            failed_over: false,
            dealt: false,
            at_fault: None,
            builds: 1,
            network,
        };
        let mode = r.configure_primary(primary)?;
        Ok((
            r,
            format!(
                "replica made with pg_basebackup -R and streaming ({mode}) in {}; {}",
                crate::fmt_duration(started.elapsed()),
                describe_server(primary)
            ),
        ))
    }

    /// The primary's `synchronous_standby_names` and `synchronous_commit`,
    /// set once the replica streams (before, every commit would wait for a
    /// replica that is not there yet).
    fn configure_primary(&mut self, primary: &Postgres) -> Result<String> {
        let names = if self.cfg.synchronous {
            format!("FIRST 1 ({REPLICA_NAME})")
        } else {
            String::new()
        };
        // ALTER SYSTEM refuses to run in a transaction block: one each.
        primary.psql(
            &format!("ALTER SYSTEM SET synchronous_standby_names = '{names}'"),
            "postgres",
        )?;
        primary.psql(
            &format!(
                "ALTER SYSTEM SET synchronous_commit = '{}'",
                self.cfg.synchronous_commit
            ),
            "postgres",
        )?;
        primary.psql("SELECT pg_reload_conf()", "postgres")?;
        let want = if self.cfg.synchronous {
            "sync"
        } else {
            "async"
        };
        wait_for(WAIT, || {
            let state = primary.psql(
                &format!(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{REPLICA_NAME}' AND state = 'streaming'"
                ),
                "postgres",
            )?;
            Ok((state == want).then_some(()))
        })
        .map_err(|e| {
            Error::unexpected(
                "wait for the replica to stream",
                format!("pg_stat_replication never showed it {want}: {e}"),
            )
        })?;
        Ok(format!(
            "{want}, synchronous_commit = {}",
            self.cfg.synchronous_commit
        ))
    }

    /// A replica made again from `primary` (a later recovery starts from
    /// a fresh fault: the server the application uses now needs a replica
    /// again). The old one (or the old primary) is dropped.
    pub(crate) fn rebuild(&mut self, primary: &mut Postgres) -> Result<String> {
        // Back to the topology before the first fault: the old primary
        // (with everything it acknowledged) is the primary again.
        let mut said = String::new();
        if self.failed_over {
            std::mem::swap(primary, &mut self.other);
            self.failed_over = false;
            said.push_str("the old primary is the primary again; ");
        }
        if primary.server_mut().alive().is_err() {
            primary.start_again()?;
            said.push_str("started on its data; ");
        }
        self.builds += 1;
        let fresh = build(primary, &self.spec, &self.cfg, self.dir.path(), self.builds)?;
        self.other = fresh;
        self.failed_over = false;
        self.at_fault = None;
        let mode = self.configure_primary(primary)?;
        Ok(format!("{said}a new replica streaming ({mode})"))
    }

    /// The replica stops receiving WAL (its `primary_conninfo` emptied and
    /// reloaded), as when the link between regions stalls.
    pub(crate) fn stall(&self) -> Result<()> {
        self.other
            .psql("ALTER SYSTEM SET primary_conninfo = ''", "postgres")?;
        self.other.psql("SELECT pg_reload_conf()", "postgres")?;
        Ok(())
    }

    /// How far behind `primary` the replica is now.
    pub(crate) fn lag(&self, primary: &Postgres) -> Result<ReplicationLag> {
        let p = primary.psql(
            &format!(
                "SELECT pg_current_wal_lsn() || '|' || coalesce((SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = '{REPLICA_NAME}'), 'not connected')"
            ),
            "postgres",
        )?;
        let (primary_lsn, state) = p.split_once('|').unwrap_or((p.as_str(), ""));
        let r = self.other.psql(
            "SELECT coalesce(pg_last_wal_receive_lsn(), '0/0') || '|' || coalesce(pg_last_wal_replay_lsn(), '0/0') || '|' || \
             coalesce(round(extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000), 0)",
            "postgres",
        )?;
        let parts: Vec<&str> = r.split('|').collect();
        let [received, replayed, behind_ms] = parts[..] else {
            return Err(Error::unexpected(
                "read the replica's position",
                format!("unexpected answer `{r}`"),
            ));
        };
        let bytes = primary.psql(
            &format!("SELECT pg_wal_lsn_diff('{primary_lsn}', '{replayed}')::bigint"),
            "postgres",
        )?;
        let bytes = bytes.parse::<i64>().unwrap_or(0).max(0) as u64;
        // Nothing unreplayed: not behind, however long ago the last commit.
        let behind = if bytes == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(behind_ms.parse::<f64>().unwrap_or(0.0).max(0.0) as u64)
        };
        Ok(ReplicationLag {
            bytes,
            behind,
            primary_lsn: primary_lsn.to_string(),
            received_lsn: received.to_string(),
            replayed_lsn: replayed.to_string(),
            state: state.to_string(),
            synchronous: self.cfg.synchronous,
        })
    }

    /// The `promote` step: `pg_promote()`, waiting until it accepts writes.
    pub(crate) fn promote(&mut self, limit: Duration) -> Result<StepDone> {
        if self.failed_over {
            return Ok(StepDone::refused(
                "the application already moved: the replica was promoted before",
            ));
        }
        let started = Instant::now();
        let secs = limit.as_secs().clamp(1, i32::MAX as u64);
        match self
            .other
            .psql(&format!("SELECT pg_promote(true, {secs})"), "postgres")
        {
            Ok(t) if t == "t" => {}
            Ok(other) => {
                return Ok(StepDone::failed(format!(
                    "pg_promote() answered `{other}`: not promoted within {secs} s"
                )));
            }
            Err(e) => return Ok(StepDone::failed(format!("pg_promote() failed: {e}"))),
        }
        let in_recovery = self.other.psql("SELECT pg_is_in_recovery()", "postgres")?;
        if in_recovery != "f" {
            return Ok(StepDone::failed(
                "still in recovery after pg_promote() answered true",
            ));
        }
        let wal = self.other.psql(
            "SELECT pg_current_wal_lsn() || ' (' || pg_walfile_name(pg_current_wal_lsn()) || ')'",
            "postgres",
        )?;
        Ok(StepDone::done(format!(
            "pg_promote(): out of recovery in {}, writing WAL at {wal}",
            crate::fmt_duration(started.elapsed()),
        )))
    }

    /// The `repoint` step: `primary` and the replica swap places, and a
    /// probe write (a temporary table, rolled back) must be accepted.
    pub(crate) fn repoint(&mut self, primary: &mut Postgres) -> Result<StepDone> {
        if self.failed_over {
            return Ok(StepDone::refused(
                "the application already points at the replica",
            ));
        }
        let started = Instant::now();
        std::mem::swap(primary, &mut self.other);
        self.failed_over = true;
        match probe_write(primary) {
            Ok(()) => Ok(StepDone::done(format!(
                "the application now uses {} (a probe write accepted in {})",
                describe_server(primary),
                crate::fmt_duration(started.elapsed())
            ))),
            Err(e) => Ok(StepDone::failed(format!(
                "the server the application now uses refuses writes: {e}"
            ))),
        }
    }

    /// The `old-primary` step: the old primary starts again on its data
    /// (fenced first when asked: a standby of `new_primary`), and a write
    /// is tried on it. Refused is safe; accepted is split brain.
    pub(crate) fn old_primary(&mut self, new_primary: &Postgres, fence: bool) -> Result<StepDone> {
        if !self.failed_over {
            return Ok(StepDone::refused(
                "there is no old primary yet: `repoint` to the replica first",
            ));
        }
        let old = &mut self.other;
        let _ = old.server_mut().stop(Stop::Kill);
        if fence {
            let conninfo = conninfo(new_primary);
            old.data_shell(&format!(
                "set -e\ntouch \"$DATA/standby.signal\"\nprintf \"\\nprimary_conninfo = '%s'\\n\" {} >> \"$DATA/postgresql.auto.conf\"\n",
                sh_quote(&conninfo.replace('\'', "\\'"))
            ))?;
        }
        if let Err(e) = old.start_again() {
            return Ok(StepDone::failed(format!(
                "the old primary did not start: {e}"
            )));
        }
        let role = old
            .psql("SELECT pg_is_in_recovery()", "postgres")
            .map(|r| if r == "t" { "a standby" } else { "a primary" })
            .unwrap_or("unreachable");
        let write = old.psql(
            "CREATE TABLE IF NOT EXISTS drill_split_brain (at timestamptz); INSERT INTO drill_split_brain VALUES (now())",
            "postgres",
        );
        Ok(match write {
            // Refused because it is read-only: safe. Any other failure
            // (it does not answer) says nothing either way.
            Err(e) if is_read_only_refusal(&e.to_string()) => StepDone::done(format!(
                "the old primary is back as {role} and refused a write (safe): {}",
                first_error_line(&e.to_string())
            )),
            Err(e) => StepDone::failed(format!(
                "the write on the old primary failed, but not as a read-only server refuses one, so split brain is not ruled out: {}",
                first_error_line(&e.to_string())
            )),
            Ok(_) => {
                let seen = new_primary
                    .psql(
                        "SELECT to_regclass('drill_split_brain') IS NOT NULL",
                        "postgres",
                    )
                    .unwrap_or_default();
                // drill's own probe goes; what it proved stays in the step.
                let _ = old.psql("DROP TABLE IF EXISTS drill_split_brain", "postgres");
                StepDone::failed(format!(
                    "split brain: the old primary is back as {role} and accepted a write that the promoted server never sees (drill_split_brain on the promoted server: {})",
                    if seen == "t" { "present" } else { "absent" }
                ))
            }
        })
    }

    /// Leaves the other server and the network in place.
    pub(crate) fn keep(&mut self) -> String {
        self.network.keep();
        self.dir.disable_cleanup(true);
        format!(
            "{}: {}",
            if self.failed_over {
                "old primary"
            } else {
                "replica"
            },
            self.other.keep()
        )
    }
}

/// How the replica reaches `primary`.
fn conninfo(primary: &Postgres) -> String {
    let (host, port) = primary.server().peer_addr(PORT);
    let c = primary.coordinates();
    format!(
        "host={host} port={port} user={} password={} application_name={REPLICA_NAME}",
        c.user, c.password
    )
}

/// One replica: a fresh server of the primary's spec, its data replaced by
/// `pg_basebackup -R` of the primary, following it; started and streaming.
fn build(
    primary: &Postgres,
    spec: &PgSpec,
    cfg: &ReplicaConfig,
    dir: &Path,
    n: usize,
) -> Result<Postgres> {
    // Replication connections from the other server (the image's
    // pg_hba.conf lets in only loopback ones).
    primary.data_shell(
        "grep -q '^host replication all all' \"$DATA/pg_hba.conf\" || \
         printf '\\nhost replication all all scram-sha-256\\n' >> \"$DATA/pg_hba.conf\"",
    )?;
    primary.psql("SELECT pg_reload_conf()", "postgres")?;
    let base: PathBuf = dir.join(format!("base-{n}"));
    primary.data_shell(&format!(
        "mkdir -p {d} && chown \"$(stat -c %u:%g \"$DATA\")\" {d}",
        d = sh_quote(&base.display().to_string())
    ))?;
    let mut cmd = primary.client(ClientTool::PgBasebackup);
    cmd.arg("-D").arg(&base).args([
        "-X",
        "stream",
        "-c",
        "fast",
        "-R",
        "--no-password",
        "-l",
        "drill replica",
    ]);
    let run = crate::shell::output_within(&mut cmd, b"", WAIT)?.output;
    if !run.status.success() {
        return Err(Error::command(
            format!("pg_basebackup -D {} -X stream -R", base.display()),
            &run,
        ));
    }
    let mut settings = spec.settings.clone();
    settings.push(("hot_standby".into(), "on".into()));
    settings.extend(cfg.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    let replica_spec = PgSpec {
        settings,
        ..spec.clone()
    };
    let mut replica = Postgres::start(primary.info().backend, &replica_spec)?;
    replica.server_mut().stop(Stop::Graceful)?;
    // The base backup's primary_conninfo names the primary as the tool saw
    // it; the later line names it as the replica sees it.
    let b = sh_quote(&base.display().to_string());
    replica.data_shell(&format!(
        "set -e\nowner=$(stat -c %u:%g \"$DATA\")\n\
         find \"$DATA\" -mindepth 1 -delete\n\
         cp -a {b}/. \"$DATA\"/\n\
         rm -f \"$DATA/backup_manifest\" \"$DATA/postmaster.pid\"\n\
         touch \"$DATA/standby.signal\"\n\
         printf \"\\nprimary_conninfo = '%s'\\n\" {} >> \"$DATA/postgresql.auto.conf\"\n\
         chown -R \"$owner\" \"$DATA\" && chmod 700 \"$DATA\"\n\
         rm -rf {b}\n",
        sh_quote(&conninfo(primary).replace('\'', "\\'"))
    ))?;
    // Its roles and passwords are the primary's now.
    replica.adopt_credentials(primary);
    replica.start_again()?;
    Ok(replica)
}

/// A write the server must accept, leaving nothing behind.
fn probe_write(pg: &Postgres) -> Result<()> {
    pg.psql(
        "BEGIN; CREATE TEMP TABLE drill_probe (x int); INSERT INTO drill_probe VALUES (1); ROLLBACK",
        "postgres",
    )
    .map(|_| ())
}

/// Where a server runs, for the timeline.
fn describe_server(pg: &Postgres) -> String {
    let (host, port) = pg.server().addr(PORT);
    format!("the server at {host}:{port}")
}

/// PostgreSQL's refusal of a write on a read-only server (a standby, or
/// `default_transaction_read_only`): "cannot execute INSERT in a read-only
/// transaction", "... during recovery".
fn is_read_only_refusal(e: &str) -> bool {
    e.contains("read-only transaction") || e.contains("during recovery")
}

fn first_error_line(e: &str) -> String {
    e.lines()
        .find(|l| l.contains("ERROR"))
        .or_else(|| e.lines().next())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Polls `f` every 100 ms until it gives a value, up to `limit`.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if started.elapsed() > limit {
            return Err(Error::unexpected(
                "wait",
                format!("not within {} s; last error: {last}", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_read_only_refusal_counts_as_safe() {
        assert!(is_read_only_refusal(
            "ERROR:  cannot execute CREATE TABLE in a read-only transaction"
        ));
        assert!(is_read_only_refusal(
            "ERROR:  cannot execute INSERT during recovery"
        ));
        assert!(!is_read_only_refusal(
            "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused"
        ));
        assert!(!is_read_only_refusal(
            "ERROR:  permission denied for schema public"
        ));
    }
}
