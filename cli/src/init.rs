//! `drill init`: placeholder.
#[derive(Debug, clap::Args)]
pub struct Args {}
pub(crate) fn run(_a: Args) -> crate::Outcome { Ok(()) }
