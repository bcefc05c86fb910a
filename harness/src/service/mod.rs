//! The services a drill runs, one vertical folder per engine: its server on
//! either backend, fixture, snapshot, backups, faults, restore steps and
//! checks. The engine sees each only as a [`Service`] and walks a list of
//! them; nothing outside a service's folder knows its engine.
//!
//! Adding a kind of service is one new folder implementing [`Service`]
//! (and [`Lifecycle`] for its server) plus one arm in [`start`], its
//! scenario keys and a [`ServiceKind`] variant.
//!
//! **Architecture Invariant:** a service reaches servers only through
//! [`crate::backend`]; a service never starts a process or a container
//! itself.

pub mod clickhouse;
mod lifecycle;
pub mod postgres;
pub mod redis;

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use drill_fixtures::Dataset;

pub use lifecycle::{Disposable, Engine, Lifecycle};
pub(crate) use lifecycle::{one_line, start_step, stop_step};

use crate::Result;
use crate::check::CheckResult;
use crate::scenario::{Fault, Scenario, Step};
use crate::vocab::{BackendKind, ServerInfo, ServiceKind};
use crate::workload::{Ledger, RpoMeasurement, Writer};

/// One engine in a drill: its server and what the drill keeps about it
/// (the baseline, the newest backup, a fault's predicted damage).
///
/// The engine calls these in the drill's order: [`Service::load_fixture`],
/// [`Service::baseline`], [`Service::start_writer`], [`Service::backup`] on
/// the schedule, then per recovery [`Service::halt`] (when several die at
/// once) and [`Service::inject`], [`Service::run_step`] for each step that
/// acts on it, and [`Service::judge`].
#[async_trait]
pub(crate) trait Service: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> ServiceKind;
    /// Its server.
    fn server(&self) -> &dyn Lifecycle;
    fn server_mut(&mut self) -> &mut dyn Lifecycle;
    /// Facts for the report: version, image or binaries.
    fn info(&self) -> &ServerInfo {
        self.server().info()
    }
    /// Servers its steps started besides its first (an upgrade's new
    /// version), for the report.
    fn servers_started(&self) -> Vec<ServerInfo> {
        Vec::new()
    }
    /// One line for the timeline once it runs (version, settings).
    fn started(&self) -> String;
    /// The flavour it runs as, when the engine has several (PostgreSQL:
    /// `timescaledb` or `postgres`), for the report.
    fn flavour(&self) -> Option<String> {
        None
    }

    /// Loads its part of the seeded dataset; returns what it loaded.
    async fn load_fixture(&self, data: &Dataset) -> Result<String>;
    /// Reads and keeps what its checks compare against; returns a line
    /// saying what it holds.
    async fn baseline(&mut self) -> Result<String>;
    /// Rows per table in the baseline, for the report (services with tables).
    fn baseline_rows(&self) -> BTreeMap<String, i64> {
        BTreeMap::new()
    }
    /// A writer recording every acknowledged write, at `rate` per second.
    async fn start_writer(&self, rate: u32, seed: u64) -> Result<Writer>;

    /// The timeline's name for its backup, when the scenario asks for one.
    fn backup_label(&self) -> Option<String>;
    /// Takes its backup and keeps it as the newest.
    async fn backup(&mut self, cx: &BackupCx<'_>) -> Result<BackupTaken>;

    /// What happens before the first fault while the writers still write
    /// (a restore point, the archive failing for a while); says what, when
    /// anything.
    async fn before_fault(&mut self, _fault: &Fault) -> Result<Option<String>> {
        Ok(None)
    }

    /// The first fault began at `at` (the drill's clock): targets written
    /// relative to the fault are resolved against it.
    fn fault_began(&mut self, _at: Instant) {}

    /// Kills every process at once and leaves it down (before each service
    /// of a many-service fault gets its own).
    fn halt(&mut self) -> Result<()> {
        self.server_mut().halt()
    }
    /// Deals the fault (validated: it applies to this kind); says what
    /// happened.
    async fn inject(&mut self, fault: &Fault, seed: u64) -> Result<String>;
    /// Runs one of its recovery steps (validated: the step acts on it).
    async fn run_step(&mut self, step: &Step) -> Result<StepDone>;
    /// Measures it now and compares with its baseline and the scenario's
    /// expectations.
    async fn judge(&self, cx: &JudgeCx<'_>) -> Result<Vec<CheckResult>>;
    /// Which of the writer's acknowledged writes are missing now.
    async fn measure_rpo(&self, ledger: &Ledger, fault_at: Instant) -> Result<RpoMeasurement>;

    /// Variables a user's command gets (coordinates, the newest backup).
    fn env(&self) -> Vec<(String, String)>;
    /// (program, script) for a user's command to find first on PATH: the
    /// server's own tools, aimed at it.
    fn shims(&self) -> Vec<(String, String)> {
        self.server().shims()
    }
    /// How a person connects to it right now.
    fn connection_help(&self) -> String {
        self.server().connection_help()
    }
    /// Leaves it running after the drill; how to reach and remove it.
    fn keep(&mut self) -> String {
        self.server_mut().keep()
    }
    /// For a check that compares this service with another (Redis keys
    /// rebuilt from PostgreSQL).
    fn as_any(&self) -> &dyn Any;
}

/// One way a service is backed up (pg_dump, the user's script, an RDB
/// copy, a ClickHouse BACKUP): adding one is a type implementing this and
/// the scenario keys that choose it.
#[async_trait]
pub(crate) trait BackupMethod<S: Sync + ?Sized>: Send + Sync + std::fmt::Debug {
    /// The timeline's name for it.
    fn label(&self) -> String;
    /// Takes one backup of `server`.
    async fn take(&self, server: &S, cx: &BackupCx<'_>) -> Result<BackupTaken>;
}

/// What a backup may use besides the server.
#[derive(Debug)]
pub(crate) struct BackupCx<'a> {
    /// Relative paths in the scenario are resolved against it.
    pub(crate) scenario_dir: &'a Path,
    /// The run's work dir: backups and logs go there.
    pub(crate) work: &'a Path,
    /// Every service's variables, for a user's backup script.
    pub(crate) env: &'a [(String, String)],
}

/// A backup just taken.
#[derive(Debug, Clone)]
pub(crate) struct BackupTaken {
    /// One line for the timeline.
    pub(crate) detail: String,
    /// For the report's `backups` (every service's but PostgreSQL's dump).
    pub(crate) record: Option<BackupRecord>,
    /// A dump file, for the report's `backup` (PostgreSQL's).
    pub(crate) artifact: Option<crate::service::postgres::backup::Artifact>,
}

/// A backup, for the report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupRecord {
    pub service: ServiceKind,
    pub path: PathBuf,
    pub bytes: u64,
    /// How it was made, e.g. `SAVE + dump.rdb copied`.
    pub method: String,
    #[serde(with = "crate::vocab::millis")]
    pub took: Duration,
}

/// What a judgement may use besides the service.
pub(crate) struct JudgeCx<'a> {
    pub(crate) scenario: &'a Scenario,
    /// A workload ran: its rows are judged by the RPO, not by the counts.
    pub(crate) workload: bool,
    /// Every service of the drill, for checks across services.
    pub(crate) services: &'a [Box<dyn Service>],
}

impl JudgeCx<'_> {
    /// Another service of the drill, as its own type.
    pub(crate) fn peer<T: 'static>(&self) -> Option<&T> {
        self.services.iter().find_map(|s| s.as_any().downcast_ref())
    }
}

/// A finished step, in one shape for every kind (built-in or the user's).
#[derive(Debug, Clone)]
pub(crate) struct StepDone {
    /// The step did its job (a failing step fails the recovery).
    pub(crate) ok: bool,
    /// And printed no errors: the timeline shows ✓ only then.
    pub(crate) clean: bool,
    /// One line for the timeline.
    pub(crate) detail: String,
    /// Error lines the tools printed.
    pub(crate) errors: Vec<String>,
    /// Short status when it failed, e.g. `exit 3`.
    pub(crate) status: String,
    /// Why it failed: the tool's output.
    pub(crate) evidence: String,
    /// Bytes of WAL the server replayed in this step (a recovery from a
    /// base backup and an archive), from its own log.
    pub(crate) wal_bytes: Option<u64>,
}

impl StepDone {
    /// Done, with one line for the timeline.
    pub(crate) fn done(detail: impl Into<String>) -> StepDone {
        StepDone {
            ok: true,
            clean: true,
            detail: detail.into(),
            errors: vec![],
            status: String::new(),
            evidence: String::new(),
            wal_bytes: None,
        }
    }

    /// It ran and failed.
    pub(crate) fn failed(why: impl Into<String>) -> StepDone {
        Self::not_done("failed", why.into())
    }

    /// It could not run (nothing to restore, the wrong kind of backup).
    pub(crate) fn refused(why: impl Into<String>) -> StepDone {
        Self::not_done("refused", why.into())
    }

    fn not_done(status: &str, why: String) -> StepDone {
        StepDone {
            ok: false,
            clean: false,
            detail: why.clone(),
            errors: vec![why.clone()],
            status: status.into(),
            evidence: why,
            wal_bytes: None,
        }
    }
}

/// An exit code for people: `0`, or `none (killed)`.
pub(crate) fn exit_code(c: Option<i32>) -> String {
    c.map_or("none (killed)".into(), |c| c.to_string())
}

/// Where a service's server runs and what it may see.
#[derive(Debug, Clone)]
pub(crate) struct Placement<'a> {
    pub(crate) backend: BackendKind,
    pub(crate) run_id: &'a str,
    /// Host folders its tools must see at the same path (the work dir).
    pub(crate) shared: Vec<PathBuf>,
}

/// Starts the service `kind` as the scenario declares it. The registry:
/// one arm per kind.
pub(crate) fn start(
    kind: ServiceKind,
    sc: &Scenario,
    at: &Placement<'_>,
) -> Result<Box<dyn Service>> {
    Ok(match kind {
        ServiceKind::Postgres => Box::new(postgres::PostgresService::start(sc, at)?),
        ServiceKind::Redis => Box::new(redis::RedisService::start(sc, at)?),
        ServiceKind::ClickHouse => Box::new(clickhouse::ClickHouseService::start(sc, at)?),
    })
}

/// Inherited variables (names, or prefixes ending in `*`) that would point
/// a client at a server other than the disposable one (libpq's PGSERVICE,
/// PGHOSTADDR, ...): removed from every command drill runs.
pub(crate) fn scrub_env() -> Vec<&'static str> {
    postgres::SCRUB_ENV.to_vec()
}
