//! `pg-restore`: restores a custom- or directory-format dump with the real
//! pg_restore, as seed 004's full-recovery procedure does.

use std::path::Path;

use crate::Result;
use crate::service::postgres::{ClientTool, PgCoordinates, Postgres};

const KEEP_ERRORS: usize = 10;

/// What pg_restore did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PgRestoreOutcome {
    pub exit_code: Option<i32>,
    /// Killed at its time limit.
    pub timed_out: bool,
    pub error_count: u64,
    pub first_errors: Vec<String>,
    pub timescaledb_wrapped: bool,
    pub command: String,
}

/// How pg_restore runs.
#[derive(Debug, Clone, Default)]
pub struct PgRestoreOptions {
    pub exit_on_error: bool,
    /// `--table` for each (only these tables).
    pub tables: Vec<String>,
    pub data_only: bool,
    pub disable_triggers: bool,
    pub timescaledb: bool,
    /// Restore as this role (no superuser: an untrusted backup); default:
    /// the superuser.
    pub role: Option<PgCoordinates>,
    /// Killed (with its process group) after this long; default an hour.
    pub limit: Option<std::time::Duration>,
    /// `-j N` when above 1 (never for TimescaleDB: one connection).
    pub jobs: usize,
}

/// `pg_restore --no-owner --no-acl -d <db> [options] <path>`.
pub fn pg_restore(
    server: &Postgres,
    path: &Path,
    o: &PgRestoreOptions,
) -> Result<PgRestoreOutcome> {
    let db = server.coordinates().database.clone();
    let mut args = vec!["--no-owner".to_string(), "--no-acl".into(), "-d".into(), db];
    if o.exit_on_error {
        args.push("--exit-on-error".into());
    }
    if o.data_only {
        args.push("--data-only".into());
    }
    if o.disable_triggers {
        args.push("--disable-triggers".into());
    }
    args.extend(o.tables.iter().map(|t| format!("--table={t}")));
    if o.jobs > 1 && !o.timescaledb {
        args.push(format!("--jobs={}", o.jobs));
    }
    let timescaledb = o.timescaledb;
    let command = format!("pg_restore {} {}", args.join(" "), path.display());
    tracing::debug!(%command, "restore");
    let limit = o.limit.unwrap_or(std::time::Duration::from_secs(3_600));
    super::with_timescaledb(server, timescaledb, o.role.as_ref(), || {
        let path = server.server.readable(path)?;
        let mut cmd = server.client_as(ClientTool::PgRestore, o.role.as_ref());
        cmd.args(&args).arg(&path);
        let run = crate::shell::output_within(&mut cmd, &[], limit)?;
        let mut first = Vec::new();
        let mut count = 0u64;
        crate::shell::each_line(&run.output.stderr[..], |line| {
            if line.contains("error:") || line.contains("ERROR:") {
                count += 1;
                if first.len() < KEEP_ERRORS {
                    first.push(line.to_string());
                }
            }
        });
        if run.timed_out {
            first.insert(
                0,
                format!(
                    "pg_restore ran past its time limit of {} and was killed",
                    humantime::format_duration(limit)
                ),
            );
        }
        Ok(PgRestoreOutcome {
            exit_code: if run.timed_out {
                None
            } else {
                run.output.status.code()
            },
            timed_out: run.timed_out,
            error_count: count,
            first_errors: first,
            timescaledb_wrapped: timescaledb,
            command: command.clone(),
        })
    })
}
