//! `cargo xtask deps`: installs Debian's PostgreSQL 15 server (and, for the
//! tests, xmllint) when its
//! binaries are missing and this is a Debian machine where we are root;
//! otherwise says exactly what to install.

use std::process::Command;

use crate::exit;

/// Makes sure server binaries exist; returns an exit code.
pub(crate) fn ensure() -> Result<(), String> {
    if drill::backend::PgBinaries::locate().is_ok() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(is_root && has_apt) {
        return Err(format!(
            "PostgreSQL server binaries not found; install them: {}",
            drill::backend::INSTALL_HINT
        ));
    }
    eprintln!("drill: PostgreSQL server binaries missing; installing Debian's postgresql-15 ...");
    let ok = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(Command::new("apt-get").args(["update", "-qq"])) {
        return Err("apt-get update failed".into());
    }
    if !ok(Command::new("apt-get").args([
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "postgresql-15",
        "postgresql-client-15",
    ])) {
        return Err("apt-get install postgresql-15 failed".into());
    }
    // The package starts a cluster of its own on 5432; drills never use it.
    let _ = Command::new("pg_ctlcluster")
        .args(["15", "main", "stop"])
        .status();
    drill::backend::PgBinaries::locate()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Tools only the tests use: xmllint validates junit.xml against its schema.
pub(crate) fn ensure_test_tools() -> Result<(), String> {
    if Command::new("xmllint").arg("--version").output().is_ok() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !is_root {
        return Err("xmllint not found; install it: apt-get install -y libxml2-utils".into());
    }
    eprintln!("drill: installing libxml2-utils (xmllint) for the JUnit schema test ...");
    let ok = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(Command::new("apt-get").args(["install", "-y", "-qq", "libxml2-utils"])) {
        let _ = ok(Command::new("apt-get").args(["update", "-qq"]));
        if !ok(Command::new("apt-get").args(["install", "-y", "-qq", "libxml2-utils"])) {
            return Err("apt-get install libxml2-utils failed".into());
        }
    }
    Ok(())
}

pub(crate) fn run() -> u8 {
    match ensure().and_then(|()| ensure_test_tools()) {
        Ok(()) => {
            eprintln!("drill: dependencies present");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::HARNESS_ERROR
        }
    }
}
