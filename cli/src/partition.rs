//! `--partition count:M/N` and `hash:M/N`, with nextest's meaning, so N CI
//! runners each take a stable share of the scenarios: `count` deals the
//! scenarios, sorted by name, round-robin (M takes the 1st, N+1st, ... of
//! its turn); `hash` puts each scenario by a hash of its name, so adding
//! one scenario moves no other. Every scenario is in exactly one partition
//! (property-tested).

use std::str::FromStr;

use sha2::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Count { m: u64, n: u64 },
    Hash { m: u64, n: u64 },
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Partition, String> {
        let help = || format!("`{s}`: write count:M/N or hash:M/N with 1 <= M <= N, e.g. hash:1/2");
        let (kind, share) = s.split_once(':').ok_or_else(help)?;
        let (m, n) = share.split_once('/').ok_or_else(help)?;
        let (m, n): (u64, u64) = (
            m.parse().map_err(|_| help())?,
            n.parse().map_err(|_| help())?,
        );
        if m == 0 || n == 0 || m > n {
            return Err(help());
        }
        match kind {
            "count" => Ok(Partition::Count { m, n }),
            "hash" => Ok(Partition::Hash { m, n }),
            _ => Err(help()),
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partition::Count { m, n } => write!(f, "count:{m}/{n}"),
            Partition::Hash { m, n } => write!(f, "hash:{m}/{n}"),
        }
    }
}

impl Partition {
    /// The share as run.json records it, for `report merge`.
    pub fn share(&self) -> drill::report::run::Share {
        let (scheme, m, n) = match *self {
            Partition::Count { m, n } => ("count", m, n),
            Partition::Hash { m, n } => ("hash", m, n),
        };
        drill::report::run::Share {
            scheme: scheme.into(),
            m,
            n,
        }
    }

    /// This partition's share of `items`, named by `name`.
    pub fn select<T>(&self, mut items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        match *self {
            Partition::Count { m, n } => {
                items.sort_by(|a, b| name(a).cmp(name(b)));
                items
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| *i as u64 % n == m - 1)
                    .map(|(_, t)| t)
                    .collect()
            }
            Partition::Hash { m, n } => items
                .into_iter()
                .filter(|t| stable_hash(name(t)) % n == m - 1)
                .collect(),
        }
    }
}

/// The same on every machine and every run (not std's randomised hasher).
fn stable_hash(name: &str) -> u64 {
    let d = sha2::Sha256::digest(name.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("a sha256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partitions_are_read_as_nextest_writes_them() {
        assert_eq!("hash:1/2".parse(), Ok(Partition::Hash { m: 1, n: 2 }));
        assert_eq!("count:3/3".parse(), Ok(Partition::Count { m: 3, n: 3 }));
        for bad in [
            "hash:0/2",
            "hash:3/2",
            "count:1",
            "slice:1/2",
            "hash:a/2",
            "hash:1/0",
        ] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    proptest! {
        /// Every scenario runs in exactly one of the N partitions.
        #[test]
        fn every_scenario_in_exactly_one_partition(names in prop::collection::btree_set("[a-z-]{1,12}", 0..40), n in 1u64..6, hash in any::<bool>()) {
            let names: Vec<String> = names.into_iter().collect();
            let mut seen: Vec<String> = Vec::new();
            for m in 1..=n {
                let p = if hash { Partition::Hash { m, n } } else { Partition::Count { m, n } };
                seen.extend(p.select(names.clone(), |s| s.as_str()));
            }
            seen.sort();
            prop_assert_eq!(seen, names);
        }
    }
}
