//! drill: disaster-recovery drills against disposable servers.
//!
//! A drill starts servers through a [`backend`], loads a fixture
//! ([`postgres::fixture`]), takes a baseline ([`postgres::snapshot`]), backs
//! up ([`backup`]), injects a [`fault`], runs recovery steps ([`restore`]),
//! and compares what came back with the baseline ([`check`]). The [`engine`]
//! runs that flow for a [`scenario`] and returns a [`engine::DrillReport`];
//! [`report`] turns reports into something to read.

pub mod artifact;
pub mod backend;
pub mod backup;
pub mod check;
pub mod clickhouse;
pub mod engine;
pub mod errors;
pub mod fault;
pub mod postgres;
pub mod redis;
pub mod report;
pub mod restore;
pub mod scenario;
pub mod workload;

pub use errors::{Error, Result};
