//! The native backend starts a real server as an unprivileged user, answers
//! with its generated password, and removes server process and data dir on
//! drop, on panic, and through `reap_leftovers` after `keep`.

use drill::backend::{PgBinaries, PostgresServer, reap_leftovers};

use super::{alive, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_answers_and_cleans_up_on_drop() {
    let pg = start("drop");
    let (dir, pid) = (pg.dir().to_owned(), pg.pid().unwrap());
    let mut conn = pg.coordinates().connect().await.unwrap();
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert!(
        pg.info()
            .version
            .starts_with(&PgBinaries::locate().unwrap().major.to_string())
    );
    assert_eq!(pg.coordinates().host, "127.0.0.1");
    drop(conn);
    drop(pg);
    assert!(!dir.exists(), "data dir {} left behind", dir.display());
    assert!(!alive(pid), "postgres {pid} still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused() {
    let pg = start("password");
    let mut wrong = pg.coordinates().clone();
    wrong.password = "not-the-password".into();
    let err = wrong.connect().await.unwrap_err().to_string();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn cleans_up_when_the_drill_panics() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let pg = start("panic");
        *seen.lock().unwrap() = Some((pg.dir().to_owned(), pg.pid().unwrap()));
        panic!("a drill step panicked");
    });
    assert!(result.is_err());
    let (dir, pid) = seen.lock().unwrap().clone().unwrap();
    assert!(
        !dir.exists(),
        "data dir {} left behind after panic",
        dir.display()
    );
    assert!(!alive(pid), "postgres {pid} still running after panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_destroys_the_data_and_comes_back_empty() {
    let mut pg = start("wipe");
    let mut conn = pg.coordinates().connect().await.unwrap();
    sqlx::raw_sql("CREATE TABLE survivor (x int); INSERT INTO survivor VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let old_pid = pg.pid().unwrap();
    tokio::task::block_in_place(|| pg.wipe()).unwrap();
    assert_ne!(pg.pid().unwrap(), old_pid, "a wipe restarts the server");
    let mut conn = pg.coordinates().connect().await.unwrap();
    let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass('survivor') IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "the table survived a wipe");
}

#[test]
fn kept_servers_survive_the_drill_and_are_reaped_later() {
    let mut pg = start("keep");
    let (dir, pid) = (pg.dir().to_owned(), pg.pid().unwrap());
    let how = pg.keep();
    assert!(
        how.contains("psql 'postgres://nexwave:") && how.contains("cargo xtask clean"),
        "{how}"
    );
    drop(pg);
    assert!(
        dir.exists() && alive(pid),
        "--keep must leave the server running"
    );
    let removed = reap_leftovers();
    assert!(
        removed.iter().any(|r| r.contains(&*dir.to_string_lossy())),
        "{removed:?}"
    );
    assert!(!dir.exists());
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("reaped server {pid} still running");
}

#[test]
fn timescaledb_availability_is_detected_and_reported() {
    let bins = PgBinaries::locate().unwrap();
    let pg = start("tsdb-detect");
    if bins.has_timescaledb() {
        assert!(
            pg.info().timescaledb.is_some(),
            "extension files present but the server does not list timescaledb"
        );
    } else {
        eprintln!(
            "note: timescaledb is not installed for PostgreSQL {}; drills use the plain-PostgreSQL fixture",
            bins.major
        );
        assert_eq!(pg.info().timescaledb, None);
    }
}

/// `clean` must not kill a process just because its pid sits in a
/// leftover postmaster.pid (found by review).
#[test]
fn reaping_never_kills_an_unrelated_process() {
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("drill-pg-test-bystander-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("data/postmaster.pid"),
        format!("{}\n", bystander.id()),
    )
    .unwrap();
    reap_leftovers();
    assert!(!dir.exists(), "the stale dir is removed");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the unrelated process was killed"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}
