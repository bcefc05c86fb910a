//! Recovery targets for point-in-time recovery, written relative to the
//! drill's own clock so a scenario is reproducible: `before-fault`,
//! `fault - 2s`, `fault + 1h`, a restore point the scenario creates
//! (`restore-point:NAME`), an LSN (`lsn:0/3000000`), `immediate` (the end of
//! the base backup) or `latest` (everything the archive holds).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A target that cannot be read, and what good ones look like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTarget(pub String);

/// Where a point-in-time recovery stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// Replay every WAL segment the archive (and the saved `pg_wal`) holds.
    #[default]
    Latest,
    /// Stop as soon as the base backup is consistent.
    Immediate,
    /// The fault's first instant shifted by `offset_ms` (negative: before
    /// it). `before-fault` is offset 0: everything committed before the
    /// fault began, nothing of the fault itself.
    Fault { offset_ms: i64 },
    /// A restore point created with `pg_create_restore_point` (the fault's
    /// `restore-point` key makes one just before the fault).
    RestorePoint(String),
    /// A WAL location, `X/Y` in hex.
    Lsn(String),
    /// A wall-clock time as PostgreSQL reads it (`2026-11-30 14:30:00+00`):
    /// for `restore-artifact`, whose backups come from elsewhere.
    Time(String),
}

impl RecoveryTarget {
    /// Reads a target as a scenario writes it; Err says what is accepted.
    pub fn parse(text: &str) -> Result<RecoveryTarget, BadTarget> {
        macro_rules! bad {
            ($($t:tt)*) => { BadTarget(format!($($t)*)) }
        }
        let t = text.trim();
        let accepted = "write `latest`, `immediate`, `before-fault`, `fault - 2s`, `fault + 1h`, \
            `restore-point:NAME`, `lsn:0/3000000` or a time (`2026-01-22 14:30:00+00`)";
        match t {
            "latest" => return Ok(RecoveryTarget::Latest),
            "immediate" => return Ok(RecoveryTarget::Immediate),
            "before-fault" => return Ok(RecoveryTarget::Fault { offset_ms: 0 }),
            _ => {}
        }
        if let Some(name) = t.strip_prefix("restore-point:") {
            let name = name.trim();
            if name.is_empty() || name.len() > 63 {
                return Err(bad!(
                    "restore point name `{name}` must be 1 to 63 characters; {accepted}"
                ));
            }
            return Ok(RecoveryTarget::RestorePoint(name.to_string()));
        }
        if let Some(lsn) = t.strip_prefix("lsn:") {
            let lsn = lsn.trim();
            let ok = lsn.split_once('/').is_some_and(|(a, b)| {
                [a, b].iter().all(|p| {
                    !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_hexdigit())
                })
            });
            if !ok {
                return Err(bad!(
                    "`{lsn}` is not a WAL location (hex `X/Y`, e.g. `0/3000000`); {accepted}"
                ));
            }
            return Ok(RecoveryTarget::Lsn(lsn.to_uppercase()));
        }
        // Byte-wise: the text may be anything, multi-byte characters too.
        let year_first =
            |x: &str| x.len() >= 10 && x.as_bytes()[..4].iter().all(u8::is_ascii_digit);
        let looks_like_date = year_first(t) && t.as_bytes()[4] == b'-';
        if let Some(time) = t.strip_prefix("time:").or(looks_like_date.then_some(t)) {
            let time = time.trim();
            let ok = year_first(time)
                && time
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " -:.+/_".contains(c));
            if !ok {
                return Err(bad!(
                    "`{time}` is not a time PostgreSQL reads (e.g. `2026-11-30 14:30:00+00`); {accepted}"
                ));
            }
            return Ok(RecoveryTarget::Time(time.to_string()));
        }
        if let Some(rest) = t.strip_prefix("fault") {
            let rest = rest.trim_start();
            let (sign, amount) = match rest.chars().next() {
                Some('-') => (-1, &rest[1..]),
                Some('+') => (1, &rest[1..]),
                _ => {
                    return Err(bad!(
                        "`{t}`: after `fault` comes `+` or `-` and a duration; {accepted}"
                    ));
                }
            };
            let d = super::parse_duration(amount).map_err(|e| bad!("`{t}`: {e}; {accepted}"))?;
            if d > Duration::from_secs(7 * 86_400) {
                return Err(bad!(
                    "`{t}`: offsets beyond a week are not a drill's; {accepted}"
                ));
            }
            return Ok(RecoveryTarget::Fault {
                offset_ms: sign * d.as_millis() as i64,
            });
        }
        Err(bad!("unknown recovery target `{t}`; {accepted}"))
    }

    /// As a scenario writes it.
    pub fn describe(&self) -> String {
        match self {
            RecoveryTarget::Latest => "latest".into(),
            RecoveryTarget::Immediate => "immediate".into(),
            RecoveryTarget::Fault { offset_ms: 0 } => "before-fault".into(),
            RecoveryTarget::Fault { offset_ms } => {
                let d = humantime::format_duration(Duration::from_millis(offset_ms.unsigned_abs()));
                if *offset_ms < 0 {
                    format!("fault - {d}")
                } else {
                    format!("fault + {d}")
                }
            }
            RecoveryTarget::RestorePoint(n) => format!("restore-point:{n}"),
            RecoveryTarget::Lsn(l) => format!("lsn:{l}"),
            RecoveryTarget::Time(t) => t.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for RecoveryTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RecoveryTarget::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn targets_read_as_written() {
        for (text, want) in [
            ("latest", RecoveryTarget::Latest),
            ("immediate", RecoveryTarget::Immediate),
            ("before-fault", RecoveryTarget::Fault { offset_ms: 0 }),
            ("fault - 2s", RecoveryTarget::Fault { offset_ms: -2000 }),
            (
                "fault+1h",
                RecoveryTarget::Fault {
                    offset_ms: 3_600_000,
                },
            ),
            (
                "restore-point:pre-drop",
                RecoveryTarget::RestorePoint("pre-drop".into()),
            ),
            ("lsn:0/3a000028", RecoveryTarget::Lsn("0/3A000028".into())),
            (
                "2026-01-22 14:30:00 UTC",
                RecoveryTarget::Time("2026-01-22 14:30:00 UTC".into()),
            ),
        ] {
            assert_eq!(RecoveryTarget::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_targets_say_what_is_accepted() {
        for text in [
            "",
            "yesterday",
            "fault 2s",
            "fault - 2",
            "lsn:3000000",
            "lsn:zz/1",
            "restore-point:",
            "fault + 30 days",
        ] {
            let e = RecoveryTarget::parse(text).unwrap_err();
            assert!(e.0.contains("before-fault"), "{text}: {e}");
        }
    }

    proptest! {
        /// What `describe` writes reads back as the same target.
        #[test]
        fn describe_round_trips(offset in -600_000i64..600_000) {
            let t = RecoveryTarget::Fault { offset_ms: offset };
            prop_assert_eq!(RecoveryTarget::parse(&t.describe()), Ok(t));
        }

        /// No text makes the parser panic.
        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = RecoveryTarget::parse(&text);
        }

        /// Nor does text that starts the way a target does and goes on
        /// with anything (multi-byte characters where a digit belongs).
        #[test]
        fn never_panics_past_a_good_start(
            start in "(fault ?[+-]? ?|time:|lsn:|restore-point:|[0-9]{1,4}-?|)",
            rest in ".{0,20}",
        ) {
            let _ = RecoveryTarget::parse(&format!("{start}{rest}"));
        }
    }
}
