//! `--predict-rto` on real runs: one plain-dump restore drill run at three
//! fixture sizes (`--fixture-ticks`) into a history, then at a fourth,
//! larger size; the line fitted to the first three predicts the fourth's
//! measured RTO within 20%. Then the gate: production's 200 GiB predicted
//! from that history is far over the drill's 10-minute target, and
//! `--gate` fails on it (exit 4) with prediction.json written.
//!
//! Native PostgreSQL: the sizes are large enough (300k to 1.5M ticks) that
//! the restore, not the server's restart after the wipe, is most of the RTO.

use std::path::Path;
use std::process::{Command, Output};

const SCENARIO: &str = r#"description = "a plain gzipped pg_dump restored after a wipe, at the size --fixture-ticks gives"
seed = 11

[services.postgres]
engine = "postgres"
database = "nexwave"
user = "nexwave"

[fixture]
ticks = 1000

[backup]
method = "pg-dump"
format = "plain"
compress = "gzip"

[fault]
action = "wipe"

[[recovery]]
name = "restore"
steps = [{ step = "psql-restore" }]

[expect]
rto = "10 min"
rows = "same-as-before"
"#;

fn drill(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_drill"))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn run_at(root: &Path, ticks: u64, history: &str) {
    let ticks = ticks.to_string();
    let out = drill(
        root,
        &[
            "run",
            "size",
            "--scenarios-dir",
            "sc",
            "--backend",
            "native",
            "--fixture-ticks",
            &ticks,
            "--history",
            history,
            "--report-dir",
            &format!("r{ticks}"),
        ],
    );
    assert!(
        out.status.success(),
        "run at {ticks} ticks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn three_sizes_predict_the_fourth_and_the_gate_reads_the_prediction() {
    use drill::report::{history, predict};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("sc")).unwrap();
    std::fs::write(root.join("sc/size.toml"), SCENARIO).unwrap();

    for ticks in [300_000, 600_000, 900_000] {
        run_at(root, ticks, "three.jsonl");
    }
    run_at(root, 1_500_000, "fourth.jsonl");
    let three = history::read(&root.join("three.jsonl")).unwrap();
    let fourth = &history::read(&root.join("fourth.jsonl")).unwrap()[0];
    for h in three.iter().chain([fourth]) {
        assert!(h.bytes.is_some() && h.rows.is_some(), "{h:?}");
        let phases: Vec<&str> = h.phases_ms.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(phases, ["fault: wipe", "psql-restore", "checks"], "{h:?}");
    }
    let measured = fourth.rto_ms.unwrap() as f64;
    let p = predict::predict(
        &three,
        "size",
        "native",
        fourth.bytes.unwrap(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let predicted = p.rto.as_secs_f64() * 1e3;
    eprintln!("{} — measured {measured} ms", p.line());
    assert!(
        (predicted - measured).abs() <= 0.2 * measured,
        "predicted {predicted:.0} ms, measured {measured:.0} ms: {}",
        p.line()
    );

    // The gate on a prediction: 200 GiB from these runs is hours, over
    // the 10-minute target. (A merge of the fourth run's report dir judges
    // it against the three, as a nightly's merge job would.)
    let out = drill(
        root,
        &[
            "report",
            "merge",
            "r1500000",
            "--out",
            "gated",
            "--history",
            "three.jsonl",
            "--predict-rto",
            "200GiB",
            "--gate",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains("PREDICTED OVER TARGET: size [native]: predicted RTO at 200.0 GiB"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("gated/prediction.json")).unwrap())
            .unwrap();
    assert_eq!(json[0]["over"], true);
    assert_eq!(json[0]["runs"], 4, "the three runs and the merged fourth");
}
