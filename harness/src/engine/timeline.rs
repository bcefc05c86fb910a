//! The drill's one clock and its timeline: every step (start, load, backup,
//! fault, recovery step, checks) with its phase, start, duration, outcome
//! and detail, reported live through the progress callback.

use std::time::{Duration, Instant};

use super::{Progress, ProgressFn};

/// Where on the drill a step belongs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Servers, fixtures and baselines.
    Setup,
    /// The writers.
    Workload,
    /// Scheduled backups.
    Backup,
    /// Looking at a user's backup before restoring it.
    Inspect,
    /// One recovery attempt, by its name.
    Recovery(String),
}

impl Phase {
    /// The recovery's name, for a recovery phase.
    pub fn recovery(&self) -> Option<&str> {
        match self {
            Phase::Recovery(name) => Some(name),
            _ => None,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Setup => f.write_str("setup"),
            Phase::Workload => f.write_str("workload"),
            Phase::Backup => f.write_str("backup"),
            Phase::Inspect => f.write_str("inspect"),
            Phase::Recovery(name) => write!(f, "recovery {name}"),
        }
    }
}

impl serde::Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Phase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Phase, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "setup" => Phase::Setup,
            "workload" => Phase::Workload,
            "backup" => Phase::Backup,
            "inspect" => Phase::Inspect,
            other => match other.strip_prefix("recovery ") {
                Some(name) => Phase::Recovery(name.into()),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "`{other}` is not a phase (setup, workload, backup, inspect, recovery NAME)"
                    )));
                }
            },
        })
    }
}

impl PartialEq<&str> for Phase {
    fn eq(&self, other: &&str) -> bool {
        match self {
            Phase::Recovery(name) => other.strip_prefix("recovery ") == Some(name.as_str()),
            other_phase => {
                let name = match other_phase {
                    Phase::Setup => "setup",
                    Phase::Workload => "workload",
                    Phase::Backup => "backup",
                    _ => "inspect",
                };
                name == *other
            }
        }
    }
}

/// One step on the timeline.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TimelineEntry {
    pub phase: Phase,
    pub step: String,
    /// Since the drill started.
    #[serde(rename = "start_ms", with = "crate::vocab::millis")]
    pub start: Duration,
    #[serde(rename = "duration_ms", with = "crate::vocab::millis")]
    pub duration: Duration,
    pub ok: bool,
    pub detail: String,
}

/// The clock and the entries so far.
pub(crate) struct Timeline {
    t0: Instant,
    scenario: String,
    pub(crate) entries: Vec<TimelineEntry>,
    progress: Option<ProgressFn>,
}

impl Timeline {
    pub(crate) fn new(scenario: &str, progress: Option<ProgressFn>) -> Timeline {
        Timeline {
            t0: Instant::now(),
            scenario: scenario.into(),
            entries: Vec::new(),
            progress,
        }
    }

    /// A step begins: says so, returns its start.
    pub(crate) fn start(&self, phase: &Phase, step: &str) -> Instant {
        tracing::debug!(scenario = %self.scenario, %phase, step, "step starts");
        if let Some(p) = &self.progress {
            p(&Progress::Started {
                scenario: self.scenario.clone(),
                phase: phase.to_string(),
                step: step.into(),
            });
        }
        Instant::now()
    }

    /// A step ended.
    pub(crate) fn finish(
        &mut self,
        phase: &Phase,
        step: &str,
        started: Instant,
        ok: bool,
        detail: impl Into<String>,
    ) {
        let entry = TimelineEntry {
            phase: phase.clone(),
            step: step.into(),
            start: started - self.t0,
            duration: started.elapsed(),
            ok,
            detail: detail.into(),
        };
        tracing::debug!(scenario = %self.scenario, %phase, step, ok, detail = %entry.detail, "step ends");
        if let Some(p) = &self.progress {
            p(&Progress::Finished {
                scenario: self.scenario.clone(),
                entry: entry.clone(),
            });
        }
        self.entries.push(entry);
    }

    /// Runs `f` (blocking) as a step, recording its outcome; `detail`
    /// says what it did.
    pub(crate) fn timed<T>(
        &mut self,
        phase: &Phase,
        step: &str,
        f: impl FnOnce() -> crate::Result<T>,
        detail: impl FnOnce(&T) -> String,
    ) -> crate::Result<T> {
        let t = self.start(phase, step);
        match tokio::task::block_in_place(f) {
            Ok(x) => {
                self.finish(phase, step, t, true, detail(&x));
                Ok(x)
            }
            Err(e) => {
                self.finish(phase, step, t, false, e.to_string());
                Err(e)
            }
        }
    }
}
