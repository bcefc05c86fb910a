//! ClickHouse's part of the workload: the writer's ticks go into
//! `live_ticks` in batches every 100 ms (as analytics pipelines insert), and
//! after a recovery one query finds which acknowledged rows are missing.

use std::time::{Duration, Instant};

use super::ClickHouse;
use crate::workload::{Ledger, LiveTick, RpoMeasurement, Sink, rpo_from};
use crate::{Error, Result};

/// The ClickHouse table the workload writes (not in the baseline).
pub(super) const CLICKHOUSE_LIVE_TABLE: &str = "live_ticks";

/// Batches into ClickHouse's `live_ticks` every 100 ms.
pub(super) struct ClickHouseSink {
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

    async fn write(&mut self, ticks: &[LiveTick]) -> Result<()> {
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
            .map_err(Error::clickhouse("insert workload ticks"))?;
        insert
            .end()
            .await
            .map_err(Error::clickhouse("insert workload ticks"))
    }
}

/// Which acknowledged rows are missing from ClickHouse's `live_ticks` now.
pub(crate) async fn measure_rpo(
    ch: &ClickHouse,
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
