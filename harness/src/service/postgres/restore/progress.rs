//! Progress of a long restore: how much of the backup file has been read
//! (of its size on disk, so the fraction and the ETA hold for a gzipped
//! file too), bytes and rows per second, and the phase (schema, data,
//! post-data). A restore that ends within [`QUIET`] says nothing; a longer
//! one reports every [`EVERY`] through the hook the command line installs
//! ([`crate::logging::set_progress`]): a bar on a terminal, plain lines in
//! a CI log.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::logging::RestoreProgress;

/// Nothing is said about a restore shorter than this.
pub(crate) const QUIET: Duration = Duration::from_secs(2);
/// How often a longer one reports.
pub(crate) const EVERY: Duration = Duration::from_secs(2);

/// The counters a restore updates and its reporter reads.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub(crate) read: AtomicU64,
    pub(crate) rows: AtomicU64,
    /// 0 schema, 1 data, 2 post-data.
    pub(crate) phase: AtomicU8,
    done: AtomicBool,
}

impl Meter {
    pub(crate) fn row(&self) {
        self.rows.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn phase(&self, p: u8) {
        self.phase.store(p, Ordering::Relaxed);
    }
}

/// Counts the bytes read from the file (before decompression).
pub(crate) struct Counting<R> {
    inner: R,
    meter: Arc<Meter>,
}

impl<R> Counting<R> {
    pub(crate) fn new(inner: R, meter: Arc<Meter>) -> Counting<R> {
        Counting { inner, meter }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The reporter: a thread that reports while the restore runs; stopped
/// (with a last report, when it said anything) on drop.
pub(crate) struct Reporter {
    meter: Arc<Meter>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    pub(crate) fn start(path: &Path, meter: Arc<Meter>) -> Reporter {
        let total = std::fs::metadata(path).map_or(0, |m| m.len());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let m = meter.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut said = false;
            loop {
                let wait = if said { EVERY } else { QUIET };
                let until = Instant::now() + wait;
                while Instant::now() < until {
                    if m.done.load(Ordering::Relaxed) {
                        if said {
                            report(&name, total, &m, started, true);
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                said = true;
                report(&name, total, &m, started, false);
            }
        });
        Reporter {
            meter,
            thread: Some(thread),
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.meter.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn report(name: &str, total: u64, m: &Meter, started: Instant, finished: bool) {
    let elapsed = started.elapsed();
    let read = m.read.load(Ordering::Relaxed);
    let fraction = if total > 0 {
        (read as f64 / total as f64).min(1.0)
    } else {
        0.0
    };
    // The file is read at the pace of the restore; the post-data runs
    // after it, so the ETA is of the reading.
    let eta = (fraction > 0.02 && fraction < 1.0 && !finished)
        .then(|| Duration::from_secs_f64(elapsed.as_secs_f64() * (1.0 - fraction) / fraction));
    crate::logging::progress(&RestoreProgress {
        file: name.to_string(),
        read,
        total,
        rows: m.rows.load(Ordering::Relaxed),
        elapsed,
        eta,
        phase: match m.phase.load(Ordering::Relaxed) {
            0 => "schema",
            1 => "data",
            _ => "indexes and constraints",
        },
        finished,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<RestoreProgress>> = Mutex::new(Vec::new());

    fn seen(file: &str) -> Vec<RestoreProgress> {
        SEEN.lock()
            .unwrap()
            .iter()
            .filter(|p| p.file == file)
            .cloned()
            .collect()
    }

    #[test]
    fn a_long_restore_reports_and_a_short_one_stays_quiet() {
        crate::logging::set_progress(|p: &RestoreProgress| SEEN.lock().unwrap().push(p.clone()));
        let dir = tempfile::tempdir().unwrap();
        let (long, short) = (
            dir.path().join("long.sql.gz"),
            dir.path().join("short.sql.gz"),
        );
        std::fs::write(&long, vec![0u8; 1000]).unwrap();
        std::fs::write(&short, vec![0u8; 10]).unwrap();

        let meter = Arc::new(Meter::default());
        let reporter = Reporter::start(&short, meter.clone());
        drop(reporter);
        assert!(
            seen("short.sql.gz").is_empty(),
            "under {QUIET:?}: nothing said"
        );

        let meter = Arc::new(Meter::default());
        let reporter = Reporter::start(&long, meter.clone());
        let mut file = Counting::new(std::fs::File::open(&long).unwrap(), meter.clone());
        let mut buf = [0u8; 100];
        meter.phase(1);
        let started = Instant::now();
        while started.elapsed() < QUIET + Duration::from_millis(300) {
            if file.read(&mut buf).unwrap() > 0 {
                meter.row();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(reporter);
        let said = seen("long.sql.gz");
        assert!(
            said.len() >= 2,
            "a report while it ran and a last one: {said:?}"
        );
        let running = &said[0];
        assert_eq!((running.total, running.phase), (1000, "data"));
        assert!(
            !running.finished && running.read > 0 && running.rows > 0,
            "{running:?}"
        );
        let last = said.last().unwrap();
        assert!(
            last.finished && last.read == 1000 && last.rows == 10,
            "{last:?}"
        );
        assert!(
            last.line().contains("1000 B of 1000 B (100%)"),
            "{}",
            last.line()
        );
    }
}
