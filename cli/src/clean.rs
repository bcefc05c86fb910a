//! `cargo xtask clean`: removes what killed or `--keep` runs left behind,
//! and lists what it left and why (a live drill's; one whose owner cannot
//! be checked from here, which `--older-than` takes once it is old enough).

use std::time::Duration;

use crate::Outcome;

pub(crate) fn run(older_than: Option<Duration>) -> Outcome {
    let sweep = drill::backend::reap_leftovers(older_than);
    for r in &sweep.removed {
        println!("removed {r}");
    }
    for l in &sweep.left {
        println!("left {l}");
    }
    println!(
        "{} leftovers removed, {} left",
        sweep.removed.len(),
        sweep.left.len()
    );
    Ok(())
}
