//! Redis's part of the workload: the writer's ticks go into a stream, one
//! XADD each (the stream id is the write's millisecond), and after a
//! recovery XRANGE finds which acknowledged entries are missing.

use super::Redis;
use std::time::Instant;

use crate::workload::{Boundary, Ledger, LiveTick, RpoMeasurement, Sink, pitr_from, rpo_from};
use crate::{Error, Result};

/// The Redis stream the workload writes (left out of key comparisons: the
/// RPO judges it).
pub(super) const REDIS_LIVE_STREAM: &str = "market_data:live";

/// Entries into Redis's live stream, one XADD each (stream id = the ms).
pub(super) struct RedisSink(pub ::redis::aio::MultiplexedConnection);

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSink")
    }
}

impl Sink for RedisSink {
    async fn write(&mut self, ticks: &[LiveTick]) -> Result<()> {
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
                .map_err(Error::redis("XADD a workload tick"))?;
        }
        Ok(())
    }
}

/// Which acknowledged stream entries are missing from Redis now.
pub(crate) async fn measure_rpo(
    r: &Redis,
    ledger: &Ledger,
    fault_at: Instant,
    target: Option<&Boundary>,
) -> Result<RpoMeasurement> {
    let mut con = r.connect().await?;
    let ids: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
        .arg(REDIS_LIVE_STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .map_err(Error::redis("XRANGE the live stream"))?;
    let have: std::collections::HashSet<String> = ids.into_iter().map(|(id, _)| id).collect();
    let present: Vec<bool> = ledger
        .acks
        .iter()
        .map(|a| have.contains(&format!("{}-0", a.ms)))
        .collect();
    Ok(match target {
        Some(t) => pitr_from(ledger, &present, fault_at, t),
        None => rpo_from(ledger, &present, fault_at),
    })
}
