//! Scenario loading: the annotated example parses, and each kind of mistake
//! gives an error naming the line, key and what is allowed. Malformed text of
//! any shape never panics (property test).

use std::path::Path;

use proptest::prelude::*;

use super::*;

const GOOD: &str = r#"
description = "verbose pg_dump output breaks the restore"
[services.postgres]
engine = "postgres"
[backup]
method = "pg-dump"
verbose = true
stderr = "merged"
[fault]
action = "wipe"
[[recovery]]
name = "naive"
expect = "fails"
steps = [{ step = "psql-restore" }]
[[recovery]]
name = "sanitized"
steps = [{ step = "psql-restore", sanitize = true, on-error-stop = true }]
[expect]
rto = "2 min"
"#;

/// Replaces the first occurrence of `from` in GOOD and checks the error
/// text contains each of `expected`.
fn check(from: &str, to: &str, expected: &[&str]) {
    assert!(GOOD.contains(from), "test bug: {from:?} not in GOOD");
    let src = GOOD.replacen(from, to, 1);
    let e = parse_str(&src, Path::new("scenarios/x.toml")).expect_err("should be refused");
    let text = e.to_string();
    for want in expected {
        assert!(text.contains(want), "error {text:?} lacks {want:?}");
    }
    assert!(text.starts_with("scenarios/x.toml:"), "{text}");
}

#[test]
fn the_example_parses_with_defaults() {
    let sc = parse_str(GOOD, Path::new("scenarios/verbose-dump.toml")).unwrap();
    assert_eq!(sc.name, "verbose-dump");
    assert_eq!(sc.recoveries.len(), 2);
    assert_eq!(sc.expect.rto.0.as_secs(), 120);
    assert_eq!(sc.fixture.ticks, 20_000);
    assert_eq!(sc.services.postgres.unwrap().database, "nexwave");
    assert_eq!(
        sc.recoveries[1].steps[0],
        Step::PsqlRestore {
            sanitize: true,
            on_error_stop: true,
            timeout: None
        }
    );
}

#[test]
fn unknown_key_names_line_and_allowed_keys() {
    check(
        "action = \"wipe\"",
        "action = \"wipe\"\nsevice = \"pg\"",
        &[":11:", "fault.sevice", "unknown field", "`action`"],
    );
}

#[test]
fn unknown_fault_lists_the_faults() {
    check(
        "\"wipe\"",
        "\"explode\"",
        &[":10:", "fault.action", "explode", "wipe", "drop-database"],
    );
}

#[test]
fn unknown_step_lists_the_steps() {
    check(
        "step = \"psql-restore\" }",
        "step = \"pray\" }",
        &["recovery[0].steps[0].step", "pray", "psql-restore"],
    );
}

#[test]
fn wrong_type_is_named() {
    check(
        "verbose = true",
        "verbose = \"yes\"",
        &[":7:", "backup.verbose", "invalid type", "boolean"],
    );
}

#[test]
fn bad_durations_say_what_is_fine() {
    check("\"2 min\"", "\"2 fortnights\"", &["expect.rto", "e.g."]);
    check("\"2 min\"", "120", &["expect.rto", "no unit", "\"120s\""]);
}

#[test]
fn missing_section_is_named() {
    check(
        "[fault]\naction = \"wipe\"\n",
        "",
        &["missing field `fault`"],
    );
}

#[test]
fn duplicate_recovery_points_at_it() {
    check(
        "name = \"naive\"",
        "name = \"sanitized\"",
        &[":16:", "recovery[1].name", "declared twice"],
    );
}

#[test]
fn fault_on_unknown_or_undeclared_service() {
    check(
        "action = \"wipe\"",
        "action = \"wipe\"\nservice = \"redis\"",
        &[
            ":11:",
            "fault.service",
            "`redis`, which is not declared",
            "postgres",
        ],
    );
    check(
        "action = \"wipe\"",
        "action = \"wipe\"\nservice = \"mongodb\"",
        &["fault.service", "`mongodb`"],
    );
}

/// The multi-service rules: what a service has, what a step needs, what an
/// expectation judges.
#[test]
fn services_faults_steps_and_expectations_must_fit_together() {
    let with_redis = |from: &str, to: &str, expected: &[&str]| {
        let src = GOOD
            .replace("[backup]", "[services.redis]\n[backup]")
            .replacen(from, to, 1);
        let e = parse_str(&src, Path::new("scenarios/x.toml")).expect_err("should be refused");
        for want in expected {
            assert!(e.to_string().contains(want), "error {e} lacks {want:?}");
        }
    };
    check(
        "action = \"wipe\"",
        "action = \"corrupt-aof\"",
        &["fault.action", "`corrupt-aof` does not apply to postgres"],
    );
    with_redis(
        "action = \"wipe\"",
        "action = \"corrupt-aof\"\nservice = \"redis\"",
        &["fault.damage", "truncate-tail"],
    );
    with_redis(
        "action = \"wipe\"",
        "action = \"drop-database\"\nservice = \"redis\"",
        &["`drop-database` does not apply to redis"],
    );
    check(
        "rto = \"2 min\"",
        "rto = \"2 min\"\n[expect.redis]\nkeys = \"same-as-before\"",
        &["expect.redis", "not declared"],
    );
    with_redis(
        "{ step = \"psql-restore\" }",
        "{ step = \"redis-restore-rdb\" }",
        &["recovery[0].steps[0]", "none is taken", "[backup.redis]"],
    );
    with_redis(
        "rto = \"2 min\"",
        "rto = \"2 min\"\n[expect.redis]\nkeys = \"lost-as-predicted\"",
        &["expect.redis.keys", "corrupt-aof"],
    );
    check(
        "{ step = \"psql-restore\" }",
        "{ step = \"clickhouse-restore\" }",
        &["acts on clickhouse, which is not declared"],
    );
    // And a whole full-system file parses.
    let full = GOOD
        .replace(
            "[backup]",
            "[services.redis]\n[services.clickhouse]\n[backup]",
        )
        .replace(
            "stderr = \"merged\"",
            "stderr = \"merged\"\n[backup.redis]\nmethod = \"rdb-copy\"\n[backup.clickhouse]\nmethod = \"auto\"",
        )
        .replace("action = \"wipe\"", "action = \"wipe\"\nservice = \"all\"")
        .replace(
            "sanitize = true, on-error-stop = true }",
            "sanitize = true, on-error-stop = true }, { step = \"redis-restore-rdb\" }, { step = \"clickhouse-restore\" }",
        );
    let sc = parse_str(&full, Path::new("full.toml")).unwrap();
    assert_eq!(sc.services.kinds().len(), 3);
    assert_eq!(sc.fault.targets(&sc.services.kinds()).len(), 3);
    assert_eq!(
        sc.recoveries[1].steps[2].service(),
        Some(crate::vocab::ServiceKind::ClickHouse)
    );
}

#[test]
fn syntax_error_has_position() {
    check("[backup]", "[backup", &[":5:", "fix the TOML syntax"]);
}

#[test]
fn only_failing_recoveries_is_refused() {
    check(
        "name = \"sanitized\"",
        "name = \"sanitized\"\nexpect = \"fails\"",
        &["nothing proves"],
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary text: an error or a scenario, never a panic.
    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        let _ = parse_str(&src, Path::new("fuzz.toml"));
    }

    /// The good file cut, spliced or with a byte replaced: never a panic,
    /// and every error names the file.
    #[test]
    fn mutated_scenarios_never_panic(cut in 0..GOOD.len(), len in 0usize..40, junk in "[\\[\\]{}=\"'a-z0-9 \n.,-]{0,12}") {
        let mut s = GOOD.to_string();
        let mut start = cut.min(s.len());
        while !s.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(s.len());
        while !s.is_char_boundary(end) { end -= 1; }
        s.replace_range(start..end, &junk);
        if let Err(e) = parse_str(&s, Path::new("m.toml")) {
            prop_assert!(e.to_string().starts_with("m.toml"));
        }
    }
}

#[test]
fn shell_backup_needs_a_command() {
    check(
        "method = \"pg-dump\"",
        "method = \"shell\"",
        &["backup.run", "needs the command", "run = "],
    );
    check(
        "verbose = true",
        "verbose = true\nrun = \"./b.sh\"",
        &["backup.run", "only for `method = \"shell\"`"],
    );
}

#[test]
fn shell_and_pg_restore_steps_parse() {
    let src = GOOD.replace(
        "steps = [{ step = \"psql-restore\" }]",
        "steps = [{ step = \"shell\", run = \"./restore.sh \\\"$DRILL_BACKUP_FILE\\\"\", workdir = \"../fixtures/scripts\", timeout = \"5 min\" }, { step = \"pg-restore\" }]",
    );
    let sc = parse_str(&src, Path::new("s.toml")).unwrap();
    assert_eq!(sc.recoveries[0].steps[0].kind(), "shell");
    assert_eq!(
        sc.recoveries[0].steps[1],
        Step::PgRestore {
            exit_on_error: true,
            tables: vec![],
            data_only: false,
            disable_triggers: false
        }
    );
    let e = parse_str(
        &src.replace("run = \"./restore.sh", "command = \"./restore.sh"),
        Path::new("s.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `command`"), "{e}");
}

#[test]
fn settings_drill_manages_and_empty_names_are_refused() {
    check(
        "engine = \"postgres\"",
        "engine = \"postgres\"\nsettings = { port = \"5432\" }",
        &["settings.port", "managed by drill"],
    );
    check(
        "engine = \"postgres\"",
        "engine = \"postgres\"\ndatabase = \"\"",
        &["services.postgres.database", "not a usable database name"],
    );
    check(
        "rto = \"2 min\"",
        "rto = \"2 min\"\nrows = \"ignore\"\nschema = \"ignore\"",
        &["nothing would be checked"],
    );
}

#[test]
fn table_row_expectations_parse_or_say_how() {
    let sc = parse_str(
        &GOOD.replace(
            "rto = \"2 min\"",
            "rto = \"2 min\"\ntable-rows = { pairs = \"34\", \"public.ticks\" = \">= 20_000\" }",
        ),
        Path::new("s.toml"),
    )
    .unwrap();
    assert_eq!(sc.expect.table_rows["pairs"], RowCount::Exactly(34));
    assert_eq!(
        sc.expect.table_rows["public.ticks"],
        RowCount::AtLeast(20_000)
    );
    check(
        "rto = \"2 min\"",
        "rto = \"2 min\"\ntable-rows = { pairs = \"many\" }",
        &["expect.table-rows.pairs", "\">= 20000\""],
    );
}

#[test]
fn restart_settings_drill_manages_are_refused() {
    check(
        "action = \"wipe\"",
        "action = \"restart-with\"\nsettings = { port = \"5433\" }",
        &["fault.settings.port", "managed by drill"],
    );
}
