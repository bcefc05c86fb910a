//! A WAL archive as files: segment names (timeline, log, segment), and the
//! continuity check no backup tool makes for you: between a base backup's
//! first segment and the newest archived one, every segment of the
//! timeline must be there. pgBackRest 2.45's `verify` reports a deleted
//! segment as `status: ok`; this scan names the first missing one and the
//! last point a recovery can reach.

use std::fmt;

/// Segments per WAL "log file" with the default 16 MB segments.
const SEGS_PER_LOG: u64 = 0x1_0000_0000 / WAL_SEGMENT_BYTES;
/// The default (and the only size drill's servers use) WAL segment size.
pub(crate) const WAL_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// A WAL segment's file name, `TTTTTTTTLLLLLLLLSSSSSSSS` in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Segment {
    pub(crate) timeline: u32,
    /// Position on the timeline: log * 256 + segment.
    pub(crate) number: u64,
}

impl Segment {
    /// Reads a segment file name; None for anything else (`.history`,
    /// `.backup`, `.partial`, pgBackRest's `-<sha1>.gz` suffixes are cut
    /// first by [`Segment::from_file`]).
    pub(crate) fn parse(name: &str) -> Option<Segment> {
        if name.len() != 24 || !name.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let timeline = u32::from_str_radix(&name[0..8], 16).ok()?;
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        (seg < SEGS_PER_LOG).then_some(Segment {
            timeline,
            number: log * SEGS_PER_LOG + seg,
        })
    }

    /// A file in an archive that holds a whole segment: the plain name, or
    /// pgBackRest's `NAME-<sha1>[.gz|.lz4|.zst]`. Partial segments and
    /// history files are not whole segments.
    pub(crate) fn from_file(file: &str) -> Option<Segment> {
        if file.contains(".partial") {
            return None;
        }
        Segment::parse(file.get(..24)?).filter(|_| {
            let rest = &file[24..];
            rest.is_empty() || rest.starts_with('-')
        })
    }

    /// The segment holding `lsn` (`X/Y`) on `timeline`.
    pub(crate) fn of_lsn(timeline: u32, lsn: &str) -> Option<Segment> {
        let pos = lsn_pos(lsn)?;
        Some(Segment {
            timeline,
            number: pos / WAL_SEGMENT_BYTES,
        })
    }

    pub(crate) fn name(&self) -> String {
        format!(
            "{:08X}{:08X}{:08X}",
            self.timeline,
            self.number / SEGS_PER_LOG,
            self.number % SEGS_PER_LOG
        )
    }

    /// The first LSN of the segment, as PostgreSQL writes it.
    pub(crate) fn start_lsn(&self) -> String {
        let pos = self.number * WAL_SEGMENT_BYTES;
        format!("{:X}/{:X}", pos >> 32, pos & 0xFFFF_FFFF)
    }
}

/// A WAL position (`X/Y`, hex) as a byte offset.
pub(crate) fn lsn_pos(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What the archive holds from a base backup's first segment on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Continuity {
    /// The base backup's first segment.
    pub(crate) from: Segment,
    /// The newest segment of that timeline in the archive.
    pub(crate) newest: Option<Segment>,
    /// Segments missing between `from` and `newest`, in order.
    pub(crate) missing: Vec<Segment>,
}

impl Continuity {
    /// Whether every segment from the backup's first to the newest is there.
    pub(crate) fn complete(&self) -> bool {
        self.missing.is_empty() && self.newest.is_some()
    }

    /// The last segment a recovery from `from` can read before the first
    /// gap (None: not even the first is there).
    pub(crate) fn last_reachable(&self) -> Option<Segment> {
        let first_missing = self.missing.first().copied();
        match (first_missing, self.newest) {
            (Some(m), _) if m.number == self.from.number => None,
            (Some(m), _) => Some(Segment {
                number: m.number - 1,
                ..m
            }),
            (None, newest) => newest,
        }
    }

    /// One sentence for people.
    pub(crate) fn describe(&self) -> String {
        match (self.newest, self.missing.first()) {
            (None, _) => format!(
                "the archive holds no segment of timeline {} from {} on",
                self.from.timeline, self.from
            ),
            (Some(n), None) => format!(
                "continuous from {} to {} ({} segments)",
                self.from,
                n,
                n.number - self.from.number + 1
            ),
            (Some(n), Some(first)) => format!(
                "GAP: {} of {} segments missing from {} to {}; first missing {} (WAL from {}), last reachable {}",
                self.missing.len(),
                n.number - self.from.number + 1,
                self.from,
                n,
                first,
                first.start_lsn(),
                self.last_reachable().map_or(
                    "none: the backup's own first segment is missing".into(),
                    |s| s.to_string()
                )
            ),
        }
    }
}

/// Scans archive file names for gaps on `from`'s timeline.
pub(crate) fn continuity<'a>(
    from: Segment,
    files: impl IntoIterator<Item = &'a str>,
) -> Continuity {
    let mut have: Vec<u64> = files
        .into_iter()
        .filter_map(Segment::from_file)
        .filter(|s| s.timeline == from.timeline && s.number >= from.number)
        .map(|s| s.number)
        .collect();
    have.sort_unstable();
    have.dedup();
    let newest = have.last().map(|&n| Segment { number: n, ..from });
    let mut missing = Vec::new();
    let mut expect = from.number;
    for n in &have {
        while expect < *n {
            missing.push(Segment {
                number: expect,
                ..from
            });
            expect += 1;
        }
        expect = n + 1;
    }
    Continuity {
        from,
        newest,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_read_and_write_alike() {
        let s = Segment::parse("000000010000000A000000FF").unwrap();
        assert_eq!(s.timeline, 1);
        assert_eq!(s.number, 10 * 256 + 255);
        assert_eq!(s.name(), "000000010000000A000000FF");
        assert_eq!(s.start_lsn(), "A/FF000000");
        assert_eq!(Segment::of_lsn(1, "A/FF000028"), Some(s));
        assert_eq!(Segment::parse("00000001000000000000010"), None);
        assert_eq!(
            Segment::parse("000000010000000000000100"),
            None,
            "segment 0x100 does not exist with 16 MB segments"
        );
        assert_eq!(Segment::from_file("000000020000000000000003.partial"), None);
        assert_eq!(Segment::from_file("00000002.history"), None);
        assert_eq!(
            Segment::from_file(
                "000000010000000000000003-4b0c2a9d1e0f55c3e54f3d9b6f11a1f3c6f0d2aa.gz"
            ),
            Segment::parse("000000010000000000000003")
        );
        assert_eq!(
            Segment::from_file("000000010000000000000003.00000028.backup"),
            None
        );
    }

    #[test]
    fn a_removed_middle_segment_is_named() {
        let from = Segment::parse("000000010000000000000002").unwrap();
        let files = [
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000020000000000000007",
        ];
        let c = continuity(from, files);
        assert!(!c.complete());
        assert_eq!(
            c.missing,
            vec![Segment::parse("000000010000000000000004").unwrap()]
        );
        assert_eq!(
            c.last_reachable(),
            Segment::parse("000000010000000000000003")
        );
        assert!(
            c.describe()
                .contains("first missing 000000010000000000000004"),
            "{}",
            c.describe()
        );
    }

    proptest! {
        /// Whatever is removed from a run of segments, the scan finds
        /// exactly the removed ones below the newest, and the last
        /// reachable segment is the one before the first removed.
        #[test]
        fn the_scan_finds_exactly_what_was_removed(
            start in 0u64..2000, len in 1u64..60, removed in prop::collection::btree_set(0u64..60, 0..10)
        ) {
            let from = Segment { timeline: 1, number: start };
            let kept: Vec<String> = (0..len)
                .filter(|i| !removed.contains(i))
                .map(|i| Segment { timeline: 1, number: start + i }.name())
                .collect();
            let c = continuity(from, kept.iter().map(String::as_str));
            let newest = (0..len).filter(|i| !removed.contains(i)).max();
            let want: Vec<Segment> = removed
                .iter()
                .filter(|i| newest.is_some_and(|n| **i < n))
                .map(|i| Segment { timeline: 1, number: start + i })
                .collect();
            prop_assert_eq!(&c.missing, &want);
            prop_assert_eq!(c.newest.map(|s| s.number - start), newest);
            if let Some(first) = want.first() {
                let reach = c.last_reachable();
                if first.number == start {
                    prop_assert_eq!(reach, None);
                } else {
                    prop_assert_eq!(reach.map(|s| s.number), Some(first.number - 1));
                }
            }
        }

        #[test]
        fn names_round_trip(tl in 1u32..100, n in 0u64..1_000_000) {
            let s = Segment { timeline: tl, number: n };
            prop_assert_eq!(Segment::parse(&s.name()), Some(s));
        }
    }
}
