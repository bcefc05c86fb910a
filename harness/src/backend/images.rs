//! Which container image runs each service. The defaults are the official
//! images users pull, pinned to a version (never `latest`); every one can be
//! overridden by an environment variable (`DRILL_POSTGRES_IMAGE`,
//! `DRILL_REDIS_IMAGE`, `DRILL_CLICKHOUSE_IMAGE`) and per scenario
//! (`image = "..."` under `[services.<name>]`); the scenario wins.
//!
//! On a machine with no registry, `cargo xtask images` builds stand-ins
//! from Debian's packages ([`LOCAL`]) that behave like the official images
//! in everything drill relies on (entrypoint, environment, ports, data
//! path), and the tests select them through the environment variables.

use std::process::Command;

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

    /// The official image a user pulls, pinned.
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

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The stand-in images `cargo xtask images` builds from Debian's packages.
pub const LOCAL: [(ServiceKind, &str); 3] = [
    (ServiceKind::Postgres, "drill-local/postgres:15"),
    (ServiceKind::Redis, "drill-local/redis:7.0"),
    (ServiceKind::ClickHouse, "drill-local/clickhouse:18.16"),
];

/// The local stand-in for a service.
pub fn local_image(kind: ServiceKind) -> &'static str {
    LOCAL
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| *t)
        .expect("every kind has a local image")
}

/// Whether a Docker engine answers (the `docker` CLI reaches a daemon).
pub fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the engine holds `image` already.
pub fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes `image` present, pulling it when missing; the error says why it
/// could not (no registry, unknown tag) and what to do instead.
pub fn ensure_image(kind: ServiceKind, image: &str) -> Result<(), String> {
    if image_present(image) {
        return Ok(());
    }
    let out = Command::new("docker").args(["pull", "-q", image]).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "image {image} is not present and could not be pulled ({}); \
             build local stand-ins with `cargo xtask images` and set {}={}",
            String::from_utf8_lossy(&o.stderr).trim(),
            kind.image_env(),
            local_image(kind)
        )),
        Err(e) => Err(format!("could not run `docker pull {image}`: {e}")),
    }
}
