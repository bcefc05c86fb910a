//! The hazards: each rule says what it finds, why it is dangerous, which
//! seed's incident it caused and the fix, and finds it in one script (a
//! shell file, a runbook's code block, a crontab) read as logical lines.
//! Pure: text in, findings out.

use super::{Finding, Script};

/// One hazard drill knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    /// kebab-case, for SARIF's `name`.
    pub name: &'static str,
    /// What is wrong, one line.
    pub summary: &'static str,
    /// Why it is dangerous.
    pub why: &'static str,
    /// The incident it caused.
    pub seed: &'static str,
    pub fix: &'static str,
}

pub const STDERR_IN_DUMP: Rule = Rule {
    id: "DRL001",
    name: "stderr-in-dump",
    summary: "pg_dump's stderr goes into the dump",
    why: "`2>&1` (or `docker exec -t`, whose terminal merges the streams) writes pg_dump's messages into the SQL; with --verbose every line `pg_dump: ...` is a syntax error on restore, and a failed dump's error message becomes the 'backup'",
    seed: "seed 000: \"Backup restore failed due to verbose pg_dump output\"",
    fix: "send stderr to a log of its own (`2>backup.log`), and run pg_dump in a container without `-t`",
};

pub const PIPE_HIDES_FAILURE: Rule = Rule {
    id: "DRL002",
    name: "pipeline-hides-failure",
    summary: "pg_dump piped without `set -o pipefail`",
    why: "a pipeline's status is its last command's: when pg_dump fails, `| gzip > file` still exits 0 and leaves an empty or truncated backup that looks written",
    seed: "seeds 000 and 003: `pg_dump ... | gzip > backup.sql.gz` in the backup job",
    fix: "`set -euo pipefail` at the top of the script (or check `${PIPESTATUS[0]}`)",
};

pub const NO_CHECKSUM: Rule = Rule {
    id: "DRL003",
    name: "no-checksum",
    summary: "the backup gets no checksum, or one taken before it is complete",
    why: "without a `.sha256` written after the file is complete, a truncated or altered backup cannot be told from a good one before the restore",
    seed: "seed 004: every restore starts with `sha256sum -c backup.sql.gz.sha256`",
    fix: "after the dump has finished, `sha256sum backup > backup.sha256`",
};

pub const TIMESCALEDB_NO_PRE_POST: Rule = Rule {
    id: "DRL004",
    name: "timescaledb-restore-without-pre-post",
    summary: "a TimescaleDB restore without timescaledb_pre_restore()/post_restore()",
    why: "TimescaleDB's catalog is restored as data; without pre_restore its triggers and background jobs act on a half-restored catalog, and 'errors ignored on restore' hides the damage",
    seed: "seed 004, \"Full Database Recovery\": CREATE EXTENSION, then pg_restore",
    fix: "`SELECT timescaledb_pre_restore();` before the restore and `SELECT timescaledb_post_restore();` after it",
};

pub const TIMESCALEDB_PARALLEL: Rule = Rule {
    id: "DRL005",
    name: "timescaledb-parallel-restore",
    summary: "pg_restore -j on a TimescaleDB database",
    why: "parallel jobs load TimescaleDB's catalog tables out of order and break their foreign keys (`chunk_hypertable_id_fkey`); TimescaleDB's documentation says never to",
    seed: "seed 004's TimescaleDB restores",
    fix: "restore TimescaleDB serially (no `-j`/`--jobs`)",
};

pub const CONTINUES_PAST_ERRORS: Rule = Rule {
    id: "DRL006",
    name: "restore-continues-past-errors",
    summary: "the restore does not stop at the first error",
    why: "psql without ON_ERROR_STOP and pg_restore without --exit-on-error go on after a failed statement and exit 0, so a partial restore looks like a success",
    seed: "seed 001: the restore 'succeeded' and left only `ticks`",
    fix: "`psql -v ON_ERROR_STOP=1`, `pg_restore --exit-on-error`",
};

pub const FK_UNCHECKED: Rule = Rule {
    id: "DRL007",
    name: "foreign-keys-unchecked",
    summary: "a data load with foreign-key checks off",
    why: "`--disable-triggers` or `session_replication_role = replica` loads children whose parents are missing without a word; the orphans surface when the keys are added again",
    seed: "seed 002: ticks held 34 symbols, pairs 30; the foreign keys could not be added",
    fix: "restore the whole dump (parents with children), or load parents first with the keys on",
};

pub const AOF_FIX_PROMPTS: Rule = Rule {
    id: "DRL008",
    name: "redis-check-aof-prompts",
    summary: "redis-check-aof --fix in a script",
    why: "it asks `Continue? [y/N]` and waits: in a script or cron job the repair hangs or, fed nothing, does nothing",
    seed: "seed 003, \"Redis AOF Corruption\"",
    fix: "answer it (`yes | redis-check-aof --fix ...`), or drill it with `step = \"redis-check-aof\"`",
};

pub const RDB_WITH_AOF: Rule = Rule {
    id: "DRL009",
    name: "rdb-ignored-with-aof",
    summary: "dump.rdb copied in while the AOF is on",
    why: "a Redis with `appendonly yes` loads the AOF and ignores dump.rdb: the restore brings back nothing",
    seed: "seed 003, \"Manual RDB Restore\"",
    fix: "start once with `--appendonly no` so the RDB loads, then `CONFIG SET appendonly yes`",
};

pub const BASEBACKUP_AFTER_WIPE: Rule = Rule {
    id: "DRL010",
    name: "basebackup-from-stopped-server",
    summary: "pg_basebackup after stopping PostgreSQL and emptying its data directory",
    why: "pg_basebackup copies from a running server: with the server stopped and its data gone there is nothing to copy from, and the procedure ends with no database",
    seed: "seed 004, \"Scenario 3: PITR\"",
    fix: "restore a base backup taken before (kept with its WAL archive), then replay the archive",
};

pub const NO_RETENTION: Rule = Rule {
    id: "DRL011",
    name: "no-retention",
    summary: "backups are written and never removed",
    why: "the backup disk fills, and then every backup fails",
    seed: "seeds 000 and 003: keep 7 daily (and 4 weekly)",
    fix: "remove all but the newest N after a successful backup",
};

pub const NO_TEST_RESTORE: Rule = Rule {
    id: "DRL012",
    name: "no-test-restore",
    summary: "backups are scheduled, test restores are not",
    why: "a backup nobody restores is untested: every seed's incident was found during a restore",
    seed: "seed 004: \"monthly restore tests\"",
    fix: "schedule a restore drill (`cargo xtask drill restore-artifact --backup DIR`)",
};

pub const CRON_OUTPUT_DISCARDED: Rule = Rule {
    id: "DRL013",
    name: "cron-output-discarded",
    summary: "a cron job's output goes nowhere",
    why: "with stdout and stderr sent to /dev/null a failing backup fails silently, night after night",
    seed: "seed 000: the broken backup job ran for days",
    fix: "append to a log someone reads (`>> /var/log/backup.log 2>&1`) or let cron mail it",
};

/// Every rule, in id order.
pub const ALL: [Rule; 13] = [
    STDERR_IN_DUMP,
    PIPE_HIDES_FAILURE,
    NO_CHECKSUM,
    TIMESCALEDB_NO_PRE_POST,
    TIMESCALEDB_PARALLEL,
    CONTINUES_PAST_ERRORS,
    FK_UNCHECKED,
    AOF_FIX_PROMPTS,
    RDB_WITH_AOF,
    BASEBACKUP_AFTER_WIPE,
    NO_RETENTION,
    NO_TEST_RESTORE,
    CRON_OUTPUT_DISCARDED,
];

/// The words of a command line, quotes kept (enough to find programs,
/// flags and redirections).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Whether `line` runs `program` (as a word, or a path ending in it).
fn runs(line: &str, program: &str) -> bool {
    words(line).iter().any(|w| {
        let w = w.trim_start_matches(['(', '$', '`', '"', '\'']);
        w == program || w.ends_with(&format!("/{program}"))
    })
}

fn has_flag(line: &str, flags: &[&str]) -> bool {
    words(line).iter().any(|w| {
        flags
            .iter()
            .any(|f| w == f || (f.starts_with("--") && w.starts_with(&format!("{f}="))))
    })
}

/// A pipeline's stages: split at `|` and `|&`, not at `||`; each with
/// whether it hands its stderr on too (`|&`).
fn stages(line: &str) -> Vec<(&str, bool)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b'|' {
            if b.get(i + 1) == Some(&b'|') {
                i += 2;
                continue;
            }
            let merged = b.get(i + 1) == Some(&b'&');
            out.push((&line[start..i], merged));
            i += if merged { 2 } else { 1 };
            start = i;
            continue;
        }
        i += 1;
    }
    out.push((&line[start..], false));
    out
}

/// The stage running one of `programs`: its index, text, and `|&` after it.
fn stage_running<'a>(line: &'a str, programs: &[&str]) -> Option<(usize, &'a str, bool)> {
    stages(line)
        .into_iter()
        .enumerate()
        .find(|(_, (s, _))| programs.iter().any(|p| runs(s, p)))
        .map(|(i, (s, m))| (i, s, m))
}

/// The stage sends stdout to a file (`>`, `>>`, `1>`, `&>`, `>& file`).
fn stdout_to_file(stage: &str) -> bool {
    words(stage).iter().any(|w| {
        let w = w.strip_prefix('1').unwrap_or(w);
        (w.starts_with('>') && !w.starts_with(">&2") && !w.starts_with(">&1"))
            || w.starts_with("&>")
    })
}

/// The stage sends stderr where stdout goes.
fn stderr_with_stdout(stage: &str) -> bool {
    stage.contains("2>&1")
        || words(stage)
            .iter()
            .any(|w| w.starts_with("&>") || (w.starts_with(">&") && !w.starts_with(">&2")))
}

/// `pg_dump`/`pg_dumpall` writes into a file or a pipe that ends in one
/// (not `-f`, which it writes itself, and not a copy into psql).
fn dump_stage(line: &str) -> Option<(usize, &str, bool)> {
    stage_running(line, &["pg_dump", "pg_dumpall"])
}

/// Where the dump of this line goes: a file or a pipe into a file.
fn dump_to_file(line: &str) -> bool {
    let Some((i, stage, _)) = dump_stage(line) else {
        return false;
    };
    if writes_its_own_file(stage) {
        return true;
    }
    let all = stages(line);
    match all.get(i + 1) {
        // A copy into another server is no backup file.
        Some((next, _)) => !(runs(next, "psql") || runs(next, "pg_restore")),
        None => stdout_to_file(stage),
    }
}

/// pg_dump writes the file itself (`-f`, `--file`): its stderr cannot
/// reach it.
fn writes_its_own_file(stage: &str) -> bool {
    has_flag(stage, &["-f", "--file"])
}

/// A checksum is written here (not `-c`, which checks one).
fn writes_checksum(line: &str) -> bool {
    (runs(line, "sha256sum") || runs(line, "sha512sum") || runs(line, "shasum"))
        && !has_flag(line, &["-c", "--check"])
}

/// `-h`/`--host`/`-d`/`--dbname` name a server other than this machine.
fn names_another_host(line: &str) -> bool {
    let w = words(line);
    let remote = |v: &str| !v.is_empty() && !v.contains("localhost") && !v.contains("127.0.0.1");
    w.iter().enumerate().any(|(i, x)| {
        let value = match *x {
            "-h" | "--host" | "-d" | "--dbname" => w.get(i + 1).copied().unwrap_or(""),
            _ => ["--host=", "--dbname=", "-h", "-d"]
                .iter()
                .find_map(|f| x.strip_prefix(f))
                .unwrap_or(""),
        };
        remote(value)
    })
}

/// A terminal between pg_dump and its output merges stderr into stdout:
/// `docker exec -t`, `docker compose exec` (a terminal unless `-T`),
/// `kubectl exec -t`, `docker run -t`.
fn through_a_terminal(stage: &str) -> bool {
    let w = words(stage);
    let tty_flag = |w: &&str| {
        *w == "--tty"
            || (w.starts_with('-')
                && !w.starts_with("--")
                && w[1..].contains('t')
                && w[1..].chars().all(|c| c.is_ascii_alphabetic()))
    };
    let compose = (w.contains(&"compose") && w.contains(&"exec"))
        || w.iter().any(|x| x.ends_with("docker-compose"));
    if compose && w.contains(&"exec") {
        return !w.contains(&"-T") && !w.contains(&"--no-TTY");
    }
    (runs(stage, "docker") && (w.contains(&"exec") || w.contains(&"run"))
        || runs(stage, "kubectl") && w.contains(&"exec"))
        && w.iter()
            .take_while(|x| !x.contains("pg_dump"))
            .any(tty_flag)
}

/// psql here reads statements from a pipe, a file or a redirect.
fn psql_reads_dump(line: &str) -> bool {
    let Some((i, stage, _)) = stage_running(line, &["psql"]) else {
        return false;
    };
    if has_flag(stage, &["-c", "--command", "-l", "--list"]) || stage.contains("<<") {
        return false;
    }
    let w = words(stage);
    i > 0
        || w.iter().any(|x| x.starts_with('<') && !x.starts_with("<<"))
        || w.iter()
            .any(|x| *x == "-f" || x.starts_with("--file") || (x.starts_with("-f") && x.len() > 2))
}

/// ON_ERROR_STOP set on (`-v ON_ERROR_STOP=1`, `--set ON_ERROR_STOP=on`).
fn stops_on_error(stage: &str) -> bool {
    stage
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .any(|w| {
            w.strip_prefix("ON_ERROR_STOP=")
                .or_else(|| w.strip_prefix("--set=ON_ERROR_STOP="))
                .is_some_and(|v| {
                    !matches!(
                        v.to_ascii_lowercase().as_str(),
                        "0" | "off" | "false" | "no"
                    )
                })
                || w == "ON_ERROR_STOP"
        })
}

/// pg_restore restores into a database here (`-d`), not into SQL.
fn pg_restore_restores(line: &str) -> bool {
    stage_running(line, &["pg_restore"]).is_some_and(|(_, s, _)| {
        words(s).iter().any(|w| {
            *w == "-d"
                || w.starts_with("--dbname")
                || (w.starts_with("-d") && w.len() > 2 && !w.starts_with("--"))
        }) && !has_flag(s, &["-l", "--list"])
    })
}

/// Runs every rule over `script`.
pub(crate) fn check(script: &Script, out: &mut Vec<Finding>) {
    let lines = &script.lines;
    let pipefail_at = if script.pipefail_shebang {
        0
    } else {
        lines
            .iter()
            .position(|l| l.text.contains("pipefail") && !l.text.contains("+o pipefail"))
            .unwrap_or(usize::MAX)
    };
    let mut dumps_to_file = None;
    let mut stopped = false;
    let mut wiped = false;
    for (i, l) in lines.iter().enumerate() {
        let t = l.text.as_str();
        let mut hit = |rule: Rule, evidence: &str| {
            out.push(Finding::at(rule, &script.file, l.number, evidence));
        };
        if let Some((di, stage, piped_with_stderr)) = dump_stage(t) {
            let to_file = dump_to_file(t);
            if to_file
                && !writes_its_own_file(stage)
                && (stderr_with_stdout(stage) || piped_with_stderr || through_a_terminal(stage))
            {
                hit(STDERR_IN_DUMP, t);
            }
            if stages(t).len() > di + 1 && i < pipefail_at {
                hit(PIPE_HIDES_FAILURE, t);
            }
            if to_file && dumps_to_file.is_none() {
                dumps_to_file = Some(i);
            }
        }
        if writes_checksum(t)
            && dumps_to_file.is_none()
            && lines[i + 1..].iter().any(|n| dump_to_file(&n.text))
        {
            hit(NO_CHECKSUM, t);
        }
        // A dump restored (not a schema file or generated statements).
        let lower_t = t.to_ascii_lowercase();
        let from_a_backup = ["gunzip", "zcat", "gzip -d", "backup", ".dump", ".sql.gz"]
            .iter()
            .any(|w| lower_t.contains(w));
        let (psql_in, pg_restore_in) = (psql_reads_dump(t), pg_restore_restores(t));
        let restores = (psql_in && from_a_backup) || pg_restore_in;
        if restores && script.timescale && !script.file_has_pre_restore {
            hit(TIMESCALEDB_NO_PRE_POST, t);
        }
        if script.timescale
            && stage_running(t, &["pg_restore"]).is_some_and(|(_, s, _)| {
                words(s).iter().any(|w| {
                    *w == "-j"
                        || w.starts_with("--jobs")
                        || (w.len() > 2
                            && w.starts_with("-j")
                            && w[2..].chars().all(|c| c.is_ascii_digit()))
                })
            })
        {
            hit(TIMESCALEDB_PARALLEL, t);
        }
        if psql_in && !stage_running(t, &["psql"]).is_some_and(|(_, s, _)| stops_on_error(s)) {
            hit(CONTINUES_PAST_ERRORS, t);
        }
        if pg_restore_in
            && !stage_running(t, &["pg_restore"]).is_some_and(|(_, s, _)| {
                has_flag(s, &["-e", "--exit-on-error", "-1", "--single-transaction"])
            })
        {
            hit(CONTINUES_PAST_ERRORS, t);
        }
        if runs(t, "pg_restore") && has_flag(t, &["--disable-triggers"]) {
            hit(FK_UNCHECKED, t);
        }
        if runs(t, "redis-check-aof")
            && has_flag(t, &["--fix"])
            && !t.split("redis-check-aof").next().is_some_and(|b| {
                b.contains("yes |") || b.contains("echo y") || b.contains("printf 'y")
            })
        {
            hit(AOF_FIX_PROMPTS, t);
        }
        // dump.rdb copied into a Redis data folder, where the file talks
        // of the AOF (with it off, the copy is the documented restore).
        if t.contains("dump.rdb")
            && (runs(t, "cp") || runs(t, "docker") && t.contains(" cp "))
            && script.mentions_aof
            && !script.mentions_appendonly_no
            && words(t).last().is_some_and(|w| {
                let w = w.trim_matches(['"', '\'']);
                w.starts_with("/data") || w.contains(":/data") || w.contains("/var/lib/redis")
            })
        {
            hit(RDB_WITH_AOF, t);
        }
        let lower = t.to_ascii_lowercase();
        if lower.contains("stop")
            && (lower.contains("postgresql") || runs(t, "pg_ctl") || runs(t, "pg_ctlcluster"))
        {
            stopped = true;
        }
        if runs(t, "rm")
            && (t.contains("/var/lib/postgresql")
                || t.contains("$PGDATA")
                || t.contains("${PGDATA}"))
        {
            wiped = true;
        }
        // From this stopped, emptied server (no other host named).
        if runs(t, "pg_basebackup") && stopped && wiped && !names_another_host(t) {
            hit(BASEBACKUP_AFTER_WIPE, t);
        }
        if script.cron {
            // The job itself: up to its first `&&`, `||` or `;`.
            let job = t.split("&&").next().unwrap_or(t);
            let job = job.split("||").next().unwrap_or(job);
            let job = job.split(';').next().unwrap_or(job);
            let w = words(job);
            let out_null = w
                .windows(2)
                .any(|p| matches!(p[0], ">" | "1>") && p[1] == "/dev/null")
                || w.iter().any(|x| matches!(*x, ">/dev/null" | "1>/dev/null"));
            let err_null = job.contains("2>&1")
                || w.windows(2).any(|p| p[0] == "2>" && p[1] == "/dev/null")
                || w.contains(&"2>/dev/null");
            let both = w.contains(&"&>/dev/null")
                || w.windows(2).any(|p| p[0] == "&>" && p[1] == "/dev/null");
            if (out_null && err_null) || both {
                hit(CRON_OUTPUT_DISCARDED, t);
            }
        }
    }
    if let Some(at) = lines.iter().chain(&script.heredocs).find(|l| {
        let t = l.text.to_ascii_lowercase();
        t.contains("session_replication_role") && t.contains("replica")
    }) {
        out.push(Finding::at(FK_UNCHECKED, &script.file, at.number, &at.text));
    }
    // Whole-job rules: only for a file that is a job, not a runbook's
    // snippet.
    if script.whole_job
        && let Some(i) = dumps_to_file
    {
        let l = &lines[i];
        let checks = lines[i..].iter().any(|n| writes_checksum(&n.text));
        if !checks
            && !out
                .iter()
                .any(|f| f.rule == NO_CHECKSUM.id && f.file == script.file)
        {
            out.push(Finding::at(NO_CHECKSUM, &script.file, l.number, &l.text));
        }
        let prunes = lines.iter().any(|n| {
            let t = n.text.as_str();
            let rm_backups = runs(t, "rm")
                && !t.contains("lock")
                && words(t)
                    .iter()
                    .skip_while(|w| !w.ends_with("rm"))
                    .skip(1)
                    .any(|w| w.contains('*') || w.contains('$'));
            rm_backups
                || (t.contains("xargs") && runs(t, "rm"))
                || (runs(t, "find")
                    && (t.contains("-delete") || t.contains("-mtime") || t.contains("-exec rm")))
                || t.contains("--cleanup")
                || t.contains("retention")
        });
        if !prunes {
            out.push(Finding::at(NO_RETENTION, &script.file, l.number, &l.text));
        }
    }
    if script.cron {
        let backup = lines.iter().find(|l| {
            let t = l.text.to_ascii_lowercase();
            t.contains("backup") || t.contains("pg_dump") || t.contains("pgbackrest")
        });
        let test = lines.iter().any(|l| {
            let t = l.text.to_ascii_lowercase();
            t.contains("restore") || t.contains("drill") || t.contains("verify")
        });
        if let (Some(b), false) = (backup, test) {
            out.push(Finding::at(
                NO_TEST_RESTORE,
                &script.file,
                b.number,
                &b.text,
            ));
        }
    }
}
