//! Recovery steps: what a scenario's `[[recovery]]` runs after the fault.
//! Each step acts on a service and reports what it did into the timeline;
//! none of them judges success (checks do that, from measurements).

mod parallel;
mod pg_restore;
mod progress;
pub mod psql;

pub use self::pg_restore::{PgRestoreOptions, PgRestoreOutcome, pg_restore};
pub use psql::{PsqlOutcome, PsqlRestoreOptions, psql_restore};

use crate::service::postgres::{ClientTool, PgCoordinates, Postgres};
use crate::{Error, Result};

/// The schemas TimescaleDB keeps its catalog and chunks in: a restore
/// writes into them (the catalog's rows, the chunks' tables).
const TIMESCALEDB_SCHEMAS: &str =
    "_timescaledb_internal, _timescaledb_catalog, _timescaledb_config, _timescaledb_cache";

/// Runs `restore` between `timescaledb_pre_restore()` and
/// `timescaledb_post_restore()` when `on` (creating the extension first, as
/// TimescaleDB's docs require); post_restore runs even when the restore fails.
///
/// When the restore runs as `role` (no superuser, the database's owner),
/// that role creates the extension (it is trusted, so it owns it), and the
/// superuser does only what needs a superuser: pre_restore and post_restore
/// (they set `timescaledb.restoring` and stop and start the background
/// workers), and for the restore alone, the role may create and write in
/// TimescaleDB's own schemas; those grants are revoked afterwards.
pub(crate) fn with_timescaledb<T>(
    server: &Postgres,
    on: bool,
    role: Option<&PgCoordinates>,
    restore: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if !on {
        return restore();
    }
    let Some(role) = role else {
        run_sql(
            server,
            "CREATE EXTENSION IF NOT EXISTS timescaledb; SELECT timescaledb_pre_restore();",
        )?;
        let outcome = restore();
        run_sql(server, "SELECT timescaledb_post_restore();")?;
        return outcome;
    };
    let who = &role.user;
    run_sql_as(
        server,
        Some(role),
        "CREATE EXTENSION IF NOT EXISTS timescaledb;",
    )?;
    run_sql(
        server,
        &format!(
            "SELECT timescaledb_pre_restore(); \
             GRANT USAGE, CREATE ON SCHEMA {TIMESCALEDB_SCHEMAS} TO {who}; \
             GRANT ALL ON ALL TABLES IN SCHEMA {TIMESCALEDB_SCHEMAS} TO {who}; \
             GRANT ALL ON ALL SEQUENCES IN SCHEMA {TIMESCALEDB_SCHEMAS} TO {who};"
        ),
    )?;
    let outcome = restore();
    run_sql(
        server,
        &format!(
            "SELECT timescaledb_post_restore(); \
             REVOKE CREATE ON SCHEMA {TIMESCALEDB_SCHEMAS} FROM {who}; \
             REVOKE ALL ON ALL TABLES IN SCHEMA _timescaledb_catalog, _timescaledb_config FROM {who}; \
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA _timescaledb_catalog, _timescaledb_config FROM {who};"
        ),
    )?;
    outcome
}

/// SQL fed to `psql -f -` (one statement at a time, as a person's script
/// runs), stopping at the first error; returns what it printed.
pub(crate) fn run_sql(server: &Postgres, sql: &str) -> Result<String> {
    run_sql_as(server, None, sql)
}

/// [`run_sql`] as `role` (default: the superuser).
pub(crate) fn run_sql_as(
    server: &Postgres,
    role: Option<&PgCoordinates>,
    sql: &str,
) -> Result<String> {
    run_sql_within(server, role, sql, DEFAULT_SQL_LIMIT)
}

/// How long SQL the harness runs itself may take.
const DEFAULT_SQL_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// [`run_sql_as`], ended (and an error) when it runs past `limit`.
pub(crate) fn run_sql_within(
    server: &Postgres,
    role: Option<&PgCoordinates>,
    sql: &str,
    limit: std::time::Duration,
) -> Result<String> {
    tracing::debug!(sql, role = role.map(|r| r.user.as_str()), "psql -f -");
    let mut cmd = server.client_as(ClientTool::Psql, role);
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    let run = crate::shell::output_within(&mut cmd, sql.as_bytes(), limit)?;
    let first = sql
        .split_whitespace()
        .take(12)
        .collect::<Vec<_>>()
        .join(" ");
    if run.timed_out {
        return Err(Error::Command {
            what: format!("psql `{first}`"),
            status: format!(
                "killed after its time limit of {}",
                humantime::format_duration(limit)
            ),
            output: crate::vocab::tail(&String::from_utf8_lossy(&run.output.stderr), 15),
        });
    }
    if !run.output.status.success() {
        return Err(Error::command(format!("psql `{first}`"), &run.output));
    }
    Ok(String::from_utf8_lossy(&run.output.stdout)
        .trim()
        .to_string())
}
