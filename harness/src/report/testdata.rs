//! A finished drill report to feed the report writers in unit tests.

use std::time::Duration;

use crate::check::CheckKind;
use crate::check::{self, CheckResult};
use crate::engine::{DrillReport, Phase, RecoveryReport, TimelineEntry, Verdict};
use crate::scenario::RecoveryExpect;

fn entry(phase: &str, step: &str, start_ms: u64, ms: u64, ok: bool) -> TimelineEntry {
    let phase = match phase {
        "setup" => Phase::Setup,
        "workload" => Phase::Workload,
        "backup" => Phase::Backup,
        "inspect" => Phase::Inspect,
        other => Phase::Recovery(
            other
                .strip_prefix("recovery ")
                .expect("a recovery phase")
                .into(),
        ),
    };
    TimelineEntry {
        phase,
        step: step.into(),
        start: Duration::from_millis(start_ms),
        duration: Duration::from_millis(ms),
        ok,
        detail: format!("{step} <detail & \"quotes\">"),
    }
}

/// The verbose-dump drill, recovered in `rto` (or not, when None).
/// The reports every writer's snapshot is taken of.
pub(crate) fn reports() -> Vec<DrillReport> {
    vec![
        report(Some(Duration::from_millis(1455))),
        report(None),
        report_multi(),
    ]
}

pub(crate) fn report(rto: Option<Duration>) -> DrillReport {
    let rows_ok = CheckResult {
        kind: CheckKind::Rows,
        name: "rows public.ticks".into(),
        expected: "20000".into(),
        actual: "20000".into(),
        ok: true,
        evidence: None,
    };
    let rows_lost = CheckResult {
        kind: CheckKind::Rows,
        name: "rows public.pairs".into(),
        expected: "34".into(),
        actual: "missing".into(),
        ok: false,
        evidence: Some("relation \"public.pairs\" does not exist".into()),
    };
    let target = Duration::from_secs(120);
    let naive = RecoveryReport {
        name: "naive".into(),
        expect: RecoveryExpect::Fails,
        recovered: false,
        rto: None,
        rpo: None,
        rto_per_service: Vec::new(),
        rpo_per_service: Vec::new(),
        checks: vec![rows_lost.clone(), check::rto(None, target)],
        errors: vec!["ERROR:  syntax error at or near \"pg_dump\"".into()],
        met_expectation: true,
        summary: "incident reproduced: 1 tables missing".into(),
        wal_replayed_bytes: None,
    };
    let fixed = RecoveryReport {
        name: "sanitized".into(),
        expect: RecoveryExpect::Recovers,
        recovered: rto.is_some(),
        rto,
        rpo: None,
        rto_per_service: Vec::new(),
        rpo_per_service: Vec::new(),
        checks: vec![
            if rto.is_some() { rows_ok } else { rows_lost },
            check::rto(rto, target),
        ],
        errors: vec![],
        met_expectation: rto.is_some_and(|r| r <= target),
        summary: match rto {
            Some(r) => format!("recovered in {}", crate::vocab::fmt_duration(r)),
            None => "NOT recovered: 1 tables missing".into(),
        },
        wal_replayed_bytes: None,
    };
    let verdict = if naive.met_expectation && fixed.met_expectation {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let rto_ms = rto.map_or(900, |r| r.as_millis() as u64);
    DrillReport {
        name: "verbose-dump".into(),
        description: "pg_dump --verbose <merged> & restored".into(),
        file: "scenarios/verbose-dump.toml".into(),
        run_id: "0badc0de".into(),
        seed: 20251114,
        backend: "native".into(),
        servers: Vec::new(),
        backups: Vec::new(),
        flavour: "postgres".into(),
        rto_target: target,
        rpo_target: None,
        baseline_rows: [("public.ticks".to_string(), 20000)].into(),
        backup: None,
        recoveries: vec![naive, fixed],
        verdict,
        timeline: vec![
            entry("setup", "start postgres", 0, 700, true),
            entry("setup", "load fixture", 700, 500, true),
            entry("backup", "pg_dump", 1200, 150, true),
            entry("recovery naive", "fault: wipe", 1350, 800, true),
            entry("recovery naive", "psql-restore", 2150, 70, true),
            entry("recovery naive", "checks", 2220, 20, false),
            entry("recovery sanitized", "fault: wipe", 2240, 800, true),
            entry(
                "recovery sanitized",
                "psql-restore (sanitized)",
                3040,
                rto_ms.saturating_sub(830),
                rto.is_some(),
            ),
            entry(
                "recovery sanitized",
                "checks",
                3040 + rto_ms.saturating_sub(830),
                30,
                rto.is_some(),
            ),
        ],
        warnings: vec![],
        kept: vec![],
        compose: None,
    }
}

/// A full-system drill (PostgreSQL, Redis and ClickHouse) with a workload:
/// servers, backups of every service, RTO and RPO per service, a warning and
/// an RPO miss, so every field the writers read is filled.
pub(crate) fn report_multi() -> DrillReport {
    use crate::engine::{BackupRecord, ServiceRpo, ServiceRto};
    use crate::vocab::{BackendKind, ServerInfo, ServiceKind};
    use crate::workload::RpoMeasurement;
    let server = |service, version: &str, source: &str, ts: Option<&str>| ServerInfo {
        service,
        backend: BackendKind::Docker,
        source: source.into(),
        version: version.into(),
        timescaledb: ts.map(str::to_string),
        flavour: match (service, ts) {
            (ServiceKind::Postgres, Some(t)) => format!("timescaledb {t} on pg {version}"),
            _ => format!("{service} {version}"),
        },
    };
    let rpo = |lost: usize, ms: u64| RpoMeasurement {
        acknowledged: 600,
        lost,
        window: Duration::from_millis(ms),
        lost_sample: (0..lost.min(2))
            .map(|i| format!("2026-01-01 00:00:00.{i:03}+00 BTC"))
            .collect(),
        pitr: None,
        replication: None,
    };
    let target = Duration::from_secs(60);
    let rpo_target = Duration::from_secs(5);
    let check = |name: &str, ok: bool| CheckResult {
        kind: match name.split(' ').next() {
            Some("rows") => CheckKind::Rows,
            Some("content") => CheckKind::Content,
            Some("schema") => CheckKind::Schema,
            _ => CheckKind::Keys,
        },
        name: name.into(),
        expected: "the same".into(),
        actual: if ok {
            "the same".into()
        } else {
            "different".into()
        },
        ok,
        evidence: (!ok).then(|| "3 keys differ:\n  price:BTC".into()),
    };
    let runbook = RecoveryReport {
        name: "runbook-as-written".into(),
        expect: RecoveryExpect::Fails,
        recovered: false,
        rto: None,
        rpo: Some(rpo(600, 9000)),
        rto_per_service: vec![
            ServiceRto {
                service: ServiceKind::Postgres,
                rto: Some(Duration::from_millis(2500)),
            },
            ServiceRto {
                service: ServiceKind::Redis,
                rto: None,
            },
        ],
        rpo_per_service: vec![ServiceRpo {
            service: ServiceKind::Redis,
            measurement: rpo(600, 9000),
        }],
        checks: vec![
            check("rows public.ticks", true),
            check("redis keys", false),
            check("schema", true),
            check::rto(None, target),
        ],
        errors: vec!["redis-cli: NOAUTH".into()],
        met_expectation: true,
        summary: "incident reproduced: redis keys".into(),
        wal_replayed_bytes: None,
    };
    let ordered = RecoveryReport {
        name: "in-order".into(),
        expect: RecoveryExpect::Recovers,
        recovered: true,
        rto: Some(Duration::from_millis(7012)),
        rpo: Some(rpo(91, 1800)),
        rto_per_service: vec![
            ServiceRto {
                service: ServiceKind::Postgres,
                rto: Some(Duration::from_millis(2500)),
            },
            ServiceRto {
                service: ServiceKind::Redis,
                rto: Some(Duration::from_millis(4100)),
            },
            ServiceRto {
                service: ServiceKind::ClickHouse,
                rto: Some(Duration::from_millis(7012)),
            },
        ],
        rpo_per_service: vec![
            ServiceRpo {
                service: ServiceKind::Postgres,
                measurement: rpo(91, 1800),
            },
            ServiceRpo {
                service: ServiceKind::Redis,
                measurement: rpo(0, 0),
            },
        ],
        checks: vec![
            check("rows public.ticks (fixture rows)", true),
            check("content public.pairs", true),
            check("redis keys", true),
            check("content analytics.ticks", true),
            check::rpo(ServiceKind::Postgres, &rpo(91, 1800), rpo_target),
            check::rto(Some(Duration::from_millis(7012)), target),
        ],
        errors: vec![],
        met_expectation: true,
        summary: "recovered in 7.012s".into(),
        wal_replayed_bytes: None,
    };
    DrillReport {
        name: "full-system".into(),
        description: "every service lost at once | restored in the runbook's order".into(),
        file: "scenarios/full-system.toml".into(),
        run_id: "c0ffee00".into(),
        seed: 7,
        backend: "docker".into(),
        servers: vec![
            server(
                ServiceKind::Postgres,
                "15.18 (Debian 15.18-0+deb12u1)",
                "drill-local/postgres:15",
                Some("2.28.3"),
            ),
            server(ServiceKind::Redis, "7.0.15", "drill-local/redis:7.0", None),
            server(
                ServiceKind::ClickHouse,
                "18.16.1",
                "drill-local/clickhouse:18.16",
                None,
            ),
        ],
        backups: vec![
            BackupRecord {
                service: ServiceKind::Redis,
                path: "/tmp/drill-run-c0ffee00/redis_dump_1.rdb".into(),
                bytes: 48213,
                method: "SAVE + dump.rdb copied out".into(),
                took: Duration::from_millis(35),
            },
            BackupRecord {
                service: ServiceKind::ClickHouse,
                path: "/tmp/drill-run-c0ffee00/clickhouse-backup-1".into(),
                bytes: 1_204_000,
                method: "freeze (18.16 has no BACKUP)".into(),
                took: Duration::from_millis(410),
            },
        ],
        flavour: "timescaledb".into(),
        rto_target: target,
        rpo_target: Some(rpo_target),
        baseline_rows: [
            ("public.ticks".to_string(), 20000),
            ("analytics.ticks".to_string(), 20000),
        ]
        .into(),
        backup: Some(crate::service::postgres::backup::Artifact {
            path: "/tmp/drill-run-c0ffee00/backups/nexwave_backup_1.sql.gz".into(),
            bytes: 912_345,
            format: crate::scenario::DumpFormat::Plain,
            compressed: true,
            command: "pg_dump --format=plain --no-owner --no-acl | gzip > x".into(),
            stderr_tail: String::new(),
            took: Duration::from_millis(640),
        }),
        recoveries: vec![runbook, ordered],
        verdict: Verdict::Pass,
        timeline: vec![
            entry("setup", "start postgres", 0, 3200, true),
            entry("setup", "start redis", 3200, 900, true),
            entry("setup", "start clickhouse", 4100, 2100, true),
            entry("setup", "baseline", 6200, 400, true),
            entry("workload", "start writers", 6600, 5, true),
            entry("backup", "pg_dump", 6605, 640, true),
            entry("backup", "redis rdb copy", 7245, 35, true),
            entry("backup", "clickhouse backup", 7280, 410, true),
            entry(
                "recovery runbook-as-written",
                "fault: wipe",
                12000,
                1500,
                true,
            ),
            entry("workload", "stop writers", 13500, 3, true),
            entry(
                "recovery runbook-as-written",
                "shell: ./restore.sh",
                13503,
                2000,
                true,
            ),
            entry(
                "recovery runbook-as-written",
                "checks postgres",
                15503,
                300,
                true,
            ),
            entry(
                "recovery runbook-as-written",
                "checks redis",
                15803,
                100,
                false,
            ),
            entry("recovery in-order", "fault: wipe", 16000, 1500, true),
            entry(
                "recovery in-order",
                "psql-restore (sanitized)",
                17500,
                1000,
                true,
            ),
            entry("recovery in-order", "checks postgres", 18500, 300, true),
            entry(
                "recovery in-order",
                "redis-restore-rdb (AOF off while loading)",
                18800,
                1200,
                true,
            ),
            entry("recovery in-order", "checks redis", 20000, 100, true),
            entry("recovery in-order", "clickhouse-restore", 20100, 2800, true),
            entry("recovery in-order", "checks clickhouse", 22900, 112, true),
        ],
        warnings: vec![crate::engine::Warning {
            code: crate::engine::WarningCode::StderrInBackup,
            message: "the backup job writes pg_dump's stderr into the file: 1204 lines".into(),
            evidence: "1204 stderr lines".into(),
        }],
        kept: vec![],
        compose: None,
    }
}
