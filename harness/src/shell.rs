//! The user's own commands as steps: a backup script, a restore runbook.
//! A command runs under `bash -c` in the working directory the scenario
//! names, with the disposable servers' coordinates in the variables tools
//! already read (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
//! DATABASE_URL) plus DRILL_BACKUP_FILE / DRILL_BACKUP_DIR where they exist.
//! stdout and stderr are merged into one log file (kept in the run's work
//! dir) and the tail goes into the timeline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

const TAIL_LINES: usize = 20;

/// What a command did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShellOutcome {
    pub command: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The last lines of its merged output.
    pub output_tail: String,
    /// The whole output.
    pub log: PathBuf,
    #[serde(with = "crate::vocab::millis")]
    pub took: Duration,
}

impl ShellOutcome {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Runs `script` with `bash -c` in `workdir` with `env` added; kills it (and
/// its process group) after `timeout`.
pub(crate) fn run(
    script: &str,
    workdir: &Path,
    env: &[(String, String)],
    timeout: Option<Duration>,
    log: &Path,
    scrub: &[&str],
) -> Result<ShellOutcome> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let (reader, writer) = std::io::pipe().map_err(Error::io("create a pipe for", workdir))?;
    let mut cmd = Command::new("bash");
    crate::backend::scrub_env(&mut cmd, scrub);
    cmd.args(["-c", script])
        .current_dir(workdir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(
            writer
                .try_clone()
                .map_err(Error::io("create a pipe for", workdir))?,
        )
        .stderr(writer)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: script.to_string(),
        source,
    })?;
    drop(cmd);
    let log_path = log.to_owned();
    let collector = std::thread::spawn(move || -> std::io::Result<Vec<String>> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&log_path)?);
        let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
        let mut failed = None;
        each_line(reader, |line| {
            if let Err(e) = writeln!(file, "{line}") {
                failed.get_or_insert(e);
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        });
        match failed {
            Some(e) => Err(e),
            None => file.flush().map(|()| tail.into()),
        }
    });
    let deadline = timeout.map(|t| started + t);
    let mut timed_out = false;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|source| Error::Spawn {
            command: script.to_string(),
            source,
        })? {
            break Some(s);
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the step left running in the background (a daemon, a stray
    // `sleep &`) ends with it: it would hold the output pipe open and outlive
    // the drill.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let tail = collector
        .join()
        .map_err(|_| Error::unexpected("run a step", "the output thread panicked"))?
        .map_err(Error::io("write", log))?;
    Ok(ShellOutcome {
        command: script.to_string(),
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        output_tail: tail.join("\n"),
        log: log.to_owned(),
        took: started.elapsed(),
    })
}

/// What a time-limited command did.
#[derive(Debug)]
pub(crate) struct Limited {
    pub(crate) output: std::process::Output,
    /// It ran past its limit and was killed (with every process it started).
    pub(crate) timed_out: bool,
}

/// Runs `cmd` with `input` on its stdin until it exits or `limit` passes;
/// then its process group is killed. stdout and stderr are collected.
pub(crate) fn output_within(cmd: &mut Command, input: &[u8], limit: Duration) -> Result<Limited> {
    use std::os::unix::process::CommandExt;
    let what = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::spawn(what.clone()))?;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut stdin = child.stdin.take().expect("piped");
    let text = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&text));
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut o);
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut e);
        e
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(Error::spawn(what.clone()))? {
            break s;
        }
        if Instant::now() > deadline {
            tracing::debug!(program = %what, limit_ms = limit.as_millis() as u64, "over its time limit: killing its process group");
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            timed_out = true;
            break child.wait().map_err(Error::spawn(what.clone()))?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    Ok(Limited {
        output: std::process::Output {
            status,
            stdout: reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
        },
        timed_out,
    })
}

/// Kills a process that runs past its time limit, for a caller that
/// streams its output itself (a dump piped into gzip).
pub(crate) struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    /// SIGKILL to `pid` once `limit` has passed, unless [`Watchdog::disarm`]
    /// comes first.
    pub(crate) fn arm(pid: u32, limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = fired.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
        Watchdog {
            done: Some(tx),
            fired,
        }
    }

    /// Stops watching; whether it had killed the process.
    pub(crate) fn disarm(mut self) -> bool {
        drop(self.done.take());
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Calls `f` with every line of `r` (lossily decoded, without the line
/// end), reading to the end even past bytes that are not UTF-8.
pub(crate) fn each_line(r: impl std::io::Read, mut f: impl FnMut(&str)) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                f(&String::from_utf8_lossy(
                    line.strip_suffix(b"\r").unwrap_or(line),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRUB: &[&str] = &["PG*", "DATABASE_URL"];

    /// The watchdog behind the `pg-dump` step's timeout: a process past
    /// its limit is killed and the caller told; one that ends in time is
    /// left alone.
    #[test]
    fn the_watchdog_kills_only_what_overruns() {
        let mut slow = Command::new("sleep").arg("10").spawn().unwrap();
        let dog = Watchdog::arm(slow.id(), Duration::from_millis(100));
        let started = Instant::now();
        let status = slow.wait().unwrap();
        assert!(dog.disarm(), "it fired");
        assert!(!status.success() && started.elapsed() < Duration::from_secs(5));
        let mut quick = Command::new("true").spawn().unwrap();
        let dog = Watchdog::arm(quick.id(), Duration::from_secs(5));
        assert!(quick.wait().unwrap().success());
        assert!(!dog.disarm(), "it did not fire");
    }

    #[test]
    fn captures_exit_env_and_output_and_kills_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![("PGHOST".to_string(), "127.0.0.1".to_string())];
        let out = run(
            "echo to-stdout; echo to-stderr >&2; echo host=$PGHOST; pwd; exit 3",
            dir.path(),
            &env,
            None,
            &dir.path().join("a.log"),
            SCRUB,
        )
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.ok());
        assert!(
            out.output_tail.contains("to-stdout") && out.output_tail.contains("to-stderr"),
            "{}",
            out.output_tail
        );
        assert!(out.output_tail.contains("host=127.0.0.1"));
        assert!(out.output_tail.contains(&*dir.path().to_string_lossy()));
        let slow = run(
            "sleep 30 & sleep 30",
            dir.path(),
            &[],
            Some(Duration::from_millis(300)),
            &dir.path().join("b.log"),
            SCRUB,
        )
        .unwrap();
        assert!(
            slow.timed_out && slow.took < Duration::from_secs(5),
            "{slow:?}"
        );
        // A background process does not outlive its step nor hold it up.
        let t = Instant::now();
        let bg = run(
            "sleep 4 & echo started",
            dir.path(),
            &[],
            Some(Duration::from_millis(500)),
            &dir.path().join("c.log"),
            SCRUB,
        )
        .unwrap();
        assert!(bg.ok() && t.elapsed() < Duration::from_secs(2), "{bg:?}");
        // Inherited libpq variables never reach a step.
        // SAFETY: test-only, single-threaded use of the environment.
        unsafe { std::env::set_var("PGSERVICE", "prod") };
        let env = run(
            "echo service=${PGSERVICE:-none}",
            dir.path(),
            &[],
            None,
            &dir.path().join("d.log"),
            SCRUB,
        )
        .unwrap();
        unsafe { std::env::remove_var("PGSERVICE") };
        assert!(
            env.output_tail.contains("service=none"),
            "{}",
            env.output_tail
        );
    }
}
