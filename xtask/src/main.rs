//! `cargo xtask`: the friendly face over drill's engine. This file only
//! parses flags and dispatches; each command lives in its own module.

mod bench;
mod clean;
mod deps;
mod drill;
mod failure;
mod fingerprint;
mod images;
mod lint;
mod list;
mod sanitize;
mod test;
mod timescaledb;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use failure::{Failure, Outcome, exit};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "drill: disaster-recovery drills against disposable servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run drills (all scenarios by default) and print a summary table.
    Drill(Box<drill::Args>),
    /// List the scenarios with their one-line descriptions.
    List {
        #[arg(long, default_value = "scenarios")]
        scenarios_dir: PathBuf,
    },
    /// Stop servers and remove temp dirs left by killed or --keep runs.
    Clean,
    /// Save a live database's schema fingerprint to a file.
    Fingerprint(fingerprint::Args),
    /// Filter stdin to stdout, removing pg_dump's stderr lines from a dump.
    Sanitize,
    /// Benchmarks: drill's overhead next to the raw tools; writes BENCHMARKS.md.
    Bench(bench::Args),
    /// Install what drills and tests need (Debian's postgresql-15), if missing.
    Deps,
    /// Read backup scripts, crontabs, runbooks and backup files for the
    /// hazards behind the seeds' incidents (exit 1 when any is found).
    LintBackup(lint::Args),
    /// Build local stand-ins for the official images from Debian's packages
    /// (for a Docker engine that cannot pull); prints the variables that select them.
    Images(images::Args),
    /// Install what the tests need, then run them with nextest.
    Test {
        /// Extra arguments for `cargo nextest run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // A flag clap refuses (`--backend foo`) is bad input: exit 3, not
    // clap's own 2 (which the README gives the harness's failures).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            });
        }
    };
    let outcome = match cli.command {
        Command::Drill(args) => drill::run(*args),
        Command::List { scenarios_dir } => list::run(&scenarios_dir),
        Command::Clean => clean::run(),
        Command::Fingerprint(args) => fingerprint::run(args),
        Command::Sanitize => sanitize::run(),
        Command::Bench(args) => bench::run(args),
        Command::Deps => deps::run(),
        Command::LintBackup(args) => lint::run(args),
        Command::Images(args) => images::run(args),
        Command::Test { args } => test::run(&args),
    };
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
