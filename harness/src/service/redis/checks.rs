//! Redis's checks: every key back as it was (or exactly the keys a damaged
//! AOF predicts lost), the runbook's INFO fields, and keys rebuilt from
//! PostgreSQL equal to it. Pure: the engine reads the server.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{CheckKind, CheckResult};
use crate::service::redis::snapshot::KeyDiff;

/// Up to `n` items, then how many more.
fn sample(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        s.push_str(&format!(" ... and {} more", items.len() - n));
    }
    s
}

/// Every compared key of the baseline, with its value, type and expiry.
pub(super) fn keys(diff: &KeyDiff, compared: usize) -> CheckResult {
    let ok = diff.missing.is_empty() && diff.changed.is_empty();
    let mut evidence = Vec::new();
    if !diff.missing.is_empty() {
        evidence.push(format!("missing: {}", sample(&diff.missing, 20)));
    }
    if !diff.changed.is_empty() {
        evidence.push(format!("changed: {}", sample(&diff.changed, 20)));
    }
    CheckResult {
        kind: CheckKind::Keys,
        name: "redis keys".into(),
        expected: format!("{compared} keys as before"),
        actual: if ok {
            format!("{compared} keys as before")
        } else {
            // Each word only when it is true, so a negative control's
            // `expect-error = "missing"` cannot match "0 missing".
            [
                (diff.missing.len(), "missing"),
                (diff.changed.len(), "changed"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", ")
        },
        ok,
        evidence: (!ok).then(|| evidence.join("\n")),
    }
}

/// After a damaged AOF: exactly the predicted keys lost or changed, and
/// every other key as before.
pub(super) fn keys_as_predicted(diff: &KeyDiff, predicted: &BTreeSet<String>) -> CheckResult {
    let damaged: BTreeSet<String> = diff.damaged().into_iter().collect();
    let unexpected: Vec<String> = damaged.difference(predicted).cloned().collect();
    let kept: Vec<String> = predicted.difference(&damaged).cloned().collect();
    let ok = unexpected.is_empty() && kept.is_empty();
    let lost: Vec<String> = damaged.iter().cloned().collect();
    CheckResult {
        kind: CheckKind::Keys,
        name: "redis keys lost".into(),
        expected: format!(
            "exactly the {} keys written after the damage",
            predicted.len()
        ),
        actual: format!("{} keys lost or changed", damaged.len()),
        ok,
        evidence: Some(if ok {
            format!("lost: {}", sample(&lost, 20))
        } else {
            format!(
                "lost but not predicted: {}\npredicted but intact: {}",
                sample(&unexpected, 20),
                sample(&kept, 20)
            )
        }),
    }
}

/// The runbook's "Verify data loaded": `loading:0`, `aof_enabled` as
/// configured, `rdb_last_bgsave_status:ok`.
pub(super) fn persistence(info: &BTreeMap<String, String>, appendonly: bool) -> Vec<CheckResult> {
    let want = [
        ("loading", "0"),
        ("aof_enabled", if appendonly { "1" } else { "0" }),
        ("rdb_last_bgsave_status", "ok"),
    ];
    want.iter()
        .map(|(k, v)| {
            let got = info.get(*k).map(String::as_str);
            CheckResult {
                kind: CheckKind::Persistence,
                name: format!("redis {k}"),
                expected: v.to_string(),
                actual: got.unwrap_or("absent").to_string(),
                ok: got == Some(*v),
                evidence: (got != Some(*v))
                    .then(|| format!("INFO persistence says {k}:{}", got.unwrap_or("(nothing)"))),
            }
        })
        .collect()
}

/// Keys matching a pattern against (key, value) rows from PostgreSQL;
/// values compare as numbers when both parse as numbers.
pub(super) fn matches_postgres(
    pattern: &str,
    redis: &BTreeMap<String, String>,
    postgres: &BTreeMap<String, String>,
) -> CheckResult {
    let same = |a: &str, b: &str| match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y || ((x - y) / y.abs().max(1e-300)).abs() < 1e-12,
        _ => a == b,
    };
    let missing: Vec<String> = postgres
        .keys()
        .filter(|k| !redis.contains_key(*k))
        .cloned()
        .collect();
    let extra: Vec<String> = redis
        .keys()
        .filter(|k| !postgres.contains_key(*k))
        .cloned()
        .collect();
    let differ: Vec<String> = postgres
        .iter()
        .filter_map(|(k, v)| {
            let r = redis.get(k)?;
            (!same(r, v)).then(|| format!("{k}: redis {r}, postgres {v}"))
        })
        .collect();
    let ok = missing.is_empty() && extra.is_empty() && differ.is_empty() && !postgres.is_empty();
    let mut evidence = Vec::new();
    if postgres.is_empty() {
        evidence.push("the query returned no rows".to_string());
    }
    if !missing.is_empty() {
        evidence.push(format!("not in redis: {}", sample(&missing, 10)));
    }
    if !extra.is_empty() {
        evidence.push(format!("not in postgres: {}", sample(&extra, 10)));
    }
    if !differ.is_empty() {
        evidence.push(format!("different: {}", sample(&differ, 10)));
    }
    CheckResult {
        kind: CheckKind::CrossCheck,
        name: format!("redis {pattern} matches postgres"),
        expected: format!("{} keys equal to postgres", postgres.len()),
        actual: if ok {
            format!("{} keys equal", redis.len())
        } else {
            format!(
                "{} missing, {} extra, {} different",
                missing.len(),
                extra.len(),
                differ.len()
            )
        },
        ok,
        evidence: (!ok).then(|| evidence.join("\n")),
    }
}

/// Whether `key` matches `pattern`, where `*` stands for any run of
/// characters (Redis's glob, without classes).
pub(super) fn glob(pattern: &str, key: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == key;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !key.starts_with(first) || !key[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &key[first.len()..key.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn globs_match_like_redis() {
        assert!(glob("session:*", "session:ab12"));
        assert!(!glob("session:*", "price:BTC"));
        assert!(glob("*:live", "market_data:live"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-c"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        let c = matches_postgres(
            "price:*",
            &map(&[("price:BTC", "97000.50000000")]),
            &map(&[("price:BTC", "97000.5")]),
        );
        assert!(c.ok, "{c:?}");
        let c = matches_postgres(
            "price:*",
            &map(&[("price:BTC", "1"), ("price:X", "2")]),
            &map(&[("price:BTC", "1.5"), ("price:ETH", "3")]),
        );
        assert!(!c.ok);
        let ev = c.evidence.unwrap();
        assert!(
            ev.contains("not in redis: price:ETH") && ev.contains("not in postgres: price:X"),
            "{ev}"
        );
        assert!(ev.contains("price:BTC: redis 1, postgres 1.5"), "{ev}");
    }

    #[test]
    fn predicted_loss_must_be_exact() {
        let diff = KeyDiff {
            missing: vec!["a".into()],
            changed: vec!["b".into()],
            extra: vec![],
        };
        let predicted: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert!(keys_as_predicted(&diff, &predicted).ok);
        let more: BTreeSet<String> = ["a".to_string(), "b".to_string(), "c".to_string()].into();
        assert!(!keys_as_predicted(&diff, &more).ok);
        let fewer: BTreeSet<String> = ["a".to_string()].into();
        assert!(!keys_as_predicted(&diff, &fewer).ok);
    }
}
