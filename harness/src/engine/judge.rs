//! Measuring each service after a recovery and judging it against the
//! baseline and the scenario's expectations: reads the servers, then hands
//! the numbers to the pure checks in [`crate::check`].

use std::collections::BTreeMap;
use std::time::Instant;

use super::services::{Baseline, Ledgers, PgRun, Running};
use crate::Result;
use crate::backend::ServiceKind;
use crate::check::{self, CheckResult};
use crate::postgres::snapshot;
use crate::redis::aof::Damage;
use crate::scenario::{KeysExpect, RowsExpect, Scenario, SchemaExpect, TablesExpect};
use crate::workload::{self, RpoMeasurement};

/// One service, judged.
pub(crate) struct Judged {
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) rpo: Option<RpoMeasurement>,
}

/// Measures `service` now and judges it.
pub(crate) async fn service(
    service: ServiceKind,
    running: &Running,
    baseline: &Baseline,
    sc: &Scenario,
    ledgers: &Ledgers,
    fault_at: Instant,
    damage: Option<&Damage>,
) -> Result<Judged> {
    let ledger = ledgers.get(&service);
    let mut j = match service {
        ServiceKind::Postgres => {
            postgres(
                running.pg.as_ref().expect("declared"),
                baseline.pg.as_ref().expect("taken"),
                sc,
                ledger.is_some(),
            )
            .await?
        }
        ServiceKind::Redis => redis(running, baseline, sc, damage).await?,
        ServiceKind::ClickHouse => {
            let c = running.ch.as_ref().expect("declared");
            let mut checks = Vec::new();
            let expect = sc.expect.clickhouse.clone().unwrap_or_default();
            if expect.tables == TablesExpect::SameAsBefore {
                let now = crate::clickhouse::snapshot(c).await?;
                checks.extend(check::clickhouse::tables(
                    baseline.ch.as_ref().expect("taken"),
                    &now,
                ));
            }
            Judged { checks, rpo: None }
        }
    };
    if let Some(l) = ledger {
        let m = match service {
            ServiceKind::Postgres => {
                let pg = running.pg.as_ref().expect("declared");
                workload::measure_rpo(pg.server.coordinates(), l, fault_at).await?
            }
            ServiceKind::Redis => {
                let r = running.redis.as_ref().expect("declared");
                if r.down().is_some() {
                    workload::rpo_from(l, &vec![false; l.acks.len()], fault_at)
                } else {
                    workload::measure_rpo_redis(r, l, fault_at).await?
                }
            }
            ServiceKind::ClickHouse => {
                let c = running.ch.as_ref().expect("declared");
                workload::measure_rpo_clickhouse(c, l, fault_at).await?
            }
        };
        if let Some(target) = sc.expect.rpo {
            j.checks.push(check::rpo(service, &m, target.0));
        }
        j.rpo = Some(m);
    }
    Ok(j)
}

async fn postgres(
    pg: &PgRun,
    baseline: &snapshot::Snapshot,
    sc: &Scenario,
    workload: bool,
) -> Result<Judged> {
    let coords = pg.server.coordinates();
    let now = snapshot::take(coords).await?;
    let mut checks = Vec::new();
    if sc.expect.rows == RowsExpect::SameAsBefore {
        let mut rows = check::rows(&baseline.rows, &now.rows);
        let mut content =
            check::content(&baseline.rows, &baseline.content, &now.rows, &now.content);
        if workload {
            // The workload adds ticks (from 2026-01-01): the fixture's must
            // all be back, exactly; the workload's are judged by the RPO.
            let fixture = snapshot::filtered_stats(
                coords,
                "public.ticks",
                &format!("time < '{}'", workload::WORKLOAD_EPOCH_SQL),
            )
            .await?;
            let (want, want_sum) = (
                baseline.rows["public.ticks"],
                baseline.content["public.ticks"].clone(),
            );
            for c in rows.iter_mut().filter(|c| c.name == "rows public.ticks") {
                c.name = "rows public.ticks (fixture rows)".into();
                c.actual = fixture
                    .as_ref()
                    .map_or("missing".into(), |(n, _)| n.to_string());
                c.ok = fixture.as_ref().is_some_and(|(n, _)| *n == want);
                c.evidence = (!c.ok).then(|| {
                    format!(
                        "{} fixture rows lost or added",
                        fixture.as_ref().map_or(want, |(n, _)| (want - n).abs())
                    )
                });
            }
            content.retain(|c| c.name != "content public.ticks");
            if let Some((n, sum)) = &fixture
                && *n == want
            {
                content.push(CheckResult {
                    name: "content public.ticks (fixture rows)".into(),
                    expected: "the checksum before the fault".into(),
                    actual: if *sum == want_sum {
                        "the same".into()
                    } else {
                        "different".into()
                    },
                    ok: *sum == want_sum,
                    evidence: (*sum != want_sum)
                        .then(|| "same number of fixture rows, different rows".into()),
                });
            }
        }
        checks.extend(rows);
        checks.extend(content);
    }
    checks.extend(check::table_rows(&sc.expect.table_rows, &now.rows));
    if let Some(max) = sc.expect.fk_orphans {
        let measured = snapshot::orphans(coords, &baseline.foreign_keys).await?;
        checks.extend(check::fk_orphans(&measured, max));
    }
    if !sc.expect.probes.is_empty() {
        let mut conn = coords.connect().await?;
        for p in &sc.expect.probes {
            let answer: std::result::Result<(bool,), _> =
                sqlx::query_as(sqlx::AssertSqlSafe(p.clone()))
                    .fetch_one(&mut conn)
                    .await;
            checks.push(check::probe(
                p,
                &answer.map(|(b,)| b).map_err(|e| e.to_string()),
            ));
        }
    }
    if sc.expect.schema == SchemaExpect::SameAsBefore {
        checks.push(check::schema(&baseline.schema, &now.schema));
    }
    Ok(Judged { checks, rpo: None })
}

async fn redis(
    running: &Running,
    baseline: &Baseline,
    sc: &Scenario,
    damage: Option<&Damage>,
) -> Result<Judged> {
    let r = running.redis.as_ref().expect("declared");
    let expect = sc.expect.redis.clone().unwrap_or_default();
    if let Some(why) = r.down() {
        return Ok(Judged {
            checks: vec![CheckResult {
                name: "redis running".into(),
                expected: "answers PING".into(),
                actual: "down".into(),
                ok: false,
                evidence: Some(why.to_string()),
            }],
            rpo: None,
        });
    }
    let mut checks = Vec::new();
    if expect.persistence {
        let info = r.info_section("persistence").await?;
        checks.extend(check::redis::persistence(&info, r.spec().appendonly));
    }
    let skip = |k: &str| {
        k == workload::REDIS_LIVE_STREAM
            || expect.ignore_keys.iter().any(|p| check::redis::glob(p, k))
    };
    if expect.keys != KeysExpect::Ignore {
        let mut con = r.connect().await?;
        let now = crate::redis::snapshot::take(&mut con).await?;
        let before = baseline.redis.as_ref().expect("taken");
        let diff = before.diff(&now, skip);
        match (expect.keys, damage) {
            (KeysExpect::LostAsPredicted, Some(d)) => {
                let predicted = d.lost_keys.iter().filter(|k| !skip(k)).cloned().collect();
                checks.push(check::redis::keys_as_predicted(&diff, &predicted));
            }
            _ => {
                let compared = before.keys.keys().filter(|k| !skip(k)).count();
                checks.push(check::redis::keys(&diff, compared));
            }
        }
    }
    for x in &expect.matches_postgres {
        let mut con = r.connect().await?;
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(&x.keys)
            .query_async(&mut con)
            .await
            .map_err(|e| crate::Error::server(format!("KEYS {}", x.keys), e))?;
        let mut in_redis = BTreeMap::new();
        for k in keys {
            let v: Option<String> = ::redis::cmd("GET")
                .arg(&k)
                .query_async(&mut con)
                .await
                .unwrap_or(None);
            in_redis.insert(k, v.unwrap_or_default());
        }
        let pg = running.pg.as_ref().expect("validated: postgres declared");
        let mut conn = pg.server.coordinates().connect().await?;
        let rows: std::result::Result<Vec<(String, String)>, _> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT k::text, v::text FROM ({}) AS q(k, v)",
                x.sql
            )))
            .fetch_all(&mut conn)
            .await;
        match rows {
            Ok(rows) => checks.push(check::redis::matches_postgres(
                &x.keys,
                &in_redis,
                &rows.into_iter().collect(),
            )),
            Err(e) => checks.push(CheckResult {
                name: format!("redis {} matches postgres", x.keys),
                expected: "keys equal to postgres".into(),
                actual: "the query failed".into(),
                ok: false,
                evidence: Some(e.to_string()),
            }),
        }
    }
    Ok(Judged { checks, rpo: None })
}
