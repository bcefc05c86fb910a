//! Redis's append-only file: reading its commands, damaging it the two ways
//! seed 003's troubleshooting section meets (a cut-off tail, which Redis
//! loads anyway with `aof-load-truncated yes`; damage in the middle, which
//! makes it refuse to start with "Bad file format reading the append only
//! file"), and predicting exactly which keys each damage costs, so a drill
//! can check that `redis-check-aof --fix` lost those keys and no others.
//!
//! Since Redis 7 the AOF is a folder (`appendonlydir/`) with a manifest, a
//! base file (RDB format, from the last rewrite) and an incremental file of
//! RESP commands; the damage and the repair act on the incremental file, as
//! the runbook's `redis-check-aof --fix .../appendonly.aof.1.incr.aof` does.

pub use crate::scenario::DamageKind;
use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One command in the file, and where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofCommand {
    /// Byte offset of its `*` header.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    pub args: Vec<Vec<u8>>,
}

impl AofCommand {
    /// The key it writes, for commands that write one.
    pub fn key(&self) -> Option<String> {
        let name = String::from_utf8_lossy(self.args.first()?).to_ascii_uppercase();
        match name.as_str() {
            "SELECT" | "MULTI" | "EXEC" | "PING" | "FLUSHALL" | "FLUSHDB" | "SCRIPT" => None,
            _ => self
                .args
                .get(1)
                .map(|k| String::from_utf8_lossy(k).into_owned()),
        }
    }
}

/// Parses RESP arrays of bulk strings from the start of `bytes`; returns
/// the commands read and the offset where reading stopped (the length of
/// the file when it is whole).
pub fn parse(bytes: &[u8]) -> (Vec<AofCommand>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match parse_one(bytes, pos) {
            Some(cmd) => {
                pos = cmd.end;
                out.push(cmd);
            }
            None => break,
        }
    }
    (out, pos)
}

fn parse_one(b: &[u8], start: usize) -> Option<AofCommand> {
    let (n, mut pos) = header(b, start, b'*')?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let (len, p) = header(b, pos, b'$')?;
        let end = p.checked_add(len)?;
        if b.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        args.push(b[p..end].to_vec());
        pos = end + 2;
    }
    Some(AofCommand {
        start,
        end: pos,
        args,
    })
}

/// `<tag><digits>\r\n` at `pos`: the number and the offset after it.
fn header(b: &[u8], pos: usize, tag: u8) -> Option<(usize, usize)> {
    if *b.get(pos)? != tag {
        return None;
    }
    let rest = &b[pos + 1..];
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    let n: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    Some((n, pos + 1 + nl + 2))
}

/// A damage chosen for a file, and what it will cost.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    pub kind: DamageKind,
    /// The file's length before.
    pub len: usize,
    /// TruncateTail: the new length. Middle: the byte overwritten.
    pub offset: usize,
    /// Commands from this one on are lost (by index).
    pub first_lost: usize,
    pub commands: usize,
    /// Keys written by the lost commands: what should not come back as it
    /// was.
    pub lost_keys: BTreeSet<String>,
}

/// Commands the prediction does not cover: transactions (a damage inside
/// one rolls back to its MULTI) and writes to several keys.
const NOT_PREDICTED: &[&str] = &[
    "MULTI",
    "EXEC",
    "MSET",
    "MSETNX",
    "RENAME",
    "RENAMENX",
    "SMOVE",
    "LMOVE",
    "BLMOVE",
    "RPOPLPUSH",
    "BRPOPLPUSH",
    "COPY",
    "SUNIONSTORE",
    "SINTERSTORE",
    "SDIFFSTORE",
    "ZUNIONSTORE",
    "ZINTERSTORE",
    "ZDIFFSTORE",
    "ZRANGESTORE",
    "BITOP",
    "PFMERGE",
    "GEORADIUS",
    "GEOSEARCHSTORE",
    "EVAL",
    "EVALSHA",
    "FCALL",
];

fn unplannable(why: String) -> crate::Error {
    crate::Error::unexpected("damage redis's AOF with a predictable loss", why)
}

/// Picks the damage for `bytes` from `seed`: the tail cut inside the last
/// command, or the header of a command in the middle half of the file.
/// Err says why the file cannot be damaged with a predictable loss.
pub fn plan(bytes: &[u8], kind: DamageKind, seed: u64) -> crate::Result<Damage> {
    let (cmds, whole) = parse(bytes);
    if whole != bytes.len() {
        return Err(unplannable(format!(
            "the AOF is already damaged at byte {whole} of {}",
            bytes.len()
        )));
    }
    if cmds.len() < 4 {
        return Err(unplannable(format!(
            "the AOF holds only {} commands; load more data (e.g. a larger `ticks`)",
            cmds.len()
        )));
    }
    if let Some(c) = cmds.iter().find(|c| {
        let name = String::from_utf8_lossy(&c.args[0]).to_ascii_uppercase();
        NOT_PREDICTED.contains(&name.as_str())
            || (matches!(name.as_str(), "DEL" | "UNLINK" | "TOUCH") && c.args.len() > 2)
    }) {
        return Err(unplannable(format!(
            "the AOF holds `{}` at byte {}: transactions and multi-key writes are outside what drill can predict",
            String::from_utf8_lossy(&c.args[0]),
            c.start
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xA0F);
    let (offset, first_lost) = match kind {
        DamageKind::TruncateTail => {
            let last = cmds.last().expect("at least 4");
            // Keep at least its header byte, lose at least its last byte.
            let cut = rng.random_range(last.start + 1..last.end);
            (cut, cmds.len() - 1)
        }
        DamageKind::Middle => {
            let i = rng.random_range(cmds.len() / 4..cmds.len() * 3 / 4);
            (cmds[i].start, i)
        }
    };
    let lost_keys = cmds[first_lost..]
        .iter()
        .filter_map(AofCommand::key)
        .collect();
    Ok(Damage {
        kind,
        len: bytes.len(),
        offset,
        first_lost,
        commands: cmds.len(),
        lost_keys,
    })
}

impl Damage {
    /// The shell that applies it to `file` (under `$DATA`), with tools any
    /// Redis image has.
    pub fn script(&self, file: &str) -> String {
        match self.kind {
            DamageKind::TruncateTail => format!("truncate -s {} \"{file}\"", self.offset),
            DamageKind::Middle => format!(
                "printf '@' | dd of=\"{file}\" bs=1 seek={} conv=notrunc 2>/dev/null",
                self.offset
            ),
        }
    }

    /// Applies it to bytes in memory (tests).
    #[cfg(test)]
    pub(crate) fn apply(&self, bytes: &mut Vec<u8>) {
        match self.kind {
            DamageKind::TruncateTail => bytes.truncate(self.offset),
            DamageKind::Middle => bytes[self.offset] = b'@',
        }
    }
}

/// The incremental file's name from a Redis 7 manifest (`file <name> seq
/// <n> type i`), the newest when several.
pub fn incr_file(manifest: &str) -> Option<String> {
    manifest
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "i") && l.contains("type"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "file").then(|| w.next().map(str::to_string))?
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resp(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
        }
        out
    }

    fn file(keys: &[String]) -> Vec<u8> {
        let mut b = resp(&["SELECT", "0"]);
        for k in keys {
            b.extend(resp(&["SET", k, "v\r\nwith a newline"]));
        }
        b
    }

    #[test]
    fn reads_commands_and_their_keys() {
        let b = file(&["a".into(), "b".into()]);
        let (cmds, end) = parse(&b);
        assert_eq!(end, b.len());
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].key(), None);
        assert_eq!(cmds[2].key().as_deref(), Some("b"));
        assert_eq!(cmds[2].args[2], b"v\r\nwith a newline");
    }

    #[test]
    fn transactions_and_multi_key_writes_are_refused() {
        let mut b = file(&["a".into(), "b".into(), "c".into(), "d".into()]);
        assert!(plan(&b, DamageKind::Middle, 1).is_ok());
        b.extend(resp(&["MULTI"]));
        b.extend(resp(&["SET", "e", "1"]));
        b.extend(resp(&["EXEC"]));
        let why = plan(&b, DamageKind::Middle, 1).unwrap_err().to_string();
        assert!(why.contains("`MULTI`"), "{why}");
        let mut d = file(&["a".into(), "b".into(), "c".into(), "d".into()]);
        d.extend(resp(&["DEL", "a", "b"]));
        assert!(plan(&d, DamageKind::TruncateTail, 1).is_err());
        let cut = &file(&["a".into(), "b".into(), "c".into(), "d".into()])[..40];
        assert!(
            plan(cut, DamageKind::Middle, 1)
                .unwrap_err()
                .to_string()
                .contains("already damaged")
        );
    }

    #[test]
    fn finds_the_incremental_file_in_a_manifest() {
        let m = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        assert_eq!(incr_file(m).as_deref(), Some("appendonly.aof.1.incr.aof"));
    }

    proptest! {
        /// Whatever the seed and the file, what survives the damage is
        /// exactly the commands before `first_lost`: a truncated file
        /// reads up to there, a damaged header stops reading there (which
        /// is where redis-check-aof --fix cuts), and the predicted keys are
        /// the keys of the commands after it.
        #[test]
        fn the_prediction_matches_what_survives(n in 4usize..60, seed in any::<u64>(), middle in any::<bool>()) {
            let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
            let mut b = file(&keys);
            let kind = if middle { DamageKind::Middle } else { DamageKind::TruncateTail };
            let d = plan(&b, kind, seed).unwrap();
            d.apply(&mut b);
            let (left, _) = parse(&b);
            prop_assert_eq!(left.len(), d.first_lost);
            let kept: BTreeSet<String> = left.iter().filter_map(AofCommand::key).collect();
            let all: BTreeSet<String> = keys.iter().cloned().collect();
            let lost: BTreeSet<String> = all.difference(&kept).cloned().collect();
            prop_assert_eq!(lost, d.lost_keys.clone());
            prop_assert!(!d.lost_keys.is_empty());
        }
    }
}
