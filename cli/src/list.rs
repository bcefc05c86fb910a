//! `cargo xtask list`: scenario names and one-line descriptions.

use std::path::Path;

use crate::Outcome;

pub(crate) fn run(dir: &Path) -> Outcome {
    let all = drill::scenario::load_dir(dir)?;
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in all {
        println!("{:width$}  {}", s.name, s.description);
    }
    Ok(())
}
