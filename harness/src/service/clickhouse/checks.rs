//! ClickHouse's checks, per table of the baseline: it exists, its row
//! count, a checksum that read every row (a count alone can come from
//! metadata), and its columns and engine (partition and sorting keys
//! included). Pure: the engine reads the server.

use crate::check::{CheckKind, CheckResult};
use crate::service::clickhouse::Snapshot;

/// One check of each kind per baseline table; tables made later (the
/// workload's) are not compared.
pub(super) fn tables(before: &Snapshot, now: &Snapshot) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for (name, want) in &before.tables {
        let got = now.tables.get(name);
        out.push(CheckResult {
            kind: CheckKind::Rows,
            name: format!("rows {name}"),
            expected: want.rows.to_string(),
            actual: got.map_or("missing".into(), |g| g.rows.to_string()),
            ok: got.is_some_and(|g| g.rows == want.rows),
            evidence: match got {
                None => Some(format!("table {name} does not exist")),
                Some(g) if g.rows != want.rows => Some(format!(
                    "{} rows {}",
                    want.rows.abs_diff(g.rows),
                    if g.rows < want.rows { "lost" } else { "extra" }
                )),
                _ => None,
            },
        });
        let Some(got) = got else { continue };
        if got.rows == want.rows {
            let ok = got.checksum == want.checksum;
            out.push(CheckResult {
                kind: CheckKind::Content,
                name: format!("content {name}"),
                expected: format!("checksum {}", want.checksum),
                actual: format!("checksum {}", got.checksum),
                ok,
                evidence: (!ok).then(|| {
                    "same number of rows, different rows: some were lost and others added or changed".into()
                }),
            });
        }
        let same_engine = got.engine == want.engine;
        let same_columns = got.columns == want.columns;
        out.push(CheckResult {
            kind: CheckKind::Schema,
            name: format!("schema {name}"),
            expected: "columns and engine as before".into(),
            actual: match (same_columns, same_engine) {
                (true, true) => "columns and engine as before".into(),
                (false, true) => "columns differ".into(),
                (true, false) => "engine differs".into(),
                (false, false) => "columns and engine differ".into(),
            },
            ok: same_engine && same_columns,
            evidence: (!(same_engine && same_columns)).then(|| {
                format!(
                    "before: {} ({})\nnow: {} ({})",
                    want.engine,
                    want.columns.join(", "),
                    got.engine,
                    got.columns.join(", ")
                )
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::clickhouse::TableState;

    fn snap(rows: u64, sum: &str, engine: &str) -> Snapshot {
        Snapshot {
            tables: [(
                "analytics.ticks".to_string(),
                TableState {
                    engine: engine.into(),
                    columns: vec!["time DateTime".into()],
                    rows,
                    checksum: format!("{rows}:{sum}"),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn rows_content_and_schema_are_each_judged() {
        let before = snap(10, "1", "MergeTree() PARTITION BY toYYYYMMDD(time)");
        assert!(tables(&before, &before).iter().all(|c| c.ok));
        let lost = tables(
            &before,
            &snap(9, "1", "MergeTree() PARTITION BY toYYYYMMDD(time)"),
        );
        assert!(!lost[0].ok && lost[0].evidence.as_deref() == Some("1 rows lost"));
        let swapped = tables(
            &before,
            &snap(10, "2", "MergeTree() PARTITION BY toYYYYMMDD(time)"),
        );
        assert!(
            swapped
                .iter()
                .any(|c| c.name == "content analytics.ticks" && !c.ok)
        );
        let engine = tables(&before, &snap(10, "1", "Log"));
        assert!(
            engine
                .iter()
                .any(|c| c.name == "schema analytics.ticks" && !c.ok)
        );
        let gone = tables(&before, &Snapshot::default());
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].actual, "missing");
    }
}
