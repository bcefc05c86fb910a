//! Scenario files: one incident per TOML file, parsed and validated into a
//! [`Scenario`] before anything starts. Every mistake in a file comes back as
//! a [`ScenarioError`] naming the file, line, key, what is allowed and how to
//! fix it; no input makes the loader panic (see the property tests).
//!
//! The annotated reference is `scenarios/README.md`.

mod bounds;
mod duration;
mod load;
mod model;
mod target;

pub use bounds::{BYTES_PER_TICK, MAX_TICKS};
pub use duration::{BadDuration, parse_duration};
pub use load::{ScenarioError, load_dir, load_file, parse_str};
pub use model::*;
pub use target::{BadTarget, RecoveryTarget};
