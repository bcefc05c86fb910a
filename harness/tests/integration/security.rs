//! A plain dump is a psql script: the restore must not let it run anything
//! on the restoring host, even when nothing inspected it first (a
//! scenario's `psql-restore` of a backup a user's script wrote). The guard
//! keeps every backslash command out and drill's own `\restrict` makes psql
//! refuse any it missed; what was refused is named with its line.

use drill::scenario::DumpFormat;
use drill::service::postgres::backup::Artifact;
use drill::service::postgres::restore::{PsqlRestoreOptions, psql_restore};

use super::start_on;
use drill::BackendKind;
use rstest::rstest;

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_runs_no_command_on_the_host(#[case] backend: BackendKind) {
    let Some(pg) = start_on(backend, "guard") else {
        return;
    };
    let marks = tempfile::tempdir().unwrap();
    let m = |name: &str| marks.path().join(name).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.sql");
    let dump = format!(
        "CREATE TABLE t (a text);\n\\! touch {}\nSELECT 1 \\g |touch {}\n\\o {}\nCOPY t (a) FROM stdin;\n\\! touch in-data\n\\.\nCOPY (SELECT 1) TO PROGRAM 'touch {}';\n-- PostgreSQL database dump complete\n",
        m("shell"),
        m("pipe"),
        m("out"),
        m("program")
    );
    std::fs::write(&path, &dump).unwrap();
    let artifact = Artifact {
        path: path.clone(),
        bytes: dump.len() as u64,
        format: DumpFormat::Plain,
        compressed: false,
        command: "hostile".into(),
        stderr_tail: String::new(),
        took: std::time::Duration::ZERO,
    };
    let out = tokio::task::block_in_place(|| {
        psql_restore(
            &pg,
            &artifact,
            PsqlRestoreOptions {
                on_error_stop: false,
                ..Default::default()
            },
        )
    })
    .unwrap();
    assert_eq!(out.refused_total, 4, "{:?}", out.refused);
    let lines: Vec<u64> = out.refused.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, vec![2, 3, 4, 8]);
    let left: Vec<_> = std::fs::read_dir(marks.path()).unwrap().collect();
    assert!(left.is_empty(), "files written on the host: {left:?}");
    // The row that only looks like a command is data, and came back.
    let mut conn = pg.coordinates().connect().await.unwrap();
    let (a,): (String,) = sqlx::query_as("SELECT a FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(a, "! touch in-data");
}

/// What a run leaves on disk is its owner's only: the run dir, the shims
/// (they hold the servers' passwords) and the backups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_dir_shims_and_backups_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let sc = drill::scenario::parse_str(
        r#"
description = "permissions of what a run writes"
[services.postgres]
engine = "postgres"
[services.redis]
[fixture]
ticks = 340
[backup]
method = "pg-dump"
[backup.redis]
method = "rdb-copy"
[fault]
action = "restart"
service = "all"
[[recovery]]
name = "look"
steps = [{ step = "shell", run = "true" }]
[expect]
rto = "1 min"
"#,
        std::path::Path::new("/tmp/permissions.toml"),
    )
    .unwrap();
    let opts = drill::engine::DrillOptions {
        keep: true,
        ..Default::default()
    };
    let report = drill::engine::run(&sc, &opts).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dump = report.backup.as_ref().unwrap().path.clone();
    let work = dump.parent().unwrap().to_owned();
    let checks = [
        (work.clone(), 0o700),
        (work.join("bin"), 0o700),
        (work.join("bin/psql"), 0o700),
        (work.join("bin/redis-cli"), 0o700),
        (dump, 0o600),
        (report.backups[0].path.clone(), 0o600),
    ];
    let wrong: Vec<String> = checks
        .iter()
        .filter(|(p, m)| mode(p) != *m)
        .map(|(p, m)| format!("{}: {:o}, want {m:o}", p.display(), mode(p)))
        .collect();
    drill::backend::reap_own();
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// Natively, ClickHouse's `default` user needs the generated password too:
/// no local user reads or drops tables without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouses_default_user_needs_the_password() {
    use drill::service::clickhouse::{ClickHouse, ClickHouseSpec};
    let ch =
        ClickHouse::start(BackendKind::Native, &ClickHouseSpec::new("test-ch-default")).unwrap();
    let url = ch
        .env()
        .into_iter()
        .find(|(k, _)| k == "CLICKHOUSE_HTTP_PORT")
        .unwrap()
        .1;
    let anonymous = ::clickhouse::Client::default()
        .with_url(format!("http://127.0.0.1:{url}"))
        .with_user("default")
        .with_validation(false);
    let r = anonymous
        .query("SELECT 1")
        .fetch_bytes("TabSeparated")
        .unwrap()
        .collect()
        .await;
    assert!(r.is_err(), "the default user answered without a password");
}
