//! drill outside its own checkout: a scratch repository holding only a
//! scenario and the team's own backup and restore scripts, driven by an
//! installed `drill` binary, and by the GitHub Action's steps run as a
//! runner would run them (its `run:` scripts in bash, with the runner's
//! files and variables, `cargo install` included).
//!
//! One test, in order: the action's install step rebuilds the binary the
//! first half copies.

use std::path::{Path, PathBuf};
use std::process::Command;

use drill::BackendKind;
use drill::ServiceKind;

const SCENARIO: &str = r#"description = "the team's own backup and restore scripts bring the shop database back after a wipe"

[services.postgres]
engine = "postgres"
database = "shop"
user = "shop"

[fixture]
ticks = 2000

[backup]
method = "shell"
run = "./backup.sh"
workdir = "../scripts"

[fault]
action = "wipe"

[[recovery]]
name = "own-restore"
steps = [{ step = "shell", run = "./restore.sh \"$DRILL_BACKUP_FILE\"", workdir = "../scripts" }]

[expect]
rto = "5 min"
"#;

const BACKUP: &str = r#"#!/usr/bin/env bash
set -euo pipefail
pg_dump --format=plain --no-owner --no-acl | gzip > "$DRILL_BACKUP_DIR/shop_$(date -u +%Y%m%d_%H%M%S).sql.gz"
echo "backed up by the scratch repository's own script"
"#;

const RESTORE: &str = r#"#!/usr/bin/env bash
set -euo pipefail
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS \"$PGDATABASE\"" -c "CREATE DATABASE \"$PGDATABASE\""
gunzip -c "$1" | psql -X -q -v ON_ERROR_STOP=1 >/dev/null
echo "restored by the scratch repository's own script"
"#;

/// A repository with a scenario and two scripts, nothing of drill's.
fn scratch_repo(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let repo = root.join("shop-ops");
    std::fs::create_dir_all(repo.join("drills")).unwrap();
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    std::fs::write(repo.join("drills/nightly-restore.toml"), SCENARIO).unwrap();
    for (name, text) in [("backup.sh", BACKUP), ("restore.sh", RESTORE)] {
        let p = repo.join("scripts").join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    repo
}

fn report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_passed_with_own_scripts(report: &serde_json::Value) {
    let s = &report["scenarios"][0];
    assert_eq!(s["name"], "nightly-restore", "{report:#}");
    assert_eq!(s["verdict"], "pass", "{report:#}");
    let timeline = s["timeline"].to_string();
    assert!(
        timeline.contains("backed up by the scratch repository's own script")
            && timeline.contains("restored by the scratch repository's own script"),
        "the repository's scripts did not run: {timeline}"
    );
}

/// The workspace's target folder (this test runs from target/debug/deps).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        })
}

#[test]
fn drill_runs_from_a_repository_of_its_own() {
    if !drill::testing::available_for_tests(
        BackendKind::Native,
        &[ServiceKind::Postgres],
        "drill_runs_from_a_repository_of_its_own",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();

    // 1. An installed binary (a copy outside the checkout), run in the
    //    repository with relative paths.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_drill"), bin.join("drill")).unwrap();
    let repo = scratch_repo(tmp.path());
    let out = Command::new(bin.join("drill"))
        .args([
            "run",
            "nightly-restore",
            "--scenarios-dir",
            "drills",
            "--backend",
            "native",
            "--report-dir",
            "out",
        ])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drill run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_passed_with_own_scripts(&report(&repo.join("out")));
    let list = Command::new(bin.join("drill"))
        .args(["list", "--scenarios-dir", "drills"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("nightly-restore"));

    // 2. `drill init` in a repository with only a compose file: a starter
    //    per service, which validate; a second init overwrites nothing.
    let fresh = tmp.path().join("fresh");
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/compose/wallstreetsim");
    std::fs::create_dir_all(fresh.join("deploy/config")).unwrap();
    for f in [
        "docker-compose.db.yml",
        ".env",
        "config/postgresql.conf",
        "config/redis.conf",
        "config/clickhouse-limits.xml",
    ] {
        std::fs::copy(compose.join(f), fresh.join("deploy").join(f)).unwrap();
    }
    let init = |extra: &[&str]| {
        Command::new(bin.join("drill"))
            .args(["init", "--from-compose", "deploy/docker-compose.db.yml"])
            .args(extra)
            .current_dir(&fresh)
            .output()
            .unwrap()
    };
    let out = init(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["postgres", "redis", "clickhouse"] {
        assert!(
            fresh
                .join(format!("scenarios/{kind}-volume-wipe.toml"))
                .is_file()
        );
    }
    let validate = Command::new(bin.join("drill"))
        .args(["run", "--validate-only"])
        .current_dir(&fresh)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    let again = init(&[]);
    assert_eq!(
        again.status.code(),
        Some(3),
        "a second init must not overwrite"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // 3. The GitHub Action's steps, as a runner runs a composite action.
    let action_path = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let action = std::fs::read_to_string(action_path.join("action.yml")).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&action).unwrap()[0];
    let mut inputs: Vec<(String, String)> = doc["inputs"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v["default"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let given = [
        ("scenarios-dir", "drills"),
        ("backend", "native"),
        ("report-dir", "action-report"),
        // The workspace's build is reused; a release build would take
        // minutes here.
        ("profile", "debug"),
    ];
    for (k, v) in given {
        inputs.iter_mut().find(|(n, _)| n == k).unwrap().1 = v.to_string();
    }
    let expand = |text: &str| -> String {
        let mut t = text.replace(
            "${{ github.action_path }}",
            &action_path.display().to_string(),
        );
        for (k, v) in &inputs {
            t = t.replace(&format!("${{{{ inputs.{k} }}}}"), v);
        }
        assert!(
            !t.contains("${{"),
            "an expression the test does not know: {t}"
        );
        t
    };
    let runner = tmp.path().join("runner");
    std::fs::create_dir_all(&runner).unwrap();
    let github_path = runner.join("github_path");
    let summary = runner.join("step_summary.md");
    std::fs::write(&github_path, "").unwrap();
    let mut ran = 0;
    for step in doc["runs"]["steps"].as_vec().unwrap() {
        let Some(script) = step["run"].as_str() else {
            // `uses:` (upload-artifact) is GitHub's; the folder it uploads
            // is checked below.
            continue;
        };
        if let Some(cond) = step["if"].as_str() {
            let cond = expand(cond);
            if cond.contains("== 'false'") || cond.contains("'false' ==") {
                continue;
            }
        }
        let added: Vec<String> = std::fs::read_to_string(&github_path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let path = added
            .iter()
            .rev()
            .cloned()
            .chain([std::env::var("PATH").unwrap()])
            .collect::<Vec<_>>()
            .join(":");
        let mut cmd = Command::new("bash");
        cmd.args([
            "--noprofile",
            "--norc",
            "-e",
            "-o",
            "pipefail",
            "-c",
            &expand(script),
        ])
        .current_dir(&repo)
        .env("PATH", path)
        .env("GITHUB_PATH", &github_path)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("RUNNER_TEMP", &runner)
        .env("CARGO_TARGET_DIR", target_dir());
        if let Some(env) = step["env"].as_hash() {
            for (k, v) in env {
                cmd.env(k.as_str().unwrap(), expand(v.as_str().unwrap_or("")));
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "the action's step `{}` failed: {}\n{}",
            step["name"].as_str().unwrap_or("?"),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert_eq!(ran, 3, "install, servers, drill");
    assert!(
        runner.join("drill/bin/drill").is_file(),
        "cargo install put drill elsewhere"
    );
    assert_passed_with_own_scripts(&report(&repo.join("action-report")));
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains("nightly-restore"),
        "no summary table: {summary}"
    );
}
