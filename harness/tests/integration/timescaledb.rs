//! TimescaleDB's checks against a real TimescaleDB, on both backends: a
//! whole-database restore of the Nexwave fixture (compressed chunks, a
//! continuous aggregate, two policies) is green, and each way of breaking
//! what a restore must bring back is red in exactly its own check, with
//! evidence naming the chunk, the aggregate or the job. Each recovery
//! starts again from the fault, so every breakage is judged alone.
//! (Found here: a database left with `timescaledb.restoring = on` reads
//! as if its compressed rows were lost, until `timescaledb_post_restore()`.)

use std::path::Path;

use drill::BackendKind;
use drill::engine::DrillOptions;
use rstest::rstest;

const SCENARIO: &str = r#"
description = "TimescaleDB's checks: a restore is green, each breakage is red"
[services.postgres]
engine = "timescaledb"
database = "nexwave"
user = "nexwave"
[fixture]
ticks = 20000
[backup]
method = "pg-dump"
format = "custom"
[fault]
action = "drop-database"
[[recovery]]
name = "restored"
steps = [{ step = "pg-restore" }]
[[recovery]]
name = "decompressed"
steps = [
  { step = "pg-restore" },
  { step = "sql", run = "SELECT decompress_chunk(c) FROM show_chunks('ticks') c ORDER BY 1 LIMIT 1" },
]
[[recovery]]
name = "stale-cagg"
steps = [
  { step = "pg-restore" },
  { step = "sql", run = """
DO $$ BEGIN
  EXECUTE (SELECT format('DELETE FROM %I.%I WHERE symbol = %L', materialization_hypertable_schema,
                         materialization_hypertable_name, 'BTC')
             FROM timescaledb_information.continuous_aggregates WHERE view_name = 'candles_15m_ohlcv');
END $$""" },
]
[[recovery]]
name = "policy-gone"
steps = [
  { step = "pg-restore" },
  { step = "sql", run = "SELECT remove_compression_policy('ticks')" },
]
[[recovery]]
name = "left-restoring"
steps = [
  { step = "pg-restore" },
  { step = "sql", run = "SELECT timescaledb_pre_restore()" },
]
[expect]
rto = "2 min"
"#;

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timescaledb_checks_see_each_breakage(#[case] backend: BackendKind) {
    if !drill::testing::timescaledb_for_tests(backend, "timescaledb_checks_see_each_breakage") {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tsdb-checks.toml");
    let sc = drill::scenario::parse_str(SCENARIO, &path).unwrap();
    let opts = DrillOptions {
        backend,
        ..Default::default()
    };
    let report = drill::engine::run(&sc, &opts).await.unwrap();
    let red = |name: &str| -> Vec<(String, String)> {
        let rec = report
            .recoveries
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no recovery {name}"));
        rec.checks
            .iter()
            .filter(|c| !c.ok && c.name != "rto")
            .map(|c| (c.name.clone(), c.evidence.clone().unwrap_or_default()))
            .collect()
    };
    let server = &report.servers[0];
    assert!(
        server.flavour.starts_with("timescaledb 2."),
        "the flavour is named: {server:?}"
    );
    assert_eq!(red("restored"), vec![], "a whole restore is green");
    let only = |name: &str, check: &str, says: &str| {
        let r = red(name);
        assert_eq!(r.len(), 1, "{name}: only {check} is red: {r:#?}");
        assert_eq!(r[0].0, check, "{name}: {r:#?}");
        assert!(
            r[0].1.contains(says),
            "{name}: evidence says {says:?}: {r:#?}"
        );
    };
    only(
        "decompressed",
        "timescaledb compression",
        "no longer compressed",
    );
    only(
        "stale-cagg",
        "timescaledb continuous aggregates",
        "cagg public.candles_15m_ohlcv: ",
    );
    assert!(red("stale-cagg")[0].1.contains("buckets stale"));
    only(
        "policy-gone",
        "timescaledb jobs",
        "policy_compression on public.ticks every 1 day",
    );
    // Left in restoring mode, TimescaleDB also stops planning over its
    // compressed chunks: the compressed rows look lost. The jobs check
    // says why.
    let r = red("left-restoring");
    assert!(
        r.iter().any(|(name, evidence)| name == "timescaledb jobs"
            && evidence.contains("timescaledb.restoring is still on")),
        "{r:#?}"
    );
}
