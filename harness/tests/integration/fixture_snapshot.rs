//! The Nexwave fixture loads with the counts the generator promises, the
//! candles view answers for every pair, and the snapshot notices what a
//! partial restore loses (seed 001: only `ticks` left).

use drill::service::postgres::checks as check;
use drill::service::postgres::{execute_script, fixture, snapshot};
use drill_fixtures::{Dataset, Flavour};

use super::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_loads_exactly_and_checks_see_a_partial_restore() {
    let pg = start("fixture");
    let coords = pg.coordinates();
    let dataset = Dataset {
        ticks: 3_400,
        ..Dataset::default()
    };
    let loaded = fixture::load_nexwave(coords, Flavour::Postgres, &dataset)
        .await
        .unwrap();
    let promised: Vec<(String, u64)> = dataset
        .tables()
        .iter()
        .map(|t| (t.table.to_string(), t.row_count))
        .collect();
    assert_eq!(loaded.tables, promised);

    let before = snapshot::take(coords).await.unwrap();
    assert_eq!(before.rows["public.ticks"], 3_400);
    assert_eq!(before.rows["public.pairs"], 34);
    for rel in [
        "pairs",
        "ticks",
        "orders",
        "positions",
        "whale_activities",
        "performance_metrics",
        "candles_15m_ohlcv",
    ] {
        assert!(
            before
                .schema
                .objects
                .contains_key(&format!("relation public.{rel}")),
            "{rel} not in fingerprint"
        );
    }
    assert!(
        before
            .schema
            .objects
            .contains_key("constraint public.ticks.ticks_symbol_fkey")
    );

    let mut conn = coords.connect().await.unwrap();
    // The checksum sums each row's hash as int8, which PostgreSQL adds up
    // as an exact numeric: the same value as summing each hash cast to
    // numeric (the slower form it replaced), so checksums stay comparable.
    for (table, sum) in &before.content {
        let (exact,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(sum(hash_record_extended(t, 0)::numeric), 0)::text FROM {table} t"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(sum, &exact, "{table}");
    }
    let (symbols,): (i64,) = sqlx::query_as("SELECT count(DISTINCT symbol) FROM candles_15m_ohlcv")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(symbols, 34, "the candles view must answer for every pair");

    // Same count, different rows: the content checksum notices.
    execute_script(
        &mut conn,
        "UPDATE ticks SET price = price + 1 WHERE ctid = (SELECT ctid FROM ticks LIMIT 1)",
        "change a row",
    )
    .await
    .unwrap();
    let changed = snapshot::take(coords).await.unwrap();
    assert_eq!(changed.rows, before.rows);
    let content = check::content(
        &before.rows,
        &before.content,
        &changed.rows,
        &changed.content,
    );
    let red: Vec<&str> = content
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(red, ["content public.ticks"]);

    // Seed 001: the restore stopped and left only ticks.
    execute_script(
        &mut conn,
        "DROP VIEW candles_15m_ohlcv; DROP TABLE orders, positions, whale_activities, performance_metrics; \
         ALTER TABLE ticks DROP CONSTRAINT ticks_symbol_fkey; DROP TABLE pairs;",
        "simulate a partial restore",
    )
    .await
    .unwrap();
    let after = snapshot::take(coords).await.unwrap();
    let rows = check::rows(&before.rows, &after.rows);
    assert!(
        rows.iter()
            .find(|c| c.name == "rows public.ticks")
            .unwrap()
            .ok
    );
    assert_eq!(rows.iter().filter(|c| c.actual == "missing").count(), 5);
    let schema = check::schema(&before.schema, &after.schema);
    assert!(!schema.ok);
    let evidence = schema.evidence.unwrap();
    assert!(
        evidence.starts_with("missing relations: public.candles_15m_ohlcv, public.orders, public.orders_id_seq, public.pairs, public.performance_metrics"),
        "{evidence}"
    );
}
