//! CPU seconds per process and per restore phase, sampled from `/proc`
//! while a restore runs: the bench's answer to "where do the two cores
//! go?". Every [`TICK`] a thread reads each process's CPU time (and this
//! process's threads but its own) and charges what each used since the
//! last read to the phase the restore was in, as the server's backends show
//! it in their process titles (`postgres: ... COPY`, `... CREATE INDEX`):
//! schema before the first `COPY`, data while any `COPY` runs, indexes and
//! constraints after. Both restores are watched the same way, so the split
//! is comparable; a process that exits between two reads loses at most one
//! tick of CPU.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the sampler reads `/proc`.
const TICK: Duration = Duration::from_millis(50);

/// A restore's phase, as the server shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Phase {
    /// Tables, types, functions: before the first `COPY`.
    Schema,
    /// Any `COPY` running.
    Data,
    /// `CREATE INDEX`, `ALTER TABLE ... ADD CONSTRAINT` after the data.
    Indexes,
}

impl Phase {
    pub(crate) const ALL: [Phase; 3] = [Phase::Schema, Phase::Data, Phase::Indexes];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Schema => "schema",
            Phase::Data => "data",
            Phase::Indexes => "indexes",
        }
    }
}

/// Whose CPU it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Who {
    /// This process's threads (drill's decompression, sanitizer, splitter).
    Drill,
    Gunzip,
    Psql,
    /// The server's processes (backends, checkpointer, WAL writer).
    Server,
}

impl Who {
    fn of(comm: &str) -> Option<Who> {
        match comm {
            "gunzip" | "gzip" => Some(Who::Gunzip),
            "psql" => Some(Who::Psql),
            "postgres" => Some(Who::Server),
            _ => None,
        }
    }
}

/// What one restore used: wall and CPU seconds per phase and process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Phases {
    pub(crate) wall: BTreeMap<Phase, f64>,
    pub(crate) cpu: BTreeMap<(Phase, Who), f64>,
}

impl Phases {
    pub(crate) fn cpu(&self, phase: Phase, who: Who) -> f64 {
        self.cpu.get(&(phase, who)).copied().unwrap_or(0.0)
    }

    pub(crate) fn wall(&self, phase: Phase) -> f64 {
        self.wall.get(&phase).copied().unwrap_or(0.0)
    }

    /// Every process's CPU seconds in `phase`.
    pub(crate) fn cpu_total(&self, phase: Phase) -> f64 {
        self.cpu
            .iter()
            .filter(|((p, _), _)| *p == phase)
            .map(|(_, s)| s)
            .sum()
    }
}

/// A running sampler; [`Sampler::stop`] returns what it saw.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Phases>,
}

impl Sampler {
    pub(crate) fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut w = Watch::new();
            let _ = ready_tx.send(());
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                w.sample();
            }
            w.sample();
            w.finish()
        });
        // The baseline is read before the restore starts.
        let _ = ready_rx.recv();
        Sampler { stop, thread }
    }

    pub(crate) fn stop(self) -> Phases {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The sampler's state.
struct Watch {
    /// CPU ticks last read, by pid (or this process's tid).
    seen: HashMap<u32, u64>,
    me_tid: u32,
    me_pid: u32,
    ticks_per_sec: f64,
    phase: Phase,
    phase_since: Instant,
    out: Phases,
}

impl Watch {
    fn new() -> Watch {
        let ticks_per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100.0, |t| t as f64);
        let mut w = Watch {
            seen: HashMap::new(),
            me_tid: nix::unistd::gettid().as_raw() as u32,
            me_pid: std::process::id(),
            ticks_per_sec,
            phase: Phase::Schema,
            phase_since: Instant::now(),
            out: Phases::default(),
        };
        // What every process used before the restore is not the restore's.
        for (id, _, ticks, _) in w.read() {
            w.seen.insert(id, ticks);
        }
        w
    }

    /// (id, who, CPU ticks so far, a backend's title) of every process
    /// that counts.
    fn read(&self) -> Vec<(u32, Who, u64, String)> {
        let mut all = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return all;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == self.me_pid {
                continue;
            }
            let Some((comm, ticks)) = stat(&format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(who) = Who::of(&comm) else { continue };
            let title = if who == Who::Server {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            all.push((pid, who, ticks, title));
        }
        // This process's threads, but the sampler's own. Thread ids share
        // the pid space, so they cannot clash with another process's pid.
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for e in tasks.flatten() {
                let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if tid == self.me_tid {
                    continue;
                }
                if let Some((_, ticks)) = stat(&format!("/proc/self/task/{tid}/stat")) {
                    all.push((tid, Who::Drill, ticks, String::new()));
                }
            }
        }
        all
    }

    /// Charges what each process used since the last read to the phase
    /// the restore was in then, and reads the phase now.
    fn sample(&mut self) {
        let mut copying = false;
        let mut indexing = false;
        for (id, who, ticks, title) in self.read() {
            let before = self.seen.insert(id, ticks).unwrap_or(0);
            let used = ticks.saturating_sub(before) as f64 / self.ticks_per_sec;
            if used > 0.0 {
                *self.out.cpu.entry((self.phase, who)).or_default() += used;
            }
            copying |= title.ends_with(" COPY") || title.contains(" COPY ");
            indexing |= title.contains("CREATE INDEX") || title.contains("ALTER TABLE");
        }
        let next = match self.phase {
            Phase::Schema if copying => Phase::Data,
            Phase::Data if indexing && !copying => Phase::Indexes,
            p => p,
        };
        if next != self.phase {
            self.close_phase();
            self.phase = next;
        }
    }

    fn close_phase(&mut self) {
        let now = Instant::now();
        *self.out.wall.entry(self.phase).or_default() +=
            now.duration_since(self.phase_since).as_secs_f64();
        self.phase_since = now;
    }

    fn finish(mut self) -> Phases {
        self.close_phase();
        self.out
    }
}

/// A `/proc/.../stat` file's command name and CPU ticks (user + system).
fn stat(path: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat(&text)
}

/// The command name sits in parentheses and may hold spaces and
/// parentheses itself: the fields after it start at the last `)`.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the name: state(3) ... utime(14) stime(15), counted from 1.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_strange_name_parses() {
        let line = "4242 (my (odd) psql) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 1 0 100 1000 10";
        assert_eq!(parse_stat(line), Some(("my (odd) psql".into(), 42)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn the_sampler_charges_a_busy_child_to_the_phase_it_ran_in() {
        let s = Sampler::start();
        // A child that burns CPU: gzip of zeros, named as gunzip counts.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("head -c 300000000 /dev/zero | gzip -1 > /dev/null")
            .status()
            .unwrap();
        assert!(out.success());
        let p = s.stop();
        // No server ran: the whole time is the schema phase.
        assert!(p.cpu(Phase::Schema, Who::Gunzip) > 0.2, "{p:?}");
        assert_eq!(p.cpu_total(Phase::Data), 0.0);
        assert!(p.wall(Phase::Schema) > 0.0);
    }
}
