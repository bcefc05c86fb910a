//! Loading: TOML text to a validated [`Scenario`], or a [`ScenarioError`]
//! that names the file, line, column and key, says what is allowed, and
//! suggests a fix. Parsing happens in three passes: TOML syntax, typed
//! deserialisation (unknown keys, wrong types, unknown names), then the
//! cross-field rules serde cannot express.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::bounds;
use super::duration::HumanDuration;
use super::model::*;
use super::target::RecoveryTarget;
pub use crate::errors::ScenarioError;
use crate::vocab::ServiceKind;

/// Reads and validates one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read the file: {e}"),
        help: "check the path; `cargo xtask list` shows the known scenarios".into(),
    })?;
    parse_str(&src, path)
}

/// Every `*.toml` in a directory but `Cargo.toml`, sorted by file name. Stops at the first bad
/// file: a drill suite never starts with a broken scenario in it.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ScenarioError {
            file: dir.to_owned(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot list the scenario folder: {e}"),
            help: String::new(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // The folder is also the crate that runs each file as a test.
        .filter(|p| p.file_name().is_some_and(|n| n != "Cargo.toml"))
        .collect();
    paths.sort();
    let all: Vec<Scenario> = paths
        .iter()
        .map(|p| load_file(p))
        .collect::<Result<_, _>>()?;
    for (i, sc) in all.iter().enumerate() {
        if let Some(first) = all[..i].iter().find(|o| o.name == sc.name) {
            return Err(ScenarioError {
                file: sc.path.clone(),
                line: 0,
                column: 0,
                key: "name".into(),
                message: format!(
                    "scenario `{}` is also {}: their reports and timelines would overwrite each other",
                    sc.name,
                    first.path.display()
                ),
                help: "give each scenario its own `name` (or file name)".into(),
            });
        }
    }
    Ok(all)
}

/// Parses scenario text; `path` is used for messages and the default name.
pub fn parse_str(src: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let err = |span: Option<std::ops::Range<usize>>, key: String, message: String, help: String| {
        let (line, column) = span.map(|s| line_col(src, s.start)).unwrap_or((0, 0));
        ScenarioError {
            file: path.to_owned(),
            line,
            column,
            key,
            message,
            help,
        }
    };
    let de = toml::Deserializer::parse(src).map_err(|e| {
        err(
            e.span(),
            String::new(),
            first_line(e.message()),
            "fix the TOML syntax at this position".into(),
        )
    })?;
    let mut sc: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        let help = help_for(&message, &key);
        err(
            inner.span(),
            if key == "." { String::new() } else { key },
            message,
            help,
        )
    })?;
    sc.path = path.to_owned();
    if let Some(compose) = sc.services.from_compose.clone() {
        let file = path.parent().unwrap_or(Path::new(".")).join(compose);
        let shell: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        let imported = crate::compose::import(&file, &sc.services.compose_services, &shell)
            .map_err(|mut e| {
                e.help = format!(
                    "{} (the compose file `from-compose` names in {})",
                    e.help,
                    path.display()
                );
                e
            })?;
        crate::compose::apply(&mut sc, imported);
    }
    // The limits travel with the server's other extras.
    let s = &mut sc.services;
    if let Some(c) = &mut s.postgres {
        c.extras.limits = crate::vocab::Limits {
            cpus: c.cpus,
            memory: c.memory,
        };
    }
    if let Some(c) = &mut s.redis {
        c.extras.limits = crate::vocab::Limits {
            cpus: c.cpus,
            memory: c.memory,
        };
    }
    if let Some(c) = &mut s.clickhouse {
        c.extras.limits = crate::vocab::Limits {
            cpus: c.cpus,
            memory: c.memory,
        };
    }
    if sc.name.is_empty() {
        sc.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    validate(&sc).map_err(|(key, message, help)| err(span_of(src, &key), key, message, help))?;
    Ok(sc)
}

/// A rule broken: (key, message, help).
type Broken = (String, String, String);

fn bad(key: &str, message: String, help: &str) -> Result<(), Broken> {
    Err((key.to_string(), message, help.to_string()))
}

/// A PostgreSQL major version drill could run (10 and later).
fn major_version(key: &str, v: u32) -> Result<(), Broken> {
    if (10..=99).contains(&v) {
        return Ok(());
    }
    bad(
        key,
        format!("{v} is not a PostgreSQL major version drill can run"),
        "write the major version alone, e.g. `version = 18` (10 or later)",
    )
}

/// What only concerns PostgreSQL.
fn validate_postgres(sc: &Scenario, pg: &PostgresConfig) -> Result<(), Broken> {
    if let Some(v) = pg.version {
        major_version("services.postgres.version", v)?;
    }
    if sc.fixture.name == FixtureName::QuantTrading {
        if pg.engine == PgEngine::Postgres {
            return bad(
                "services.postgres.engine",
                "the quant-trading fixture is TimescaleDB's (hypertables, continuous aggregates)"
                    .into(),
                "use `engine = \"timescaledb\"` (or `auto`)",
            );
        }
        if sc.workload.is_some() {
            return bad(
                "workload",
                "the quant-trading fixture has no `ticks` table for the workload's writer".into(),
                "remove `[workload]`, or use the nexwave fixture",
            );
        }
    }
    for (key, value) in [("database", &pg.database), ("user", &pg.user)] {
        if value.is_empty() || value.contains(['\0', '\n']) || value.len() > 63 {
            return bad(
                &format!("services.postgres.{key}"),
                format!("`{value}` is not a usable {key} name"),
                "use 1 to 63 characters without newlines, e.g. `nexwave`",
            );
        }
    }
    let managed = [
        "port",
        "listen_addresses",
        "unix_socket_directories",
        "data_directory",
        "hba_file",
        "shared_preload_libraries",
    ];
    for k in sc.fault.settings.keys() {
        if managed.contains(&k.as_str()) {
            return bad(
                &format!("fault.settings.{k}"),
                format!(
                    "`{k}` is managed by drill (disposable servers pick their own port, socket and data dir)"
                ),
                "remove it from the restart's settings",
            );
        }
    }
    for k in pg.settings.keys() {
        if managed.contains(&k.as_str()) {
            return bad(
                &format!("services.postgres.settings.{k}"),
                format!(
                    "`{k}` is managed by drill (disposable servers pick their own port, socket and data dir)"
                ),
                "remove it; drill loads timescaledb itself when `engine` asks for it",
            );
        }
    }
    for (k, v) in &pg.settings {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            || v.contains('\n')
        {
            return bad(
                &format!("services.postgres.settings.{k}"),
                format!("`{k}` is not a valid server setting name"),
                "use PostgreSQL's names, e.g. `fsync = \"on\"`",
            );
        }
    }
    Ok(())
}

/// The services a scenario declares, for rules that name them.
struct Declared {
    kinds: Vec<ServiceKind>,
}

impl Declared {
    fn has(&self, k: ServiceKind) -> bool {
        self.kinds.contains(&k)
    }

    fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

/// A duration outside its limit.
fn within(key: &str, d: Option<HumanDuration>, limit: &bounds::Limit) -> Result<(), Broken> {
    match d.map(|d| limit.check(d)) {
        Some(Err((message, why))) => Err((key.to_string(), message, why)),
        _ => Ok(()),
    }
}

/// A shell command's folder and script, which must be there.
fn command_is_there(
    sc: &Scenario,
    key: &str,
    workdir: Option<&Path>,
    run: &str,
) -> Result<(), Broken> {
    if let Some(missing) = workdir.and_then(|w| bounds::missing_folder(&sc.path, w)) {
        return bad(
            &format!("{key}.workdir"),
            format!("no such folder: {missing}"),
            "workdir is relative to the scenario file",
        );
    }
    if let Some(missing) = bounds::missing_script(&sc.path, workdir, run) {
        return bad(
            &format!("{key}.run"),
            format!("no such script: {missing}"),
            "the command's `./script` is looked up in its workdir (relative to the scenario file)",
        );
    }
    Ok(())
}

/// Cross-field rules; returns (key, message, help).
fn validate(sc: &Scenario) -> Result<(), Broken> {
    for (kind, limits) in [
        (
            "postgres",
            sc.services.postgres.as_ref().map(|c| c.extras.limits),
        ),
        ("redis", sc.services.redis.as_ref().map(|c| c.extras.limits)),
        (
            "clickhouse",
            sc.services.clickhouse.as_ref().map(|c| c.extras.limits),
        ),
    ] {
        let Some(l) = limits else { continue };
        if let Some(c) = l.cpus
            && !(0.01..=1024.0).contains(&c)
        {
            return bad(
                &format!("services.{kind}.cpus"),
                format!("{c} CPUs is no limit Docker takes"),
                "write the CPUs the container may use, e.g. `cpus = 1` or `cpus = 0.5`",
            );
        }
        if let Some(m) = l.memory
            && m < 64 << 20
        {
            return bad(
                &format!("services.{kind}.memory"),
                format!(
                    "{} is too little memory for a server",
                    crate::vocab::fmt_bytes(m)
                ),
                "give it at least 64 MiB, e.g. `memory = \"2 GiB\"`",
            );
        }
    }
    validate_header(sc)?;
    validate_services(sc)?;
    let d = Declared {
        kinds: sc.services.kinds(),
    };
    validate_fault(sc, &d)?;
    validate_backup(sc, &d)?;
    validate_expect(sc, &d)?;
    validate_workload(sc)?;
    validate_recoveries(sc, &d)
}

/// The scenario's name and description.
fn validate_header(sc: &Scenario) -> Result<(), Broken> {
    if sc.name.is_empty()
        || !sc
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad(
            "name",
            format!(
                "scenario name `{}` must be lowercase letters, digits and dashes",
                sc.name
            ),
            "rename it, e.g. `verbose-dump`",
        );
    }
    if sc.description.trim().is_empty() {
        return bad(
            "description",
            "description is empty".into(),
            "say in one line what the drill proves",
        );
    }
    Ok(())
}

/// At least one service, each configured sensibly.
fn validate_services(sc: &Scenario) -> Result<(), Broken> {
    if sc.services.kinds().is_empty() {
        return bad(
            "services",
            "no service declared".into(),
            "add a `[services.postgres]`, `[services.redis]` or `[services.clickhouse]` table",
        );
    }
    if let Some(pg) = &sc.services.postgres {
        validate_postgres(sc, pg)?;
    }
    if let Some(r) = &sc.services.postgres_replica {
        if sc.services.postgres.is_none() {
            return bad(
                "services.postgres-replica",
                "a replica needs its primary".into(),
                "declare `[services.postgres]` too",
            );
        }
        const COMMIT: [&str; 5] = ["on", "remote_apply", "remote_write", "local", "off"];
        if !COMMIT.contains(&r.synchronous_commit.as_str()) {
            return bad(
                "services.postgres-replica.synchronous-commit",
                format!(
                    "`{}` is not a synchronous_commit level",
                    r.synchronous_commit
                ),
                "use `on`, `remote_apply`, `remote_write`, `local` or `off`",
            );
        }
    }
    if let Some(r) = &sc.services.redis
        && !["everysec", "always", "no"].contains(&r.appendfsync.as_str())
    {
        return bad(
            "services.redis.appendfsync",
            format!("`{}` is not an appendfsync policy", r.appendfsync),
            "use `everysec`, `always` or `no`",
        );
    }
    if let Some(r) = &sc.services.redis
        && let Some(k) = r
            .settings
            .keys()
            .find(|k| crate::compose::REDIS_OWNED.contains(&k.to_ascii_lowercase().as_str()))
    {
        return bad(
            &format!("services.redis.settings.{k}"),
            format!(
                "`{k}` is drill's to set: it is where the server listens, keeps its data or authenticates, or it reaches outside the drill"
            ),
            "remove it; drill passes the server's coordinates to your commands in REDIS_HOST, REDIS_PORT and REDIS_PASSWORD",
        );
    }
    if let Some(c) = &sc.services.clickhouse
        && (c.database.is_empty()
            || !c
                .database
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
    {
        return bad(
            "services.clickhouse.database",
            format!("`{}` is not a usable database name", c.database),
            "use letters, digits and underscores, e.g. `analytics`",
        );
    }
    Ok(())
}

/// The fault: a known service, and an action that service has.
fn validate_fault(sc: &Scenario, d: &Declared) -> Result<(), Broken> {
    let targets = sc.fault.targets(&d.kinds);
    if targets.is_empty() || targets.iter().any(|t| !d.has(*t)) {
        return bad(
            "fault.service",
            format!(
                "fault acts on `{}`, which is not declared",
                targets.first().map_or("postgres", |k| k.name())
            ),
            &format!("declared services: {} (or `all`)", d.names().join(", ")),
        );
    }
    if !targets.iter().all(|t| sc.fault.action.applies_to(*t)) {
        return bad(
            "fault.action",
            format!(
                "`{}` does not apply to {}",
                sc.fault.action.name(),
                targets
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "drop-database, restart-with, sql and cutover act on postgres; corrupt-aof and redis-command on redis; wipe, crash, kill and restart on any",
        );
    }
    match sc.fault.action {
        FaultAction::Sql if sc.fault.sql.as_deref().is_none_or(|q| q.trim().is_empty()) => {
            return bad(
                "fault.sql",
                "`action = \"sql\"` needs the statements".into(),
                "add `sql = \"...\"`",
            );
        }
        FaultAction::RedisCommand
            if sc
                .fault
                .command
                .as_deref()
                .is_none_or(|c| c.trim().is_empty()) =>
        {
            return bad(
                "fault.command",
                "`action = \"redis-command\"` needs the command".into(),
                "add `command = \"FLUSHALL\"` (as redis-cli takes it)",
            );
        }
        FaultAction::CorruptAof if sc.fault.damage.is_none() => {
            return bad(
                "fault.damage",
                "`action = \"corrupt-aof\"` needs to know where".into(),
                "add `damage = \"truncate-tail\"` or `damage = \"middle\"`",
            );
        }
        FaultAction::CorruptAof if sc.services.redis.as_ref().is_some_and(|r| !r.appendonly) => {
            return bad(
                "fault.action",
                "corrupt-aof needs the AOF on".into(),
                "set `appendonly = true` under `[services.redis]`",
            );
        }
        FaultAction::RestartWith => {}
        _ if !sc.fault.settings.is_empty() || !sc.fault.reattach => {
            return bad(
                "fault.settings",
                "`settings` and `reattach` belong to `action = \"restart-with\"`".into(),
                "remove them or change the action",
            );
        }
        _ => {}
    }
    let archives = sc.backup.method.is_some_and(BackupMethod::archives_wal)
        || sc.backup.wal_archive == Some(true);
    if (sc.fault.restore_point.is_some()
        || sc.fault.archive_damage.is_some()
        || sc.fault.archive_lag.is_some())
        && !d.has(ServiceKind::Postgres)
    {
        return bad(
            "fault",
            "`restore-point`, `archive-damage` and `archive-lag` act on postgres, which is not declared".into(),
            "declare `[services.postgres]`",
        );
    }
    if let Some(rp) = &sc.fault.restore_point
        && (rp.trim().is_empty() || rp.len() > 63)
    {
        return bad(
            "fault.restore-point",
            "a restore point's name is 1 to 63 characters".into(),
            "e.g. `restore-point = \"before-drop\"`",
        );
    }
    for (key, set) in [
        ("fault.archive-damage", sc.fault.archive_damage.is_some()),
        ("fault.archive-lag", sc.fault.archive_lag.is_some()),
    ] {
        if set && !archives {
            return bad(
                key,
                "there is no WAL archive to damage or hold back".into(),
                "use `method = \"base-backup\"` or `\"pgbackrest\"` under `[backup]`",
            );
        }
    }
    if let Some(lag) = sc.fault.archive_lag {
        within("fault.archive-lag", Some(lag), &bounds::RUN_FOR)?;
        if sc.workload.is_none() {
            return bad(
                "fault.archive-lag",
                "an archive lag loses writes only while something writes".into(),
                "add a `[workload]` table",
            );
        }
    }
    if let Some(lag) = sc.fault.lag {
        within("fault.lag", Some(lag), &bounds::RUN_FOR)?;
        if sc.services.postgres_replica.is_none() {
            return bad(
                "fault.lag",
                "there is no replica to hold back".into(),
                "declare `[services.postgres-replica]`",
            );
        }
        if sc.workload.is_none() {
            return bad(
                "fault.lag",
                "a replica falls behind only while something writes".into(),
                "add a `[workload]` table",
            );
        }
    }
    if sc.fault.damage.is_some() && sc.fault.action != FaultAction::CorruptAof {
        return bad(
            "fault.damage",
            "`damage` belongs to `action = \"corrupt-aof\"`".into(),
            "remove it or change the action",
        );
    }
    Ok(())
}

/// Backups belong to declared services and have what their method needs.
fn validate_backup(sc: &Scenario, d: &Declared) -> Result<(), Broken> {
    within("backup.timeout", sc.backup.timeout, &bounds::TIMEOUT)?;
    for (key, set, kind) in [
        (
            "backup.method",
            sc.backup.method.is_some(),
            ServiceKind::Postgres,
        ),
        (
            "backup.redis",
            sc.backup.redis.is_some(),
            ServiceKind::Redis,
        ),
        (
            "backup.clickhouse",
            sc.backup.clickhouse.is_some(),
            ServiceKind::ClickHouse,
        ),
    ] {
        if set && !d.has(kind) {
            return bad(
                key,
                format!("a backup of {kind}, which is not declared"),
                &format!("declare `[services.{kind}]` or remove the backup"),
            );
        }
    }
    match (sc.backup.method, &sc.backup.run) {
        (Some(BackupMethod::Shell), None) => {
            return bad(
                "backup.run",
                "`method = \"shell\"` needs the command to run".into(),
                "add e.g. `run = \"./backup-database.sh\"`",
            );
        }
        (
            Some(BackupMethod::PgDump | BackupMethod::BaseBackup | BackupMethod::Pgbackrest) | None,
            Some(_),
        ) => {
            return bad(
                "backup.run",
                "`run` is only for `method = \"shell\"`".into(),
                "remove `run`, or set `method = \"shell\"`",
            );
        }
        _ => {}
    }
    if sc.backup.method == Some(BackupMethod::PgDump)
        && sc.backup.format != DumpFormat::Plain
        && sc.backup.stderr == StderrMode::Merged
    {
        return bad(
            "backup.stderr",
            "stderr can only be merged into a plain-format dump".into(),
            "use `format = \"plain\"` or `stderr = \"separate\"`",
        );
    }
    if let (Some(BackupMethod::Shell), Some(run)) = (sc.backup.method, &sc.backup.run) {
        command_is_there(sc, "backup", sc.backup.workdir.as_deref(), run)?;
    }
    let physical = sc.backup.method.is_some_and(BackupMethod::archives_wal);
    if physical && sc.backup.wal_archive == Some(false) {
        return bad(
            "backup.wal-archive",
            "a physical backup without its WAL archive cannot be recovered to any point".into(),
            "remove `wal-archive = false`",
        );
    }
    if sc.backup.wal_archive == Some(true)
        && !matches!(sc.backup.method, Some(BackupMethod::Shell) | None)
        && !physical
    {
        return bad(
            "backup.wal-archive",
            "`wal-archive` goes with `method = \"shell\"` (base-backup and pgbackrest keep one anyway)".into(),
            "remove it or set `method = \"shell\"`",
        );
    }
    Ok(())
}

/// Expectations belong to declared services and check something.
fn validate_expect(sc: &Scenario, d: &Declared) -> Result<(), Broken> {
    within("expect.rto", Some(sc.expect.rto), &bounds::RTO)?;
    if let (Some(rpo), Some(w)) = (sc.expect.rpo, &sc.workload) {
        let longest = w.run_for.0
            + w.jitter.map_or(Duration::ZERO, |j| j.0)
            + sc.fault.archive_lag.map_or(Duration::ZERO, |l| l.0)
            + sc.fault.lag.map_or(Duration::ZERO, |l| l.0);
        if rpo.0 >= longest {
            return bad(
                "expect.rpo",
                format!(
                    "an RPO of {} can never be missed: the workload writes for {} in all",
                    humantime::format_duration(rpo.0),
                    humantime::format_duration(longest)
                ),
                "set it below `run-for` (the data-loss window cannot be longer than the writes)",
            );
        }
    }
    let fixture: Vec<String> = match sc.fixture.name {
        FixtureName::Nexwave => drill_fixtures::Dataset::default()
            .tables()
            .iter()
            .map(|t| format!("public.{}", t.table))
            .chain(["public.candles_15m_ohlcv".to_string()])
            .collect(),
        FixtureName::QuantTrading => drill_fixtures::QUANT_TABLES
            .iter()
            .map(|t| t.to_string())
            .collect(),
    };
    for table in sc.expect.table_rows.keys() {
        let key = if table.contains('.') {
            table.clone()
        } else {
            format!("public.{table}")
        };
        if !fixture.contains(&key) {
            return bad(
                &format!("expect.table-rows.{table}"),
                format!("the fixture has no table `{key}`"),
                &format!("its tables: {}", fixture.join(", ")),
            );
        }
    }
    for (i, p) in sc.expect.probes.iter().enumerate() {
        if let Err(why) = bounds::probe_shape(p) {
            return bad(
                &format!("expect.probes[{i}]"),
                why.0,
                "write one query returning a boolean",
            );
        }
    }
    if sc.expect.redis.is_some() && !d.has(ServiceKind::Redis) {
        return bad(
            "expect.redis",
            "expectations for redis, which is not declared".into(),
            "declare `[services.redis]` or remove `[expect.redis]`",
        );
    }
    if sc.expect.clickhouse.is_some() && !d.has(ServiceKind::ClickHouse) {
        return bad(
            "expect.clickhouse",
            "expectations for clickhouse, which is not declared".into(),
            "declare `[services.clickhouse]` or remove `[expect.clickhouse]`",
        );
    }
    if let Some(r) = &sc.expect.redis {
        if r.keys == KeysExpect::LostAsPredicted && sc.fault.action != FaultAction::CorruptAof {
            return bad(
                "expect.redis.keys",
                "`lost-as-predicted` needs a damage to predict from".into(),
                "use it with `action = \"corrupt-aof\"`, or `same-as-before`",
            );
        }
        if !r.matches_postgres.is_empty() && !d.has(ServiceKind::Postgres) {
            return bad(
                "expect.redis.matches-postgres",
                "a cross-check against postgres, which is not declared".into(),
                "declare `[services.postgres]`",
            );
        }
    }
    if d.has(ServiceKind::Postgres)
        && d.kinds.len() == 1
        && sc.expect.rows == RowsExpect::Ignore
        && sc.expect.schema == SchemaExpect::Ignore
        && sc.expect.table_rows.is_empty()
        && sc.expect.probes.is_empty()
        && sc.expect.fk_orphans.is_none()
    {
        return bad(
            "expect",
            "both `rows` and `schema` are \"ignore\": nothing would be checked".into(),
            "check at least one of them",
        );
    }
    if !d.has(ServiceKind::Postgres)
        && (!sc.expect.table_rows.is_empty()
            || !sc.expect.probes.is_empty()
            || sc.expect.fk_orphans.is_some())
    {
        return bad(
            "expect",
            "`table-rows`, `probes` and `fk-orphans` check postgres, which is not declared".into(),
            "remove them, or declare `[services.postgres]`",
        );
    }
    Ok(())
}

/// The workload, the backup schedule and the fixture's size.
fn validate_workload(sc: &Scenario) -> Result<(), Broken> {
    within(
        "fixture.tick-interval",
        Some(sc.fixture.tick_interval),
        &bounds::TICK_INTERVAL,
    )?;
    if sc.fixture.ticks > bounds::MAX_TICKS {
        return bad(
            "fixture.ticks",
            format!(
                "{} ticks is more than a drill's fixture holds (at most {}, about {} GB on disk)",
                sc.fixture.ticks,
                bounds::MAX_TICKS,
                bounds::MAX_TICKS * bounds::BYTES_PER_TICK / 1_000_000_000
            ),
            "a drill is a scaled-down copy: use fewer ticks, and `--predict-rto` for production's size",
        );
    }
    if let Some(w) = &sc.workload {
        within("workload.run-for", Some(w.run_for), &bounds::RUN_FOR)?;
        within("workload.after-fault", w.after_fault, &bounds::RUN_FOR)?;
        if w.jitter.is_some_and(|j| j.0 > w.run_for.0) {
            return bad(
                "workload.jitter",
                "jitter longer than `run-for`".into(),
                "jitter moves the fault within the workload: keep it at most `run-for`",
            );
        }
        if let Some(e) = sc.backup.every {
            within("backup.every", Some(e), &bounds::EVERY)?;
            if e.0 >= w.run_for.0 {
                return bad(
                    "backup.every",
                    "backups every `run-for` or longer: only the first would ever be taken".into(),
                    "schedule them within the workload, e.g. `every = \"2s\"` with `run-for = \"6s\"`",
                );
            }
        }
    }
    if sc.expect.rpo.is_some() && sc.workload.is_none() {
        return bad(
            "expect.rpo",
            "an RPO can only be measured with a workload".into(),
            "add a `[workload]` table, e.g. `rate = 50` and `run-for = \"6s\"`",
        );
    }
    if sc.backup.every.is_some() && sc.workload.is_none() {
        return bad(
            "backup.every",
            "scheduled backups need a workload to run alongside".into(),
            "add a `[workload]` table or remove `every`",
        );
    }
    if let Some(w) = &sc.workload
        && (w.rate == 0 || w.rate > 5_000)
    {
        return bad(
            "workload.rate",
            format!("rate {} is out of range", w.rate),
            "use 1 to 5000 writes per second",
        );
    }
    if sc
        .backup
        .every
        .is_some_and(|e| e.0 < std::time::Duration::from_millis(100))
    {
        return bad(
            "backup.every",
            "backups cannot be scheduled less than 100ms apart".into(),
            "use e.g. `every = \"2s\"`",
        );
    }
    // Workload ticks start at 2026-01-01; fixture ticks (from 2025-11-14)
    // must end well before, or the two would collide.
    let span = sc.fixture.tick_interval.0.as_secs_f64() * (sc.fixture.ticks as f64 / 34.0);
    if sc.workload.is_some() && span > 40.0 * 86_400.0 {
        return bad(
            "fixture.tick-interval",
            format!(
                "the fixture's ticks would span {:.0} days and reach the workload's (from 2026-01-01)",
                span / 86_400.0
            ),
            "use fewer ticks or a shorter `tick-interval`",
        );
    }
    if sc.fixture.ticks == 0 {
        return bad(
            "fixture.ticks",
            "a drill needs at least one tick".into(),
            "set e.g. `ticks = 20000`",
        );
    }
    Ok(())
}

/// At least one recovery, uniquely named, each with steps that fit.
fn validate_recoveries(sc: &Scenario, d: &Declared) -> Result<(), Broken> {
    if sc.recoveries.is_empty() {
        return bad(
            "recovery",
            "no recovery declared".into(),
            "add at least one `[[recovery]]` with `steps`",
        );
    }
    for (i, r) in sc.recoveries.iter().enumerate() {
        if r.name.trim().is_empty() {
            return bad(
                &format!("recovery[{i}].name"),
                "recovery name is empty".into(),
                "name it, e.g. `sanitized`",
            );
        }
        if sc.recoveries[..i].iter().any(|o| o.name == r.name) {
            return bad(
                &format!("recovery[{i}].name"),
                format!("recovery `{}` is declared twice", r.name),
                "give each recovery its own name",
            );
        }
        if r.expect_error.is_some() && r.expect != RecoveryExpect::Fails {
            return bad(
                &format!("recovery[{i}].expect-error"),
                "`expect-error` is for negative controls".into(),
                "add `expect = \"fails\"` or remove `expect-error`",
            );
        }
        if r.steps.is_empty() {
            return bad(
                &format!("recovery[{i}].steps"),
                format!("recovery `{}` has no steps", r.name),
                "add e.g. `steps = [{ step = \"psql-restore\" }]`",
            );
        }
        let linked = r.steps.iter().any(|s| {
            matches!(
                s,
                Step::PgUpgrade {
                    mode: crate::scenario::UpgradeMode::Link,
                    ..
                }
            )
        });
        if linked && i + 1 < sc.recoveries.len() {
            return bad(
                &format!("recovery[{i}]"),
                format!(
                    "recovery `{}` upgrades in link mode, which leaves the old cluster unable to start, and a recovery after it would start from that cluster",
                    r.name
                ),
                "put the link-mode recovery last",
            );
        }
        for (j, step) in r.steps.iter().enumerate() {
            let dumped = r.steps[..j]
                .iter()
                .any(|s| matches!(s, Step::PgDump { .. }));
            validate_step(sc, d, &format!("recovery[{i}].steps[{j}]"), step, dumped)?;
        }
    }
    if !sc
        .recoveries
        .iter()
        .any(|r| r.expect == RecoveryExpect::Recovers)
    {
        return bad(
            "recovery",
            "every recovery is expected to fail, so nothing proves the data comes back".into(),
            "mark the corrected procedure with `expect = \"recovers\"`",
        );
    }
    Ok(())
}

/// One step: it acts on a declared service and has what it restores
/// (`dumped`: a `pg-dump` step came before it in its recovery).
fn validate_step(
    sc: &Scenario,
    d: &Declared,
    key: &str,
    step: &Step,
    dumped: bool,
) -> Result<(), Broken> {
    within(&format!("{key}.timeout"), step.timeout(), &bounds::TIMEOUT)?;
    let version = match step {
        Step::PgDump { version, .. } | Step::NewServer { version, .. } => *version,
        Step::PgUpgrade { version, .. } => Some(*version),
        _ => None,
    };
    if let Some(v) = version {
        major_version(&format!("{key}.version"), v)?;
    }
    if let Step::PsqlRestore { jobs: Some(n), .. } | Step::PgRestore { jobs: Some(n), .. } = step
        && !(1..=64).contains(n)
    {
        return bad(
            &format!("{key}.jobs"),
            format!("{n} connections is no restore drill can run"),
            "give 1 (psql's own order) to 64, e.g. `jobs = 2`",
        );
    }
    match step {
        Step::Sql { run, .. } | Step::Redis { run, .. } if run.trim().is_empty() => {
            return bad(
                &format!("{key}.run"),
                "the command is empty".into(),
                "write the statements (or the redis-cli command) to run",
            );
        }
        Step::LintBackup { paths, .. } => {
            if paths.is_empty() {
                return bad(
                    &format!("{key}.paths"),
                    "no path to lint".into(),
                    "name the backup scripts, crontabs or backup folders, e.g. `paths = [\"../fixtures/scripts\"]`",
                );
            }
            let dir = sc.path.parent().unwrap_or(Path::new("."));
            if let Some(p) = paths.iter().find(|p| !dir.join(p).exists()) {
                return bad(
                    &format!("{key}.paths"),
                    format!(
                        "{} does not exist (relative to the scenario file)",
                        p.display()
                    ),
                    "paths are relative to the scenario file's folder",
                );
            }
        }
        Step::Shell { run, workdir, .. } => {
            if run.trim().is_empty() {
                return bad(
                    &format!("{key}.run"),
                    "the command is empty".into(),
                    "write the command to run",
                );
            }
            command_is_there(sc, key, workdir.as_deref(), run)?;
        }
        _ => {}
    }
    if let Some(k) = step.service()
        && !d.has(k)
    {
        return bad(
            key,
            format!("step `{}` acts on {k}, which is not declared", step.kind()),
            &format!("declared services: {}", d.names().join(", ")),
        );
    }
    let needs = match step {
        Step::PsqlRestore { .. } | Step::PgRestore { .. } => {
            (sc.backup.method.is_none() && !dumped).then_some((
                "postgres",
                "`[backup]` with `method`, or a `pg-dump` step before it",
            ))
        }
        Step::RedisRestoreRdb { .. } => sc
            .backup
            .redis
            .is_none()
            .then_some(("redis", "`[backup.redis]` with `method = \"rdb-copy\"`")),
        Step::ClickhouseRestore => sc
            .backup
            .clickhouse
            .is_none()
            .then_some(("clickhouse", "`[backup.clickhouse]`")),
        Step::Pitr { target, tool, .. } => {
            let method = sc.backup.method;
            let wants_backrest = *tool == Some(PitrTool::Pgbackrest);
            if wants_backrest && method != Some(BackupMethod::Pgbackrest) {
                return bad(
                    &format!("{key}.tool"),
                    "`tool = \"pgbackrest\"` restores pgBackRest's backups, and none are taken"
                        .into(),
                    "set `method = \"pgbackrest\"` under `[backup]`",
                );
            }
            if let RecoveryTarget::RestorePoint(name) = target
                && sc.fault.restore_point.as_deref() != Some(name.as_str())
            {
                return bad(
                    &format!("{key}.target"),
                    format!("no restore point `{name}` is made"),
                    &format!("add `restore-point = \"{name}\"` to `[fault]`"),
                );
            }
            (!method.is_some_and(BackupMethod::archives_wal)).then_some((
                "physical",
                "`method = \"base-backup\"` or `method = \"pgbackrest\"` under `[backup]`",
            ))
        }
        Step::RedisPitr { target, .. } => {
            if !matches!(target, RecoveryTarget::Fault { .. }) {
                return bad(
                    &format!("{key}.target"),
                    format!(
                        "redis-pitr cuts the AOF at a time; `{}` is not one",
                        target.describe()
                    ),
                    "use `before-fault` or `fault - 2s`",
                );
            }
            if !sc
                .services
                .redis
                .as_ref()
                .is_some_and(|r| r.aof_timestamps && r.appendonly)
            {
                return bad(
                    key,
                    "redis-pitr needs an AOF with timestamps".into(),
                    "set `aof-timestamps = true` (and `appendonly = true`) under `[services.redis]`",
                );
            }
            None
        }
        Step::Promote { .. } | Step::Repoint | Step::OldPrimary { .. }
            if sc.services.postgres_replica.is_none() =>
        {
            return bad(
                key,
                format!(
                    "step `{}` needs a replica, and none is declared",
                    step.kind()
                ),
                "declare `[services.postgres-replica]`",
            );
        }
        Step::Pgbackrest { .. } => (sc.backup.method != Some(BackupMethod::Pgbackrest))
            .then_some(("pgBackRest", "`method = \"pgbackrest\"` under `[backup]`")),
        Step::CheckArchive => (!sc.backup.method.is_some_and(BackupMethod::archives_wal)
            && sc.backup.wal_archive != Some(true))
        .then_some((
            "WAL archive",
            "a physical `method` or `wal-archive = true` under `[backup]`",
        )),
        Step::DataShell { run, .. } if run.trim().is_empty() => {
            return bad(
                &format!("{key}.run"),
                "the command is empty".into(),
                "write the shell commands to run over `$DATA`",
            );
        }
        Step::Sql {
            service: Some(ServiceKind::Redis),
            ..
        } => {
            return bad(
                key,
                "`sql` runs on postgres or clickhouse".into(),
                "use `step = \"redis\"` for redis-cli commands",
            );
        }
        _ => None,
    };
    if let Some((what, add)) = needs {
        return bad(
            key,
            format!(
                "step `{}` restores a {what} backup, but none is taken",
                step.kind()
            ),
            &format!("add {add}"),
        );
    }
    Ok(())
}

fn help_for(message: &str, key: &str) -> String {
    if message.starts_with("unknown field") {
        "remove the key or fix its spelling; the keys allowed here are listed above (scenarios/README.md has them all)"
            .into()
    } else if message.starts_with("unknown variant") {
        "use one of the values listed above".into()
    } else if message.starts_with("missing field") {
        "add the key; scenarios/README.md shows an annotated example".into()
    } else if message.starts_with("invalid type") {
        format!("give `{key}` a value of the expected type")
    } else {
        String::new()
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// 1-based line and column of a byte offset (clamped to the text).
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Span of a dotted key path such as `recovery[1].name`, from a second,
/// span-preserving parse. Falls back to the nearest parent that exists.
fn span_of(src: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let root = DeTable::parse(src).ok()?;
    let mut best = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let t = match (table, value) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => break,
        };
        let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        best = Some(k.span());
        let mut cur = v;
        if let Some(i) = index {
            match cur.get_ref() {
                DeValue::Array(a) => match a.get(i) {
                    Some(item) => cur = item,
                    None => break,
                },
                _ => break,
            }
            best = Some(cur.span());
        }
        table = None;
        value = Some(cur.get_ref());
    }
    best
}

#[cfg(test)]
mod tests;
