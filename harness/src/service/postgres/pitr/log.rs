//! What a recovering server's own log says: which segments it restored,
//! where it stopped and why, whether it promoted. A recovery is judged by
//! these lines, not by `pg_ctl`'s exit status (which is 0 once read-only
//! connections are accepted, before a FATAL can end recovery) nor by the
//! server merely answering (with no target, recovery ends silently at the
//! first segment `restore_command` cannot fetch).

/// The facts of one recovery, read from the server's log since its last
/// start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecoveryLog {
    /// `starting point-in-time recovery to ...` (or `starting archive
    /// recovery`).
    pub(crate) started: Option<String>,
    /// Segments restored from the archive, in order.
    pub(crate) restored: Vec<String>,
    /// `recovery stopping before commit of transaction 745, time ...`: the
    /// target was reached.
    pub(crate) stopping: Option<String>,
    /// `last completed transaction was at log time ...`.
    pub(crate) last_completed: Option<String>,
    /// `redo starts at 0/2000028`: the LSN replay began at.
    pub(crate) redo_starts_at: Option<String>,
    /// `redo done at 0/3000148`: the LSN replay ended at.
    pub(crate) redo_done_at: Option<String>,
    /// Why replay found the end (`invalid record length at ...`, `invalid
    /// magic number ...`, a checksum failure).
    pub(crate) end_of_wal: Option<String>,
    /// `FATAL: recovery ended before configured recovery target was
    /// reached` and other FATAL/PANIC lines.
    pub(crate) fatal: Vec<String>,
    /// `selected new timeline ID: 2`.
    pub(crate) new_timeline: Option<u32>,
    /// `archive recovery complete` was logged.
    pub(crate) promoted: bool,
    /// What `restore_command` printed when it could not fetch a segment.
    pub(crate) fetch_failures: Vec<String>,
    /// Milliseconds from the first line to `redo done` and to the
    /// promotion, from the lines' own timestamps (`log_line_prefix`'s `%m`).
    pub(crate) replay_ms: Option<i64>,
    pub(crate) promote_ms: Option<i64>,
}

impl RecoveryLog {
    /// Reads the lines after the server's last `starting PostgreSQL`.
    pub(crate) fn parse(log: &str) -> RecoveryLog {
        let lines: Vec<&str> = log.lines().collect();
        let from = lines
            .iter()
            .rposition(|l| l.contains("starting PostgreSQL"))
            .unwrap_or(0);
        let mut r = RecoveryLog::default();
        let mut first_ms = None;
        let mut redo_ms = None;
        for line in &lines[from..] {
            let at = line_ms(line);
            if first_ms.is_none() {
                first_ms = at;
            }
            let msg = message(line);
            if let Some(rest) = msg.strip_prefix("starting point-in-time recovery to ") {
                r.started = Some(rest.to_string());
            } else if msg.starts_with("starting archive recovery") && r.started.is_none() {
                r.started = Some("the end of the archive (latest)".into());
            } else if let Some(rest) = msg.strip_prefix("restored log file \"") {
                if let Some(name) = rest.split('"').next() {
                    r.restored.push(name.to_string());
                }
            } else if msg.starts_with("recovery stopping ") {
                r.stopping = Some(msg.to_string());
            } else if let Some(rest) =
                msg.strip_prefix("last completed transaction was at log time ")
            {
                r.last_completed = Some(rest.to_string());
            } else if let Some(rest) = msg.strip_prefix("redo starts at ") {
                r.redo_starts_at = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(rest) = msg.strip_prefix("redo done at ") {
                r.redo_done_at = rest.split_whitespace().next().map(str::to_string);
                redo_ms = at;
            } else if msg.starts_with("invalid record length")
                || msg.starts_with("invalid magic number")
                || msg.starts_with("incorrect resource manager data checksum")
                || msg.starts_with("invalid resource manager ID")
                || msg.starts_with("record with incorrect prev-link")
                || msg.starts_with("unexpected pageaddr")
                || msg.starts_with("invalid contrecord length")
                || msg.starts_with("WAL file is from different database system")
            {
                r.end_of_wal = Some(msg.to_string());
            } else if let Some(rest) = msg.strip_prefix("selected new timeline ID: ") {
                r.new_timeline = rest.trim().parse().ok();
            } else if msg.starts_with("archive recovery complete") {
                r.promoted = true;
                if let (Some(done), Some(now)) = (redo_ms, at) {
                    r.promote_ms = Some(wrap(now - done));
                }
            } else if line.contains("FATAL:") || line.contains("PANIC:") {
                r.fatal.push(msg.to_string());
            } else if line.starts_with("cp: ")
                || line.contains("cannot stat")
                || (line.contains("archive-get") && line.contains("ERROR"))
            {
                r.fetch_failures.push(line.trim().to_string());
            }
        }
        if let (Some(first), Some(done)) = (first_ms, redo_ms) {
            r.replay_ms = Some(wrap(done - first));
        }
        r
    }

    /// PostgreSQL 13+ refused to promote: the target was never reached.
    pub(crate) fn target_missed(&self) -> Option<&str> {
        self.fatal
            .iter()
            .find(|f| f.contains("recovery ended before configured recovery target was reached"))
            .map(String::as_str)
    }

    /// Bytes of WAL replayed: from `redo starts at` to `redo done at`.
    /// None when either line is missing (no redo was needed, or replay
    /// never ended).
    pub(crate) fn replayed_bytes(&self) -> Option<u64> {
        let from = super::archive::lsn_pos(self.redo_starts_at.as_deref()?)?;
        let to = super::archive::lsn_pos(self.redo_done_at.as_deref()?)?;
        to.checked_sub(from)
    }

    /// The lines a person reads as evidence, in the log's order of things.
    pub(crate) fn evidence(&self) -> String {
        let mut out = Vec::new();
        if let Some(s) = &self.started {
            out.push(format!("starting point-in-time recovery to {s}"));
        }
        out.push(format!(
            "{} segments restored from the archive{}",
            self.restored.len(),
            match (self.restored.first(), self.restored.last()) {
                (Some(a), Some(b)) if a != b => format!(" ({a} .. {b})"),
                (Some(a), _) => format!(" ({a})"),
                _ => String::new(),
            }
        ));
        for l in [&self.stopping, &self.end_of_wal].into_iter().flatten() {
            out.push(l.clone());
        }
        if let Some(r) = &self.redo_done_at {
            out.push(format!("redo done at {r}"));
        }
        if let Some(t) = &self.last_completed {
            out.push(format!("last completed transaction was at log time {t}"));
        }
        if let Some(f) = self.fetch_failures.last() {
            out.push(format!("restore_command: {f}"));
        }
        out.extend(self.fatal.iter().cloned());
        out.join("\n")
    }
}

/// The message after `LOG:  ` / `FATAL:  `, or the whole line.
fn message(line: &str) -> &str {
    for tag in [
        "LOG:  ",
        "FATAL:  ",
        "PANIC:  ",
        "WARNING:  ",
        "ERROR:  ",
        "DETAIL:  ",
    ] {
        if let Some(i) = line.find(tag) {
            return line[i + tag.len()..].trim_end();
        }
    }
    line.trim_end()
}

/// Milliseconds of the day from a `%m` prefix (`2026-11-30 17:40:02.345 UTC`).
fn line_ms(line: &str) -> Option<i64> {
    let time = line.get(11..23)?;
    let (hms, ms) = time.split_once('.')?;
    let mut it = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (it.next()??, it.next()??, it.next()??);
    line.get(4..5).filter(|d| *d == "-")?;
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<i64>().ok()?)
}

/// A difference of milliseconds of the day across midnight.
fn wrap(d: i64) -> i64 {
    if d < 0 { d + 86_400_000 } else { d }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REACHED: &str = "\
2026-11-30 17:39:00.000 UTC [10] LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu
2026-11-30 17:40:00.000 UTC [10] LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu
2026-11-30 17:40:00.010 UTC [12] LOG:  starting point-in-time recovery to 2026-11-30 17:39:40.5+00
2026-11-30 17:40:00.050 UTC [12] LOG:  restored log file \"000000010000000000000002\" from archive
2026-11-30 17:40:00.100 UTC [12] LOG:  redo starts at 0/2000028
2026-11-30 17:40:00.150 UTC [12] LOG:  restored log file \"000000010000000000000003\" from archive
cp: cannot stat '/tmp/a/wal/000000010000000000000004': No such file or directory
2026-11-30 17:40:00.400 UTC [12] LOG:  recovery stopping before commit of transaction 745, time 2026-11-30 17:39:40.512+00
2026-11-30 17:40:00.400 UTC [12] LOG:  redo done at 0/3001F10 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.30 s
2026-11-30 17:40:00.401 UTC [12] LOG:  last completed transaction was at log time 2026-11-30 17:39:40.49+00
2026-11-30 17:40:00.450 UTC [12] LOG:  selected new timeline ID: 2
2026-11-30 17:40:00.600 UTC [12] LOG:  archive recovery complete
2026-11-30 17:40:00.700 UTC [10] LOG:  database system is ready to accept connections
";

    #[test]
    fn a_reached_target_is_read_from_the_log() {
        let r = RecoveryLog::parse(REACHED);
        assert_eq!(
            r.restored,
            ["000000010000000000000002", "000000010000000000000003"]
        );
        assert!(r.stopping.as_deref().unwrap().contains("transaction 745"));
        assert_eq!(r.redo_done_at.as_deref(), Some("0/3001F10"));
        assert_eq!(r.redo_starts_at.as_deref(), Some("0/2000028"));
        assert_eq!(r.replayed_bytes(), Some(0x3001F10 - 0x2000028));
        assert_eq!(r.new_timeline, Some(2));
        assert!(r.promoted);
        assert_eq!(r.target_missed(), None);
        assert_eq!(r.replay_ms, Some(400));
        assert_eq!(r.promote_ms, Some(200));
        assert_eq!(r.fetch_failures.len(), 1);
        assert!(r.evidence().contains("2 segments restored"));
    }

    #[test]
    fn a_missed_target_is_named() {
        let log = "\
2026-11-30 23:59:59.900 UTC [10] LOG:  starting PostgreSQL 15.18
2026-11-30 23:59:59.950 UTC [12] LOG:  starting point-in-time recovery to 2026-12-01 00:59:40+00
2026-12-01 00:00:00.100 UTC [12] LOG:  invalid record length at 0/3001F10: wanted 24, got 0
2026-12-01 00:00:00.100 UTC [12] LOG:  redo done at 0/3001ED8 system usage: CPU: user: 0.00 s
2026-12-01 00:00:00.100 UTC [12] FATAL:  recovery ended before configured recovery target was reached
2026-12-01 00:00:00.200 UTC [10] LOG:  startup process (PID 12) exited with exit code 1
";
        let r = RecoveryLog::parse(log);
        assert!(r.target_missed().is_some());
        assert!(!r.promoted);
        assert_eq!(r.replay_ms, Some(200), "across midnight");
        assert!(
            r.end_of_wal
                .as_deref()
                .unwrap()
                .starts_with("invalid record length")
        );
        assert!(r.evidence().contains("recovery ended before"));
    }
}
