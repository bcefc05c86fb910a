//! `pg-restore`: restores a custom- or directory-format dump with the real
//! pg_restore, as seed 004's full-recovery procedure does.

use std::path::Path;
use std::process::Stdio;

use crate::service::postgres::{ClientTool, PgCoordinates, Postgres};
use crate::{Error, Result};

const KEEP_ERRORS: usize = 10;

/// What pg_restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PgRestoreOutcome {
    pub exit_code: Option<i32>,
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
    let timescaledb = o.timescaledb;
    let command = format!("pg_restore {} {}", args.join(" "), path.display());
    tracing::debug!(%command, "restore");
    super::with_timescaledb(server, timescaledb, o.role.as_ref(), || {
        let path = server.server.readable(path)?;
        let mut child = server
            .client_as(ClientTool::PgRestore, o.role.as_ref())
            .args(&args)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        let stderr = child.stderr.take().expect("piped");
        let mut first = Vec::new();
        let mut count = 0u64;
        crate::shell::each_line(stderr, |line| {
            if line.contains("error:") || line.contains("ERROR:") {
                count += 1;
                if first.len() < KEEP_ERRORS {
                    first.push(line.to_string());
                }
            }
        });
        let status = child.wait().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        Ok(PgRestoreOutcome {
            exit_code: status.code(),
            error_count: count,
            first_errors: first,
            timescaledb_wrapped: timescaledb,
            command: command.clone(),
        })
    })
}
