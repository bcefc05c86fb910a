//! The limits every duration and size in a scenario must keep, each with
//! its reason (documented in `scenarios/README.md`), and the checks of what
//! a scenario names outside itself (folders, scripts, the fixture's tables,
//! probes). A file that breaks one is refused before anything starts; none
//! of these can be found out later by a server.

use std::path::Path;
use std::time::Duration;

use super::duration::HumanDuration;

/// One limit: (key, lowest, highest, why).
pub(crate) struct Limit {
    pub(crate) low: Duration,
    pub(crate) high: Duration,
    pub(crate) why: &'static str,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The RTO: a target of 0 can never be met, one past a week is no
/// objective a drill can run to.
pub(crate) const RTO: Limit = Limit {
    low: secs(1),
    high: secs(7 * 86_400),
    why: "an RTO under 1s can never be met (the checks alone take longer); over 7 days it is no objective a drill can run to",
};

/// How long the workload writes before the fault.
pub(crate) const RUN_FOR: Limit = Limit {
    low: millis(100),
    high: secs(3_600),
    why: "a drill is a scaled-down incident: at most an hour of writes (use `--predict-rto` for production sizes)",
};

/// A step's or a backup command's timeout.
pub(crate) const TIMEOUT: Limit = Limit {
    low: secs(1),
    high: secs(24 * 3_600),
    why: "a timeout under 1s kills every real tool; over a day it never ends a hung step",
};

/// The time between two ticks of one symbol in the fixture.
pub(crate) const TICK_INTERVAL: Limit = Limit {
    low: millis(1),
    high: secs(86_400),
    why: "ticks are at least 1ms apart (the key's resolution) and at most a day",
};

/// The scheduled backups' interval.
pub(crate) const EVERY: Limit = Limit {
    low: millis(100),
    high: secs(3_600),
    why: "backups at least 100ms apart (each is a real pg_dump) and within the workload's hour",
};

/// The fixture's size: a drill's copy of production is scaled down.
pub const MAX_TICKS: u64 = 50_000_000;

/// Bytes a tick costs on disk over a drill: the row and its indexes in
/// PostgreSQL (~180), the dump (~70, gzip ~25), the restored copy again, and
/// Redis's and ClickHouse's copies where declared.
pub const BYTES_PER_TICK: u64 = 600;

impl Limit {
    /// Err (message, help) when `d` is outside.
    pub(crate) fn check(&self, d: HumanDuration) -> Result<(), (String, String)> {
        if d.0 >= self.low && d.0 <= self.high {
            return Ok(());
        }
        Err((
            format!(
                "{} is outside {} to {}",
                humantime::format_duration(d.0),
                humantime::format_duration(self.low),
                humantime::format_duration(self.high)
            ),
            self.why.to_string(),
        ))
    }
}

/// Whether a probe reads as one SQL query: it starts with a query keyword,
/// and its quotes, identifiers and parentheses are balanced. (The server's
/// own parser checks it again before the drill's fixture loads.)
pub(crate) fn probe_shape(sql: &str) -> Result<(), crate::errors::Refusal> {
    let t = sql.trim();
    let first = t
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if !["SELECT", "WITH", "VALUES", "TABLE"].contains(&first.as_str()) {
        return Err(format!(
            "`{}` is not a query: a probe is SQL returning one boolean, e.g. `SELECT count(*) > 0 FROM ticks`",
            t.chars().take(60).collect::<String>()
        ).into());
    }
    let (mut depth, mut quote) = (0i32, None::<char>);
    for c in t.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err("a `)` closes nothing".into());
        }
    }
    match (quote, depth) {
        (Some(q), _) => Err(format!("a {q} is never closed").into()),
        (None, d) if d > 0 => Err(format!("{d} `(` never closed").into()),
        _ => Ok(()),
    }
}

/// The folder a relative `workdir` names, when it is not there.
pub(crate) fn missing_folder(scenario: &Path, dir: &Path) -> Option<String> {
    let base = scenario.parent().unwrap_or(Path::new("."));
    let full = base.join(dir);
    (!full.is_dir()).then(|| full.display().to_string())
}

/// The script a command starts with (`./restore.sh ...`), when it names a
/// file that is not in `workdir`.
pub(crate) fn missing_script(scenario: &Path, workdir: Option<&Path>, run: &str) -> Option<String> {
    let first = run.split_whitespace().next()?;
    let script = first.strip_prefix("./")?;
    let base = scenario.parent().unwrap_or(Path::new("."));
    let full = base.join(workdir.unwrap_or(Path::new("."))).join(script);
    (!full.is_file()).then(|| full.display().to_string())
}
