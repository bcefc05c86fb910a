//! `cargo xtask clean`: removes what killed or `--keep` runs left behind.

use crate::Outcome;

pub(crate) fn run() -> Outcome {
    let removed = drill::backend::reap_leftovers();
    for r in &removed {
        println!("removed {r}");
    }
    println!("{} leftovers removed", removed.len());
    Ok(())
}
