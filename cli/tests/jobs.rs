//! `--jobs 2` with container limits, on Docker: two restore drills whose
//! PostgreSQL containers get `cpus = 1` and `memory = "1 GiB"`, run one
//! after the other and then at once on this 2-core machine. The limits are
//! on the containers (Docker says so), and running both at once distorts
//! neither's RTO beyond what sharing the host's other work (the drill
//! itself, the checks) explains: each container had a core of its own.
//! (Without limits, one restore's server takes both cores and the other
//! waits: the limits are what keep parallel drills honest.)

use std::path::Path;
use std::process::{Command, Output};

use drill::{BackendKind, ServiceKind};

fn scenario(seed: u64) -> String {
    format!(
        r#"description = "a plain dump restored into a 1-CPU, 1 GiB PostgreSQL container"
seed = {seed}

[services.postgres]
engine = "postgres"
database = "nexwave"
user = "nexwave"
cpus = 1
memory = "1 GiB"

[fixture]
ticks = 300000

[backup]
method = "pg-dump"
format = "plain"
compress = "gzip"

[fault]
action = "wipe"

[[recovery]]
name = "restore"
steps = [{{ step = "psql-restore" }}]

[expect]
rto = "10 min"
rows = "same-as-before"
"#
    )
}

fn drill(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_drill"))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// (scenario, RTO ms, run id) from a report dir.
fn rtos(dir: &Path) -> Vec<(String, f64, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["rto_seconds"].as_f64().unwrap() * 1e3,
                s["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn inspect(run_id: &str) -> Vec<String> {
    let ids = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=org.drill.run={run_id}"),
        ])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(!ids.is_empty(), "--keep left no container of run {run_id}");
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
        ])
        .args(&ids)
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v"])
        .args(&ids)
        .output();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker volume ls -q --filter label=org.drill.run={run_id} | xargs -r docker volume rm -f"
        ))
        .output();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn two_limited_drills_at_once_keep_their_rto() {
    if !drill::testing::available_for_tests(
        BackendKind::Docker,
        &[ServiceKind::Postgres],
        "two_limited_drills_at_once_keep_their_rto",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("sc")).unwrap();
    std::fs::write(root.join("sc/first.toml"), scenario(1)).unwrap();
    std::fs::write(root.join("sc/second.toml"), scenario(2)).unwrap();
    let run = |jobs: &str, dir: &str, keep: bool| {
        let mut args = vec![
            "run",
            "--scenarios-dir",
            "sc",
            "--backend",
            "docker",
            "--jobs",
            jobs,
            "--report-dir",
            dir,
        ];
        if keep {
            args.push("--keep");
        }
        let out = drill(root, &args);
        assert!(
            out.status.success(),
            "--jobs {jobs}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        rtos(&root.join(dir))
    };

    let solo = run("1", "solo", false);
    let both = run("2", "both", true);
    for (_, _, run_id) in &both {
        for line in inspect(run_id) {
            assert_eq!(
                line,
                format!("1000000000 {} {}", 1u64 << 30, 1u64 << 30),
                "NanoCpus, Memory, MemorySwap of run {run_id}"
            );
        }
    }
    for ((name, alone, _), (_, together, _)) in solo.iter().zip(&both) {
        eprintln!("{name}: RTO alone {alone:.0} ms, two at once {together:.0} ms");
        assert!(
            *together <= alone * 1.6 + 500.0,
            "{name}: {together:.0} ms at once against {alone:.0} ms alone"
        );
    }
}
