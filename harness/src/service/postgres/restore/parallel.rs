//! `psql-restore` with `jobs = N`: a plain dump restored the way
//! `pg_restore -j` restores an archive. A plain dump is pre-data (the
//! schema), then COPY blocks, then post-data (indexes, constraints,
//! triggers). The schema goes to one psql; once it has run, the COPY
//! blocks are cut into chunks of a few MiB, each a `COPY ... FROM stdin`
//! of its own, and N psql processes take them as they come, while the
//! reading, decompression and the sanitizer stream on; the post-data runs
//! after the last chunk is in. Memory stays flat: at most 2N chunks are
//! held (N queued, N being written).
//!
//! What it keeps of psql's own order: nothing runs before the schema it
//! needs (a sync marker, `SELECT 'drill-sync-<token>'`, read back from each
//! psql's stdout, says a connection got that far); SQL between two COPY
//! blocks other than `setval` waits for every chunk before it; triggers
//! and constraints of post-data never see a row arrive. What differs: rows
//! of one table arrive over several connections, so a COPY that fails
//! loses its chunk rather than its whole table (the checks count rows),
//! and a dump whose structure the sanitizer loses goes on in one psql.
//!
//! Not for TimescaleDB targets: their restore runs between
//! `timescaledb_pre_restore()` and `_post_restore()` on one connection.

use std::io::{self, BufWriter, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;

use crate::sanitize::{LineKind, LineSink};

/// Rows per chunk, in bytes of COPY text.
pub(crate) const CHUNK: usize = 4 << 20;
/// SQL held between COPY blocks before it is run (in order) anyway.
const BETWEEN_LIMIT: usize = 16 << 20;

/// How far a psql (or all workers) got: sync markers seen, and whether its
/// stdout closed (it exited).
#[derive(Default)]
struct Reached {
    state: Mutex<(u64, bool)>,
    cv: Condvar,
}

impl Reached {
    fn mark(&self) {
        self.state.lock().expect("not poisoned").0 += 1;
        self.cv.notify_all();
    }

    fn close(&self) {
        self.state.lock().expect("not poisoned").1 = true;
        self.cv.notify_all();
    }

    /// Waits until `n` markers were seen; Err when a psql exited first.
    fn wait(&self, n: u64) -> io::Result<()> {
        let mut s = self.state.lock().expect("not poisoned");
        while s.0 < n {
            if s.1 {
                return Err(stopped());
            }
            s = self.cv.wait(s).expect("not poisoned");
        }
        Ok(())
    }

    fn closed(&self) -> bool {
        self.state.lock().expect("not poisoned").1
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "a psql of the restore stopped")
}

/// A started psql: its stdin, and the threads reading its stdout (sync
/// markers) and stderr (errors).
pub(crate) struct Psql {
    pub(crate) child: Child,
    stdin: Option<ChildStdin>,
    stdout: JoinHandle<()>,
    pub(crate) stderr: ErrorsOf,
}

/// Starts `cmd` (a psql with its connection) with piped stdio; its stdout's
/// lines equal to `marker` count on `reached`.
fn start(
    mut cmd: Command,
    marker: &str,
    reached: Arc<Reached>,
    errors: fn(Box<dyn io::Read + Send>) -> (u64, Vec<String>),
) -> io::Result<Psql> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let marker = marker.to_string();
    Ok(Psql {
        stdin: child.stdin.take(),
        child,
        stdout: std::thread::spawn(move || {
            crate::shell::each_line(stdout, |l| {
                if l == marker {
                    reached.mark();
                }
            });
            reached.close();
        }),
        stderr: std::thread::spawn(move || errors(Box::new(stderr))),
    })
}

/// A psql's `ERROR:` lines, counted and sampled by their reader thread.
pub(crate) type ErrorsOf = JoinHandle<(u64, Vec<String>)>;

/// The sink that splits the filtered dump over the connections.
pub(crate) struct Splitter<'a> {
    main: Psql,
    main_in: BufWriter<ChildStdin>,
    main_reached: Arc<Reached>,
    main_sent: u64,
    /// `SELECT 'drill-sync-<token>';` and the line psql prints for it.
    sync_sql: Vec<u8>,
    marker: String,
    /// Single-line session settings of the pre-data, replayed on each worker.
    session: Vec<u8>,
    state: State,
    /// SQL after a COPY block, held until the next block or the end.
    between: Vec<u8>,
    between_safe: bool,
    /// SQL went to the main psql while chunks may be in flight.
    main_dirty: bool,
    header: Vec<u8>,
    header_done: bool,
    chunk: Vec<u8>,
    jobs: usize,
    make: Box<dyn Fn() -> Command + 'a>,
    errors: fn(Box<dyn io::Read + Send>) -> (u64, Vec<String>),
    workers: Option<Workers>,
    /// Every psql's pid, for the timeout.
    pub(crate) pids: Arc<Mutex<Vec<u32>>>,
    /// Chunks sent to the workers.
    pub(crate) chunks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first COPY block: everything to the main psql.
    Schema,
    /// COPY blocks go to the workers.
    Data,
    /// The structure was lost: everything to the main psql, in order.
    OneConnection,
}

struct Workers {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
    psqls: Vec<Psql>,
    reached: Arc<Reached>,
    sent: u64,
}

impl<'a> Splitter<'a> {
    /// `make` gives a psql command with its connection (and flags); the
    /// main psql starts here, the workers at the first COPY block.
    pub(crate) fn new(
        jobs: usize,
        make: Box<dyn Fn() -> Command + 'a>,
        errors: fn(Box<dyn io::Read + Send>) -> (u64, Vec<String>),
    ) -> io::Result<Splitter<'a>> {
        let token = crate::backend::new_password();
        let marker = format!("drill-sync-{token}");
        let main_reached = Arc::new(Reached::default());
        let mut main = start(make(), &marker, main_reached.clone(), errors)?;
        let main_in = BufWriter::with_capacity(256 * 1024, main.stdin.take().expect("piped"));
        let pids = Arc::new(Mutex::new(vec![main.child.id()]));
        Ok(Splitter {
            main,
            main_in,
            main_reached,
            main_sent: 0,
            sync_sql: format!("SELECT '{marker}';\n").into_bytes(),
            marker,
            session: Vec::new(),
            state: State::Schema,
            between: Vec::new(),
            between_safe: true,
            main_dirty: false,
            header: Vec::new(),
            header_done: false,
            chunk: Vec::with_capacity(CHUNK + 64 * 1024),
            jobs,
            make,
            errors,
            workers: None,
            pids,
            chunks: 0,
        })
    }

    /// Waits until the main psql has run everything written to it.
    fn sync_main(&mut self) -> io::Result<()> {
        self.main_in.write_all(&self.sync_sql)?;
        self.main_in.flush()?;
        self.main_sent += 1;
        self.main_reached.wait(self.main_sent)?;
        self.main_dirty = false;
        Ok(())
    }

    /// Waits until every chunk sent is in.
    fn sync_workers(&mut self) -> io::Result<()> {
        match &self.workers {
            Some(w) => w.reached.wait(w.sent),
            None => Ok(()),
        }
    }

    fn start_workers(&mut self) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(self.jobs);
        let rx = Arc::new(Mutex::new(rx));
        let reached = Arc::new(Reached::default());
        let (mut threads, mut psqls) = (Vec::new(), Vec::new());
        for _ in 0..self.jobs {
            let mut p = start((self.make)(), &self.marker, reached.clone(), self.errors)?;
            self.pids.lock().expect("not poisoned").push(p.child.id());
            let stdin = p.stdin.take().expect("piped");
            let (rx, session) = (rx.clone(), self.session.clone());
            threads.push(std::thread::spawn(move || {
                let mut w = BufWriter::with_capacity(256 * 1024, stdin);
                if w.write_all(&session).is_err() {
                    return;
                }
                loop {
                    let next = rx.lock().expect("not poisoned").recv();
                    let Ok(chunk) = next else { return };
                    if w.write_all(&chunk).and_then(|()| w.flush()).is_err() {
                        // psql exited (ON_ERROR_STOP): its stdout closing
                        // tells the splitter.
                        return;
                    }
                }
            }));
            psqls.push(p);
        }
        self.workers = Some(Workers {
            tx: Some(tx),
            threads,
            psqls,
            reached,
            sent: 0,
        });
        Ok(())
    }

    /// The current chunk, closed with `end` and a sync marker, to a worker.
    fn dispatch(&mut self, end: &[u8]) -> io::Result<()> {
        let mut c = Vec::with_capacity(self.header.len() + self.chunk.len() + 64);
        c.extend_from_slice(&self.header);
        c.extend_from_slice(&self.chunk);
        c.extend_from_slice(end);
        c.extend_from_slice(&self.sync_sql);
        self.chunk.clear();
        let w = self.workers.as_mut().expect("started");
        if w.reached.closed() {
            return Err(stopped());
        }
        w.tx.as_ref()
            .expect("open")
            .send(c)
            .map_err(|_| stopped())?;
        w.sent += 1;
        self.chunks += 1;
        Ok(())
    }

    /// The SQL held since the last block goes to the main psql: at once when
    /// it is only `setval`s and comments, else after every chunk is in.
    fn run_between(&mut self) -> io::Result<()> {
        if self.between.is_empty() && !self.main_dirty {
            return Ok(());
        }
        if self.between_safe && !self.main_dirty {
            self.main_in.write_all(&self.between)?;
        } else {
            self.sync_workers()?;
            self.main_in.write_all(&self.between)?;
            self.sync_main()?;
        }
        self.between.clear();
        self.between_safe = true;
        Ok(())
    }

    /// The structure is lost: finish what is in flight, then one psql.
    fn one_connection(&mut self) -> io::Result<()> {
        self.sync_workers()?;
        self.main_in.write_all(&self.between)?;
        self.between.clear();
        self.main_in.write_all(&self.header)?;
        self.main_in.write_all(&self.chunk)?;
        self.header.clear();
        self.chunk.clear();
        self.state = State::OneConnection;
        Ok(())
    }

    /// Closes every psql's input and waits for them; the main psql's exit
    /// status first. Call after [`filter_lines`](crate::sanitize) returned.
    pub(crate) fn close(mut self) -> Vec<(Child, ErrorsOf)> {
        let mut out = Vec::new();
        if let Some(mut w) = self.workers.take() {
            w.tx = None;
            for t in w.threads {
                let _ = t.join();
            }
            for p in w.psqls {
                let _ = p.stdout.join();
                out.push((p.child, p.stderr));
            }
        }
        let _ = self.main_in.flush();
        drop(self.main_in);
        let _ = self.main.stdout.join();
        out.insert(0, (self.main.child, self.main.stderr));
        out
    }
}

impl Splitter<'_> {
    /// The post-data, as `pg_restore -j` runs it: the index builds
    /// (`CREATE INDEX`, and primary keys and unique constraints, which
    /// build theirs) over every connection at once, each after the `SET`s
    /// before it; then everything else (foreign keys, triggers, comments,
    /// `ATTACH PARTITION` ...) in order on the main psql, once every index
    /// is there.
    fn post_data(&mut self) -> io::Result<()> {
        let post = std::mem::take(&mut self.between);
        let (mut sets, mut rest) = (Vec::new(), Vec::new());
        let mut builds = Vec::new();
        for st in crate::sanitize::statements(&post) {
            let body = statement_body(st);
            if body.starts_with(b"SET ") {
                sets.extend_from_slice(st);
                rest.extend_from_slice(st);
            } else if builds_an_index(body) {
                let mut c = sets.clone();
                c.extend_from_slice(st);
                c.extend_from_slice(&self.sync_sql);
                builds.push(c);
            } else {
                rest.extend_from_slice(st);
            }
        }
        if let Some(w) = self.workers.as_mut() {
            for c in builds {
                if w.reached.closed() {
                    return Err(stopped());
                }
                w.tx.as_ref()
                    .expect("open")
                    .send(c)
                    .map_err(|_| stopped())?;
                w.sent += 1;
            }
        }
        self.sync_workers()?;
        self.main_in.write_all(&rest)
    }
}

/// A statement without the comment and blank lines before it.
fn statement_body(st: &[u8]) -> &[u8] {
    let mut rest = st;
    loop {
        let t = rest.trim_ascii_start();
        if t.starts_with(b"--") {
            match t.iter().position(|&c| c == b'\n') {
                Some(i) => rest = &t[i + 1..],
                None => return b"",
            }
        } else {
            return t;
        }
    }
}

/// pg_dump's one-statement index builds: `CREATE [UNIQUE] INDEX ...;` on
/// one line, or `ALTER TABLE ONLY t` + `ADD CONSTRAINT c PRIMARY KEY|UNIQUE
/// (...);` on the next. Anything else (or longer) is not taken apart.
fn builds_an_index(body: &[u8]) -> bool {
    let lines: Vec<&[u8]> = body.trim_ascii_end().split(|&c| c == b'\n').collect();
    match lines[..] {
        [one] => {
            (one.starts_with(b"CREATE INDEX ") || one.starts_with(b"CREATE UNIQUE INDEX "))
                && one.ends_with(b";")
        }
        [alter, add] => {
            let add = add.trim_ascii();
            alter.starts_with(b"ALTER TABLE ONLY ")
                && add.starts_with(b"ADD CONSTRAINT ")
                && add.ends_with(b";")
                && (contains(add, b" PRIMARY KEY (") || contains(add, b" UNIQUE ("))
                && !contains(add, b" FOREIGN KEY ")
        }
        _ => false,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A line between COPY blocks that may run while chunks are in flight.
fn harmless(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    t.is_empty() || t.starts_with(b"--") || t.starts_with(b"SELECT pg_catalog.setval(")
}

/// A one-line session setting of pg_dump's header.
fn session_setting(line: &[u8]) -> bool {
    let t = line.trim_ascii_end();
    (t.starts_with(b"SET ") || t.starts_with(b"SELECT pg_catalog.set_config(")) && t.ends_with(b";")
        || t.starts_with(b"\\restrict ")
}

impl LineSink for Splitter<'_> {
    fn line(&mut self, kind: LineKind, raw: &[u8]) -> io::Result<()> {
        if kind == LineKind::Unknown && self.state == State::Data {
            self.one_connection()?;
        }
        match (self.state, kind) {
            (State::OneConnection, _) | (State::Schema, LineKind::Sql | LineKind::Unknown) => {
                if self.state == State::Schema && session_setting(raw) {
                    self.session.extend_from_slice(raw);
                }
                self.main_in.write_all(raw)
            }
            (State::Schema, LineKind::CopyHeader) => {
                // The schema runs before any row is sent.
                self.sync_main()?;
                self.start_workers()?;
                self.state = State::Data;
                self.header = raw.to_vec();
                self.header_done = false;
                Ok(())
            }
            (State::Data, LineKind::Sql) => {
                self.between_safe &= harmless(raw);
                self.between.extend_from_slice(raw);
                if self.between.len() > BETWEEN_LIMIT {
                    self.sync_workers()?;
                    self.main_in.write_all(&self.between)?;
                    self.between.clear();
                    self.main_dirty = true;
                }
                Ok(())
            }
            (State::Data, LineKind::CopyHeader) => {
                if !self.header_done && !self.header.is_empty() {
                    // A header over several lines.
                    self.header.extend_from_slice(raw);
                    return Ok(());
                }
                self.run_between()?;
                self.header = raw.to_vec();
                self.header_done = false;
                Ok(())
            }
            (State::Data, LineKind::CopyRow) => {
                self.header_done = true;
                self.chunk.extend_from_slice(raw);
                if self.chunk.len() >= CHUNK {
                    self.dispatch(b"\\.\n")?;
                }
                Ok(())
            }
            (State::Data, LineKind::CopyEnd) => {
                if !self.chunk.is_empty() {
                    self.dispatch(raw)?;
                }
                self.header.clear();
                self.header_done = false;
                Ok(())
            }
            (State::Schema, LineKind::CopyRow | LineKind::CopyEnd)
            | (State::Data, LineKind::Unknown) => {
                unreachable!("the sanitizer gives rows only after a header, Unknown handled above")
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.state == State::Data {
            // Post-data after the last row is in.
            self.sync_workers()?;
            if self.main_dirty {
                // Part of it already ran in order: the rest the same way.
                self.run_between()?;
            } else {
                self.post_data()?;
            }
        }
        self.main_in.flush()
    }
}
