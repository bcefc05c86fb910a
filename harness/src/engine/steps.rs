//! Runs one recovery step of any kind and says what happened in one shape
//! ([`StepDone`]), so the engine treats them alike: the user's command
//! (`shell`) runs here with every service's environment; every other step
//! belongs to the service it names.

use std::path::Path;

use super::services::Services;
use crate::Result;
use crate::scenario::Step;
use crate::service::{StepDone, exit_code};

/// Runs `step`; `id` names its log.
pub(crate) async fn run_step(
    services: &mut Services,
    step: &Step,
    scenario_dir: &Path,
    work: &Path,
    id: &str,
) -> Result<StepDone> {
    if let Step::Shell { run, workdir, .. } = step {
        let dir = scenario_dir.join(workdir.as_deref().unwrap_or(Path::new(".")));
        let env = services.env(work);
        let log = work.join(format!("step-{id}.log"));
        tracing::debug!(command = %run, workdir = %dir.display(), "shell step");
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
    let kind = step
        .service()
        .expect("every step but shell names its service");
    services.get_mut(kind).run_step(step).await
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
    }
}
