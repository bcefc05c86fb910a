//! `cargo xtask drill restore-artifact` for physical backups: "does last
//! night's base backup plus WAL archive (or pgBackRest repository)
//! restore?". The backups are made here without drill, by a PostgreSQL
//! cluster with the real pg_basebackup and pgBackRest
//! (`data/make-physical-backups.sh`): 1000 rows before the base backups,
//! 1000 more before a recorded time, 1000 after it.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use drill::testing::available_for_tests;
use drill::{BackendKind, ServiceKind};
use rstest::rstest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs the script into a fresh folder; returns it (kept alive by the
/// TempDir) and the recorded target time.
fn make_backups() -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("drill-test-physical-")
        .tempdir()
        .unwrap();
    // The cluster's user must reach its folder.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.path().join("prod");
    let status = std::process::Command::new("sh")
        .arg(root().join("xtask/tests/data/make-physical-backups.sh"))
        .arg(&out)
        .arg(port.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "make-physical-backups.sh failed");
    let time = std::fs::read_to_string(out.join("target-time"))
        .unwrap()
        .trim()
        .to_string();
    (dir, time)
}

/// restore-artifact with `args`; (exit code, report.json, stdout).
fn restore(backend: BackendKind, args: &[&str]) -> (i32, serde_json::Value, String) {
    let reports = tempfile::tempdir().unwrap();
    let out = cargo_bin_cmd!("xtask")
        .current_dir(root())
        .args(["drill", "restore-artifact", "--backend", backend.name()])
        .args([
            "--engine",
            "postgres",
            "--database",
            "trading",
            "--user",
            "postgres",
        ])
        .args(args)
        .arg("--report-dir")
        .arg(reports.path())
        .output()
        .unwrap();
    let json = std::fs::read_to_string(reports.path().join("report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn checks(report: &serde_json::Value) -> Vec<(String, bool, String)> {
    report["scenarios"][0]["recoveries"][0]["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["ok"].as_bool().unwrap_or(false),
                format!("{} {}", c["actual"], c["evidence"]),
            )
        })
        .collect()
}

#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn physical_backups_made_elsewhere_restore_to_latest_and_to_a_time(#[case] backend: BackendKind) {
    if !available_for_tests(
        backend,
        &[ServiceKind::Postgres],
        "physical restore-artifact",
    ) {
        return;
    }
    let (dir, time) = make_backups();
    let p = |s: &str| dir.path().join("prod").join(s).display().to_string();
    let (plain, archive, tar, repo) = (p("base-plain"), p("archive"), p("base-tar"), p("repo"));
    let all = "SELECT count(*) = 3000 FROM trades";
    let before = "SELECT count(*) = 2000 FROM trades";

    // pg_basebackup (plain, with a manifest) + archive, to latest.
    let (code, r, out) = restore(
        backend,
        &[
            "--backup",
            &plain,
            "--wal-archive",
            &archive,
            "--probe",
            all,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let names: Vec<String> = checks(&r).into_iter().map(|c| c.0).collect();
    assert!(names.contains(&"pg_verifybackup".to_string()), "{names:?}");
    assert!(
        names.contains(&"archive continuity".to_string()),
        "{names:?}"
    );

    // tar.gz + archive, to the recorded time: the last 1000 rows are not back.
    let (code, _, out) = restore(
        backend,
        &[
            "--backup",
            &tar,
            "--wal-archive",
            &archive,
            "--target",
            &time,
            "--probe",
            before,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recovery stopping before commit"), "{out}");

    // The restore point the cluster made between the two.
    let (code, _, out) = restore(
        backend,
        &[
            "--backup",
            &tar,
            "--wal-archive",
            &archive,
            "--target",
            "restore-point:after-2000",
            "--probe",
            before,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recovery stopping at restore point"), "{out}");

    // A pgBackRest repository, to latest and to the time.
    for (target, probe) in [("latest", all), (time.as_str(), before)] {
        let (code, r, out) = restore(
            backend,
            &[
                "--backup",
                &repo,
                "--pgbackrest-repo",
                &repo,
                "--stanza",
                "prod",
                "--target",
                target,
                "--probe",
                probe,
            ],
        );
        assert_eq!(code, 0, "{target}: {out}");
        assert!(
            checks(&r).iter().any(|c| c.0 == "pgbackrest verify" && c.1),
            "{:?}",
            checks(&r)
        );
    }

    // A backup is untrusted input: commands its configuration names
    // (recovery_end_command, archive_command) must not run, natively a
    // host process.
    let evil = dir.path().join("evil-base");
    let copied = std::process::Command::new("cp")
        .args(["-a", &plain])
        .arg(&evil)
        .status()
        .unwrap();
    assert!(copied.success());
    let marker = dir.path().join(format!("pwned-{}", backend.name()));
    std::fs::write(
        evil.join("postgresql.auto.conf"),
        format!(
            "recovery_end_command = 'touch {m}.recovery-end'\narchive_mode = on\narchive_command = 'touch {m}.archive'\n",
            m = marker.display()
        ),
    )
    .unwrap();
    // The manifest lists the old postgresql.auto.conf: drop it, as an
    // attacker would.
    std::fs::remove_file(evil.join("backup_manifest")).unwrap();
    let (code, _, out) = restore(
        backend,
        &[
            "--backup",
            &evil.display().to_string(),
            "--wal-archive",
            &archive,
            "--probe",
            all,
        ],
    );
    assert_eq!(code, 0, "{out}");
    for suffix in ["recovery-end", "archive"] {
        let m = format!("{}.{suffix}", marker.display());
        assert!(!Path::new(&m).exists(), "the backup ran a command: {m}");
    }

    // A link out of the data directory (a tablespace, or worse) is refused
    // before any server starts.
    std::os::unix::fs::symlink("/etc", evil.join("pg_tblspc").join("16390")).unwrap();
    let (code, r, out) = restore(
        backend,
        &[
            "--backup",
            &evil.display().to_string(),
            "--wal-archive",
            &archive,
        ],
    );
    assert_ne!(code, 0, "{out}");
    let refused = checks(&r)
        .into_iter()
        .find(|c| !c.1 && c.2.contains("pg_tblspc/16390"))
        .unwrap_or_else(|| panic!("the link is named: {:?}", checks(&r)));
    assert!(refused.2.contains("symbolic links"), "{refused:?}");

    // A damaged segment in the repository: `pgbackrest verify` exits 0 and
    // says `status: error`; read by its output, the drill is red before
    // anything is restored.
    let damaged = dir.path().join("damaged-repo");
    let copied = std::process::Command::new("cp")
        .args(["-a", &repo])
        .arg(&damaged)
        .status()
        .unwrap();
    assert!(copied.success());
    let segment = walk(&damaged.join("archive"))
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().len() > 24 && !n.to_string_lossy().contains(".history")
            })
        })
        .max()
        .expect("an archived segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let (mid, end) = (bytes.len() / 2, (bytes.len() / 2 + 64).min(bytes.len()));
    for b in &mut bytes[mid..end] {
        *b ^= 0xff;
    }
    std::fs::write(&segment, bytes).unwrap();
    let damaged = damaged.display().to_string();
    let (code, r, out) = restore(
        backend,
        &[
            "--backup",
            &damaged,
            "--pgbackrest-repo",
            &damaged,
            "--stanza",
            "prod",
        ],
    );
    assert_ne!(code, 0, "{out}");
    let verify = checks(&r)
        .into_iter()
        .find(|c| c.0 == "pgbackrest verify")
        .expect("verify ran");
    assert!(!verify.1, "{verify:?}");
    assert!(
        verify.2.contains("exit 0 but reported errors"),
        "{verify:?}"
    );

    // A segment removed from the middle of the archive is found before
    // anything is restored: red, with the first missing segment named.
    let gap = dir.path().join("gap");
    let copied = std::process::Command::new("cp")
        .args(["-a", &archive])
        .arg(&gap)
        .status()
        .unwrap();
    assert!(copied.success());
    let mut segments: Vec<String> = std::fs::read_dir(&gap)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    segments.sort();
    let victim = segments[segments.len() / 2].clone();
    std::fs::remove_file(gap.join(&victim)).unwrap();
    let (code, r, out) = restore(
        backend,
        &[
            "--backup",
            &plain,
            "--wal-archive",
            &gap.display().to_string(),
        ],
    );
    assert_ne!(code, 0, "{out}");
    let continuity = checks(&r)
        .into_iter()
        .find(|c| c.0 == "archive continuity")
        .expect("the continuity check ran");
    assert!(!continuity.1);
    assert!(
        continuity.2.contains(&format!("first missing {victim}")),
        "{continuity:?}"
    );
    assert!(
        !out.contains("recovery › restore"),
        "nothing is restored from a broken chain: {out}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
