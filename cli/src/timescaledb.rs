//! Builds TimescaleDB from a source release the user names, for machines
//! no registry serves (a user with one pulls `timescale/timescaledb` or
//! installs Timescale's packages and needs none of this).
//!
//! `DRILL_TIMESCALEDB_SRC` names a tarball (`git archive` of a tag, top
//! folder `timescaledb-X.Y.Z/`) or an unpacked folder. [`ensure`] installs
//! Debian's build dependencies, builds the extension against the PostgreSQL
//! drill runs (its `pg_config`), and installs it there; when that version is
//! installed already it does nothing. Each build is kept as a tarball of the
//! files it installed, in drill's cache (`$DRILL_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/drill`, else `~/.cache/drill`), keyed by the source's
//! hash and the PostgreSQL version: a second machine setup, or the image
//! recipe (`cargo xtask images`), unpacks it instead of building again.
//! Nothing of TimescaleDB ever enters the repository.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The variable naming the source release.
pub const SRC_ENV: &str = "DRILL_TIMESCALEDB_SRC";

/// A source release: where it is, its version and a key for the cache.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    pub version: String,
    key: String,
}

/// The PostgreSQL the extension is built for.
#[derive(Debug, Clone)]
pub struct Target {
    pg_config: PathBuf,
    /// The server's bin folder.
    bin_dir: PathBuf,
    /// Built without OpenSSL (PyPI's PostgreSQL 18): TimescaleDB must be too.
    no_openssl: bool,
    /// e.g. "15.20"
    pub pg_version: String,
    pub pg_major: String,
    sharedir: PathBuf,
    pkglibdir: PathBuf,
}

/// A finished build: the files it installs, as a tarball rooted at `/`.
#[derive(Debug, Clone)]
pub struct Build {
    pub tarball: PathBuf,
    pub version: String,
    pub pg_major: String,
    /// The PostgreSQL it was built against, e.g. "15.20".
    pub pg_version: String,
}

/// The source the environment names, if any.
pub fn configured() -> anyhow::Result<Option<Source>> {
    match std::env::var_os(SRC_ENV) {
        None => Ok(None),
        Some(p) if p.is_empty() => Ok(None),
        Some(p) => Source::open(Path::new(&p)).map(Some),
    }
}

/// With `DRILL_TIMESCALEDB_SRC` set: makes sure that version is installed
/// into the PostgreSQL drill runs (building it when needed). Unset: nothing.
pub fn ensure() -> anyhow::Result<()> {
    ensure_for(&drill::service::postgres::PgBinaries::locate()?)
}

/// As [`ensure`], for the PostgreSQL whose binaries are `bins`.
pub fn ensure_for(bins: &drill::service::postgres::PgBinaries) -> anyhow::Result<()> {
    let Some(src) = configured()? else {
        return Ok(());
    };
    let target = Target::of(bins)?;
    if target.has(&src.version) {
        eprintln!(
            "timescaledb: {} is installed for PostgreSQL {} ({}); nothing to build",
            src.version,
            target.pg_version,
            target.pg_config.display()
        );
        return Ok(());
    }
    let build = build(&src, &target)?;
    install(&build, &target)
}

/// The build of the configured source for `target`, made when missing.
pub fn build(src: &Source, target: &Target) -> anyhow::Result<Build> {
    let dir = cache_dir()?;
    // Keyed by the PostgreSQL minor version too: a library built against a
    // newer minor release may not load into an older one.
    let made_for = |t: &Target| Build {
        tarball: dir.join(format!(
            "timescaledb-{}-pg{}-{}.tar",
            src.version, t.pg_version, src.key
        )),
        version: src.version.clone(),
        pg_major: t.pg_major.clone(),
        pg_version: t.pg_version.clone(),
    };
    // One build at a time: a second run waits for the first, then finds it.
    let lock = std::fs::File::create(dir.join("timescaledb.lock"))?;
    lock.lock().context("lock drill's cache")?;
    let cached = made_for(target);
    if cached.tarball.is_file() {
        eprintln!(
            "timescaledb: using the cached build {}",
            cached.tarball.display()
        );
        return Ok(cached);
    }
    ensure_build_deps(target)?;
    // Installing the headers may have upgraded pg_config: ask it again.
    let target = &target.again()?;
    let build = made_for(target);
    if build.tarball.is_file() {
        return Ok(build);
    }
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("timescaledb-build-")
        .tempdir_in(&dir)?;
    let tree = unpack(src, work.path())?;
    let log = dir.join(format!("timescaledb-{}-build.log", src.version));
    let stage = work.path().join("stage");
    eprintln!(
        "timescaledb: building {} for PostgreSQL {} from {} (about 3 min on 2 cores; log {}) ...",
        src.version,
        target.pg_version,
        src.path.display(),
        log.display()
    );
    compile(&tree, target, &stage, &log)?;
    pack(&stage, &build.tarball)?;
    eprintln!(
        "timescaledb: built {} in {}",
        src.version,
        drill::fmt_duration(started.elapsed())
    );
    Ok(build)
}

/// Unpacks the build into the target PostgreSQL's folders.
fn install(build: &Build, target: &Target) -> anyhow::Result<()> {
    for dir in [&target.sharedir, &target.pkglibdir] {
        let probe = dir.join(".drill-write-probe");
        std::fs::write(&probe, b"").with_context(|| {
            format!(
                "installing timescaledb needs write access to {}; run `sudo cargo xtask deps`",
                dir.display()
            )
        })?;
        let _ = std::fs::remove_file(probe);
    }
    run(
        Command::new("tar")
            .args(["-C", "/", "-xf"])
            .arg(&build.tarball),
        "unpack the timescaledb build into /",
    )?;
    anyhow::ensure!(
        target.has(&build.version),
        "timescaledb {} unpacked, but {} does not list it",
        build.version,
        target.pg_config.display()
    );
    eprintln!(
        "timescaledb: {} installed for PostgreSQL {} (servers load it with shared_preload_libraries = 'timescaledb')",
        build.version, target.pg_version
    );
    Ok(())
}

impl Source {
    fn open(path: &Path) -> anyhow::Result<Source> {
        let hint = || {
            format!(
                "{SRC_ENV}={}: name TimescaleDB's source tarball (timescaledb-X.Y.Z.tar.gz) or its unpacked folder",
                path.display()
            )
        };
        let meta = std::fs::metadata(path).with_context(hint)?;
        let (version_config, key) = if meta.is_dir() {
            let text = std::fs::read_to_string(path.join("version.config"))
                .with_context(|| format!("{}: no version.config", hint()))?;
            let canonical = std::fs::canonicalize(path)?;
            (text, hash(canonical.display().to_string().as_bytes()))
        } else {
            let out = Command::new("tar")
                .args(["-xzOf"])
                .arg(path)
                .args(["--wildcards", "*/version.config"])
                .output()
                .with_context(hint)?;
            anyhow::ensure!(
                out.status.success(),
                "{}: not a gzip tarball holding version.config ({})",
                hint(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            let bytes = std::fs::read(path).with_context(hint)?;
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                hash(&bytes),
            )
        };
        let version = version_config
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "version").then(|| v.trim().to_string())
            })
            .with_context(|| format!("{}: version.config names no version", hint()))?;
        anyhow::ensure!(
            version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{}: odd version {version:?}",
            hint()
        );
        Ok(Source {
            path: path.to_path_buf(),
            version,
            key,
        })
    }
}

impl Target {
    /// The `pg_config` of the PostgreSQL drill runs.
    pub fn locate() -> anyhow::Result<Target> {
        Self::of(&drill::service::postgres::PgBinaries::locate()?)
    }

    /// Asks pg_config again (after its headers were installed).
    fn again(&self) -> anyhow::Result<Target> {
        Self::of(&drill::service::postgres::PgBinaries::locate_version(
            Some(self.pg_major.parse()?),
        )?)
    }

    /// The `pg_config` beside `bins` (else the one on PATH).
    pub fn of(bins: &drill::service::postgres::PgBinaries) -> anyhow::Result<Target> {
        let beside = bins.bin_dir.join("pg_config");
        let pg_config = if beside.is_file() {
            beside
        } else {
            PathBuf::from("pg_config")
        };
        let ask = |flag: &str| -> anyhow::Result<String> {
            let out = Command::new(&pg_config)
                .arg(flag)
                .output()
                .with_context(|| {
                    format!(
                        "run {} {flag}; install postgresql-server-dev-{}",
                        pg_config.display(),
                        bins.major
                    )
                })?;
            anyhow::ensure!(
                out.status.success(),
                "{} {flag} failed",
                pg_config.display()
            );
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let version = ask("--version")?; // "PostgreSQL 15.20 (Debian ...)"
        let pg_version = version
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let configure = ask("--configure")?;
        Ok(Target {
            bin_dir: bins.bin_dir.clone(),
            no_openssl: !(configure.contains("--with-openssl") || configure.contains("--with-ssl")),
            pg_major: bins.major.to_string(),
            pg_version,
            sharedir: PathBuf::from(ask("--sharedir")?),
            pkglibdir: PathBuf::from(ask("--pkglibdir")?),
            pg_config,
        })
    }

    /// Whether `version` is installed: its control file, install script and
    /// library are all there.
    fn has(&self, version: &str) -> bool {
        let ext = self.sharedir.join("extension");
        ext.join("timescaledb.control").is_file()
            && ext.join(format!("timescaledb--{version}.sql")).is_file()
            && self
                .pkglibdir
                .join(format!("timescaledb-{version}.so"))
                .is_file()
    }
}

fn hash(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))[..16].to_string()
}

/// drill's cache folder (made when missing).
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("DRILL_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("drill")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/drill")))
        .context("no cache folder: set DRILL_CACHE_DIR")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// Debian's packages the build needs (the server headers too, unless
/// pg_config's own folder has them, as PyPI's PostgreSQL does).
fn ensure_build_deps(target: &Target) -> anyhow::Result<()> {
    let own_headers = target
        .bin_dir
        .parent()
        .is_some_and(|p| p.join("include/server/postgres.h").is_file());
    let dev = if own_headers {
        "cmake".to_string()
    } else {
        format!("postgresql-server-dev-{}", target.pg_major)
    };
    let have = |pkg: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", pkg])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
    };
    let missing: Vec<&str> = [
        dev.as_str(),
        "cmake",
        "libssl-dev",
        "libkrb5-dev",
        "gcc",
        "make",
    ]
    .into_iter()
    .filter(|p| !have(p))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::deps::install(&missing)
}

/// Unpacks (or copies) the source into `work`; returns the source tree.
fn unpack(src: &Source, work: &Path) -> anyhow::Result<PathBuf> {
    let tree = work.join("src");
    std::fs::create_dir_all(&tree)?;
    if src.path.is_dir() {
        run(
            Command::new("cp")
                .arg("-a")
                .arg(src.path.join("."))
                .arg(&tree),
            "copy the source folder",
        )?;
    } else {
        run(
            Command::new("tar")
                .args(["-xzf"])
                .arg(&src.path)
                .args(["--strip-components=1", "-C"])
                .arg(&tree),
            "unpack the source tarball",
        )?;
    }
    Ok(tree)
}

/// Configures and builds, installing into `stage` (DESTDIR), with progress.
fn compile(tree: &Path, target: &Target, stage: &Path, log: &Path) -> anyhow::Result<()> {
    let log_file = std::fs::File::create(log)?;
    let mut configure = Command::new("./bootstrap");
    configure
        .current_dir(tree)
        .args([
            "-DREGRESS_CHECKS=OFF",
            "-DTAP_CHECKS=OFF",
            "-DWARNINGS_AS_ERRORS=OFF",
            "-DLINTER=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ])
        .arg(format!("-DPG_CONFIG={}", target.pg_config.display()))
        .args(target.no_openssl.then_some("-DUSE_OPENSSL=0"))
        .stdout(log_file.try_clone()?)
        .stderr(log_file.try_clone()?);
    eprintln!("timescaledb: configuring (cmake) ...");
    let status = configure.status().context("run ./bootstrap")?;
    anyhow::ensure!(status.success(), "configuring failed:\n{}", tail_of(log));
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut make = Command::new("make")
        .arg("-C")
        .arg(tree.join("build"))
        .arg(format!("-j{jobs}"))
        .arg("install")
        .env("DESTDIR", stage)
        .stdout(Stdio::piped())
        .stderr(log_file.try_clone()?)
        .spawn()
        .context("run make")?;
    let stdout = make.stdout.take().expect("piped");
    let mut shown = 0;
    let mut log_out = std::io::BufWriter::new(log_file);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        use std::io::Write;
        let _ = writeln!(log_out, "{line}");
        if let Some(pct) = percent(&line)
            && pct >= shown + 10
        {
            shown = pct - pct % 10;
            eprintln!("timescaledb: compiling ... {pct}%");
        }
    }
    drop(log_out);
    let status = make.wait()?;
    anyhow::ensure!(status.success(), "make failed:\n{}", tail_of(log));
    Ok(())
}

/// The percentage of a make line such as `[ 42%] Building C object ...`.
fn percent(line: &str) -> Option<u32> {
    let rest = line.strip_prefix('[')?;
    let (n, _) = rest.split_once("%]")?;
    n.trim().parse().ok()
}

/// Tars what `make install` put in `stage`, rooted at `/`.
fn pack(stage: &Path, tarball: &Path) -> anyhow::Result<()> {
    let partial = tarball.with_extension("tar.partial");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(stage)
            .args(["--owner=0", "--group=0", "-cf"])
            .arg(&partial)
            .arg("."),
        "tar the build",
    )?;
    std::fs::rename(&partial, tarball)?;
    Ok(())
}

fn tail_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "{}\n(whole log: {})",
        lines[lines.len().saturating_sub(20)..].join("\n"),
        log.display()
    )
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| what.to_string())?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_progress_lines_are_read() {
        assert_eq!(percent("[ 42%] Building C object src/x.c.o"), Some(42));
        assert_eq!(percent("[100%] Built target timescaledb"), Some(100));
        assert_eq!(percent("make[2]: Entering directory"), None);
    }

    #[test]
    fn a_source_names_its_version_and_a_bad_one_says_what_to_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("version.config"),
            "version = 2.28.3\nprevious_version = 2.28.2\n",
        )
        .unwrap();
        assert_eq!(Source::open(dir.path()).unwrap().version, "2.28.3");
        let junk = dir.path().join("junk.tar.gz");
        std::fs::write(&junk, b"not a tarball").unwrap();
        let e = format!("{:#}", Source::open(&junk).unwrap_err());
        assert!(
            e.contains(SRC_ENV) && e.contains("not a gzip tarball"),
            "{e}"
        );
        let e = format!("{:#}", Source::open(&dir.path().join("none")).unwrap_err());
        assert!(e.contains("source tarball"), "{e}");
    }
}
