//! The runner as a user meets it: `list`, bad input, a missed expectation,
//! and the house rules every file in the tree must follow (tidy).

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

fn xtask() -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("xtask");
    cmd.current_dir(root());
    cmd
}

#[test]
fn list_shows_every_scenario_with_its_description() {
    let out = xtask()
        .arg("list")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("verbose-dump") && text.contains("pg_dump --verbose"),
        "{text}"
    );
}

#[test]
fn a_malformed_scenario_is_bad_input_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("typo.toml");
    let good = std::fs::read_to_string(root().join("scenarios/verbose-dump.toml")).unwrap();
    std::fs::write(
        &bad,
        good.replace("action = \"wipe\"", "action = \"wipe-out\""),
    )
    .unwrap();
    let line = good
        .lines()
        .position(|l| l.starts_with("action = \"wipe\""))
        .unwrap()
        + 1;
    let out = xtask()
        .args(["drill", bad.to_str().unwrap()])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("typo.toml:{line}:10:"))
            && text.contains("fault.action")
            && text.contains("drop-database"),
        "{text}"
    );
}

#[test]
fn an_unknown_scenario_name_lists_the_known_ones() {
    let out = xtask()
        .args(["drill", "no-such-drill"])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(out).unwrap();
    for name in [
        "verbose-dump",
        "volume-wipe",
        "partial-restore",
        "missing-pairs-fk",
        "config-restart",
        "user-scripts",
    ] {
        assert!(text.contains(name), "{name} not listed: {text}");
    }
    assert!(text.contains("known: "), "{text}");
}

/// A drill whose "corrected" recovery is the naive one misses its
/// expectations: exit code 1 (not 2, which is for harness errors), and the
/// evidence names the psql error and the missing tables.
#[test]
fn a_missed_expectation_exits_1_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("broken-fix.toml");
    let text = std::fs::read_to_string(root().join("scenarios/verbose-dump.toml"))
        .unwrap()
        .replace(
            "steps = [{ step = \"psql-restore\", sanitize = true, on-error-stop = true }]",
            "steps = [{ step = \"psql-restore\" }]",
        )
        .replace("ticks = 20000 ", "ticks = 2000  ");
    std::fs::write(&sc, text).unwrap();
    let report_dir = dir.path().join("reports");
    let out = xtask()
        .args([
            "drill",
            sc.to_str().unwrap(),
            "--backend",
            "native",
            "--report-dir",
            report_dir.to_str().unwrap(),
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("broken-fix FAIL"), "{stdout}");
    assert!(
        stdout.contains("EXPECTATION MISSED")
            && stdout.contains("relation \"public.pairs\" does not exist"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    let sc = &json["scenarios"][0];
    assert_eq!(sc["verdict"], "fail");
    assert!(sc["rto_seconds"].is_null());
    assert_eq!(sc["recoveries"][1]["met_expectation"], false);
    for f in ["junit.xml", "summary.md", "timeline-broken-fix-native.svg"] {
        assert!(report_dir.join(f).is_file(), "{f} not written");
    }
}

/// `.ci/run` and ci.yml run the README's test command.
#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo xtask test"),
        "README must give the test command"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("cargo xtask test"),
        ".ci/run must call the README's test command"
    );
}

/// `line` once per value of each `${{ matrix.KEY }}` it names (a matrix
/// of one key each, as drill's workflows use), else as it is.
fn with_matrix(line: &str, matrix: &yaml_rust2::Yaml) -> Vec<String> {
    let Some(keys) = matrix.as_hash() else {
        return vec![line.to_string()];
    };
    let mut lines = vec![line.to_string()];
    for (k, values) in keys {
        let (Some(k), Some(values)) = (k.as_str(), values.as_vec()) else {
            continue;
        };
        let var = format!("${{{{ matrix.{k} }}}}");
        if !line.contains(&var) {
            continue;
        }
        lines = lines
            .iter()
            .flat_map(|l| {
                values
                    .iter()
                    .map(|v| l.replace(&var, v.as_str().expect("a string matrix value")))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    lines
}

/// Every workflow and the Action are valid for GitHub: checked against
/// SchemaStore's schemas (check-jsonschema, which `cargo xtask test`
/// installs), so a misspelt key or a wrong type fails here, not on a
/// runner at 3 a.m.
#[test]
fn workflows_and_the_action_match_githubs_schemas() {
    let Some(mut check) = drill_cli::deps::schema_checker() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "check-jsonschema is missing: `cargo xtask deps` installs it"
        );
        eprintln!("SKIPPED: check-jsonschema is missing (`cargo xtask deps` installs it)");
        return;
    };
    let workflows: Vec<PathBuf> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let out = check
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(&workflows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "workflows:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut check = drill_cli::deps::schema_checker().unwrap();
    let out = check
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(root().join("action.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "action.yml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The checker does find a broken workflow (so the test can fail).
    let bad = tempfile::tempdir().unwrap();
    let file = bad.path().join("bad.yml");
    std::fs::write(
        &file,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n",
    )
    .unwrap();
    let out = drill_cli::deps::schema_checker()
        .unwrap()
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a job with `stepz` passed the schema"
    );
}

/// Every workflow parses, follows the house rules (read-only token by
/// default, actions pinned to a full commit), its `needs` name real jobs, and
/// every `cargo xtask ...` command it runs is accepted by the runner.
#[test]
fn workflows_parse_and_reference_real_jobs_and_commands() {
    use yaml_rust2::{Yaml, YamlLoader};
    let dir = root().join(".github/workflows");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = &YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))[0];
        seen.push(name.clone());
        assert_eq!(
            doc["permissions"]["contents"].as_str(),
            Some("read"),
            "{name}: default token must be read-only"
        );
        assert!(!doc["on"].is_badvalue(), "{name}: no triggers");
        let jobs = doc["jobs"]
            .as_hash()
            .unwrap_or_else(|| panic!("{name}: no jobs"));
        for (job_name, job) in jobs {
            let job_name = job_name.as_str().unwrap();
            let needs: Vec<&str> = match &job["needs"] {
                Yaml::String(s) => vec![s.as_str()],
                Yaml::Array(a) => a.iter().filter_map(|n| n.as_str()).collect(),
                _ => vec![],
            };
            for n in needs {
                assert!(
                    jobs.contains_key(&Yaml::String(n.into())),
                    "{name}: job {job_name} needs unknown job {n}"
                );
            }
            for step in job["steps"]
                .as_vec()
                .unwrap_or_else(|| panic!("{name}: job {job_name} has no steps"))
            {
                if let Some(uses) = step["uses"].as_str() {
                    let sha = uses.split('@').nth(1).unwrap_or("");
                    assert!(
                        sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                        "{name}: `{uses}` is not pinned to a commit"
                    );
                }
                for line in step["run"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .flat_map(|l| with_matrix(l, &job["strategy"]["matrix"]))
                {
                    let Some(rest) = line.trim().strip_prefix("cargo xtask ") else {
                        continue;
                    };
                    let args: Vec<&str> = rest.split_whitespace().collect();
                    let mut cmd = xtask();
                    if args.get(1) == Some(&"restore-artifact") {
                        // Its inputs arrive in the job: a stand-in
                        // fingerprint where the command reads one.
                        let work = tempfile::tempdir().unwrap();
                        std::fs::create_dir_all(work.path().join("backups")).unwrap();
                        std::fs::write(
                            work.path().join("backups/prod.fingerprint.json"),
                            r#"{"objects":{}}"#,
                        )
                        .unwrap();
                        cmd.current_dir(work.path())
                            .args(&args)
                            .arg("--validate-only")
                            .assert()
                            .success();
                    } else if args[0] == "drill" {
                        cmd.args(&args).arg("--validate-only").assert().success();
                    } else {
                        cmd.args([args[0], "--help"]).assert().success();
                    }
                }
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["ci.yml", "nightly.yml", "release.yml"]);
    let ci = std::fs::read_to_string(dir.join("ci.yml")).unwrap();
    assert!(
        ci.contains("run: cargo xtask test"),
        "ci.yml must run the README's test command"
    );
    // The nightly shares the drills out over a matrix and merges them.
    let nightly =
        &YamlLoader::load_from_str(&std::fs::read_to_string(dir.join("nightly.yml")).unwrap())
            .unwrap()[0];
    let shares: Vec<&str> = nightly["jobs"]["drills"]["strategy"]["matrix"]["partition"]
        .as_vec()
        .expect("the drills job is a matrix of partitions")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    let n = shares.len();
    let expected: Vec<String> = (1..=n).map(|m| format!("hash:{m}/{n}")).collect();
    assert_eq!(
        shares, expected,
        "every partition once, N = the matrix's size"
    );
    let merge = nightly["jobs"]["report"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("report merge"))
        .expect("the report job merges the partitions");
    assert!(
        merge.contains("--gate") && merge.contains("--history"),
        "{merge}"
    );
    assert_eq!(nightly["jobs"]["report"]["if"].as_str(), Some("always()"));
    let release = std::fs::read_to_string(dir.join("release.yml")).unwrap();
    assert!(
        release.contains("--gate"),
        "the release gate runs with --gate"
    );
    // The forward-compat gate blocks the release: the release job needs the
    // job that restores production's backups into the next version.
    let doc = &YamlLoader::load_from_str(&release).unwrap()[0];
    let needs: Vec<&str> = doc["jobs"]["release"]["needs"]
        .as_vec()
        .map(|v| v.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    assert!(needs.contains(&"next-version"), "release needs: {needs:?}");
    let gate = doc["jobs"]["next-version"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("restore-artifact"))
        .expect("the next-version job restores backups");
    for flag in ["--into-version 18", "--newest", "--fingerprint"] {
        assert!(gate.contains(flag), "{flag} missing from `{gate}`");
    }
}

/// The annotated example in scenarios/README.md is a valid scenario.
#[test]
fn the_documented_example_parses() {
    let doc = std::fs::read_to_string(root().join("scenarios/README.md")).unwrap();
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = doc[start..].find("```").unwrap() + start;
    let sc = drill::scenario::parse_str(&doc[start..end], Path::new("scenarios/README.md"))
        .unwrap_or_else(|e| panic!("the README example is invalid: {e}"));
    assert_eq!(sc.recoveries.len(), 2);
}

/// Starts `xtask drill verbose-dump` on `backend` with a private TMPDIR and
/// waits until its server is up; returns the child and the run's id.
#[allow(clippy::zombie_processes)] // every caller waits for it
fn drill_until_server_is_up(tmp: &Path, backend: BackendKind) -> (std::process::Child, String) {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("xtask"))
        .current_dir(root())
        .env("TMPDIR", tmp)
        .args([
            "drill",
            "verbose-dump",
            "--backend",
            backend.name(),
            "--report-dir",
        ])
        .arg(tmp.join("reports"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..1500 {
        let run_id = run_id_in(tmp);
        let up = match (&run_id, backend) {
            // Up once postmaster.pid names the server's pid: the file
            // exists a moment before postgres has written its first line.
            (Some(_), BackendKind::Native) => !postmaster_pids(tmp).is_empty(),
            (Some(id), BackendKind::Docker) => drill::testing::objects_of_run(id)
                .iter()
                .any(|o| o.starts_with("container ")),
            (None, _) => false,
        };
        if up {
            return (child, run_id.expect("seen"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the drill's server never came up");
}

/// `cargo xtask clean` with `tmp` as TMPDIR; what it printed.
fn clean(tmp: &Path) -> String {
    let out = xtask()
        .env("TMPDIR", tmp)
        .arg("clean")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8_lossy(&out).into_owned()
}

/// The run id of the drill whose work dir (`drill-run-<id>-*`) is in `tmp`.
fn run_id_in(tmp: &Path) -> Option<String> {
    leftovers(tmp).iter().find_map(|d| {
        let name = d.file_name()?.to_string_lossy().into_owned();
        Some(
            name.strip_prefix("drill-run-")?
                .split('-')
                .next()?
                .to_string(),
        )
    })
}

fn leftovers(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("drill-")
        })
        .collect()
}

fn postmaster_pids(tmp: &Path) -> Vec<i32> {
    leftovers(tmp)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("data/postmaster.pid")).ok())
        .filter_map(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        .collect()
}

fn gone(pid: i32) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) if s.split_whitespace().nth(2) == Some("Z") => return true,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    false
}

/// Ctrl-C (or a cancelled CI job's SIGTERM, a closed terminal's SIGHUP)
/// mid-drill: exit 130; the server stopped (the container and its volume
/// removed), nothing left in TMPDIR.
#[rstest]
#[case::native(BackendKind::Native, nix::sys::signal::Signal::SIGINT)]
#[case::docker(BackendKind::Docker, nix::sys::signal::Signal::SIGINT)]
#[case::native_sigterm(BackendKind::Native, nix::sys::signal::Signal::SIGTERM)]
#[case::docker_sighup(BackendKind::Docker, nix::sys::signal::Signal::SIGHUP)]
fn ctrl_c_tears_everything_down(
    #[case] backend: BackendKind,
    #[case] signal: nix::sys::signal::Signal,
) {
    if !available_for_tests(backend, &[ServiceKind::Postgres], "ctrl-c") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, run_id) = drill_until_server_is_up(tmp.path(), backend);
    let pids = postmaster_pids(tmp.path());
    assert_eq!(pids.is_empty(), backend == BackendKind::Docker, "{pids:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        leftovers(tmp.path()).is_empty(),
        "left behind: {:?}",
        leftovers(tmp.path())
    );
    assert!(
        pids.iter().all(|&p| gone(p)),
        "postgres still running: {pids:?}"
    );
    assert_eq!(
        drill::testing::objects_of_run(&run_id),
        Vec::<String>::new(),
        "containers or volumes left behind"
    );
}

/// SIGKILL cannot be caught: the server (container and volume) and dirs
/// survive the harness, and `cargo xtask clean` removes them all: zero
/// leftovers.
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn sigkill_leftovers_are_removed_by_clean(#[case] backend: BackendKind) {
    if !available_for_tests(backend, &[ServiceKind::Postgres], "sigkill") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, run_id) = drill_until_server_is_up(tmp.path(), backend);
    let pids = postmaster_pids(tmp.path());
    assert_eq!(pids.is_empty(), backend == BackendKind::Docker, "{pids:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers(tmp.path()).is_empty(),
        "SIGKILL should leave something to clean"
    );
    if backend == BackendKind::Docker {
        let objects = drill::testing::objects_of_run(&run_id);
        assert!(
            objects.iter().any(|o| o.starts_with("container "))
                && objects.iter().any(|o| o.starts_with("volume ")),
            "SIGKILL should leave the container and its volume: {objects:?}"
        );
    }
    assert!(clean(tmp.path()).contains("leftovers removed"));
    assert!(
        leftovers(tmp.path()).is_empty(),
        "clean left: {:?}",
        leftovers(tmp.path())
    );
    assert!(
        pids.iter().all(|&p| gone(p)),
        "postgres still running after clean: {pids:?}"
    );
    assert_eq!(
        drill::testing::objects_of_run(&run_id),
        Vec::<String>::new(),
        "clean left containers or volumes"
    );
}

/// A small, fast copy of the verbose-dump drill in `dir`.
fn small_drill(dir: &Path) -> PathBuf {
    let path = dir.join("gate-drill.toml");
    let text = std::fs::read_to_string(root().join("scenarios/verbose-dump.toml"))
        .unwrap()
        .replace("ticks = 20000 ", "ticks = 2000  ");
    std::fs::write(&path, text).unwrap();
    path
}

fn history_line(ms: u64) -> String {
    format!(
        r#"{{"time":1,"run_id":"old","scenario":"gate-drill","backend":"native","verdict":"pass","rto_ms":{ms}}}"#
    )
}

/// `--gate` trips (exit 4) when this run's RTO is far above the median of a
/// history of fast runs, and passes against a history of slow ones. The run
/// is appended to the history either way.
#[test]
fn the_regression_gate_trips_on_an_rto_regression_and_passes_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let sc = small_drill(dir.path());
    for (past_ms, code, word) in [(5u64, 4, "REGRESSION"), (600_000, 0, "trend")] {
        let hist = dir.path().join(format!("history-{past_ms}.jsonl"));
        std::fs::write(
            &hist,
            [
                history_line(past_ms),
                history_line(past_ms),
                history_line(past_ms),
            ]
            .join("\n"),
        )
        .unwrap();
        let out = xtask()
            .args([
                "drill",
                sc.to_str().unwrap(),
                "--backend",
                "native",
                "--gate",
                "--gate-slack",
                "10ms",
                "--gate-confirm",
                "1",
                "--history",
            ])
            .arg(&hist)
            .arg("--report-dir")
            .arg(dir.path().join(format!("r{past_ms}")))
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(word), "{text}");
        assert_eq!(
            std::fs::read_to_string(&hist).unwrap().lines().count(),
            4,
            "this run appended"
        );
        let md =
            std::fs::read_to_string(dir.path().join(format!("r{past_ms}/summary.md"))).unwrap();
        assert!(md.contains("of 3 runs"), "{md}");
    }
}

/// `cargo xtask sanitize` filters a merged dump: pg_dump's lines go, a row
/// that begins with `pg_dump:` stays, and stderr says what was removed.
#[test]
fn sanitize_filters_stdin_to_stdout() {
    let input = "pg_dump: reading schemas\npg_dump: processing data for table \"public.b\"\nCOPY public.b (x) FROM stdin;\npg_dump: dumping contents of table \"public.b\"\npg_dump: a real row\n\\.\n";
    let out = xtask()
        .arg("sanitize")
        .write_stdin(input)
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "COPY public.b (x) FROM stdin;\npg_dump: a real row\n\\.\n"
    );
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("removed 3 of 6 lines")
    );
}

/// A failover drill's replica and the private network the two servers
/// share: gone after a drill that ends; left by a SIGKILLed one while
/// both servers run, and removed by `cargo xtask clean`.
#[test]
fn the_replicas_network_is_removed_after_a_drill_and_by_clean() {
    if !available_for_tests(BackendKind::Docker, &[ServiceKind::Postgres], "failover") {
        return;
    }
    let scenario = root().join("xtask/tests/data/small-failover.toml");
    let tmp = tempfile::tempdir().unwrap();
    let run = |tmp: &Path| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("xtask"))
            .current_dir(root())
            .env("TMPDIR", tmp)
            .args(["drill", "--backend", "docker", "--report-dir"])
            .arg(tmp.join("reports"))
            .arg(&scenario)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // A drill that ends: nothing of its run is left.
    let mut child = run(tmp.path());
    let mut seen = None;
    for _ in 0..3000 {
        if seen.is_none() {
            seen = run_id_in(tmp.path());
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the small failover drill failed");
    let id = seen.expect("the drill made its work dir");
    assert_eq!(
        drill::testing::objects_of_run(&id),
        Vec::<String>::new(),
        "a finished drill left containers, volumes or networks"
    );
    // SIGKILL once the replica runs: two containers on the network.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = run(tmp.path());
    let mut id = None;
    for _ in 0..3000 {
        if let Some(run_id) = run_id_in(tmp.path()) {
            let objects = drill::testing::objects_of_run(&run_id);
            let containers = objects
                .iter()
                .filter(|o| o.starts_with("container "))
                .count();
            if containers >= 2 && objects.iter().any(|o| o.starts_with("network ")) {
                id = Some(run_id);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let id = id.expect("the replica never came up");
    let said = clean(tmp.path());
    assert_eq!(
        drill::testing::objects_of_run(&id),
        Vec::<String>::new(),
        "clean left containers, volumes or networks; it said:\n{said}"
    );
    assert!(
        leftovers(tmp.path()).is_empty(),
        "clean left: {:?}; it said:\n{said}",
        leftovers(tmp.path())
    );
}
