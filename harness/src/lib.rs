//! drill: disaster-recovery drills against disposable servers.
//!
//! A drill starts servers through a [`backend`] (native processes or Docker
//! containers), one [`service`] per engine (PostgreSQL/TimescaleDB, Redis,
//! ClickHouse); loads a fixture, takes a baseline, backs up the way the
//! user does, injects a fault, runs the recovery steps, and compares what
//! came back with the baseline. The [`engine`] runs that flow for a
//! [`scenario`] and returns a [`engine::DrillReport`]; [`report`] turns
//! reports into something to read.
//!
//! The public API is what `cargo xtask` and the tests use: the engine, the
//! scenario format, the reports, backend choice and cleanup, and the
//! disposable servers themselves. Everything else is `pub(crate)`.

mod artifact;
pub mod backend;
mod check;
pub mod compose;
pub mod engine;
mod errors;
pub mod lint;
pub mod logging;
pub mod report;
mod sanitize;
pub mod scenario;
pub mod service;
mod shell;
mod vocab;
mod workload;

pub use artifact::{candidates as backups_newest_first, sha256_file};
pub use check::{CheckKind, CheckResult};
pub use errors::{Error, ErrorKind, Result, ScenarioError};
pub use sanitize::{FilterOptions, Guard, SanitizeReport, filter, sanitize};
pub use vocab::{
    BackendKind, ServerInfo, ServiceKind, fmt_duration, postgres_image, postgres_image_env,
};
pub use workload::{Boundary, Ledger, PitrLedger, RpoMeasurement, Writer};

/// Helpers for tests that run on every backend and check what a server
/// leaves on the machine; not part of the API (feature `test-support`).
#[cfg(feature = "test-support")]
pub mod testing {
    pub use crate::backend::docker::objects_of_run;
    pub use crate::backend::{Resource, available_for_tests};
    pub use crate::service::postgres::{pg_version_for_tests, timescaledb_for_tests};
}
