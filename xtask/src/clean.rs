//! `cargo xtask clean`: removes what killed or `--keep` runs left behind.

use crate::exit;

pub(crate) fn run() -> u8 {
    let removed = drill::backend::reap_leftovers();
    for r in &removed {
        println!("removed {r}");
    }
    println!("{} leftovers removed", removed.len());
    exit::OK
}
