//! `cargo xtask`: drill's own checkout's commands. Everything a drill user
//! runs is `drill_cli`'s (the `drill` binary's; `cargo xtask drill` is
//! `drill run`); what builds and measures drill itself (images, bench,
//! test) is here. This file only parses flags and dispatches.

mod bench;
mod bench_phases;
mod bench_restore;
mod images;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use drill_cli::{Failure, Outcome, deps, timescaledb};

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
    #[command(flatten)]
    Drill(drill_cli::Command),
    /// Benchmarks: drill's overhead next to the raw tools; writes BENCHMARKS.md.
    Bench(bench::Args),
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
    let cli = match drill_cli::parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Drill(c) => drill_cli::dispatch(c),
        Command::Bench(args) => drill_cli::finish(bench::run(args)),
        Command::Images(args) => drill_cli::finish(images::run(args)),
        Command::Test { args } => drill_cli::finish(test::run(&args)),
    }
}
