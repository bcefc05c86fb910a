//! TimescaleDB's own state, read from a live database, and how two readings
//! differ: what a restore can get wrong that row counts and the catalog
//! fingerprint do not see.
//!
//! - hypertables: their dimensions and chunks, each chunk keyed by its
//!   hypertable and time range (a restore may rename chunks; the range is
//!   what matters), and whether it is compressed;
//! - compression: the settings of each hypertable and, from
//!   `hypertable_compression_stats`, how many chunks are compressed and
//!   their sizes before and after;
//! - continuous aggregates: the definition, and whether the materialised
//!   rows equal a fresh aggregation of the raw rows (below the watermark:
//!   what is not materialised yet is not stale, it is pending);
//! - background jobs: the policies (by procedure, hypertable, schedule and
//!   config, never by id), whether this database's job scheduler runs, and
//!   whether `timescaledb.restoring` was left on (a restore without
//!   `timescaledb_post_restore()`: no job ever runs again);
//! - the extension's version.
//!
//! Reading never changes the server. [`diff`] names each difference the way
//! a person would say it ("chunk _hyper_1_4_chunk (public.ticks, ...) no
//! longer compressed", "cagg public.market_prices_5min: 12 buckets stale").

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use crate::{Error, Result};

/// What TimescaleDB holds in one database at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TsState {
    /// `extversion` of timescaledb.
    pub version: String,
    /// `schema.table` of each user hypertable.
    pub hypertables: BTreeMap<String, Hypertable>,
    /// `hypertable [start, end)` to its chunk.
    pub chunks: BTreeMap<String, Chunk>,
    /// `schema.view` of each continuous aggregate.
    pub caggs: BTreeMap<String, Cagg>,
    /// Each policy job, described without its id.
    pub jobs: Vec<String>,
    /// This database's job scheduler is running.
    pub scheduler: bool,
    /// `timescaledb.restoring` is on for new sessions of this database.
    pub restoring: bool,
}

impl TsState {
    /// As compared across major versions: continuous aggregate
    /// definitions without qualifiers (see
    /// [`super::snapshot::Fingerprint::across_versions`]).
    pub fn across_versions(&self) -> TsState {
        let mut s = self.clone();
        for c in s.caggs.values_mut() {
            c.definition = super::snapshot::unqualified(&c.definition);
        }
        s
    }
}

/// One hypertable.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hypertable {
    /// e.g. `time: Time 00:02:00`.
    pub dimensions: Vec<String>,
    pub chunks: i64,
    /// Segment-by and order-by, when compression is on.
    pub compression: Option<String>,
    pub compressed_chunks: i64,
    pub bytes_before_compression: i64,
    pub bytes_after_compression: i64,
}

/// One chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// `_timescaledb_internal._hyper_1_4_chunk`.
    pub name: String,
    pub compressed: bool,
}

/// One continuous aggregate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cagg {
    /// The hypertable it aggregates.
    pub source: String,
    pub definition: String,
    pub materialized_only: bool,
    /// Materialised buckets (below the watermark).
    pub buckets: i64,
    /// Buckets whose materialised rows differ from a fresh aggregation.
    pub stale_buckets: i64,
    /// The watermark, as text (`none` before the first refresh).
    pub watermark: String,
}

/// Whether the database has the timescaledb extension.
pub async fn installed(conn: &mut PgConnection) -> Result<bool> {
    let (has,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::sql("look for timescaledb"))?;
    Ok(has)
}

const USER_HT: &str = "hypertable_schema NOT LIKE '\\_timescaledb%'";

async fn rows<T>(conn: &mut PgConnection, sql: &str, what: &str) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::sql(format!("read timescaledb {what}")))
}

/// Reads the state; None when the extension is not installed. When
/// `timescaledb.restoring` is off but no scheduler runs yet, waits up to
/// `scheduler_grace` for it (post_restore starts it asynchronously).
pub async fn take(conn: &mut PgConnection, scheduler_grace: Duration) -> Result<Option<TsState>> {
    if !installed(conn).await? {
        return Ok(None);
    }
    let mut s = TsState {
        version: rows::<(String,)>(
            conn,
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
            "version",
        )
        .await?
        .pop()
        .map(|v| v.0)
        .unwrap_or_default(),
        ..TsState::default()
    };
    read_hypertables(conn, &mut s).await?;
    read_caggs(conn, &mut s).await?;
    s.jobs = rows::<(String,)>(
        conn,
        "SELECT j.proc_schema || '.' || j.proc_name || ' on ' ||
                coalesce(j.hypertable_schema || '.' || j.hypertable_name, '-') ||
                ' every ' || j.schedule_interval::text ||
                coalesce(' ' || (j.config - 'hypertable_id' - 'mat_hypertable_id')::text, '') ||
                CASE WHEN j.scheduled THEN '' ELSE ' (paused)' END
           FROM timescaledb_information.jobs j
          WHERE j.job_id >= 1000
          ORDER BY 1",
        "jobs",
    )
    .await?
    .into_iter()
    .map(|r| r.0)
    .collect();
    let (restoring,): (String,) =
        sqlx::query_as("SELECT coalesce(current_setting('timescaledb.restoring', true), 'off')")
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::sql("read timescaledb.restoring"))?;
    s.restoring = restoring == "on";
    let started = Instant::now();
    loop {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database()
                AND (backend_type = 'TimescaleDB Background Worker Scheduler'
                     OR application_name = 'TimescaleDB Background Worker Scheduler')",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::sql("look for the timescaledb job scheduler"))?;
        s.scheduler = n > 0;
        if s.scheduler || s.restoring || started.elapsed() >= scheduler_grace {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Some(s))
}

async fn read_hypertables(conn: &mut PgConnection, s: &mut TsState) -> Result<()> {
    type Ht = (String, i64, bool);
    for (name, chunks, compression_on) in rows::<Ht>(
        conn,
        &format!(
            "SELECT hypertable_schema || '.' || hypertable_name, num_chunks::bigint, compression_enabled
               FROM timescaledb_information.hypertables WHERE {USER_HT} ORDER BY 1"
        ),
        "hypertables",
    )
    .await?
    {
        let mut ht = Hypertable {
            chunks,
            ..Hypertable::default()
        };
        if compression_on {
            let settings: Vec<(String,)> = rows(
                conn,
                &format!(
                    "SELECT 'segmentby ' || coalesce(segmentby, '-') || ', orderby ' || coalesce(orderby, '-')
                       FROM timescaledb_information.hypertable_compression_settings
                      WHERE hypertable = {}::regclass",
                    literal(&name)
                ),
                "compression settings",
            )
            .await?;
            ht.compression = Some(settings.into_iter().next().map_or("on".into(), |r| r.0));
            let stats: Vec<(i64, i64, i64)> = rows(
                conn,
                &format!(
                    "SELECT coalesce(sum(number_compressed_chunks), 0)::bigint,
                            coalesce(sum(before_compression_total_bytes), 0)::bigint,
                            coalesce(sum(after_compression_total_bytes), 0)::bigint
                       FROM hypertable_compression_stats({}::regclass)",
                    literal(&name)
                ),
                "compression stats",
            )
            .await?;
            if let Some((n, before, after)) = stats.into_iter().next() {
                ht.compressed_chunks = n;
                ht.bytes_before_compression = before;
                ht.bytes_after_compression = after;
            }
        }
        s.hypertables.insert(name, ht);
    }
    for (ht, column, kind) in rows::<(String, String, String)>(
        conn,
        &format!(
            "SELECT hypertable_schema || '.' || hypertable_name, column_name::text,
                    dimension_type || ' ' || coalesce(time_interval::text, integer_interval::text, '')
               FROM timescaledb_information.dimensions WHERE {USER_HT} ORDER BY 1, dimension_number"
        ),
        "dimensions",
    )
    .await?
    {
        if let Some(h) = s.hypertables.get_mut(&ht) {
            h.dimensions.push(format!("{column}: {kind}"));
        }
    }
    for (ht, name, range, compressed) in rows::<(String, String, String, bool)>(
        conn,
        &format!(
            "SELECT hypertable_schema || '.' || hypertable_name, chunk_schema || '.' || chunk_name,
                    '[' || coalesce(range_start::text, range_start_integer::text) || ', ' ||
                           coalesce(range_end::text, range_end_integer::text) || ')',
                    is_compressed
               FROM timescaledb_information.chunks WHERE {USER_HT} ORDER BY 1, 3"
        ),
        "chunks",
    )
    .await?
    {
        s.chunks
            .insert(format!("{ht} {range}"), Chunk { name, compressed });
    }
    Ok(())
}

async fn read_caggs(conn: &mut PgConnection, s: &mut TsState) -> Result<()> {
    type Row = (String, String, bool, String, String, i32);
    let caggs: Vec<Row> = rows(
        conn,
        "SELECT c.view_schema || '.' || c.view_name, c.hypertable_schema || '.' || c.hypertable_name,
                c.materialized_only, c.view_definition,
                c.materialization_hypertable_schema || '.' || c.materialization_hypertable_name,
                h.id
           FROM timescaledb_information.continuous_aggregates c
           JOIN _timescaledb_catalog.hypertable h
             ON h.schema_name = c.materialization_hypertable_schema
            AND h.table_name = c.materialization_hypertable_name
          ORDER BY 1",
        "continuous aggregates",
    )
    .await?;
    for (view, source, materialized_only, definition, mat, mat_id) in caggs {
        let (stale, buckets, watermark) = staleness(conn, &view, &definition, &mat, mat_id).await?;
        s.caggs.insert(
            view,
            Cagg {
                source,
                definition: crate::service::postgres::snapshot::normalize_definition(
                    &definition.split_whitespace().collect::<Vec<_>>().join(" "),
                ),
                materialized_only,
                buckets,
                stale_buckets: stale,
                watermark,
            },
        );
    }
    Ok(())
}

/// Buckets below the watermark whose materialised rows differ from the
/// view's own query run on the raw rows now; floating-point columns are
/// compared as `real` (an aggregate summed in another order differs in its
/// last bits, not in its value).
async fn staleness(
    conn: &mut PgConnection,
    view: &str,
    definition: &str,
    mat: &str,
    mat_id: i32,
) -> Result<(i64, i64, String)> {
    let columns: Vec<(String, String)> = rows(
        conn,
        &format!(
            "SELECT quote_ident(attname), format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = {}::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            literal(view)
        ),
        "aggregate columns",
    )
    .await?;
    let bucket: Vec<(String,)> = rows(
        conn,
        &format!(
            "SELECT quote_ident(column_name::text) FROM timescaledb_information.dimensions
              WHERE hypertable_schema || '.' || hypertable_name = {} ORDER BY dimension_number LIMIT 1",
            literal(mat)
        ),
        "aggregate bucket column",
    )
    .await?;
    let Some((bucket,)) = bucket.into_iter().next() else {
        return Ok((0, 0, "none".into()));
    };
    let select = columns
        .iter()
        .map(|(c, ty)| match ty.as_str() {
            "double precision" | "real" | "numeric" => format!("{c}::real AS {c}"),
            _ => c.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (watermark,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM {mat})
                     THEN _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark({mat_id}))::text END"
    )))
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::sql(format!("read the watermark of {view}")))?;
    let Some(watermark) = watermark else {
        return Ok((0, 0, "none".into()));
    };
    let query = definition.trim().trim_end_matches(';');
    let sql = format!(
        "WITH m AS (SELECT {select} FROM {mat} WHERE {bucket} < {wm}::timestamptz),
              f AS (SELECT {select} FROM ({query}) q WHERE {bucket} < {wm}::timestamptz),
              d AS ((TABLE m EXCEPT ALL TABLE f) UNION ALL (TABLE f EXCEPT ALL TABLE m))
         SELECT (SELECT count(DISTINCT {bucket}) FROM d), (SELECT count(DISTINCT {bucket}) FROM m)",
        wm = literal(&watermark)
    );
    let (stale, buckets): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::sql(format!(
            "compare {view} with a fresh aggregation"
        )))?;
    Ok((stale, buckets, watermark))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What is wrong with `now` against `before`, one line per problem, in four
/// groups: hypertables, compression, continuous aggregates, jobs. A chunk
/// more, or one more compressed, is not a problem (a policy may have run);
/// a chunk gone, or no longer compressed, is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsDiff {
    pub hypertables: Vec<String>,
    pub compression: Vec<String>,
    pub caggs: Vec<String>,
    pub jobs: Vec<String>,
}

/// Compares two readings (see [`TsDiff`]).
pub fn diff(before: &TsState, now: Option<&TsState>) -> TsDiff {
    let mut d = TsDiff::default();
    let Some(now) = now else {
        d.hypertables.push(format!(
            "extension timescaledb {} is not installed in the database",
            before.version
        ));
        return d;
    };
    if before.version != now.version {
        d.hypertables.push(format!(
            "extension timescaledb is {}, was {}",
            now.version, before.version
        ));
    }
    for (name, ht) in &before.hypertables {
        let Some(n) = now.hypertables.get(name) else {
            d.hypertables.push(format!(
                "hypertable {name} is gone (missing, or restored as a plain table)"
            ));
            continue;
        };
        if ht.dimensions != n.dimensions {
            d.hypertables.push(format!(
                "hypertable {name}: dimensions {}, were {}",
                n.dimensions.join("; "),
                ht.dimensions.join("; ")
            ));
        }
        if ht.compression != n.compression {
            d.compression.push(format!(
                "hypertable {name}: compression {}, was {}",
                n.compression.as_deref().unwrap_or("off"),
                ht.compression.as_deref().unwrap_or("off")
            ));
        }
    }
    for (key, chunk) in &before.chunks {
        match now.chunks.get(key) {
            None => d
                .hypertables
                .push(format!("chunk {} ({key}) is missing", chunk.name)),
            Some(c) if chunk.compressed && !c.compressed => d
                .compression
                .push(format!("chunk {} ({key}) no longer compressed", c.name)),
            Some(_) => {}
        }
    }
    for (name, cagg) in &before.caggs {
        let Some(c) = now.caggs.get(name) else {
            d.caggs
                .push(format!("cagg {name} is missing (over {})", cagg.source));
            continue;
        };
        if c.definition != cagg.definition {
            d.caggs.push(format!(
                "cagg {name}: definition changed: was `{}`, now `{}`",
                cagg.definition, c.definition
            ));
        }
        if c.stale_buckets > 0 {
            d.caggs.push(format!(
                "cagg {name}: {} buckets stale (of {} materialised below the watermark {}): CALL refresh_continuous_aggregate('{name}', NULL, NULL)",
                c.stale_buckets, c.buckets, c.watermark
            ));
        }
        if c.buckets < cagg.buckets && c.stale_buckets == 0 {
            d.caggs.push(format!(
                "cagg {name}: {} buckets materialised, were {}",
                c.buckets, cagg.buckets
            ));
        }
    }
    for job in &before.jobs {
        if !now.jobs.contains(job) {
            d.jobs.push(format!("job {job} is missing"));
        }
    }
    if now.restoring {
        d.jobs.push(
            "timescaledb.restoring is still on: no background job will run; SELECT timescaledb_post_restore()"
                .into(),
        );
    } else if before.scheduler && !now.scheduler {
        d.jobs
            .push("the background job scheduler is not running for this database".into());
    }
    d
}

impl TsState {
    /// One line for the timeline: `2 hypertables, 7 chunks (5 compressed), 1 cagg, 2 jobs`.
    pub fn summary(&self) -> String {
        let compressed = self.chunks.values().filter(|c| c.compressed).count();
        format!(
            "timescaledb {}: {} hypertables, {} chunks ({compressed} compressed), {} caggs, {} jobs",
            self.version,
            self.hypertables.len(),
            self.chunks.len(),
            self.caggs.len(),
            self.jobs.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TsState {
        TsState {
            version: "2.28.3".into(),
            hypertables: [(
                "public.ticks".to_string(),
                Hypertable {
                    dimensions: vec!["time: Time 00:02:00".into()],
                    chunks: 2,
                    compression: Some("segmentby symbol, orderby time DESC".into()),
                    compressed_chunks: 1,
                    ..Hypertable::default()
                },
            )]
            .into(),
            chunks: [
                (
                    "public.ticks [a, b)".to_string(),
                    Chunk {
                        name: "_timescaledb_internal._hyper_1_1_chunk".into(),
                        compressed: true,
                    },
                ),
                (
                    "public.ticks [b, c)".to_string(),
                    Chunk {
                        name: "_timescaledb_internal._hyper_1_2_chunk".into(),
                        compressed: false,
                    },
                ),
            ]
            .into(),
            caggs: [(
                "public.candles".to_string(),
                Cagg {
                    source: "public.ticks".into(),
                    definition: "SELECT ...".into(),
                    buckets: 10,
                    ..Cagg::default()
                },
            )]
            .into(),
            jobs: vec![
                "_timescaledb_functions.policy_compression on public.ticks every 1 day".into(),
            ],
            scheduler: true,
            restoring: false,
        }
    }

    #[test]
    fn the_same_state_and_more_compression_are_no_difference() {
        let s = state();
        assert_eq!(diff(&s, Some(&s)), TsDiff::default());
        let mut more = s.clone();
        more.chunks.values_mut().for_each(|c| c.compressed = true);
        more.chunks.insert(
            "public.ticks [c, d)".into(),
            Chunk {
                name: "x".into(),
                compressed: false,
            },
        );
        assert_eq!(diff(&s, Some(&more)), TsDiff::default());
    }

    #[test]
    fn each_breakage_is_named() {
        let s = state();
        let mut now = s.clone();
        now.chunks
            .get_mut("public.ticks [a, b)")
            .unwrap()
            .compressed = false;
        now.caggs.get_mut("public.candles").unwrap().stale_buckets = 12;
        now.jobs.clear();
        now.restoring = true;
        let d = diff(&s, Some(&now));
        assert_eq!(
            d.compression,
            vec![
                "chunk _timescaledb_internal._hyper_1_1_chunk (public.ticks [a, b)) no longer compressed"
            ]
        );
        assert!(
            d.caggs[0].starts_with("cagg public.candles: 12 buckets stale"),
            "{d:?}"
        );
        assert!(d.jobs[0].contains("policy_compression on public.ticks every 1 day is missing"));
        assert!(d.jobs[1].contains("timescaledb_post_restore"));
        let mut plain = s.clone();
        plain.hypertables.clear();
        plain.chunks.clear();
        let d = diff(&s, Some(&plain));
        assert!(
            d.hypertables[0].contains("restored as a plain table"),
            "{d:?}"
        );
        assert_eq!(d.hypertables.len(), 3);
        assert!(diff(&s, None).hypertables[0].contains("not installed"));
    }
}
