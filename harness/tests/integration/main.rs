//! Integration tests for the harness, against real servers (no mocks). One
//! binary, a module per topic. Tests marked with a backend case run on
//! both the native and the docker backend; the docker case skips with a
//! message when no engine or image is there (and fails instead when
//! `DRILL_REQUIRE_DOCKER` is set, as CI does).

mod backend;
mod clickhouse;
mod engine_multi;
mod engine_pause;
mod fixture_snapshot;
mod pitr;
mod redis;
mod rpo_property;
mod sanitize_real;
mod security;
mod timescaledb;

use drill::service::postgres::{PgSpec, Postgres};
use drill::testing::available_for_tests;
use drill::{BackendKind, ServiceKind};

/// A server spec for tests, with a run id naming the test.
pub(crate) fn spec(test: &str) -> PgSpec {
    PgSpec::new("nexwave", "nexwave", &format!("test-{test}"))
}

/// A native server (tests that are about PostgreSQL, not the backend).
pub(crate) fn start(test: &str) -> Postgres {
    Postgres::native(&spec(test))
        .unwrap_or_else(|e| panic!("could not start postgres for {test}: {e}"))
}

/// A server on `backend`, or None (with a message) when the docker backend
/// cannot run here.
pub(crate) fn start_on(backend: BackendKind, test: &str) -> Option<Postgres> {
    if !available_for_tests(backend, &[ServiceKind::Postgres], test) {
        return None;
    }
    let mut spec = spec(test);
    spec.run_id = format!("{}-{}", spec.run_id, backend.name());
    Some(
        Postgres::start(backend, &spec)
            .unwrap_or_else(|e| panic!("could not start postgres ({backend}) for {test}: {e}")),
    )
}
