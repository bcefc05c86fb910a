//! Integration tests for the harness, against real PostgreSQL servers started
//! by the native backend (no mocks). One binary, a module per topic.

mod engine_pause;
mod fixture_snapshot;
mod native;
mod rpo_property;
mod sanitize_real;

use drill::backend::{NativePostgres, PgSpec};

/// A server spec for tests, with a run id naming the test.
pub(crate) fn spec(test: &str) -> PgSpec {
    PgSpec {
        database: "nexwave".into(),
        user: "nexwave".into(),
        timescaledb: false,
        settings: vec![],
        run_id: format!("test-{test}"),
    }
}

pub(crate) fn start(test: &str) -> NativePostgres {
    NativePostgres::start(&spec(test))
        .unwrap_or_else(|e| panic!("could not start postgres for {test}: {e}"))
}

pub(crate) fn alive(pid: u32) -> bool {
    // A zombie is not alive: look at /proc state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"),
        Err(_) => false,
    }
}
