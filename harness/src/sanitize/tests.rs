//! The sanitizer's promise, tested two ways: examples taken from real
//! pg_dump 15 output, and property tests over generated dumps. A generated
//! dump is a list of legitimate pieces (SQL, dollar-quoted bodies and
//! multi-line strings with lines that begin with `pg_dump:`, COPY blocks with
//! such rows); noise is interleaved where pg_dump writes it. Sanitizing the
//! noisy dump must give back the clean one byte for byte, and sanitizing a
//! clean dump must change nothing.

use proptest::prelude::*;

use super::*;

fn run(input: &str) -> (String, SanitizeReport) {
    let mut out = Vec::new();
    let report = sanitize(input.as_bytes(), &mut out).unwrap();
    (String::from_utf8(out).unwrap(), report)
}

#[test]
fn removes_verbose_lines_from_a_real_dump_excerpt() {
    let noisy = "pg_dump: last built-in OID is 16383\npg_dump: reading extensions\n--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\nSET statement_timeout = 0;\npg_dump: creating FUNCTION \"public.f()\"\nCREATE FUNCTION public.f() RETURNS text\n    LANGUAGE plpgsql\n    AS $$ begin\npg_dump: y\nreturn 'pg_dump: y'; end $$;\n\npg_dump: processing data for table \"public.a\"\nCOPY public.a (id, t) FROM stdin;\npg_dump: dumping contents of table \"public.a\"\n1\tx\n\\.\n\npg_dump: processing data for table \"public.b\"\nCOPY public.b (x) FROM stdin;\npg_dump: dumping contents of table \"public.b\"\npg_dump: hi\n\\.\n\n\\unrestrict abc\n";
    let clean = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\nSET statement_timeout = 0;\nCREATE FUNCTION public.f() RETURNS text\n    LANGUAGE plpgsql\n    AS $$ begin\npg_dump: y\nreturn 'pg_dump: y'; end $$;\n\nCOPY public.a (id, t) FROM stdin;\n1\tx\n\\.\n\nCOPY public.b (x) FROM stdin;\npg_dump: hi\n\\.\n\n\\unrestrict abc\n";
    let (out, report) = run(noisy);
    assert_eq!(out, clean);
    assert_eq!(report.removed, 7);
    assert_eq!(report.copy_blocks, 2);
    assert_eq!(
        report.kept_suspicious,
        vec![(25, "pg_dump: hi".to_string())]
    );
}

#[test]
fn relayed_server_notice_with_continuations_is_removed() {
    let noisy = "pg_dump: reading schemas\nCOPY public.ticks (time, symbol) FROM stdin;\npg_dump: dumping contents of table \"public.ticks\"\npg_dump: NOTICE:  hypertable data are in the chunks, no data will be copied\nDETAIL:  Data for hypertables are stored in the chunks of a hypertable so COPY TO of a hypertable will not copy any data.\nHINT:  Use \"COPY (SELECT * FROM <hypertable>) TO ...\" to copy all data in hypertable, or copy each chunk individually.\n\\.\n";
    let (out, r) = run(noisy);
    assert_eq!(out, "COPY public.ticks (time, symbol) FROM stdin;\n\\.\n");
    assert_eq!(r.removed, 5);
}

#[test]
fn one_column_table_keeps_a_row_equal_to_the_message_when_not_verbose() {
    let dump =
        "COPY public.b (x) FROM stdin;\npg_dump: dumping contents of table \"public.b\"\n\\.\n";
    let (out, r) = run(dump);
    assert_eq!(out, dump, "no verbose output seen: the line must be data");
    assert_eq!(r.removed, 0);
}

/// Found by review: a header split by a newline in a column name, or a
/// non-UTF-8 table name, must still be followed, or rows that begin with
/// `pg_dump:` would be taken for noise.
#[test]
fn headers_with_newlines_or_latin1_names_keep_their_rows() {
    for header in [
        &b"COPY public.t (\"note\ns\", id) FROM stdin;\n"[..],
        b"COPY public.\"caf\xe9\" (note, id) FROM stdin;\n",
    ] {
        let mut noisy = b"pg_dump: reading schemas\n".to_vec();
        noisy.extend_from_slice(header);
        noisy.extend_from_slice(
            b"pg_dump: dumping contents of table \"x\"\npg_dump: first row\t1\nsecond\t2\n\\.\n",
        );
        let mut out = Vec::new();
        let r = sanitize(&noisy[..], &mut out).unwrap();
        let mut want = header.to_vec();
        want.extend_from_slice(b"pg_dump: first row\t1\nsecond\t2\n\\.\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );
        assert_eq!((r.removed, r.copy_blocks), (2, 1));
    }
}

#[test]
fn crlf_dumps_are_understood() {
    let noisy = "pg_dump: reading schemas\r\nCOPY public.t (a, b) FROM stdin;\r\npg_dump: dumping contents of table \"public.t\"\r\n1\tx\r\n\\.\r\nSELECT 1;\r\n";
    let (out, r) = run(noisy);
    assert_eq!(
        out,
        "COPY public.t (a, b) FROM stdin;\r\n1\tx\r\n\\.\r\nSELECT 1;\r\n"
    );
    assert_eq!(r.removed, 2);
}

/// A one-column hypertable: TimescaleDB's NOTICE arrives before the first
/// row, where the field count cannot tell it from data.
#[test]
fn notice_before_the_first_row_of_a_one_column_table() {
    let noisy = "pg_dump: processing data for table \"public.ev\"\nCOPY public.ev (\"time\") FROM stdin;\npg_dump: dumping contents of table \"public.ev\"\npg_dump: NOTICE:  hypertable data are in the chunks, no data will be copied\nDETAIL:  Data for hypertables are stored in the chunks.\nHINT:  Use \"COPY (SELECT * FROM <hypertable>) TO ...\".\n\\.\n";
    let (out, r) = run(noisy);
    assert_eq!(out, "COPY public.ev (\"time\") FROM stdin;\n\\.\n");
    assert_eq!(r.removed, 5);
}

/// Without pg_dump's announcement of this table, a one-column row equal to
/// the message is data, even if other stderr lines were seen.
#[test]
fn the_contents_message_needs_the_announcement_for_this_table() {
    let dump = "pg_dump: warning: there are circular foreign-key constraints on this table:\nCOPY public.b (x) FROM stdin;\npg_dump: dumping contents of table \"public.b\"\n\\.\n";
    let (out, r) = run(dump);
    assert!(
        out.contains(
            "COPY public.b (x) FROM stdin;\npg_dump: dumping contents of table \"public.b\"\n"
        ),
        "{out}"
    );
    assert_eq!(r.removed, 1);
}

#[test]
fn an_unparseable_copy_header_fails_closed() {
    let noisy =
        "pg_dump: reading schemas\nCOPY public.\"broken (a) FROM stdin;\npg_dump: creating TABLE\n";
    let (out, r) = run(noisy);
    assert_eq!(r.removed, 1);
    assert!(
        out.ends_with("pg_dump: creating TABLE\n"),
        "kept everything after losing the structure: {out}"
    );
}

#[test]
fn samples_are_cut_short() {
    let long = format!("pg_dump: {}\n", "x".repeat(1000));
    let (_, r) = run(&long);
    assert!(r.removed_sample[0].1.chars().count() <= 161);
}

#[test]
fn quoted_names_and_column_counts() {
    let b = parse_copy(br#"COPY public."we""ird.t" (id, "a,b", "c d") FROM stdin;"#).unwrap();
    assert_eq!(
        (b.columns, b.table.as_slice()),
        (3, &b"public.we\"ird.t"[..])
    );
    let nl = parse_copy(b"COPY public.t (\"note\ns\", id) FROM stdin;").unwrap();
    assert_eq!(nl.columns, 2);
    let latin1 = parse_copy(b"COPY public.\"caf\xe9\" (x, id) FROM stdin;").unwrap();
    assert_eq!(latin1.table, b"public.caf\xe9");
    let z = parse_copy(b"COPY public.empty  FROM stdin;").unwrap();
    assert_eq!(z.table, b"public.empty");
    assert_eq!(z.columns, 0);
    assert!(parse_copy(b"COPY public.t (a) TO stdout;").is_none());
}

#[test]
fn memory_stays_one_line_for_a_large_stream() {
    // About 60 MiB of COPY rows with noise every 1000 rows, produced on the fly.
    struct Gen {
        row: u64,
        buf: Vec<u8>,
        pos: usize,
    }
    impl std::io::Read for Gen {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
                if self.row == 0 {
                    self.buf.extend_from_slice(
                        b"pg_dump: reading schemas\nCOPY public.t (a, b) FROM stdin;\n",
                    );
                } else if self.row > 1_400_000 {
                    return Ok(0);
                } else if self.row.is_multiple_of(1000) {
                    self.buf.extend_from_slice(b"pg_dump: warning: noise\n");
                }
                self.buf.extend_from_slice(
                    format!("{}\tsome text for row {} padded out\n", self.row, self.row).as_bytes(),
                );
                self.row += 1;
            }
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
    let input = std::io::BufReader::new(Gen {
        row: 0,
        buf: Vec::new(),
        pos: 0,
    });
    let r = sanitize(input, std::io::sink()).unwrap();
    assert!(r.bytes_in > 55 << 20, "{}", r.bytes_in);
    assert_eq!(r.removed, 1 + 1400);
    assert!(
        r.peak_line_bytes <= 16 * 1024,
        "line buffer grew to {}",
        r.peak_line_bytes
    );
}

// ---- property tests -------------------------------------------------------

/// A legitimate piece of a dump, rendered to text.
#[derive(Debug, Clone)]
enum Piece {
    Sql(String),
    Copy {
        header: String,
        table: String,
        columns: usize,
        rows: Vec<String>,
    },
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 :\"'.,()-]{0,12}",
        "pg_dump: [a-zA-Z0-9 :\"'.-]{0,12}",
        Just("\\N".to_string()),
        // Rows that read like psql backslash commands: data, not commands.
        Just("\\! id > /tmp/x".to_string()),
        Just("\\o /tmp/out".to_string()),
        Just("\\copy t to '/tmp/f'".to_string()),
        Just("DETAIL:  looks like a notice".to_string()),
        Just("pg_dump: dumping contents of table \\\"x\\\"".to_string()),
    ]
}

fn ident() -> impl Strategy<Value = (String, String)> {
    // (as written in SQL, as pg_dump's messages spell it)
    prop_oneof![
        "[a-z_][a-z0-9_]{0,8}".prop_map(|s| (s.clone(), s)),
        "[A-Za-z ,.]{1,8}".prop_map(|s| (format!("\"{}\"", s), s)),
        Just(("\"we\"\"ird\"".to_string(), "we\"ird".to_string())),
    ]
}

fn copy_piece() -> impl Strategy<Value = Piece> {
    (ident(), ident(), 0usize..5)
        .prop_flat_map(|(schema, table, columns)| {
            let rows = if columns == 0 {
                prop::collection::vec(Just(String::new()), 0..3).boxed()
            } else {
                prop::collection::vec(
                    prop::collection::vec(field(), columns).prop_map(|f| f.join("\t")),
                    0..8,
                )
                .boxed()
            };
            let cols: Vec<String> = (0..columns)
                .map(|i| match i % 3 {
                    0 => format!("c{i}"),
                    1 => format!("\"c,{i}\""),
                    _ => format!("\"c\n{i}\""), // a newline in a name splits the header
                })
                .collect();
            let header = if columns == 0 {
                format!("COPY {}.{}  FROM stdin;", schema.0, table.0)
            } else {
                format!(
                    "COPY {}.{} ({}) FROM stdin;",
                    schema.0,
                    table.0,
                    cols.join(", ")
                )
            };
            (
                Just(header),
                Just(format!("{}.{}", schema.1, table.1)),
                Just(columns),
                rows,
            )
        })
        .prop_flat_map(|(header, table, columns, rows)| {
            // A one-column table whose first row reads exactly like pg_dump's
            // "dumping contents" message for that very table.
            (
                Just(header),
                Just(table),
                Just(columns),
                Just(rows),
                any::<bool>(),
            )
        })
        .prop_map(|(header, table, columns, mut rows, collide)| {
            if collide && columns == 1 {
                rows.insert(0, format!("pg_dump: dumping contents of table \"{table}\""));
            }
            Piece::Copy {
                header,
                table,
                columns,
                rows,
            }
        })
}

fn sql_piece() -> impl Strategy<Value = Piece> {
    let body_line = "(pg_dump: )?[a-zA-Z0-9 '\";:()*/-]{0,30}";
    let str_line = "(pg_dump: )?[a-z :]{0,20}(''[a-z]{0,3})?";
    prop_oneof![
        Just("SET statement_timeout = 0;\n".to_string()),
        Just("--\n-- Name: ticks; Type: TABLE; Schema: public; Owner: nexwave\n--\n\n".to_string()),
        Just("CREATE TABLE public.t (\n    id integer NOT NULL,\n    note text DEFAULT 'x'::text\n);\n\n".to_string()),
        (prop_oneof![Just("$$"), Just("$_$"), Just("$body$")], prop::collection::vec(body_line, 0..6)).prop_map(
            |(tag, lines)| format!(
                "CREATE FUNCTION public.f() RETURNS text\n    LANGUAGE plpgsql\n    AS {tag}\nbegin\n{}\nreturn 1; end {tag};\n\n",
                lines.join("\n")
            )
        ),
        prop::collection::vec(str_line, 1..5)
            .prop_map(|lines| format!("COMMENT ON TABLE public.t IS '{}';\n", lines.join("\n"))),
        prop::collection::vec("(pg_dump: )?[a-z ]{0,20}", 1..4)
            .prop_map(|lines| format!("/* a comment\n{}\n*/\nSELECT 1;\n", lines.join("\n"))),
        Just("\\restrict k3y\n".to_string()),
    ]
    .prop_map(Piece::Sql)
}

fn noise() -> impl Strategy<Value = String> {
    prop_oneof![
        "pg_dump: (creating|processing data for|reading) [A-Za-z \"._]{0,30}\n",
        "pg_dump: warning: [a-z ]{0,20}\npg_dump: detail: [a-z ]{0,20}\npg_dump: hint: [a-z ]{0,20}\n",
        Just("pg_dump: NOTICE:  hypertable data are in the chunks, no data will be copied\nDETAIL:  Data for hypertables are stored in the chunks of a hypertable so COPY TO of a hypertable will not copy any data.\nHINT:  Use \"COPY (SELECT * FROM <hypertable>) TO ...\" to copy all data in hypertable, or copy each chunk individually.\n".to_string()),
        Just("pg_dump: NOTICE:  from a trigger\nCONTEXT:  PL/pgSQL function public.noisy() line 3 at RAISE\nSQL statement \"SELECT public.noisy()\"\n".to_string()),
        Just("pg_dump: error: query failed: ERROR:  syntax error at or near \"x\"\nLINE 1: select x x\n                 ^\n".to_string()),
    ]
}

/// A dump and where noise goes: (pieces, noise before each piece, noise
/// inside each COPY block at row boundaries).
type Dump = (Vec<Piece>, Vec<Vec<String>>, Vec<Vec<(usize, String)>>);

fn dump() -> impl Strategy<Value = Dump> {
    prop::collection::vec(prop_oneof![sql_piece(), copy_piece()], 0..10).prop_flat_map(|pieces| {
        let n = pieces.len();
        (
            Just(pieces),
            prop::collection::vec(prop::collection::vec(noise(), 0..3), n + 1),
            prop::collection::vec(prop::collection::vec((0usize..10, noise()), 0..3), n),
        )
    })
}

fn render(
    pieces: &[Piece],
    before: Option<&[Vec<String>]>,
    inside: Option<&[Vec<(usize, String)>]>,
) -> String {
    let mut s = String::new();
    if before.is_some() {
        s.push_str("pg_dump: last built-in OID is 16383\n");
    }
    for (i, p) in pieces.iter().enumerate() {
        if let Some(b) = before {
            b[i].iter().for_each(|n| s.push_str(n));
        }
        match p {
            Piece::Sql(text) => s.push_str(text),
            Piece::Copy {
                header,
                table,
                columns,
                rows,
            } => {
                if before.is_some() {
                    s.push_str(&format!("pg_dump: processing data for table \"{table}\"\n"));
                }
                s.push_str(header);
                s.push('\n');
                if before.is_some() {
                    s.push_str(&format!("pg_dump: dumping contents of table \"{table}\"\n"));
                    // A relayed NOTICE before the first row (TimescaleDB does
                    // this for hypertables), unless the first row itself reads
                    // like a notice's continuation (documented ambiguity).
                    let first_looks_like_detail =
                        rows.first().is_some_and(|r| is_continuation(r.as_bytes()));
                    if *columns == 1
                        && inside.is_some_and(|ins| !ins[i].is_empty())
                        && !first_looks_like_detail
                    {
                        s.push_str("pg_dump: NOTICE:  hypertable data are in the chunks, no data will be copied\nDETAIL:  Data for hypertables are stored in the chunks.\nHINT:  Use \"COPY (SELECT * FROM <hypertable>) TO ...\".\n");
                    }
                }
                for (r, row) in rows.iter().enumerate() {
                    // Server notices can only be told from rows by field count.
                    if let Some(ins) = inside.filter(|_| *columns >= 2) {
                        ins[i]
                            .iter()
                            .filter(|(at, _)| *at == r)
                            .for_each(|(_, n)| s.push_str(n));
                    }
                    s.push_str(row);
                    s.push('\n');
                }
                s.push_str("\\.\n\n");
            }
        }
    }
    if let Some(b) = before {
        b[pieces.len()].iter().for_each(|n| s.push_str(n));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn noise_is_removed_and_nothing_else((pieces, before, inside) in dump()) {
        let clean = render(&pieces, None, None);
        let noisy = render(&pieces, Some(&before), Some(&inside));
        let (out, report) = run(&noisy);
        prop_assert_eq!(&out, &clean);
        prop_assert_eq!(report.lines_in - report.lines_out, report.removed);
    }

    #[test]
    fn a_clean_dump_is_unchanged((pieces, _, _) in dump()) {
        let clean = render(&pieces, None, None);
        let (out, report) = run(&clean);
        prop_assert_eq!(out, clean);
        prop_assert_eq!(report.removed, 0);
    }

    /// Cutting the input anywhere (a truncated dump) never panics and never
    /// emits more than was read.
    #[test]
    fn truncated_input_is_safe((pieces, before, inside) in dump(), cut in 0usize..4000) {
        let noisy = render(&pieces, Some(&before), Some(&inside));
        let cut = cut.min(noisy.len());
        let mut out = Vec::new();
        let r = sanitize(&noisy.as_bytes()[..cut], &mut out).unwrap();
        prop_assert!(out.len() as u64 <= r.bytes_in);
    }
}

fn guarded(input: &str) -> (String, SanitizeReport) {
    let opts = FilterOptions {
        remove_stderr: false,
        guard: Some(Guard {
            database: "restored".into(),
            restrict_key: None,
        }),
    };
    let mut out = Vec::new();
    let report = filter(input.as_bytes(), &mut out, &opts).unwrap();
    (String::from_utf8(out).unwrap(), report)
}

/// Every way a dump could reach the restoring host or another database is
/// kept out and named with its line; pg_dump's own `\restrict` lines and a
/// `\connect` to the target are dropped quietly; nothing else changes.
#[test]
fn the_guard_refuses_commands_that_reach_the_host() {
    let dump = "SET x = 1;\n\\! id > /tmp/drill-pwned\n\\o /tmp/drill-out\nSELECT 1;\n\\copy t to '/tmp/f'\nCOPY public.t (a) TO PROGRAM 'id > /tmp/p';\ncopy t from\n  program 'id';\n\\i /etc/passwd\n\\ir x.sql\nSELECT 2 \\g |cat\n\\gexec\n\\setenv PAGER x\n\\connect other\n\\w /tmp/w\n\\restrict abc\n\\connect restored\nSELECT 3;\n\\unrestrict abc\n";
    let (out, r) = guarded(dump);
    // A COPY ... PROGRAM over two lines loses its second: the statement
    // cannot run, and the refusal names it.
    assert_eq!(out, "SET x = 1;\nSELECT 1;\ncopy t from\nSELECT 3;\n");
    let lines: Vec<u64> = r.refused.iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, vec![2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15]);
    assert_eq!(r.refused_total, 12);
    assert_eq!(r.dropped_meta, 3);
    assert!(r.refused[0].1.contains("\\! id"), "{:?}", r.refused);
}

/// Backslashes inside strings, identifiers, comments, dollar-quoted bodies
/// and COPY data are not commands; a table named `program` is no program.
#[test]
fn the_guard_leaves_literals_comments_and_data_alone() {
    let dump = "SELECT '\\! not a command';\nSELECT E'a\\\\b' AS \"x\\y\";\n-- a comment \\! id\n/* \\o x */\nCREATE FUNCTION f() RETURNS int AS $$\n\\! echo inside a body\n$$ LANGUAGE sql;\nCOPY public.program (a, b) FROM stdin;\n\\N\t\\! id\n\\o /tmp/x\t2\n\\.\nCOPY program FROM stdin;\n\\.\n";
    let (out, r) = guarded(dump);
    assert_eq!(out, dump);
    assert!(r.refused.is_empty(), "{:?}", r.refused);
}

/// With a key, drill's own `\restrict` goes first: psql refuses any
/// backslash command after it, whatever the scan decided.
#[test]
fn the_guard_puts_drills_restrict_first() {
    let opts = FilterOptions {
        remove_stderr: true,
        guard: Some(Guard {
            database: "d".into(),
            restrict_key: Some("K3Y".into()),
        }),
    };
    let mut out = Vec::new();
    filter(&b"\\restrict theirs\nSELECT 1;\n"[..], &mut out, &opts).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\\restrict K3Y\nSELECT 1;\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A dump drill would make, COPY rows that read like backslash commands
    /// included, passes the guard byte for byte (but for pg_dump's own
    /// `\restrict` lines, which the guard replaces with drill's): they are
    /// data, and a filter that dropped them would lose rows.
    #[test]
    fn legitimate_dumps_pass_the_guard_unchanged((pieces, _, _) in dump()) {
        let clean = render(&pieces, None, None);
        let (out, report) = guarded(&clean);
        let without_restrict: String = clean
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("\\restrict "))
            .collect();
        prop_assert_eq!(out, without_restrict);
        prop_assert!(report.refused.is_empty(), "{:?}", report.refused);
    }

    /// A command put between the pieces of a dump is always caught, with
    /// its line.
    #[test]
    fn an_injected_command_is_always_caught(
        (pieces, _, _) in dump(),
        at in 0usize..10,
        cmd in prop_oneof![Just("\\! touch /tmp/x"), Just("\\o /tmp/o"), Just("\\copy a to '/tmp/b'"), Just("COPY a TO PROGRAM 'id';")],
    ) {
        let at = at.min(pieces.len());
        let head = render(&pieces[..at], None, None);
        let tail = render(&pieces[at..], None, None);
        let dump = format!("{head}{cmd}\n{tail}");
        let (_, report) = guarded(&dump);
        let line = head.matches('\n').count() as u64 + 1;
        prop_assert_eq!(report.refused_total, 1, "{:?}", report.refused);
        prop_assert_eq!(report.refused[0].0, line);
    }
}
