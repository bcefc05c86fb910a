//! Finding PostgreSQL's server binaries (initdb, postgres) and client tools
//! of the same version on this machine, and saying what to install when
//! they are missing.

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

impl PgBinaries {
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
