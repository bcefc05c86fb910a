//! Services imported from a docker-compose file: a scenario says
//! `[services] from-compose = "../deploy/docker-compose.yml"` and drill
//! takes each database service's image, environment (interpolated as
//! Compose does, with the `.env` file beside it), command-line settings and
//! bind-mounted config files (`postgresql.conf`, `redis.conf`, ClickHouse's
//! `config.d`). What drill must own (ports, the data volume, passwords,
//! where data lives) is overridden, and [`Imported`] says what was taken,
//! what was overridden and what the native backend cannot apply. It also
//! keeps the compose names (container, service, volumes) that the `docker`
//! shim ([`shim`]) maps to the drill's own servers, so a runbook's
//! `docker exec wss_postgres psql ...` runs unchanged.
//!
//! Reading a compose file touches nothing but the files it names.

pub(crate) mod interpolate;
pub(crate) mod shim;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::errors::ScenarioError;
use crate::vocab::ServiceKind;
use interpolate::Vars;
use yaml::{At, Node, Value};

/// What a compose file gave the drill.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Imported {
    pub file: PathBuf,
    /// Compose's project name (top-level `name`, else the folder's name):
    /// the prefix of its volumes' names.
    pub project: String,
    pub services: Vec<ImportedService>,
    /// Compose services drill does not drill (the application, a proxy).
    pub not_drilled: Vec<String>,
    /// Variables used with no value and no default (empty, as Compose).
    pub unset_variables: Vec<String>,
}

/// One compose service that became one of the drill's services.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ImportedService {
    pub kind: ServiceKind,
    /// Its name under `services:`.
    pub service: String,
    /// `container_name`, else Compose's `<project>-<service>-1`.
    pub container: String,
    /// The named volumes it mounts, by their Docker names.
    pub volumes: Vec<String>,
    /// The one of them that holds the server's data (mounted at the data
    /// directory or above it): the volume the drill's own stands for.
    pub data_volume: Option<String>,
    /// The image as the compose file names it.
    pub image: String,
    /// What drill took from the compose file, one line each.
    pub taken: Vec<String>,
    /// What drill replaced with its own, and why.
    pub overridden: Vec<String>,
    /// What the native backend cannot apply (container environment).
    pub not_native: Vec<String>,
    #[serde(skip)]
    pub(crate) apply: Apply,
}

/// The values to put into the scenario's service.
#[derive(Debug, Clone, Default)]
pub(crate) struct Apply {
    pub user: Option<String>,
    pub database: Option<String>,
    pub settings: BTreeMap<String, String>,
    pub appendonly: Option<bool>,
    pub appendfsync: Option<String>,
    pub save: Option<String>,
    pub extras: crate::scenario::Extras,
}

/// Which compose service is which drill service, when the scenario says.
pub type Mapping = BTreeMap<String, String>;

/// Reads `file` (and the `.env` beside it) with the variables in `shell`.
pub fn import(
    file: &Path,
    mapping: &Mapping,
    shell: &BTreeMap<String, String>,
) -> Result<Imported, ScenarioError> {
    let src = std::fs::read_to_string(file).map_err(|e| {
        err_at(
            file,
            At::default(),
            "",
            format!("cannot read the compose file: {e}"),
            "`from-compose` is relative to the scenario file's folder",
        )
    })?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let dotenv_path = dir.join(".env");
    let dotenv = match std::fs::read_to_string(&dotenv_path) {
        Ok(text) => interpolate::parse_dotenv(&text, shell).map_err(|e| {
            err_at(
                &dotenv_path,
                At {
                    line: e.line,
                    column: 1,
                },
                "",
                e.message,
                "write KEY=VALUE, one per line, as Compose reads `.env`",
            )
        })?,
        Err(_) => BTreeMap::new(),
    };
    let vars = Vars {
        shell: shell.clone(),
        dotenv,
    };
    let doc = yaml::parse(&src)
        .map_err(|e| err_at(file, e.at, "", e.message, "fix the YAML at this position"))?;
    let mut cx = Cx {
        file,
        dir,
        vars: &vars,
        unset: Vec::new(),
    };
    let project = match doc.get("name") {
        Some(n) => cx.text(n, "name")?,
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "default".into()),
    };
    let project = normalize_project(&project);
    let Some(services) = doc.get("services") else {
        return Err(cx.err(
            doc.at,
            "services",
            "the compose file has no `services:`".into(),
            "name the file that defines your database services",
        ));
    };
    let Value::Map(entries) = &services.value else {
        return Err(cx.err(
            services.at,
            "services",
            format!("`services` is {}, not a mapping", services.kind()),
            "write `services:` with one key per service",
        ));
    };
    let declared_volumes = doc.get("volumes");
    for (want, name) in mapping {
        if !entries.iter().any(|(k, _, _)| k == name) {
            return Err(cx.err(
                services.at,
                &format!("services.{name}"),
                format!(
                    "compose-services maps {want} to `{name}`, which the compose file does not define (it has: {})",
                    entries
                        .iter()
                        .map(|(k, _, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "fix the name in `compose-services`",
            ));
        }
    }
    let mut out = Imported {
        file: file.to_owned(),
        project: project.clone(),
        ..Imported::default()
    };
    for (name, at, svc) in entries {
        let key = format!("services.{name}");
        let image = match svc.get("image") {
            Some(i) => cx.text(i, &format!("{key}.image"))?,
            None if svc.get("build").is_some() => String::new(),
            None => {
                return Err(cx.err(
                    *at,
                    &key,
                    "a service with neither `image` nor `build`".into(),
                    "give it an `image:`",
                ));
            }
        };
        let mapped = mapping
            .iter()
            .find(|(_, v)| *v == name)
            .map(|(k, _)| k.as_str());
        let kind = match mapped {
            Some(k) => Some(ServiceKind::from_name(k).ok_or_else(|| {
                cx.err(
                    *at,
                    &key,
                    format!("compose-services key `{k}` is not a drill service"),
                    "use postgres, redis or clickhouse",
                )
            })?),
            None if !mapping.is_empty() => None,
            None => recognise(&image),
        };
        let Some(kind) = kind else {
            out.not_drilled.push(name.clone());
            continue;
        };
        if let Some(first) = out.services.iter().find(|s| s.kind == kind) {
            return Err(cx.err(
                *at,
                &key,
                format!(
                    "both `{}` and `{name}` look like {kind} services",
                    first.service
                ),
                &format!("say which one to drill: compose-services = {{ {kind} = \"{name}\" }}"),
            ));
        }
        out.services
            .push(cx.service(kind, name, &key, svc, &image, &project, declared_volumes)?);
    }
    if out.services.is_empty() {
        return Err(cx.err(
            services.at,
            "services",
            format!(
                "no PostgreSQL, Redis or ClickHouse service recognised among {}",
                out.not_drilled.join(", ")
            ),
            "drill recognises the engine from the image name; map a service with `compose-services = { postgres = \"db\" }`",
        ));
    }
    cx.unset.sort();
    cx.unset.dedup();
    out.unset_variables = cx.unset;
    Ok(out)
}

/// Puts what `imported` gave into the scenario's services: a service the
/// scenario does not declare is declared with the compose file's values;
/// one it declares keeps its own image and settings where it sets them.
/// An image override in the environment (`DRILL_POSTGRES_IMAGE`) wins over
/// the compose file's image, and the report says so.
pub(crate) fn apply(sc: &mut crate::scenario::Scenario, mut imported: Imported) {
    use crate::scenario::{ClickHouseConfig, PgEngine, PostgresConfig, RedisConfig};
    fn defaults<T: serde::de::DeserializeOwned>() -> T {
        toml::from_str("").expect("every key of a service table has a default")
    }
    for s in &mut imported.services {
        let env_image = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let a = std::mem::take(&mut s.apply);
        let image = (!s.image.is_empty()).then(|| s.image.clone());
        let mut pick_image = |own: &mut Option<String>, var: &str| {
            if own.is_some() {
                s.overridden.push(format!(
                    "image {} (the scenario names {})",
                    s.image,
                    own.as_deref().unwrap_or("")
                ));
            } else if let Some(v) = env_image(var) {
                s.overridden.push(format!(
                    "image {} ({var}={v}: this machine's stand-in)",
                    s.image
                ));
            } else {
                *own = image.clone();
            }
        };
        match s.kind {
            ServiceKind::Postgres => {
                let cfg = sc
                    .services
                    .postgres
                    .get_or_insert_with(defaults::<PostgresConfig>);
                let var = crate::vocab::postgres_image_env(cfg.version);
                pick_image(&mut cfg.image, &var);
                if cfg.engine == PgEngine::Auto {
                    cfg.engine = if s.image.contains("timescale") {
                        PgEngine::Timescaledb
                    } else {
                        PgEngine::Postgres
                    };
                }
                if let Some(u) = a.user {
                    cfg.user = u;
                }
                if let Some(d) = a.database {
                    cfg.database = d;
                }
                for (k, v) in a.settings {
                    cfg.settings.entry(k).or_insert(v);
                }
                cfg.extras = a.extras;
            }
            ServiceKind::Redis => {
                let cfg = sc
                    .services
                    .redis
                    .get_or_insert_with(defaults::<RedisConfig>);
                pick_image(&mut cfg.image, ServiceKind::Redis.image_env());
                if let Some(v) = a.appendonly {
                    cfg.appendonly = v;
                }
                if let Some(v) = a.appendfsync {
                    cfg.appendfsync = v;
                }
                if let Some(v) = a.save {
                    cfg.save = Some(v);
                }
                for (k, v) in a.settings {
                    cfg.settings.entry(k).or_insert(v);
                }
                cfg.extras = a.extras;
            }
            ServiceKind::ClickHouse => {
                let cfg = sc
                    .services
                    .clickhouse
                    .get_or_insert_with(defaults::<ClickHouseConfig>);
                pick_image(&mut cfg.image, ServiceKind::ClickHouse.image_env());
                if let Some(d) = a.database {
                    cfg.database = d;
                }
                cfg.extras = a.extras;
            }
        }
    }
    sc.services.imported = Some(imported);
}

/// The engine an image runs, from its name.
pub fn recognise(image: &str) -> Option<ServiceKind> {
    let repo = image.rsplit('/').next().unwrap_or(image);
    let repo = repo.split([':', '@']).next().unwrap_or(repo).to_lowercase();
    let path = image.to_lowercase();
    // Tools beside an engine, not the engine.
    let tools = [
        "exporter",
        "insight",
        "commander",
        "admin",
        "bouncer",
        "tabix",
        "backup",
    ];
    if tools.iter().any(|t| repo.contains(t)) {
        None
    } else if repo.contains("clickhouse") {
        Some(ServiceKind::ClickHouse)
    } else if repo.contains("redis") || repo.contains("valkey") {
        Some(ServiceKind::Redis)
    } else if repo.contains("postgres") || repo.contains("timescale") || path.contains("postgis") {
        Some(ServiceKind::Postgres)
    } else {
        None
    }
}

/// Compose's rule: lowercase letters, digits, `-` and `_`.
fn normalize_project(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn err_at(file: &Path, at: At, key: &str, message: String, help: &str) -> ScenarioError {
    ScenarioError {
        file: file.to_owned(),
        line: at.line,
        column: at.column,
        key: key.to_string(),
        message,
        help: help.to_string(),
    }
}

struct Cx<'a> {
    file: &'a Path,
    dir: &'a Path,
    vars: &'a Vars,
    unset: Vec<String>,
}

/// PostgreSQL settings drill owns: where it listens and keeps data, and
/// what would run a command on the host or reach another server (an
/// archive_command pushing WAL to production's bucket, a primary_conninfo).
const PG_OWNED: &[&str] = &[
    "port",
    "listen_addresses",
    "data_directory",
    "hba_file",
    "ident_file",
    "unix_socket_directories",
    "external_pid_file",
    "config_file",
    "include",
    "include_dir",
    "include_if_exists",
    "shared_preload_libraries",
    "archive_command",
    "archive_library",
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "primary_conninfo",
    "primary_slot_name",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "log_directory",
    "local_preload_libraries",
    "session_preload_libraries",
    "dynamic_library_path",
];
/// Redis directives drill owns, for the same reasons (`loadmodule` loads
/// a host library natively; `replicaof` reaches another server).
pub(crate) const REDIS_OWNED: &[&str] = &[
    "port",
    "bind",
    "dir",
    "requirepass",
    "masterauth",
    "masteruser",
    "replicaof",
    "slaveof",
    "protected-mode",
    "daemonize",
    "logfile",
    "pidfile",
    "unixsocket",
    "aclfile",
    "include",
    "loadmodule",
    "dbfilename",
    "appenddirname",
    "appendfilename",
    "tls-port",
    "cluster-enabled",
];
/// ClickHouse config elements drill owns: ports, paths, and what reaches
/// other servers or stores (clusters, keeper, S3 disks).
const CLICKHOUSE_OWNED: &[&str] = &[
    "tcp_port",
    "http_port",
    "https_port",
    "tcp_port_secure",
    "mysql_port",
    "postgresql_port",
    "grpc_port",
    "interserver_http_port",
    "listen_host",
    "path",
    "tmp_path",
    "user_files_path",
    "remote_servers",
    "zookeeper",
    "keeper_server",
    "storage_configuration",
    "named_collections",
    "dictionaries_config",
    "user_directories",
];

/// Whether a variable or directive holds a secret: its value is never
/// shown (the report, the step's detail, the job summary).
pub(crate) fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASS", "SECRET", "TOKEN", "KEY", "AUTH", "CREDENTIAL"]
        .iter()
        .any(|w| n.contains(w))
}

/// `value`, or `…` when `name` holds a secret.
fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret(name) { "…" } else { value }
}

/// Whether XML text sets element `tag` (`<tag>`, `<tag attr=...>`, `<tag/>`).
fn sets_element(xml: &str, tag: &str) -> bool {
    xml.match_indices(&format!("<{tag}")).any(|(i, m)| {
        matches!(
            xml[i + m.len()..].chars().next(),
            Some('>' | ' ' | '/' | '\t' | '\n' | '\r')
        )
    })
}

impl Cx<'_> {
    fn err(&self, at: At, key: &str, message: String, help: &str) -> ScenarioError {
        err_at(self.file, at, key, message, help)
    }

    /// A single value, interpolated.
    fn text(&mut self, n: &Node, key: &str) -> Result<String, ScenarioError> {
        match &n.value {
            Value::Text(s) => interpolate::interpolate(s, self.vars, &mut self.unset)
                .map_err(|e| self.err(n.at, key, e.0, "fix the variable or set it (the shell's environment, or `.env` beside the compose file)")),
            Value::Null => Ok(String::new()),
            _ => Err(self.err(
                n.at,
                key,
                format!("{} where a single value belongs", n.kind()),
                "write a single value",
            )),
        }
    }

    /// `environment:` as a mapping or a `KEY=VALUE` list, after `env_file`.
    fn environment(
        &mut self,
        svc: &Node,
        key: &str,
    ) -> Result<Vec<(String, String)>, ScenarioError> {
        let mut env: Vec<(String, String)> = Vec::new();
        let put = |env: &mut Vec<(String, String)>, k: String, v: String| {
            env.retain(|(e, _)| *e != k);
            env.push((k, v));
        };
        if let Some(files) = svc.get("env_file") {
            let list = match &files.value {
                Value::List(l) => l.clone(),
                _ => vec![files.clone()],
            };
            for f in list {
                let path_node = f.get("path").unwrap_or(&f).clone();
                let rel = self.text(&path_node, &format!("{key}.env_file"))?;
                let path = self.dir.join(&rel);
                // `{ path: x, required: false }`: a missing file is skipped.
                let optional = f.get("required").and_then(Node::as_text) == Some("false");
                if optional && !path.exists() {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    self.err(
                        f.at,
                        &format!("{key}.env_file"),
                        format!("cannot read {}: {e}", path.display()),
                        "env_file paths are relative to the compose file",
                    )
                })?;
                let vars = interpolate::parse_dotenv(&text, &self.vars.shell).map_err(|e| {
                    err_at(
                        &path,
                        At {
                            line: e.line,
                            column: 1,
                        },
                        "",
                        e.message,
                        "write KEY=VALUE, one per line",
                    )
                })?;
                for (k, v) in vars {
                    put(&mut env, k, v);
                }
            }
        }
        let Some(e) = svc.get("environment") else {
            return Ok(env);
        };
        let ekey = format!("{key}.environment");
        match &e.value {
            Value::Map(m) => {
                for (k, _, v) in m {
                    let value = match &v.value {
                        // `KEY:` with no value: taken from the shell.
                        Value::Null => self.vars.get(k).unwrap_or_default().to_string(),
                        _ => self.text(v, &format!("{ekey}.{k}"))?,
                    };
                    put(&mut env, k.clone(), value);
                }
            }
            Value::List(l) => {
                for item in l {
                    let line = self.text(item, &ekey)?;
                    match line.split_once('=') {
                        Some((k, v)) => put(&mut env, k.to_string(), v.to_string()),
                        None => {
                            let v = self.vars.get(&line).unwrap_or_default().to_string();
                            put(&mut env, line, v)
                        }
                    }
                }
            }
            _ => {
                return Err(self.err(
                    e.at,
                    &ekey,
                    format!("`environment` is {}", e.kind()),
                    "write a mapping (KEY: value) or a list of KEY=value",
                ));
            }
        }
        Ok(env)
    }

    /// `command:` as a list or a string split as a shell would split words.
    fn command(&mut self, svc: &Node, key: &str) -> Result<Vec<String>, ScenarioError> {
        let Some(c) = svc.get("command") else {
            return Ok(Vec::new());
        };
        let ckey = format!("{key}.command");
        match &c.value {
            Value::List(l) => l.iter().map(|i| self.text(i, &ckey)).collect(),
            Value::Text(_) => {
                let line = self.text(c, &ckey)?;
                split_words(&line).ok_or_else(|| {
                    self.err(
                        c.at,
                        &ckey,
                        format!("unbalanced quotes in `{line}`"),
                        "close the quote",
                    )
                })
            }
            Value::Null => Ok(Vec::new()),
            Value::Map(_) => Err(self.err(
                c.at,
                &ckey,
                "`command` is a mapping".into(),
                "write a string or a list",
            )),
        }
    }

    /// (source, target) of each mount; named volumes by their Docker name.
    fn mounts(
        &mut self,
        svc: &Node,
        key: &str,
        project: &str,
        declared: Option<&Node>,
    ) -> Result<Vec<Mount>, ScenarioError> {
        let Some(v) = svc.get("volumes") else {
            return Ok(Vec::new());
        };
        let vkey = format!("{key}.volumes");
        let Value::List(items) = &v.value else {
            return Err(self.err(
                v.at,
                &vkey,
                format!("`volumes` is {}", v.kind()),
                "write a list",
            ));
        };
        let mut out = Vec::new();
        for item in items {
            let (source, target) = match &item.value {
                Value::Map(_) => {
                    let s = item
                        .get("source")
                        .map(|s| self.text(s, &vkey))
                        .transpose()?;
                    let t = item
                        .get("target")
                        .map(|t| self.text(t, &vkey))
                        .transpose()?;
                    (s.unwrap_or_default(), t.unwrap_or_default())
                }
                _ => {
                    let spec = self.text(item, &vkey)?;
                    let mut parts = spec.splitn(3, ':');
                    let a = parts.next().unwrap_or("").to_string();
                    match parts.next() {
                        Some(b) => (a, b.to_string()),
                        None => (String::new(), a),
                    }
                }
            };
            let mount = if source.is_empty() {
                Mount::Anonymous { target }
            } else if source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
            {
                let host = match source.strip_prefix("~/") {
                    Some(rest) => std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_default()
                        .join(rest),
                    None => self.dir.join(&source),
                };
                Mount::Bind {
                    host,
                    source,
                    target,
                    at: item.at,
                }
            } else {
                let name = declared
                    .and_then(|d| d.get(&source))
                    .and_then(|d| {
                        let external = d.get("external").and_then(Node::as_text) == Some("true");
                        match d.get("name").and_then(Node::as_text) {
                            Some(n) => Some(n.to_string()),
                            None if external => Some(source.clone()),
                            None => None,
                        }
                    })
                    .unwrap_or_else(|| format!("{project}_{source}"));
                Mount::Named { name, target }
            };
            out.push(mount);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn service(
        &mut self,
        kind: ServiceKind,
        name: &str,
        key: &str,
        svc: &Node,
        image: &str,
        project: &str,
        declared_volumes: Option<&Node>,
    ) -> Result<ImportedService, ScenarioError> {
        let container = match svc.get("container_name") {
            Some(c) => self.text(c, &format!("{key}.container_name"))?,
            None => format!("{project}-{name}-1"),
        };
        let env = self.environment(svc, key)?;
        let command = self.command(svc, key)?;
        let mounts = self.mounts(svc, key, project, declared_volumes)?;
        // Where the engine's image keeps its data.
        let data_dir = match kind {
            ServiceKind::Postgres => env
                .iter()
                .find(|(k, _)| k == "PGDATA")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "/var/lib/postgresql/data".into()),
            ServiceKind::Redis => "/data".into(),
            ServiceKind::ClickHouse => "/var/lib/clickhouse".into(),
        };
        let data_volume = mounts.iter().find_map(|m| match m {
            Mount::Named { name, target }
                if std::path::Path::new(&data_dir).starts_with(target.trim_end_matches('/')) =>
            {
                Some(name.clone())
            }
            _ => None,
        });
        let mut s = ImportedService {
            kind,
            service: name.to_string(),
            data_volume,
            container,
            volumes: mounts
                .iter()
                .filter_map(|m| match m {
                    Mount::Named { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            image: image.to_string(),
            taken: Vec::new(),
            overridden: Vec::new(),
            not_native: Vec::new(),
            apply: Apply::default(),
        };
        if image.is_empty() {
            s.overridden
                .push("`build:` (drill runs the engine's image, not your build)".into());
        } else {
            s.taken.push(format!("image {image}"));
        }
        if svc.get("ports").is_some() {
            s.overridden
                .push("ports (drill publishes its own, on 127.0.0.1 only)".into());
        }
        for m in &mounts {
            if let Mount::Named { name, target } = m {
                s.overridden.push(format!(
                    "volume {name} at {target} (drill's own labelled volume, removed after the drill)"
                ));
            }
        }
        match kind {
            ServiceKind::Postgres => self.postgres(&mut s, &env, &command, &mounts, key)?,
            ServiceKind::Redis => self.redis(&mut s, &env, &command, &mounts, key)?,
            ServiceKind::ClickHouse => self.clickhouse(&mut s, &env, &mounts, key)?,
        }
        for k in [
            "healthcheck",
            "restart",
            "depends_on",
            "networks",
            "deploy",
            "ulimits",
        ] {
            if svc.get(k).is_some() {
                s.overridden
                    .push(format!("{k} (drill supervises the server itself)"));
            }
        }
        Ok(s)
    }

    fn postgres(
        &mut self,
        s: &mut ImportedService,
        env: &[(String, String)],
        command: &[String],
        mounts: &[Mount],
        key: &str,
    ) -> Result<(), ScenarioError> {
        let get = |k: &str| env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone());
        let user = get("POSTGRES_USER");
        if let Some(u) = &user {
            s.taken.push(format!("POSTGRES_USER={u}"));
        }
        // The official image: POSTGRES_DB defaults to the user's name.
        let database = get("POSTGRES_DB").or(user.clone());
        if let Some(d) = &get("POSTGRES_DB") {
            s.taken.push(format!("POSTGRES_DB={d}"));
        }
        s.apply.user = user;
        s.apply.database = database;
        for (k, v) in env {
            match k.as_str() {
                "POSTGRES_USER" | "POSTGRES_DB" => {}
                "POSTGRES_PASSWORD" | "POSTGRES_PASSWORD_FILE" => s
                    .overridden
                    .push(format!("{k} (drill generates a password per server)")),
                "PGDATA" => s.overridden.push("PGDATA (drill's data volume)".into()),
                "POSTGRES_HOST_AUTH_METHOD" => s
                    .overridden
                    .push(format!("{k} (drill's servers always ask for the password)")),
                _ => {
                    s.taken.push(format!("environment {k}={v}"));
                    s.not_native
                        .push(format!("environment {k} (a container's)"));
                    s.apply.extras.env.push((k.clone(), v.clone()));
                }
            }
        }
        let mut args = command.iter().peekable();
        if args.peek().is_some_and(|a| !a.starts_with('-')) {
            args.next(); // `postgres`
        }
        let mut pairs = Vec::new();
        while let Some(a) = args.next() {
            let kv = if a == "-c" {
                args.next().cloned()
            } else if let Some(kv) = a.strip_prefix("-c") {
                Some(kv.to_string())
            } else {
                a.strip_prefix("--").map(str::to_string)
            };
            match kv.as_deref().and_then(|kv| kv.split_once('=')) {
                Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string(), "command")),
                None => s.overridden.push(format!("command argument `{a}` (drill starts postgres itself; only -c settings are taken)")),
            }
        }
        // A config file named by config_file and bind-mounted: its settings.
        if let Some((_, path, _)) = pairs.iter().find(|(k, _, _)| k == "config_file") {
            let path = path.clone();
            match mounts.iter().find(|m| m.target() == path) {
                Some(Mount::Bind {
                    host, source, at, ..
                }) => {
                    let text = self.read(host, *at, key)?;
                    let conf = parse_pg_conf(&text);
                    s.taken
                        .push(format!("{} settings from {source}", conf.len()));
                    let from_file: Vec<_> = conf
                        .into_iter()
                        .map(|(k, v)| (k, v, "config file"))
                        .collect();
                    // The command line wins over the file, as in postgres.
                    pairs.splice(0..0, from_file);
                }
                _ => s.overridden.push(format!(
                    "config_file={path} (not a bind-mounted file drill can read)"
                )),
            }
        }
        for (k, v, from) in pairs {
            if PG_OWNED.contains(&k.as_str()) {
                if k != "config_file" {
                    s.overridden
                        .push(format!("{k}={v} from the {from} (drill's)"));
                }
                continue;
            }
            s.apply.settings.insert(k, v);
        }
        if !s.apply.settings.is_empty() {
            s.taken.push(format!(
                "settings {}",
                s.apply
                    .settings
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        for m in mounts {
            if let Mount::Bind { source, target, .. } = m {
                if target.starts_with("/docker-entrypoint-initdb.d") {
                    s.overridden.push(format!(
                        "{source} → {target} (init scripts: drill loads its own fixture)"
                    ));
                } else if !command.iter().any(|a| a.ends_with(target.as_str())) {
                    s.overridden.push(format!(
                        "bind mount {source} → {target} (not a config file drill reads)"
                    ));
                }
            }
        }
        Ok(())
    }

    fn redis(
        &mut self,
        s: &mut ImportedService,
        env: &[(String, String)],
        command: &[String],
        mounts: &[Mount],
        key: &str,
    ) -> Result<(), ScenarioError> {
        for (k, v) in env {
            s.taken.push(format!("environment {k}={}", shown(k, v)));
            s.not_native
                .push(format!("environment {k} (a container's)"));
            s.apply.extras.env.push((k.clone(), v.clone()));
        }
        let mut args = command.iter().peekable();
        if args
            .peek()
            .is_some_and(|a| a.starts_with("redis-server") || a.ends_with("redis-server"))
        {
            args.next();
        }
        let mut directives: Vec<(String, String, String)> = Vec::new();
        let mut current: Option<(String, Vec<String>)> = None;
        for a in args {
            if let Some(name) = a.strip_prefix("--") {
                if let Some((k, v)) = current.take() {
                    directives.push((k, v.join(" "), "command".into()));
                }
                current = Some((name.to_string(), Vec::new()));
            } else if let Some((_, v)) = &mut current {
                v.push(a.clone());
            } else {
                // A config file, mounted from the host.
                match mounts.iter().find(|m| m.target() == *a) {
                    Some(Mount::Bind {
                        host, source, at, ..
                    }) => {
                        let text = self.read(host, *at, key)?;
                        let conf = parse_redis_conf(&text);
                        s.taken
                            .push(format!("{} directives from {source}", conf.len()));
                        directives.extend(conf.into_iter().map(|(k, v)| (k, v, source.clone())));
                    }
                    _ => s.overridden.push(format!(
                        "command argument `{a}` (not a bind-mounted config file drill can read)"
                    )),
                }
            }
        }
        if let Some((k, v)) = current.take() {
            directives.push((k, v.join(" "), "command".into()));
        }
        for (k, v, from) in directives {
            let k = k.to_lowercase();
            if REDIS_OWNED.contains(&k.as_str()) {
                s.overridden.push(format!(
                    "{k} {} from {from} (drill's; the drill's password is in $REDIS_PASSWORD)",
                    shown(&k, &v)
                ));
                continue;
            }
            s.taken.push(format!("{k} {} from {from}", shown(&k, &v)));
            match k.as_str() {
                "appendonly" => s.apply.appendonly = Some(v.eq_ignore_ascii_case("yes")),
                "appendfsync" => s.apply.appendfsync = Some(v),
                "save" => s.apply.save = Some(v.trim_matches('"').to_string()),
                _ => {
                    s.apply.settings.insert(k, v);
                }
            }
        }
        for m in mounts {
            if let Mount::Bind { source, target, .. } = m
                && !command.iter().any(|a| a == target)
            {
                s.overridden.push(format!(
                    "bind mount {source} → {target} (not a config file drill reads)"
                ));
            }
        }
        Ok(())
    }

    fn clickhouse(
        &mut self,
        s: &mut ImportedService,
        env: &[(String, String)],
        mounts: &[Mount],
        key: &str,
    ) -> Result<(), ScenarioError> {
        for (k, v) in env {
            match k.as_str() {
                "CLICKHOUSE_DB" => {
                    s.taken.push(format!("CLICKHOUSE_DB={v}"));
                    s.apply.database = Some(v.clone());
                }
                "CLICKHOUSE_USER" | "CLICKHOUSE_PASSWORD" => s.overridden.push(format!(
                    "{k} (drill's server has its own user and password)"
                )),
                _ => {
                    s.taken.push(format!("environment {k}={v}"));
                    s.not_native
                        .push(format!("environment {k} (a container's)"));
                    s.apply.extras.env.push((k.clone(), v.clone()));
                }
            }
        }
        for m in mounts {
            let Mount::Bind {
                host,
                source,
                target,
                at,
            } = m
            else {
                continue;
            };
            let folder = ["config.d", "users.d"]
                .into_iter()
                .find(|f| target.starts_with(&format!("/etc/clickhouse-server/{f}/")));
            let Some(folder) = folder else {
                s.overridden.push(format!(
                    "bind mount {source} → {target} (not a config.d or users.d file)"
                ));
                continue;
            };
            let text = self.read(host, *at, key)?;
            if let Some(owned) = CLICKHOUSE_OWNED.iter().find(|tag| sets_element(&text, tag)) {
                s.overridden.push(format!(
                    "{source} (sets {owned}: drill owns ports, paths and what reaches other servers; not applied)"
                ));
                continue;
            }
            let file = target.rsplit('/').next().unwrap_or("compose.xml");
            s.taken.push(format!("{source} → {folder}/{file}"));
            s.apply.extras.files.push(crate::scenario::ConfigFile {
                folder: folder.to_string(),
                name: file.to_string(),
                content: text,
            });
        }
        Ok(())
    }

    fn read(&self, host: &Path, at: At, key: &str) -> Result<String, ScenarioError> {
        std::fs::read_to_string(host).map_err(|e| {
            self.err(
                at,
                &format!("{key}.volumes"),
                format!("cannot read {}: {e}", host.display()),
                "a bind-mounted config file is read relative to the compose file",
            )
        })
    }
}

/// One `volumes:` entry.
#[derive(Debug, Clone)]
enum Mount {
    Bind {
        host: PathBuf,
        source: String,
        target: String,
        at: At,
    },
    Named {
        name: String,
        target: String,
    },
    Anonymous {
        target: String,
    },
}

impl Mount {
    fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Named { target, .. }
            | Mount::Anonymous { target } => target,
        }
    }
}

/// `postgresql.conf`: `key = value` (or `key value`), `#` comments, values
/// in single quotes.
pub(crate) fn parse_pg_conf(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, rest) = match line.split_once('=') {
            Some((k, r)) => (k.trim(), r.trim()),
            None => match line.split_once(char::is_whitespace) {
                Some((k, r)) => (k.trim(), r.trim()),
                None => continue,
            },
        };
        let v = if let Some(q) = rest.strip_prefix('\'') {
            q.split('\'').next().unwrap_or("").to_string()
        } else {
            rest.split('#').next().unwrap_or("").trim().to_string()
        };
        out.push((k.to_string(), v));
    }
    out
}

/// `redis.conf`: `directive value...`, `#` comments.
pub(crate) fn parse_redis_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Words as a shell splits them: whitespace, with '…' and "…" quoting.
fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests;
