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
//! * **COPY data** (`COPY t (a, b) FROM stdin;` up to `\.`). Every row pg_dump
//!   writes there has exactly as many tab-separated fields as the column list
//!   (tabs and newlines inside values are escaped). A line is noise only when
//!   it starts with `pg_dump: ` *and* has the wrong number of fields, so a row
//!   whose text begins with `pg_dump:` survives. One exception, for
//!   one-column tables where the field count cannot tell: pg_dump's
//!   `dumping contents of table "s.t"` message, which it writes exactly once
//!   as the first line of that table's block, is removed there when the
//!   file has already shown other verbose output.
//! * **Multi-line messages** relayed from the server (a NOTICE followed by
//!   `DETAIL:`, `HINT:`, `CONTEXT:`, `LINE n:` ... lines without the prefix)
//!   are removed when they directly follow a removed line and, inside COPY
//!   data, also have the wrong field count.
//!
//! Anything that looks like noise but cannot be proven so is kept and listed
//! in [`SanitizeReport::kept_suspicious`], so a person can look. Memory is one
//! line buffer: it does not grow with the size of the dump.

use std::io::{self, BufRead, Write};

/// What the sanitizer did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
}

const SAMPLE: usize = 20;
const PREFIX: &[u8] = b"pg_dump: ";

/// Copies `input` to `output` without pg_dump's stderr lines.
pub fn sanitize<R: BufRead, W: Write>(mut input: R, mut output: W) -> io::Result<SanitizeReport> {
    let mut s = Sanitizer::default();
    let mut line = Vec::with_capacity(8 * 1024);
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if s.keep(&line) {
            output.write_all(&line)?;
            s.report.lines_out += 1;
            s.report.bytes_out += line.len() as u64;
        }
        s.report.peak_line_bytes = s.report.peak_line_bytes.max(line.capacity());
    }
    output.flush()?;
    Ok(s.report)
}

#[derive(Debug, Default)]
struct Sanitizer {
    lex: Lexer,
    copy: Option<CopyBlock>,
    /// The previous line was removed (continuations may follow).
    after_noise: bool,
    /// Some verbose output was seen (pg_dump ran with --verbose).
    seen_noise: bool,
    report: SanitizeReport,
}

#[derive(Debug)]
struct CopyBlock {
    columns: usize,
    /// Unquoted `schema.table`, as pg_dump's messages spell it.
    table: String,
    first_line: bool,
}

impl Sanitizer {
    /// Decides one line (with its newline, if any); updates state.
    fn keep(&mut self, raw: &[u8]) -> bool {
        self.report.lines_in += 1;
        self.report.bytes_in += raw.len() as u64;
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let noise = match &mut self.copy {
            Some(block) => {
                if line == b"\\." {
                    self.copy = None;
                    false
                } else if line.starts_with(PREFIX) {
                    if !valid_row(line, block.columns) {
                        true
                    } else if block.first_line && self.seen_noise && is_dumping_contents(line, &block.table) {
                        // pg_dump writes it once per block: a second such
                        // line is a row.
                        block.first_line = false;
                        true
                    } else {
                        if self.report.kept_suspicious.len() < SAMPLE {
                            self.report.kept_suspicious.push((self.report.lines_in, lossy(line)));
                        }
                        false
                    }
                } else {
                    self.after_noise && !valid_row(line, block.columns) && is_continuation(line)
                }
            }
            None => {
                let neutral = self.lex.is_neutral();
                if neutral && (line.starts_with(PREFIX) || (self.after_noise && is_continuation(line))) {
                    true
                } else {
                    if neutral && line.first() == Some(&b'\\') {
                        // A psql meta-command (\connect, \restrict): not SQL.
                    } else {
                        if neutral && let Some(block) = parse_copy(line) {
                            self.copy = Some(block);
                            self.report.copy_blocks += 1;
                        }
                        self.lex.scan(line);
                    }
                    false
                }
            }
        };
        if noise {
            self.report.removed += 1;
            self.seen_noise = true;
            if self.report.removed_sample.len() < SAMPLE {
                self.report.removed_sample.push((self.report.lines_in, lossy(line)));
            }
        } else if let Some(b) = &mut self.copy {
            // The COPY line itself sets first_line; any kept data line clears it.
            if line != b"\\." && !is_copy_header(line) {
                b.first_line = false;
            }
        }
        self.after_noise = noise;
        !noise
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A COPY text-format row has exactly `columns` tab-separated fields (an
/// empty line for a table without columns).
fn valid_row(line: &[u8], columns: usize) -> bool {
    if columns == 0 {
        return line.is_empty();
    }
    line.iter().filter(|&&c| c == b'\t').count() + 1 == columns
}

fn is_dumping_contents(line: &[u8], table: &str) -> bool {
    let rest = &line[PREFIX.len()..];
    rest.strip_prefix(b"dumping contents of table \"")
        .and_then(|r| r.strip_suffix(b"\""))
        .is_some_and(|name| name == table.as_bytes())
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

fn is_copy_header(line: &[u8]) -> bool {
    line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;")
}

/// `COPY schema.table (a, "b c") FROM stdin;` to its block description.
fn parse_copy(line: &[u8]) -> Option<CopyBlock> {
    if !is_copy_header(line) {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let body = text.strip_prefix("COPY ")?.strip_suffix(" FROM stdin;")?.trim_end();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars().peekable();
    let mut in_quote = false;
    let mut depth = 0;
    let mut columns = 0usize;
    let mut seen_column_char = false;
    let mut table_done = false;
    while let Some(c) = chars.next() {
        if in_quote {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
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
            '"' => {
                in_quote = true;
                if table_done {
                    seen_column_char = true;
                }
            }
            '.' if !table_done => parts.push(std::mem::take(&mut cur)),
            ' ' if !table_done && depth == 0 => {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
                table_done = true;
            }
            '(' if depth == 0 => {
                if !table_done {
                    parts.push(std::mem::take(&mut cur));
                    table_done = true;
                }
                depth = 1;
            }
            ')' if depth == 1 => {
                depth = 0;
                if seen_column_char {
                    columns += 1;
                }
            }
            ',' if depth == 1 => {
                columns += 1;
                seen_column_char = false;
            }
            c if depth == 1 && !c.is_whitespace() => seen_column_char = true,
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
    Some(CopyBlock { columns, table: parts.join("."), first_line: true })
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

    fn scan(&mut self, line: &[u8]) {
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            match self {
                Lexer::Neutral => match c {
                    b'\'' => {
                        let e = i > 0
                            && matches!(line[i - 1], b'e' | b'E')
                            && (i < 2 || !is_ident_char(line[i - 2]));
                        *self = Lexer::Single { escapes: e };
                    }
                    b'"' => *self = Lexer::Ident,
                    b'-' if line.get(i + 1) == Some(&b'-') => return,
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
        let ok = if j == 1 { c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 } else { is_ident_char(c) && c != b'$' };
        if !ok {
            return None;
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests;
