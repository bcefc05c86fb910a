//! How to reach one database of a PostgreSQL server ([`PgCoordinates`]),
//! and the few statements the harness runs over a connection.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::{Error, Result};

/// How to reach one database on a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PgCoordinates {
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(skip)]
    pub password: String,
    pub database: String,
    /// Settings every session of drill's sets at connection start
    /// (libpq's `options`, `PGOPTIONS`): they outrank what the server's
    /// catalog sets per role and database, which matters for a backup from
    /// elsewhere (`ALTER ROLE ... SET session_preload_libraries`).
    #[serde(skip)]
    pub options: Vec<(String, String)>,
}

impl PgCoordinates {
    /// `postgres://user:password@host:port/database`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user, self.password, self.host, self.port, self.database
        )
    }

    /// The variables libpq and most tools read: PGHOST, PGPORT, PGUSER,
    /// PGPASSWORD, PGDATABASE and DATABASE_URL.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", self.database.clone()),
            ("DATABASE_URL", self.url()),
        ];
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("-c {k}={}", v.replace(' ', "\\ ")))
                .collect();
            env.push(("PGOPTIONS", opts.join(" ")));
        }
        env
    }

    /// The same server, another database.
    pub(crate) fn with_database(&self, database: &str) -> PgCoordinates {
        PgCoordinates {
            database: database.into(),
            ..self.clone()
        }
    }

    pub async fn connect(&self) -> Result<PgConnection> {
        let opts = PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.database)
            .application_name("drill")
            .options(self.options.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .disable_statement_logging();
        PgConnection::connect_with(&opts)
            .await
            .map_err(Error::sql(format!(
                "connect to {}:{}/{}",
                self.host, self.port, self.database
            )))
    }
}

/// Inherited libpq variables (PGSERVICE, PGHOSTADDR, PGSERVICEFILE,
/// PGPASSFILE, ...) removed from every command drill runs: some of them beat
/// PGHOST/PGPORT, so on an operator's machine a restore meant for the
/// disposable server could otherwise reach a real one.
pub(crate) const SCRUB_ENV: &[&str] = &["PG*", "DATABASE_URL"];

/// Runs several statements as one simple-query message.
pub async fn execute_script(conn: &mut PgConnection, sql: &str, context: &str) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .map_err(Error::sql(context))?;
    Ok(())
}

/// Drops the application database (terminating sessions) and creates it
/// again, empty. The fault `drop-database`.
pub async fn drop_and_recreate(coords: &PgCoordinates) -> Result<()> {
    let mut admin = coords.with_database("postgres").connect().await?;
    let name = super::server::quote_ident(&coords.database);
    execute_script(
        &mut admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        "drop database",
    )
    .await?;
    execute_script(
        &mut admin,
        &format!("CREATE DATABASE {name}"),
        "create database",
    )
    .await?;
    Ok(())
}
