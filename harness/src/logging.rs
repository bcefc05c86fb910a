//! Diagnostics for following a run: with `DRILL_LOG` (or `RUST_LOG`) set to
//! a filter such as `debug` or `drill=debug`, every server start and stop,
//! Docker call, retry, reap and step command is logged to stderr and to
//! `drill.log` in the report dir. Off (and free) when neither is set.

use std::path::{Path, PathBuf};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The variable that turns logging on (`RUST_LOG` works too).
pub const ENV: &str = "DRILL_LOG";

/// Starts logging when `DRILL_LOG` or `RUST_LOG` asks for it; returns the
/// log file written in `report_dir`. Call once, early.
pub fn init(report_dir: Option<&Path>) -> Option<PathBuf> {
    let filter = std::env::var(ENV)
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|f| !f.trim().is_empty())?;
    let filter = match EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("drill: {ENV}={filter} is not a log filter ({e}); logging stays off");
            return None;
        }
    };
    let file = report_dir.and_then(|dir| {
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join("drill.log");
        std::fs::File::create(&path).ok().map(|f| (path, f))
    });
    let (path, writer) = match file {
        Some((p, f)) => (Some(p), Some(std::sync::Mutex::new(f))),
        None => (None, None),
    };
    let to_file = writer.map(|w| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(w)
    });
    let to_stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(to_stderr)
        .with(to_file)
        .try_init();
    installed.ok().and(path)
}
