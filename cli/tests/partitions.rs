//! The mechanics of a nightly run fanned out over CI runners, on one
//! machine: the same scenarios run once whole, and as two partitions in two
//! `drill` processes at once; `drill report merge` of the two report dirs
//! gives the whole run's verdicts, checks, exit code and history, and a
//! merge missing a partition is refused.
//!
//! Three Redis drills (native: the cheapest real servers), one of them red
//! on purpose (a FLUSHALL that a restart replays from the AOF, judged
//! against the keys before it), so "the same verdicts" covers a failure too.

use std::path::Path;
use std::process::{Command, Output};

const PASSING: &str = r#"description = "redis restarts with every key back"
seed = 7

[services.redis]
appendonly = true
appendfsync = "everysec"

[fixture]
ticks = 2000

[fault]
action = "restart"

[[recovery]]
name = "restart"
steps = [{ step = "redis", run = "INFO persistence" }]

[expect]
rto = "1 min"

[expect.redis]
keys = "same-as-before"
"#;

fn scenarios(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("a-restart.toml"), PASSING).unwrap();
    std::fs::write(
        dir.join("b-too-slow.toml"),
        PASSING.replace(
            "action = \"restart\"",
            "action = \"redis-command\"\ncommand = \"FLUSHALL\"",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("c-restart-again.toml"),
        // A container limit, which a native run cannot apply: it says so.
        PASSING.replace("seed = 7", "seed = 8").replace(
            "appendfsync = \"everysec\"",
            "appendfsync = \"everysec\"\ncpus = 1",
        ),
    )
    .unwrap();
}

fn drill(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drill"));
    c.args(args).current_dir(dir);
    c
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn show(what: &str, o: &Output) -> String {
    format!(
        "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
        code(o),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Per scenario: verdict, and every check's name and outcome but the RTO's
/// (the one thing two runs of a drill measure differently).
/// Scenario, verdict, and each check's name and outcome.
type Verdicts = Vec<(String, String, Vec<(String, bool)>)>;

fn verdicts(report_dir: &Path) -> Verdicts {
    let text = std::fs::read_to_string(report_dir.join("report.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let checks = s["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["ok"].as_bool().unwrap(),
                    )
                })
                .collect();
            (
                s["name"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
                checks,
            )
        })
        .collect()
}

fn testcases(report_dir: &Path) -> Vec<String> {
    let xml = std::fs::read_to_string(report_dir.join("junit.xml")).unwrap();
    let mut names: Vec<String> = xml
        .match_indices("<testcase name=\"")
        .map(|(i, m)| {
            let rest = &xml[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn two_partitions_merged_give_the_verdicts_of_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    scenarios(&root.join("scenarios"));
    let run = |extra: &[&str], out: &str| {
        let mut args = vec!["run", "--backend", "native", "--report-dir", out];
        args.extend_from_slice(extra);
        drill(&args, root)
    };

    let whole = run(&[], "whole").output().unwrap();
    assert_eq!(code(&whole), 1, "{}", show("whole run", &whole));

    // Two runners at once, as a CI matrix would.
    let p1 = run(&["--partition", "count:1/2"], "p1").spawn().unwrap();
    let p2 = run(&["--partition", "count:2/2"], "p2").spawn().unwrap();
    let (p1, p2) = (
        p1.wait_with_output().unwrap(),
        p2.wait_with_output().unwrap(),
    );
    // count:1/2 takes a and c (both pass), count:2/2 takes b (red).
    assert_eq!(code(&p1), 0, "{}", show("partition 1", &p1));
    assert_eq!(code(&p2), 1, "{}", show("partition 2", &p2));

    let history = root.join("history.jsonl");
    let merged = drill(
        &[
            "report",
            "merge",
            "p2",
            "p1",
            "--out",
            "merged",
            "--history",
            history.to_str().unwrap(),
        ],
        root,
    )
    .output()
    .unwrap();
    assert_eq!(code(&merged), code(&whole), "{}", show("merge", &merged));

    let (w, m) = (
        verdicts(&root.join("whole")),
        verdicts(&root.join("merged")),
    );
    let strip_rto = |v: Verdicts| {
        v.into_iter()
            .map(|(n, verdict, checks)| {
                let checks: Vec<(String, bool)> = checks
                    .into_iter()
                    .filter(|(c, _)| !c.ends_with("/rto"))
                    .collect();
                (n, verdict, checks)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        w.iter().map(|x| (&x.0, &x.1)).collect::<Vec<_>>(),
        m.iter().map(|x| (&x.0, &x.1)).collect::<Vec<_>>(),
        "verdicts differ"
    );
    assert_eq!(
        w.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["pass", "fail", "pass"]
    );
    assert_eq!(strip_rto(w), strip_rto(m), "checks differ");
    assert_eq!(
        testcases(&root.join("whole")),
        testcases(&root.join("merged"))
    );
    for dir in ["whole", "merged"] {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(dir).join("report.json")).unwrap(),
        )
        .unwrap();
        let codes: Vec<(&str, &str)> = v["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["warnings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |w| (s["name"].as_str().unwrap(), w["code"].as_str().unwrap()))
            })
            .collect();
        assert_eq!(
            codes,
            [("c-restart-again", "limits-not-applied")],
            "{dir}: the native run says its cpus limit was not applied"
        );
    }
    for f in ["summary.md", "run.json", "timeline-b-too-slow-native.svg"] {
        assert!(root.join("merged").join(f).is_file(), "merged lacks {f}");
    }
    let stdout = String::from_utf8_lossy(&merged.stdout);
    assert!(
        stdout.contains("b-too-slow"),
        "the merge prints the table:\n{stdout}"
    );
    let lines = std::fs::read_to_string(&history).unwrap();
    let scenarios: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["scenario"].to_string())
        .collect();
    assert_eq!(
        scenarios,
        ["\"a-restart\"", "\"b-too-slow\"", "\"c-restart-again\""],
        "one history line per scenario, in a whole run's order"
    );

    // A merge without partition 2 is refused, and says which is missing.
    let partial = drill(&["report", "merge", "p1", "--out", "partial"], root)
        .output()
        .unwrap();
    assert_eq!(code(&partial), 3, "{}", show("partial merge", &partial));
    let err = String::from_utf8_lossy(&partial.stderr);
    assert!(err.contains("partition count:2/2 missing"), "{err}");
    assert!(
        !root.join("partial").exists(),
        "a refused merge writes nothing"
    );
}
