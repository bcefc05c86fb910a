//! The workload: a writer that writes ticks at a fixed rate while the drill
//! runs and records every write the server acknowledged, with the moment it
//! was acknowledged. After recovery, [`measure_rpo`] (PostgreSQL),
//! [`measure_rpo_redis`] and [`measure_rpo_clickhouse`] find which
//! acknowledged writes are missing: that set, not an estimate, is the data
//! loss.
//!
//! One writer per service, each with its [`Sink`]: rows into
//! PostgreSQL's `ticks`, entries into Redis's `market_data:live` stream,
//! batches (every 100 ms, as analytics pipelines insert) into ClickHouse's
//! `live_ticks`. Keys are unique by construction (a time far from the
//! fixture's, one millisecond apart), and every random choice comes from
//! the seed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sqlx::postgres::PgConnection;

use crate::postgres::PgCoordinates;
use crate::{Error, Result};

/// 2026-01-01 00:00:00 UTC in ms: workload ticks never collide with fixture ticks.
const WORKLOAD_EPOCH_MS: i64 = 1_767_225_600_000;
/// The same instant for SQL: ticks before it are the fixture's.
pub const WORKLOAD_EPOCH_SQL: &str = "2026-01-01 00:00:00+00";
/// The Redis stream the workload writes (left out of key comparisons: the
/// RPO judges it).
pub const REDIS_LIVE_STREAM: &str = "market_data:live";
/// The ClickHouse table the workload writes (not in the baseline).
pub const CLICKHOUSE_LIVE_TABLE: &str = "live_ticks";

/// One acknowledged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Milliseconds since the epoch: the write's key in every service.
    pub ms: i64,
    /// The tick's time as text (UTC), as PostgreSQL stores it.
    pub time: String,
    pub symbol: &'static str,
    /// When the server's acknowledgement arrived.
    pub acked_at: Instant,
}

/// Every acknowledged write, in order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub acks: Vec<Ack>,
    /// Writes that failed (the server went away mid-write): not acknowledged,
    /// so their loss is no loss.
    pub failed: u64,
}

/// One tick the workload writes.
#[derive(Debug, Clone)]
pub struct LiveTick {
    pub ms: i64,
    pub time: String,
    pub symbol: &'static str,
    pub price: f64,
}

/// Where a writer's ticks go.
pub trait Sink: Send + 'static {
    /// How long ticks are gathered before one write (None: one write each).
    fn batch_every(&self) -> Option<Duration> {
        None
    }
    /// Writes the ticks; Ok means the server acknowledged all of them.
    fn write(
        &mut self,
        ticks: &[LiveTick],
    ) -> impl Future<Output = std::result::Result<(), String>> + Send;
}

/// A running writer; [`Writer::stop`] ends it and returns the ledger.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Ledger>>,
}

impl Writer {
    /// Starts writing `rate` ticks per second into PostgreSQL's `ticks`.
    pub async fn start(coords: &PgCoordinates, rate: u32, seed: u64) -> Result<Writer> {
        let conn = coords.connect().await?;
        Ok(Self::spawn(PgSink(conn), rate, seed))
    }

    /// Starts writing `rate` ticks per second through `sink`.
    pub fn spawn<S: Sink>(mut sink: S, rate: u32, seed: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let pairs = drill_fixtures::pairs();
            let symbols: Vec<&'static str> = pairs.iter().map(|p| p.symbol).collect();
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5757_5757);
            let mut ledger = Ledger::default();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let batch_every = sink.batch_every();
            let mut pending: Vec<LiveTick> = Vec::new();
            let mut batch_started = Instant::now();
            let mut i: i64 = 0;
            while !flag.load(Ordering::SeqCst) {
                tick.tick().await;
                let ms = WORKLOAD_EPOCH_MS + i;
                pending.push(LiveTick {
                    ms,
                    time: drill_fixtures::timestamp_utc(ms),
                    symbol: symbols[i as usize % symbols.len()],
                    price: pairs[i as usize % pairs.len()].ref_price * rng.random_range(0.99..1.01),
                });
                i += 1;
                if batch_every.is_some_and(|b| batch_started.elapsed() < b) {
                    continue;
                }
                batch_started = Instant::now();
                let batch = std::mem::take(&mut pending);
                match sink.write(&batch).await {
                    Ok(()) => {
                        let at = Instant::now();
                        ledger.acks.extend(batch.into_iter().map(|t| Ack {
                            ms: t.ms,
                            time: t.time,
                            symbol: t.symbol,
                            acked_at: at,
                        }));
                    }
                    Err(_) => ledger.failed += batch.len() as u64,
                }
            }
            // What was gathered but never written was never acknowledged.
            ledger.failed += pending.len() as u64;
            Ok(ledger)
        });
        Writer { stop, task }
    }

    /// Stops after the write in flight; returns what was acknowledged.
    pub async fn stop(mut self) -> Result<Ledger> {
        self.stop.store(true, Ordering::SeqCst);
        let task = std::mem::replace(
            &mut self.task,
            tokio::spawn(async { Ok(Ledger::default()) }),
        );
        task.await
            .map_err(|e| Error::server("stop the workload", e))?
    }
}

impl Drop for Writer {
    /// A drill that fails half-way must not leave a writer inserting forever.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// Rows into PostgreSQL's `ticks`, one INSERT each.
struct PgSink(PgConnection);

impl Sink for PgSink {
    async fn write(&mut self, ticks: &[LiveTick]) -> std::result::Result<(), String> {
        for t in ticks {
            sqlx::query("INSERT INTO ticks (time, symbol, price, volume, bid, ask) VALUES ($1::timestamptz, $2, $3, 1.0, $3, $3)")
                .bind(&t.time)
                .bind(t.symbol)
                .bind(t.price)
                .execute(&mut self.0)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Entries into Redis's live stream, one XADD each (stream id = the ms).
pub struct RedisSink(pub ::redis::aio::MultiplexedConnection);

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSink")
    }
}

impl Sink for RedisSink {
    async fn write(&mut self, ticks: &[LiveTick]) -> std::result::Result<(), String> {
        for t in ticks {
            let _: String = ::redis::cmd("XADD")
                .arg(REDIS_LIVE_STREAM)
                .arg(format!("{}-0", t.ms))
                .arg("symbol")
                .arg(t.symbol)
                .arg("price")
                .arg(format!("{:.8}", t.price))
                .query_async(&mut self.0)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Batches into ClickHouse's `live_ticks` every 100 ms.
pub struct ClickHouseSink {
    pub client: ::clickhouse::Client,
    pub database: String,
}

impl std::fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSink")
            .field("database", &self.database)
            .finish()
    }
}

impl Sink for ClickHouseSink {
    fn batch_every(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    async fn write(&mut self, ticks: &[LiveTick]) -> std::result::Result<(), String> {
        let mut body = String::new();
        for t in ticks {
            body.push_str(&format!(
                "{}\t{}\t{}\t{:.8}\n",
                &t.time[..19],
                t.ms.rem_euclid(1000),
                t.symbol,
                t.price
            ));
        }
        let mut insert = self.client.insert_formatted_with(format!(
            "INSERT INTO {}.{CLICKHOUSE_LIVE_TABLE} FORMAT TabSeparated",
            self.database
        ));
        insert
            .send(bytes::Bytes::from(body))
            .await
            .map_err(|e| e.to_string())?;
        insert.end().await.map_err(|e| e.to_string())
    }
}

/// The data loss after a recovery.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RpoMeasurement {
    pub acknowledged: usize,
    pub lost: usize,
    /// Fault minus the acknowledgement of the oldest lost write; zero when
    /// nothing was lost.
    #[serde(with = "crate::report::millis")]
    pub window: Duration,
    /// A few lost keys, oldest first, for the evidence.
    pub lost_sample: Vec<String>,
}

/// Which acknowledged writes are missing now, and the window they span.
pub async fn measure_rpo(
    coords: &PgCoordinates,
    ledger: &Ledger,
    fault_at: Instant,
) -> Result<RpoMeasurement> {
    let mut conn = coords.connect().await?;
    let present = present_keys(&mut conn, ledger).await?;
    Ok(rpo_from(ledger, &present, fault_at))
}

/// Pure part of the measurement: `present[i]` says whether ack `i` came back.
pub fn rpo_from(ledger: &Ledger, present: &[bool], fault_at: Instant) -> RpoMeasurement {
    let lost: Vec<&Ack> = ledger
        .acks
        .iter()
        .zip(present)
        .filter(|(_, p)| !**p)
        .map(|(a, _)| a)
        .collect();
    let window = lost
        .iter()
        .map(|a| a.acked_at)
        .min()
        .map_or(Duration::ZERO, |oldest| {
            // A write acknowledged just after the fault began (before the
            // kill landed) and then lost is still a loss: never a zero
            // window that an RPO of "0s" would call green.
            fault_at
                .saturating_duration_since(oldest)
                .max(Duration::from_millis(1))
        });
    RpoMeasurement {
        acknowledged: ledger.acks.len(),
        lost: lost.len(),
        window,
        lost_sample: lost
            .iter()
            .take(5)
            .map(|a| format!("{} {}", a.time, a.symbol))
            .collect(),
    }
}

/// Which acknowledged stream entries are missing from Redis now.
pub async fn measure_rpo_redis(
    r: &crate::redis::Redis,
    ledger: &Ledger,
    fault_at: Instant,
) -> Result<RpoMeasurement> {
    let mut con = r.connect().await?;
    let ids: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
        .arg(REDIS_LIVE_STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .map_err(|e| Error::server("XRANGE the live stream", e))?;
    let have: std::collections::HashSet<String> = ids.into_iter().map(|(id, _)| id).collect();
    let present: Vec<bool> = ledger
        .acks
        .iter()
        .map(|a| have.contains(&format!("{}-0", a.ms)))
        .collect();
    Ok(rpo_from(ledger, &present, fault_at))
}

/// Which acknowledged rows are missing from ClickHouse's `live_ticks` now.
pub async fn measure_rpo_clickhouse(
    ch: &crate::clickhouse::ClickHouse,
    ledger: &Ledger,
    fault_at: Instant,
) -> Result<RpoMeasurement> {
    let db = &ch.spec().database;
    let exists = ch
        .value(&format!(
            "SELECT count() FROM system.tables WHERE database = '{db}' AND name = '{CLICKHOUSE_LIVE_TABLE}'"
        ))
        .await?
        == "1";
    let have: std::collections::HashSet<i64> = if exists {
        ch.rows(&format!(
            "SELECT toUInt64(time) * 1000 + ms FROM {db}.{CLICKHOUSE_LIVE_TABLE}"
        ))
        .await?
        .into_iter()
        .filter_map(|r| r.first().and_then(|v| v.parse().ok()))
        .collect()
    } else {
        Default::default()
    };
    let present: Vec<bool> = ledger.acks.iter().map(|a| have.contains(&a.ms)).collect();
    Ok(rpo_from(ledger, &present, fault_at))
}

/// For each ack, whether its row exists (one round trip: the keys go in
/// through COPY into a temp table, then one anti-join).
async fn present_keys(conn: &mut PgConnection, ledger: &Ledger) -> Result<Vec<bool>> {
    crate::postgres::execute_script(
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
    crate::postgres::execute_script(conn, "DROP TABLE drill_acks", "drop the ack table").await?;
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever survives, the measurement counts exactly the missing
        /// acks and the window reaches back to the oldest of them.
        #[test]
        fn measured_loss_is_exactly_the_missing_acks(present in prop::collection::vec(any::<bool>(), 0..200), step_ms in 1u64..50) {
            let t0 = Instant::now();
            let ledger = Ledger {
                acks: (0..present.len()).map(|i| Ack { ms: i as i64, time: format!("t{i}"), symbol: "BTC", acked_at: t0 + Duration::from_millis(i as u64 * step_ms) }).collect(),
                failed: 0,
            };
            let fault_at = t0 + Duration::from_millis(present.len() as u64 * step_ms);
            let m = rpo_from(&ledger, &present, fault_at);
            prop_assert_eq!(m.lost, present.iter().filter(|p| !**p).count());
            let oldest = present.iter().position(|p| !*p);
            let want = oldest.map_or(Duration::ZERO, |i| fault_at - (t0 + Duration::from_millis(i as u64 * step_ms)));
            prop_assert_eq!(m.window, want);
        }
    }
}
