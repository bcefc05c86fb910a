//! A disposable ClickHouse server with the analytics tables of seed 003
//! (ticks in a MergeTree partitioned by day, and a daily summary), on either
//! backend; its fixture, and a snapshot that reads the data for real
//! ([`Snapshot`]).
//!
//! Natively it is the local `clickhouse-server` with a config drill writes
//! (its own data path, loopback ports, a user with a generated password). In
//! a container it is the image's own entrypoint and config, data on a named
//! volume, the user made from `CLICKHOUSE_USER` / `CLICKHOUSE_PASSWORD` as
//! the official image does. The harness speaks HTTP through the `clickhouse`
//! crate with its validation off: ClickHouse 18.16 (Debian's) knows neither
//! `RowBinaryWithNamesAndTypes` nor server-side parameters, so queries are
//! plain SQL read back as TabSeparated.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::backend::{
    BackendKind, ContainerSpec, NativeSpec, Readiness, ServerSpec, ServiceKind, wait_ready,
};
use crate::service::{Disposable, Engine, Lifecycle, one_line};
use crate::{Error, Result};

/// The HTTP port inside the image.
pub const HTTP_PORT: u16 = 8123;
/// The native-protocol port inside the image (clickhouse-client).
pub const NATIVE_PORT: u16 = 9000;
const DATA: &str = "/var/lib/clickhouse";
const USER: &str = "drill";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClickHouseSpec {
    pub run_id: String,
    /// The image (docker backend).
    pub image: String,
    /// The analytics database.
    pub database: String,
    /// Host folders the server must see at the same path: the run's work
    /// dir, where native BACKUP writes (see [`ServerSpec::shared`]).
    pub shared: Vec<PathBuf>,
    /// A compose file's environment and `config.d` / `users.d` files.
    pub extras: crate::scenario::Extras,
}

impl ClickHouseSpec {
    pub fn new(run_id: &str) -> ClickHouseSpec {
        ClickHouseSpec {
            run_id: run_id.into(),
            image: ServiceKind::ClickHouse.image(None),
            database: "analytics".into(),
            shared: Vec::new(),
            extras: Default::default(),
        }
    }

    /// Where native `BACKUP ... TO Disk('drill_backups', ...)` writes: a
    /// folder in the first shared dir, outside the data volume, so a wipe
    /// does not take the backups with it.
    pub(crate) fn backups_dir(&self) -> Option<PathBuf> {
        self.shared.first().map(|d| d.join("clickhouse-backups"))
    }
}

/// What ClickHouse adds to a backend's server: its spec.
#[derive(Debug)]
pub struct ChEngine {
    spec: ClickHouseSpec,
}

/// A running disposable ClickHouse server, whatever the backend.
pub type ClickHouse = Disposable<ChEngine>;

impl Engine for ChEngine {
    fn spec(&self, backend: BackendKind, password: &str) -> Result<ServerSpec> {
        server_spec(backend, &self.spec, password)
    }

    fn after_start(ch: &mut ClickHouse) -> Result<()> {
        ch.wait()
    }

    /// `clickhouse-client` of the server's version for a user's script,
    /// aimed at this server as the drill's user.
    fn shims(ch: &ClickHouse) -> Vec<(String, String)> {
        let mut args: Vec<String> = vec![
            "--user".into(),
            USER.into(),
            "--password".into(),
            ch.password.clone(),
        ];
        if ch.info.backend == BackendKind::Native {
            let (h, p) = ch.server.addr(NATIVE_PORT);
            args.extend(["--host".into(), h, "--port".into(), p.to_string()]);
        }
        vec![(
            "clickhouse-client".into(),
            ch.server.tool_shim("clickhouse-client", &[], &[], &args),
        )]
    }

    fn connection_help(ch: &ClickHouse) -> String {
        let (h, p) = ch.server.addr(HTTP_PORT);
        format!(
            "curl 'http://{USER}:{}@{h}:{p}/?query=SELECT+1'   ({})",
            ch.password,
            ch.server.describe()
        )
    }
}

impl ClickHouse {
    /// Starts a server on `backend` and waits until it answers a query.
    pub fn start(backend: BackendKind, spec: &ClickHouseSpec) -> Result<ClickHouse> {
        if let Some(dir) = spec.backups_dir() {
            // Written by the server's own user inside a container.
            std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(Error::io("chmod", &dir))?;
        }
        let engine = ChEngine { spec: spec.clone() };
        Disposable::launch(backend, ServiceKind::ClickHouse, engine)
    }

    pub fn spec(&self) -> &ClickHouseSpec {
        &self.engine.spec
    }

    /// `http://127.0.0.1:port`, as the harness reaches it.
    pub(crate) fn http_url(&self) -> String {
        let (h, p) = self.server.addr(HTTP_PORT);
        format!("http://{h}:{p}")
    }

    /// The variables scripts read: CLICKHOUSE_URL (HTTP, with the
    /// credentials), CLICKHOUSE_HOST, CLICKHOUSE_PORT (native),
    /// CLICKHOUSE_HTTP_PORT, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD,
    /// CLICKHOUSE_DB.
    pub fn env(&self) -> Vec<(String, String)> {
        let (h, http) = self.server.addr(HTTP_PORT);
        let (_, native) = self.server.addr(NATIVE_PORT);
        vec![
            (
                "CLICKHOUSE_URL".into(),
                format!("http://{USER}:{}@{h}:{http}", self.password),
            ),
            ("CLICKHOUSE_HOST".into(), h),
            ("CLICKHOUSE_PORT".into(), native.to_string()),
            ("CLICKHOUSE_HTTP_PORT".into(), http.to_string()),
            ("CLICKHOUSE_USER".into(), USER.into()),
            ("CLICKHOUSE_PASSWORD".into(), self.password.clone()),
            ("CLICKHOUSE_DB".into(), self.engine.spec.database.clone()),
        ]
    }

    /// An HTTP client for the server (validation off: see the module docs).
    pub fn client(&self) -> ::clickhouse::Client {
        ::clickhouse::Client::default()
            .with_url(self.http_url())
            .with_user(USER)
            .with_password(&self.password)
            .with_validation(false)
    }

    /// Runs a statement.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client()
            .query(sql)
            .execute()
            .await
            .map_err(Error::clickhouse(format!("`{}`", one_line(sql, 80))))
    }

    /// Runs a query and returns its rows, each a list of fields as
    /// ClickHouse writes them in TabSeparated (tabs, newlines and
    /// backslashes inside a value unescaped: see [`parse_tsv`]).
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let context = || format!("`{}`", one_line(sql, 80));
        let bytes = self
            .client()
            .query(sql)
            .fetch_bytes("TabSeparated")
            .map_err(Error::clickhouse(context()))?
            .collect()
            .await
            .map_err(Error::clickhouse(context()))?;
        Ok(parse_tsv(&bytes))
    }

    /// One value.
    pub async fn value(&self, sql: &str) -> Result<String> {
        Ok(self
            .rows(sql)
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default())
    }

    /// `(major, minor)` of the server.
    pub fn version(&self) -> (u32, u32) {
        let mut it = self.info.version.split('.').map(|p| p.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    fn wait(&mut self) -> Result<()> {
        let url = self.http_url();
        let password = self.password.clone();
        wait_ready(self.server.as_mut(), READY_TIMEOUT, |_| {
            probe(&url, &password)
        })?;
        let db = self.engine.spec.database.clone();
        let version = crate::backend::block_on(async {
            self.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
                .await?;
            self.value("SELECT version()").await
        })?;
        self.info.version = version;
        Ok(())
    }

    /// The server's data path as the server sees it (the image's, or the
    /// native data dir), with a trailing slash.
    pub(crate) fn data_root(&self) -> Result<String> {
        Ok(match self.info.backend {
            BackendKind::Docker => format!("{DATA}/"),
            BackendKind::Native => {
                let out = self.data_shell("printf '%s' \"$DATA\"")?;
                let dir = String::from_utf8_lossy(&out)
                    .trim_end_matches('/')
                    .to_string();
                if dir.is_empty() {
                    return Err(Error::unexpected(
                        "find clickhouse's data dir",
                        "the data shell named none",
                    ));
                }
                format!("{dir}/")
            }
        })
    }
}

/// The server described for both backends.
fn server_spec(backend: BackendKind, spec: &ClickHouseSpec, password: &str) -> Result<ServerSpec> {
    let backups = spec
        .backups_dir()
        .map(|d| format!("{}/", d.display()))
        .unwrap_or_default();
    // Native BACKUP needs a disk for it; older servers ignore the keys.
    let backup_config = if backups.is_empty() {
        String::new()
    } else {
        format!(
            "<storage_configuration><disks><drill_backups><type>local</type><path>{backups}</path></drill_backups></disks></storage_configuration>\
             <backups><allowed_disk>drill_backups</allowed_disk><allowed_path>{backups}</allowed_path></backups>"
        )
    };
    let native = match backend {
        BackendKind::Docker => NativeSpec::default(),
        BackendKind::Native => {
            let program = crate::backend::which("clickhouse-server")
                .or_else(|| crate::backend::which("clickhouse"))
                .ok_or_else(|| Error::MissingTool {
                    tool: "clickhouse-server".into(),
                    looked_in: "PATH".into(),
                    install: "apt-get install -y clickhouse-server clickhouse-client (or `cargo xtask deps`)".into(),
                })?;
            let mut args = Vec::new();
            if program.file_name().is_some_and(|n| n == "clickhouse") {
                args.push("server".to_string());
            }
            args.push("--config-file={dir}/config.xml".into());
            let config = format!(
                r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{{dir}}/server.log.txt</log><errorlog>{{dir}}/server.err.txt</errorlog><size>50M</size><count>1</count></logger>
  <http_port>{{port:8123}}</http_port>
  <tcp_port>{{port:9000}}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{{data}}/</path>
  <tmp_path>{{data}}/tmp/</tmp_path>
  <user_files_path>{{data}}/user_files/</user_files_path>
  <format_schema_path>{{data}}/format_schemas/</format_schema_path>
  <users_config>{{dir}}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <timezone>UTC</timezone>
  {backup_config}
</yandex>
"#
            );
            let users = format!(
                r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password>{password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <{USER}><password>{password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></{USER}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#
            );
            NativeSpec {
                tools_dir: program.parent().map(std::path::Path::to_path_buf),
                program,
                args,
                init: None,
                files: [("config.xml".into(), config), ("users.xml".into(), users)]
                    .into_iter()
                    // ClickHouse merges the folders beside its config and
                    // users files.
                    .chain(
                        spec.extras
                            .files
                            .iter()
                            .map(|f| (format!("{}/{}", f.folder, f.name), f.content.clone())),
                    )
                    .collect(),
                run_as: vec![],
                env: vec![],
            }
        }
    };
    let env = vec![
        ("CLICKHOUSE_USER".to_string(), USER.to_string()),
        ("CLICKHOUSE_PASSWORD".into(), password.into()),
        // Official image: let the user it creates manage nothing more.
        ("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT".into(), "0".into()),
    ]
    .into_iter()
    .chain(spec.extras.env.iter().cloned())
    .collect::<Vec<_>>();
    let mut files = if backup_config.is_empty() {
        vec![]
    } else {
        vec![(
            "/etc/clickhouse-server/config.d/drill-backups.xml".to_string(),
            format!("<?xml version=\"1.0\"?>\n<yandex>{backup_config}</yandex>\n").into_bytes(),
        )]
    };
    files.extend(spec.extras.files.iter().map(|f| {
        (
            format!("/etc/clickhouse-server/{}/{}", f.folder, f.name),
            f.content.clone().into_bytes(),
        )
    }));
    Ok(ServerSpec {
        kind: ServiceKind::ClickHouse,
        run_id: spec.run_id.clone(),
        ports: vec![HTTP_PORT, NATIVE_PORT],
        shared: spec.shared.clone(),
        stop_signal: Signal::SIGTERM,
        secrets: vec![password.to_string()],
        scrub_env: vec![],
        container: ContainerSpec {
            limits: spec.extras.limits,
            image: spec.image.clone(),
            data: DATA.into(),
            env,
            cmd: vec![],
            files,
            borrow_volume: None,
            network: None,
        },
        native,
    })
}

/// Ready once the server answers `SELECT 1` for our user.
fn probe(url: &str, password: &str) -> Readiness {
    let client = ::clickhouse::Client::default()
        .with_url(url)
        .with_user(USER)
        .with_password(password)
        .with_validation(false);
    crate::backend::block_on(async move {
        let q = async {
            client
                .query("SELECT 1")
                .fetch_bytes("TabSeparated")?
                .collect()
                .await
        };
        match tokio::time::timeout(Duration::from_secs(3), q).await {
            Ok(Ok(b)) if b.as_ref() == b"1\n" => Readiness::Ready,
            Ok(Ok(b)) => Readiness::NotYet(String::from_utf8_lossy(&b).into_owned()),
            // Not listening yet, still loading its tables, or an error
            // (kept for the message if it never becomes ready).
            Ok(Err(e)) => Readiness::NotYet(e.to_string()),
            Err(_) => Readiness::NotYet(String::new()),
        }
    })
}

/// Rows of ClickHouse's TabSeparated output: fields split on tabs, lines on
/// newlines, and each field unescaped as ClickHouse escapes it (`\t`,
/// `\n`, `\\`, `\r`, `\0`, `\'`, `\b`, `\f`), so a value holding a tab,
/// a newline or a backslash comes back as it is stored.
pub fn parse_tsv(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(bytes);
    text.split_terminator('\n')
        .map(|line| line.split('\t').map(unescape_tsv).collect())
        .collect()
}

fn unescape_tsv(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Creates the analytics tables and loads the dataset's ticks; returns rows
/// per table.
pub async fn load_fixture(
    ch: &ClickHouse,
    data: &drill_fixtures::Dataset,
) -> Result<BTreeMap<String, u64>> {
    use drill_fixtures::market::{CLICKHOUSE_DAILY, CLICKHOUSE_DAILY_FILL, CLICKHOUSE_TICKS};
    let db = &ch.engine.spec.database;
    for ddl in [CLICKHOUSE_TICKS, CLICKHOUSE_DAILY] {
        ch.execute(&ddl.replace("{db}", db)).await?;
    }
    let tsv = data.clickhouse_ticks_tsv();
    let mut insert = ch
        .client()
        .insert_formatted_with(format!("INSERT INTO {db}.ticks FORMAT TabSeparated"));
    for chunk in tsv.chunks(1 << 20) {
        insert
            .send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .map_err(Error::clickhouse("load the fixture"))?;
    }
    insert
        .end()
        .await
        .map_err(Error::clickhouse("load the fixture"))?;
    ch.execute(&CLICKHOUSE_DAILY_FILL.replace("{db}", db))
        .await?;
    let mut rows = BTreeMap::new();
    for t in ["ticks", "ticks_daily"] {
        let n: u64 = ch
            .value(&format!("SELECT count() FROM {db}.{t}"))
            .await?
            .parse()
            .unwrap_or(0);
        rows.insert(format!("{db}.{t}"), n);
    }
    Ok(rows)
}

/// What a ClickHouse check compares, per table of the database: its engine
/// (with partition and sorting keys), its columns, `count()`, and a content
/// checksum that reads every row (`count()` alone can be answered from
/// metadata, so it would call a half-attached table whole).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub tables: BTreeMap<String, TableState>,
}

/// One table's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableState {
    pub engine: String,
    /// `name type` per column, in order.
    pub columns: Vec<String>,
    pub rows: u64,
    /// `count()` and `sum(cityHash64(all columns))`, read from the data.
    pub checksum: String,
}

/// Reads every table of the analytics database.
pub async fn snapshot(ch: &ClickHouse) -> Result<Snapshot> {
    let db = &ch.engine.spec.database;
    let mut tables = BTreeMap::new();
    let listed = ch
        .rows(&format!(
            "SELECT name, engine_full FROM system.tables WHERE database = '{db}' ORDER BY name"
        ))
        .await?;
    for row in listed {
        let [name, engine] = &row[..] else { continue };
        let columns: Vec<String> = ch
            .rows(&format!(
                "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{name}'"
            ))
            .await?
            .into_iter()
            .map(|r| r.join(" "))
            .collect();
        let names: Vec<String> = columns
            .iter()
            .filter_map(|c| c.split(' ').next().map(|n| format!("`{n}`")))
            .collect();
        let stats = ch
            .rows(&format!(
                "SELECT count(), sum(cityHash64({})) FROM {db}.`{name}`",
                names.join(", ")
            ))
            .await?;
        let (rows, sum) = stats
            .first()
            .map(|r| {
                (
                    r[0].parse().unwrap_or(0),
                    r.get(1).cloned().unwrap_or_default(),
                )
            })
            .unwrap_or((0, String::new()));
        tables.insert(
            format!("{db}.{name}"),
            TableState {
                engine: engine.clone(),
                columns,
                rows,
                checksum: format!("{rows}:{sum}"),
            },
        );
    }
    Ok(Snapshot { tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_separated_fields_are_unescaped() {
        let out = parse_tsv(b"1\ta\\tb\n2\tline\\nnext\n3\tback\\\\slash\n4\t\n");
        assert_eq!(
            out,
            vec![
                vec!["1".to_string(), "a\tb".into()],
                vec!["2".into(), "line\nnext".into()],
                vec!["3".into(), "back\\slash".into()],
                vec!["4".into(), String::new()],
            ]
        );
        assert!(parse_tsv(b"").is_empty());
    }
}
