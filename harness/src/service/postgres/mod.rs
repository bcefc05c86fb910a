//! The PostgreSQL (and TimescaleDB) service, one folder for everything
//! about it: the server on either backend ([`server`], [`binaries`]), how
//! to reach it ([`coords`]), the Nexwave fixture ([`fixture`]), what its
//! checks compare ([`snapshot`], [`timescale`], [`checks`]), its backups ([`backup`]),
//! faults ([`fault`]) and restores ([`restore`]), its part of the workload
//! ([`workload`]), and the [`crate::service::Service`] that ties them into
//! a drill ([`service`]).

pub mod backup;
mod binaries;
pub mod checks;
mod coords;
mod fault;
pub mod fixture;
pub(crate) mod pitr;
mod replica;
pub mod restore;
pub mod server;
mod service;
pub mod snapshot;
pub mod timescale;
mod upgrade;
pub mod workload;

pub use binaries::{
    INSTALL_HINT, PgBinaries, WHEEL, install_hint, tools_bin_dir, tools_dir, tools_install_dir,
};
pub(crate) use coords::SCRUB_ENV;
pub use coords::{PgCoordinates, drop_and_recreate, execute_script};
pub use server::{ClientTool, PgSpec, Postgres};
pub(crate) use service::{PostgresService, describe, refused_evidence, resolve_flavour};

#[cfg(feature = "test-support")]
/// Whether a TimescaleDB test can run on `backend`: the extension is
/// installed for the native PostgreSQL, or the PostgreSQL image carries it.
/// Without it the test prints why and skips, unless `CI` is true or
/// `DRILL_REQUIRE_TIMESCALEDB` is set: then this panics, naming what to do.
pub fn timescaledb_for_tests(backend: crate::BackendKind, test: &str) -> bool {
    let image = crate::vocab::postgres_image(None, None);
    let (found, what) = match backend {
        crate::BackendKind::Native => (
            PgBinaries::locate().is_ok_and(|b| b.has_timescaledb()),
            "the native PostgreSQL has no timescaledb extension".to_string(),
        ),
        crate::BackendKind::Docker => (
            crate::backend::available_for_tests(backend, &[crate::ServiceKind::Postgres], test)
                && server::image_has_timescaledb(&image),
            format!("image {image} has no timescaledb extension"),
        ),
    };
    let fix = "set DRILL_TIMESCALEDB_SRC to TimescaleDB's source release and run `cargo xtask deps` \
               (native) or `cargo xtask images` (docker; or pull timescale/timescaledb)";
    found
        || skip_or_panic(
            test,
            backend,
            "TimescaleDB",
            &what,
            fix,
            "DRILL_REQUIRE_TIMESCALEDB",
        )
}

#[cfg(feature = "test-support")]
/// Whether a test that needs PostgreSQL `major` can run on `backend`: its
/// binaries natively, its image in Docker. Without them the test skips,
/// unless `CI` is true: then this panics, naming what to do.
pub fn pg_version_for_tests(backend: crate::BackendKind, major: u32, test: &str) -> bool {
    let (found, what) = match backend {
        crate::BackendKind::Native => (
            PgBinaries::locate_version(Some(major)).is_ok(),
            format!("PostgreSQL {major} is not installed"),
        ),
        crate::BackendKind::Docker => {
            let image = crate::vocab::postgres_image(None, Some(major));
            (
                crate::backend::images::image_present(&image),
                format!("image {image} is not here"),
            )
        }
    };
    let fix = format!(
        "{}; or `cargo xtask images` and {}",
        install_hint(major),
        crate::vocab::postgres_image_env(Some(major))
    );
    found
        || skip_or_panic(
            test,
            backend,
            &format!("PostgreSQL {major}"),
            &what,
            &fix,
            "CI",
        )
}

#[cfg(feature = "test-support")]
/// false after saying SKIPPED, unless `CI` is true or `require` is set:
/// then a panic naming what is missing and what to do.
fn skip_or_panic(
    test: &str,
    backend: crate::BackendKind,
    needed: &str,
    what: &str,
    fix: &str,
    require: &str,
) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci || std::env::var_os(require).is_some() {
        panic!("{test} on {backend}: {needed} is required here (CI) but {what}; {fix}");
    }
    eprintln!("SKIPPED {test} on {backend}: {what}; {fix}");
    false
}
