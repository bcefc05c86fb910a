//! Every rule trips on a script that has its hazard and stays quiet on the
//! corrected one.

use super::rules::{self, Rule};
use super::*;

fn ids(name: &str, text: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for s in scripts_in(name, text) {
        rules::check(&s, &mut out);
    }
    let mut ids: Vec<&str> = out.iter().map(|f| f.rule).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// (rule, a script that has the hazard, the corrected script).
fn cases() -> Vec<(Rule, &'static str, &'static str)> {
    vec![
        (
            rules::STDERR_IN_DUMP,
            "set -o pipefail\npg_dump --verbose mydb 2>&1 | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nfind . -mtime +7 -delete\n",
            "set -o pipefail\npg_dump --verbose mydb 2>b.log | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nfind . -mtime +7 -delete\n",
        ),
        (
            rules::STDERR_IN_DUMP,
            "set -o pipefail\ndocker exec -t db pg_dump -U u mydb | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nfind . -mtime +7 -delete\n",
            "set -o pipefail\ndocker exec db pg_dump -U u mydb | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nfind . -mtime +7 -delete\n",
        ),
        (
            rules::PIPE_HIDES_FAILURE,
            "pg_dump mydb | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nfind . -mtime +7 -delete\n",
            "set -euo pipefail\npg_dump mydb | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nfind . -mtime +7 -delete\n",
        ),
        (
            rules::NO_CHECKSUM,
            "pg_dump -Fc -f b.dump mydb\nfind . -mtime +7 -delete\n",
            "pg_dump -Fc -f b.dump mydb\nsha256sum b.dump > b.dump.sha256\nfind . -mtime +7 -delete\n",
        ),
        (
            rules::NO_CHECKSUM,
            "sha256sum b.dump > b.dump.sha256\npg_dump -Fc -f b.dump mydb\nfind . -mtime +7 -delete\n",
            "pg_dump -Fc -f b.dump mydb\nsha256sum b.dump > b.dump.sha256\nfind . -mtime +7 -delete\n",
        ),
        (
            rules::TIMESCALEDB_NO_PRE_POST,
            "psql -c 'CREATE EXTENSION timescaledb'\npg_restore --exit-on-error -d db b.dump\n",
            "psql -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION timescaledb; SELECT timescaledb_pre_restore()'\npg_restore --exit-on-error -d db b.dump\npsql -v ON_ERROR_STOP=1 -c 'SELECT timescaledb_post_restore()'\n",
        ),
        (
            rules::TIMESCALEDB_PARALLEL,
            "# timescaledb\npsql -c 'SELECT timescaledb_pre_restore()'\npg_restore -j 4 --exit-on-error -d db b.dump\n",
            "# timescaledb\npsql -c 'SELECT timescaledb_pre_restore()'\npg_restore --exit-on-error -d db b.dump\n",
        ),
        (
            rules::CONTINUES_PAST_ERRORS,
            "gunzip -c b.sql.gz | psql -d db\n",
            "gunzip -c b.sql.gz | psql -v ON_ERROR_STOP=1 -d db\n",
        ),
        (
            rules::CONTINUES_PAST_ERRORS,
            "pg_restore -d db b.dump\n",
            "pg_restore --exit-on-error -d db b.dump\n",
        ),
        (
            rules::CONTINUES_PAST_ERRORS,
            "docker exec -i pg psql -U u -d db < /tmp/init_database.sql\n",
            "docker exec -i pg psql -v ON_ERROR_STOP=1 -U u -d db < /tmp/init_database.sql\n",
        ),
        (
            rules::FK_UNCHECKED,
            "pg_restore --data-only --disable-triggers --exit-on-error -t ticks -d db b.dump\n",
            "pg_restore --data-only --exit-on-error -t pairs -t ticks -d db b.dump\n",
        ),
        (
            rules::AOF_FIX_PROMPTS,
            "redis-check-aof --fix /data/appendonly.aof\n",
            "yes | redis-check-aof --fix /data/appendonly.aof\n",
        ),
        (
            rules::RDB_WITH_AOF,
            "# redis runs with appendonly yes\ndocker run --rm -v redis_data:/data -v /backups:/backup alpine cp /backup/dump.rdb /data/dump.rdb\n",
            "docker run --rm -v redis_data:/data -v /backups:/backup alpine cp /backup/dump.rdb /data/dump.rdb\nredis-server --appendonly no\n",
        ),
        (
            rules::BASEBACKUP_AFTER_WIPE,
            "sudo systemctl stop postgresql\nrm -rf /var/lib/postgresql/14/main/*\npg_basebackup -D /var/lib/postgresql/14/main -F tar -z -P\n",
            "sudo systemctl stop postgresql\nrm -rf /var/lib/postgresql/14/main/*\ntar xzf /backups/base.tar.gz -C /var/lib/postgresql/14/main\n",
        ),
        (
            rules::NO_RETENTION,
            "set -o pipefail\npg_dump mydb | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\n",
            "set -o pipefail\npg_dump mydb | gzip > b.sql.gz\nsha256sum b.sql.gz > b.sha256\nls -1t *.sql.gz | tail -n +8 | xargs rm -f\n",
        ),
    ]
}

#[test]
fn every_rule_trips_on_its_hazard_and_not_on_the_fix() {
    let mut covered: Vec<&str> = Vec::new();
    for (rule, bad, good) in cases() {
        let found = ids("job.sh", bad);
        assert!(
            found.contains(&rule.id),
            "{}: not found in\n{bad}\n(found {found:?})",
            rule.id
        );
        let fixed = ids("job.sh", good);
        assert!(
            !fixed.contains(&rule.id),
            "{}: still found in the fix\n{good}",
            rule.id
        );
        covered.push(rule.id);
    }
    // Crontabs.
    let cron = "0 2 * * * /opt/backup.sh > /dev/null 2>&1\n";
    assert_eq!(ids("crontab", cron), ["DRL012", "DRL013"]);
    let fixed = "0 2 * * * /opt/backup.sh >> /var/log/backup.log 2>&1\n0 4 * * 0 cargo xtask drill restore-artifact --backup /backups\n";
    assert!(
        ids("crontab", fixed).is_empty(),
        "{:?}",
        ids("crontab", fixed)
    );
    covered.extend(["DRL012", "DRL013"]);
    covered.sort();
    covered.dedup();
    let all: Vec<&str> = rules::ALL.iter().map(|r| r.id).collect();
    assert_eq!(covered, all, "every rule has a case");
}

#[test]
fn runbooks_are_read_by_their_code_blocks_with_their_line_numbers() {
    let doc = "# Restore\n\nSome prose with pg_dump | gzip in it.\n\n```bash\n# restore\ngunzip -c \"$F\" | \\\n  psql -d db\n```\n";
    let mut out = Vec::new();
    for s in scripts_in("runbook.md", doc) {
        rules::check(&s, &mut out);
    }
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].rule, out[0].line), ("DRL006", 7));
    assert_eq!(out[0].evidence, "gunzip -c \"$F\" | psql -d db");
}

#[test]
fn heredoc_bodies_and_comments_are_not_commands() {
    let script = "set -euo pipefail\n# pg_dump db | gzip > x  (a comment)\npsql -v ON_ERROR_STOP=1 <<'SQL'\nSELECT 'pg_restore -d db x.dump';\nSQL\n";
    assert!(
        ids("job.sh", script).is_empty(),
        "{:?}",
        ids("job.sh", script)
    );
}

/// What a review found the first reading missed or wrongly flagged.
#[test]
fn the_ways_scripts_really_say_it() {
    let trips = |rule: &str, script: &str| {
        let found = ids("job.sh", script);
        assert!(
            found.contains(&rule),
            "{rule} not in {found:?} for\n{script}"
        );
    };
    let quiet = |rule: &str, script: &str| {
        let found = ids("job.sh", script);
        assert!(
            !found.contains(&rule),
            "{rule} wrongly in {found:?} for\n{script}"
        );
    };
    let ok = "sha256sum b > b.sha256\nfind . -mtime +7 -delete\n";
    // stderr merged: |&, &>, >&; a terminal from compose or kubectl.
    for s in [
        "set -o pipefail\npg_dump -v db |& gzip > b.gz\n",
        "pg_dump -v db &> b.sql\n",
        "pg_dump -v db >& b.sql\n",
        "pg_dumpall > all.sql 2>&1\n",
        "pg_dump -Fc db >/backups/db.dump 2>&1\n",
        "set -o pipefail\ndocker compose exec db pg_dump -U u | gzip > b.gz\n",
        "set -o pipefail\nkubectl exec -it pg-0 -- pg_dump db | gzip > b.gz\n",
    ] {
        trips("DRL001", &format!("{s}{ok}"));
    }
    for s in [
        "set -o pipefail\ndocker compose exec -T db pg_dump -U u | gzip > b.gz\n",
        "docker exec -t pg pg_dump -Fc -f /backups/b.dump db\n",
        "pg_dump -Fc db >/backups/db.dump 2>/backups/db.log\n",
    ] {
        quiet("DRL001", &format!("{s}{ok}"));
    }
    // `||` is no pipe; pipefail from the shebang counts, `+o` does not.
    quiet(
        "DRL002",
        &format!("pg_dump -Fc -f b.dump db || exit 1\n{ok}"),
    );
    quiet(
        "DRL002",
        &format!("#!/usr/bin/env -S bash -euo pipefail\npg_dump db | gzip > b.gz\n{ok}"),
    );
    trips(
        "DRL002",
        &format!("set +o pipefail\npg_dump db | gzip > b.gz\n{ok}"),
    );
    // Restores that go on past errors, however psql is fed.
    for s in [
        "gzip -cd x.gz | psql -d db\n",
        "curl -s https://b/x.gz | gunzip | psql -d db\n",
        "psql -d db <dump.sql\n",
        "psql -d db -fdump.sql\n",
        "psql -v ON_ERROR_STOP=0 -d db -f dump.sql\n",
    ] {
        trips("DRL006", s);
    }
    for s in [
        "pg_restore --single-transaction -d db x.dump\n",
        "pg_restore -e -d db x.dump\n",
        "pg_restore x.dump > x.sql\n",
        "pg_restore x.dump | psql --set ON_ERROR_STOP=on -d db\n",
        "psql -d db -c 'SELECT 1'\n",
    ] {
        quiet("DRL006", s);
    }
    // A copy between servers is no backup file.
    let copy = ids(
        "job.sh",
        "set -o pipefail\npg_dump -h old db | psql -v ON_ERROR_STOP=1 -h new db\n",
    );
    assert!(
        !copy.contains(&"DRL003") && !copy.contains(&"DRL011"),
        "{copy:?}"
    );
    // A lock file removed is no retention.
    trips(
        "DRL011",
        "set -o pipefail\npg_dump db | gzip > b.gz\nsha256sum b.gz > b.sha256\nrm -f /tmp/backup.lock\n",
    );
    // Heredocs: their SQL counts, a shift is none.
    trips(
        "DRL007",
        "psql -v ON_ERROR_STOP=1 <<'SQL'\nSET session_replication_role = replica;\nSQL\n",
    );
    quiet(
        "DRL004",
        "# timescaledb\npsql -v ON_ERROR_STOP=1 <<'SQL'\nSELECT timescaledb_pre_restore();\nSQL\npg_restore -e -d db x.dump\n",
    );
    trips("DRL006", "MAX=$((1<<20))\ngunzip -c b.gz | psql -d db\n");
    // An RDB copied out is a backup, not a restore; with no AOF in sight,
    // copying it in is the documented restore.
    quiet(
        "DRL009",
        "# appendonly yes\ncp /var/lib/redis/dump.rdb \"$BACKUP_DIR/dump.rdb\"\n",
    );
    trips(
        "DRL009",
        "# appendonly yes\ncp /backups/dump.rdb /var/lib/redis/\n",
    );
    quiet("DRL009", "cp /backups/dump.rdb /var/lib/redis/\n");
    // Re-seeding a replica from its primary after emptying it is right.
    quiet(
        "DRL010",
        "systemctl stop postgresql\nrm -rf /var/lib/postgresql/16/main/*\npg_basebackup -h primary.internal -D /var/lib/postgresql/16/main -R\n",
    );
    // Crontabs by name, with day names; output to a log then a ping is fine.
    assert_eq!(
        ids(
            "crontab.txt",
            "0 3 * * sun /opt/backup.sh > /dev/null 2>&1\n"
        ),
        ["DRL012", "DRL013"]
    );
    assert_eq!(
        ids(
            "backup.cron",
            "0 3 * * * /opt/backup.sh >/dev/null 2>/dev/null\n"
        ),
        ["DRL012", "DRL013"]
    );
    assert!(!ids(
        "backup.cron",
        "0 3 * * * /opt/backup.sh >> /var/log/b.log 2>&1 && curl -s https://hc/ping > /dev/null\n0 4 * * 0 /opt/restore-test.sh\n"
    )
    .contains(&"DRL013"));
    // Runbooks: ~~~ fences, info strings, an unclosed last block; a script
    // that prints ``` stays a script.
    assert_eq!(
        ids("r.md", "~~~bash\ngunzip -c b.gz | psql -d db\n~~~\n"),
        ["DRL006"]
    );
    assert_eq!(
        ids(
            "r.md",
            "```bash title=\"restore\"\ngunzip -c b.gz | psql -d db\n```\n"
        ),
        ["DRL006"]
    );
    assert_eq!(
        ids("r.md", "```sh\ngunzip -c b.gz | psql -d db\n"),
        ["DRL006"]
    );
    assert_eq!(
        ids(
            "job.sh",
            "#!/bin/sh\ncat <<EOF\n```\nEOF\ngunzip -c b.gz | psql -d db\n"
        ),
        ["DRL006"]
    );
}

#[test]
fn sarif_locations_are_uris_relative_to_the_root_or_absolute() {
    let here = std::env::current_dir().unwrap();
    let rel = artifact_location("scripts/a b#1%.sh");
    assert_eq!(rel["uri"], "scripts/a%20b%231%25.sh");
    assert_eq!(rel["uriBaseId"], "SRCROOT");
    let abs = artifact_location("/elsewhere/x.sh");
    assert_eq!(abs["uri"], "file:///elsewhere/x.sh");
    let up = artifact_location(&format!("{}/../y.sh", here.display()));
    assert!(up["uri"].as_str().unwrap().starts_with("file:///"), "{up}");
}

#[test]
fn a_directory_dump_is_one_backup_not_a_folder_to_walk() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("nexwave.dir");
    std::fs::create_dir(&dump).unwrap();
    std::fs::write(dump.join("toc.dat"), b"PGDMP\x01\x0e\x00").unwrap();
    std::fs::write(dump.join("3.dat.gz"), b"").unwrap();
    let report = lint_paths(std::slice::from_ref(&dump)).unwrap();
    assert_eq!(report.files.len(), 1, "{:?}", report.files);
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, ["DRL003"], "{:?}", report.findings);
}
