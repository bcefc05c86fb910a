//! The workload: a writer that writes ticks at a fixed rate while the drill
//! runs and records every write the server acknowledged, with the moment it
//! was acknowledged. After recovery, [`measure_rpo`] (PostgreSQL),
//! [`measure_rpo_redis`] and [`measure_rpo_clickhouse`] find which
//! acknowledged writes are missing: that set, not an estimate, is the data
//! loss.
//!
//! One writer per service, each with its [`Sink`] (in the service's
//! folder): rows into PostgreSQL's `ticks`, entries into Redis's
//! `market_data:live` stream, batches (every 100 ms, as analytics pipelines
//! insert) into ClickHouse's `live_ticks`. Keys are unique by construction (a time far from the
//! fixture's, one millisecond apart), and every random choice comes from
//! the seed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{Error, Result};

/// 2026-01-01 00:00:00 UTC in ms: workload ticks never collide with fixture ticks.
const WORKLOAD_EPOCH_MS: i64 = 1_767_225_600_000;
/// The same instant for SQL: ticks before it are the fixture's.
pub(crate) const WORKLOAD_EPOCH_SQL: &str = "2026-01-01 00:00:00+00";
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
    fn write(&mut self, ticks: &[LiveTick]) -> impl Future<Output = Result<()>> + Send;
}

/// A running writer; [`Writer::stop`] ends it and returns the ledger.
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Ledger>>,
}

impl Writer {
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
        task.await.map_err(|e| {
            Error::unexpected(
                "stop the workload",
                format!("the writer task ended abnormally: {e}"),
            )
        })?
    }
}

impl Drop for Writer {
    /// A drill that fails half-way must not leave a writer inserting forever.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// The data loss after a recovery.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RpoMeasurement {
    pub acknowledged: usize,
    pub lost: usize,
    /// Fault minus the acknowledgement of the oldest lost write; zero when
    /// nothing was lost.
    #[serde(with = "crate::vocab::millis")]
    pub window: Duration,
    /// A few lost keys, oldest first, for the evidence.
    pub lost_sample: Vec<String>,
}

/// Pure part of the measurement: `present[i]` says whether ack `i` came back.
pub(crate) fn rpo_from(ledger: &Ledger, present: &[bool], fault_at: Instant) -> RpoMeasurement {
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
