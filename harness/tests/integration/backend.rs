//! Both backends pass the same tests: a real server starts, answers with
//! its generated password, survives or loses what each fault says, and is
//! removed (process and dir; container and volume) on drop, on panic, and
//! through `reap_leftovers` after `keep`.

use std::time::Duration;

use drill::BackendKind;
use drill::backend::reap_leftovers;
use drill::service::Lifecycle;
use drill::service::postgres::ClientTool;
use drill::testing::Resource;
use rstest::rstest;
use sqlx::Connection;

use super::start_on;

async fn query_one<T>(pg: &drill::service::postgres::Postgres, sql: &str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let mut conn = pg.coordinates().connect().await.unwrap();
    let (v,): (T,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    v
}

fn assert_gone(what: &[Resource], when: &str) {
    for r in what {
        for _ in 0..100 {
            if !r.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!r.exists(), "{r:?} left behind {when}");
    }
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_answers_and_cleans_up_on_drop(#[case] backend: BackendKind) {
    let Some(pg) = start_on(backend, "drop") else {
        return;
    };
    let resources = pg.server().resources();
    assert!(resources.iter().all(Resource::exists), "{resources:?}");
    assert_eq!(query_one::<i32>(&pg, "SELECT 1").await, 1);
    assert_eq!(pg.info().backend, backend);
    assert_eq!(pg.coordinates().host, "127.0.0.1");
    // The server's own client tools (docker: inside the container).
    let out = pg
        .client(ClientTool::PgDump)
        .arg("--version")
        .output()
        .unwrap();
    let major = pg.info().version.split('.').next().unwrap().to_string();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {major}.")),
        "pg_dump {} for server {}",
        String::from_utf8_lossy(&out.stdout),
        pg.info().version
    );
    drop(pg);
    assert_gone(&resources, "after drop");
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused(#[case] backend: BackendKind) {
    let Some(pg) = start_on(backend, "password") else {
        return;
    };
    let mut wrong = pg.coordinates().clone();
    wrong.password = "not-the-password".into();
    let err = wrong.connect().await.unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn cleans_up_when_the_drill_panics(#[case] backend: BackendKind) {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let Some(pg) = start_on(backend, "panic") else {
            return;
        };
        *seen.lock().unwrap() = Some(pg.server().resources());
        panic!("a drill step panicked");
    });
    let Some(resources) = seen.lock().unwrap().clone() else {
        return; // skipped
    };
    assert!(result.is_err());
    assert_gone(&resources, "after a panic");
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_destroys_the_data_and_comes_back_empty(#[case] backend: BackendKind) {
    let Some(mut pg) = start_on(backend, "wipe") else {
        return;
    };
    let mut conn = pg.coordinates().connect().await.unwrap();
    sqlx::raw_sql("CREATE TABLE survivor (x int); INSERT INTO survivor VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let before = pg.server().resources();
    let addr = pg.server().addr(5432);
    tokio::task::block_in_place(|| pg.wipe()).unwrap();
    if backend == BackendKind::Native {
        // Started again, it gets its port back: a script's PGPORT (and the
        // docker shim's `up` in the middle of one) still reaches it.
        assert_eq!(pg.server().addr(5432), addr, "the native server moved");
    }
    if backend == BackendKind::Docker {
        // The volume was removed and created again; a new container runs.
        let Resource::Container(old) = &before[0] else {
            panic!("{before:?}")
        };
        assert!(!Resource::Container(old.clone()).exists());
    }
    assert!(
        !query_one::<bool>(&pg, "SELECT to_regclass('survivor') IS NOT NULL").await,
        "the table survived a wipe"
    );
    assert_eq!(
        pg.coordinates().database,
        query_one::<String>(&pg, "SELECT current_database()::text").await,
        "the application database is back, empty"
    );
}

/// A crash kills every server process at once; what was committed (and
/// synced, the default) is there after the restart.
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_keeps_committed_data(#[case] backend: BackendKind) {
    let Some(mut pg) = start_on(backend, "crash") else {
        return;
    };
    let mut conn = pg.coordinates().connect().await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)")
        .execute(&mut conn)
        .await
        .unwrap();
    let addr = pg.server().addr(5432);
    tokio::task::block_in_place(|| pg.crash()).unwrap();
    if backend == BackendKind::Native {
        assert_eq!(pg.server().addr(5432), addr, "the native server moved");
    }
    assert!(
        conn.ping().await.is_err(),
        "the old session died with the crash"
    );
    assert_eq!(query_one::<i64>(&pg, "SELECT count(*) FROM t").await, 1000);
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_new_settings_on_the_same_data(#[case] backend: BackendKind) {
    let Some(mut pg) = start_on(backend, "restart-with") else {
        return;
    };
    let mut conn = pg.coordinates().connect().await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let settings = vec![("synchronous_commit".to_string(), "off".to_string())];
    tokio::task::block_in_place(|| pg.restart_with(&settings, true)).unwrap();
    assert_eq!(
        query_one::<String>(&pg, "SHOW synchronous_commit").await,
        "off"
    );
    assert_eq!(query_one::<i32>(&pg, "SELECT x FROM kept").await, 42);
    tokio::task::block_in_place(|| pg.restart_with(&settings, false)).unwrap();
    assert!(
        !query_one::<bool>(&pg, "SELECT to_regclass('kept') IS NOT NULL").await,
        "without the volume the data is gone"
    );
}

/// The runbook's way of touching a server's files: a shell over its data
/// (a throwaway container with the volume mounted, or the data dir).
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn data_shell_sees_the_servers_files(#[case] backend: BackendKind) {
    let Some(pg) = start_on(backend, "data-shell") else {
        return;
    };
    let out = pg.server().data_shell("cat \"$DATA/PG_VERSION\"").unwrap();
    assert!(out.status.success(), "{out:?}");
    let major = pg.info().version.split('.').next().unwrap().to_string();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), major);
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn kept_servers_survive_the_drill_and_are_reaped_later(#[case] backend: BackendKind) {
    let Some(mut pg) = start_on(backend, "keep") else {
        return;
    };
    let resources = pg.server().resources();
    let how = pg.keep();
    assert!(
        how.contains("psql 'postgres://nexwave:") && how.contains("cargo xtask clean"),
        "{how}"
    );
    drop(pg);
    assert!(
        resources.iter().all(Resource::exists),
        "--keep must leave the server running: {resources:?}"
    );
    // Kept servers belong to this (live) process: pretend it has ended by
    // reaping as the owner would after exit.
    let removed = drill::backend::reap_own();
    assert!(!removed.is_empty());
    assert_gone(&resources, "after reaping");
    let _ = reap_leftovers(None);
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn timescaledb_availability_is_detected_and_reported(#[case] backend: BackendKind) {
    let Some(pg) = start_on(backend, "tsdb-detect") else {
        return;
    };
    // In CI the extension must be there on both backends.
    let expected =
        drill::testing::timescaledb_for_tests(backend, "timescaledb_availability_is_detected");
    if expected {
        assert!(
            pg.info().timescaledb.is_some(),
            "extension files present but the server does not list timescaledb"
        );
    } else {
        eprintln!(
            "note: no timescaledb for {} ({}); drills use the plain-PostgreSQL fixture",
            pg.info().source,
            backend
        );
        assert_eq!(pg.info().timescaledb, None);
    }
}

/// Published ports are on loopback only, never on every interface.
#[rstest]
#[case::docker(BackendKind::Docker)]
fn container_ports_are_published_on_loopback_only(#[case] backend: BackendKind) {
    let Some(pg) = start_on(backend, "loopback") else {
        return;
    };
    let Some(Resource::Container(id)) = pg.server().resources().into_iter().next() else {
        panic!("no container")
    };
    let out = std::process::Command::new("docker")
        .args(["port", &id])
        .output()
        .unwrap();
    let ports = String::from_utf8_lossy(&out.stdout);
    assert!(!ports.trim().is_empty(), "no published ports");
    for line in ports.lines() {
        assert!(line.contains("-> 127.0.0.1:"), "{line}");
    }
}

/// `clean` must not kill a process just because its pid sits in a
/// leftover record (found by review).
#[test]
fn reaping_never_kills_an_unrelated_process() {
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "drill-srv-postgres-test-bystander-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // The right pid, but not the start time of the process drill started.
    std::fs::write(dir.join("drill-server"), format!("{} 1\n", bystander.id())).unwrap();
    std::fs::write(dir.join("drill-owner"), "999999999\n").unwrap();
    reap_leftovers(None);
    assert!(!dir.exists(), "the stale dir is removed");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the unrelated process was killed"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// Natively, as root, the server's own tools run as its unprivileged user
/// in its own dir: a tool a backup fooled still could not act as root.
#[test]
fn client_tools_never_run_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("(as a non-root user, tools run as that user: nothing to check)");
        return;
    }
    let Some(pg) = start_on(BackendKind::Native, "tool-user") else {
        return;
    };
    let out = pg
        .client(ClientTool::Psql)
        .args(["-X", "-q", "-c", "\\! id -u; pwd"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_ne!(lines.next(), Some("0"), "{text}");
    assert!(
        lines
            .next()
            .is_some_and(|dir| dir.contains("drill-srv-postgres-")),
        "{text}"
    );
}

/// Several harnesses share one Docker engine and one /tmp (CI jobs in
/// containers on one host, each maybe pid 7 in its own PID namespace):
/// `clean` takes what a harness that has ended left, and not what belongs
/// to one it cannot check (another boot, another PID namespace), however
/// dead its pid looks from here: it lists those with their owner, and
/// `--older-than AGE` takes them once they are that old.
#[test]
fn clean_takes_a_gone_owners_leftovers_and_a_foreign_ones_only_when_old() {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string();
    let pidns = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("pid:[")
        .trim_end_matches(']')
        .to_string();
    // Pid 999999 does not run here: gone if it was ours to check.
    let gone = format!("v1 {boot} {pidns} 999999 1 this-host");
    let foreign = [
        format!("v1 another-boot {pidns} 999999 1 ci-runner-b"),
        format!("v1 {boot} 4026530001 999999 1 ci-job-b"),
    ];
    let tag = format!("clean-owner-{}", std::process::id());

    // Temp dirs (native backend, a shared /tmp).
    let dir = |who: &str| std::env::temp_dir().join(format!("drill-run-{tag}-{who}"));
    let owners = [
        ("gone", gone.clone()),
        ("foreign-boot", foreign[0].clone()),
        ("foreign-ns", foreign[1].clone()),
    ];
    for (who, owner) in &owners {
        std::fs::create_dir_all(dir(who)).unwrap();
        std::fs::write(dir(who).join("drill-owner"), format!("{owner}\n")).unwrap();
    }

    // Volumes (a shared engine), when one answers.
    let docker = drill::testing::available_for_tests(
        BackendKind::Docker,
        &[],
        "clean_takes_a_gone_owners_leftovers_and_a_foreign_ones_only_when_old",
    );
    let volume = |who: &str| format!("drill-test-{tag}-{who}");
    if docker {
        for (who, owner) in &owners {
            let made = std::process::Command::new("docker")
                .args([
                    "volume",
                    "create",
                    "--label",
                    &format!("org.drill.run={tag}"),
                ])
                .args(["--label", &format!("org.drill.owner={owner}")])
                .args(["--label", "org.drill.owner-pid=999999"])
                .arg(volume(who))
                .output()
                .unwrap();
            assert!(made.status.success(), "{made:?}");
        }
    }

    let sweep = reap_leftovers(None);
    let removed = &sweep.removed;
    assert!(
        !dir("gone").exists(),
        "a gone owner's dir stays: {removed:?}"
    );
    // What it cannot check it leaves, and says so, naming the owner.
    let listed = |what: &str, who: &str, sweep: &drill::backend::Sweep| {
        sweep
            .left
            .iter()
            .any(|l| l.contains(&format!("{tag}-{who}")) && l.contains(what))
    };
    for who in ["foreign-boot", "foreign-ns"] {
        assert!(dir(who).exists(), "{who}: a foreign owner's dir was taken");
        assert!(
            listed("cannot be checked from here", who, &sweep),
            "{who} not listed as left: {:?}",
            sweep.left
        );
    }
    assert!(listed("another boot or machine", "foreign-boot", &sweep));
    assert!(listed("another PID namespace", "foreign-ns", &sweep));
    let exists = |v: &str| {
        std::process::Command::new("docker")
            .args(["volume", "inspect", v])
            .output()
            .unwrap()
            .status
            .success()
    };
    if docker {
        assert!(
            !exists(&volume("gone")),
            "a gone owner's volume stays: {removed:?}"
        );
        for who in ["foreign-boot", "foreign-ns"] {
            assert!(
                exists(&volume(who)),
                "{who}: a foreign owner's volume was taken"
            );
            assert!(listed("volume", who, &sweep), "{:?}", sweep.left);
        }
    }
    // `--older-than 1h`: they are seconds old, so they stay.
    let young = reap_leftovers(Some(std::time::Duration::from_secs(3600)));
    for who in ["foreign-boot", "foreign-ns"] {
        assert!(dir(who).exists(), "{who}: taken though younger than 1h");
        assert!(
            listed("younger than --older-than 1h", who, &young),
            "{:?}",
            young.left
        );
        if docker {
            assert!(
                exists(&volume(who)),
                "{who}: volume taken though younger than 1h"
            );
        }
    }
    // Old enough (any age, here): taken, dirs and volumes alike; a live
    // drill's never (this process's own dirs, if any, are `Mine`).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let old = reap_leftovers(Some(std::time::Duration::from_secs(1)));
    for who in ["foreign-boot", "foreign-ns"] {
        assert!(
            !dir(who).exists(),
            "{who}: an old foreign dir stays: {:?}",
            old.left
        );
        if docker {
            assert!(
                !exists(&volume(who)),
                "{who}: an old foreign volume stays: {:?}",
                old.left
            );
        }
    }
}
