//! Loads a fixture. Nexwave (seeds 000-002): the schema files in order,
//! then every table's generated rows streamed through `COPY ... FROM STDIN`
//! in 1 MiB chunks (memory stays flat whatever the size), then, on
//! TimescaleDB, the older chunks compressed and the candles materialised.
//! Seed 004's quant-trading database: its schema, rows generated on the
//! server from the seed, the same compression and refresh.

use std::time::{Duration, Instant};

use drill_fixtures::{
    Dataset, Flavour, nexwave_after_load, nexwave_schema, quant_after_load, quant_data,
    quant_schema,
};
use sqlx::postgres::PgConnection;

use super::{PgCoordinates, execute_script};
use crate::{Error, Result};

const CHUNK: usize = 1 << 20;
/// A table this large is loaded over several connections at once.
const PARALLEL_ROWS: u64 = 100_000;

/// What a load did, per table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    pub flavour: String,
    pub tables: Vec<(String, u64)>,
    pub elapsed: Duration,
}

/// Applies the Nexwave schema of `flavour` and loads `dataset`.
pub async fn load_nexwave(
    coords: &PgCoordinates,
    flavour: Flavour,
    dataset: &Dataset,
) -> Result<LoadReport> {
    let started = Instant::now();
    let mut conn = coords.connect().await?;
    for file in nexwave_schema(flavour) {
        execute_script(
            &mut conn,
            file.sql,
            &format!("apply fixtures/{}", file.path),
        )
        .await?;
    }
    let mut tables = Vec::new();
    let conns = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    for mut t in dataset.tables() {
        let n = if t.row_count >= PARALLEL_ROWS && conns > 1 {
            copy_rows_parallel(coords, t.table, t.columns, t.rows, conns).await?
        } else {
            copy_rows(&mut conn, t.table, t.columns, t.rows.as_mut()).await?
        };
        tables.push((t.table.to_string(), n));
    }
    if let Some(file) = nexwave_after_load(flavour) {
        for stmt in file.statements() {
            execute_script(&mut conn, &stmt, &format!("apply fixtures/{}", file.path)).await?;
        }
    }
    execute_script(&mut conn, "ANALYZE", "analyze").await?;
    Ok(LoadReport {
        flavour: match flavour {
            Flavour::TimescaleDb => "timescaledb".into(),
            Flavour::Postgres => "postgres".into(),
        },
        tables,
        elapsed: started.elapsed(),
    })
}

/// Applies seed 004's quant-trading schema and generates its rows on the
/// server from `seed`; then compresses the older chunks and refreshes the
/// continuous aggregates.
pub async fn load_quant(coords: &PgCoordinates, seed: u64) -> Result<LoadReport> {
    let started = Instant::now();
    let mut conn = coords.connect().await?;
    for file in quant_schema() {
        execute_script(
            &mut conn,
            file.sql,
            &format!("apply fixtures/{}", file.path),
        )
        .await?;
    }
    execute_script(
        &mut conn,
        &quant_data(seed),
        "apply fixtures/quant/data.sql",
    )
    .await?;
    let after = quant_after_load();
    for stmt in after.statements() {
        execute_script(&mut conn, &stmt, &format!("apply fixtures/{}", after.path)).await?;
    }
    execute_script(&mut conn, "ANALYZE", "analyze").await?;
    let mut tables = Vec::new();
    for t in drill_fixtures::QUANT_TABLES
        .iter()
        .filter(|t| !t.starts_with("public.market_prices_"))
    {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut conn)
            .await
            .map_err(Error::sql(format!("count {t}")))?;
        tables.push((t.to_string(), n as u64));
    }
    Ok(LoadReport {
        flavour: "timescaledb".into(),
        tables,
        elapsed: started.elapsed(),
    })
}

/// As [`copy_rows`], over `conns` connections at once: one thread makes
/// the rows in 1 MiB chunks, each connection's COPY takes the next chunk
/// as it is ready, so the server parses and inserts on several cores (the
/// rows land in another physical order; the checksums do not see order).
pub async fn copy_rows_parallel(
    coords: &PgCoordinates,
    table: &'static str,
    columns: &'static [&'static str],
    mut rows: Box<dyn drill_fixtures::RowSource>,
    conns: usize,
) -> Result<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(conns * 2);
    let producer = tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = Vec::with_capacity(CHUNK + 4096);
            let mut more = true;
            while more && buf.len() < CHUNK {
                more = rows.next_row(&mut buf);
            }
            if !buf.is_empty() && tx.blocking_send(buf).is_err() {
                return; // a COPY failed: its error is the one to report
            }
            if !more {
                return;
            }
        }
    });
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let stmt = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (rx, stmt, coords) = (rx.clone(), stmt.clone(), coords.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = coords.connect().await?;
            let mut copy = conn
                .copy_in_raw(&stmt)
                .await
                .map_err(Error::sql(format!("start COPY into {table}")))?;
            loop {
                let next = rx.lock().await.recv().await;
                let Some(chunk) = next else { break };
                if let Err(e) = copy.send(chunk.as_slice()).await {
                    let _ = copy.abort("drill: send failed").await;
                    return Err(Error::Sql {
                        context: format!("COPY into {table}"),
                        source: e,
                    });
                }
            }
            copy.finish()
                .await
                .map_err(Error::sql(format!("finish COPY into {table}")))
        }));
    }
    let mut total = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::unexpected(
                    format!("load {table}"),
                    format!("a COPY task failed: {e}"),
                ));
            }
        }
        if first_error.is_some() {
            // Stop the producer; the other COPYs drain what is queued.
            rx.lock().await.close();
        }
    }
    let _ = producer.await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Streams rows into a table with COPY; returns the server's row count.
pub async fn copy_rows(
    conn: &mut PgConnection,
    table: &str,
    columns: &[&str],
    rows: &mut dyn drill_fixtures::RowSource,
) -> Result<u64> {
    let stmt = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
    let mut copy = conn
        .copy_in_raw(&stmt)
        .await
        .map_err(Error::sql(format!("start COPY into {table}")))?;
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    loop {
        let more = rows.next_row(&mut buf);
        if buf.len() >= CHUNK || (!more && !buf.is_empty()) {
            if let Err(e) = copy.send(buf.as_slice()).await {
                let _ = copy.abort("drill: send failed").await;
                return Err(Error::Sql {
                    context: format!("COPY into {table}"),
                    source: e,
                });
            }
            buf.clear();
        }
        if !more {
            break;
        }
    }
    copy.finish()
        .await
        .map_err(Error::sql(format!("finish COPY into {table}")))
}
