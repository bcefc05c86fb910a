//! PostgreSQL's part of the workload: the writer's rows go into `ticks`,
//! one INSERT each, and after a recovery one anti-join finds which
//! acknowledged rows are missing.

use sqlx::postgres::PgConnection;

use super::PgCoordinates;
use std::time::Instant;

use crate::workload::{Boundary, Ledger, LiveTick, RpoMeasurement, Sink, pitr_from, rpo_from};
use crate::{Error, Result};

/// Rows into PostgreSQL's `ticks`, one INSERT each.
pub(crate) struct PgSink(pub(crate) PgConnection);

impl Sink for PgSink {
    async fn write(&mut self, ticks: &[LiveTick]) -> Result<()> {
        for t in ticks {
            sqlx::query("INSERT INTO ticks (time, symbol, price, volume, bid, ask) VALUES ($1::timestamptz, $2, $3, 1.0, $3, $3)")
                .bind(&t.time)
                .bind(t.symbol)
                .bind(t.price)
                .execute(&mut self.0)
                .await
                .map_err(Error::sql("insert a workload tick"))?;
        }
        Ok(())
    }
}

/// Which acknowledged writes are missing now, and the window they span;
/// after a recovery to a target, the ledger's full verdict on it.
pub async fn measure_rpo(
    coords: &PgCoordinates,
    ledger: &Ledger,
    fault_at: Instant,
    target: Option<&Boundary>,
) -> Result<RpoMeasurement> {
    let mut conn = coords.connect().await?;
    let present = present_keys(&mut conn, ledger).await?;
    Ok(match target {
        Some(t) => pitr_from(ledger, &present, fault_at, t),
        None => rpo_from(ledger, &present, fault_at),
    })
}

/// For each ack, whether its row exists (one round trip: the keys go in
/// through COPY into a temp table, then one anti-join).
async fn present_keys(conn: &mut PgConnection, ledger: &Ledger) -> Result<Vec<bool>> {
    super::execute_script(
        conn,
        "CREATE TEMP TABLE drill_acks (n int, time timestamptz, symbol text)",
        "create the ack table",
    )
    .await?;
    let mut copy = conn
        .copy_in_raw("COPY drill_acks (n, time, symbol) FROM STDIN")
        .await
        .map_err(Error::sql("COPY acks"))?;
    let mut buf = Vec::new();
    for (n, a) in ledger.acks.iter().enumerate() {
        buf.extend_from_slice(format!("{n}\t{}\t{}\n", a.time, a.symbol).as_bytes());
    }
    copy.send(buf.as_slice())
        .await
        .map_err(Error::sql("COPY acks"))?;
    copy.finish().await.map_err(Error::sql("COPY acks"))?;
    let missing: Vec<(i32,)> = sqlx::query_as(
        "SELECT a.n FROM drill_acks a WHERE to_regclass('public.ticks') IS NULL
            OR NOT EXISTS (SELECT 1 FROM ticks t WHERE t.time = a.time AND t.symbol = a.symbol)",
    )
    .fetch_all(&mut *conn)
    .await
    .or_else(|e| match &e {
        // No ticks table at all after a failed recovery: everything is lost.
        sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => {
            Ok((0..ledger.acks.len() as i32).map(|n| (n,)).collect())
        }
        _ => Err(e),
    })
    .map_err(Error::sql("find lost writes"))?;
    let mut present = vec![true; ledger.acks.len()];
    for (n,) in missing {
        present[n as usize] = false;
    }
    super::execute_script(conn, "DROP TABLE drill_acks", "drop the ack table").await?;
    Ok(present)
}

/// A writer of `rate` ticks per second into `ticks`, recording every
/// acknowledged one.
pub async fn writer(coords: &PgCoordinates, rate: u32, seed: u64) -> Result<crate::Writer> {
    let conn = coords.connect().await?;
    Ok(crate::Writer::spawn(PgSink(conn), rate, seed))
}
