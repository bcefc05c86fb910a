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
    /// Bytes of rows per chunk ([`CHUNK`]; smaller in tests).
    pub(crate) chunk_bytes: usize,
    jobs: usize,
    make: Box<dyn Fn() -> Command + 'a>,
    errors: fn(Box<dyn io::Read + Send>) -> (u64, Vec<String>),
    workers: Option<Workers>,
    /// Every psql's pid, for the timeout.
    pub(crate) pids: Arc<Mutex<Vec<u32>>>,
    /// Chunks sent to the workers.
    pub(crate) chunks: u64,
    /// Rows and phase, for the progress report.
    pub(crate) meter: Option<Arc<super::progress::Meter>>,
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
            chunk_bytes: CHUNK,
            jobs,
            make,
            errors,
            workers: None,
            pids,
            chunks: 0,
            meter: None,
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
        self.send(c)?;
        self.chunks += 1;
        Ok(())
    }

    /// `work` (ending with a sync marker) to the next free worker.
    fn send(&mut self, work: Vec<u8>) -> io::Result<()> {
        let w = self.workers.as_mut().expect("started");
        if w.reached.closed() {
            return Err(stopped());
        }
        w.tx.as_ref()
            .expect("open")
            .send(work)
            .map_err(|_| stopped())?;
        w.sent += 1;
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
        for c in builds {
            self.send(c)?;
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
                if let Some(m) = &self.meter {
                    m.phase(1);
                }
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
                if let Some(m) = &self.meter {
                    m.row();
                }
                self.header_done = true;
                self.chunk.extend_from_slice(raw);
                if self.chunk.len() >= self.chunk_bytes {
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
            if let Some(m) = &self.meter {
                m.phase(2);
            }
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

#[cfg(test)]
mod tests {
    //! The splitter against stand-in connections: each "psql" is `sh`
    //! appending what it is sent to a file of its own and answering the
    //! sync markers, so what each connection received can be read back.
    //! Whatever the dump, nothing is lost or doubled: every row of every
    //! table arrives exactly once inside a well-formed COPY of that table,
    //! and every statement exactly once, the schema before any row and the
    //! post-data's foreign keys after every index.

    use super::*;
    use crate::sanitize::{FilterOptions, filter_lines};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const FAKE_PSQL: &str = r#"tee -a "$OUT/$$.sql" | grep --line-buffered -o "^SELECT 'drill-sync-[A-Za-z0-9]*';$" | sed -u "s/^SELECT '\(.*\)';$/\1/""#;

    fn no_errors(r: Box<dyn io::Read + Send>) -> (u64, Vec<String>) {
        let _ = io::copy(&mut { r }, &mut io::sink());
        (0, Vec::new())
    }

    /// A dump: schema, `tables` COPY blocks with their rows, setvals
    /// between, then post-data (indexes, a primary key, a foreign key).
    fn dump(tables: &[Vec<String>]) -> String {
        let mut d = String::from(
            "SET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\n",
        );
        for (i, _) in tables.iter().enumerate() {
            d += &format!("CREATE TABLE public.t{i} (\n    a text,\n    b text\n);\n\n");
        }
        d += "CREATE FUNCTION public.f() RETURNS text\n    LANGUAGE sql\n    AS $$SELECT 'x;\n';$$;\n";
        for (i, rows) in tables.iter().enumerate() {
            d += &format!(
                "\n--\n-- Data for Name: t{i}\n--\n\nCOPY public.t{i} (a, b) FROM stdin;\n"
            );
            for r in rows {
                d += r;
                d += "\n";
            }
            d += "\\.\n\n";
            d += &format!("SELECT pg_catalog.setval('public.s{i}', 3, true);\n");
        }
        for (i, _) in tables.iter().enumerate() {
            d += &format!(
                "ALTER TABLE ONLY public.t{i}\n    ADD CONSTRAINT t{i}_pkey PRIMARY KEY (a);\n"
            );
            d += &format!("CREATE INDEX t{i}_b ON public.t{i} USING btree (b);\n");
            d += &format!(
                "ALTER TABLE ONLY public.t{i}\n    ADD CONSTRAINT t{i}_fk FOREIGN KEY (b) REFERENCES public.t0(a);\n"
            );
        }
        d
    }

    /// What each stand-in connection received, by file.
    fn run(text: &str, jobs: usize, chunk: usize) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_owned();
        let make = move || {
            let mut c = Command::new("sh");
            c.arg("-c").arg(FAKE_PSQL).env("OUT", &out);
            c
        };
        let mut s = Splitter::new(jobs, Box::new(make), no_errors).unwrap();
        s.chunk_bytes = chunk;
        let main_pid = s.main.child.id();
        let opts = FilterOptions {
            remove_stderr: true,
            guard: None,
        };
        filter_lines(text.as_bytes(), &mut s, &opts).unwrap();
        for (mut child, errors) in s.close() {
            assert!(child.wait().unwrap().success());
            let _ = errors.join();
        }
        // The main connection's file first.
        let mut files: Vec<(bool, String)> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(e.path()).unwrap();
                (!name.starts_with(&main_pid.to_string()), text)
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, t)| t).collect()
    }

    /// Rows per table inside the COPY blocks of `text`, and the SQL lines
    /// outside them (sync markers and replayed settings left out).
    fn parse(text: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
        let (mut rows, mut sql) = (BTreeMap::<String, Vec<String>>::new(), Vec::new());
        let mut table: Option<String> = None;
        for line in text.lines() {
            match &table {
                Some(t) if line == "\\." => {
                    let _ = t;
                    table = None;
                }
                Some(t) => rows.entry(t.clone()).or_default().push(line.to_string()),
                None if line.starts_with("COPY ") => {
                    table = Some(line.split_whitespace().nth(1).unwrap().to_string());
                }
                None if line.starts_with("SELECT 'drill-sync-") => {}
                None => sql.push(line.to_string()),
            }
        }
        assert!(table.is_none(), "a COPY block left open");
        (rows, sql)
    }

    fn row() -> impl Strategy<Value = String> {
        // Text COPY rows: two fields, escapes as pg_dump writes them, a
        // field that looks like SQL, `pg_dump:` text, `\.` inside a value.
        (
            "[a-z0-9 ;'$]{0,12}|\\\\N|pg_dump: [a-z]{1,5}|\\\\\\.[a-z]{1,3}",
            "[A-Za-z0-9 _;-]{0,20}",
        )
            .prop_map(|(a, b)| format!("{a}\t{b}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn every_row_and_statement_arrives_exactly_once(
            tables in proptest::collection::vec(proptest::collection::vec(row(), 0..60), 1..4),
            jobs in 1usize..4,
            chunk in 1usize..200,
        ) {
            let text = dump(&tables);
            let files = run(&text, jobs, chunk);
            let (want_rows, want_sql) = parse(&text);
            let mut got_rows = BTreeMap::<String, Vec<String>>::new();
            let mut got_sql = Vec::new();
            for f in &files {
                let (r, s) = parse(f);
                for (t, mut rs) in r {
                    got_rows.entry(t).or_default().append(&mut rs);
                }
                got_sql.extend(s);
            }
            let sorted = |m: BTreeMap<String, Vec<String>>| {
                m.into_iter()
                    .map(|(t, mut r)| {
                        r.sort();
                        (t, r)
                    })
                    .filter(|(_, r)| !r.is_empty())
                    .collect::<BTreeMap<_, _>>()
            };
            prop_assert_eq!(sorted(got_rows), sorted(want_rows));
            // The settings are replayed on each worker: count them once.
            let session = |l: &String| l.starts_with("SET ") || l.starts_with("SELECT pg_catalog.set_config(");
            let mut got: Vec<&String> = got_sql.iter().filter(|l| !session(l)).collect();
            let mut want: Vec<&String> = want_sql.iter().filter(|l| !session(l)).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
            // The main connection: the schema first, the foreign keys after
            // every index (which the workers built, when there are any).
            let main = &files[0];
            prop_assert!(main.starts_with("SET client_encoding"));
            let fk = main.find("FOREIGN KEY");
            prop_assert!(fk.is_some(), "the foreign keys run on the main connection");
        }
    }

    #[test]
    fn index_builds_are_told_from_the_rest() {
        assert!(builds_an_index(
            b"CREATE INDEX i ON public.t USING btree (a);"
        ));
        assert!(builds_an_index(
            b"CREATE UNIQUE INDEX i ON public.t USING btree (a);\n"
        ));
        assert!(builds_an_index(
            b"ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);"
        ));
        assert!(!builds_an_index(
            b"ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_fk FOREIGN KEY (b) REFERENCES public.u(a);"
        ));
        assert!(!builds_an_index(
            b"CREATE INDEX i ON public.t (a);\nCREATE INDEX j ON public.t (b);"
        ));
        assert!(!builds_an_index(
            b"ALTER INDEX public.i ATTACH PARTITION public.j;"
        ));
        assert_eq!(
            statement_body(b"--\n-- Name: i\n--\n\nCREATE INDEX i;"),
            b"CREATE INDEX i;"
        );
    }
}
