//! `drill report merge DIR... --out DIR`: the partitions of one run (N CI
//! runners, each `drill run --partition M/N --report-dir DIR`) become one
//! report, as if one machine had run every scenario: report.json,
//! junit.xml, summary.md, the timelines and metrics.prom rendered again from
//! each partition's run.json, the history lines appended once, and the
//! gate judged on the whole. Mismatched partitions are refused
//! (`drill::report::run::merge` says which and why).

use std::path::PathBuf;

use drill::report::run::RunRecord;

use crate::Outcome;
use crate::drill::GateArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Merge the report dirs of a run's partitions into one report; the
    /// exit code is a run's (1: a drill failed, 2: one did not finish, 4:
    /// the gate tripped).
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The partitions' report dirs (each holds the run.json `drill run`
    /// wrote there).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the merged reports go.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    gate: GateArgs,
}

pub(crate) fn run(cmd: Command) -> Outcome {
    let Command::Merge(a) = cmd;
    let records = a
        .dirs
        .iter()
        .map(|d| Ok((d.display().to_string(), RunRecord::read(d)?)))
        .collect::<drill::Result<Vec<_>>>()?;
    let n = records.len();
    let merged = drill::report::run::merge(records)?;
    eprintln!(
        "drill: merged {n} report dirs: {} drills of {} scenarios",
        merged.reports.len(),
        merged.selected_from.len()
    );
    crate::drill::finish(&a.out, &a.gate, merged)
}
