//! `drill init [--from-compose FILE] [--dir scenarios]`: starter scenarios
//! for a repository that has none. With a compose file, one scenario per
//! database service drill recognises in it (the volume wiped, the engine's
//! own backup restored), importing the service from that file; without
//! one, a PostgreSQL volume wipe. A README says how to run them. Every file
//! is validated before the command says it is done, and nothing is
//! overwritten without `--force`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use drill::ServiceKind;

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A docker-compose file whose PostgreSQL, Redis and ClickHouse
    /// services the scenarios drill.
    #[arg(long)]
    from_compose: Option<PathBuf>,
    /// Where the scenarios go.
    #[arg(long, default_value = "scenarios")]
    dir: PathBuf,
    /// Replace files that are already there.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args) -> Outcome {
    let files = plan(&args)?;
    for (path, _) in &files {
        if path.exists() && !args.force {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{} exists; drill init does not overwrite (use --force, or --dir for another folder)",
                path.display()
            )));
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("create {}", args.dir.display()))
        .map_err(Failure::BadInput)?;
    for (path, text) in &files {
        std::fs::write(path, text)
            .with_context(|| format!("write {}", path.display()))
            .map_err(Failure::BadInput)?;
    }
    for (path, _) in files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "toml"))
    {
        // A starter that does not load is drill's bug, not the user's.
        drill::scenario::load_file(path).map_err(|e| {
            Failure::Harness(anyhow::anyhow!(
                "drill init wrote a scenario that does not load: {e}"
            ))
        })?;
        println!("wrote {} (validated)", path.display());
    }
    println!(
        "run them with: drill run --scenarios-dir {}",
        args.dir.display()
    );
    Ok(())
}

/// (path, text) of every file to write.
fn plan(args: &Args) -> Result<Vec<(PathBuf, String)>, Failure> {
    let mut files = Vec::new();
    let kinds: Vec<(ServiceKind, Option<(String, String)>)> = match &args.from_compose {
        None => vec![(ServiceKind::Postgres, None)],
        Some(compose) => {
            let shell: BTreeMap<String, String> = std::env::vars().collect();
            let imported = drill::compose::import(compose, &BTreeMap::new(), &shell)
                .map_err(|e| Failure::bad_input(anyhow::Error::from(e)))?;
            let rel = relative(compose, &args.dir)
                .map_err(Failure::BadInput)?
                .display()
                .to_string();
            imported
                .services
                .iter()
                .map(|s| (s.kind, Some((rel.clone(), s.service.clone()))))
                .collect()
        }
    };
    for (kind, compose) in &kinds {
        let name = format!("{kind}-volume-wipe.toml");
        files.push((args.dir.join(name), scenario(*kind, compose.as_ref())));
    }
    files.push((args.dir.join("README.md"), readme(&kinds, &args.dir)));
    Ok(files)
}

/// `target` as a path from `from` (a folder), for a scenario's
/// `from-compose` (which is relative to the scenario file).
fn relative(target: &Path, from: &Path) -> anyhow::Result<PathBuf> {
    let abs = |p: &Path| -> anyhow::Result<PathBuf> {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()?.join(p)
        };
        // Normalise `.` and `..` without touching the disk (the folder may
        // not exist yet).
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                c => out.push(c),
            }
        }
        Ok(out)
    };
    let (t, f) = (abs(target)?, abs(from)?);
    let common = t
        .components()
        .zip(f.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in f.components().skip(common) {
        rel.push("..");
    }
    for c in t.components().skip(common) {
        rel.push(c);
    }
    Ok(rel)
}

fn scenario(kind: ServiceKind, compose: Option<&(String, String)>) -> String {
    let mut s = String::new();
    let (what, backup, step, expect) = match kind {
        ServiceKind::Postgres => (
            "PostgreSQL's data volume is lost; last night's pg_dump (.sql.gz) is restored with psql",
            "[backup]                 # how you back up: pg_dump, gzip (or method = \"shell\" with your script)\nmethod = \"pg-dump\"\ncompress = \"gzip\"\n",
            "{ step = \"psql-restore\", on-error-stop = true }",
            "",
        ),
        ServiceKind::Redis => (
            "Redis's volume is lost; the RDB snapshot copied off the server is put back",
            "[backup.redis]           # dump.rdb copied off the server after SAVE\nmethod = \"rdb-copy\"\n",
            "{ step = \"redis-restore-rdb\" }",
            "\n[expect.redis]\nkeys = \"same-as-before\"\n",
        ),
        ServiceKind::ClickHouse => (
            "ClickHouse's volume is lost; its backup (BACKUP, or FREEZE on old servers) is restored",
            "[backup.clickhouse]\nmethod = \"auto\"\n",
            "{ step = \"clickhouse-restore\" }",
            "\n[expect.clickhouse]\ntables = \"same-as-before\"\n",
        ),
    };
    let _ = writeln!(
        s,
        "# Written by `drill init`: {what}.\n# Edit the backup to match how you take yours, the RTO to your target,\n# and add [[recovery]] blocks that run your own runbook (step = \"shell\").\n# Every key is in drill's scenarios/README.md."
    );
    let _ = writeln!(s, "description = \"{kind}: {what}\"\n");
    match compose {
        Some((file, service)) => {
            let _ = writeln!(
                s,
                "[services]\n# The image, environment, settings and config files come from here;\n# drill owns ports, volumes and passwords (the report lists both).\nfrom-compose = \"{file}\"\ncompose-services = {{ {kind} = \"{service}\" }}\n"
            );
        }
        None => {
            let _ = writeln!(
                s,
                "[services.{kind}]\n# image = \"timescale/timescaledb:2.17.2-pg16\"   # your production image\n"
            );
        }
    }
    let _ = writeln!(
        s,
        "[fixture]\nticks = 10000            # rows of seeded market data\n"
    );
    let _ = writeln!(s, "{backup}");
    let _ = writeln!(
        s,
        "[fault]\naction = \"wipe\"          # the volume is destroyed; the server comes back empty\nservice = \"{kind}\"\n"
    );
    let _ = writeln!(
        s,
        "[[recovery]]\nname = \"restore-backup\"\nsteps = [\n  {step},\n]\n"
    );
    let _ = write!(
        s,
        "[expect]\nrto = \"15 min\"           # your recovery time objective\n{expect}"
    );
    s
}

fn readme(kinds: &[(ServiceKind, Option<(String, String)>)], dir: &Path) -> String {
    let mut s = String::from(
        "# Restore drills\n\nEach `.toml` here is a drill: disposable servers, a fixture, your backup, an\nincident, your recovery, and the checks (rows, schema, keys, RTO). Written by\n`drill init`; edit them to match how you back up and restore.\n\n",
    );
    s.push_str("| scenario | drills |\n|---|---|\n");
    for (k, c) in kinds {
        let from = c
            .as_ref()
            .map(|(f, svc)| format!(" (`{svc}` in `{f}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| `{k}-volume-wipe` | {k}{from}: volume lost, backup restored |"
        );
    }
    let d = dir.display();
    let _ = write!(
        s,
        "\nRun them (Docker when an engine answers, else local servers):\n\n```sh\ndrill run --scenarios-dir {d}            # all\ndrill run --scenarios-dir {d} --keep     # leave the servers up to look at\ndrill clean                              # remove what --keep or a killed run left\n```\n\nReports land in `target/drill` (report.json, junit.xml, summary.md).\n"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_go_up_from_the_scenario_folder() {
        assert_eq!(
            relative(
                Path::new("/repo/deploy/docker-compose.yml"),
                Path::new("/repo/scenarios")
            )
            .unwrap(),
            PathBuf::from("../deploy/docker-compose.yml")
        );
        assert_eq!(
            relative(
                Path::new("/repo/docker-compose.yml"),
                Path::new("/repo/ops/drills/")
            )
            .unwrap(),
            PathBuf::from("../../docker-compose.yml")
        );
    }
}
