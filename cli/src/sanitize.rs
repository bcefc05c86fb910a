//! `cargo xtask sanitize`: drill's pg_dump stderr sanitizer as a filter,
//! for a person's own restore pipeline:
//! `gunzip -c backup.sql.gz | cargo xtask sanitize | psql`.
//! What it removed (and anything it kept as possible data) goes to stderr.

use std::io::{BufReader, BufWriter};

use crate::{Failure, Outcome};

pub(crate) fn run() -> Outcome {
    let stdin = BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
    let stdout = BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    match drill::sanitize(stdin, stdout) {
        Ok(r) => {
            eprintln!(
                "drill sanitize: removed {} of {} lines ({} bytes in, {} out)",
                r.removed, r.lines_in, r.bytes_in, r.bytes_out
            );
            for (n, l) in &r.kept_suspicious {
                eprintln!("  kept line {n} (could be data): {l}");
            }
            if let Some((n, why)) = &r.gave_up {
                eprintln!("  warning: at line {n} it {why}");
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Harness(e.into())),
    }
}
