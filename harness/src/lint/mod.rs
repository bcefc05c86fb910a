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
        let mut files = if meta.is_dir() {
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
            Ok(t) if t.is_dir() && !p.join("toc.dat").is_file() => walk(&p, out)?,
            Ok(t) if t.is_file() || t.is_dir() => out.push(p),
            _ => {}
        }
    }
    Ok(())
}

fn lint_file(path: &Path, report: &mut Report) -> Result<(), Unreadable> {
    let name = path.display().to_string();
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
    for script in scripts_in(&name, &text) {
        rules::check(&script, &mut report.findings);
    }
    Ok(())
}

/// A backup file: pg_dump's messages inside it, no checksum sidecar.
fn lint_artifact(path: &Path, name: &str, out: &mut Vec<Finding>) {
    let i = crate::artifact::inspect_file(path, "lint");
    if i.stderr_lines > 0 {
        out.push(Finding::at(
            rules::STDERR_IN_DUMP,
            name,
            1,
            &format!(
                "{} lines of pg_dump's stderr inside the backup",
                i.stderr_lines
            ),
        ));
    }
    if i.sha256_matches.is_none() {
        out.push(Finding::at(
            rules::NO_CHECKSUM,
            name,
            1,
            "no .sha256 sidecar beside the backup",
        ));
    }
}

/// The scripts a file holds: itself (a shell script or a crontab), or a
/// runbook's fenced code blocks (bash, sh, shell, cron, or unlabelled).
pub(crate) fn scripts_in(name: &str, text: &str) -> Vec<Script> {
    let raw: Vec<&str> = text.lines().collect();
    let timescale = text.to_ascii_lowercase().contains("timescale");
    let base = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let markdown = base.ends_with(".md")
        || base.ends_with(".txt")
        || raw.iter().any(|l| l.trim_start().starts_with("```"));
    if !markdown {
        let cron = (base.contains("cron") && !base.ends_with(".sh"))
            || raw.iter().all(|l| {
                let t = l.trim();
                t.is_empty() || t.starts_with('#') || is_cron_line(t) || t.contains('=')
            }) && raw.iter().any(|l| is_cron_line(l.trim()));
        let numbered: Vec<(u64, &str)> = raw
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, *l))
            .collect();
        return vec![Script {
            file: name.to_string(),
            lines: logical_lines(&numbered),
            cron,
            whole_job: !cron,
            timescale,
        }];
    }
    let mut out = Vec::new();
    let mut block: Option<(String, Vec<(u64, &str)>)> = None;
    for (i, l) in raw.iter().enumerate() {
        let t = l.trim_start();
        if let Some(lang) = t.strip_prefix("```") {
            match block.take() {
                Some((lang, lines)) => {
                    if matches!(
                        lang.as_str(),
                        "" | "bash" | "sh" | "shell" | "console" | "cron" | "crontab"
                    ) {
                        out.push(Script {
                            file: name.to_string(),
                            lines: logical_lines(&lines),
                            cron: lang.starts_with("cron"),
                            whole_job: false,
                            timescale,
                        });
                    }
                }
                None => block = Some((lang.trim().to_lowercase(), Vec::new())),
            }
            continue;
        }
        if let Some((_, lines)) = block.as_mut() {
            let l = l.trim_start().strip_prefix("$ ").unwrap_or(l);
            lines.push((i as u64 + 1, l));
        }
    }
    out
}

/// `m h dom mon dow command`, or `@daily command`.
fn is_cron_line(t: &str) -> bool {
    let w: Vec<&str> = t.split_whitespace().collect();
    if w.first().is_some_and(|f| f.starts_with('@')) {
        return w.len() >= 2;
    }
    w.len() >= 6
        && w[..5]
            .iter()
            .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c)))
}

/// Joins continuation lines, drops comments and heredoc bodies.
fn logical_lines(raw: &[(u64, &str)]) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    let mut pending: Option<Line> = None;
    let mut heredoc: Option<String> = None;
    for (n, l) in raw {
        if let Some(end) = &heredoc {
            if l.trim() == end {
                heredoc = None;
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
    out
}

/// The delimiter of a heredoc this line opens (`<<EOF`, `<< 'EOF'`, `<<-SQL`).
fn heredoc_end(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    if rest.starts_with('<') {
        return None; // a here-string
    }
    let word: String = rest
        .chars()
        .skip_while(|c| *c == '\'' || *c == '"')
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
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
                            "artifactLocation": { "uri": sarif_uri(&f.file) },
                            "region": { "startLine": f.line, "snippet": { "text": f.evidence } }
                        }
                    }]
                })
            })
            .collect();
        serde_json::json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
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
fn sarif_uri(file: &str) -> String {
    file.trim_start_matches("./").replace(' ', "%20")
}

#[cfg(test)]
mod tests;
