//! `cargo xtask lint-backup`: the commands of the seeds' runbooks (copied
//! into `data/lint-seeds/`) trip exactly the rules their incidents
//! describe, the corrected scripts of `fixtures/scripts/` trip none, a
//! backup file with pg_dump's stderr inside is caught, unreadable input is
//! exit 3, and the SARIF validates against the SARIF 2.1.0 schema.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (exit code, the JSON report) of `lint-backup --format json PATH`.
fn lint(path: &Path) -> (i32, serde_json::Value) {
    let out = cargo_bin_cmd!("xtask")
        .current_dir(root())
        .args(["lint-backup", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), json)
}

fn rules_of(json: &serde_json::Value) -> BTreeSet<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_seeds_commands_trip_the_rules_their_incidents_describe() {
    let seeds = root().join("xtask/tests/data/lint-seeds");
    for (seed, want) in [
        // The verbose stderr in the dump (through `docker exec -t`), and
        // `| gzip` that would hide pg_dump's failure.
        ("seed-000.md", &["DRL001", "DRL002"][..]),
        // "Partial restore": psql < init_database.sql without ON_ERROR_STOP.
        ("seed-001.md", &["DRL006"][..]),
        // Seed 002's FK orphans came from no command it shows (its rule,
        // DRL007, is tested on a data-only restore with triggers off).
        ("seed-002.md", &[][..]),
        // The runbook: the pre-restore dump piped into gzip, gunzip | psql
        // going on past errors, the RDB copied in with the AOF on, an
        // interactive redis-check-aof --fix.
        ("seed-003.md", &["DRL002", "DRL006", "DRL008", "DRL009"][..]),
        // TimescaleDB restored without pre/post_restore and past errors,
        // pg_basebackup from the stopped and emptied server, backups in
        // cron with no restore test.
        ("seed-004.md", &["DRL004", "DRL006", "DRL010", "DRL012"][..]),
    ] {
        let (code, json) = lint(&seeds.join(seed));
        let found = rules_of(&json);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, want, "{seed}: {json:#}");
        assert_eq!(code, if want.is_empty() { 0 } else { 1 }, "{seed}");
        for f in json["findings"].as_array().unwrap() {
            assert!(f["line"].as_u64().unwrap() > 0, "{f}");
            for key in ["why", "seed", "fix", "evidence"] {
                assert!(!f[key].as_str().unwrap().is_empty(), "{key} of {f}");
            }
        }
    }
}

#[test]
fn the_corrected_scripts_are_clean() {
    let (code, json) = lint(&root().join("fixtures/scripts"));
    assert_eq!(rules_of(&json), BTreeSet::new(), "{json:#}");
    assert_eq!(code, 0);
    assert!(json["files"].as_array().unwrap().len() >= 8, "{json}");
}

#[test]
fn a_backup_with_stderr_inside_and_no_sidecar_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("nexwave_backup.sql");
    std::fs::write(
        &dump,
        "--\n-- PostgreSQL database dump\n--\npg_dump: last built-in OID is 16383\npg_dump: reading extensions\nCREATE TABLE t (a int);\n",
    )
    .unwrap();
    let (code, json) = lint(&dump);
    assert_eq!(code, 1);
    assert_eq!(
        rules_of(&json),
        ["DRL001", "DRL003"].map(String::from).into(),
        "{json:#}"
    );
}

#[test]
fn unreadable_input_is_exit_3_naming_it() {
    let out = cargo_bin_cmd!("xtask")
        .args(["lint-backup", "/nonexistent/backup.sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/backup.sh"), "{err}");
}

#[test]
fn the_sarif_validates_against_the_sarif_2_1_0_schema() {
    // The published schema (as serde-sarif 0.8.0 ships it) has one pattern
    // with a stray `]` that the meta-schema's `format: regex` refuses; it
    // constrains `run.language`, which drill does not write. Read as meant.
    let text = std::fs::read_to_string(root().join("xtask/tests/data/sarif-schema-2.1.0.json"))
        .unwrap()
        .replace(
            r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#,
            r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#,
        );
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let out = cargo_bin_cmd!("xtask")
        .current_dir(root())
        .args([
            "lint-backup",
            "--format",
            "sarif",
            "xtask/tests/data/lint-seeds",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() >= 10, "{sarif:#}");
    // A wrong document is refused, so the validation can fail.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        serde_json::json!(0);
    assert!(!validator.is_valid(&broken));
}

/// `step = "lint-backup"` in a drill: the hazards in the timeline and the
/// report next to the restore; strict, a hazard fails its recovery.
#[test]
fn a_drill_reports_the_lint_next_to_the_restore() {
    if !drill::testing::available_for_tests(
        drill::BackendKind::Native,
        &[drill::ServiceKind::Postgres],
        "lint-step",
    ) {
        return;
    }
    let reports = tempfile::tempdir().unwrap();
    let out = cargo_bin_cmd!("xtask")
        .current_dir(root())
        .args([
            "drill",
            "xtask/tests/data/lint-step.toml",
            "--backend",
            "native",
            "--report-dir",
        ])
        .arg(reports.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.path().join("report.json")).unwrap())
            .unwrap();
    let timeline = json["scenarios"][0]["timeline"].to_string();
    for rule in ["DRL001", "DRL006", "DRL009", "DRL010"] {
        assert!(timeline.contains(rule), "{rule} not in {timeline}");
    }
    assert!(stdout.contains("lint-backup"), "{stdout}");
}
