//! `cargo xtask deps`: installs the servers the native backend runs
//! (Debian's PostgreSQL 15, Redis and ClickHouse), TimescaleDB built from
//! the source `DRILL_TIMESCALEDB_SRC` names (see `timescaledb.rs`) and,
//! for the tests, xmllint, when they are missing and this is a Debian
//! machine where we are root; otherwise says exactly what to install.

use std::process::Command;

use drill::ServiceKind;

use anyhow::Context;

use crate::Outcome;

/// Makes sure the native servers of `services` are installed.
pub(crate) fn ensure_for(services: &[ServiceKind]) -> anyhow::Result<()> {
    if services.contains(&ServiceKind::Postgres) {
        ensure()?;
    }
    let packages: Vec<(&str, &[&str])> = services
        .iter()
        .filter_map(|k| match k {
            ServiceKind::Redis => Some(("redis-server", &["redis-server", "redis-tools"][..])),
            ServiceKind::ClickHouse => Some((
                "clickhouse-server",
                &["clickhouse-server", "clickhouse-client"][..],
            )),
            ServiceKind::Postgres => None,
        })
        .collect();
    for (program, pkgs) in packages {
        let present = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain(["/usr/sbin".into(), "/usr/bin".into()])
            .any(|d| d.join(program).is_file());
        if present {
            continue;
        }
        install(pkgs)?;
    }
    Ok(())
}

/// Installs Debian packages (root and apt only); says what to run otherwise.
pub(crate) fn install(pkgs: &[&str]) -> anyhow::Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(is_root && has_apt) {
        anyhow::bail!(
            "{} not found; install it: apt-get install -y {}",
            pkgs[0],
            pkgs.join(" ")
        );
    }
    eprintln!("drill: installing Debian's {} ...", pkgs.join(", "));
    let ok = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let args = |extra: &[&str]| -> Vec<String> {
        ["install", "-y", "-qq", "--no-install-recommends"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    if !ok(Command::new("apt-get").args(args(pkgs))) {
        let _ = ok(Command::new("apt-get").args(["update", "-qq"]));
        if !ok(Command::new("apt-get").args(args(pkgs))) {
            anyhow::bail!("apt-get install {} failed", pkgs.join(" "));
        }
    }
    Ok(())
}

/// Makes sure PostgreSQL's server binaries exist, and with
/// `DRILL_TIMESCALEDB_SRC` set, the TimescaleDB it names.
pub(crate) fn ensure() -> anyhow::Result<()> {
    ensure_postgres()?;
    ensure_pgbackrest()?;
    crate::timescaledb::ensure()
}

/// pgBackRest, for the `pgbackrest` backup method (Debian's 2.45).
fn ensure_pgbackrest() -> anyhow::Result<()> {
    if drill::backend::which_program("pgbackrest").is_some() {
        return Ok(());
    }
    install(&["pgbackrest"]).context("pgBackRest (method = \"pgbackrest\")")
}

fn ensure_postgres() -> anyhow::Result<()> {
    if drill::service::postgres::PgBinaries::locate().is_ok() {
        return Ok(());
    }
    install(&["postgresql-15", "postgresql-client-15"]).with_context(|| {
        format!(
            "PostgreSQL server binaries: {}",
            drill::service::postgres::INSTALL_HINT
        )
    })?;
    // The package starts a cluster of its own on 5432; drills never use it.
    let _ = Command::new("pg_ctlcluster")
        .args(["15", "main", "stop"])
        .status();
    drill::service::postgres::PgBinaries::locate()?;
    Ok(())
}

/// Tools only the tests use: xmllint validates junit.xml against its schema.
pub(crate) fn ensure_test_tools() -> anyhow::Result<()> {
    if Command::new("xmllint").arg("--version").output().is_ok() {
        return Ok(());
    }
    install(&["libxml2-utils"])
}

pub(crate) fn run() -> Outcome {
    ensure_for(&ServiceKind::ALL)?;
    ensure_test_tools()?;
    eprintln!("drill: dependencies present");
    Ok(())
}
