//! `DOCKER_HOST` end to end: a second Docker engine on this machine,
//! listening on a loopback TCP port with its own data root and bridge, is
//! where a drill's servers run when `DOCKER_HOST` names it. The drill
//! (testcontainers and bollard), its data shells (the wipe, the RDB copy),
//! the tool shims of a shell step (`redis-cli` as `docker exec`) and
//! `clean` (by the owner labels) all talk to that engine; the machine's own
//! engine sees nothing of the run.
//!
//! Needs root (dockerd) and the Redis image on the default engine; under
//! CI=true a missing piece fails the test instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use drill::{BackendKind, ServiceKind};

const SCENARIO: &str = r#"description = "an RDB copy restored into a wiped volume, on whatever engine DOCKER_HOST names"
seed = 5

[services.redis]
appendonly = true

[fixture]
ticks = 5000

[backup.redis]
method = "rdb-copy"

[fault]
action = "wipe"
service = "redis"

[[recovery]]
name = "restore"
steps = [
  { step = "redis-restore-rdb" },
  { step = "shell", service = "redis", run = "redis-cli DBSIZE" },
]

[expect]
rto = "2 min"

[expect.redis]
keys = "same-as-before"
"#;

/// A second dockerd: stopped, its bridge and data root removed on drop.
struct SecondEngine {
    child: Child,
    root: PathBuf,
    bridge: String,
    host: String,
}

impl SecondEngine {
    fn start(root: &Path) -> SecondEngine {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bridge = format!("drillbr{}", std::process::id() % 100_000);
        let sh = |cmd: &str| {
            let ok = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
            assert!(ok.success(), "{cmd}");
        };
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        sh(&format!(
            "ip link add name {bridge} type bridge && ip addr add 172.30.{}.1/24 dev {bridge} && ip link set {bridge} up",
            std::process::id() % 250
        ));
        let root = root.join("engine");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("daemon.json"), "{}").unwrap();
        // The machine's engine's storage driver (fuse-overlayfs in a
        // container, overlay2 elsewhere) works for the second one too.
        let driver = Command::new("docker")
            .args(["info", "--format", "{{.Driver}}"])
            .output()
            .unwrap();
        let driver = String::from_utf8_lossy(&driver.stdout).trim().to_string();
        let host = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .arg("--host")
            .arg(&host)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["--bridge", &bridge, "--iptables=false", "--ip-masq=false"])
            .args(["--storage-driver", &driver])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("dockerd.log")).unwrap())
            .spawn()
            .expect("start a second dockerd");
        let engine = SecondEngine {
            child,
            root,
            bridge,
            host,
        };
        let started = Instant::now();
        while !engine.docker(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the second dockerd did not answer: {}",
                std::fs::read_to_string(engine.root.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        engine
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.root.join("exec"))
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Lines of `docker ps -aq` and `docker volume ls -q` for a run's label.
fn objects(docker: impl Fn(&[&str]) -> Output, run_id: &str) -> Vec<String> {
    let label = format!("label=org.drill.run={run_id}");
    let mut found = Vec::new();
    let lists: [&[&str]; 2] = [
        &["ps", "-aq", "--filter", label.as_str()],
        &["volume", "ls", "-q", "--filter", label.as_str()],
    ];
    for args in lists {
        let out = docker(args);
        assert!(out.status.success(), "docker {args:?}");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from),
        );
    }
    found
}

#[test]
fn a_drill_runs_and_cleans_up_on_the_engine_docker_host_names() {
    let ci = std::env::var_os("CI").is_some();
    let root_user = nix::unistd::geteuid().is_root();
    let dockerd = Command::new("dockerd").arg("--version").output().is_ok();
    if !root_user || !dockerd {
        assert!(!ci, "CI runs this test: it needs root and dockerd");
        eprintln!("SKIPPED: a second dockerd needs root and dockerd");
        return;
    }
    if !drill::testing::available_for_tests(
        BackendKind::Docker,
        &[ServiceKind::Redis],
        "a_drill_runs_and_cleans_up_on_the_engine_docker_host_names",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let engine = SecondEngine::start(tmp.path());
    let image = ServiceKind::Redis.image(None);
    let load = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker save '{image}' | DOCKER_HOST='{}' docker load -q",
            engine.host
        ))
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );

    std::fs::create_dir_all(tmp.path().join("sc")).unwrap();
    std::fs::write(tmp.path().join("sc/remote.toml"), SCENARIO).unwrap();
    let drill = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_drill"))
            .env("DOCKER_HOST", &engine.host)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let out = drill(&[
        "run",
        "--scenarios-dir",
        "sc",
        "--backend",
        "docker",
        "--keep",
        "--report-dir",
        "r",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r/report.json")).unwrap())
            .unwrap();
    let run_id = report["scenarios"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail: Vec<&str> = report["scenarios"][0]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["detail"].as_str())
        .collect();
    assert!(
        detail.iter().any(|d| d.contains("last output: 238 ")),
        "the shell step's redis-cli (docker exec on the second engine) counted the 238 keys: {detail:?}"
    );

    // Kept on the second engine, nothing on the machine's own.
    let remote = objects(|a| engine.docker(a), &run_id);
    assert!(
        remote.len() >= 2,
        "the kept container and volume are on the second engine: {remote:?}"
    );
    let local = objects(
        |a| {
            Command::new("docker")
                .env_remove("DOCKER_HOST")
                .args(a)
                .output()
                .unwrap()
        },
        &run_id,
    );
    assert!(
        local.is_empty(),
        "the machine's engine has the run's {local:?}"
    );

    // `clean`, aimed at the second engine, takes what the ended run left.
    let out = drill(&["clean"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left = objects(|a| engine.docker(a), &run_id);
    assert!(left.is_empty(), "clean left {left:?} on the second engine");
}
