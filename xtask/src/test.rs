//! `cargo xtask test`: the README's test command. Installs what the tests
//! need (a real PostgreSQL), then runs the whole workspace under nextest.

use std::process::Command;

use crate::{deps, exit};

pub(crate) fn run(extra: &[String]) -> u8 {
    if let Err(e) = deps::ensure().and_then(|()| deps::ensure_test_tools()) {
        eprintln!("error: {e}");
        return exit::HARNESS_ERROR;
    }
    let profile = if std::env::var_os("CI").is_some() {
        "ci"
    } else {
        "default"
    };
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["nextest", "run", "--workspace", "--profile", profile])
        .args(extra)
        .status();
    match status {
        Ok(s) if s.success() => exit::OK,
        Ok(_) => exit::EXPECTATION_MISSED,
        Err(e) => {
            eprintln!(
                "error: could not run cargo nextest ({e}); install it with `cargo install cargo-nextest --locked`"
            );
            exit::HARNESS_ERROR
        }
    }
}
