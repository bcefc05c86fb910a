//! ClickHouse on both backends, against real servers: the analytics
//! fixture survives a restart, a wipe loses it, and each backup method the
//! server supports brings back the same rows, content, columns and engines.

use drill::service::Lifecycle;
use drill::service::clickhouse::backup::{self, Method};
use drill::service::clickhouse::{ClickHouse, ClickHouseSpec, load_fixture, snapshot};
use drill::testing::available_for_tests;
use drill::{BackendKind, ServiceKind};
use rstest::rstest;

fn start(backend: BackendKind, test: &str) -> Option<(ClickHouse, tempfile::TempDir)> {
    if !available_for_tests(backend, &[ServiceKind::ClickHouse], test) {
        return None;
    }
    let work = tempfile::Builder::new()
        .prefix("drill-run-test-")
        .tempdir()
        .unwrap();
    let spec = ClickHouseSpec {
        shared: vec![work.path().to_owned()],
        ..ClickHouseSpec::new(&format!("test-{test}-{}", backend.name()))
    };
    let ch = ClickHouse::start(backend, &spec)
        .unwrap_or_else(|e| panic!("could not start clickhouse ({backend}) for {test}: {e}"));
    Some((ch, work))
}

fn dataset() -> drill_fixtures::Dataset {
    drill_fixtures::Dataset {
        ticks: 20_000,
        // Five minutes apart per symbol: the ticks span three days, so the
        // table has three partitions.
        tick_interval_ms: 300_000,
        ..Default::default()
    }
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_tables_and_a_wipe_loses_them(#[case] backend: BackendKind) {
    let Some((mut ch, _work)) = start(backend, "ch-life") else {
        return;
    };
    let rows = load_fixture(&ch, &dataset()).await.unwrap();
    assert_eq!(rows["analytics.ticks"], 20_000);
    let before = snapshot(&ch).await.unwrap();
    let ticks = &before.tables["analytics.ticks"];
    assert!(
        ticks.engine.contains("PARTITION BY toYYYYMMDD(time)"),
        "{}",
        ticks.engine
    );
    let partitions = ch
        .value("SELECT uniqExact(partition) FROM system.parts WHERE table = 'ticks' AND active")
        .await
        .unwrap();
    assert_eq!(partitions, "3");
    tokio::task::block_in_place(|| ch.restart()).unwrap();
    assert_eq!(snapshot(&ch).await.unwrap(), before);
    tokio::task::block_in_place(|| ch.wipe()).unwrap();
    assert!(snapshot(&ch).await.unwrap().tables.is_empty());
}

/// Every method this server has: backup, wipe the volume, restore, and the
/// snapshot (rows, checksums, columns, engines) equals the one before.
#[rstest]
#[case::native_freeze(BackendKind::Native, Some(Method::Freeze))]
#[case::native_export(BackendKind::Native, Some(Method::Export))]
#[case::native_auto(BackendKind::Native, None)]
#[case::docker_freeze(BackendKind::Docker, Some(Method::Freeze))]
#[case::docker_export(BackendKind::Docker, Some(Method::Export))]
#[case::docker_auto(BackendKind::Docker, None)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_after_the_volume_is_lost(
    #[case] backend: BackendKind,
    #[case] wanted: Option<Method>,
) {
    let Some((mut ch, work)) = start(backend, "ch-backup") else {
        return;
    };
    load_fixture(&ch, &dataset()).await.unwrap();
    let before = snapshot(&ch).await.unwrap();
    let (method, why) = backup::resolve(&ch, wanted).unwrap();
    eprintln!("{}: {} ({why})", ch.info().version, method.name());
    if wanted.is_none() {
        assert_eq!(
            method == Method::Native,
            backup::supports_native(ch.version()),
            "auto picks native exactly where the server has it"
        );
    }
    let b = backup::take(&ch, method, work.path()).await.unwrap();
    assert_eq!(b.manifest.tables.len(), 2);
    if method == Method::Freeze {
        assert_eq!(
            b.manifest
                .tables
                .iter()
                .find(|t| t.name == "ticks")
                .unwrap()
                .parts
                .len(),
            3
        );
    }
    tokio::task::block_in_place(|| ch.wipe()).unwrap();
    let done = backup::restore(&ch, &b.dir).await.unwrap();
    assert_eq!(snapshot(&ch).await.unwrap(), before, "after: {done}");
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_part_shows_in_the_checksum_not_only_the_count(#[case] backend: BackendKind) {
    let Some((ch, _work)) = start(backend, "ch-part") else {
        return;
    };
    load_fixture(&ch, &dataset()).await.unwrap();
    let before = snapshot(&ch).await.unwrap();
    // Detach one day: the table is still there, with fewer rows.
    let p = ch
        .value("SELECT partition FROM system.parts WHERE table = 'ticks' AND active ORDER BY partition LIMIT 1")
        .await
        .unwrap();
    ch.execute(&format!("ALTER TABLE analytics.ticks DETACH PARTITION {p}"))
        .await
        .unwrap();
    let now = snapshot(&ch).await.unwrap();
    assert_ne!(
        now.tables["analytics.ticks"].checksum,
        before.tables["analytics.ticks"].checksum
    );
    assert!(now.tables["analytics.ticks"].rows < before.tables["analytics.ticks"].rows);
}

/// Values holding a tab, a newline and a backslash come back as stored:
/// rows are unescaped as ClickHouse escapes TabSeparated, not split blindly.
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_with_tabs_newlines_and_backslashes_read_back_exactly(#[case] backend: BackendKind) {
    let Some((ch, _work)) = start(backend, "ch-escape") else {
        return;
    };
    ch.execute("CREATE TABLE analytics.odd (k UInt8, v String) ENGINE = MergeTree() ORDER BY k")
        .await
        .unwrap();
    ch.execute(r"INSERT INTO analytics.odd VALUES (1, 'a\tb'), (2, 'line\nnext'), (3, 'back\\slash'), (4, '')")
        .await
        .unwrap();
    let rows = ch
        .rows("SELECT k, v FROM analytics.odd ORDER BY k")
        .await
        .unwrap();
    let want: Vec<Vec<String>> = [
        ["1", "a\tb"],
        ["2", "line\nnext"],
        ["3", "back\\slash"],
        ["4", ""],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(rows, want);
    // The checksum the snapshot takes reads the same rows.
    let snap = snapshot(&ch).await.unwrap();
    assert_eq!(snap.tables["analytics.odd"].rows, 4);
}
