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

/// A long restore's progress, for a person watching.
#[derive(Debug, Clone)]
pub struct RestoreProgress {
    /// The backup file's name.
    pub file: String,
    /// Bytes of it read, and its size.
    pub read: u64,
    pub total: u64,
    /// COPY rows sent so far.
    pub rows: u64,
    pub elapsed: std::time::Duration,
    /// When the reading should end, at this pace.
    pub eta: Option<std::time::Duration>,
    /// `schema`, `data`, `indexes and constraints`.
    pub phase: &'static str,
    /// The last report of this restore.
    pub finished: bool,
}

impl RestoreProgress {
    /// One line: `restore nexwave.sql.gz: 120.0 MiB of 1.1 GiB (11%), 40.1 MiB/s, 3.2M rows (1.1M rows/s), data, ETA 25s`.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let pct = if self.total > 0 {
            format!(" ({:.0}%)", 100.0 * self.read as f64 / self.total as f64)
        } else {
            String::new()
        };
        format!(
            "restore {}: {} of {}{pct}, {}/s, {} rows ({}/s), {}{}",
            self.file,
            crate::vocab::fmt_bytes(self.read),
            crate::vocab::fmt_bytes(self.total),
            crate::vocab::fmt_bytes((self.read as f64 / secs) as u64),
            count(self.rows),
            count((self.rows as f64 / secs) as u64),
            if self.finished { "done" } else { self.phase },
            self.eta
                .map(|e| format!(", ETA {}s", e.as_secs()))
                .unwrap_or_default()
        )
    }
}

/// `812`, `45.6k`, `3.2M`.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

type ProgressHook = Box<dyn Fn(&RestoreProgress) + Send + Sync>;

static PROGRESS: std::sync::OnceLock<ProgressHook> = std::sync::OnceLock::new();

/// Where long restores report their progress (the command line: a bar on
/// a terminal, plain lines otherwise). Unset: they report through tracing.
pub fn set_progress(hook: impl Fn(&RestoreProgress) + Send + Sync + 'static) {
    let _ = PROGRESS.set(Box::new(hook));
}

pub(crate) fn progress(p: &RestoreProgress) {
    match PROGRESS.get() {
        Some(hook) => hook(p),
        None => tracing::info!("{}", p.line()),
    }
}
