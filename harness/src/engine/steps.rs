//! Runs one recovery step of any kind (built-in or the user's command) and
//! says what happened in one shape, so the engine treats them alike.

use std::path::Path;

use super::services::{Backups, Running};
use crate::Result;
use crate::backend::ServiceKind;
use crate::postgres::PostgresServer;
use crate::restore::{PgRestoreOptions, PsqlRestoreOptions, pg_restore, psql_restore, shell};
use crate::scenario::{DumpFormat, Step};
use drill_fixtures::Flavour;

/// What every step can see.
pub(crate) struct StepContext<'a> {
    pub(crate) running: &'a mut Running,
    pub(crate) backups: &'a Backups,
    /// Relative working directories are resolved against it.
    pub(crate) scenario_dir: &'a Path,
    /// The run's work dir (logs go there).
    pub(crate) work: &'a Path,
}

/// A finished step.
pub(crate) struct StepDone {
    /// The step did its job (a failing step fails the recovery).
    pub(crate) ok: bool,
    /// And printed no errors: the timeline shows ✓ only then.
    pub(crate) clean: bool,
    /// One line for the timeline.
    pub(crate) detail: String,
    /// Error lines the tools printed.
    pub(crate) errors: Vec<String>,
    /// Short status when it failed, e.g. `exit 3`.
    pub(crate) status: String,
    /// Why it failed: the tool's output.
    pub(crate) evidence: String,
}

impl StepDone {
    fn done(detail: String) -> StepDone {
        StepDone {
            ok: true,
            clean: true,
            detail,
            errors: vec![],
            status: String::new(),
            evidence: String::new(),
        }
    }
}

pub(crate) async fn run_step(ctx: &mut StepContext<'_>, step: &Step, id: &str) -> Result<StepDone> {
    if let Step::Shell {
        run,
        workdir,
        timeout,
        ..
    } = step
    {
        let dir = ctx
            .scenario_dir
            .join(workdir.as_deref().unwrap_or(Path::new(".")));
        let env = ctx.running.env(ctx.backups, ctx.work);
        let log = ctx.work.join(format!("step-{id}.log"));
        let out = tokio::task::block_in_place(|| {
            shell::run(run, &dir, &env, timeout.map(|t| t.0), &log)
        })?;
        let last = out.output_tail.lines().last().unwrap_or("").to_string();
        return Ok(StepDone {
            ok: out.ok(),
            clean: out.ok(),
            detail: format!(
                "exit {}{} in {}; last output: {last} (log: {})",
                code(out.exit_code),
                if out.timed_out {
                    ", killed at the timeout"
                } else {
                    ""
                },
                dir.display(),
                out.log.display()
            ),
            errors: if out.ok() { vec![] } else { vec![last] },
            status: if out.timed_out {
                "timed out".into()
            } else {
                format!("exit {}", code(out.exit_code))
            },
            evidence: out.output_tail,
        });
    }
    match step.service() {
        Some(ServiceKind::Redis) | Some(ServiceKind::ClickHouse) => {
            return other_service_step(ctx, step).await;
        }
        _ => {}
    }
    let pg = ctx
        .running
        .pg
        .as_ref()
        .expect("validated: postgres steps need postgres");
    let server: &dyn PostgresServer = pg.server.as_ref();
    let ts = pg.flavour == Flavour::TimescaleDb;
    if !matches!(step, Step::PsqlRestore { .. } | Step::PgRestore { .. }) {
        return pg_only_step(server, step, pg.flavour);
    }
    let Some(artifact) = ctx.backups.pg.as_ref() else {
        return Ok(refused("no postgres backup was taken".into()));
    };
    match step {
        Step::PsqlRestore {
            sanitize,
            on_error_stop,
            timeout,
        } => {
            if artifact.format != DumpFormat::Plain {
                return Ok(refused(format!(
                    "psql-restore needs a plain-format dump; {} is {:?}: use `pg-restore`",
                    artifact.path.display(),
                    artifact.format
                )));
            }
            let opts = PsqlRestoreOptions {
                sanitize: *sanitize,
                on_error_stop: *on_error_stop,
                timeout: timeout.map(|t| t.0),
                timescaledb: ts,
            };
            let out = tokio::task::block_in_place(|| psql_restore(server, artifact, opts))?;
            let mut detail = format!(
                "{}: exit {}, {} errors",
                out.command,
                code(out.exit_code),
                out.error_count
            );
            if out.timescaledb_wrapped {
                detail.push_str(", wrapped in timescaledb_pre_restore()/post_restore()");
            }
            if out.timed_out {
                detail.push_str(", killed at the timeout");
            }
            if let Some(s) = &out.sanitize {
                detail.push_str(&format!(
                    "; sanitizer removed {} of {} lines ({} kept as possible data)",
                    s.removed,
                    s.lines_in,
                    s.kept_suspicious.len()
                ));
            }
            if let Some(e) = out.first_errors.first() {
                detail.push_str(&format!("; first: {e}"));
            }
            let ok = out.exit_code == Some(0) && !out.timed_out;
            Ok(StepDone {
                ok,
                clean: ok && out.error_count == 0,
                detail,
                status: if out.timed_out {
                    "timed out".into()
                } else {
                    format!("exit {}", code(out.exit_code))
                },
                evidence: out.first_errors.join("\n"),
                errors: out.first_errors,
            })
        }
        Step::PgRestore {
            exit_on_error,
            tables,
            data_only,
            disable_triggers,
        } => {
            if artifact.format == DumpFormat::Plain {
                return Ok(refused(format!(
                    "pg-restore needs a custom- or directory-format dump; {} is plain SQL: use `psql-restore`",
                    artifact.path.display()
                )));
            }
            let o = PgRestoreOptions {
                exit_on_error: *exit_on_error,
                tables: tables.clone(),
                data_only: *data_only,
                disable_triggers: *disable_triggers,
                // Data-only into a schema drill made: no catalog to protect.
                timescaledb: ts && !*data_only,
            };
            let out = tokio::task::block_in_place(|| pg_restore(server, &artifact.path, &o))?;
            let mut detail = format!(
                "{}: exit {}, {} errors",
                out.command,
                code(out.exit_code),
                out.error_count
            );
            if let Some(e) = out.first_errors.first() {
                detail.push_str(&format!("; first: {e}"));
            }
            Ok(StepDone {
                ok: out.exit_code == Some(0),
                clean: out.exit_code == Some(0) && out.error_count == 0,
                detail,
                status: format!("exit {}", code(out.exit_code)),
                evidence: out.first_errors.join("\n"),
                errors: out.first_errors,
            })
        }
        other => pg_only_step(server, other, pg.flavour),
    }
}

/// Postgres steps that need no backup.
fn pg_only_step(server: &dyn PostgresServer, step: &Step, flavour: Flavour) -> Result<StepDone> {
    match step {
        Step::ApplySchema => {
            let files = drill_fixtures::nexwave_schema(flavour);
            let names: Vec<&str> = files.iter().map(|f| f.path).collect();
            for f in &files {
                if let Err(e) = crate::restore::run_sql(server, f.sql) {
                    return Ok(failed(format!("fixtures/{} failed: {e}", f.path)));
                }
            }
            Ok(StepDone::done(format!("applied {}", names.join(", "))))
        }
        Step::Sql { run, .. } => match crate::restore::run_sql(server, run) {
            Ok(out) => Ok(StepDone::done(format!(
                "ok{}",
                if out.is_empty() {
                    String::new()
                } else {
                    format!(": {}", out.lines().next().unwrap_or(""))
                }
            ))),
            Err(e) => Ok(failed(e.to_string())),
        },
        Step::Start { .. } => Ok(StepDone::done("postgres is running".into())),
        other => Ok(refused(format!(
            "step `{}` needs a postgres backup, and none was taken",
            other.kind()
        ))),
    }
}

/// Steps on Redis and ClickHouse.
async fn other_service_step(ctx: &mut StepContext<'_>, step: &Step) -> Result<StepDone> {
    let r = ctx.running.redis.as_mut();
    match step {
        Step::Redis { run } => {
            let r = r.expect("validated: redis declared");
            let out = tokio::task::block_in_place(|| r.cli().args(run.split_whitespace()).output())
                .map_err(|source| crate::Error::Spawn {
                    command: format!("redis-cli {run}"),
                    source,
                })?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            // redis-cli exits 0 on server errors; they start with ERR.
            let refused = !out.status.success()
                || text.starts_with("ERR")
                || text.starts_with("NOAUTH")
                || text.contains("Connection refused")
                || err.contains("Connection refused");
            if refused {
                return Ok(failed(format!("redis-cli {run}: {text}{err}")));
            }
            Ok(StepDone::done(
                text.lines().take(3).collect::<Vec<_>>().join(" | "),
            ))
        }
        Step::Start {
            service: ServiceKind::Redis,
        } => {
            let r = r.expect("validated: redis declared");
            if r.down().is_none() {
                return Ok(StepDone::done("redis is running".into()));
            }
            match tokio::task::block_in_place(|| r.start_with(&[])) {
                Ok(()) => Ok(StepDone::done("redis started on its data".into())),
                Err(e) => Ok(failed(format!("redis did not start: {e}"))),
            }
        }
        Step::RedisCheckAof => {
            let r = r.expect("validated: redis declared");
            match tokio::task::block_in_place(|| r.check_aof_fix()) {
                Ok(out) => Ok(StepDone::done(
                    out.lines()
                        .filter(|l| {
                            l.contains("AOF analyzed")
                                || l.contains("truncated")
                                || l.contains("valid")
                        })
                        .collect::<Vec<_>>()
                        .join(" | "),
                )),
                Err(e) => Ok(failed(e.to_string())),
            }
        }
        Step::RedisRestoreRdb {
            aof_off_while_loading,
        } => {
            let r = r.expect("validated: redis declared");
            let Some(rdb) = ctx.backups.redis.clone() else {
                return Ok(refused("no redis backup was taken".into()));
            };
            match tokio::task::block_in_place(|| r.restore_rdb(&rdb, *aof_off_while_loading)) {
                Ok(did) => Ok(StepDone::done(did)),
                Err(e) => Ok(failed(e.to_string())),
            }
        }
        Step::Sql { run, .. } => {
            let c = ctx
                .running
                .ch
                .as_ref()
                .expect("validated: clickhouse declared");
            match c.rows(run).await {
                Ok(rows) => Ok(StepDone::done(format!(
                    "ok{}",
                    rows.first()
                        .map(|r| format!(": {}", r.join(" ")))
                        .unwrap_or_default()
                ))),
                Err(e) => Ok(failed(e.to_string())),
            }
        }
        Step::Start {
            service: ServiceKind::ClickHouse,
        } => Ok(StepDone::done("clickhouse is running".into())),
        Step::ClickhouseRestore => {
            let c = ctx
                .running
                .ch
                .as_ref()
                .expect("validated: clickhouse declared");
            let Some(b) = &ctx.backups.ch else {
                return Ok(refused("no clickhouse backup was taken".into()));
            };
            match crate::clickhouse::backup::restore(c, &b.dir).await {
                Ok(did) => Ok(StepDone::done(format!(
                    "{} from {}: {did}",
                    b.manifest.method.name(),
                    b.dir.display()
                ))),
                Err(e) => Ok(failed(e.to_string())),
            }
        }
        other => Ok(refused(format!(
            "step `{}` does not act on this service",
            other.kind()
        ))),
    }
}

fn failed(why: String) -> StepDone {
    StepDone {
        ok: false,
        clean: false,
        detail: why.clone(),
        errors: vec![why.clone()],
        status: "failed".into(),
        evidence: why,
    }
}

fn refused(why: String) -> StepDone {
    StepDone {
        ok: false,
        clean: false,
        detail: why.clone(),
        errors: vec![why.clone()],
        status: "refused".into(),
        evidence: why,
    }
}

fn code(c: Option<i32>) -> String {
    c.map_or("none (killed)".into(), |c| c.to_string())
}
