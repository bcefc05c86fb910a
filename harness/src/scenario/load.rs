//! Loading: TOML text to a validated [`Scenario`], or a [`ScenarioError`]
//! that names the file, line, column and key, says what is allowed, and
//! suggests a fix. Parsing happens in three passes: TOML syntax, typed
//! deserialisation (unknown keys, wrong types, unknown names), then the
//! cross-field rules serde cannot express.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use super::model::*;

/// A scenario file that cannot be run, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `recovery[1].steps[0].step`.
    pub key: String,
    pub message: String,
    pub help: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        Ok(())
    }
}

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
    paths.iter().map(|p| load_file(p)).collect()
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
    if sc.name.is_empty() {
        sc.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    validate(&sc).map_err(|(key, message, help)| err(span_of(src, &key), key, message, help))?;
    Ok(sc)
}

/// Cross-field rules; returns (key, message, help).
fn validate(sc: &Scenario) -> Result<(), (String, String, String)> {
    let bad =
        |key: &str, message: String, help: &str| Err((key.to_string(), message, help.to_string()));
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
    let Some(pg) = &sc.services.postgres else {
        return bad(
            "services",
            "no service declared".into(),
            "add a `[services.postgres]` table",
        );
    };
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
    if sc.expect.rows == RowsExpect::Ignore
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
    match sc.fault.action {
        FaultAction::Sql if sc.fault.sql.is_none() => {
            return bad(
                "fault.sql",
                "`action = \"sql\"` needs the statements".into(),
                "add `sql = \"...\"`",
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
    if sc.fault.service != "postgres" {
        return bad(
            "fault.service",
            format!("fault acts on unknown service `{}`", sc.fault.service),
            "declared services: postgres",
        );
    }
    match (sc.backup.method, &sc.backup.run) {
        (BackupMethod::Shell, None) => {
            return bad(
                "backup.run",
                "`method = \"shell\"` needs the command to run".into(),
                "add e.g. `run = \"./backup-database.sh\"`",
            );
        }
        (BackupMethod::PgDump, Some(_)) => {
            return bad(
                "backup.run",
                "`run` is only for `method = \"shell\"`".into(),
                "remove `run`, or set `method = \"shell\"`",
            );
        }
        _ => {}
    }
    if sc.backup.method == BackupMethod::PgDump
        && sc.backup.format != DumpFormat::Plain
        && sc.backup.stderr == StderrMode::Merged
    {
        return bad(
            "backup.stderr",
            "stderr can only be merged into a plain-format dump".into(),
            "use `format = \"plain\"` or `stderr = \"separate\"`",
        );
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
