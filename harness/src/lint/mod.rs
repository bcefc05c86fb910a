//! Backup lint: the hazards behind the seeds' incidents, found in backup
//! scripts, runbooks' code blocks, crontabs and backup artifacts without
//! restoring anything ([`lint_paths`]). Each finding names the file and
//! line, why it is dangerous, the incident it caused and the fix
//! ([`rules`]); [`Report::text`], [`Report::json`] and [`Report::sarif`]
//! say it for people, machines and GitHub code scanning.
//!
//! Reading is line-based shell: continuation lines are joined, comments
//! and heredoc bodies are not commands (their text still counts when a rule
//! asks whether a script mentions something, e.g. `timescaledb_pre_restore`
//! inside a psql heredoc).

pub mod rules;

use std::path::{Path, PathBuf};

use rules::Rule;

/// A hazard found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub name: &'static str,
    pub file: String,
    pub line: u64,
    /// The command line as read (continuations joined).
    pub evidence: String,
    pub summary: &'static str,
    pub why: &'static str,
    pub seed: &'static str,
    pub fix: &'static str,
    /// `evidence` is the file's own text (a script line), not drill's
    /// description of a backup file.
    #[serde(skip)]
    pub(crate) snippet: bool,
}

impl Finding {
    pub(crate) fn at(rule: Rule, file: &str, line: u64, evidence: &str) -> Finding {
        Finding {
            rule: rule.id,
            name: rule.name,
            file: file.to_string(),
            line: line.max(1),
            evidence: evidence.trim().chars().take(300).collect(),
            summary: rule.summary,
            why: rule.why,
            seed: rule.seed,
            fix: rule.fix,
            snippet: true,
        }
    }

    /// A finding about a backup file (its evidence is drill's words).
    fn about_file(rule: Rule, file: &str, evidence: &str) -> Finding {
        Finding {
            snippet: false,
            ..Finding::at(rule, file, 1, evidence)
        }
    }
}

/// One command line of a script: where it starts, and its text.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) number: u64,
    pub(crate) text: String,
}

/// A script as the rules read it.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub(crate) file: String,
    pub(crate) lines: Vec<Line>,
    /// A crontab: its lines are jobs.
    pub(crate) cron: bool,
    /// A whole job (a script file), not a runbook's snippet: the rules about
    /// what a job as a whole lacks (checksum, retention) apply.
    pub(crate) whole_job: bool,
    /// The file mentions TimescaleDB anywhere (a runbook about a
    /// TimescaleDB database, a script that checks for the extension).
    pub(crate) timescale: bool,
    /// The file calls `timescaledb_pre_restore` somewhere (a heredoc, a
    /// runbook's SQL block).
    pub(crate) file_has_pre_restore: bool,
    /// The file talks of Redis's AOF, and whether it turns it off.
    pub(crate) mentions_aof: bool,
    pub(crate) mentions_appendonly_no: bool,
    /// The shebang sets pipefail (`#!/usr/bin/env -S bash -euo pipefail`).
    pub(crate) pipefail_shebang: bool,
    /// Heredoc bodies: not commands, but text a rule may look for.
    pub(crate) heredocs: Vec<Line>,
}

/// What the lint found in every input.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Files read, in order.
    pub files: Vec<String>,
    pub findings: Vec<Finding>,
}

/// An input that cannot be read (exit 3).
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.why)
    }
}

/// Lints every path (a folder: each file below it, hidden ones skipped).
pub fn lint_paths(paths: &[PathBuf]) -> Result<Report, Unreadable> {
    let mut report = Report::default();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Unreadable {
            path: p.clone(),
            why: format!("{e}; name a backup script, a crontab, a runbook or a backup file"),
        })?;
        // A directory-format dump (toc.dat) is one backup, not a folder.
        let mut files = if meta.is_dir() && !p.join("toc.dat").is_file() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found
        } else {
            vec![p.clone()]
        };
        files.sort();
        for f in files {
            lint_file(&f, &mut report)?;
        }
    }
    Ok(report)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Unreadable> {
    let entries = std::fs::read_dir(dir).map_err(|e| Unreadable {
        path: dir.to_owned(),
        why: e.to_string(),
    })?;
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match e.file_type() {
            // Symlinks followed, as the shell would.
            Ok(t) if t.is_symlink() => match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => out.push(p),
                Ok(m) if m.is_dir() && !p.join("toc.dat").is_file() => walk(&p, out)?,
                _ => {}
            },
            Ok(t) if t.is_dir() && !p.join("toc.dat").is_file() => walk(&p, out)?,
            Ok(t) if t.is_file() || t.is_dir() => out.push(p),
            _ => {}
        }
    }
    Ok(())
}

fn lint_file(path: &Path, report: &mut Report) -> Result<(), Unreadable> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| Unreadable {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if !(meta.is_file() || meta.is_dir() && path.join("toc.dat").is_file()) {
        // A FIFO or a device would block or never end: not a file to read.
        return Err(Unreadable {
            path: path.to_owned(),
            why: "not a regular file (a FIFO, socket or device); name the file itself".into(),
        });
    }
    report.files.push(name.clone());
    if crate::artifact::looks_like_dump(path) {
        lint_artifact(path, &name, &mut report.findings);
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| Unreadable {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if bytes.contains(&0) {
        return Ok(()); // binary, and no backup drill knows
    }
    let text = String::from_utf8_lossy(&bytes);
    // A plain dump whose header comes after pg_dump's own messages.
    if text.contains("-- PostgreSQL database dump")
        || text.contains("-- PostgreSQL database cluster dump")
    {
        lint_artifact(path, &name, &mut report.findings);
        return Ok(());
    }
    for script in scripts_in(&name, &text) {
        rules::check(&script, &mut report.findings);
    }
    Ok(())
}

/// A backup file: pg_dump's messages inside it, no checksum sidecar.
fn lint_artifact(path: &Path, name: &str, out: &mut Vec<Finding>) {
    let i = crate::artifact::inspect_file(path, "lint");
    if i.stderr_lines > 0 {
        out.push(Finding::about_file(
            rules::STDERR_IN_DUMP,
            name,
            &format!(
                "{} lines of pg_dump's stderr inside the backup",
                i.stderr_lines
            ),
        ));
    }
    if i.sha256_matches.is_none() {
        out.push(Finding::about_file(
            rules::NO_CHECKSUM,
            name,
            "no .sha256 sidecar beside the backup",
        ));
    }
}

/// The scripts a file holds: itself (a shell script or a crontab), or a
/// runbook's fenced code blocks (bash, sh, shell, cron, or unlabelled).
pub(crate) fn scripts_in(name: &str, text: &str) -> Vec<Script> {
    let raw: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let lower = text.to_ascii_lowercase();
    let base = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let shebang = raw.first().is_some_and(|l| l.starts_with("#!"));
    let script = |lines: &[(u64, &str)], cron: bool, whole_job: bool| {
        let (lines, heredocs) = logical_lines(lines);
        Script {
            file: name.to_string(),
            lines,
            cron,
            whole_job,
            timescale: lower.contains("timescale"),
            file_has_pre_restore: lower.contains("timescaledb_pre_restore"),
            mentions_aof: lower.contains("appendonly") || lower.contains("aof"),
            mentions_appendonly_no: lower.contains("appendonly no"),
            pipefail_shebang: whole_job
                && raw
                    .first()
                    .is_some_and(|l| l.starts_with("#!") && l.contains("pipefail")),
            heredocs,
        }
    };
    let numbered: Vec<(u64, &str)> = raw
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, *l))
        .collect();
    let cron = !shebang
        && !base.ends_with(".sh")
        && (base.contains("cron")
            || raw.iter().any(|l| is_cron_line(l.trim()))
                && raw.iter().all(|l| {
                    let t = l.trim();
                    t.is_empty() || t.starts_with('#') || is_cron_line(t) || t.contains('=')
                }));
    let markdown = !shebang
        && !cron
        && (base.ends_with(".md") || base.ends_with(".markdown") || base.ends_with(".txt"));
    if !markdown {
        return vec![script(&numbered, cron, !cron)];
    }
    let mut out = Vec::new();
    let mut block: Option<Block<'_>> = None;
    for &(n, l) in &numbered {
        let t = l.trim_start();
        let fence = ["```", "~~~"].into_iter().find(|f| t.starts_with(f));
        if let Some(f) = fence {
            match block.take() {
                Some((open, lang, lines)) if open == f => {
                    if shell_block(&lang) {
                        out.push(script(&lines, lang.starts_with("cron"), false));
                    }
                }
                Some(other) => block = Some(other),
                None => {
                    // The info string's first word: ```bash title="x"
                    let lang = t[3..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_lowercase();
                    block = Some((f, lang, Vec::new()));
                }
            }
            continue;
        }
        if let Some((_, _, lines)) = block.as_mut() {
            let l = l.trim_start().strip_prefix("$ ").unwrap_or(l);
            lines.push((n, l));
        }
    }
    // A block the document never closes still holds commands.
    if let Some((_, lang, lines)) = block
        && shell_block(&lang)
    {
        out.push(script(&lines, lang.starts_with("cron"), false));
    }
    out
}

/// An open code block: its fence, language and lines so far.
type Block<'a> = (&'static str, String, Vec<(u64, &'a str)>);

fn shell_block(lang: &str) -> bool {
    matches!(
        lang.trim_start_matches('{').trim_end_matches('}'),
        "" | "bash" | "sh" | "shell" | "console" | "zsh" | "cron" | "crontab"
    )
}

/// `m h dom mon dow command` (month and day names allowed), or
/// `@daily command`.
fn is_cron_line(t: &str) -> bool {
    let w: Vec<&str> = t.split_whitespace().collect();
    if w.first().is_some_and(|f| f.starts_with('@')) {
        return w.len() >= 2;
    }
    let field = |f: &str, names: bool| {
        f.chars()
            .all(|c| c.is_ascii_digit() || "*/,-".contains(c) || (names && c.is_ascii_alphabetic()))
            && f.chars().any(|c| c.is_ascii_digit() || c == '*' || names)
    };
    w.len() >= 6
        && w[..3].iter().all(|f| field(f, false))
        && w[3..5].iter().all(|f| field(f, true) && f.len() <= 7)
}

/// Joins continuation lines and drops comments; heredoc bodies are kept
/// apart (second list), not as commands.
fn logical_lines(raw: &[(u64, &str)]) -> (Vec<Line>, Vec<Line>) {
    let mut out: Vec<Line> = Vec::new();
    let mut bodies: Vec<Line> = Vec::new();
    let mut pending: Option<Line> = None;
    let mut heredoc: Option<String> = None;
    for (n, l) in raw {
        if let Some(end) = &heredoc {
            if l.trim() == end {
                heredoc = None;
            } else {
                bodies.push(Line {
                    number: *n,
                    text: l.to_string(),
                });
            }
            continue;
        }
        let code = strip_comment(l);
        if code.trim().is_empty() && pending.is_none() {
            continue;
        }
        let (body, continues) = match code.trim_end().strip_suffix('\\') {
            Some(b) => (b.to_string(), true),
            None => (code.trim_end().to_string(), false),
        };
        let line = match pending.take() {
            Some(mut p) => {
                p.text.push(' ');
                p.text.push_str(body.trim());
                p
            }
            None => Line {
                number: *n,
                text: body.trim().to_string(),
            },
        };
        if continues {
            pending = Some(line);
            continue;
        }
        heredoc = heredoc_end(&line.text);
        out.push(line);
    }
    out.extend(pending);
    (out, bodies)
}

/// The delimiter of a heredoc this line opens (`<<EOF`, `<< 'EOF'`,
/// `<<-SQL`); not a here-string (`<<<`), not a shift (`$((1<<20))`).
fn heredoc_end(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let before = line[..at].chars().last();
    if before.is_some_and(|c| !c.is_whitespace()) {
        return None;
    }
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    if rest.starts_with('<') {
        return None;
    }
    let rest = rest.trim_start_matches(['\'', '"']);
    if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    Some(word)
}

/// The line without a `#` comment (one outside quotes, at a word start).
fn strip_comment(l: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in l.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &l[..i],
            _ => {}
        }
        prev = c;
    }
    l
}

impl Report {
    /// Exit status: 0 clean, 1 hazards found.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// For people: one block per finding, then a count.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s.push_str(&format!(
                "{}:{}: {} {}: {}\n  why: {}\n  incident: {}\n  fix: {}\n  > {}\n",
                f.file, f.line, f.rule, f.name, f.summary, f.why, f.seed, f.fix, f.evidence
            ));
        }
        s.push_str(&format!(
            "{} hazards in {} files read\n",
            self.findings.len(),
            self.files.len()
        ));
        s
    }

    /// For machines.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "files": self.files,
            "findings": self.findings,
            "rules": rules::ALL.iter().map(rule_json).collect::<Vec<_>>(),
        })
    }

    /// SARIF 2.1.0, as GitHub code scanning reads it.
    pub fn sarif(&self) -> serde_json::Value {
        let index = |id: &str| rules::ALL.iter().position(|r| r.id == id).unwrap_or(0);
        let results: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "ruleId": f.rule,
                    "ruleIndex": index(f.rule),
                    "level": "error",
                    "message": { "text": format!("{}: {} ({}). Fix: {}", f.summary, f.why, f.seed, f.fix) },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": artifact_location(&f.file),
                            "region": if f.snippet {
                                serde_json::json!({ "startLine": f.line, "snippet": { "text": f.evidence } })
                            } else {
                                serde_json::json!({ "startLine": f.line })
                            }
                        }
                    }]
                })
            })
            .collect();
        serde_json::json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "originalUriBaseIds": {
                    "SRCROOT": { "uri": format!("{}/", file_uri(&std::env::current_dir().unwrap_or_default())) }
                },
                "tool": { "driver": {
                    "name": "drill lint-backup",
                    "informationUri": "https://github.com/drill/drill",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules::ALL.iter().map(|r| serde_json::json!({
                        "id": r.id,
                        "name": r.name,
                        "shortDescription": { "text": r.summary },
                        "fullDescription": { "text": r.why },
                        "help": { "text": format!("{} ({})", r.fix, r.seed) },
                        "defaultConfiguration": { "level": "error" },
                        "properties": { "incident": r.seed }
                    })).collect::<Vec<_>>()
                }},
                "results": results
            }]
        })
    }
}

fn rule_json(r: &Rule) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "name": r.name, "summary": r.summary, "why": r.why,
        "incident": r.seed, "fix": r.fix,
    })
}

/// A relative path as a URI reference (forward slashes, no `./`).
/// Where a finding is: relative to the folder lint ran in (`SRCROOT`, the
/// repository root in CI), else an absolute `file://` URI.
fn artifact_location(file: &str) -> serde_json::Value {
    let path = Path::new(file);
    let cwd = std::env::current_dir().unwrap_or_default();
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let absolute = normalize(&absolute);
    match absolute.strip_prefix(&cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => serde_json::json!({
            "uri": encode(&rel.to_string_lossy().replace('\\', "/")),
            "uriBaseId": "SRCROOT"
        }),
        _ => serde_json::json!({ "uri": file_uri(&absolute) }),
    }
}

/// `a/b/../c` as `a/c` (no file system access).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn file_uri(p: &Path) -> String {
    format!("file://{}", encode(&p.to_string_lossy().replace('\\', "/")))
}

/// Percent-encodes what a URI path may not hold as is.
fn encode(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' | '/' => c.to_string(),
            c => {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
