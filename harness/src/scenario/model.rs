//! The typed form of a scenario file. Field names are the file's keys (in
//! kebab-case); every struct denies unknown keys so a typo is an error, not a
//! silently ignored line. Defaults are the values a fast local drill wants.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::duration::HumanDuration;
use crate::vocab::ServiceKind;

/// One incident, ready to run: parsed, validated, defaults filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// The file it came from (set by the loader).
    #[serde(skip)]
    pub path: PathBuf,
    /// Name used on the command line and in reports; defaults to the file stem.
    #[serde(default)]
    pub name: String,
    /// One line saying what the drill proves.
    pub description: String,
    /// The incident report or runbook this drill replays, for people.
    #[serde(default)]
    pub incident: Option<String>,
    /// Seed for every random choice (fixture rows, workload, fault timing).
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub services: Services,
    #[serde(default)]
    pub fixture: Fixture,
    /// Writes during the drill, so RPO can be measured.
    #[serde(default)]
    pub workload: Option<Workload>,
    #[serde(default)]
    pub backup: Backup,
    pub fault: Fault,
    /// Recovery attempts; each starts again from the fault.
    #[serde(rename = "recovery")]
    pub recoveries: Vec<Recovery>,
    pub expect: Expect,
}

fn default_seed() -> u64 {
    20251114
}

impl Scenario {
    /// The image each server of the drill would run: the declared
    /// services', and those a `new-server` or `pg-upgrade` step starts.
    pub fn images(&self) -> Vec<(ServiceKind, String)> {
        let mut v = self.services.images();
        v.extend(
            self.recoveries
                .iter()
                .flat_map(|r| &r.steps)
                .filter_map(|s| {
                    let (image, version) = match s {
                        Step::NewServer { version, image, .. } => (image.as_deref(), *version),
                        Step::PgUpgrade { version, .. } => (None, Some(*version)),
                        _ => return None,
                    };
                    Some((
                        ServiceKind::Postgres,
                        crate::vocab::postgres_image(image, version),
                    ))
                }),
        );
        v.sort();
        v.dedup();
        v
    }

    /// The PostgreSQL major versions the drill names (service and steps),
    /// for installing them first.
    pub fn pg_versions(&self) -> Vec<u32> {
        sorted(
            self.pg_server_versions()
                .into_iter()
                .chain(self.pg_client_versions()),
        )
    }

    /// The PostgreSQL major versions the drill starts servers of (in
    /// Docker: the images it needs).
    pub fn pg_server_versions(&self) -> Vec<u32> {
        let steps = self.recoveries.iter().flat_map(|r| &r.steps);
        sorted(
            self.services
                .postgres
                .iter()
                .filter_map(|p| p.version)
                .chain(steps.filter_map(|s| match s {
                    Step::NewServer { version, .. } => *version,
                    Step::PgUpgrade { version, .. } => Some(*version),
                    _ => None,
                })),
        )
    }

    /// The versions whose client runs on this machine on either backend:
    /// a `pg-dump` step's.
    pub fn pg_client_versions(&self) -> Vec<u32> {
        let steps = self.recoveries.iter().flat_map(|r| &r.steps);
        sorted(steps.filter_map(|s| match s {
            Step::PgDump { version, .. } => *version,
            _ => None,
        }))
    }
}

fn sorted(versions: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = versions.collect();
    v.sort();
    v.dedup();
    v
}

/// The disposable servers a drill needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Services {
    /// A docker-compose file (relative to the scenario) whose database
    /// services become this drill's: image, environment, settings and
    /// config files ([`crate::compose`]).
    #[serde(default)]
    pub from_compose: Option<PathBuf>,
    /// Which compose service is which drill service (`postgres = "db"`),
    /// when the names or images do not say.
    #[serde(default)]
    pub compose_services: BTreeMap<String, String>,
    /// What the compose file gave (filled by `load_file`).
    #[serde(skip)]
    pub imported: Option<crate::compose::Imported>,
    pub postgres: Option<PostgresConfig>,
    /// A streaming replica of the PostgreSQL server, to fail over to.
    #[serde(default, rename = "postgres-replica")]
    pub postgres_replica: Option<ReplicaConfig>,
    pub redis: Option<RedisConfig>,
    pub clickhouse: Option<ClickHouseConfig>,
}

impl Services {
    /// The services declared, in the runbook's recovery order (PostgreSQL,
    /// then Redis, then ClickHouse).
    pub fn kinds(&self) -> Vec<ServiceKind> {
        let mut k = Vec::new();
        if self.postgres.is_some() {
            k.push(ServiceKind::Postgres);
        }
        if self.redis.is_some() {
            k.push(ServiceKind::Redis);
        }
        if self.clickhouse.is_some() {
            k.push(ServiceKind::ClickHouse);
        }
        k
    }

    /// Each declared service's container limits.
    pub fn limits(&self) -> Vec<(ServiceKind, crate::vocab::Limits)> {
        let mut v = Vec::new();
        if let Some(c) = &self.postgres {
            v.push((ServiceKind::Postgres, c.extras.limits));
        }
        if let Some(c) = &self.redis {
            v.push((ServiceKind::Redis, c.extras.limits));
        }
        if let Some(c) = &self.clickhouse {
            v.push((ServiceKind::ClickHouse, c.extras.limits));
        }
        v
    }

    /// The image each declared service would run (scenario, environment,
    /// official default).
    pub fn images(&self) -> Vec<(ServiceKind, String)> {
        let mut v = Vec::new();
        if let Some(p) = &self.postgres {
            v.push((
                ServiceKind::Postgres,
                crate::vocab::postgres_image(p.image.as_deref(), p.version),
            ));
        }
        if let Some(r) = &self.redis {
            v.push((
                ServiceKind::Redis,
                ServiceKind::Redis.image(r.image.as_deref()),
            ));
        }
        if let Some(c) = &self.clickhouse {
            v.push((
                ServiceKind::ClickHouse,
                ServiceKind::ClickHouse.image(c.image.as_deref()),
            ));
        }
        v
    }
}

/// A Redis server with RDB snapshots and AOF on (seed 003's runbook).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisConfig {
    /// The image for the docker backend; default: `DRILL_REDIS_IMAGE`, else
    /// the official redis image (pinned).
    #[serde(default)]
    pub image: Option<String>,
    /// `appendonly` (default true).
    #[serde(default = "yes")]
    pub appendonly: bool,
    /// `appendfsync`: `everysec` (default), `always` or `no`.
    #[serde(default = "everysec")]
    pub appendfsync: String,
    /// RDB `save` points (default Redis's own: "3600 1 300 100 60 10000");
    /// `""` turns snapshots off.
    #[serde(default)]
    pub save: Option<String>,
    /// `aof-timestamp-enabled yes` (Redis 7): the AOF carries `#TS:`
    /// annotations, so `redis-pitr` can cut it back to a moment.
    #[serde(default)]
    pub aof_timestamps: bool,
    /// Other directives, passed as `--key value` (e.g. `maxmemory =
    /// "256mb"`); the ones drill owns (port, bind, dir, requirepass,
    /// replicaof, loadmodule, ...) are refused at load time.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The container's CPUs (`docker run --cpus`, fractional), to size a
    /// drill like production and keep parallel drills (`--jobs`) apart.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// The container's memory (`docker run --memory`, e.g. "2 GiB"; no swap
    /// beyond it).
    #[serde(default, deserialize_with = "size")]
    pub memory: Option<u64>,
    #[serde(skip)]
    pub extras: Extras,
}

fn everysec() -> String {
    "everysec".into()
}

/// A ClickHouse server with the analytics tables (seed 003).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClickHouseConfig {
    /// The image for the docker backend; default: `DRILL_CLICKHOUSE_IMAGE`,
    /// else the official clickhouse/clickhouse-server image (pinned).
    #[serde(default)]
    pub image: Option<String>,
    /// The analytics database (default `analytics`).
    #[serde(default = "analytics")]
    pub database: String,
    /// The container's CPUs (`docker run --cpus`, fractional), to size a
    /// drill like production and keep parallel drills (`--jobs`) apart.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// The container's memory (`docker run --memory`, e.g. "2 GiB"; no swap
    /// beyond it).
    #[serde(default, deserialize_with = "size")]
    pub memory: Option<u64>,
    #[serde(skip)]
    pub extras: Extras,
}

fn analytics() -> String {
    "analytics".into()
}

/// A PostgreSQL (or TimescaleDB) server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PostgresConfig {
    #[serde(default)]
    pub engine: PgEngine,
    /// The application database, created empty at start and after a wipe
    /// (as the official image does with POSTGRES_DB).
    #[serde(default = "default_db")]
    pub database: String,
    /// The application role, a superuser as in the official image.
    #[serde(default = "default_db")]
    pub user: String,
    /// Server settings passed as `-c key=value`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The image for the docker backend; default: `DRILL_POSTGRES_IMAGE`,
    /// else the official timescale/timescaledb image (pinned); with
    /// `version`, `DRILL_POSTGRES<version>_IMAGE`, else the official image
    /// for that version.
    #[serde(default)]
    pub image: Option<String>,
    /// The PostgreSQL major version (e.g. 18); default: the one drill
    /// finds (natively the newest installed, in Docker the image's).
    #[serde(default)]
    pub version: Option<u32>,
    /// The container's CPUs (`docker run --cpus`, fractional), to size a
    /// drill like production and keep parallel drills (`--jobs`) apart.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// The container's memory (`docker run --memory`, e.g. "2 GiB"; no swap
    /// beyond it).
    #[serde(default, deserialize_with = "size")]
    pub memory: Option<u64>,
    #[serde(skip)]
    pub extras: Extras,
}

/// What a server gets beyond its engine's own keys: from a compose file,
/// the container's environment and config files; from the scenario, its
/// container's limits.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Set in the container (not natively).
    pub env: Vec<(String, String)>,
    pub files: Vec<ConfigFile>,
    /// `cpus` and `memory` (containers only).
    pub limits: crate::vocab::Limits,
}

/// `memory = "2 GiB"` (or a number of bytes).
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(b) => Ok(Some(b)),
        Size::Text(t) => crate::vocab::parse_size(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A config file the server reads from one of its `*.d` folders.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// `config.d` or `users.d`.
    pub folder: String,
    pub name: String,
    pub content: String,
}

fn default_db() -> String {
    "nexwave".into()
}

/// A second PostgreSQL server of the same image and flavour, made from the
/// primary with `pg_basebackup -R` and streaming from it (seed 004's
/// "promote the read replica").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicaConfig {
    /// The primary waits for the replica before it acknowledges a commit
    /// (`synchronous_standby_names` names it); default false: asynchronous.
    #[serde(default)]
    pub synchronous: bool,
    /// The primary's `synchronous_commit`: `on` (default), `remote_apply`,
    /// `remote_write`, `local` or `off`.
    #[serde(default = "on")]
    pub synchronous_commit: String,
    /// The replica's own `-c` settings.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

fn on() -> String {
    "on".into()
}

/// The replica's `application_name`, as `synchronous_standby_names` and
/// `pg_stat_replication` name it.
pub const REPLICA_NAME: &str = "replica";

/// Which server flavour to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgEngine {
    /// TimescaleDB when the extension is installed, plain PostgreSQL otherwise
    /// (the choice is reported).
    #[default]
    Auto,
    /// Requires the timescaledb extension; the drill fails to start without it.
    Timescaledb,
    /// Plain PostgreSQL, even where TimescaleDB is available.
    Postgres,
}

/// The data loaded before the backup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fixture {
    #[serde(default)]
    pub name: FixtureName,
    /// Rows in `ticks`; the other tables scale with it.
    #[serde(default = "default_ticks")]
    pub ticks: u64,
    /// Time between two ticks of one symbol.
    #[serde(default = "default_tick_interval")]
    pub tick_interval: HumanDuration,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            name: FixtureName::Nexwave,
            ticks: default_ticks(),
            tick_interval: default_tick_interval(),
        }
    }
}

fn default_ticks() -> u64 {
    20_000
}

fn default_tick_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}

/// Known fixtures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixtureName {
    /// The Nexwave trading schema of seeds 000 to 002.
    #[default]
    Nexwave,
    /// Seed 004's quant-trading database (TimescaleDB only): hypertables
    /// `market_prices` and `option_quotes`, compressed older chunks, the
    /// continuous aggregates `market_prices_1min`, `_5min` and `_daily`,
    /// `monitoring.backup_history`. Its size is fixed (`ticks` is ignored)
    /// and it has no `ticks` table for a workload.
    QuantTrading,
}

/// A writer that inserts ticks while the drill runs and records every
/// acknowledged write, so the data-loss window is measured, not estimated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Workload {
    /// Acknowledged inserts per second (the seeds saw 22 to 250 ticks/s).
    pub rate: u32,
    /// How long it writes before the fault.
    pub run_for: HumanDuration,
    /// Up to this much more, chosen from the scenario's seed, so the fault
    /// lands at a different point of the backup schedule per seed.
    #[serde(default)]
    pub jitter: Option<HumanDuration>,
    /// The writers keep writing this long after the fault (the application
    /// has not noticed it yet), left out of the RTO: what a point-in-time
    /// recovery must leave out.
    #[serde(default)]
    pub after_fault: Option<HumanDuration>,
}

/// How the backups are taken: the top-level keys are PostgreSQL's, the
/// `[backup.redis]` and `[backup.clickhouse]` tables the other services'.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Backup {
    /// PostgreSQL's backup; none when absent.
    #[serde(default)]
    pub method: Option<BackupMethod>,
    /// pg-dump: the dump format.
    #[serde(default)]
    pub format: DumpFormat,
    /// pg-dump: `pg_dump --verbose`.
    #[serde(default)]
    pub verbose: bool,
    /// pg-dump: where pg_dump's stderr goes.
    #[serde(default)]
    pub stderr: StderrMode,
    /// pg-dump, plain format: gzip the file.
    #[serde(default)]
    pub compress: Compress,
    /// shell: the user's backup command (`bash -c`); it must write the backup
    /// into `$DRILL_BACKUP_DIR`. The newest file there is the artifact.
    #[serde(default)]
    pub run: Option<String>,
    /// shell: working directory, relative to the scenario file.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// shell: kill the command after this long.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// With a workload: take a backup every this long while it writes (the
    /// scaled-down form of a cron schedule); the newest finished one is
    /// restored. Without it, one backup is taken as the workload starts.
    #[serde(default)]
    pub every: Option<HumanDuration>,
    /// `base-backup`: `plain` or `tar`.
    #[serde(default)]
    pub base_format: BaseFormat,
    /// `pgbackrest`: the type of every backup after the first full one.
    #[serde(default)]
    pub pgbackrest_type: BackrestType,
    /// Keep a WAL archive (`archive_mode = on`): implied by `base-backup`
    /// and `pgbackrest`; with `shell`, the script finds it in
    /// `DRILL_WAL_ARCHIVE`.
    #[serde(default)]
    pub wal_archive: Option<bool>,
    #[serde(default)]
    pub redis: Option<RedisBackup>,
    #[serde(default)]
    pub clickhouse: Option<ClickHouseBackup>,
}

/// Redis's backup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisBackup {
    pub method: RedisBackupMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisBackupMethod {
    /// SAVE, then `dump.rdb` copied out of the data dir or volume (the
    /// runbook's "manual RDB backup").
    RdbCopy,
}

/// ClickHouse's backup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClickHouseBackup {
    #[serde(default)]
    pub method: ClickHouseBackupMethod,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClickHouseBackupMethod {
    /// `native` where the server has BACKUP/RESTORE, else `freeze`; the
    /// report says which ran.
    #[default]
    Auto,
    /// `BACKUP DATABASE ... TO Disk(...)` (22.8 and later).
    Native,
    /// `ALTER TABLE ... FREEZE`, restored through `detached/` and ATTACH.
    Freeze,
    /// Each table in the Native format, restored with INSERT.
    Export,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupMethod {
    #[default]
    /// `pg_dump` of the application database.
    PgDump,
    /// The user's own backup script.
    Shell,
    /// `pg_basebackup -X stream` on the schedule, with `archive_mode = on`
    /// and an `archive_command` into a WAL archive that survives the fault.
    BaseBackup,
    /// pgBackRest with a posix repository that survives the fault:
    /// `stanza-create`, `check`, a full backup and then `pgbackrest-type`
    /// ones on the schedule; `archive-push` as the `archive_command`.
    Pgbackrest,
}

impl BackupMethod {
    /// Whether it keeps a continuous WAL archive (a physical backup).
    pub fn archives_wal(self) -> bool {
        matches!(self, BackupMethod::BaseBackup | BackupMethod::Pgbackrest)
    }
}

/// `pg_basebackup`'s output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseFormat {
    /// A copy of the data directory (`-Fp`).
    #[default]
    Plain,
    /// `base.tar` and `pg_wal.tar` (`-Ft`).
    Tar,
}

/// The kind of pgBackRest backup taken after the first (always full).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackrestType {
    #[default]
    Full,
    Diff,
    Incr,
}

impl BackrestType {
    pub fn name(self) -> &'static str {
        match self {
            BackrestType::Full => "full",
            BackrestType::Diff => "diff",
            BackrestType::Incr => "incr",
        }
    }
}

/// How a dump is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpFormat {
    /// Plain SQL, restored with psql.
    #[default]
    Plain,
    /// `pg_dump -Fc`, restored with pg_restore.
    Custom,
    /// `pg_dump -Fd` (a folder with toc.dat), restored with pg_restore.
    Directory,
}

impl std::fmt::Display for DumpFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DumpFormat::Plain => "plain",
            DumpFormat::Custom => "custom",
            DumpFormat::Directory => "directory",
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StderrMode {
    /// Kept apart from the dump (recorded in the timeline).
    #[default]
    Separate,
    /// Mixed into the dump file, as `pg_dump ... 2>&1 | gzip` does (seed 000).
    Merged,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    #[default]
    Gzip,
    None,
}

/// The incident: a verb acting on a service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fault {
    pub action: FaultAction,
    /// `postgres`, `redis`, `clickhouse`, or `all` (every declared service
    /// at one instant). Default: the only declared service, else postgres.
    #[serde(default)]
    pub service: Option<FaultTarget>,
    /// restart-with: the server's new command-line settings (`-c key=value`).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// restart-with: whether the data directory is reattached (default true).
    /// `false` is the compose file that forgot the volume: a fresh, empty
    /// server with the new settings.
    #[serde(default = "yes")]
    pub reattach: bool,
    /// sql: the statements that do the damage (run as the superuser).
    #[serde(default)]
    pub sql: Option<String>,
    /// redis-command: the command, as redis-cli takes it (`FLUSHALL`).
    #[serde(default)]
    pub command: Option<String>,
    /// corrupt-aof: `truncate-tail` or `middle`.
    #[serde(default)]
    pub damage: Option<DamageKind>,
    /// A restore point (`pg_create_restore_point`) made just before the
    /// fault, for `target = "restore-point:NAME"`.
    #[serde(default)]
    pub restore_point: Option<String>,
    /// The WAL archive is damaged too: one segment between the first and
    /// the newest base backup removed or overwritten.
    #[serde(default)]
    pub archive_damage: Option<ArchiveDamage>,
    /// The `archive_command` fails this long before the fault (the writers
    /// still writing): what `pg_stat_archiver` and seed 004's "WAL archive
    /// lag" alert show, and what a wipe then loses.
    #[serde(default)]
    pub archive_lag: Option<HumanDuration>,
    /// The replica receives no WAL for this long before the fault (the
    /// link between regions stalled; seed 004's "Replication lag > 5
    /// minutes" alert): what it never received, a failover loses.
    #[serde(default)]
    pub lag: Option<HumanDuration>,
}

/// What happens to the WAL archive with the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveDamage {
    /// One segment after the first base backup is deleted.
    RemoveSegment,
    /// One segment after the first base backup is overwritten where its
    /// first records are.
    CorruptSegment,
}

/// How the file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DamageKind {
    /// The file ends inside its last command, as when the disk filled or
    /// the machine died mid-write. Redis loads the rest (and says so).
    TruncateTail,
    /// A command's header in the middle is overwritten. Redis refuses to
    /// start; `redis-check-aof --fix` cuts the file there.
    Middle,
}

impl std::fmt::Display for DamageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DamageKind::TruncateTail => "truncate-tail",
            DamageKind::Middle => "middle",
        })
    }
}

/// Which services a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget {
    /// Every declared service, at one instant.
    All,
    /// One service.
    Only(ServiceKind),
}

impl<'de> Deserialize<'de> for FaultTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name == "all" {
            return Ok(FaultTarget::All);
        }
        ServiceKind::from_name(&name)
            .map(FaultTarget::Only)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown service `{name}`, expected one of `postgres`, `redis`, `clickhouse`, `all`"
                ))
            })
    }
}

impl Fault {
    /// The services it acts on, resolved against the declared ones.
    pub fn targets(&self, declared: &[ServiceKind]) -> Vec<ServiceKind> {
        match self.service {
            Some(FaultTarget::All) => declared.to_vec(),
            Some(FaultTarget::Only(k)) => vec![k],
            None if declared.len() == 1 => declared.to_vec(),
            None => vec![ServiceKind::Postgres],
        }
    }
}

/// What happens to the service. Each says what survives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// The data directory (or volume) is destroyed and the server comes back
    /// freshly initialised with an empty application database. Survives:
    /// nothing on the server; backups kept elsewhere.
    Wipe,
    /// The application database is dropped and created again empty.
    /// Survives: the server, its settings and other databases.
    DropDatabase,
    /// The server is stopped abruptly (immediate shutdown: no checkpoint, as
    /// when a container is recreated) and started again with other settings
    /// (seed 000's crash-recovery flags), replaying its WAL. Survives: what
    /// the WAL made durable, when the data directory is reattached; nothing
    /// when it is not.
    RestartWith,
    /// Every server process is killed at once (SIGKILL; `docker kill` of
    /// the container), mid-workload, and the server is started again on the
    /// same data, as its supervisor would. Survives: what the WAL made
    /// durable; commits acknowledged with `synchronous_commit = off` that
    /// were still in memory are lost.
    Crash,
    /// A graceful stop and a start on the same data (the runbook's
    /// "Container Restart (Data Intact)"). Survives: everything written.
    Restart,
    /// Every server process is killed at once and nothing starts it again:
    /// the machine or its region is gone. Survives: the data directory, on
    /// a machine nobody can reach until someone brings it back (a
    /// replica's failover, then the old primary's return).
    Kill,
    /// Redis: the server is stopped, its AOF damaged (`damage`), and
    /// started again: a cut-off tail loads, damage in the middle leaves it
    /// down. Survives: the commands before the damage.
    CorruptAof,
    /// Arbitrary damage in SQL (e.g. seed 002: the foreign keys dropped and
    /// four parent rows missing). Survives: whatever the SQL leaves.
    Sql,
    /// Redis: someone runs a command (`FLUSHALL`, a `DEL` of the wrong
    /// keys) while the application writes. Survives: what the command
    /// left, and in the AOF every command before it.
    RedisCommand,
    /// A planned change begins (an upgrade's maintenance window): the
    /// application stops writing; the server is not touched. Survives:
    /// everything; the recovery is the change, its downtime the RTO.
    Cutover,
}

impl FaultAction {
    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FaultAction::Wipe => "wipe",
            FaultAction::DropDatabase => "drop-database",
            FaultAction::RestartWith => "restart-with",
            FaultAction::Crash => "crash",
            FaultAction::Restart => "restart",
            FaultAction::Kill => "kill",
            FaultAction::CorruptAof => "corrupt-aof",
            FaultAction::Sql => "sql",
            FaultAction::RedisCommand => "redis-command",
            FaultAction::Cutover => "cutover",
        }
    }

    /// Whether the fault can act on a service of `kind`.
    pub fn applies_to(self, kind: ServiceKind) -> bool {
        match self {
            FaultAction::DropDatabase
            | FaultAction::RestartWith
            | FaultAction::Sql
            | FaultAction::Cutover => kind == ServiceKind::Postgres,
            FaultAction::CorruptAof | FaultAction::RedisCommand => kind == ServiceKind::Redis,
            FaultAction::Wipe | FaultAction::Crash | FaultAction::Restart | FaultAction::Kill => {
                true
            }
        }
    }
}

/// One way of recovering, and whether it is expected to work.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Recovery {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `recovers` for the corrected procedure; `fails` for a negative
    /// control that must reproduce the incident.
    #[serde(default)]
    pub expect: RecoveryExpect,
    /// With `expect = "fails"`: text the failure must show (a tool's error
    /// or a check's evidence), so a negative control cannot pass by failing
    /// for an unrelated reason.
    #[serde(default)]
    pub expect_error: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryExpect {
    #[default]
    Recovers,
    Fails,
}

impl RecoveryExpect {
    /// As written in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            RecoveryExpect::Recovers => "recovers",
            RecoveryExpect::Fails => "fails",
        }
    }
}

impl std::fmt::Display for RecoveryExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A recovery step. `step = "..."` picks the kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Stream the backup into `psql`, as `gunzip -c backup | psql` does.
    PsqlRestore {
        /// Remove pg_dump's own messages from the stream first (structure
        /// aware; legitimate data is never dropped).
        #[serde(default)]
        sanitize: bool,
        /// `psql -v ON_ERROR_STOP=1`: stop at the first error.
        #[serde(default, rename = "on-error-stop")]
        on_error_stop: bool,
        /// Connections the COPY data goes over (`pg_restore -j` for a plain
        /// dump: schema first, rows in chunks over N psql connections, then
        /// indexes and constraints); default 1, psql's own order.
        /// TimescaleDB targets always take one.
        #[serde(default)]
        jobs: Option<u16>,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// `pg_restore` a custom- or directory-format backup.
    PgRestore {
        /// `--exit-on-error` (default true).
        #[serde(default = "yes", rename = "exit-on-error")]
        exit_on_error: bool,
        /// `--table=...` for each: restore only these tables (seed 004's
        /// single-table recovery).
        #[serde(default)]
        tables: Vec<String>,
        /// `--data-only`: the schema is already there.
        #[serde(default, rename = "data-only")]
        data_only: bool,
        /// `--disable-triggers` (with data-only: load children before parents).
        #[serde(default, rename = "disable-triggers")]
        disable_triggers: bool,
        /// `pg_restore -j N` (not for TimescaleDB targets, whose restore
        /// runs on one connection between pre_restore and post_restore).
        #[serde(default)]
        jobs: Option<u16>,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// Recreate the schema from the version-controlled schema files (the
    /// fixture's SQL), as seed 001's recovery did.
    ApplySchema {
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// SQL run with psql (stopping at the first error), or on ClickHouse.
    Sql {
        run: String,
        /// `postgres` (default) or `clickhouse`.
        #[serde(default)]
        service: Option<ServiceKind>,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// A redis-cli command, e.g. `INFO persistence` (the runbook's checks).
    Redis {
        run: String,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// Start a service that is down (after a damaged AOF was repaired);
    /// nothing when it runs.
    Start { service: ServiceKind },
    /// `redis-check-aof --fix` on the AOF, answering its question (the
    /// runbook's "Redis AOF Corruption").
    RedisCheckAof,
    /// Restore the Redis backup (an RDB copy) into the data dir or volume.
    RedisRestoreRdb {
        /// Start once with `appendonly no` so the RDB is loaded, then turn
        /// the AOF back on (default true). `false` is the runbook's copy
        /// and start, which a Redis with the AOF on ignores.
        #[serde(default = "yes", rename = "aof-off-while-loading")]
        aof_off_while_loading: bool,
    },
    /// Redis point in time: the server stopped, its AOF cut back with
    /// `redis-check-aof --truncate-to-timestamp` to the last whole second
    /// before `target` (`before-fault`, `fault - 2s`), started again.
    RedisPitr {
        #[serde(default = "before_fault")]
        target: super::RecoveryTarget,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// Restore the ClickHouse backup (native RESTORE, ATTACH of frozen
    /// parts, or INSERT of the export).
    ClickhouseRestore,
    /// Point-in-time recovery: a base backup restored, WAL replayed from
    /// the archive to `target`, promoted.
    Pitr {
        #[serde(default)]
        target: super::RecoveryTarget,
        /// `base-backup` (drill's own procedure) or `pgbackrest`
        /// (`pgbackrest restore`); default: the backup method's.
        #[serde(default)]
        tool: Option<PitrTool>,
        /// Which base backup: `newest` (default: the newest that ends
        /// before the target) or `oldest`.
        #[serde(default)]
        backup: Option<BackupPick>,
        /// pgBackRest's `--delta`: keep files whose checksum matches.
        #[serde(default)]
        delta: bool,
        /// Copy the segments of the old `pg_wal` that never reached the
        /// archive (the PostgreSQL manual's step 2), when the old data
        /// directory is still there.
        #[serde(default = "yes", rename = "unarchived-wal")]
        unarchived_wal: bool,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// `pgbackrest verify`, `check` or `info`, judged by its output.
    Pgbackrest {
        run: BackrestCommand,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// drill's own scan of the WAL archive for gaps between the oldest
    /// base backup and the newest segment.
    CheckArchive,
    /// Stops the service (fast shutdown) and leaves it down.
    Stop { service: ServiceKind },
    /// The replica is promoted (`pg_promote()`): it stops following and
    /// accepts writes.
    Promote {
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// The application's connection strings now name the replica: drill's
    /// checks, the user's commands (`PG*`, the shims) and a probe write go
    /// to it from here on.
    Repoint,
    /// The old primary comes back on its data. With `fence = true` it is
    /// first made a standby of the new primary (`standby.signal`), as a
    /// runbook's fencing does. drill then tries a write on it: refused is
    /// safe; accepted is split brain, and the step fails.
    OldPrimary {
        #[serde(default)]
        fence: bool,
    },
    /// `pg_dump` of the application database now (the backup section's
    /// format), with PostgreSQL `version`'s pg_dump (default: the
    /// server's own): an upgrade's dump, taken with the new version's
    /// tool. Later restore steps restore it.
    PgDump {
        #[serde(default)]
        version: Option<u32>,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// An empty server of PostgreSQL `version` (default: the one drill
    /// finds) in the same flavour, with the same settings and an empty
    /// application database, takes the service's place: the checks, `PG*`
    /// and later steps use it. The old server stays as it was (stopped or
    /// running) until the drill ends.
    NewServer {
        #[serde(default)]
        version: Option<u32>,
        /// The image for the docker backend (default as for the service).
        #[serde(default)]
        image: Option<String>,
        /// `postgres`: a server without TimescaleDB (the plain image a DR
        /// host was set up from); default: the service's flavour.
        #[serde(default)]
        engine: Option<PgEngine>,
    },
    /// `pg_upgrade` from the service's server (stopped first by a `stop`
    /// step, as the manual says) into a new cluster of PostgreSQL
    /// `version`, which is started and takes the service's place.
    PgUpgrade {
        version: u32,
        /// `copy` (default) or `link` (hard links: fast, and the old
        /// cluster must not start again).
        #[serde(default)]
        mode: UpgradeMode,
        /// The new cluster's data checksums: `match` (default: as the old
        /// cluster, the manual's advice) or `initdb-default` (initdb's own
        /// default, which PostgreSQL 18 turned on).
        #[serde(default)]
        checksums: ChecksumsChoice,
        #[serde(default)]
        timeout: Option<HumanDuration>,
    },
    /// A shell over the service's data (`$DATA`), the server stopped or not.
    DataShell {
        run: String,
        #[serde(default)]
        service: Option<ServiceKind>,
    },
    /// `cargo xtask lint-backup` over the team's backup scripts, crontabs,
    /// runbooks or backup files (paths relative to the scenario file): the
    /// hazards behind the seeds' incidents, reported in the timeline next to
    /// the restore's result. `strict = true`: a hazard fails the step.
    LintBackup {
        paths: Vec<PathBuf>,
        #[serde(default)]
        strict: bool,
    },
    /// The user's own command, e.g. `./restore-postgres.sh "$DRILL_BACKUP_FILE"`.
    Shell {
        run: String,
        /// Working directory, relative to the scenario file.
        #[serde(default)]
        workdir: Option<PathBuf>,
        #[serde(default)]
        timeout: Option<HumanDuration>,
        /// The service it recovers, for that service's RTO; without it the
        /// step counts for every service.
        #[serde(default)]
        service: Option<ServiceKind>,
    },
}

fn yes() -> bool {
    true
}

fn before_fault() -> super::RecoveryTarget {
    super::RecoveryTarget::Fault { offset_ms: 0 }
}

/// How `pg_upgrade` moves the data files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    #[default]
    Copy,
    Link,
}

impl UpgradeMode {
    pub fn flag(self) -> &'static str {
        match self {
            UpgradeMode::Copy => "--copy",
            UpgradeMode::Link => "--link",
        }
    }
}

/// The new cluster's data checksums in a `pg-upgrade`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumsChoice {
    #[default]
    Match,
    InitdbDefault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PitrTool {
    BaseBackup,
    Pgbackrest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupPick {
    Newest,
    Oldest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackrestCommand {
    Verify,
    Check,
    Info,
}

impl BackrestCommand {
    pub fn name(self) -> &'static str {
        match self {
            BackrestCommand::Verify => "verify",
            BackrestCommand::Check => "check",
            BackrestCommand::Info => "info",
        }
    }
}

impl Step {
    /// The timeout the scenario sets for the step, if any.
    pub fn timeout(&self) -> Option<HumanDuration> {
        match self {
            Step::PsqlRestore { timeout, .. }
            | Step::PgRestore { timeout, .. }
            | Step::ApplySchema { timeout }
            | Step::Sql { timeout, .. }
            | Step::Redis { timeout, .. }
            | Step::Pitr { timeout, .. }
            | Step::Promote { timeout }
            | Step::RedisPitr { timeout, .. }
            | Step::Pgbackrest { timeout, .. }
            | Step::PgDump { timeout, .. }
            | Step::PgUpgrade { timeout, .. }
            | Step::Shell { timeout, .. } => *timeout,
            _ => None,
        }
    }

    /// How long the step may take: the scenario's timeout, else its kind's
    /// default (a restore or a user's command an hour; SQL and redis-cli
    /// ten minutes). A step that overruns is ended and red.
    pub fn time_limit(&self) -> std::time::Duration {
        let default = match self {
            Step::PsqlRestore { .. }
            | Step::PgRestore { .. }
            | Step::Pitr { .. }
            | Step::PgDump { .. }
            | Step::PgUpgrade { .. }
            | Step::Shell { .. } => 3_600,
            _ => 600,
        };
        self.timeout()
            .map_or(std::time::Duration::from_secs(default), |t| t.0)
    }

    /// The step's kind as written in the file (`--pause-at` accepts it).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::PsqlRestore { .. } => "psql-restore",
            Step::PgRestore { .. } => "pg-restore",
            Step::ApplySchema { .. } => "apply-schema",
            Step::Sql { .. } => "sql",
            Step::Redis { .. } => "redis",
            Step::Start { .. } => "start",
            Step::RedisCheckAof => "redis-check-aof",
            Step::RedisRestoreRdb { .. } => "redis-restore-rdb",
            Step::ClickhouseRestore => "clickhouse-restore",
            Step::RedisPitr { .. } => "redis-pitr",
            Step::Pitr { .. } => "pitr",
            Step::Pgbackrest { .. } => "pgbackrest",
            Step::CheckArchive => "check-archive",
            Step::Stop { .. } => "stop",
            Step::Promote { .. } => "promote",
            Step::Repoint => "repoint",
            Step::OldPrimary { .. } => "old-primary",
            Step::DataShell { .. } => "data-shell",
            Step::PgDump { .. } => "pg-dump",
            Step::NewServer { .. } => "new-server",
            Step::PgUpgrade { .. } => "pg-upgrade",
            Step::LintBackup { .. } => "lint-backup",
            Step::Shell { .. } => "shell",
        }
    }

    /// The service it acts on (None: any of them, a user's command).
    pub fn service(&self) -> Option<ServiceKind> {
        match self {
            Step::PsqlRestore { .. }
            | Step::PgRestore { .. }
            | Step::ApplySchema { .. }
            | Step::Pitr { .. }
            | Step::Pgbackrest { .. }
            | Step::Promote { .. }
            | Step::Repoint
            | Step::OldPrimary { .. }
            | Step::PgDump { .. }
            | Step::NewServer { .. }
            | Step::PgUpgrade { .. }
            | Step::CheckArchive => Some(ServiceKind::Postgres),
            Step::Stop { service } => Some(*service),
            Step::DataShell { service, .. } => Some(service.unwrap_or(ServiceKind::Postgres)),
            Step::Sql { service, .. } => Some(service.unwrap_or(ServiceKind::Postgres)),
            Step::Redis { .. }
            | Step::RedisCheckAof
            | Step::RedisRestoreRdb { .. }
            | Step::RedisPitr { .. } => Some(ServiceKind::Redis),
            Step::ClickhouseRestore => Some(ServiceKind::ClickHouse),
            Step::Start { service } => Some(*service),
            Step::Shell { service, .. } => *service,
            Step::LintBackup { .. } => None,
        }
    }

    /// Short name for the timeline (and for `--pause-at`).
    pub fn label(&self) -> String {
        match self {
            Step::PsqlRestore { sanitize: true, .. } => "psql-restore (sanitized)".into(),
            Step::PsqlRestore { .. } => "psql-restore".into(),
            Step::PgRestore {
                tables, data_only, ..
            } => {
                let mut l = "pg-restore".to_string();
                if *data_only {
                    l.push_str(" --data-only");
                }
                for t in tables {
                    l.push_str(&format!(" --table={t}"));
                }
                l
            }
            Step::ApplySchema { .. } => "apply-schema".into(),
            Step::Sql { run, service, .. } => {
                let first = run.lines().next().unwrap_or("").trim();
                format!(
                    "sql{}: {}",
                    match service {
                        Some(ServiceKind::ClickHouse) => " (clickhouse)",
                        _ => "",
                    },
                    first.chars().take(48).collect::<String>()
                )
            }
            Step::Redis { run, .. } => {
                format!("redis-cli {}", run.chars().take(48).collect::<String>())
            }
            Step::Start { service } => format!("start {service}"),
            Step::RedisCheckAof => "redis-check-aof --fix".into(),
            Step::RedisRestoreRdb {
                aof_off_while_loading: true,
            } => "redis-restore-rdb (AOF off while loading)".into(),
            Step::RedisRestoreRdb { .. } => "redis-restore-rdb (copy and start)".into(),
            Step::ClickhouseRestore => "clickhouse-restore".into(),
            Step::Pitr {
                target,
                tool,
                backup,
                ..
            } => {
                let mut l = format!("pitr to {}", target.describe());
                if *tool == Some(PitrTool::Pgbackrest) {
                    l.push_str(" (pgbackrest)");
                }
                if *backup == Some(BackupPick::Oldest) {
                    l.push_str(" from the oldest backup");
                }
                l
            }
            Step::Pgbackrest { run, .. } => format!("pgbackrest {}", run.name()),
            Step::CheckArchive => "check-archive".into(),
            Step::Stop { service } => format!("stop {service}"),
            Step::Promote { .. } => "promote replica".into(),
            Step::RedisPitr { target, .. } => format!("redis-pitr to {}", target.describe()),
            Step::Repoint => "repoint to the replica".into(),
            Step::OldPrimary { fence: true } => "old primary back, fenced".into(),
            Step::OldPrimary { fence: false } => "old primary back".into(),
            Step::PgDump {
                version: Some(v), ..
            } => format!("pg_dump (PostgreSQL {v}'s)"),
            Step::PgDump { .. } => "pg_dump".into(),
            Step::NewServer {
                version, engine, ..
            } => format!(
                "new server{}{}",
                version.map_or(String::new(), |v| format!(": PostgreSQL {v}")),
                match engine {
                    Some(PgEngine::Postgres) => " without TimescaleDB",
                    _ => "",
                }
            ),
            Step::PgUpgrade {
                version,
                mode,
                checksums,
                ..
            } => format!(
                "pg_upgrade {} to PostgreSQL {version}{}",
                mode.flag(),
                match checksums {
                    ChecksumsChoice::Match => "",
                    ChecksumsChoice::InitdbDefault => " (initdb's default checksums)",
                }
            ),
            Step::DataShell { run, .. } => {
                let one: Vec<&str> = run.split_whitespace().collect();
                format!(
                    "data-shell: {}",
                    one.join(" ").chars().take(48).collect::<String>()
                )
            }
            Step::LintBackup { paths, .. } => format!(
                "lint-backup {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Step::Shell { run, .. } => {
                let first = run.lines().next().unwrap_or("").trim();
                let short: String = first.chars().take(48).collect();
                format!(
                    "shell: {short}{}",
                    if first.chars().count() > 48 {
                        "…"
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

/// What must hold after a `recovers` recovery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    /// Recovery time objective: fault to every check green.
    pub rto: HumanDuration,
    /// Recovery point objective: the data-loss window (fault minus the
    /// oldest acknowledged write that did not come back). Needs a workload.
    #[serde(default)]
    pub rpo: Option<HumanDuration>,
    #[serde(default)]
    pub rows: RowsExpect,
    #[serde(default)]
    pub schema: SchemaExpect,
    /// Row counts for named tables: `"34"` (exactly) or `">= 20000"` (at
    /// least); names without a schema mean `public`.
    #[serde(default)]
    pub table_rows: BTreeMap<String, RowCount>,
    /// Every foreign key of the baseline: rows whose parent is missing.
    #[serde(default)]
    pub fk_orphans: Option<u64>,
    /// SQL returning one boolean that must be true after recovery.
    #[serde(default)]
    pub probes: Vec<String>,
    /// What must hold for Redis (when declared).
    #[serde(default)]
    pub redis: Option<RedisExpect>,
    /// What must hold for ClickHouse (when declared).
    #[serde(default)]
    pub clickhouse: Option<ClickHouseExpect>,
}

/// Redis after recovery.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisExpect {
    #[serde(default)]
    pub keys: KeysExpect,
    /// Key patterns (`*` wildcards) left out of the comparison, e.g.
    /// `session:*` that the runbook accepts to lose.
    #[serde(default)]
    pub ignore_keys: Vec<String>,
    /// The runbook's INFO checks: `loading:0`, `aof_enabled` as configured,
    /// `rdb_last_bgsave_status:ok` (default true).
    #[serde(default = "yes")]
    pub persistence: bool,
    /// Keys rebuilt from PostgreSQL must equal it.
    #[serde(default)]
    pub matches_postgres: Vec<CrossCheck>,
}

/// Redis keys against rows of PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrossCheck {
    /// The keys (a pattern with `*`), e.g. `price:*`.
    pub keys: String,
    /// A query returning (key, value) rows, e.g. the latest price per
    /// symbol; values are compared as numbers when both parse as numbers.
    pub sql: String,
}

/// How Redis's keys are judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeysExpect {
    /// Every key of the baseline, with its value, type and expiry.
    #[default]
    SameAsBefore,
    /// Exactly the keys the AOF damage predicts are lost (corrupt-aof);
    /// every other key as before.
    LostAsPredicted,
    /// Keys are not compared.
    Ignore,
}

/// ClickHouse after recovery.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClickHouseExpect {
    #[serde(default)]
    pub tables: TablesExpect,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TablesExpect {
    /// Every table of the baseline: rows, content checksum, columns, engine.
    #[default]
    SameAsBefore,
    Ignore,
}

/// An expected row count: exact or a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCount {
    Exactly(i64),
    AtLeast(i64),
}

impl<'de> Deserialize<'de> for RowCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        let (at_least, n) = match t.strip_prefix(">=") {
            Some(rest) => (true, rest.trim()),
            None => (false, t),
        };
        let n: i64 = n.replace('_', "").parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "row count `{text}`: write a number (\"34\") or a lower bound (\">= 20000\")"
            ))
        })?;
        Ok(if at_least {
            RowCount::AtLeast(n)
        } else {
            RowCount::Exactly(n)
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowsExpect {
    /// Every table's row count equals the count taken before the fault.
    #[default]
    SameAsBefore,
    /// Row counts are not checked.
    Ignore,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaExpect {
    /// The catalog fingerprint equals the one taken before the fault.
    #[default]
    SameAsBefore,
    /// The schema is not checked.
    Ignore,
}
