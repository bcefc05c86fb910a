//! A streaming sanitizer for plain-format pg_dump files whose stderr was
//! merged into them (`pg_dump --verbose ... 2>&1 | gzip`, seed 000).
//!
//! It removes only what pg_dump wrote to stderr and never a line pg_dump
//! wrote to stdout. It reads the dump line by line and tracks its structure:
//!
//! * **SQL** between statements, with a small lexer for quoted strings,
//!   quoted identifiers, dollar-quoted bodies and block comments. A line is
//!   noise only when it starts with `pg_dump: ` while the lexer is outside
//!   every literal, so a function body line that reads `pg_dump: ...`
//!   survives. pg_dump logs between archive entries, after flushing stdout,
//!   so its messages always start at such a boundary.
//! * **COPY data** (`COPY t (a, b) FROM stdin;` up to `\.`; the header may
//!   span lines when a name holds a newline, and names need not be UTF-8).
//!   Every row pg_dump writes there has exactly as many tab-separated fields
//!   as the column list (tabs and newlines inside values are escaped). A line
//!   is noise only when it starts with `pg_dump: ` *and* has the wrong number
//!   of fields, so a row whose text begins with `pg_dump:` survives.
//! * **One-column tables**, where the field count cannot tell: only when
//!   pg_dump announced this very table (`processing data for table "s.t"`
//!   right before the COPY) is its `dumping contents of table "s.t"` line,
//!   written once before the first row, removed, together with server
//!   messages relayed before the first row (`pg_dump: NOTICE:  ...` and its
//!   `DETAIL:`/`HINT:` lines, as TimescaleDB sends for a hypertable).
//! * **Multi-line messages** relayed from the server (a NOTICE followed by
//!   `DETAIL:`, `HINT:`, `CONTEXT:`, `LINE n:` ... lines without the prefix)
//!   are removed when they directly follow a removed line and, inside COPY
//!   data, also have the wrong field count.
//!
//! **The guard.** A plain dump is a psql script, and psql runs its
//! backslash commands: `\!` runs a shell command on the restoring host,
//! `\o`, `\w` and `\copy` write files there, `\i` reads them, `\connect`
//! reaches another database. pg_dump writes none of these (only `\restrict`
//! and `\unrestrict` around the dump, and `\connect` with `--create`), so a
//! backup holding one was tampered with or is not what it claims. With
//! [`FilterOptions::guard`] every backslash command psql would act on
//! outside COPY data is kept out of the output: `\restrict`/`\unrestrict`
//! and a `\connect` to the target database are dropped as harmless, every
//! other one is refused and listed in [`SanitizeReport::refused`] with its
//! line, as is a `COPY ... TO/FROM PROGRAM` statement (a program run on the
//! database server). A backslash line inside COPY data is data and is kept.
//! The guard can also put drill's own `\restrict <key>` first, so psql
//! itself refuses any backslash command the scan missed.
//!
//! When the structure cannot be followed (a COPY header it cannot parse), it
//! fails closed: it stops removing anything and says so in
//! [`SanitizeReport::gave_up`]. Anything that looks like noise but cannot be
//! proven so is kept and listed in [`SanitizeReport::kept_suspicious`].
//! Memory is one line buffer: it grows with the longest line, never with the
//! size of the dump. Windows line ends (`\r\n`) are understood.

use std::io::{self, BufRead, Write};

/// What the sanitizer did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SanitizeReport {
    pub lines_in: u64,
    pub lines_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Lines removed as pg_dump's stderr.
    pub removed: u64,
    /// The first few removed lines, with their 1-based line numbers.
    pub removed_sample: Vec<(u64, String)>,
    /// Lines that start with `pg_dump: ` but were kept because they may be
    /// data (first few).
    pub kept_suspicious: Vec<(u64, String)>,
    /// COPY blocks seen.
    pub copy_blocks: u64,
    /// The largest line buffer used, in bytes (memory stays at this).
    pub peak_line_bytes: usize,
    /// Set when the sanitizer met structure it could not follow and kept
    /// every line from there on (line number, why).
    pub gave_up: Option<(u64, String)>,
    /// Guard: commands that would run on the restoring host or reach past
    /// the target database, kept out of the output (line, text; first few).
    pub refused: Vec<(u64, String)>,
    /// Guard: how many were refused in all.
    pub refused_total: u64,
    /// Guard: the dump's own `\restrict`/`\unrestrict` lines and `\connect`
    /// to the target database, dropped as harmless.
    pub dropped_meta: u64,
}

/// How a plain dump is filtered on its way to psql.
#[derive(Debug, Clone, Default)]
pub struct FilterOptions {
    /// Remove pg_dump's own stderr lines (the sanitizer proper).
    pub remove_stderr: bool,
    /// Keep psql's backslash commands out (see the module docs).
    pub guard: Option<Guard>,
}

/// What the guard needs to know.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The database the dump is restored into: a `\connect` to it is
    /// harmless, to any other is refused.
    pub database: String,
    /// Written first as `\restrict <key>` (psql 15.14 and later refuse every
    /// backslash command after it); None for an older psql.
    pub restrict_key: Option<String>,
}

const SAMPLE: usize = 20;
/// Sampled lines are cut to this many characters: reports must not carry
/// whole rows of customer data.
const SAMPLE_CHARS: usize = 160;
/// A COPY header longer than this is not followed (fail closed).
const MAX_HEADER: usize = 64 * 1024;
const PREFIX: &[u8] = b"pg_dump: ";

/// Copies `input` to `output` without pg_dump's stderr lines.
pub fn sanitize<R: BufRead, W: Write>(input: R, output: W) -> io::Result<SanitizeReport> {
    let opts = FilterOptions {
        remove_stderr: true,
        guard: None,
    };
    filter(input, output, &opts)
}

/// Copies `input` to `output` as `opts` say: without pg_dump's stderr
/// lines, without psql's backslash commands, or both.
pub fn filter<R: BufRead, W: Write>(
    input: R,
    output: W,
    opts: &FilterOptions,
) -> io::Result<SanitizeReport> {
    struct Plain<W>(W);
    impl<W: Write> LineSink for Plain<W> {
        fn line(&mut self, _: LineKind, raw: &[u8]) -> io::Result<()> {
            self.0.write_all(raw)
        }
        fn finish(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }
    filter_lines(input, &mut Plain(output), opts)
}

/// What a kept line is to psql: what a consumer that splits a dump (the
/// parallel restore) needs to know, from the structure the sanitizer
/// follows anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// SQL or a psql meta-command, outside COPY data.
    Sql,
    /// A line of a `COPY ... FROM stdin;` statement (usually its only one).
    CopyHeader,
    /// A data row of the COPY block.
    CopyRow,
    /// The block's `\.`.
    CopyEnd,
    /// The structure was lost ([`SanitizeReport::gave_up`]): whatever it is.
    Unknown,
}

/// Where [`filter_lines`] puts each kept line, with its kind.
pub(crate) trait LineSink {
    fn line(&mut self, kind: LineKind, raw: &[u8]) -> io::Result<()>;
    /// The input ended.
    fn finish(&mut self) -> io::Result<()>;
}

/// [`filter`], each kept line handed to `sink` with its [`LineKind`].
pub(crate) fn filter_lines<R: BufRead, S: LineSink>(
    mut input: R,
    sink: &mut S,
    opts: &FilterOptions,
) -> io::Result<SanitizeReport> {
    let mut s = Sanitizer {
        remove_stderr: opts.remove_stderr,
        guard: opts.guard.clone(),
        ..Sanitizer::default()
    };
    if let Some(key) = opts.guard.as_ref().and_then(|g| g.restrict_key.as_ref()) {
        let first = format!("\\restrict {key}\n");
        sink.line(LineKind::Sql, first.as_bytes())?;
    }
    let mut line = Vec::with_capacity(8 * 1024);
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let (passthrough, in_copy, in_header) =
            (s.passthrough, s.copy.is_some(), s.pending_header.is_some());
        if s.keep(&line) {
            let kind = if passthrough || s.passthrough {
                LineKind::Unknown
            } else if in_copy {
                if s.copy.is_some() {
                    LineKind::CopyRow
                } else {
                    LineKind::CopyEnd
                }
            } else if in_header || s.copy.is_some() || s.pending_header.is_some() {
                LineKind::CopyHeader
            } else {
                LineKind::Sql
            };
            sink.line(kind, &line)?;
            s.report.lines_out += 1;
            s.report.bytes_out += line.len() as u64;
        }
        s.report.peak_line_bytes = s.report.peak_line_bytes.max(line.capacity());
    }
    sink.finish()?;
    Ok(s.report)
}

#[derive(Debug, Default)]
struct Sanitizer {
    /// Remove pg_dump's stderr (off: only follow the structure).
    remove_stderr: bool,
    guard: Option<Guard>,
    /// Inside a statement that began with `COPY` (the guard looks for
    /// `TO/FROM PROGRAM` until its `;`).
    copy_statement: bool,
    /// That statement's last word so far (`TO` may end one line and
    /// `PROGRAM '...'` begin the next).
    copy_last_word: Vec<u8>,
    lex: Lexer,
    copy: Option<CopyBlock>,
    /// A COPY header that spans lines, collected until `FROM stdin;`.
    pending_header: Option<Vec<u8>>,
    /// The previous line was removed (continuations may follow).
    after_noise: bool,
    /// pg_dump just announced `processing data for table "<this>"`.
    announced: Option<Vec<u8>>,
    /// Structure lost: keep everything from here.
    passthrough: bool,
    /// The last removed line left a double quote open: a name with a
    /// newline in it split pg_dump's message over two lines.
    open_quote: bool,
    report: SanitizeReport,
}

#[derive(Debug)]
struct CopyBlock {
    columns: usize,
    /// Unquoted `schema.table`, as pg_dump's messages spell it.
    table: Vec<u8>,
    /// pg_dump announced this table just before the header (verbose).
    announced: bool,
    /// No data row kept yet.
    preamble: bool,
    /// The `dumping contents` line was removed.
    contents_removed: bool,
    /// A relayed server message was removed before the first row.
    notice_removed: bool,
}

impl Sanitizer {
    /// Decides one line (with its newline, if any); updates state.
    fn keep(&mut self, raw: &[u8]) -> bool {
        self.report.lines_in += 1;
        self.report.bytes_in += raw.len() as u64;
        if self.passthrough {
            return true;
        }
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let sql = self.copy.is_none();
        let had_header = self.pending_header.is_some();
        let lex_before = self.guard.as_ref().map(|_| self.lex.clone());
        let noise = if self.closes_split_message(line) {
            true
        } else if self.copy.is_some() {
            self.in_copy(line)
        } else {
            self.in_sql(line, raw)
        };
        if let (Some(lex), false, true) = (lex_before, noise, sql)
            && !self.passes_guard(line, &lex)
        {
            // psql never sees the line: its structure is as before it.
            self.copy = None;
            if !had_header {
                self.pending_header = None;
            }
            self.lex = lex;
            self.after_noise = false;
            return false;
        }
        self.open_quote = noise && (self.open_quote ^ (quotes(line) % 2 == 1));
        if noise {
            self.report.removed += 1;
            if self.report.removed_sample.len() < SAMPLE {
                self.report
                    .removed_sample
                    .push((self.report.lines_in, sample(line)));
            }
        }
        self.after_noise = noise;
        !noise
    }

    /// Whether an SQL line may reach psql: no backslash command psql would
    /// act on (`lex`: the lexer's state before the line), no `COPY ...
    /// PROGRAM`. Records what it keeps out.
    fn passes_guard(&mut self, line: &[u8], lex: &Lexer) -> bool {
        let guard = self.guard.as_ref().expect("guarding");
        let starts_copy = lex.is_neutral() && starts_with_word(line, b"COPY");
        if starts_copy && !self.copy_statement {
            self.copy_statement = true;
            self.copy_last_word.clear();
        }
        let program = self.copy_statement && runs_program(&self.copy_last_word, line);
        if self.copy_statement {
            self.copy_last_word = line
                .split(|c| c.is_ascii_whitespace())
                .rfind(|w| !w.is_empty())
                .map(<[u8]>::to_vec)
                .unwrap_or_else(|| std::mem::take(&mut self.copy_last_word));
        }
        if self.copy_statement && lex.is_neutral() && self.lex.is_neutral() && line.ends_with(b";")
        {
            self.copy_statement = false;
        }
        if program {
            self.refuse(
                line,
                "COPY ... PROGRAM runs a program on the database server",
            );
            return false;
        }
        let Some(at) = lex.clone().meta_command_at(line) else {
            return true;
        };
        let mut words = line[at + 1..].split(|c| c.is_ascii_whitespace());
        let command = words.next().unwrap_or_default();
        let harmless = at == 0
            && match command {
                b"restrict" | b"unrestrict" => true,
                b"connect" | b"c" => words
                    .find(|w| !w.is_empty())
                    .is_some_and(|db| unquote(db) == guard.database.as_bytes()),
                _ => false,
            };
        if harmless {
            self.report.dropped_meta += 1;
        } else {
            self.refuse(line, "a psql backslash command runs on the restoring host");
        }
        false
    }

    fn refuse(&mut self, line: &[u8], _why: &str) {
        self.report.refused_total += 1;
        if self.report.refused.len() < SAMPLE {
            self.report
                .refused
                .push((self.report.lines_in, sample(line)));
        }
    }

    /// `pg_dump: creating TABLE "public.split` + `name"`: the second half of
    /// a message whose quoted name holds a newline. It must close the quote
    /// and end with it; a psql meta-command or a valid COPY row never is one.
    fn closes_split_message(&self, line: &[u8]) -> bool {
        self.open_quote
            && line.ends_with(b"\"")
            && quotes(line) % 2 == 1
            && !line.starts_with(b"\\")
            && !line.starts_with(PREFIX)
            && self
                .copy
                .as_ref()
                .is_none_or(|b| !valid_row(line, b.columns))
    }

    fn in_copy(&mut self, line: &[u8]) -> bool {
        let block = self.copy.as_mut().expect("in a COPY block");
        if line == b"\\." {
            self.copy = None;
            return false;
        }
        if !self.remove_stderr {
            return false;
        }
        let valid = valid_row(line, block.columns);
        let noise = if line.starts_with(PREFIX) {
            if !valid {
                true
            } else if block.announced
                && block.preamble
                && !block.contents_removed
                && is_dumping_contents(line, &block.table)
            {
                // Written once per block: a second such line is a row.
                block.contents_removed = true;
                true
            } else if block.preamble && block.contents_removed && is_server_message(line) {
                block.notice_removed = true;
                true
            } else {
                if self.report.kept_suspicious.len() < SAMPLE {
                    self.report
                        .kept_suspicious
                        .push((self.report.lines_in, sample(line)));
                }
                false
            }
        } else {
            self.after_noise
                && (!valid || (block.preamble && block.notice_removed))
                && is_continuation(line)
        };
        if !noise {
            block.preamble = false;
        }
        noise
    }

    fn in_sql(&mut self, line: &[u8], raw: &[u8]) -> bool {
        if let Some(header) = &mut self.pending_header {
            header.extend_from_slice(raw);
            self.lex.scan(line);
            if self.lex.is_neutral() && line.ends_with(b";") {
                let header = self.pending_header.take().expect("present");
                let header = header.strip_suffix(b"\n").unwrap_or(&header);
                let header = header.strip_suffix(b"\r").unwrap_or(header);
                self.enter_copy(header);
            } else if self
                .pending_header
                .as_ref()
                .is_some_and(|h| h.len() > MAX_HEADER)
            {
                self.give_up("a COPY header longer than 64 KiB");
            }
            return false;
        }
        let neutral = self.lex.is_neutral();
        if self.remove_stderr && neutral && line.starts_with(PREFIX) {
            self.announced = announced_table(line);
            return true;
        }
        if neutral && self.after_noise && is_continuation(line) {
            return true;
        }
        if neutral && line.first() == Some(&b'\\') {
            // A psql meta-command (\connect, \restrict): not SQL.
            return false;
        }
        if neutral && line.starts_with(b"COPY ") {
            self.lex.scan(line);
            if self.lex.is_neutral() && line.ends_with(b";") {
                self.enter_copy(line);
            } else if !self.lex.is_neutral() {
                // A quoted name with a newline in it: collect the header.
                self.pending_header = Some(raw.to_vec());
            }
            return false;
        }
        self.lex.scan(line);
        if !line.is_empty() {
            self.announced = None;
        }
        false
    }

    /// A complete `COPY ...;` statement was read.
    fn enter_copy(&mut self, header: &[u8]) {
        if !header.ends_with(b" FROM stdin;") {
            return; // not a data block (pg_dump writes none other, but be safe)
        }
        match parse_copy(header) {
            Some(mut block) => {
                block.announced = self.announced.take().is_some_and(|t| t == block.table);
                self.copy = Some(block);
                self.report.copy_blocks += 1;
            }
            None => self.give_up("a COPY header it could not parse"),
        }
    }

    fn give_up(&mut self, why: &str) {
        self.passthrough = true;
        self.pending_header = None;
        self.report.gave_up = Some((
            self.report.lines_in,
            format!("met {why}; kept every line from here on"),
        ));
    }
}

/// `line` begins with `word` (any case) and a space or its end.
fn starts_with_word(line: &[u8], word: &[u8]) -> bool {
    line.len() >= word.len()
        && line[..word.len()].eq_ignore_ascii_case(word)
        && line.get(word.len()).is_none_or(|c| c.is_ascii_whitespace())
}

/// `TO PROGRAM '...'` or `FROM PROGRAM E'...'` (any case and spacing),
/// `before` being the statement's word before `line`.
fn runs_program(before: &[u8], line: &[u8]) -> bool {
    let upper = line.to_ascii_uppercase();
    let before = before.to_ascii_uppercase();
    let words: Vec<&[u8]> = std::iter::once(&before[..])
        .chain(upper.split(|c| c.is_ascii_whitespace()))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(3).any(|w| {
        (w[0] == b"TO" || w[0] == b"FROM")
            && w[1] == b"PROGRAM"
            && (w[2].starts_with(b"'") || w[2].starts_with(b"E'"))
    }) || words
        .windows(2)
        .any(|w| (w[0] == b"TO" || w[0] == b"FROM") && (w[1].starts_with(b"PROGRAM'")))
}

/// A psql argument without its quotes.
fn unquote(word: &[u8]) -> &[u8] {
    word.strip_prefix(b"'")
        .and_then(|w| w.strip_suffix(b"'"))
        .or_else(|| word.strip_prefix(b"\"").and_then(|w| w.strip_suffix(b"\"")))
        .unwrap_or(word)
}

fn quotes(line: &[u8]) -> usize {
    line.iter().filter(|&&c| c == b'"').count()
}

/// `pg_dump: processing data for table "s.t"` names the next COPY's table.
fn announced_table(line: &[u8]) -> Option<Vec<u8>> {
    line[PREFIX.len()..]
        .strip_prefix(b"processing data for table \"")?
        .strip_suffix(b"\"")
        .map(<[u8]>::to_vec)
}

/// The first line of a message the server sent and pg_dump relayed.
fn is_server_message(line: &[u8]) -> bool {
    let rest = &line[PREFIX.len()..];
    [
        &b"NOTICE:  "[..],
        b"WARNING:  ",
        b"INFO:  ",
        b"LOG:  ",
        b"DEBUG:  ",
    ]
    .iter()
    .any(|p| rest.starts_with(p))
}

fn sample(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    match text.char_indices().nth(SAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}

/// A COPY text-format row has exactly `columns` tab-separated fields (an
/// empty line for a table without columns).
fn valid_row(line: &[u8], columns: usize) -> bool {
    if columns == 0 {
        return line.is_empty();
    }
    line.iter().filter(|&&c| c == b'\t').count() + 1 == columns
}

fn is_dumping_contents(line: &[u8], table: &[u8]) -> bool {
    let rest = &line[PREFIX.len()..];
    rest.strip_prefix(b"dumping contents of table \"")
        .and_then(|r| r.strip_suffix(b"\""))
        .is_some_and(|name| name == table)
}

/// Lines libpq and PL/pgSQL put after the first line of a server message.
fn is_continuation(line: &[u8]) -> bool {
    const LABELS: &[&[u8]] = &[
        b"DETAIL:  ",
        b"HINT:  ",
        b"CONTEXT:  ",
        b"QUERY:  ",
        b"WHERE:  ",
        b"STATEMENT:  ",
        b"LOCATION:  ",
        b"PL/pgSQL function ",
        b"SQL statement \"",
        b"SQL function \"",
    ];
    if LABELS.iter().any(|l| line.starts_with(l)) {
        return true;
    }
    // "LINE 3: ..." and the caret line under it.
    if let Some(rest) = line.strip_prefix(b"LINE ") {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        return digits > 0 && rest[digits..].starts_with(b": ");
    }
    let t: Vec<u8> = line.iter().copied().filter(|c| *c != b' ').collect();
    t == b"^"
}

/// `COPY schema.table (a, "b c") FROM stdin;` to its block description.
/// Works on bytes (names need not be UTF-8) and across embedded newlines.
fn parse_copy(line: &[u8]) -> Option<CopyBlock> {
    let body = line.strip_prefix(b"COPY ")?.strip_suffix(b" FROM stdin;")?;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut in_quote = false;
    let mut depth = 0;
    let mut columns = 0usize;
    let mut seen_column_char = false;
    let mut table_done = false;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if in_quote {
            if c == b'"' {
                if body.get(i) == Some(&b'"') {
                    i += 1;
                    if !table_done {
                        cur.push(b'"');
                    }
                } else {
                    in_quote = false;
                }
            } else if !table_done {
                cur.push(c);
            } else {
                seen_column_char = true;
            }
            continue;
        }
        match c {
            b'"' => {
                in_quote = true;
                if table_done {
                    seen_column_char = true;
                }
            }
            b'.' if !table_done => parts.push(std::mem::take(&mut cur)),
            b' ' if !table_done && depth == 0 => {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
                table_done = true;
            }
            b'(' if depth == 0 => {
                if !table_done {
                    parts.push(std::mem::take(&mut cur));
                    table_done = true;
                }
                depth = 1;
            }
            b')' if depth == 1 => {
                depth = 0;
                if seen_column_char {
                    columns += 1;
                }
            }
            b',' if depth == 1 => {
                columns += 1;
                seen_column_char = false;
            }
            c if depth == 1 && !c.is_ascii_whitespace() => seen_column_char = true,
            c if !table_done => cur.push(c),
            _ => {}
        }
    }
    if !table_done && !cur.is_empty() {
        parts.push(cur);
    }
    if in_quote || depth != 0 || parts.is_empty() {
        return None;
    }
    Some(CopyBlock {
        columns,
        table: parts.join(&b'.'),
        announced: false,
        preamble: true,
        contents_removed: false,
        notice_removed: false,
    })
}

/// SQL text (pg_dump's, outside COPY data) cut into statements, each with
/// its lines: a statement ends on a line ending with `;` outside every
/// literal, comment and dollar-quoted body; a psql meta-command line is
/// one of its own. Comment and blank lines go with the statement after
/// them; what follows the last `;` is the last piece. Nothing is dropped:
/// the pieces joined are the text.
pub(crate) fn statements(sql: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut lex, mut start, mut at) = (Lexer::default(), 0, 0);
    while at < sql.len() {
        let end = sql[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(sql.len(), |i| at + i + 1);
        let line = &sql[at..end];
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let meta = lex.is_neutral() && text.first() == Some(&b'\\');
        if !meta {
            lex.scan(text);
        }
        at = end;
        if meta || (lex.is_neutral() && text.trim_ascii_end().ends_with(b";")) {
            out.push(&sql[start..end]);
            start = end;
        }
    }
    if start < sql.len() {
        out.push(&sql[start..]);
    }
    out
}

/// Lexical state of SQL text between lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Lexer {
    #[default]
    Neutral,
    /// Inside '...'; `escapes` for E'...' strings.
    Single { escapes: bool },
    /// Inside "...".
    Ident,
    /// Inside $tag$ ... $tag$.
    Dollar(Vec<u8>),
    /// Inside /* ... */, nesting depth.
    Block(u32),
}

impl Lexer {
    fn is_neutral(&self) -> bool {
        *self == Lexer::Neutral
    }

    /// Where psql would see a backslash command in `line`: the first
    /// backslash outside quotes, comments and dollar-quoted bodies (psql
    /// acts on one anywhere in a line, not only at its start).
    fn meta_command_at(&mut self, line: &[u8]) -> Option<usize> {
        self.scan_until(line, true)
    }

    fn scan(&mut self, line: &[u8]) {
        self.scan_until(line, false);
    }

    /// Follows `line`; with `at_backslash`, stops at (and returns) the
    /// first backslash met outside every literal and comment.
    fn scan_until(&mut self, line: &[u8], at_backslash: bool) -> Option<usize> {
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            match self {
                Lexer::Neutral if at_backslash && c == b'\\' => return Some(i),
                Lexer::Neutral => match c {
                    b'\'' => {
                        let e = i > 0
                            && matches!(line[i - 1], b'e' | b'E')
                            && (i < 2 || !is_ident_char(line[i - 2]));
                        *self = Lexer::Single { escapes: e };
                    }
                    b'"' => *self = Lexer::Ident,
                    b'-' if line.get(i + 1) == Some(&b'-') => return None,
                    b'/' if line.get(i + 1) == Some(&b'*') => {
                        *self = Lexer::Block(1);
                        i += 1;
                    }
                    b'$' if i == 0 || !is_ident_char(line[i - 1]) => {
                        if let Some(len) = dollar_tag_len(&line[i..]) {
                            *self = Lexer::Dollar(line[i..i + len].to_vec());
                            i += len - 1;
                        }
                    }
                    _ => {}
                },
                Lexer::Single { escapes } => {
                    if *escapes && c == b'\\' {
                        i += 1;
                    } else if c == b'\'' {
                        if line.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            *self = Lexer::Neutral;
                        }
                    }
                }
                Lexer::Ident => {
                    if c == b'"' {
                        if line.get(i + 1) == Some(&b'"') {
                            i += 1;
                        } else {
                            *self = Lexer::Neutral;
                        }
                    }
                }
                Lexer::Dollar(tag) => {
                    if line[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        *self = Lexer::Neutral;
                    }
                }
                Lexer::Block(depth) => {
                    if c == b'/' && line.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 1;
                    } else if c == b'*' && line.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            *self = Lexer::Neutral;
                        }
                    }
                }
            }
            i += 1;
        }
        None
    }
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Length of a dollar-quote opener (`$$` or `$tag$`) at the start of `s`.
fn dollar_tag_len(s: &[u8]) -> Option<usize> {
    debug_assert_eq!(s[0], b'$');
    let mut j = 1;
    while j < s.len() {
        let c = s[j];
        if c == b'$' {
            return Some(j + 1);
        }
        let ok = if j == 1 {
            c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
        } else {
            is_ident_char(c) && c != b'$'
        };
        if !ok {
            return None;
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests;
