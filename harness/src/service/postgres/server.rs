//! A disposable PostgreSQL (or TimescaleDB) server on either backend: how
//! to describe it to a backend ([`ServerSpec`]), when it is ready, the
//! application database, and the faults that act on it.
//!
//! Natively the server is `initdb` + `postgres` from the local binaries,
//! as an unprivileged user. In a container it is the official image's
//! entrypoint (`POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`) with
//! `postgres -c key=value ...` as its command, data on a named volume.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{PgBinaries, PgCoordinates, SCRUB_ENV};
use crate::backend::{
    BackendKind, ContainerSpec, NativeSpec, Readiness, ServerSpec, ServiceKind, Stop, wait_ready,
};
use crate::service::{Disposable, Engine, Lifecycle};
use crate::{Error, Result};

/// The port PostgreSQL listens on inside its image.
pub const PORT: u16 = 5432;
/// Where the image keeps the data (the volume's mount point).
pub(super) const DATA: &str = "/var/lib/postgresql/data";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What to start.
#[derive(Debug, Clone)]
pub struct PgSpec {
    /// Application database, created empty at start and after a wipe.
    pub database: String,
    /// Superuser role the drill connects as.
    pub user: String,
    /// Load the timescaledb library (`shared_preload_libraries`).
    pub timescaledb: bool,
    /// Extra `-c key=value` settings.
    pub settings: Vec<(String, String)>,
    /// Identifies the run in temp dir names and labels, for reaping.
    pub run_id: String,
    /// The image (docker backend).
    pub image: String,
    /// Host folders the server's tools must see (see [`ServerSpec::shared`]).
    pub shared: Vec<PathBuf>,
    /// Settings every drill session sets at its start (see
    /// [`PgCoordinates::options`]).
    pub client_options: Vec<(String, String)>,
    /// The private network it joins (a primary and its replica).
    pub network: Option<String>,
    /// The major version it must run (`None`: whatever drill finds).
    pub major: Option<u32>,
    /// Create the application database once ready (not for a cluster
    /// `pg_upgrade` fills).
    pub create_database: bool,
    /// initdb's data checksums: on, off, or (`None`) initdb's default.
    pub data_checksums: Option<bool>,
    /// Docker: live in this subfolder of another server's volume (volume,
    /// subfolder), for `pg_upgrade --link` (see
    /// [`ContainerSpec::borrow_volume`]). Natively unused.
    pub borrow_volume: Option<(String, String)>,
    /// A compose file's container environment (`TZ`).
    pub extras: crate::scenario::Extras,
}

impl PgSpec {
    /// A spec with the defaults: no settings, the image from the
    /// environment or the official default, nothing shared.
    pub fn new(database: &str, user: &str, run_id: &str) -> PgSpec {
        PgSpec {
            database: database.into(),
            user: user.into(),
            timescaledb: false,
            settings: Vec::new(),
            run_id: run_id.into(),
            image: ServiceKind::Postgres.image(None),
            shared: Vec::new(),
            client_options: Vec::new(),
            network: None,
            major: None,
            create_database: true,
            data_checksums: None,
            borrow_volume: None,
            extras: Default::default(),
        }
    }

    /// initdb's flags for [`PgSpec::data_checksums`] (PostgreSQL 17
    /// brought `--no-data-checksums`; before it off was the default).
    fn checksum_flags(&self, major: u32) -> Vec<String> {
        match self.data_checksums {
            Some(true) => vec!["--data-checksums".into()],
            Some(false) if major >= 17 => vec!["--no-data-checksums".into()],
            _ => vec![],
        }
    }
}

/// PostgreSQL client programs the harness runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTool {
    Psql,
    PgDump,
    PgRestore,
    PgBasebackup,
    PgWaldump,
    PgVerifybackup,
    /// pgBackRest (not PostgreSQL's, but run beside the server the same way).
    Pgbackrest,
}

impl ClientTool {
    pub fn program(self) -> &'static str {
        match self {
            ClientTool::Psql => "psql",
            ClientTool::PgDump => "pg_dump",
            ClientTool::PgRestore => "pg_restore",
            ClientTool::PgBasebackup => "pg_basebackup",
            ClientTool::PgWaldump => "pg_waldump",
            ClientTool::PgVerifybackup => "pg_verifybackup",
            ClientTool::Pgbackrest => "pgbackrest",
        }
    }
}

/// What PostgreSQL adds to a backend's server: its spec (settings a fault
/// changed included) and how the harness reaches the application database.
#[derive(Debug)]
pub struct PgEngine {
    spec: PgSpec,
    coords: PgCoordinates,
    /// The server's psql knows `\restrict` (asked once).
    psql_restricts: std::sync::OnceLock<bool>,
    /// `data_checksums` as the server said at its last start.
    checksums: bool,
    /// `shared_preload_libraries` names timescaledb (at its last start).
    preloads_timescaledb: bool,
}

/// A running disposable PostgreSQL server, whatever the backend: a
/// backend's server plus what PostgreSQL needs on top (credentials, the
/// application database, readiness). Dropping it stops the server and
/// deletes its data, unless [`Lifecycle::keep`] was called.
pub type Postgres = Disposable<PgEngine>;

impl Engine for PgEngine {
    fn spec(&self, backend: BackendKind, password: &str) -> Result<ServerSpec> {
        server_spec(backend, &self.spec, password)
    }

    /// Waits for the server, then creates the application database when
    /// missing and records version facts.
    fn after_start(pg: &mut Postgres) -> Result<()> {
        let (host, port) = pg.server.addr(PORT);
        pg.engine.coords.host = host;
        pg.engine.coords.port = port;
        let admin = pg.engine.coords.with_database("postgres");
        wait_ready(pg.server.as_mut(), READY_TIMEOUT, |_| probe(&admin))?;
        let db = pg.engine.spec.database.clone();
        let exists = pg.psql(
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                db.replace('\'', "''")
            ),
            "postgres",
        )?;
        // A server still replaying WAL (point-in-time recovery) is read-only.
        if exists == "0"
            && pg.engine.spec.create_database
            && pg.psql("SELECT pg_is_in_recovery()", "postgres")? == "f"
        {
            pg.psql(&format!("CREATE DATABASE {}", quote_ident(&db)), "postgres")?;
        }
        // The facts the report and the upgrade steps need, in one round
        // trip (each psql is a `docker exec` in a container, and a restart
        // fault's RTO includes this).
        let facts = pg.psql(
            "SELECT concat_ws(E'\\x1f', current_setting('server_version'), \
             current_setting('data_checksums'), current_setting('shared_preload_libraries'), \
             (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'))",
            "postgres",
        )?;
        let mut f = facts.split('\u{1f}');
        let mut next = || f.next().unwrap_or("").to_string();
        pg.info.version = next();
        pg.engine.checksums = next() == "on";
        pg.engine.preloads_timescaledb = next().split(',').any(|l| l.trim() == "timescaledb");
        let ts = next();
        pg.info.timescaledb = (!ts.is_empty()).then_some(ts);
        if let Some(want) = pg.engine.spec.major
            && pg.major() != want
        {
            return Err(Error::MissingTool {
                tool: format!("a PostgreSQL {want} server"),
                looked_in: format!("{} runs {}", pg.server.describe(), pg.info.version),
                install: format!(
                    "point {} (docker) or DRILL_PG{want}_BINDIR (native) at PostgreSQL {want}",
                    crate::vocab::postgres_image_env(Some(want))
                ),
            });
        }
        let pg_version = pg
            .info
            .version
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        pg.info.flavour = match (&pg.info.timescaledb, pg.engine.spec.timescaledb) {
            (Some(ts), true) => format!("timescaledb {ts} on pg {pg_version}"),
            _ => format!("postgres {pg_version}"),
        };
        Ok(())
    }

    /// Shims for `psql`, `pg_dump`, `pg_restore` and `pg_isready` of the
    /// server's version, for a user's script (program, script).
    fn shims(pg: &Postgres) -> Vec<(String, String)> {
        // In a container the tools reach the server on its own port; PG*
        // set by the caller (user, password, database) pass through.
        let fixed: Vec<(String, String)> = match pg.info.backend {
            BackendKind::Docker => {
                let (h, p) = pg.server.tool_addr(PORT);
                vec![("PGHOST".into(), h), ("PGPORT".into(), p.to_string())]
            }
            BackendKind::Native => vec![],
        };
        let passthrough = [
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGOPTIONS",
            "PGAPPNAME",
            "PGCONNECT_TIMEOUT",
        ];
        [
            "psql",
            "pg_dump",
            "pg_restore",
            "pg_isready",
            "pg_basebackup",
        ]
        .into_iter()
        .map(|p| {
            (
                p.to_string(),
                pg.server.tool_shim(p, &fixed, &passthrough, &[]),
            )
        })
        .collect()
    }

    /// A psql command line.
    fn connection_help(pg: &Postgres) -> String {
        format!(
            "psql '{}'   ({})",
            pg.engine.coords.url(),
            pg.server.describe()
        )
    }
}

impl Postgres {
    /// Starts a server on `backend`, waits until it accepts connections and
    /// makes sure the application database exists.
    pub fn start(backend: BackendKind, spec: &PgSpec) -> Result<Postgres> {
        let engine = PgEngine {
            spec: spec.clone(),
            coords: PgCoordinates {
                host: String::new(),
                port: 0,
                user: spec.user.clone(),
                // Set below: the password is the server's own.
                password: String::new(),
                database: spec.database.clone(),
                options: spec.client_options.clone(),
            },
            psql_restricts: std::sync::OnceLock::new(),
            checksums: false,
            preloads_timescaledb: false,
        };
        Disposable::launch_with(backend, ServiceKind::Postgres, engine, |e, password| {
            e.coords.password = password.to_string();
        })
    }

    /// Starts with the native backend (tests and benchmarks).
    pub fn native(spec: &PgSpec) -> Result<Postgres> {
        Self::start(BackendKind::Native, spec)
    }

    /// What it was started with (settings as changed by faults).
    pub fn spec(&self) -> &PgSpec {
        &self.engine.spec
    }

    /// Whether the server's own psql knows `\restrict` (15.14, 16.10, 17.6,
    /// 18 and later: CVE-2025-8714's fix), asked once.
    pub(crate) fn knows_restrict(&self) -> bool {
        *self.engine.psql_restricts.get_or_init(|| {
            let out = self.client(ClientTool::Psql).arg("--version").output();
            // "psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
            let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            let version = text.ok().and_then(|t| {
                let v = t.split_whitespace().nth(2)?.to_string();
                let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
                Some((it.next()??, it.next().flatten().unwrap_or(0)))
            });
            matches!(version, Some((major, minor)) if restrict_since(major).is_some_and(|m| minor >= m))
        })
    }

    /// PG* variables as a tool beside the server sees it, connecting as
    /// `role` (default: the superuser).
    pub(crate) fn tool_env_as(&self, role: Option<&PgCoordinates>) -> Vec<(String, String)> {
        let (host, port) = self.server.tool_addr(PORT);
        let seen = PgCoordinates {
            host,
            port,
            ..role.unwrap_or(&self.engine.coords).clone()
        };
        seen.env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    pub(crate) fn psql(&self, sql: &str, db: &str) -> Result<String> {
        let out = self
            .client(ClientTool::Psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .map_err(Error::spawn("psql"))?;
        if !out.status.success() {
            return Err(Error::command(format!("psql -c `{sql}`"), &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Postgres {
    /// Replaces the `-c` settings the next start uses (the running server
    /// keeps its own until then).
    pub(crate) fn set_settings(&mut self, settings: Vec<(String, String)>) {
        self.engine.spec.settings = settings;
    }

    /// The server's major version (from `server_version`; 0 before it
    /// answered).
    pub fn major(&self) -> u32 {
        self.info
            .version
            .split(['.', ' '])
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the server loads TimescaleDB, as it says (an image's
    /// configuration may preload it whatever drill asked).
    pub fn preloads_timescaledb(&self) -> bool {
        self.engine.preloads_timescaledb
    }

    /// Whether the cluster has data checksums (as of its last start).
    pub fn data_checksums(&self) -> bool {
        self.engine.checksums
    }

    /// A client tool of PostgreSQL `major` (its binaries on this machine,
    /// reaching the server at its published address), or the server's own
    /// when `major` is `None` or the server's version.
    pub fn client_of(&self, tool: ClientTool, major: Option<u32>) -> Result<Command> {
        let Some(m) = major.filter(|m| *m != self.major()) else {
            return Ok(self.client(tool));
        };
        let bins = PgBinaries::locate_version(Some(m))?;
        let mut cmd = Command::new(bins.tool(tool.program()));
        crate::backend::scrub_env(&mut cmd, SCRUB_ENV);
        cmd.envs(self.engine.coords.env());
        Ok(cmd)
    }

    /// Takes `from`'s password as its own (a copy of `from`'s cluster
    /// has `from`'s roles): every later client and start uses it.
    pub(crate) fn adopt_credentials(&mut self, from: &Postgres) {
        self.password = from.password.clone();
        self.engine.coords.password = from.engine.coords.password.clone();
    }

    /// How the harness reaches the application database as the superuser.
    pub fn coordinates(&self) -> &PgCoordinates {
        &self.engine.coords
    }

    /// A client tool of the server's own version, with `PGHOST`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD` and `PGDATABASE` set as that tool sees them.
    pub fn client(&self, tool: ClientTool) -> Command {
        self.client_as(tool, None)
    }

    /// A client tool connecting as `role` (default: the superuser).
    pub fn client_as(&self, tool: ClientTool, role: Option<&PgCoordinates>) -> Command {
        self.server.tool(tool.program(), &self.tool_env_as(role))
    }

    /// A login role that owns the application database and is no
    /// superuser, to restore an untrusted backup as: `COPY ... TO/FROM
    /// PROGRAM`, `lo_export`, `pg_read_file` and the like are refused to it,
    /// while everything a dump of an application database does (its schema,
    /// its data, trusted extensions such as TimescaleDB) is allowed.
    /// Returns how to reach the database as that role.
    pub fn untrusted_role(&self) -> Result<PgCoordinates> {
        let role = PgCoordinates {
            user: UNTRUSTED_ROLE.into(),
            password: crate::backend::new_password(),
            ..self.engine.coords.clone()
        };
        let db = quote_ident(&role.database);
        self.psql(
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{UNTRUSTED_ROLE}') THEN \
                 CREATE ROLE {UNTRUSTED_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS; \
                 END IF; END $$; ALTER ROLE {UNTRUSTED_ROLE} PASSWORD '{}'; ALTER DATABASE {db} OWNER TO {UNTRUSTED_ROLE}",
                role.password
            ),
            "postgres",
        )?;
        Ok(role)
    }

    /// Creates each of `roles` that does not exist, as a role that cannot
    /// log in; returns those it created.
    pub fn ensure_roles(&self, roles: &[String]) -> Result<Vec<String>> {
        let mut created = Vec::new();
        for r in roles {
            let lit = r.replace('\'', "''");
            let out = self.psql(
                &format!("SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{lit}')"),
                "postgres",
            )?;
            if out.trim() == "t" {
                self.psql(
                    &format!("CREATE ROLE {} NOLOGIN", quote_ident(r)),
                    "postgres",
                )?;
                created.push(r.clone());
            }
        }
        Ok(created)
    }

    /// [`Postgres::client`] with stderr merged into stdout where the tool
    /// runs, as `pg_dump ... 2>&1` does (see [`Server::tool_merged`]).
    pub(crate) fn client_merged(&self, tool: ClientTool) -> Command {
        self.server
            .tool_merged(tool.program(), &self.tool_env_as(None))
    }

    /// Fault: stop (immediate shutdown), then start with `settings`
    /// (replacing the scenario's), on the same data directory when
    /// `reattach`, else on a fresh one. Survives: what the WAL made
    /// durable, when reattached; nothing when not.
    pub fn restart_with(&mut self, settings: &[(String, String)], reattach: bool) -> Result<()> {
        // Abruptly, as a container is when compose recreates it: what was
        // acknowledged survives only through the WAL and the new settings.
        self.server.stop(Stop::Signal(Signal::SIGQUIT))?;
        self.engine.spec.settings = settings.to_vec();
        if !reattach {
            self.server.wipe()?;
        }
        self.start_again()
    }
}

/// The server described for both backends.
fn server_spec(backend: BackendKind, spec: &PgSpec, password: &str) -> Result<ServerSpec> {
    let mut settings: Vec<(String, String)> = Vec::new();
    if spec.timescaledb {
        settings.push(("shared_preload_libraries".into(), "timescaledb".into()));
        settings.push(("timescaledb.telemetry_level".into(), "off".into()));
    }
    settings.extend(spec.settings.iter().cloned());
    let flags: Vec<String> = settings
        .iter()
        .flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")])
        .collect();
    let native = match backend {
        BackendKind::Docker => NativeSpec::default(),
        BackendKind::Native => {
            let bins = PgBinaries::locate_version(spec.major)?;
            if spec.timescaledb && !bins.has_timescaledb() {
                return Err(Error::MissingTool {
                    tool: "the timescaledb extension".into(),
                    looked_in: format!(
                        "{} and {}",
                        bins.share_dir().display(),
                        bins.pkglib_dir().display()
                    ),
                    install: super::service::TIMESCALEDB_HINT.into(),
                });
            }
            let mut args: Vec<String> = [
                "-D",
                "{data}",
                "-p",
                "{port:5432}",
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories={dir}",
            ]
            .map(String::from)
            .to_vec();
            args.extend(flags.iter().cloned());
            NativeSpec {
                program: bins.tool("postgres"),
                args,
                init: Some((
                    bins.tool("initdb"),
                    [
                        "-D",
                        "{data}",
                        "-U",
                        &spec.user,
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--no-instructions",
                        // Disposable: the server's own fsync settings
                        // still govern what its commits survive.
                        "--no-sync",
                        "--auth-host=scram-sha-256",
                        "--auth-local=trust",
                        "--pwfile={dir}/pwfile",
                    ]
                    .map(String::from)
                    .into_iter()
                    .chain(spec.checksum_flags(bins.major))
                    .collect(),
                )),
                files: vec![("pwfile".into(), password.into())],
                run_as: vec!["postgres", "nobody"],
                tools_dir: Some(bins.bin_dir.clone()),
                env: vec![],
            }
        }
    };
    let mut cmd = vec!["postgres".to_string()];
    cmd.extend(flags);
    Ok(ServerSpec {
        kind: ServiceKind::Postgres,
        run_id: spec.run_id.clone(),
        ports: vec![PORT],
        shared: spec.shared.clone(),
        stop_signal: Signal::SIGINT,
        secrets: vec![password.to_string()],
        scrub_env: SCRUB_ENV.to_vec(),
        container: ContainerSpec {
            limits: spec.extras.limits,
            image: spec.image.clone(),
            data: DATA.into(),
            env: [
                ("POSTGRES_USER".into(), spec.user.clone()),
                ("POSTGRES_PASSWORD".into(), password.into()),
            ]
            .into_iter()
            // The official image makes POSTGRES_DB (default: the user's
            // name); a cluster pg_upgrade fills must stay empty.
            .chain([(
                "POSTGRES_DB".into(),
                if spec.create_database {
                    spec.database.clone()
                } else {
                    "postgres".into()
                },
            )])
            .chain(
                spec.data_checksums
                    .map(|_| {
                        let flags = spec.checksum_flags(spec.major.unwrap_or(0));
                        ("POSTGRES_INITDB_ARGS".into(), flags.join(" "))
                    })
                    .filter(|(_, v)| !v.is_empty()),
            )
            // Where the volume is, always: the official PostgreSQL 18 image
            // moved its default (`/var/lib/postgresql/18/docker`).
            .chain([(
                "PGDATA".into(),
                match &spec.borrow_volume {
                    Some((_, sub)) => format!("{DATA}/{sub}"),
                    None => DATA.into(),
                },
            )])
            .chain(spec.extras.env.iter().cloned())
            .collect(),
            cmd,
            files: vec![],
            network: spec.network.clone(),
            borrow_volume: spec.borrow_volume.clone(),
        },
        native,
    })
}

/// Ok(true) when the server accepts a connection and a query. "The
/// database system is starting up" and a refused connection are "not yet".
fn probe(admin: &PgCoordinates) -> Readiness {
    let admin = admin.clone();
    crate::backend::block_on(async move {
        let attempt = tokio::time::timeout(Duration::from_secs(3), async {
            let mut conn = admin.connect().await?;
            sqlx::query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(crate::Error::sql("probe"))?;
            Ok::<(), crate::Error>(())
        })
        .await;
        match attempt {
            Ok(Ok(())) => Readiness::Ready,
            Ok(Err(e)) => Readiness::NotYet(e.to_string()),
            Err(_) => Readiness::NotYet("no answer within 3s".into()),
        }
    })
}

/// Whether `image` carries the timescaledb extension (its control file in
/// the server's share dir).
pub fn image_has_timescaledb(image: &str) -> bool {
    crate::backend::images::image_passes(
        image,
        "test -f \"$(pg_config --sharedir)/extension/timescaledb.control\"",
    )
}

/// The role an untrusted backup is restored as ([`Postgres::untrusted_role`]).
pub const UNTRUSTED_ROLE: &str = "drill_restore";

/// The first minor release of `major` whose psql knows `\restrict`.
fn restrict_since(major: u32) -> Option<u32> {
    match major {
        13 => Some(22),
        14 => Some(19),
        15 => Some(14),
        16 => Some(10),
        17 => Some(6),
        m if m >= 18 => Some(0),
        _ => None,
    }
}

/// Double-quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
