//! `drill`: the command line, installable with `cargo install --path cli`
//! (or `--git`), usable from any repository that holds scenarios.

use std::process::ExitCode;

#[derive(clap::Parser)]
#[command(
    name = "drill",
    version,
    about = "drill: disaster-recovery drills against disposable servers"
)]
struct Cli {
    #[command(subcommand)]
    command: drill_cli::Command,
}

fn main() -> ExitCode {
    match drill_cli::parse::<Cli>() {
        Ok(cli) => drill_cli::dispatch(cli.command),
        Err(code) => code,
    }
}
