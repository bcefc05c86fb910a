//! Backends start, stop, wipe and tear down disposable servers, and hand out
//! client-tool commands aimed at them. They know nothing of scenarios.
//!
//! Today there is one implementation, [`native`] (local initdb + postgres in
//! a temp dir). The container backend will implement the same
//! [`PostgresServer`] trait, so the engine never asks which one it has.

mod binaries;
pub mod images;
pub mod native;

pub use binaries::{INSTALL_HINT, PgBinaries};
pub use native::{NativePostgres, reap_leftovers};

use std::process::Command;

use crate::Result;
use crate::postgres::PgCoordinates;

/// What to start.
#[derive(Debug, Clone)]
pub struct PgSpec {
    /// Application database, created empty at start and after a wipe.
    pub database: String,
    /// Superuser role the drill connects as.
    pub user: String,
    /// Load the timescaledb library (`shared_preload_libraries`).
    pub timescaledb: bool,
    /// Extra `-c key=value` settings.
    pub settings: Vec<(String, String)>,
    /// Identifies the run in temp dir names and markers, for reaping.
    pub run_id: String,
}

/// Facts about a started server, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    /// `native` or `docker`.
    pub backend: &'static str,
    /// Where the server came from: a binaries folder or an image.
    pub source: String,
    /// `server_version` as the server reports it.
    pub version: String,
    /// Installed timescaledb version, when the server has the extension.
    pub timescaledb: Option<String>,
}

/// PostgreSQL client programs the harness runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTool {
    Psql,
    PgDump,
    PgRestore,
}

impl ClientTool {
    pub fn program(self) -> &'static str {
        match self {
            ClientTool::Psql => "psql",
            ClientTool::PgDump => "pg_dump",
            ClientTool::PgRestore => "pg_restore",
        }
    }
}

/// A running disposable PostgreSQL server. Dropping it stops the server and
/// deletes its data, unless [`PostgresServer::keep`] was called.
pub trait PostgresServer: Send + Sync + std::fmt::Debug {
    /// How to reach the application database as the superuser.
    fn coordinates(&self) -> &PgCoordinates;
    fn info(&self) -> &ServerInfo;
    /// A client tool of the server's own version, with `PGHOST`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD` and `PGDATABASE` set.
    fn client(&self, tool: ClientTool) -> Command;
    /// Fault: destroy the data directory and come back freshly initialised,
    /// with an empty application database. Survives: nothing on the server.
    fn wipe(&mut self) -> Result<()>;
    /// Fault: stop, then start with `settings` (replacing the scenario's),
    /// on the same data directory when `reattach`, else on a fresh one.
    fn restart_with(&mut self, settings: &[(String, String)], reattach: bool) -> Result<()>;
    /// Leave the server running after the drill; returns how to reach it and
    /// how to remove it later.
    fn keep(&mut self) -> String;
    /// How a person connects to it right now (a psql command line).
    fn connection_help(&self) -> String;
}
