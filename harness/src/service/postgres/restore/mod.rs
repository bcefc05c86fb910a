//! Recovery steps: what a scenario's `[[recovery]]` runs after the fault.
//! Each step acts on a service and reports what it did into the timeline;
//! none of them judges success (checks do that, from measurements).

mod pg_restore;
pub mod psql;

pub use self::pg_restore::{PgRestoreOptions, PgRestoreOutcome, pg_restore};
pub use psql::{PsqlOutcome, PsqlRestoreOptions, psql_restore};

use crate::service::postgres::{ClientTool, Postgres};
use crate::{Error, Result};

/// Runs `restore` between `timescaledb_pre_restore()` and
/// `timescaledb_post_restore()` when `on` (creating the extension first, as
/// TimescaleDB's docs require); post_restore runs even when the restore fails.
pub(crate) fn with_timescaledb<T>(
    server: &Postgres,
    on: bool,
    restore: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if !on {
        return restore();
    }
    run_sql(
        server,
        "CREATE EXTENSION IF NOT EXISTS timescaledb; SELECT timescaledb_pre_restore();",
    )?;
    let outcome = restore();
    run_sql(server, "SELECT timescaledb_post_restore();")?;
    outcome
}

/// SQL fed to `psql -f -` (one statement at a time, as a person's script
/// runs), stopping at the first error; returns what it printed.
pub(crate) fn run_sql(server: &Postgres, sql: &str) -> Result<String> {
    use std::io::Write;
    tracing::debug!(sql, "psql -f -");
    let mut child = server
        .client(ClientTool::Psql)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(Error::spawn("psql -f -"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let text = sql.to_string();
    let feeder = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(Error::spawn("psql -f -"))?;
    let _ = feeder.join();
    if !out.status.success() {
        let first = sql
            .split_whitespace()
            .take(12)
            .collect::<Vec<_>>()
            .join(" ");
        return Err(Error::command(format!("psql `{first}`"), &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
