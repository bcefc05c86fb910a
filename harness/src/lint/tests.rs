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
            "docker run --rm -v redis_data:/data -v /backups:/backup alpine cp /backup/dump.rdb /data/dump.rdb\n",
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
