//! Bad input is refused before anything starts: every malformed scenario
//! in `data/bad-scenarios/` (each says on its first line what its error
//! must name) and every bad flag exits 3 with a clear message and starts no
//! server. The counts (clear error / wrongly accepted / panics) are printed
//! for the closing note.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cargo xtask drill <args>` with a minute's limit: (exit code, all
/// it printed).
fn drill(args: &[&str], report_dir: &Path) -> (Option<i32>, String) {
    let out = cargo_bin_cmd!("xtask")
        .current_dir(root())
        .arg("drill")
        .args(args)
        .args(["--backend", "native", "--report-dir"])
        .arg(report_dir)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn malformed_scenarios_are_refused_before_any_server_starts() {
    let dir = root().join("xtask/tests/data/bad-scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 48, "{} files", files.len());
    let reports = tempfile::tempdir().unwrap();
    let (mut clear, mut accepted, mut panics) = (0, 0, 0);
    let mut wrong = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# want: "))
            .expect("each file says what its error must name");
        let (code, out) = drill(&[f.to_str().unwrap()], reports.path());
        let named_file = out.contains(&f.file_name().unwrap().to_string_lossy().to_string());
        if out.contains("panicked") {
            panics += 1;
            wrong.push(format!("{}: panicked\n{out}", f.display()));
        } else if code == Some(3)
            && out.contains(want)
            && named_file
            && !out.contains("start postgres")
        {
            clear += 1;
        } else {
            if !out.contains("error") {
                accepted += 1;
            }
            wrong.push(format!(
                "{}: exit {code:?}, want 3 with `{want}` and the file's name\n{out}",
                f.display()
            ));
        }
    }
    eprintln!(
        "malformed scenarios: {clear} of {} refused with a clear error before any server started, {accepted} wrongly accepted, {panics} panics",
        files.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn bad_flags_and_files_exit_3_before_anything_starts() {
    let reports = tempfile::tempdir().unwrap();
    let bad_history = reports.path().join("history.jsonl");
    std::fs::write(&bad_history, "{not json\n").unwrap();
    let a_file = reports.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["volume-wipe", "--backend", "foo"],
            "use auto, docker or native",
        ),
        (
            vec!["volume-wipe", "--pause-at", "no-such-step"],
            "no such point in the drills",
        ),
        (
            vec!["volume-wipe", "--history", bad_history.to_str().unwrap()],
            "history.jsonl:1 is malformed",
        ),
        (vec!["no-such-scenario"], "no scenario named"),
    ];
    for (args, want) in cases {
        let (code, out) = drill(&args, reports.path());
        assert_eq!(code, Some(3), "{args:?}: {out}");
        assert!(out.contains(want), "{args:?}: want `{want}` in {out}");
        assert!(
            !out.contains("start postgres"),
            "{args:?} started a server: {out}"
        );
    }
    let (code, out) = drill(&["volume-wipe"], &a_file);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("a file, not a folder"), "{out}");
}

/// Two scenario files with one name would overwrite each other's reports.
#[test]
fn two_scenarios_with_one_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base =
        std::fs::read_to_string(root().join("xtask/tests/data/bad-scenarios/01-rto-zero.toml"))
            .unwrap()
            .replace("rto = \"0s\"", "rto = \"5 min\"");
    std::fs::write(
        dir.path().join("a.toml"),
        format!("name = \"twin\"\n{base}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        format!("name = \"twin\"\n{base}"),
    )
    .unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (code, out) = drill(
        &[
            "--scenarios-dir",
            dir.path().to_str().unwrap(),
            "--validate-only",
        ],
        reports.path(),
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("scenario `twin` is also"), "{out}");
}
