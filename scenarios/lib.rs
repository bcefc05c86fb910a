//! Holds no code: the scenario files live beside this file and `tests/scenarios.rs` runs each one as a test.
