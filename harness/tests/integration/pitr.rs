//! Point-in-time recovery against a real server and a real WAL archive:
//! the ledger's classification checked against recoveries to targets drawn
//! at random (from a seed) before the fault, each from a fresh injection of
//! the fault, and a target the archive never reaches is red with
//! PostgreSQL's own refusal as the evidence.

use std::path::Path;

use drill::BackendKind;
use drill::engine::DrillOptions;
use rand::{RngExt, SeedableRng};

/// The drop-table drill with one `pitr` recovery per target.
fn scenario(targets: &[String]) -> String {
    let mut s = String::from(
        r#"
description = "pitr to several targets"
[services.postgres]
engine = "postgres"
database = "nexwave"
user = "nexwave"
[fixture]
ticks = 5000
[workload]
rate = 100
run-for = "5s"
after-fault = "1s"
[backup]
method = "base-backup"
every = "1500ms"
[fault]
action = "sql"
sql = "DROP TABLE IF EXISTS orders"
restore-point = "before-drop"
[expect]
rto = "2 min"
rows = "ignore"
schema = "ignore"
probes = ["SELECT true"]
"#,
    );
    for (i, t) in targets.iter().enumerate() {
        s.push_str(&format!(
            "[[recovery]]\nname = \"r{i}\"\nsteps = [{{ step = \"pitr\", target = \"{t}\" }}]\n"
        ));
    }
    s
}

async fn run(text: &str) -> drill::engine::DrillReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/pitr-test.toml");
    let sc = drill::scenario::parse_str(text, &path).unwrap();
    let opts = DrillOptions {
        backend: BackendKind::Native,
        ..Default::default()
    };
    drill::engine::run(&sc, &opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoveries_to_random_targets_bring_back_exactly_what_the_ledger_says() {
    let seed = std::env::var("DRILL_PITR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20251130u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Between 3 s before the fault (the second base backup is older) and
    // the fault itself.
    let targets: Vec<String> = (0..3)
        .map(|_| format!("fault - {}ms", rng.random_range(0..3000)))
        .collect();
    let report = run(&scenario(&targets)).await;
    for (rec, target) in report.recoveries.iter().zip(&targets) {
        let rpo = rec.rpo.as_ref().expect("a workload ran");
        let ledger = rpo
            .pitr
            .as_ref()
            .expect("a recovery to a target is judged by the ledger");
        assert!(
            rec.met_expectation,
            "seed {seed}, {target}: {}: {:#?}",
            rec.summary, rec.checks
        );
        assert_eq!(rpo.lost, 0, "seed {seed}, {target}");
        assert_eq!(ledger.unexpected, 0, "seed {seed}, {target}");
        // The WAL replayed, from the server's `redo starts at` and `redo
        // done at` lines: the workload's writes since the base backup, so
        // more than nothing, and less than the segments it restored hold.
        let wal = rec
            .wal_replayed_bytes
            .expect("the log says where redo started and ended");
        assert!(wal > 0, "seed {seed}, {target}");
        let step = report
            .timeline
            .iter()
            .find(|e| e.step.starts_with("pitr") && e.phase.recovery() == Some(rec.name.as_str()))
            .expect("the pitr step");
        let segments: u64 = step
            .detail
            .split(" segments restored")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("the step says how many segments it restored");
        assert!(
            wal <= (segments + 1) * 16 * 1024 * 1024,
            "seed {seed}, {target}: {wal} bytes from {segments} segments: {}",
            step.detail
        );
        assert!(step.detail.contains("of WAL replayed"), "{}", step.detail);
        // Writes between the target and the fault were given up: the
        // measured RPO is the target's distance from the fault.
        let offset: u64 = target
            .trim_start_matches("fault - ")
            .trim_end_matches("ms")
            .parse()
            .unwrap();
        let window = rpo.window.as_millis() as u64;
        assert!(
            window <= offset + 50 && window + 100 >= offset.saturating_sub(30),
            "seed {seed}, {target}: measured RPO {window} ms"
        );
    }
    // The history line carries the main recovery's replay.
    let line = &drill::report::history::entries(std::slice::from_ref(&report), 0)[0];
    assert_eq!(
        line.wal_bytes,
        report.main_recovery().unwrap().wal_replayed_bytes
    );
}

/// A restore point and `immediate` are targets known only between two
/// readings of the clock (the statement's call and answer; the base
/// backup's start and end): the ledger counts what lies between as in
/// flight, and finds nothing lost or unexpected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_point_and_immediate_are_exact_by_the_ledger() {
    let report = run(&scenario(&[
        "restore-point:before-drop".to_string(),
        "immediate".to_string(),
    ]))
    .await;
    for rec in &report.recoveries {
        let rpo = rec.rpo.as_ref().expect("a workload ran");
        let ledger = rpo.pitr.as_ref().expect("judged by the ledger");
        assert!(
            rec.met_expectation,
            "{}: {}: {:#?}",
            rec.name, rec.summary, rec.checks
        );
        assert_eq!((rpo.lost, ledger.unexpected), (0, 0), "{}", rec.name);
    }
    let step = |name: &str| {
        report
            .timeline
            .iter()
            .find(|e| e.step.starts_with("pitr") && e.phase.recovery() == Some(name))
            .map(|e| e.detail.clone())
            .unwrap_or_default()
    };
    assert!(
        step("r0").contains("recovery stopping at restore point \"before-drop\""),
        "{}",
        step("r0")
    );
    assert!(
        step("r1").contains("recovery stopping after reaching consistency"),
        "{}",
        step("r1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_the_archive_never_reaches_is_red_with_the_servers_refusal() {
    let report = run(&scenario(&["fault + 1h".to_string()])).await;
    let rec = &report.recoveries[0];
    assert!(!rec.met_expectation);
    let step = rec
        .checks
        .iter()
        .find(|c| c.name.starts_with("step pitr"))
        .expect("the pitr step failed");
    assert_eq!(step.actual, "target not reached");
    assert!(
        step.evidence
            .as_deref()
            .unwrap_or("")
            .contains("recovery ended before configured recovery target was reached"),
        "{step:#?}"
    );
}
