//! The measured RPO is the truth: for random workload rates, backup times
//! and fault times, the writes the harness reports lost are exactly the
//! acknowledged writes missing from the backup that was restored (read
//! straight out of the dump file), and the window reaches back to the
//! oldest of them.

use std::collections::HashSet;
use std::io::BufRead;
use std::time::{Duration, Instant};

use drill::scenario::{Backup, BackupMethod, Compress, DumpFormat, StderrMode};
use drill::service::Lifecycle;
use drill::service::postgres::backup;
use drill::service::postgres::restore::{PsqlRestoreOptions, psql_restore};
use drill::service::postgres::workload::{measure_rpo, writer};
use proptest::prelude::*;

/// "2026-01-01 00:00:00.05+00" → milliseconds, for comparing the dump's
/// text with the ledger's.
fn ms(ts: &str) -> i64 {
    let (date, rest) = ts.split_once(' ').unwrap();
    let time = rest.trim_end_matches("+00");
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().unwrap());
    let (h, m, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let frac_ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    let day: i64 = date.split('-').nth(2).unwrap().parse().unwrap();
    ((day * 24 + h) * 60 + m) * 60_000 + s * 1000 + frac_ms
}

/// Every (time, symbol) of every COPY into ticks in a plain gzipped dump.
fn ticks_in_dump(path: &std::path::Path) -> HashSet<(i64, String)> {
    let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ));
    let mut out = HashSet::new();
    let mut in_ticks = false;
    for line in reader.lines() {
        let line = line.unwrap();
        if line.starts_with("COPY public.ticks ") {
            in_ticks = true;
        } else if line == "\\." {
            in_ticks = false;
        } else if in_ticks {
            let mut f = line.split('\t');
            let (t, s) = (f.next().unwrap(), f.next().unwrap());
            out.insert((ms(t), s.to_string()));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn measured_rpo_equals_the_writes_missing_from_the_restored_backup(
        rate in 40u32..160,
        backup_after_ms in 0u64..800,
        fault_after_ms in 300u64..1500,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let mut pg = super::start("rpo-property");
            let coords = pg.coordinates().clone();
            let data = drill_fixtures::Dataset { ticks: 340, ..Default::default() };
            drill::service::postgres::fixture::load_nexwave(&coords, drill_fixtures::Flavour::Postgres, &data).await.unwrap();
            let writer = writer(&coords, rate, 7).await.unwrap();
            tokio::time::sleep(Duration::from_millis(backup_after_ms)).await;
            let dir = tempfile::tempdir().unwrap();
            let cfg = Backup { method: Some(BackupMethod::PgDump), format: DumpFormat::Plain, verbose: false, stderr: StderrMode::Separate, compress: Compress::Gzip, ..Backup::default() };
            let artifact = tokio::task::block_in_place(|| backup::pg_dump(&pg, &cfg, dir.path())).unwrap();
            tokio::time::sleep(Duration::from_millis(fault_after_ms)).await;
            let ledger = writer.stop().await.unwrap();
            let fault_at = Instant::now();
            tokio::task::block_in_place(|| pg.wipe()).unwrap();
            let out = tokio::task::block_in_place(|| psql_restore(&pg, &artifact, PsqlRestoreOptions { on_error_stop: true, ..Default::default() })).unwrap();
            assert_eq!(out.exit_code, Some(0), "{:?}", out.first_errors);

            // A wipe brings the server back on another port: ask again.
            let measured = measure_rpo(pg.coordinates(), &ledger, fault_at, None).await.unwrap();
            let in_backup = ticks_in_dump(&artifact.path);
            let truly_lost: Vec<_> = ledger.acks.iter().filter(|a| !in_backup.contains(&(ms(&a.time), a.symbol.to_string()))).collect();
            assert!(!ledger.acks.is_empty());
            assert_eq!(measured.acknowledged, ledger.acks.len());
            assert_eq!(measured.lost, truly_lost.len(), "lost count: measured vs read from the dump");
            let want_window = truly_lost.first().map_or(Duration::ZERO, |a| fault_at - a.acked_at);
            assert_eq!(measured.window, want_window);
            // Loss is a suffix: everything before the backup's snapshot is back.
            let first_lost = ledger.acks.len() - truly_lost.len();
            assert!(ledger.acks[first_lost..].iter().zip(&truly_lost).all(|(a, b)| a == *b), "lost writes are the newest ones");
        });
    }
}
