//! Human durations in scenario files: "90s", "5 min", "1h 30min", "250ms".
//! A bare number is refused: a unit-less "5" is a bug waiting to happen.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration that cannot be read, and what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadDuration(String);

/// Parses a human duration, or says what a good one looks like.
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    let t = text.trim();
    if t.is_empty() {
        return Err(BadDuration(
            "empty duration; write e.g. \"90s\" or \"5 min\"".into(),
        ));
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(BadDuration(format!(
            "duration `{t}` has no unit; write e.g. \"{t}s\" or \"{t} min\""
        )));
    }
    humantime::parse_duration(t).map_err(|e| {
        BadDuration(format!(
            "bad duration `{t}` ({e}); write e.g. \"90s\", \"5 min\" or \"1h 30min\""
        ))
    })
}

/// A duration read from a scenario file (a string with a unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration string such as \"90s\" or \"5 min\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it as a string, e.g. \"{v}s\" or \"{v} min\""
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it as a string, e.g. \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_people_write() {
        for (text, secs) in [
            ("90s", 90.0),
            ("5 min", 300.0),
            ("1h 30min", 5400.0),
            ("250ms", 0.25),
            ("2.5s", 2.5),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
    }

    #[test]
    fn refuses_unitless_and_garbage_with_an_example() {
        for text in ["5", "", "soon", "5 parsecs"] {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(e.contains("e.g."), "{text}: {e}");
        }
    }
}
