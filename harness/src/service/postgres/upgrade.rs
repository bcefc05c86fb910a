//! Moving a PostgreSQL service to another major version, as a release
//! does: an empty server of the new version to restore a dump into
//! (`new-server`), or `pg_upgrade` of the stopped server's data into a new
//! cluster (`pg-upgrade`). Either way the new server takes the service's
//! place, and the server the drill started with is kept, so the next
//! recovery starts again from it (unless a `--link` upgrade consumed it).
//! Also here: whether a TimescaleDB dump fits a server ([`timescaledb_fits`]),
//! which restore steps ask before restoring, since a new server may run
//! another TimescaleDB than the one the dump was taken with.

use std::time::Instant;

use super::{PgBinaries, PgSpec, Postgres};
use crate::backend::{BackendKind, sh_quote};
use crate::scenario::{ChecksumsChoice, PgEngine, UpgradeMode};
use crate::service::{Lifecycle, StepDone};
use crate::{Error, Result};

/// The servers a recovery moved away from.
#[derive(Debug, Default)]
pub(crate) struct Upgrades {
    /// Servers a later step replaced; removed when the drill ends, before
    /// `original` (fields drop in order: a server that borrows a volume
    /// goes before the volume's owner).
    retired: Vec<Postgres>,
    /// The server the drill started with, while another one serves.
    original: Option<Postgres>,
    /// A `--link` upgrade moved the original's files: it cannot start again.
    linked: bool,
    /// An upgrade step ran since the fault was last dealt.
    touched: bool,
    /// Every server an upgrade step started, for the report.
    pub(crate) started: Vec<crate::vocab::ServerInfo>,
}

impl Upgrades {
    /// `fresh` takes `current`'s place.
    fn replace(&mut self, current: &mut Postgres, fresh: Postgres) {
        if !self.started.contains(&fresh.info) {
            self.started.push(fresh.info.clone());
        }
        let old = std::mem::replace(current, fresh);
        if self.original.is_none() {
            self.original = Some(old);
        } else {
            self.retired.push(old);
        }
    }

    /// Before a fault is dealt again: the drill's first server serves again
    /// (started when a step stopped it); the newer ones are removed.
    pub(crate) fn restore(&mut self, current: &mut Postgres) -> Result<Option<String>> {
        if !std::mem::take(&mut self.touched) {
            return Ok(None);
        }
        if self.original.is_none() {
            // A failed upgrade left the first server where it was (stopped,
            // if a step stopped it).
            if current.server_mut().alive().is_err() {
                current.start_again()?;
                return Ok(Some(
                    "the drill's first server started again on its data".into(),
                ));
            }
            return Ok(None);
        }
        if self.linked {
            return Err(Error::BadInput {
                what: "a recovery after `pg-upgrade` in link mode".into(),
                why: "the drill's first server cannot serve it: link mode moved its files \
                      (pg_upgrade: \"the old cluster cannot be safely started\"); put the \
                      link-mode recovery last"
                    .into(),
            });
        }
        let original = self.original.take().expect("checked above");
        // Borrowers before owners: the newest server, then the retired.
        let newer = std::mem::replace(current, original);
        drop(newer);
        self.retired.clear();
        let mut said = format!(
            "back on the drill's first server (PostgreSQL {})",
            current.major()
        );
        if current.server_mut().alive().is_err() {
            current.start_again()?;
            said.push_str(", started on its data");
        }
        Ok(Some(said))
    }
}

/// A server like `old` (flavour, settings, run) of PostgreSQL `version`
/// (`None`: the version drill finds), started and ready.
fn fresh_server(
    old: &Postgres,
    version: Option<u32>,
    image: Option<&str>,
    create_database: bool,
    data_checksums: Option<bool>,
    borrow_volume: Option<(String, String)>,
    timescaledb: bool,
) -> Result<Postgres> {
    // The service's own image for its own version (as the scenario says
    // it: both unnamed, or the same); another version's otherwise.
    let image = match (image, version) {
        (Some(i), _) => i.to_string(),
        (None, v) if v == old.spec().major => old.spec().image.clone(),
        (None, v) => crate::vocab::postgres_image(None, v),
    };
    let mut settings = old.spec().settings.clone();
    if !timescaledb {
        // Really without it: an image's configuration template may
        // preload it (the official one does).
        settings.retain(|(k, _)| k != "shared_preload_libraries");
        settings.push(("shared_preload_libraries".into(), String::new()));
    }
    let spec = PgSpec {
        timescaledb,
        settings,
        major: version,
        image,
        network: None,
        create_database,
        data_checksums,
        borrow_volume,
        ..old.spec().clone()
    };
    Postgres::start(old.info.backend, &spec)
}

/// The `new-server` step.
pub(crate) fn new_server(
    up: &mut Upgrades,
    server: &mut Postgres,
    version: Option<u32>,
    image: Option<&str>,
    engine: Option<PgEngine>,
) -> Result<StepDone> {
    let started = Instant::now();
    up.touched = true;
    let timescaledb = match engine {
        None => server.spec().timescaledb,
        Some(e) => match super::resolve_flavour(
            e,
            server.info.backend,
            &crate::vocab::postgres_image(image, version),
            version,
        ) {
            Ok((flavour, _)) => flavour == drill_fixtures::Flavour::TimescaleDb,
            Err(e) => {
                return Ok(StepDone::failed(format!(
                    "the new server cannot start: {e}"
                )));
            }
        },
    };
    let fresh = match fresh_server(server, version, image, true, None, None, timescaledb) {
        Ok(f) => f,
        Err(e) => {
            return Ok(StepDone::failed(format!(
                "the new server did not start: {e}"
            )));
        }
    };
    let said = format!(
        "{} ({}) in {}, empty database {}; the application now uses it (the old server, {}, stays as it was)",
        fresh.info.flavour,
        fresh.server().describe(),
        crate::fmt_duration(started.elapsed()),
        fresh.coordinates().database,
        server.info.flavour
    );
    up.replace(server, fresh);
    Ok(StepDone::done(said))
}

/// The `pg-upgrade` step: a new cluster of `version` (initdb with the old
/// cluster's checksum setting unless told otherwise), stopped, filled by
/// `pg_upgrade` from the service's stopped server, started, serving.
pub(crate) fn pg_upgrade(
    up: &mut Upgrades,
    server: &mut Postgres,
    version: u32,
    mode: UpgradeMode,
    checksums: ChecksumsChoice,
    limit: std::time::Duration,
) -> Result<StepDone> {
    let started = Instant::now();
    up.touched = true;
    let old_major = server.major();
    let sums = match checksums {
        ChecksumsChoice::Match => Some(server.data_checksums()),
        ChecksumsChoice::InitdbDefault => None,
    };
    let docker = server.info.backend == BackendKind::Docker;
    if docker && server.spec().borrow_volume.is_some() {
        return Ok(StepDone::failed(
            "this server was made by a pg-upgrade already (its data is a folder of another's volume); \
             in Docker drill upgrades only a server with a volume of its own",
        ));
    }
    // In Docker the new cluster goes into a folder of the old one's
    // volume: `--link` needs one file system, and a hard link between two
    // volumes fails ("Invalid cross-device link"), as tianon's
    // postgres-upgrade image documents.
    let beside = docker.then(|| {
        (
            server.server().data_location(),
            format!(
                "pg{version}-{}",
                crate::backend::new_password()[..8].to_lowercase()
            ),
        )
    });
    let mut fresh = match fresh_server(
        server,
        Some(version),
        None,
        false,
        sums,
        beside.clone(),
        server.spec().timescaledb,
    ) {
        Ok(f) => f,
        Err(e) => {
            return Ok(StepDone::failed(format!(
                "the new cluster did not start: {e}"
            )));
        }
    };
    if let Err(e) = fresh.server_mut().stop(crate::backend::Stop::Graceful) {
        return Ok(StepDone::failed(format!(
            "the new cluster did not stop: {e}"
        )));
    }
    let q = |s: &str| sh_quote(s);
    // Where each program and cluster is in the data shell: natively this
    // machine's binaries and two data dirs; in Docker the new image's
    // binaries (it must carry the old version's too, as an upgrade image
    // does: tianon/postgres-upgrade, drill's stand-in), the old cluster at
    // the volume's mount point and the new one in a folder of it ($DATA).
    let (old_bin, new_bin, old_dir, others, work, ports) = if docker {
        (
            q(&format!("/usr/lib/postgresql/{old_major}/bin")),
            "\"$(pg_config --bindir)\"".to_string(),
            q(super::server::DATA),
            vec![],
            "/tmp/drill-pg-upgrade".to_string(),
            (50432, 50433),
        )
    } else {
        let bins = |m| PgBinaries::locate_version(Some(m)).map(|b| b.bin_dir.display().to_string());
        let (old_bin, new_bin) = match (bins(old_major), bins(version)) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(e), _) | (_, Err(e)) => return Ok(StepDone::failed(e.to_string())),
        };
        (
            q(&old_bin),
            q(&new_bin),
            "\"$OLD_DATA\"".to_string(),
            vec![("OLD_DATA".to_string(), server.server().data_location())],
            "$(dirname \"$DATA\")/drill-pg-upgrade".to_string(),
            (free_port()?, free_port()?),
        )
    };
    let spec = server.spec();
    // pg_upgrade starts each cluster itself: they need the libraries the
    // drill's command line preloads (TimescaleDB, merged into the
    // scenario's own list), and TimescaleDB wants `timescaledb.restoring`
    // while the schema is restored.
    let mut preload: Vec<String> = spec
        .settings
        .iter()
        .filter(|(k, _)| k == "shared_preload_libraries")
        .flat_map(|(_, v)| v.split(',').map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .collect();
    if spec.timescaledb && !preload.iter().any(|l| l == "timescaledb") {
        preload.insert(0, "timescaledb".into());
    }
    let preload = if preload.is_empty() {
        String::new()
    } else {
        // Read twice by a shell (pg_upgrade's, then pg_ctl's): no spaces.
        format!("-c shared_preload_libraries={}", preload.join(","))
    };
    let (old_opts, new_opts) = if spec.timescaledb {
        (
            preload.clone(),
            format!("{preload} -c timescaledb.restoring=on"),
        )
    } else {
        (preload.clone(), preload)
    };
    let limit = limit.as_secs().max(1);
    let script = format!(
        r#"set -u
old_bin={old_bin}; new_bin={new_bin}; old_dir={old_dir}
[ -x "$old_bin/postgres" ] || {{ echo "PostgreSQL {old_major}'s binaries are not at $old_bin: pg_upgrade needs both versions (an upgrade image such as tianon/postgres-upgrade, or drill's stand-in)"; exit 2; }}
owner=$(stat -c %u "$DATA"); group=$(stat -c %g "$DATA")
work={work}
rm -rf "$work"; mkdir -p "$work"; chown "$owner:$group" "$work"; chmod 700 "$work"; cd "$work"
as_owner() {{
  if [ "$(id -u)" = "$owner" ]; then "$@"
  elif command -v setpriv >/dev/null; then setpriv --reuid="$owner" --regid="$group" --clear-groups "$@"
  elif command -v su-exec >/dev/null; then su-exec "$owner:$group" "$@"
  else gosu "$owner:$group" "$@"; fi
}}
rc=0
as_owner env HOME="$work" timeout {limit} "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" \
  -d "$old_dir" -D "$DATA" {mode} -U {user} -p {p0} -P {p1} --socketdir="$work" -o {o} -O {n} || rc=$?
[ "$rc" -eq 124 ] && echo "pg_upgrade did not finish within {limit} s (the step's timeout)"
if [ "$rc" -ne 0 ]; then
  for f in "$DATA"/pg_upgrade_output.d/*/*.txt "$DATA"/pg_upgrade_output.d/*/log/pg_upgrade_dump_*.log; do
    [ -f "$f" ] && {{ echo "== $(basename "$f"):"; grep -v '^command:' "$f" | grep -E 'ERROR|error:|FATAL|could not' | tail -n 4; }}
  done
fi
cd /; rm -rf "$work"
exit "$rc""#,
        mode = mode.flag(),
        user = q(&spec.user),
        p0 = ports.0,
        p1 = ports.1,
        o = q(&old_opts),
        n = q(&new_opts),
    );
    let shown = format!("pg_upgrade {} ({old_major} → {version})", mode.flag());
    let out = match fresh.server().data_shell_with(&script, &others) {
        Ok(out) => out,
        Err(e) => return Ok(StepDone::failed(format!("`{shown}` did not run: {e}"))),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // pg_upgrade says why on stdout, before "Failure, exiting".
        let why: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.ends_with("ok") && !l.starts_with("Checking"))
            .collect();
        let tail = why[why.len().saturating_sub(8)..].join(" | ");
        return Ok(StepDone::failed(format!(
            "`{shown}` failed ({}): {tail}",
            out.status
        )));
    }
    if mode == UpgradeMode::Link {
        up.linked = true;
    }
    // The new cluster holds the old one's roles, passwords included.
    fresh.adopt_credentials(server);
    if let Err(e) = fresh.start_again() {
        return Ok(StepDone::failed(format!(
            "pg_upgrade finished, but the new server did not start: {e}"
        )));
    }
    let said = format!(
        "{old_major} → {} with `{shown}` in {} ({}); the application now uses it",
        fresh.info.flavour,
        crate::fmt_duration(started.elapsed()),
        text.lines()
            .map(str::trim)
            .rfind(|l| l.starts_with("Upgrade Complete"))
            .unwrap_or("pg_upgrade exited 0"),
    );
    up.replace(server, fresh);
    Ok(StepDone::done(said))
}

/// Whether a dump (`needs`: it creates the timescaledb extension; taken
/// with `version`, when it says) fits a server with `server` TimescaleDB
/// (None: not loaded). Err says what is wrong and the documented fix:
/// TimescaleDB restores only into its own version, so install the dump's
/// version, restore, then `ALTER EXTENSION timescaledb UPDATE`.
pub(crate) fn timescaledb_fits(
    needs: bool,
    version: Option<&str>,
    server: Option<&str>,
) -> std::result::Result<(), crate::errors::Refusal> {
    let dumped = version.unwrap_or("its version (not recorded in the dump)");
    match (needs, version, server) {
        (false, _, _) => Ok(()),
        (true, _, None) => Err(crate::errors::Refusal(format!(
            "the dump is TimescaleDB {dumped}'s, and this server has no TimescaleDB loaded: \
             install TimescaleDB {dumped} and preload it (shared_preload_libraries = 'timescaledb'), \
             restore, then ALTER EXTENSION timescaledb UPDATE"
        ))),
        (true, Some(v), Some(s)) if v != s => Err(crate::errors::Refusal(format!(
            "the dump was taken with TimescaleDB {v}, this server has {s}: a dump restores only \
             into its own TimescaleDB version; install {v} on this server (or restore into an image \
             of it), restore, then ALTER EXTENSION timescaledb UPDATE to move to {s}"
        ))),
        _ => Ok(()),
    }
}

/// A loopback port nothing listens on now (pg_upgrade's own servers).
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("find a free port on", "127.0.0.1"))
}

#[cfg(test)]
mod tests {
    use super::timescaledb_fits;

    #[test]
    fn a_timescaledb_dump_fits_only_its_own_version() {
        assert_eq!(timescaledb_fits(false, None, None), Ok(()));
        assert_eq!(
            timescaledb_fits(true, Some("2.28.3"), Some("2.28.3")),
            Ok(())
        );
        // Not recorded: nothing to compare, the restore says the rest.
        assert_eq!(timescaledb_fits(true, None, Some("2.28.3")), Ok(()));
        let none = timescaledb_fits(true, Some("2.28.3"), None).unwrap_err().0;
        assert!(
            none.contains("no TimescaleDB loaded") && none.contains("install TimescaleDB 2.28.3"),
            "{none}"
        );
        let other = timescaledb_fits(true, Some("2.17.2"), Some("2.28.3"))
            .unwrap_err()
            .0;
        assert!(
            other.contains("taken with TimescaleDB 2.17.2, this server has 2.28.3")
                && other.contains("ALTER EXTENSION timescaledb UPDATE"),
            "{other}"
        );
    }
}
