//! Tidy: the architecture's invariants (ARCHITECTURE.md) checked on the
//! source, so a change that breaks one fails here with the file and line.
//! Every rule reads files only; this binary starts no server.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, leaving out `target` and hidden folders.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap().display().to_string()
}

/// The lines of `p` outside its unit-test modules (`#[cfg(test)]`
/// followed by `mod ... {`, up to the brace that closes it; `mod tests;`
/// is one line), numbered. Any other `#[cfg(test)]` item is code too, and
/// code after a test module is still code: a test module at the top of a
/// file hides nothing below it.
fn code_lines(p: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let opens_tests = lines[i].trim_start().starts_with("#[cfg(test)]")
            && lines[i + 1..]
                .iter()
                .find(|n| !n.trim().is_empty())
                .is_some_and(|n| n.trim_start().starts_with("mod "));
        if !opens_tests {
            out.push((i + 1, lines[i].to_string()));
            i += 1;
            continue;
        }
        // Pass over the module to its end: `mod x;` or its closing brace.
        let mut depth = 0i32;
        let mut opened = false;
        while i < lines.len() {
            let l = lines[i];
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            opened |= l.contains('{');
            i += 1;
            if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out
}

/// `file:line: text` for every code line of the files under `dir` for
/// which `hit` says yes. A `dir` holding no Rust code fails: a rule that
/// reads nothing would pass whatever the code does.
fn find(dir: &str, hit: impl Fn(&str) -> bool) -> Vec<String> {
    let files = rust_files(&root().join(dir));
    let lines: usize = files.iter().map(|p| code_lines(p).len()).sum();
    assert!(
        lines > 0,
        "{dir}: no Rust code to check; the rule would pass without reading anything: fix its path"
    );
    files
        .iter()
        .flat_map(|p| {
            code_lines(p)
                .into_iter()
                .filter(|(_, l)| hit(l))
                .map(move |(n, l)| format!("{}:{n}: {}", rel(p), l.trim()))
        })
        .collect()
}

/// A `use` of (or a path into) one of `modules` of the library.
fn imports(line: &str, modules: &[&str]) -> bool {
    let l = line.trim_start();
    if l.starts_with("//") {
        return false;
    }
    modules.iter().any(|m| {
        l.contains(&format!("crate::{m}::"))
            || l.contains(&format!("crate::{m};"))
            || l.contains(&format!("crate::{m}}}"))
            || l.contains(&format!("crate::{{{m}"))
    })
}

#[test]
fn every_rust_file_documents_itself() {
    let files = rust_files(&root());
    assert!(
        files.len() > 50,
        "only {} Rust files found under {}",
        files.len(),
        root().display()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|p| rel(p))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! header: {missing:?}"
    );
}

/// Architecture Invariant: `backend/` knows where servers run and nothing
/// else: no service, scenario, check, report or engine.
#[test]
fn backend_imports_no_engine_specific_module() {
    let hits = find("harness/src/backend", |l| {
        imports(
            l,
            &[
                "service", "scenario", "check", "report", "engine", "workload", "artifact",
                "sanitize",
            ],
        )
    });
    assert!(
        hits.is_empty(),
        "backend/ reaches past itself:\n{}",
        hits.join("\n")
    );
}

/// Architecture Invariant: checks, reports and the scenario format do not
/// depend on where servers run.
#[test]
fn checks_reports_and_scenarios_import_nothing_from_backend() {
    let mut hits = Vec::new();
    for dir in [
        "harness/src/check",
        "harness/src/report",
        "harness/src/scenario",
    ] {
        hits.extend(find(dir, |l| imports(l, &["backend"])));
    }
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

/// Architecture Invariant: `compose` decides, never acts: reading a compose
/// file and parsing a shim's line touch no server, so it imports no
/// backend, service or engine (what a line does is `engine/docker_shim.rs`'s).
#[test]
fn compose_imports_no_backend_service_or_engine() {
    let hits = find("harness/src/compose", |l| {
        imports(l, &["backend", "service", "engine"])
    });
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

/// Architecture Invariant: the shared vocabulary and the error type import
/// no layer (errors may use the vocabulary).
#[test]
fn the_vocabulary_and_the_errors_import_no_layer() {
    let layers = [
        "service", "scenario", "check", "report", "engine", "backend", "workload", "artifact",
        "sanitize", "shell", "errors",
    ];
    let mut hits = find("harness/src/vocab.rs", |l| imports(l, &layers));
    hits.extend(find("harness/src/errors.rs", |l| {
        imports(l, &layers[..layers.len() - 1])
    }));
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

/// Architecture Invariant: only `backend/` starts containers or talks to
/// the Docker engine; its CLI uses there are `docker exec -i` (client tools
/// streaming like local processes, and the shims for users' scripts) and
/// `docker run --rm` (a shell over a volume, a probe of an image).
#[test]
fn only_the_backend_runs_docker() {
    let hits: Vec<String> = find("harness/src", runs_docker)
        .into_iter()
        .filter(|h| {
            !h.starts_with("harness/src/backend/") && !h.starts_with("harness/src/errors.rs")
        })
        .collect();
    assert!(
        hits.is_empty(),
        "docker outside backend/:\n{}",
        hits.join("\n")
    );
}

fn runs_docker(l: &str) -> bool {
    l.contains("Command::new(\"docker\")") || l.contains("bollard::")
}

/// The engine walks a list of services: no per-engine branches in it.
#[test]
fn the_engine_knows_no_engine() {
    let hits = find("harness/src/engine", names_an_engine);
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

fn names_an_engine(l: &str) -> bool {
    [
        "if let Some(pg)",
        "if let Some(r)",
        "if let Some(c)",
        "ServiceKind::Postgres",
        "ServiceKind::Redis",
        "ServiceKind::ClickHouse",
    ]
    .iter()
    .any(|p| l.contains(p))
}

/// Errors keep their sources: no `Result<_, String>` in the library.
#[test]
fn the_library_returns_typed_errors() {
    let hits = find("harness/src", returns_a_string_error);
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

fn returns_a_string_error(l: &str) -> bool {
    let l = l.replace(' ', "");
    l.match_indices("Result<")
        .any(|(i, m)| error_type(&l[i + m.len()..]) == Some("String"))
}

/// The rules cannot pass by reading nothing: each one's matcher catches a
/// line that breaks it (and lets a good one through), a test module is the
/// only thing left unread, and a path that holds no code fails the rule.
#[test]
fn every_rule_catches_what_it_is_for() {
    assert!(imports("use crate::service::postgres;", &["service"]));
    assert!(imports("    crate::engine::run(x)", &["engine"]));
    assert!(!imports("// crate::service::x", &["service"]));
    assert!(!imports("use crate::vocab::ServiceKind;", &["service"]));
    assert!(runs_docker("let c = Command::new(\"docker\");"));
    assert!(runs_docker("use bollard::Docker;"));
    assert!(names_an_engine("if k == ServiceKind::Redis {"));
    assert!(!names_an_engine("for s in services.iter() {"));
    assert!(returns_a_string_error("fn f() -> Result<u8, String> {"));
    assert!(returns_a_string_error(
        "fn f() -> Result<Vec<(u8, u8)>, String> {"
    ));
    assert!(!returns_a_string_error("fn f() -> Result<String> {"));
    assert!(!returns_a_string_error("fn f() -> Result<String, Error> {"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.rs");
    std::fs::write(
        &file,
        "//! x\n#[cfg(test)]\nuse a::b;\nfn late() {}\n\n#[cfg(test)]\n\nmod tests {\n    fn t() { x() }\n}\n\nfn after() {}\n#[cfg(test)]\nmod more;\nfn last() {}\n",
    )
    .unwrap();
    let lines: Vec<String> = code_lines(&file).into_iter().map(|(_, l)| l).collect();
    assert!(
        lines.contains(&"fn late() {}".to_string())
            && !lines
                .iter()
                .any(|l| l.contains("mod tests") || l.contains("fn t()"))
            && !lines.iter().any(|l| l.contains("mod more")),
        "a #[cfg(test)] item hides nothing, the test modules are left out: {lines:?}"
    );
    // Code after a test module is still read (upgrade.rs once had its
    // tests first, and its `Result<_, String>` went unseen).
    assert!(
        lines.contains(&"fn after() {}".to_string()) && lines.contains(&"fn last() {}".to_string()),
        "code after a test module is read: {lines:?}"
    );
    let empty = std::panic::catch_unwind(|| find("xtask/images", |_| true));
    assert!(empty.is_err(), "a path without Rust code fails the rule");
}

/// The second top-level generic argument of a `Result<...>` whose
/// arguments start `args` (the text after `Result<`), if there is one.
fn error_type(args: &str) -> Option<&str> {
    let mut depth = 0;
    let mut second = None;
    for (i, c) in args.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' if depth == 0 => return second.map(|s| &args[s..i]),
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => second = Some(i + 1),
            _ => {}
        }
    }
    None
}
