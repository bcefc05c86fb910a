//! The ClickHouse service, one folder for everything about it: the server,
//! its analytics fixture and a snapshot that reads every row ([`server`]),
//! its backups by the server's version ([`backup`]), its checks
//! ([`checks`]), its part of the workload ([`workload`]), and the
//! [`crate::service::Service`] that ties them into a drill ([`service`]).

pub mod backup;
mod checks;
mod server;
mod service;
mod workload;

pub use server::{
    ClickHouse, ClickHouseSpec, HTTP_PORT, NATIVE_PORT, Snapshot, TableState, load_fixture,
    parse_tsv, snapshot,
};
pub(crate) use service::ClickHouseService;
