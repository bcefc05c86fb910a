//! drill as a user who is not root, natively and with Docker: the drills
//! pass, and nothing is left behind (no run folder, container or volume),
//! including files a container wrote into the run's folder as its own user.
//!
//! When the tests run as root (CI), a system user `drill-nonroot` is made
//! for this (and put in the `docker` group) and the `drill` binary runs as
//! it through `runuser`; when they run as another user, as that user.

use std::path::{Path, PathBuf};
use std::process::Command;

use drill::{BackendKind, ServiceKind};

const USER: &str = "drill-nonroot";

/// A scratch repository: a volume lost and its backup restored, for each
/// engine (ClickHouse's backup is written by the server's own user).
fn repo(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let repo = root.join("ops");
    let drills = repo.join("drills");
    std::fs::create_dir_all(&drills).unwrap();
    for (kind, backup, step, expect) in [
        (
            "redis",
            "[backup.redis]\nmethod = \"rdb-copy\"",
            "redis-restore-rdb",
            "[expect.redis]\nkeys = \"same-as-before\"",
        ),
        (
            "clickhouse",
            "[backup.clickhouse]\nmethod = \"auto\"",
            "clickhouse-restore",
            "[expect.clickhouse]\ntables = \"same-as-before\"",
        ),
    ] {
        std::fs::write(
            drills.join(format!("{kind}-volume-loss.toml")),
            format!(
                "description = \"{kind}'s volume lost, its backup restored\"\n[services.{kind}]\n[fixture]\nticks = 2000\n{backup}\n[fault]\naction = \"wipe\"\n[[recovery]]\nname = \"restore\"\nsteps = [{{ step = \"{step}\" }}]\n[expect]\nrto = \"5 min\"\n{expect}\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(
        drills.join("dump-and-restore.toml"),
        r#"description = "pg_dump and psql, run by a user who is not root"
[services.postgres]
engine = "postgres"
[fixture]
ticks = 2000
[backup]
method = "pg-dump"
compress = "gzip"
[fault]
action = "wipe"
[[recovery]]
name = "psql"
steps = [{ step = "psql-restore", on-error-stop = true }]
[expect]
rto = "5 min"
"#,
    )
    .unwrap();
    for dir in [root, repo.as_path(), drills.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    repo
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Makes the user (once) and puts it in the docker group when there is one.
fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let made = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/bash", USER])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {USER} failed");
    }
    let docker_group = Command::new("getent")
        .args(["group", "docker"])
        .output()
        .unwrap();
    if docker_group.status.success() {
        let _ = Command::new("usermod")
            .args(["-aG", "docker", USER])
            .status();
    }
}

/// `drill args...` as the unprivileged user, in `repo`.
fn drill_as_user(bin: &Path, repo: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", USER, "--"]).arg("env");
        // runuser does not keep the environment's image choices.
        for (k, v) in
            std::env::vars().filter(|(k, _)| k.starts_with("DRILL_") || k == "CI" || k == "PATH")
        {
            c.arg(format!("{k}={v}"));
        }
        c.arg(format!("HOME={}", home.display()));
        c.arg(format!("TMPDIR={}", home.display()));
        c.arg(bin);
        c
    } else {
        let mut c = Command::new(bin);
        c.env("TMPDIR", home);
        c
    };
    cmd.args(args).current_dir(repo).output().unwrap()
}

/// What a run left in `dir` (run folders, server folders).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("drill-"))
                .collect()
        })
        .unwrap_or_default()
}

fn run(backend: BackendKind) {
    let services = [
        ServiceKind::Postgres,
        ServiceKind::Redis,
        ServiceKind::ClickHouse,
    ];
    let test = format!("non_root_{backend}");
    if !drill::testing::available_for_tests(backend, &services, &test) {
        return;
    }
    if is_root() {
        ensure_user();
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bin = root.join("drill");
    std::fs::copy(env!("CARGO_BIN_EXE_drill"), &bin).unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let repo = repo(root);
    let out = drill_as_user(
        &bin,
        &repo,
        &home,
        &[
            "run",
            "--scenarios-dir",
            "drills",
            "--backend",
            &backend.to_string(),
            "--report-dir",
            "out",
        ],
    );
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "drill as a user who is not root failed ({backend}):\n{said}"
    );
    for name in [
        "dump-and-restore",
        "redis-volume-loss",
        "clickhouse-volume-loss",
    ] {
        assert!(
            said.contains(&format!("{name} PASS")),
            "{name} did not pass ({backend}):\n{said}"
        );
    }
    assert_eq!(
        leftovers(&home),
        Vec::<String>::new(),
        "left in the user's temp folder ({backend})"
    );
}

#[test]
fn a_user_who_is_not_root_drills_natively() {
    run(BackendKind::Native);
}

#[test]
fn a_user_who_is_not_root_drills_with_docker() {
    run(BackendKind::Docker);
}
