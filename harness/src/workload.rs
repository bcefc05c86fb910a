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
    /// When the write was sent (its batch, for batched sinks).
    pub sent_at: Instant,
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

impl Ledger {
    /// The writer's pace, for people: acknowledged writes per second and
    /// the time each took to be acknowledged (what synchronous replication
    /// costs shows here).
    pub fn pace(&self) -> String {
        let (Some(first), Some(last)) = (self.acks.first(), self.acks.last()) else {
            return "no write acknowledged".into();
        };
        let span = last.acked_at.duration_since(first.sent_at).as_secs_f64();
        let mut waits: Vec<Duration> = self
            .acks
            .iter()
            .map(|a| a.acked_at.duration_since(a.sent_at))
            .collect();
        waits.sort();
        let at = |q: f64| waits[((waits.len() - 1) as f64 * q).round() as usize];
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        format!(
            "{:.0} writes/s, acknowledged in p50 {}, p99 {}, max {}",
            if span > 0.0 {
                self.acks.len() as f64 / span
            } else {
                0.0
            },
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0))
        )
    }
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
                let sent = Instant::now();
                match sink.write(&batch).await {
                    Ok(()) => {
                        let at = Instant::now();
                        ledger.acks.extend(batch.into_iter().map(|t| Ack {
                            ms: t.ms,
                            time: t.time,
                            symbol: t.symbol,
                            sent_at: sent,
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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RpoMeasurement {
    pub acknowledged: usize,
    pub lost: usize,
    /// Fault minus the acknowledgement of the oldest lost write; zero when
    /// nothing was lost.
    #[serde(with = "crate::vocab::millis")]
    pub window: Duration,
    /// A few lost keys, oldest first, for the evidence.
    pub lost_sample: Vec<String>,
    /// The ledger's verdict on a point-in-time recovery, when the recovery
    /// had a target: then `lost` counts the writes acknowledged before the
    /// target that are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PitrLedger>,
    /// How far the replica was behind when the primary died, when the
    /// recovery failed over to it: what the loss should be explained by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationLag>,
}

/// A replica's distance from its primary, read at one moment (the fault).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicationLag {
    /// WAL the primary had written that the replica had not replayed.
    pub bytes: u64,
    /// The primary's clock minus the replica's last replayed commit
    /// (`pg_last_xact_replay_timestamp()`): under load, how old the newest
    /// data on the replica is.
    #[serde(rename = "behind_ms", with = "crate::vocab::millis")]
    pub behind: Duration,
    pub primary_lsn: String,
    pub received_lsn: String,
    pub replayed_lsn: String,
    /// `pg_stat_replication`'s state and sync_state, or `not connected`.
    pub state: String,
    /// The primary waited for the replica before acknowledging.
    pub synchronous: bool,
}

/// What the ledger says of a recovery to a target besides the lost writes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PitrLedger {
    /// The target as the scenario wrote it, with its wall-clock time.
    pub target: String,
    /// Writes sent after the target that came back anyway.
    pub unexpected: usize,
    pub unexpected_sample: Vec<String>,
    /// Writes in flight at the target (sent before, acknowledged after):
    /// either way is right.
    pub in_flight_present: usize,
    pub in_flight_absent: usize,
}

/// Where a point-in-time recovery was asked to stop, on the drill's clock:
/// somewhere in `since..=at` (a point when they are equal; an interval when
/// the stop is only known between two readings of the clock, such as a
/// restore point made by a statement, or a base backup's consistency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub since: Instant,
    pub at: Instant,
    /// The target as the scenario wrote it, and the instant as wall-clock time.
    pub label: String,
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
    let window = window_from(fault_at, lost.iter().map(|a| a.acked_at).min());
    RpoMeasurement {
        acknowledged: ledger.acks.len(),
        lost: lost.len(),
        window,
        lost_sample: sample(&lost),
        pitr: None,
        replication: None,
    }
}

/// The fault minus the oldest missing write's acknowledgement. A write
/// acknowledged just after the fault began (before the kill landed) and
/// then lost is still a loss: never a zero window that an RPO of "0s"
/// would call green.
fn window_from(fault_at: Instant, oldest_missing: Option<Instant>) -> Duration {
    oldest_missing.map_or(Duration::ZERO, |oldest| {
        fault_at
            .saturating_duration_since(oldest)
            .max(Duration::from_millis(1))
    })
}

fn sample(acks: &[&Ack]) -> Vec<String> {
    acks.iter()
        .take(5)
        .map(|a| format!("{} {}", a.time, a.symbol))
        .collect()
}

/// The ledger as the oracle of a recovery to `target`: every write
/// acknowledged before it must be there (else `lost`), every write sent
/// after it must not (else `unexpected`), and a write in flight at it may
/// be either (as may one acknowledged while the stop was still uncertain,
/// within the boundary's interval). A target after the fault is judged at the fault: the fault is
/// the incident, and a recovery that brings back writes from after it
/// replayed the incident too. The window is the fault minus the oldest
/// acknowledged write from before the fault that is missing: the data the
/// recovery gave up, whether the target lost it or a missing write did.
pub(crate) fn pitr_from(
    ledger: &Ledger,
    present: &[bool],
    fault_at: Instant,
    target: &Boundary,
) -> RpoMeasurement {
    let t = target.at.min(fault_at);
    let since = target.since.min(t);
    let mut lost = Vec::new();
    let mut unexpected = Vec::new();
    let (mut in_present, mut in_absent) = (0, 0);
    let mut oldest_missing: Option<Instant> = None;
    for (a, p) in ledger.acks.iter().zip(present) {
        if !*p && a.acked_at <= fault_at {
            oldest_missing = Some(oldest_missing.map_or(a.acked_at, |o| o.min(a.acked_at)));
        }
        if a.acked_at < since {
            if !*p {
                lost.push(a);
            }
        } else if a.sent_at > t {
            if *p {
                unexpected.push(a);
            }
        } else if *p {
            in_present += 1;
        } else {
            in_absent += 1;
        }
    }
    let window = window_from(fault_at, oldest_missing);
    RpoMeasurement {
        acknowledged: ledger.acks.len(),
        lost: lost.len(),
        window,
        lost_sample: sample(&lost),
        replication: None,
        pitr: Some(PitrLedger {
            target: target.label.clone(),
            unexpected: unexpected.len(),
            unexpected_sample: sample(&unexpected),
            in_flight_present: in_present,
            in_flight_absent: in_absent,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_gives_rate_and_acknowledgement_percentiles() {
        let t0 = Instant::now();
        let acks: Vec<Ack> = (0..100u64)
            .map(|i| Ack {
                ms: i as i64,
                time: String::new(),
                symbol: "BTC",
                sent_at: t0 + Duration::from_millis(10 * i),
                // One slow acknowledgement: the max, not the median.
                acked_at: t0 + Duration::from_millis(10 * i + if i == 50 { 900 } else { 2 }),
            })
            .collect();
        let pace = Ledger { acks, failed: 0 }.pace();
        assert!(pace.contains("p50 2.0 ms"), "{pace}");
        assert!(pace.contains("max 900.0 ms"), "{pace}");
        assert!(pace.starts_with("101 writes/s"), "{pace}");
        assert_eq!(Ledger::default().pace(), "no write acknowledged");
    }
    use proptest::prelude::*;

    proptest! {
        /// Whatever survives, the measurement counts exactly the missing
        /// acks and the window reaches back to the oldest of them.
        #[test]
        fn measured_loss_is_exactly_the_missing_acks(present in prop::collection::vec(any::<bool>(), 0..200), step_ms in 1u64..50) {
            let t0 = Instant::now();
            let ledger = Ledger {
                acks: (0..present.len()).map(|i| Ack { ms: i as i64, time: format!("t{i}"), symbol: "BTC", sent_at: t0 + Duration::from_millis(i as u64 * step_ms), acked_at: t0 + Duration::from_millis(i as u64 * step_ms) }).collect(),
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

    /// A write at `i`: sent at `sent_ms`, committed `commit_ms` later and
    /// acknowledged `ack_ms` after that.
    fn ledger_of(writes: &[(u64, u64, u64)], t0: Instant) -> (Ledger, Vec<Instant>) {
        let mut acks = Vec::new();
        let mut commits = Vec::new();
        for (i, (sent, commit, ack)) in writes.iter().enumerate() {
            let sent_at = t0 + Duration::from_millis(*sent);
            commits.push(sent_at + Duration::from_millis(*commit));
            acks.push(Ack {
                ms: i as i64,
                time: format!("t{i}"),
                symbol: "ETH",
                sent_at,
                acked_at: sent_at + Duration::from_millis(commit + ack),
            });
        }
        (Ledger { acks, failed: 0 }, commits)
    }

    #[test]
    fn a_target_after_the_fault_is_judged_at_the_fault() {
        let t0 = Instant::now();
        // One write a millisecond, committed and acknowledged at once.
        let writes: Vec<(u64, u64, u64)> = (0..100).map(|i| (i, 0, 0)).collect();
        let (ledger, commits) = ledger_of(&writes, t0);
        let fault = t0 + Duration::from_millis(50);
        let late = t0 + Duration::from_millis(80);
        let present: Vec<bool> = commits.iter().map(|c| *c <= late).collect();
        let m = pitr_from(
            &ledger,
            &present,
            fault,
            &Boundary {
                since: late,
                at: late,
                label: "fault + 30ms".into(),
            },
        );
        let p = m.pitr.unwrap();
        assert_eq!(m.lost, 0);
        assert_eq!(
            p.unexpected, 30,
            "writes 51..=80 came back though sent after the fault"
        );
    }

    proptest! {
        /// A recovery that stops exactly at the target (a write is back
        /// iff it committed before the target, and every commit lies
        /// between its send and its acknowledgement) is judged green:
        /// nothing lost, nothing unexpected, whatever the target.
        #[test]
        fn an_exact_recovery_to_any_target_is_green(
            writes in prop::collection::vec((0u64..5_000, 0u64..30, 0u64..30), 0..300),
            target_ms in 0u64..6_000,
        ) {
            let t0 = Instant::now();
            let (ledger, commits) = ledger_of(&writes, t0);
            let t = t0 + Duration::from_millis(target_ms);
            let present: Vec<bool> = commits.iter().map(|c| *c <= t).collect();
            let m = pitr_from(&ledger, &present, t0 + Duration::from_secs(6), &Boundary { since: t, at: t, label: "t".into() });
            let p = m.pitr.clone().unwrap();
            prop_assert_eq!(m.lost, 0);
            prop_assert_eq!(p.unexpected, 0);
            let in_flight = ledger.acks.iter().filter(|a| a.sent_at <= t && a.acked_at >= t).count();
            prop_assert_eq!(p.in_flight_present + p.in_flight_absent, in_flight);
        }

        /// A recovery that stopped at another point than the target is
        /// caught: every write that committed between the two and was
        /// not in flight at the target is counted, as lost (stopped
        /// early) or unexpected (stopped late).
        #[test]
        fn a_recovery_to_the_wrong_point_is_caught(
            writes in prop::collection::vec((0u64..5_000, 0u64..30, 0u64..30), 1..300),
            target_ms in 0u64..6_000,
            reached_ms in 0u64..6_000,
        ) {
            let t0 = Instant::now();
            let (ledger, commits) = ledger_of(&writes, t0);
            let t = t0 + Duration::from_millis(target_ms);
            let reached = t0 + Duration::from_millis(reached_ms);
            let present: Vec<bool> = commits.iter().map(|c| *c <= reached).collect();
            let m = pitr_from(&ledger, &present, t0 + Duration::from_secs(6), &Boundary { since: t, at: t, label: "t".into() });
            let want_lost = ledger.acks.iter().zip(&commits).filter(|(a, c)| a.acked_at < t && **c > reached).count();
            let want_unexpected = ledger.acks.iter().zip(&commits).filter(|(a, c)| a.sent_at > t && **c <= reached).count();
            let unexpected = m.pitr.as_ref().unwrap().unexpected;
            prop_assert_eq!(m.lost, want_lost);
            prop_assert_eq!(unexpected, want_unexpected);
            if reached < t {
                prop_assert_eq!(unexpected, 0);
            } else {
                prop_assert_eq!(m.lost, 0);
            }
        }
    }
}
