//! The PostgreSQL (and TimescaleDB) service, one folder for everything
//! about it: the server on either backend ([`server`], [`binaries`]), how
//! to reach it ([`coords`]), the Nexwave fixture ([`fixture`]), what its
//! checks compare ([`snapshot`], [`checks`]), its backups ([`backup`]),
//! faults ([`fault`]) and restores ([`restore`]), its part of the workload
//! ([`workload`]), and the [`crate::service::Service`] that ties them into
//! a drill ([`service`]).

pub mod backup;
mod binaries;
pub mod checks;
mod coords;
mod fault;
pub mod fixture;
pub mod restore;
pub mod server;
mod service;
pub mod snapshot;
pub mod workload;

pub use binaries::{INSTALL_HINT, PgBinaries};
pub(crate) use coords::SCRUB_ENV;
pub use coords::{PgCoordinates, drop_and_recreate, execute_script};
pub use server::{ClientTool, PgSpec, Postgres};
pub(crate) use service::{PostgresService, describe, refused_evidence, resolve_flavour};

/// The image a PostgreSQL server runs: `chosen`, else `DRILL_POSTGRES_IMAGE`,
/// else the official default.
pub(crate) fn image(chosen: Option<&str>) -> String {
    crate::vocab::ServiceKind::Postgres.image(chosen)
}
