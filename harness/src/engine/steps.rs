//! Runs one recovery step of any kind and says what happened in one shape
//! ([`StepDone`]), so the engine treats them alike: the user's command
//! (`shell`) runs here with every service's environment; every other step
//! belongs to the service it names.

use std::path::Path;

use super::docker_shim::Shim;
use super::services::Services;
use crate::Result;
use crate::scenario::Step;
use crate::service::{StepDone, exit_code};

/// Runs `step`; `id` names its log.
/// With `shim` (a drill that imported a compose file), the user's command
/// finds drill's `docker` first on PATH.
pub(crate) async fn run_step(
    services: &mut Services,
    step: &Step,
    scenario_dir: &Path,
    work: &Path,
    id: &str,
    shim: Option<&mut Shim>,
) -> Result<StepDone> {
    if let Step::Shell { run, workdir, .. } = step {
        let dir = scenario_dir.join(workdir.as_deref().unwrap_or(Path::new(".")));
        let env = services.env(work);
        let log = work.join(format!("step-{id}.log"));
        tracing::debug!(command = %run, workdir = %dir.display(), "shell step");
        if let Some(shim) = shim {
            let ran = shim
                .run_shell(services, run, &dir, env, step.time_limit(), log, work)
                .await?;
            let mut done = shell_done(ran.outcome, &dir);
            if !ran.did.is_empty() {
                done.detail
                    .push_str(&format!("; docker shim: {}", ran.did.join("; ")));
            }
            return Ok(done);
        }
        let out = tokio::task::block_in_place(|| {
            crate::shell::run(
                run,
                &dir,
                &env,
                Some(step.time_limit()),
                &log,
                &crate::service::scrub_env(),
            )
        })?;
        return Ok(shell_done(out, &dir));
    }
    if let Step::LintBackup { paths, strict } = step {
        let paths: Vec<_> = paths.iter().map(|p| scenario_dir.join(p)).collect();
        return Ok(lint_done(crate::lint::lint_paths(&paths), *strict));
    }
    let kind = step
        .service()
        .expect("every step but shell and lint-backup names its service");
    services.get_mut(kind).run_step(step).await
}

/// The lint's findings as a step: each `file:line rule` in the detail, the
/// whole text as evidence; failed when strict and any is found.
fn lint_done(
    report: std::result::Result<crate::lint::Report, crate::lint::Unreadable>,
    strict: bool,
) -> StepDone {
    let report = match report {
        Ok(r) => r,
        Err(e) => return StepDone::failed(format!("lint-backup cannot read {e}")),
    };
    if report.clean() {
        return StepDone::done(format!("no hazards in {} files read", report.files.len()));
    }
    let names: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{} {} at {}:{}", f.rule, f.name, f.file, f.line))
        .collect();
    let detail = format!(
        "{} hazards in {} files: {}",
        report.findings.len(),
        report.files.len(),
        names.join("; ")
    );
    StepDone {
        ok: !strict,
        clean: false,
        detail,
        errors: if strict { names } else { vec![] },
        status: format!("{} hazards", report.findings.len()),
        evidence: report.text(),
        wal_bytes: None,
    }
}

fn shell_done(out: crate::shell::ShellOutcome, dir: &Path) -> StepDone {
    let last = out.output_tail.lines().last().unwrap_or("").to_string();
    StepDone {
        ok: out.ok(),
        clean: out.ok(),
        detail: format!(
            "exit {}{} in {}; last output: {last} (log: {})",
            exit_code(out.exit_code),
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
            format!("exit {}", exit_code(out.exit_code))
        },
        evidence: out.output_tail,
        wal_bytes: None,
    }
}
