//! What a Redis check compares: every key with its type, a digest of its
//! value in a canonical form (hash fields and set members sorted, stream
//! entries with their ids), and whether it expires. `DBSIZE` alone would
//! call a restore green that lost one key and gained another; comparing
//! values catches a stream that came back shorter. Reading never changes
//! the server.

use std::collections::BTreeMap;

use ::redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The state of a Redis database at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Key → `type:digest[:ttl]`.
    pub keys: BTreeMap<String, String>,
}

/// How a key differs from the baseline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyDiff {
    /// In the baseline, gone now.
    pub missing: Vec<String>,
    /// Present with another value, type or expiry.
    pub changed: Vec<String>,
    /// New keys.
    pub extra: Vec<String>,
}

impl KeyDiff {
    /// Keys whose baseline state did not come back (missing or changed).
    pub fn damaged(&self) -> Vec<String> {
        let mut all: Vec<String> = self.missing.iter().chain(&self.changed).cloned().collect();
        all.sort();
        all
    }
}

impl Snapshot {
    /// Compares with a later snapshot, ignoring keys `skip` says yes to.
    pub fn diff(&self, now: &Snapshot, skip: impl Fn(&str) -> bool) -> KeyDiff {
        let mut d = KeyDiff {
            missing: Vec::new(),
            changed: Vec::new(),
            extra: Vec::new(),
        };
        for (k, v) in self.keys.iter().filter(|(k, _)| !skip(k)) {
            match now.keys.get(k) {
                None => d.missing.push(k.clone()),
                Some(w) if w != v => d.changed.push(k.clone()),
                _ => {}
            }
        }
        for k in now.keys.keys().filter(|k| !skip(k)) {
            if !self.keys.contains_key(k) {
                d.extra.push(k.clone());
            }
        }
        d
    }
}

/// Reads every key of database 0.
pub async fn take(con: &mut MultiplexedConnection) -> Result<Snapshot> {
    let err = Error::redis;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .map_err(err("SCAN"))?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(con)
            .await
            .map_err(err("TYPE"))?;
        let mut h = Sha256::new();
        match kind.as_str() {
            "string" => {
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(con)
                    .await
                    .map_err(err("GET"))?;
                h.update(&v);
            }
            "hash" => {
                let mut v: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(con)
                    .await
                    .map_err(err("HGETALL"))?;
                v.sort();
                for (f, x) in v {
                    feed(&mut h, &[&f, &x]);
                }
            }
            "list" => {
                let v: Vec<Vec<u8>> = redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(con)
                    .await
                    .map_err(err("LRANGE"))?;
                for x in v {
                    feed(&mut h, &[&x]);
                }
            }
            "set" => {
                let mut v: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(con)
                    .await
                    .map_err(err("SMEMBERS"))?;
                v.sort();
                for x in v {
                    feed(&mut h, &[&x]);
                }
            }
            "zset" => {
                let v: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(con)
                    .await
                    .map_err(err("ZRANGE"))?;
                for (m, s) in v {
                    feed(&mut h, &[&m, s.as_bytes()]);
                }
            }
            "stream" => {
                // In pages, so a long stream never needs one huge reply.
                let mut start = "-".to_string();
                loop {
                    let page: Vec<StreamEntry> = redis::cmd("XRANGE")
                        .arg(&key)
                        .arg(&start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(con)
                        .await
                        .map_err(err("XRANGE"))?;
                    let n = page.len();
                    for (id, fields) in &page {
                        feed(&mut h, &[id.as_bytes()]);
                        for (f, x) in fields {
                            feed(&mut h, &[f, x]);
                        }
                    }
                    match page.last() {
                        Some((id, _)) if n == 1000 => start = format!("({id}"),
                        _ => break,
                    }
                }
            }
            "none" => continue, // expired between SCAN and TYPE
            other => {
                h.update(other.as_bytes());
            }
        }
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(con)
            .await
            .map_err(err("PTTL"))?;
        let digest = format!("{:x}", h.finalize());
        out.insert(
            key,
            format!(
                "{kind}:{}{}",
                &digest[..16],
                if ttl >= 0 { ":expires" } else { "" }
            ),
        );
    }
    Ok(Snapshot { keys: out })
}

/// An XRANGE entry: its id and its field/value pairs.
type StreamEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

fn feed(h: &mut Sha256, parts: &[&[u8]]) {
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            keys: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn diff_names_missing_changed_and_extra_keys() {
        let before = snap(&[("a", "string:1"), ("b", "hash:2"), ("live", "stream:9")]);
        let now = snap(&[("a", "string:1"), ("b", "hash:3"), ("c", "string:4")]);
        let d = before.diff(&now, |k| k == "live");
        assert_eq!(d.missing, Vec::<String>::new());
        assert_eq!(d.changed, vec!["b"]);
        assert_eq!(d.extra, vec!["c"]);
        assert_eq!(before.diff(&snap(&[]), |_| false).missing.len(), 3);
    }
}
