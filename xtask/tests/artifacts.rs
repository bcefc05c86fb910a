//! `cargo xtask drill restore-artifact`: "does last night's backup restore?"
//! for the backups users really have. Backups are made here with the real
//! pg_dump from a database loaded with the Nexwave fixture, then damaged the
//! way the seeds describe.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use drill::service::Lifecycle;
use drill::service::postgres::{ClientTool, PgSpec, Postgres};
use drill::testing::available_for_tests;
use drill::{BackendKind, ServiceKind};
use rstest::rstest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A source database with the fixture (plain PostgreSQL flavour, so the
/// dumps restore on any server) and a folder for its backups.
fn source(test: &str) -> (Postgres, tempfile::TempDir) {
    let pg = Postgres::native(&PgSpec::new("nexwave", "nexwave", &format!("test-{test}"))).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let data = drill_fixtures::Dataset {
        ticks: 3_400,
        ..Default::default()
    };
    rt.block_on(drill::service::postgres::fixture::load_nexwave(
        pg.coordinates(),
        drill_fixtures::Flavour::Postgres,
        &data,
    ))
    .unwrap();
    (pg, tempfile::tempdir().unwrap())
}

/// `pg_dump <args> [2>&1] | gzip > path` through a shell, as users do.
fn dump(pg: &Postgres, shell: &str, path: &Path) {
    let cmd = pg.client(ClientTool::PgDump);
    let pg_dump = cmd.get_program().to_owned();
    let status = std::process::Command::new("bash")
        .args([
            "-c",
            &shell
                .replace("pg_dump", &pg_dump.to_string_lossy())
                .replace("OUT", &path.to_string_lossy()),
        ])
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .status()
        .unwrap();
    assert!(status.success(), "{shell}");
}

/// `cargo xtask fingerprint` of `pg` into `dir/prod.fingerprint.json`.
fn save_fingerprint(pg: &Postgres, dir: &Path) -> PathBuf {
    let fingerprint = dir.join("prod.fingerprint.json");
    cargo_bin_cmd!("xtask")
        .args(["fingerprint", "--url", &pg.coordinates().url(), "--out"])
        .arg(&fingerprint)
        .assert()
        .success();
    fingerprint
}

fn sidecar(path: &Path) {
    let digest = drill::sha256_file(path).unwrap();
    std::fs::write(
        format!("{}.sha256", path.display()),
        format!(
            "{digest}  {}\n",
            path.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
}

/// `cargo xtask drill restore-artifact --backend B --backup P --report-dir R`
/// (plain PostgreSQL unless `extra` names an engine), run from the repo.
fn restore_artifact(
    backend: BackendKind,
    backup: &Path,
    reports: &Path,
    extra: &[&str],
) -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("xtask");
    cmd.current_dir(root())
        .args(["drill", "restore-artifact", "--backend", backend.name()])
        .arg("--backup")
        .arg(backup)
        .args(if extra.contains(&"--engine") {
            &[][..]
        } else {
            &["--engine", "postgres"][..]
        })
        .args(extra)
        .arg("--report-dir")
        .arg(reports);
    cmd
}

/// Runs restore-artifact on `backend` requiring the fixture's tables;
/// returns (exit code, stdout, report.json).
fn restore(
    backend: BackendKind,
    backup: &Path,
    extra: &[&str],
) -> (i32, String, serde_json::Value) {
    let reports = tempfile::tempdir().unwrap();
    let mut args = vec!["--require-table", "pairs", "--min-rows", "ticks=3400"];
    args.extend_from_slice(extra);
    let out = restore_artifact(backend, backup, reports.path(), &args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = std::fs::read_to_string(reports.path().join("report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    (out.status.code().unwrap_or(-1), stdout, json)
}

/// Every kind of backup, restored on each backend (in a container, the
/// server's own pg_restore reads the backup where it lies).
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn every_kind_of_backup_gets_the_right_verdict(#[case] backend: BackendKind) {
    if !available_for_tests(backend, &[ServiceKind::Postgres], "restore-artifact") {
        return;
    }
    let restore = |b: &Path, extra: &[&str]| restore(backend, b, extra);
    let (pg, dir) = source(&format!("artifacts-{}", backend.name()));
    let d = dir.path();
    let clean = d.join("clean.sql.gz");
    dump(&pg, "pg_dump --no-owner --no-acl | gzip > OUT", &clean);
    sidecar(&clean);
    let verbose = d.join("verbose.sql.gz");
    dump(
        &pg,
        "pg_dump --verbose --no-owner --no-acl 2>&1 | gzip > OUT",
        &verbose,
    );
    let custom = d.join("custom.dump");
    dump(&pg, "pg_dump -Fc --no-owner --no-acl -f OUT", &custom);
    let directory = d.join("directory.dump");
    dump(&pg, "pg_dump -Fd --no-owner --no-acl -f OUT", &directory);
    let truncated = d.join("truncated.sql.gz");
    let bytes = std::fs::read(&clean).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let tampered = d.join("tampered.sql.gz");
    std::fs::copy(&clean, &tampered).unwrap();
    std::fs::write(
        format!("{}.sha256", tampered.display()),
        format!("{}  tampered.sql.gz\n", "0".repeat(64)),
    )
    .unwrap();
    let fingerprint = save_fingerprint(&pg, d);
    drop(pg);

    // A clean plain dump, its checksum and the production fingerprint.
    let fp = fingerprint.to_str().unwrap();
    let (code, out, json) = restore(
        &clean,
        &[
            "--fingerprint",
            fp,
            "--probe",
            "SELECT count(DISTINCT symbol) = 34 FROM candles_15m_ohlcv",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(json["scenarios"][0]["verdict"], "pass");
    assert!(out.contains("sha256 matches its sidecar"), "{out}");

    // Verbose stderr merged in: restores (sanitized) with a warning; the
    // plain `gunzip | psql` procedure fails.
    let (code, out, json) = restore(&verbose, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the backup job writes pg_dump's stderr into the file"),
        "{out}"
    );
    // The warning reaches machines, and counts exactly what was removed.
    let warning = &json["scenarios"][0]["warnings"][0];
    assert_eq!(warning["code"], "stderr-in-backup", "{json}");
    let counted: u64 = warning["evidence"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let removed = format!("sanitizer removed {counted} of");
    assert!(out.contains(&removed), "{removed} not in {out}");
    let (code, out, _) = restore(&verbose, &["--no-sanitize"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("syntax error at or near \"pg_dump\""), "{out}");

    // Custom format goes through pg_restore.
    let (code, out, _) = restore(&custom, &["--fingerprint", fp]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pg_restore --no-owner"), "{out}");

    // So does a directory-format dump.
    let (code, out, _) = restore(&directory, &["--fingerprint", fp]);
    assert_eq!(code, 0, "{out}");

    // A truncated gzip and a checksum mismatch are caught before any restore.
    for (bad, why) in [
        (&truncated, "gzip stream is damaged or truncated"),
        (&tampered, "sha256 mismatch"),
    ] {
        let (code, out, json) = restore(bad, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(why), "{out}");
        assert!(
            !out.contains("recovery restore › restore"),
            "no restore may start: {out}"
        );
        assert_eq!(
            json["scenarios"][0]["checks"][0]["name"],
            "restore/backup integrity"
        );
    }

    // A folder whose newest backup is truncated: the next-best is used.
    let folder = d.join("backups");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(&clean, folder.join("nexwave_backup_1.sql.gz")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(&truncated, folder.join("nexwave_backup_2.sql.gz")).unwrap();
    let (code, out, json) = restore(&folder, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("fell back to an older one, ") && out.contains("(1 rejected)"),
        "{out}"
    );
    // Machines see which file was used and why the newer one was not.
    let warning = &json["scenarios"][0]["warnings"][0];
    assert_eq!(warning["code"], "fell-back", "{json}");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("nexwave_backup_1.sql.gz")
            && warning["evidence"]
                .as_str()
                .unwrap()
                .contains("nexwave_backup_2.sql.gz: gzip stream is damaged"),
        "{json}"
    );
}

/// TimescaleDB dumps in every format (plain, gzip, custom, directory) of
/// the Nexwave fixture (compressed chunks, a continuous aggregate, two
/// policies) restore between pre/post_restore on each backend, with the
/// TimescaleDB checks green; a dump taken with another TimescaleDB version
/// is refused before anything is restored. Needs the extension (and on
/// docker an image with it); says so and skips without it (fails in CI).
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn timescaledb_dumps_restore_and_a_version_mismatch_is_caught(#[case] backend: BackendKind) {
    let test = "timescaledb_dumps_restore_and_a_version_mismatch_is_caught";
    if !drill::testing::timescaledb_for_tests(BackendKind::Native, test)
        || !drill::testing::timescaledb_for_tests(backend, test)
    {
        return;
    }
    let spec = PgSpec {
        timescaledb: true,
        ..PgSpec::new(
            "nexwave",
            "nexwave",
            &format!("test-artifact-tsdb-{}", backend.name()),
        )
    };
    let pg = Postgres::native(&spec).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let data = drill_fixtures::Dataset {
        // Ten minutes of ticks: the older chunks are compressed.
        ticks: 20_000,
        ..Default::default()
    };
    rt.block_on(drill::service::postgres::fixture::load_nexwave(
        pg.coordinates(),
        drill_fixtures::Flavour::TimescaleDb,
        &data,
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("tsdb.sql.gz");
    let formats = [
        ("tsdb.sql", "pg_dump --no-owner --no-acl -f OUT"),
        ("tsdb.sql.gz", "pg_dump --no-owner --no-acl | gzip > OUT"),
        ("tsdb.dump", "pg_dump -Fc --no-owner --no-acl -f OUT"),
        ("tsdb.dir", "pg_dump -Fd --no-owner --no-acl -f OUT"),
    ];
    for (name, shell) in formats {
        dump(&pg, shell, &dir.path().join(name));
    }
    let version = pg.info().timescaledb.clone().unwrap();
    drop(pg);
    for (name, _) in formats {
        let (code, out, json) = restore(
            backend,
            &dir.path().join(name),
            &["--engine", "timescaledb"],
        );
        assert_eq!(code, 0, "{name} on {backend}: {out}");
        let checks = json["scenarios"][0]["checks"].as_array().unwrap();
        let green = |check: &str| checks.iter().any(|c| c["name"] == check && c["ok"] == true);
        for check in [
            "restore/timescaledb version",
            "restore/timescaledb hypertables",
            "restore/timescaledb compression",
            "restore/timescaledb continuous aggregates",
            "restore/timescaledb jobs",
        ] {
            assert!(green(check), "{name} on {backend}: {check} green: {json}");
        }
        let compression = checks
            .iter()
            .find(|c| c["name"] == "restore/timescaledb compression")
            .unwrap();
        let said = compression["actual"].as_str().unwrap();
        assert!(
            !said.starts_with("0 ") && said.contains("kB"),
            "{name}: the compressed chunks came back compressed, with their sizes: {said}"
        );
        assert!(
            json["scenarios"][0]["servers"][0]["flavour"]
                .as_str()
                .is_some_and(|f| f.starts_with(&format!("timescaledb {version} on pg 15"))),
            "{json}"
        );
    }

    let other = dir.path().join("other-version.sql.gz");
    let text = std::io::read_to_string(flate2::read::MultiGzDecoder::new(
        std::fs::File::open(&good).unwrap(),
    ))
    .unwrap();
    let changed = text.replace(
        &format!("timescaledb_version\t{version}\t"),
        "timescaledb_version\t1.7.5\t",
    );
    assert_ne!(changed, text, "the dump records the TimescaleDB version");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&other).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, changed.as_bytes()).unwrap();
    enc.finish().unwrap();
    let (code, out, _) = restore(backend, &other, &["--engine", "timescaledb"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("timescaledb version: expected the server's") && out.contains("1.7.5"),
        "{out}"
    );
    assert!(
        !out.contains("recovery restore › restore"),
        "no restore may start: {out}"
    );
}

/// A backup that would run commands on the restoring host (`\!`, `\o`,
/// `\copy`, `COPY ... TO PROGRAM`), as a compromised backup job could write
/// it and with pg_dump's `\restrict` lines removed, as older pg_dumps or a
/// hand-edited file have it: red, each line named, nothing restored and no
/// file left behind.
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn a_backup_that_runs_commands_on_the_host_is_refused(#[case] backend: BackendKind) {
    if !available_for_tests(backend, &[ServiceKind::Postgres], "hostile-dump") {
        return;
    }
    let (pg, dir) = source(&format!("hostile-{}", backend.name()));
    let clean = dir.path().join("clean.sql");
    dump(&pg, "pg_dump --no-owner --no-acl > OUT", &clean);
    drop(pg);
    let marks = tempfile::tempdir().unwrap();
    let m = |name: &str| marks.path().join(name).display().to_string();
    let text = std::fs::read_to_string(&clean).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(str::to_string)
        .collect();
    let at = lines.iter().position(|l| l.starts_with("SET ")).unwrap();
    let evil = [
        format!("\\! touch {}", m("shell")),
        format!("\\o {}", m("out")),
        format!("\\copy (SELECT 1) to '{}'", m("copy")),
        format!("COPY (SELECT 1) TO PROGRAM 'touch {}';", m("program")),
    ];
    for (k, e) in evil.iter().enumerate() {
        lines.insert(at + k, e.clone());
    }
    let hostile = dir.path().join("hostile.sql");
    std::fs::write(&hostile, lines.join("\n") + "\n").unwrap();
    let (code, out, json) = restore(backend, &hostile, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the backup contains commands that run on the restoring host"),
        "{out}"
    );
    for (k, e) in evil.iter().enumerate() {
        let line = format!("line {}: {}", at + k + 1, e);
        assert!(out.contains(&line), "{line} not named in:\n{out}");
    }
    assert!(
        !out.contains("recovery restore › restore"),
        "nothing may be restored: {out}"
    );
    let checks = json["scenarios"][0]["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "restore/backup safety" && c["ok"] == false),
        "{json}"
    );
    let left: Vec<_> = std::fs::read_dir(marks.path()).unwrap().collect();
    assert!(left.is_empty(), "files written on the host: {left:?}");

    // What no scan can see (a program run from dynamic SQL, a server file
    // read) is refused by the role the restore runs as: no superuser.
    let at = text.lines().position(|l| l.starts_with("SET ")).unwrap();
    let with = |extra: String, name: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.insert(at, extra);
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let sneaky = with(
        format!(
            "DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {}'''; END $$;",
            m("dynamic")
        ),
        "sneaky.sql",
    );
    let (code, out, _) = restore(backend, &sneaky, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("must be superuser or have privileges of the pg_execute_server_program role"),
        "{out}"
    );
    let read = with(
        "CREATE TABLE leak AS SELECT pg_read_file('/etc/hostname') AS f;".into(),
        "read.sql",
    );
    let (code, out, _) = restore(backend, &read, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("permission denied for function pg_read_file"),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(marks.path()).unwrap().collect();
    assert!(left.is_empty(), "files written on the host: {left:?}");
}

/// Fifteen things that are not a usable backup, each named for what it is
/// before any server starts, with a report written: the counts are in the
/// closing note of issue 18 (clear error / wrongly accepted / panics).
#[test]
fn malformed_artifacts_are_named_before_any_server_starts() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gz = |name: &str, bytes: &[u8]| {
        let path = d.join(name);
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
        path
    };
    let file = |name: &str, bytes: &[u8]| {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let fake_dump = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nCREATE TABLE public.t (a int);\n\n--\n-- PostgreSQL database dump complete\n--\n";
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) % 251) as u8)
        .collect();
    let truncated = {
        let whole = gz("whole.sql.gz", fake_dump.repeat(200).as_bytes());
        let bytes = std::fs::read(&whole).unwrap();
        file("truncated.sql.gz", &bytes[..bytes.len() / 2])
    };
    let loop_a = d.join("loop-a.sql");
    std::os::unix::fs::symlink(d.join("loop-b.sql"), &loop_a).unwrap();
    std::os::unix::fs::symlink(&loop_a, d.join("loop-b.sql")).unwrap();
    let dangling = d.join("dangling.sql.gz");
    std::os::unix::fs::symlink(d.join("gone.sql.gz"), &dangling).unwrap();
    let fifo = d.join("backup.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let empty_folder = d.join("no-backups");
    std::fs::create_dir(&empty_folder).unwrap();
    std::fs::write(empty_folder.join("notes.txt"), "the backups moved").unwrap();
    let no_toc = d.join("dir.dump");
    std::fs::create_dir(&no_toc).unwrap();
    let mismatch = file("mismatch.sql", fake_dump.as_bytes());
    file(
        "mismatch.sql.sha256",
        format!("{}  mismatch.sql\n", "0".repeat(64)).as_bytes(),
    );
    let bad_sidecar = file("badside.sql", fake_dump.as_bytes());
    file("badside.sql.sha256", b"not a digest\n");
    let cases: Vec<(PathBuf, &str)> = vec![
        (file("random.sql.gz", &noise), "not gzip"),
        (
            file("random.dump", &noise),
            "not a pg_dump archive: bad magic",
        ),
        (
            gz("prose.sql.gz", b"Dear team,\nthe backup is attached.\n"),
            "no SQL statements",
        ),
        (gz("binary.sql.gz", &noise), "binary data, not SQL"),
        (file("empty.sql", b""), "file is empty"),
        (loop_a, "a symlink loop"),
        (dangling, "a symlink to nothing"),
        (fifo, "a FIFO (named pipe), not a file"),
        (PathBuf::from("/dev/null"), "a device, not a file"),
        (d.join("missing.sql.gz"), "no such file or folder"),
        (empty_folder, "the folder holds no backup"),
        (no_toc, "no toc.dat of a directory-format dump"),
        (truncated, "gzip stream is damaged or truncated"),
        (
            file(
                "handmade.sql",
                b"CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n",
            ),
            "not written by pg_dump",
        ),
        (
            file(
                "cut.sql",
                fake_dump
                    .split("\n--\n-- PostgreSQL database dump complete")
                    .next()
                    .unwrap()
                    .as_bytes(),
            ),
            "the dump is cut off",
        ),
        (mismatch, "sha256 mismatch"),
        (bad_sidecar, "is not a sha256 sidecar"),
    ];
    let (mut clear, mut accepted, mut panics) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (path, want) in &cases {
        let reports = tempfile::tempdir().unwrap();
        let out = restore_artifact(BackendKind::Native, path, reports.path(), &[])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = reports.path().join("report.json");
        if text.contains("panicked") {
            panics += 1;
            wrong.push(format!("{}: panicked", path.display()));
        } else if out.status.code() == Some(1)
            && text.contains(want)
            && !text.contains("start postgres")
            && report.is_file()
        {
            clear += 1;
        } else {
            accepted += usize::from(out.status.code() == Some(0));
            wrong.push(format!(
                "{}: exit {:?}, want `{want}` before any server, report written: {}\n{text}",
                path.display(),
                out.status.code(),
                report.is_file()
            ));
        }
    }
    eprintln!(
        "malformed artifacts: {clear} of {} named before any server started, {accepted} wrongly accepted, {panics} panics",
        cases.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// A dump of an empty database (a backup job aimed at the wrong database)
/// is red unless `--allow-empty`, and says how to pin what production holds.
#[test]
fn an_empty_restore_is_red_unless_allowed() {
    let pg = Postgres::native(&PgSpec::new("empty", "empty", "test-empty-dump")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sql.gz");
    dump(&pg, "pg_dump --no-owner --no-acl | gzip > OUT", &path);
    drop(pg);
    let run = |extra: &[&str]| {
        let reports = tempfile::tempdir().unwrap();
        let out = restore_artifact(BackendKind::Native, &path, reports.path(), extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the backup restored an empty database"),
        "{out}"
    );
    assert!(out.contains("--fingerprint"), "{out}");
    let (code, out) = run(&["--allow-empty"]);
    assert_eq!(code, Some(0), "{out}");
}

/// The forward-compat gate: the backups that restore into the version drill
/// runs by default restore into PostgreSQL 18 too (`--into-version 18
/// --newest 3`: each one restored and judged, the production fingerprint
/// equal once what a version deparses differently is normalised), and a
/// backup that cannot (a function pinned to `force_parallel_mode`, a setting
/// PostgreSQL 16 renamed) is red with the new server's own error, though it
/// restores into the old version.
#[rstest]
#[case::native(BackendKind::Native)]
#[case::docker(BackendKind::Docker)]
fn backups_restore_into_the_next_version_or_say_why_not(#[case] backend: BackendKind) {
    let test = "backups_restore_into_the_next_version_or_say_why_not";
    let next = drill::service::postgres::WHEEL.0;
    if !available_for_tests(backend, &[ServiceKind::Postgres], test)
        || !drill::testing::pg_version_for_tests(backend, next, test)
    {
        return;
    }
    let (pg, dir) = source(&format!("next-version-{}", backend.name()));
    let d = dir.path();
    let folder = d.join("nightly");
    std::fs::create_dir(&folder).unwrap();
    for (name, shell) in [
        ("nexwave.dump", "pg_dump -Fc --no-owner --no-acl -f OUT"),
        ("nexwave.dir", "pg_dump -Fd --no-owner --no-acl -f OUT"),
        ("nexwave.sql.gz", "pg_dump --no-owner --no-acl | gzip > OUT"),
    ] {
        dump(&pg, shell, &folder.join(name));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let fingerprint = save_fingerprint(&pg, d);
    let pinned = d.join("pinned.sql.gz");
    let sql = "CREATE FUNCTION public.tick_count() RETURNS bigint LANGUAGE sql \
               SET force_parallel_mode = off AS 'SELECT count(*) FROM public.ticks'";
    let out = pg
        .client(ClientTool::Psql)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dump(&pg, "pg_dump --no-owner --no-acl | gzip > OUT", &pinned);
    drop(pg);
    let fp = fingerprint.to_str().unwrap();
    let next_s = next.to_string();

    // The three newest backups, each into 18: green, fingerprint included.
    let (code, out, json) = restore(
        backend,
        &folder,
        &[
            "--into-version",
            &next_s,
            "--newest",
            "3",
            "--fingerprint",
            fp,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let runs = json["scenarios"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{json}");
    for run in runs {
        assert_eq!(run["verdict"], "pass", "{run}");
        let version = run["servers"][0]["version"].as_str().unwrap_or_default();
        assert!(version.starts_with(&format!("{next}.")), "{run}");
        let schema = run["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().contains("schema"))
            .unwrap_or_else(|| panic!("no schema check: {run}"));
        assert_eq!(schema["ok"], true, "{schema}");
    }

    // The pinned function: restores into the old version, red in 18 with
    // the server's own words.
    let (code, out, _) = restore(backend, &pinned, &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out, json) = restore(backend, &pinned, &["--into-version", &next_s]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(json["scenarios"][0]["verdict"], "fail", "{json}");
    assert!(
        out.contains("unrecognized configuration parameter \"force_parallel_mode\""),
        "{out}"
    );
}
