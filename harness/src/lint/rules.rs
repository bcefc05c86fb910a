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

/// The part of a pipeline line that runs `program` (between `|`s).
fn stage_of<'a>(line: &'a str, program: &str) -> Option<&'a str> {
    line.split('|').find(|s| runs(s, program))
}

/// pg_dump writes into a file or a pipe here.
fn dump_goes_to_file(line: &str) -> bool {
    let Some(stage) = stage_of(line, "pg_dump") else {
        return false;
    };
    line.contains('|')
        || stage.contains("> ")
        || stage.contains(">\"")
        || stage.contains(">$")
        || has_flag(stage, &["-f", "--file"])
}

/// psql here reads a dump: from a pipe, `< file`, or `-f file`.
fn psql_reads_dump(line: &str) -> bool {
    let Some(stage) = stage_of(line, "psql") else {
        return false;
    };
    if has_flag(stage, &["-c", "--command", "-l", "--list"]) || stage.contains("<<") {
        return false;
    }
    let piped_in = line.find('|').is_some_and(|p| {
        line[p..].contains("psql") && {
            let before = &line[..p];
            [
                "gunzip",
                "zcat",
                "cat ",
                "gzip -dc",
                "pg_restore",
                "aws s3 cp",
                "xzcat",
                "bzcat",
            ]
            .iter()
            .any(|w| before.contains(w))
        }
    });
    piped_in || stage.contains(" < ") || has_flag(stage, &["-f", "--file"])
}

/// pg_restore restores here (not `--list`, not into a file).
fn pg_restore_restores(line: &str) -> bool {
    stage_of(line, "pg_restore")
        .is_some_and(|s| !has_flag(s, &["-l", "--list", "-f", "--file"]) && !s.contains("| psql"))
}

/// Runs every rule over `script`.
pub(crate) fn check(script: &Script, out: &mut Vec<Finding>) {
    let lines = &script.lines;
    let text_has = |needle: &str| lines.iter().any(|l| l.text.contains(needle));
    let lower_has = |needle: &str| {
        lines
            .iter()
            .any(|l| l.text.to_ascii_lowercase().contains(needle))
    };
    let pipefail_at = lines
        .iter()
        .position(|l| l.text.contains("pipefail"))
        .unwrap_or(usize::MAX);
    let timescale = script.timescale;
    let mut dumps_to_file = None;
    let mut stopped = false;
    let mut wiped = false;
    for (i, l) in lines.iter().enumerate() {
        let t = l.text.as_str();
        let mut hit = |rule: Rule, evidence: &str| {
            out.push(Finding::at(rule, &script.file, l.number, evidence));
        };
        let dumps = runs(t, "pg_dump") || runs(t, "pg_dumpall");
        if dumps {
            let stage = stage_of(t, "pg_dump")
                .or_else(|| stage_of(t, "pg_dumpall"))
                .unwrap_or(t);
            let tty = runs(t, "docker")
                && words(t)
                    .iter()
                    .any(|w| matches!(*w, "-t" | "-it" | "-ti" | "--tty") && t.contains("exec"));
            if (stage.contains("2>&1") && dump_goes_to_file(t)) || (tty && dump_goes_to_file(t)) {
                hit(STDERR_IN_DUMP, t);
            }
            if t.contains('|') && i < pipefail_at {
                hit(PIPE_HIDES_FAILURE, t);
            }
            if dump_goes_to_file(t) && dumps_to_file.is_none() {
                dumps_to_file = Some(i);
            }
        }
        if (runs(t, "sha256sum") || runs(t, "sha512sum") || runs(t, "shasum"))
            && !has_flag(t, &["-c", "--check"])
            && dumps_to_file.is_none()
            && lines[i + 1..]
                .iter()
                .any(|n| runs(&n.text, "pg_dump") && dump_goes_to_file(&n.text))
        {
            hit(NO_CHECKSUM, t);
        }
        let restores = psql_reads_dump(t) || pg_restore_restores(t);
        if restores && timescale && !text_has("timescaledb_pre_restore") {
            hit(TIMESCALEDB_NO_PRE_POST, t);
        }
        if timescale
            && stage_of(t, "pg_restore").is_some_and(|s| {
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
        if psql_reads_dump(t) && !t.contains("ON_ERROR_STOP") {
            hit(CONTINUES_PAST_ERRORS, t);
        }
        if pg_restore_restores(t)
            && !stage_of(t, "pg_restore").is_some_and(|s| has_flag(s, &["-e", "--exit-on-error"]))
        {
            hit(CONTINUES_PAST_ERRORS, t);
        }
        if (runs(t, "pg_restore") && has_flag(t, &["--disable-triggers"]))
            || t.to_ascii_lowercase().contains("session_replication_role")
                && t.to_ascii_lowercase().contains("replica")
        {
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
        if t.contains("dump.rdb")
            && (runs(t, "cp") || (runs(t, "docker") && t.contains(" cp ")))
            && !lower_has("appendonly no")
        {
            let into_data = words(t).last().is_some_and(|w| {
                w.contains("dump.rdb") || w.ends_with("/data") || w.contains(":/data")
            });
            if into_data {
                hit(RDB_WITH_AOF, t);
            }
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
        if runs(t, "pg_basebackup") && stopped && wiped {
            hit(BASEBACKUP_AFTER_WIPE, t);
        }
        if script.cron
            && (t.contains(">/dev/null") || t.contains("> /dev/null") || t.contains("&>/dev/null"))
            && (t.contains("2>&1") || t.contains("&>"))
        {
            hit(CRON_OUTPUT_DISCARDED, t);
        }
    }
    // Whole-job rules: only for a file that is a job, not a runbook's
    // snippet.
    if script.whole_job
        && let Some(i) = dumps_to_file
    {
        let l = &lines[i];
        let after = &lines[i..];
        let checks = after.iter().any(|n| {
            (runs(&n.text, "sha256sum") || runs(&n.text, "sha512sum") || runs(&n.text, "shasum"))
                && !has_flag(&n.text, &["-c", "--check"])
        });
        if !checks
            && !out
                .iter()
                .any(|f| f.rule == NO_CHECKSUM.id && f.file == script.file)
        {
            out.push(Finding::at(NO_CHECKSUM, &script.file, l.number, &l.text));
        }
        let prunes = lines.iter().any(|n| {
            let t = n.text.as_str();
            (runs(t, "rm") && !t.contains(".tmp"))
                || (runs(t, "find")
                    && (t.contains("-delete") || t.contains("-mtime") || t.contains("-exec rm")))
                || t.contains("--cleanup")
                || t.to_ascii_lowercase().contains("retention")
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
