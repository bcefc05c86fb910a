//! Recovery steps: what a scenario's `[[recovery]]` runs after the fault.
//! Each step acts on a service through its coordinates and reports what it
//! did into the timeline; none of them judges success (checks do that).

pub mod sanitize;
