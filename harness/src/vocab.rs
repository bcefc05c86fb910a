//! Shared vocabulary: the words every layer uses and that belong to none of
//! them. Which services and backends exist ([`ServiceKind`],
//! [`BackendKind`]), the facts a report gives about a server
//! ([`ServerInfo`]), and how durations are written for people
//! ([`fmt_duration`]) and machines ([`millis`]).
//!
//! **Architecture Invariant:** this module imports nothing from the rest of
//! the crate, so scenarios, checks, reports, services and backends may all
//! import it without importing each other.

use std::time::Duration;

/// The services drill can run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Postgres,
    Redis,
    ClickHouse,
}

impl ServiceKind {
    /// Every kind, in the runbook's recovery order (seed 003).
    pub const ALL: [ServiceKind; 3] = [
        ServiceKind::Postgres,
        ServiceKind::Redis,
        ServiceKind::ClickHouse,
    ];

    /// The name used in scenario files, labels and reports.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Postgres => "postgres",
            ServiceKind::Redis => "redis",
            ServiceKind::ClickHouse => "clickhouse",
        }
    }

    /// The kind a scenario file or a label names.
    pub fn from_name(name: &str) -> Option<ServiceKind> {
        ServiceKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The official image a user pulls, pinned (never `latest`).
    pub fn default_image(self) -> &'static str {
        match self {
            ServiceKind::Postgres => "timescale/timescaledb:2.17.2-pg16",
            ServiceKind::Redis => "redis:7.4.1",
            ServiceKind::ClickHouse => "clickhouse/clickhouse-server:24.8.14.39",
        }
    }

    /// The environment variable that overrides the default image.
    pub fn image_env(self) -> &'static str {
        match self {
            ServiceKind::Postgres => "DRILL_POSTGRES_IMAGE",
            ServiceKind::Redis => "DRILL_REDIS_IMAGE",
            ServiceKind::ClickHouse => "DRILL_CLICKHOUSE_IMAGE",
        }
    }

    /// The image to run: the scenario's choice, else the environment's,
    /// else the official default.
    pub fn image(self, scenario: Option<&str>) -> String {
        scenario
            .map(str::to_string)
            .or_else(|| {
                std::env::var(self.image_env())
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| self.default_image().to_string())
    }
}

/// The official TimescaleDB release the per-version default images name.
pub(crate) const TIMESCALEDB_RELEASE: &str = "2.28.3";

/// The variable that overrides the PostgreSQL image of major version
/// `major` (`DRILL_POSTGRES18_IMAGE`); without a version, `DRILL_POSTGRES_IMAGE`.
pub fn postgres_image_env(major: Option<u32>) -> String {
    match major {
        Some(m) => format!("DRILL_POSTGRES{m}_IMAGE"),
        None => ServiceKind::Postgres.image_env().to_string(),
    }
}

/// The PostgreSQL image to run: the scenario's choice, else the
/// environment's for that version, else the official TimescaleDB image
/// for that version (without a version, as [`ServiceKind::image`]).
pub fn postgres_image(scenario: Option<&str>, major: Option<u32>) -> String {
    let Some(m) = major else {
        return ServiceKind::Postgres.image(scenario);
    };
    scenario
        .map(str::to_string)
        .or_else(|| {
            std::env::var(postgres_image_env(major))
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| format!("timescale/timescaledb:{TIMESCALEDB_RELEASE}-pg{m}"))
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where servers run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Local processes from the machine's own binaries.
    #[default]
    Native,
    /// Containers on a Docker engine (testcontainers), data on named volumes.
    Docker,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Native => "native",
            BackendKind::Docker => "docker",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Facts about a started server, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerInfo {
    /// Which service it is.
    pub service: ServiceKind,
    /// `native` or `docker`.
    pub backend: BackendKind,
    /// Where the server came from: a binaries folder or an image.
    pub source: String,
    /// The version as the server reports it.
    pub version: String,
    /// Installed timescaledb version, when the server has the extension.
    pub timescaledb: Option<String>,
    /// What ran, for people and machines: `timescaledb 2.28.3 on pg 15.20`,
    /// `postgres 15.20`, `redis 7.0.15`, `clickhouse 18.16.1`.
    pub flavour: String,
}

impl ServerInfo {
    /// One line for people:
    /// `timescaledb 2.28.3 on pg 15.20 (docker: drill-local/timescaledb:2.28.3-pg15)`.
    pub fn line(&self) -> String {
        format!("{} ({}: {})", self.flavour, self.backend, self.source)
    }
}

/// What a server's container may use (`docker run --cpus --memory`): a
/// drill sized like production, and parallel drills that do not starve
/// each other. Natively not applied (the report says so).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// CPUs, fractional (`1.5`).
    pub cpus: Option<f64>,
    /// Memory in bytes (swap not allowed beyond it).
    pub memory: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.memory.is_none()
    }
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = self.cpus {
            parts.push(format!("cpus {c}"));
        }
        if let Some(m) = self.memory {
            parts.push(format!("memory {}", fmt_bytes(m)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// `1.5 GiB`, `200.0 GiB`, `12.3 MiB`, `512 B`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A size that cannot be read, and what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSize(pub String);

impl std::fmt::Display for BadSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadSize {}

/// Reads a size: `200GiB`, `1.5 TiB`, `500MB`, `123` (bytes). Binary
/// (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) units.
pub fn parse_size(s: &str) -> Result<u64, BadSize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let help = || {
        BadSize(format!(
            "`{s}`: write a size such as 200GiB, 1.5TiB or 500MB"
        ))
    };
    let v: f64 = num.parse().map_err(|_| help())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024f64.powi(2),
        "gib" | "g" => 1024f64.powi(3),
        "tib" | "t" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(help()),
    };
    let bytes = v * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(help());
    }
    Ok(bytes as u64)
}

/// `1.234s`, `2m 03.456s`: milliseconds, always.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 60_000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else {
        format!(
            "{}m {:02}.{:03}s",
            ms / 60_000,
            ms % 60_000 / 1000,
            ms % 1000
        )
    }
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Serde helpers: durations as integer milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }

    /// For `Option<Duration>`.
    pub(crate) mod opt {
        use std::time::Duration;

        pub(crate) fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&(d.as_millis() as u64)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            <Option<u64> as serde::Deserialize>::deserialize(d)
                .map(|o| o.map(Duration::from_millis))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_to_the_millisecond() {
        assert_eq!(fmt_duration(Duration::from_millis(123_456)), "2m 03.456s");
        assert_eq!(fmt_duration(Duration::from_millis(1_455)), "1.455s");
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in ServiceKind::ALL {
            assert_eq!(ServiceKind::from_name(k.name()), Some(k));
        }
        assert_eq!(ServiceKind::from_name("mysql"), None);
    }
}
