//! The PostgreSQL service: how to reach a server ([`PgCoordinates`]), loading
//! a fixture into it ([`fixture`]), and reading what a check compares
//! ([`snapshot`]: row counts and a schema fingerprint). Everything here talks
//! SQL to a running server; starting and stopping servers is the backend's.

pub mod fixture;
pub mod server;
pub mod snapshot;

pub use server::{ClientTool, PgSpec, Postgres, PostgresServer};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::{Error, Result};

/// How to reach one database on a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PgCoordinates {
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(skip)]
    pub password: String,
    pub database: String,
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
        vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", self.database.clone()),
            ("DATABASE_URL", self.url()),
        ]
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> PgCoordinates {
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
            .disable_statement_logging();
        PgConnection::connect_with(&opts)
            .await
            .map_err(Error::sql(format!(
                "connect to {}:{}/{}",
                self.host, self.port, self.database
            )))
    }
}

/// Removes every inherited libpq variable (PGSERVICE, PGHOSTADDR,
/// PGSERVICEFILE, PGPASSFILE, ...) from a command's environment. Some of them
/// beat PGHOST/PGPORT, so on an operator's machine a restore meant for the
/// disposable server could otherwise reach a real one.
pub fn scrub_pg_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("DATABASE_URL");
}

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
    let name = server::quote_ident(&coords.database);
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
