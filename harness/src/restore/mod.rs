//! Recovery steps: what a scenario's `[[recovery]]` runs after the fault.
//! Each step acts on a service and reports what it did into the timeline;
//! none of them judges success (checks do that, from measurements).

pub mod psql;
pub mod sanitize;

pub use psql::{PsqlOutcome, PsqlRestoreOptions, psql_restore};
