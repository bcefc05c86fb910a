//! Scenario loading: the annotated example parses, and each kind of mistake
//! gives an error naming the line, key and what is allowed. Malformed text of
//! any shape never panics (property test).

use std::path::Path;
use std::time::Duration;

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
            jobs: None,
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
        "steps = [{ step = \"shell\", run = \"./restore-database.sh \\\"$DRILL_BACKUP_FILE\\\"\", workdir = \"../fixtures/scripts\", timeout = \"5 min\" }, { step = \"pg-restore\" }]",
    );
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/s.toml");
    let sc = parse_str(&src, &here).unwrap();
    assert_eq!(sc.recoveries[0].steps[0].kind(), "shell");
    assert_eq!(
        sc.recoveries[0].steps[1],
        Step::PgRestore {
            exit_on_error: true,
            tables: vec![],
            data_only: false,
            disable_triggers: false,
            jobs: None,
            timeout: None
        }
    );
    let e = parse_str(
        &src.replace(
            "run = \"./restore-database.sh",
            "command = \"./restore-database.sh",
        ),
        &here,
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

/// A scenario generated from the model's keys with random values.
fn generated() -> impl Strategy<Value = String> {
    let dur = prop_oneof![
        Just("0s".to_string()),
        (1u64..120).prop_map(|n| format!("{n}s")),
        (1u64..500).prop_map(|n| format!("{n}ms")),
        (1u64..30).prop_map(|n| format!("{n} years")),
        (1u64..90).prop_map(|n| format!("{n} min")),
    ];
    let table = prop_oneof![
        Just("ticks"),
        Just("pairs"),
        Just("trades"),
        Just("orders_x"),
        Just("candles_15m_ohlcv"),
    ];
    let probe = prop_oneof![
        Just("SELECT true"),
        Just("ticks have rows"),
        Just("SELECT (1"),
        Just("WITH x AS (SELECT 1) SELECT count(*) = 1 FROM x"),
    ];
    let workdir = prop_oneof![Just("."), Just("../fixtures/scripts"), Just("gone")];
    let step = prop_oneof![
        Just("{ step = \"psql-restore\" }".to_string()),
        dur.clone()
            .prop_map(|d| format!("{{ step = \"sql\", run = \"SELECT 1\", timeout = \"{d}\" }}")),
        Just("{ step = \"sql\", run = \" \" }".to_string()),
        workdir.prop_map(|w| format!("{{ step = \"shell\", run = \"true\", workdir = \"{w}\" }}")),
    ];
    (
        dur.clone(),
        dur.clone(),
        dur.clone(),
        dur,
        prop_oneof![Just(0u64), 1u64..100_000, Just(9_000_000_000_000)],
        table,
        probe,
        step,
    )
        .prop_map(|(rto, rpo, run_for, every, ticks, table, probe, step)| {
            format!(
                "description = \"generated\"\n[services.postgres]\nengine = \"postgres\"\n[fixture]\nticks = {ticks}\n[workload]\nrate = 50\nrun-for = \"{run_for}\"\n[backup]\nmethod = \"pg-dump\"\nevery = \"{every}\"\n[fault]\naction = \"wipe\"\n[[recovery]]\nname = \"r\"\nsteps = [{step}]\n[expect]\nrto = \"{rto}\"\nrpo = \"{rpo}\"\ntable-rows = {{ {} = \">= 1\" }}\nprobes = [\"{probe}\"]\n",
                table
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// What validation accepts has everything a run needs before any
    /// server starts: every duration within its bound, an RPO that can be
    /// missed, a fixture of a drill's size, tables the fixture has, probes
    /// that read as queries, commands that exist. (Checked here by their
    /// definitions, independently of the loader's code.)
    #[test]
    fn an_accepted_scenario_cannot_fail_for_a_reason_validation_knew(src in generated()) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/generated.toml");
        let Ok(sc) = parse_str(&src, &path) else { return Ok(()); };
        let w = sc.workload.as_ref().unwrap();
        prop_assert!(sc.expect.rto.0 >= Duration::from_secs(1) && sc.expect.rto.0 <= Duration::from_secs(7 * 86_400));
        prop_assert!(w.run_for.0 >= Duration::from_millis(100) && w.run_for.0 <= Duration::from_secs(3_600));
        prop_assert!(sc.expect.rpo.unwrap().0 < w.run_for.0);
        prop_assert!(sc.backup.every.unwrap().0 < w.run_for.0);
        prop_assert!(sc.fixture.ticks >= 1 && sc.fixture.ticks <= 50_000_000);
        for t in sc.expect.table_rows.keys() {
            prop_assert!(["ticks", "pairs", "candles_15m_ohlcv"].contains(&t.as_str()), "{t}");
        }
        for p in &sc.expect.probes {
            prop_assert!(p.starts_with("SELECT") || p.starts_with("WITH"));
            prop_assert_eq!(p.matches('(').count(), p.matches(')').count());
        }
        for step in sc.recoveries.iter().flat_map(|r| &r.steps) {
            if let Some(t) = step.timeout() {
                prop_assert!(t.0 >= Duration::from_secs(1) && t.0 <= Duration::from_secs(86_400));
            }
            match step {
                Step::Sql { run, .. } => prop_assert!(!run.trim().is_empty()),
                Step::Shell { workdir, .. } => {
                    let dir = path.parent().unwrap().join(workdir.as_deref().unwrap_or(Path::new(".")));
                    prop_assert!(dir.is_dir(), "{}", dir.display());
                }
                _ => {}
            }
        }
    }
}

/// Which PostgreSQL versions a drill needs: servers (images in Docker)
/// and the clients that run here (a `pg-dump` step's), for installing
/// them first and for the tests' skip decisions.
#[test]
fn a_drill_names_its_server_and_client_versions() {
    let src = r#"
description = "rollback"
[services.postgres]
version = 18
[fault]
action = "cutover"
[[recovery]]
name = "old-dump"
expect = "fails"
steps = [{ step = "pg-dump", version = 15 }]
[[recovery]]
name = "into-17"
steps = [{ step = "pg-dump" }, { step = "new-server", version = 17 }, { step = "psql-restore" }]
[[recovery]]
name = "upgrade"
steps = [{ step = "stop", service = "postgres" }, { step = "pg-upgrade", version = 19, mode = "link" }]
[expect]
rto = "1 min"
"#;
    let sc = parse_str(src, Path::new("scenarios/x.toml")).unwrap();
    assert_eq!(sc.pg_server_versions(), [17, 18, 19]);
    assert_eq!(sc.pg_client_versions(), [15]);
    assert_eq!(sc.pg_versions(), [15, 17, 18, 19]);
}

#[test]
fn limits_and_restore_connections_are_read_and_bad_ones_named() {
    let here = Path::new("s.toml");
    let with = |pg: &str, steps: &str| {
        GOOD.replace(
            "engine = \"postgres\"",
            &format!("engine = \"postgres\"\n{pg}"),
        )
        .replace(
            "steps = [{ step = \"psql-restore\", sanitize = true, on-error-stop = true }]",
            steps,
        )
    };
    let ok = "steps = [{ step = \"psql-restore\", jobs = 2 }]";
    let sc = parse_str(&with("cpus = 1.5\nmemory = \"2 GiB\"", ok), here).unwrap();
    let pg = sc.services.postgres.as_ref().unwrap();
    assert_eq!(pg.extras.limits.cpus, Some(1.5));
    assert_eq!(pg.extras.limits.memory, Some(2 << 30));
    assert!(matches!(
        sc.recoveries[1].steps[0],
        Step::PsqlRestore { jobs: Some(2), .. }
    ));
    for (pg, steps, key, says) in [
        (
            "cpus = 0",
            ok,
            "services.postgres.cpus",
            "no limit Docker takes",
        ),
        (
            "memory = \"1 MiB\"",
            ok,
            "services.postgres.memory",
            "too little memory",
        ),
        ("memory = \"lots\"", ok, "memory", "write a size such as"),
        (
            "",
            "steps = [{ step = \"psql-restore\", jobs = 0 }]",
            "recovery[1].steps[0].jobs",
            "connections",
        ),
    ] {
        let e = parse_str(&with(pg, steps), here).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(key) && text.contains(says),
            "{pg} {steps}: {text}"
        );
        assert!(e.line > 0, "{text}: names the line");
    }
}
