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
