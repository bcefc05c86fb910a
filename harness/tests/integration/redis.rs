//! Redis on both backends, against real servers: the fixture survives a
//! restart and a crash with the runbook's INFO fields right, a wipe loses
//! everything, a damaged AOF costs exactly the keys predicted, and an RDB
//! copied into a Redis with `appendonly yes` brings nothing back unless the
//! AOF is off while it loads.

use drill::service::Lifecycle;
use drill::service::redis::aof::DamageKind;
use drill::service::redis::{Redis, RedisSpec, load_fixture, snapshot};
use drill::testing::{Resource, available_for_tests};
use drill::{BackendKind, ServiceKind};
use rstest::rstest;

fn start(backend: BackendKind, test: &str) -> Option<(Redis, tempfile::TempDir)> {
    if !available_for_tests(backend, &[ServiceKind::Redis], test) {
        return None;
    }
    let work = tempfile::Builder::new()
        .prefix("drill-run-test-")
        .tempdir()
        .unwrap();
    let spec = RedisSpec {
        shared: vec![work.path().to_owned()],
        ..RedisSpec::new(&format!("test-{test}-{}", backend.name()))
    };
    let r = Redis::start(backend, &spec)
        .unwrap_or_else(|e| panic!("could not start redis ({backend}) for {test}: {e}"));
    Some((r, work))
}

fn dataset() -> drill_fixtures::Dataset {
    drill_fixtures::Dataset {
        ticks: 3_000,
        ..Default::default()
    }
}

async fn snap(r: &Redis) -> snapshot::Snapshot {
    let mut con = r.connect().await.unwrap();
    snapshot::take(&mut con).await.unwrap()
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_crash_keep_every_key_and_a_wipe_keeps_none(#[case] backend: BackendKind) {
    let Some((mut r, _work)) = start(backend, "redis-life") else {
        return;
    };
    assert!(r.info().version.starts_with('7'), "{}", r.info().version);
    load_fixture(&r, &dataset()).await.unwrap();
    let before = snap(&r).await;
    assert!(before.keys.len() > 200, "{}", before.keys.len());
    assert!(before.keys["market_data:prices"].starts_with("stream:"));
    assert!(before.keys.values().any(|v| v.ends_with(":expires")));

    tokio::task::block_in_place(|| r.restart()).unwrap();
    assert_eq!(snap(&r).await, before, "a restart lost or changed keys");
    let info = r.info_section("persistence").await.unwrap();
    assert_eq!(info["loading"], "0");
    assert_eq!(info["aof_enabled"], "1");
    assert_eq!(info["rdb_last_bgsave_status"], "ok");

    tokio::task::block_in_place(|| r.crash()).unwrap();
    assert_eq!(
        snap(&r).await,
        before,
        "a crash lost keys that were written"
    );

    let resources = r.server().resources();
    tokio::task::block_in_place(|| r.wipe()).unwrap();
    assert!(snap(&r).await.keys.is_empty(), "keys survived a wipe");
    drop(r);
    for res in resources
        .iter()
        .filter(|x| !matches!(x, Resource::Container(_)))
    {
        assert!(!res.exists(), "{res:?} left behind");
    }
}

/// The runbook's troubleshooting: a damaged AOF. A cut-off tail loads
/// anyway; damage in the middle stops the server until `redis-check-aof
/// --fix`; either way exactly the predicted keys are lost.
#[rstest]
#[case::native_tail(BackendKind::Native, DamageKind::TruncateTail)]
#[case::native_middle(BackendKind::Native, DamageKind::Middle)]
#[case::docker_tail(BackendKind::Docker, DamageKind::TruncateTail)]
#[case::docker_middle(BackendKind::Docker, DamageKind::Middle)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_aof_loses_exactly_the_predicted_keys(
    #[case] backend: BackendKind,
    #[case] kind: DamageKind,
) {
    let Some((mut r, _work)) = start(backend, "redis-aof") else {
        return;
    };
    load_fixture(&r, &dataset()).await.unwrap();
    let before = snap(&r).await;
    let (damage, outcome) = tokio::task::block_in_place(|| r.corrupt_aof(kind, 7)).unwrap();
    match kind {
        DamageKind::TruncateTail => {
            assert!(r.down().is_none(), "{outcome}");
        }
        DamageKind::Middle => {
            assert!(
                r.down().is_some(),
                "a damaged AOF must stop redis: {outcome}"
            );
            assert!(outcome.contains("Bad file format"), "{outcome}");
            let fixed = tokio::task::block_in_place(|| r.check_aof_fix()).unwrap();
            assert!(fixed.contains("Successfully truncated AOF"), "{fixed}");
            tokio::task::block_in_place(|| r.start_with(&[])).unwrap();
        }
    }
    let damaged = before.diff(&snap(&r).await, |_| false).damaged();
    let predicted: Vec<String> = damage.lost_keys.iter().cloned().collect();
    assert!(!predicted.is_empty());
    assert_eq!(damaged, predicted, "lost keys differ from the prediction");
}

/// The runbook's "Manual RDB Restore", as written, on a Redis with the AOF
/// on: the copied dump.rdb is ignored and Redis starts empty. With the AOF
/// off while it loads, every key comes back and the AOF is on again.
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rdb_copy_restores_only_with_the_aof_off_while_loading(#[case] backend: BackendKind) {
    let Some((mut r, work)) = start(backend, "redis-rdb") else {
        return;
    };
    load_fixture(&r, &dataset()).await.unwrap();
    let before = snap(&r).await;
    let rdb = r.backup_rdb(work.path()).await.unwrap();
    assert!(std::fs::metadata(&rdb).unwrap().len() > 10_000);

    tokio::task::block_in_place(|| r.wipe()).unwrap();
    tokio::task::block_in_place(|| r.restore_rdb(&rdb, false)).unwrap();
    assert!(
        snap(&r).await.keys.is_empty(),
        "appendonly yes ignores dump.rdb: the runbook's copy restores nothing"
    );

    tokio::task::block_in_place(|| r.wipe()).unwrap();
    tokio::task::block_in_place(|| r.restore_rdb(&rdb, true)).unwrap();
    assert_eq!(snap(&r).await, before);
    let info = r.info_section("persistence").await.unwrap();
    assert_eq!(info["aof_enabled"], "1");
    // And it stays: a restart loads the AOF written from memory.
    tokio::task::block_in_place(|| r.restart()).unwrap();
    assert_eq!(snap(&r).await, before);
}
