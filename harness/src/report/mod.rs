//! Reports consume finished [`DrillReport`](crate::engine::DrillReport)s and
//! never talk to a server: a summary table for people ([`summary`]) and JSON
//! for machines ([`write_json`]).

pub mod summary;

use std::path::Path;

use crate::engine::DrillReport;
use crate::{Error, Result};

/// Writes `report.json` (an array, one entry per scenario) into `dir`.
pub fn write_json(dir: &Path, reports: &[DrillReport]) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let path = dir.join("report.json");
    let text = serde_json::to_string_pretty(reports).expect("reports serialise");
    std::fs::write(&path, text).map_err(Error::io("write", &path))?;
    Ok(path)
}

/// Serde helpers: durations as integer milliseconds.
pub mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// For `Option<Duration>`.
    pub mod opt {
        use std::time::Duration;

        pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&(d.as_millis() as u64)),
                None => s.serialize_none(),
            }
        }
    }
}
