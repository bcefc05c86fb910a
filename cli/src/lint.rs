//! `cargo xtask lint-backup PATH...`: the backup jobs, runbooks, crontabs
//! and backup files read for the hazards behind the seeds' incidents,
//! without restoring anything (see `drill::lint`). Text for people, JSON or
//! SARIF (GitHub code scanning) for machines; exit 0 clean, 1 hazards
//! found, 3 unreadable input.

use std::path::PathBuf;

use anyhow::Context;

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup scripts, crontabs, runbooks (their code blocks), backup
    /// files, or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// text, json or sarif.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "sarif"])]
    format: String,
    /// Write the report here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Outcome {
    let report = drill::lint::lint_paths(&args.paths)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{e}")))?;
    let text = match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&report.json()).context("json")?,
        "sarif" => serde_json::to_string_pretty(&report.sarif()).context("sarif")?,
        _ => report.text(),
    };
    match &args.output {
        Some(p) => std::fs::write(p, &text).with_context(|| p.display().to_string())?,
        None => print!("{text}"),
    }
    if report.clean() {
        return Ok(());
    }
    if args.output.is_some() || args.format != "text" {
        eprintln!("{} hazards found", report.findings.len());
    }
    Err(Failure::ExpectationMissed)
}
