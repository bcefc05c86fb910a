//! `cargo xtask list`: scenario names and one-line descriptions.

use std::path::Path;

use crate::exit;

pub(crate) fn run(dir: &Path) -> u8 {
    match drill::scenario::load_dir(dir) {
        Ok(all) => {
            let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for s in all {
                println!("{:width$}  {}", s.name, s.description);
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
    }
}
