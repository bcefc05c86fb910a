//! Runs one recovery step of any kind (built-in or the user's command) and
//! says what happened in one shape, so the engine treats them alike.

use std::path::Path;

use drill_fixtures::Flavour;

use crate::Result;
use crate::backup::Artifact;
use crate::postgres::PostgresServer;
use crate::restore::{PgRestoreOptions, PsqlRestoreOptions, pg_restore, psql_restore, shell};
use crate::scenario::{DumpFormat, Step};

/// What every step can see.
pub(crate) struct StepContext<'a> {
    pub(crate) server: &'a dyn PostgresServer,
    pub(crate) artifact: &'a Artifact,
    pub(crate) flavour: Flavour,
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

/// The environment a user's command gets: PGHOST, PGPORT, PGUSER,
/// PGPASSWORD, PGDATABASE, DATABASE_URL, DRILL_BACKUP_FILE (when there is a
/// backup) and DRILL_WORK_DIR.
pub fn step_env(
    server: &dyn PostgresServer,
    artifact: Option<&Artifact>,
    work: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = server
        .coordinates()
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some(a) = artifact {
        env.push(("DRILL_BACKUP_FILE".into(), a.path.display().to_string()));
    }
    env.push(("DRILL_WORK_DIR".into(), work.display().to_string()));
    // Client tools of the server's own version come first on PATH: the
    // local binaries, or shims that run them inside the container.
    let info = server.info();
    let path = std::env::var("PATH").unwrap_or_default();
    match server.server().backend() {
        crate::backend::BackendKind::Native => {
            if Path::new(&info.source).is_dir() {
                env.push(("PATH".into(), format!("{}:{path}", info.source)));
            }
        }
        crate::backend::BackendKind::Docker => {
            let bin = work.join("bin");
            if write_shims(server, &bin).is_ok() {
                env.push(("PATH".into(), format!("{}:{path}", bin.display())));
            }
        }
    }
    env
}

/// Writes `psql`, `pg_dump`, `pg_restore` and `pg_isready` shims into
/// `bin` (again each time: a wipe or a crash makes a new container).
fn write_shims(server: &dyn PostgresServer, bin: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin)?;
    let (host, port) = server.server().tool_addr(crate::postgres::server::PORT);
    let fixed = [
        ("PGHOST".to_string(), host),
        ("PGPORT".to_string(), port.to_string()),
    ];
    let passthrough = [
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGOPTIONS",
        "PGAPPNAME",
        "PGCONNECT_TIMEOUT",
    ];
    for program in ["psql", "pg_dump", "pg_restore", "pg_isready"] {
        if let Some(text) = server.server().tool_shim(program, &fixed, &passthrough) {
            let path = bin.join(program);
            std::fs::write(&path, text)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

pub(crate) fn run_step(ctx: &StepContext<'_>, step: &Step, id: &str) -> Result<StepDone> {
    let ts = ctx.flavour == Flavour::TimescaleDb;
    match step {
        Step::PsqlRestore {
            sanitize,
            on_error_stop,
            timeout,
        } => {
            if ctx.artifact.format != DumpFormat::Plain {
                return Ok(refused(format!(
                    "psql-restore needs a plain-format dump; {} is {:?}: use `pg-restore`",
                    ctx.artifact.path.display(),
                    ctx.artifact.format
                )));
            }
            let opts = PsqlRestoreOptions {
                sanitize: *sanitize,
                on_error_stop: *on_error_stop,
                timeout: timeout.map(|t| t.0),
                timescaledb: ts,
            };
            let out = tokio::task::block_in_place(|| psql_restore(ctx.server, ctx.artifact, opts))?;
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
            if ctx.artifact.format == DumpFormat::Plain {
                return Ok(refused(format!(
                    "pg-restore needs a custom- or directory-format dump; {} is plain SQL: use `psql-restore`",
                    ctx.artifact.path.display()
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
            let out =
                tokio::task::block_in_place(|| pg_restore(ctx.server, &ctx.artifact.path, &o))?;
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
        Step::ApplySchema => {
            let files = drill_fixtures::nexwave_schema(ctx.flavour);
            let names: Vec<&str> = files.iter().map(|f| f.path).collect();
            for f in &files {
                if let Err(e) = crate::restore::run_sql(ctx.server, f.sql) {
                    return Ok(failed(format!("fixtures/{} failed: {e}", f.path)));
                }
            }
            Ok(StepDone {
                ok: true,
                clean: true,
                detail: format!("applied {}", names.join(", ")),
                errors: vec![],
                status: String::new(),
                evidence: String::new(),
            })
        }
        Step::Sql { run } => match crate::restore::run_sql(ctx.server, run) {
            Ok(out) => Ok(StepDone {
                ok: true,
                clean: true,
                detail: format!(
                    "ok{}",
                    if out.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", out.lines().next().unwrap_or(""))
                    }
                ),
                errors: vec![],
                status: String::new(),
                evidence: String::new(),
            }),
            Err(e) => Ok(failed(e.to_string())),
        },
        Step::Shell {
            run,
            workdir,
            timeout,
        } => {
            let dir = ctx
                .scenario_dir
                .join(workdir.as_deref().unwrap_or(Path::new(".")));
            let env = step_env(ctx.server, Some(ctx.artifact), ctx.work);
            let log = ctx.work.join(format!("step-{id}.log"));
            let out = tokio::task::block_in_place(|| {
                shell::run(run, &dir, &env, timeout.map(|t| t.0), &log)
            })?;
            let last = out.output_tail.lines().last().unwrap_or("").to_string();
            Ok(StepDone {
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
            })
        }
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
