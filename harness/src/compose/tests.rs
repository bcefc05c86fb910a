//! The compose import on seed 003's WallStreetSim file and on small files
//! written for each rule: what is taken, what is overridden, and errors
//! that name the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn wallstreetsim() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/compose/wallstreetsim/docker-compose.db.yml")
}

fn shell(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A compose file in a temp dir; returns (dir, file).
fn write(text: &str, others: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, text).unwrap();
    for (name, content) in others {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    (dir, file)
}

#[test]
fn seed_003s_stack_is_taken_and_what_drill_owns_is_overridden() {
    let got = import(&wallstreetsim(), &BTreeMap::new(), &shell(&[])).unwrap();
    assert_eq!(got.project, "wallstreetsim");
    assert_eq!(got.not_drilled, ["api"]);
    let pg = &got.services[0];
    assert_eq!(pg.kind, ServiceKind::Postgres);
    assert_eq!(pg.container, "wss_postgres");
    assert_eq!(pg.volumes, ["wallstreetsim_postgres_data"]);
    assert_eq!(pg.apply.user.as_deref(), Some("wss_user"));
    assert_eq!(pg.apply.database.as_deref(), Some("wallstreetsim"));
    // From the bind-mounted postgresql.conf, and the command line (with
    // PG_MAX_CONNECTIONS from .env) winning over it.
    assert_eq!(pg.apply.settings["shared_buffers"], "128MB");
    assert_eq!(pg.apply.settings["max_connections"], "150");
    assert_eq!(pg.apply.settings["log_min_duration_statement"], "1000");
    assert!(!pg.apply.settings.contains_key("listen_addresses"));
    let over = pg.overridden.join("\n");
    for owned in [
        "POSTGRES_PASSWORD",
        "listen_addresses",
        "ports",
        "volume wallstreetsim_postgres_data",
        "restart",
        "healthcheck",
    ] {
        assert!(over.contains(owned), "{owned} not overridden in:\n{over}");
    }
    assert_eq!(pg.apply.extras.env, [("TZ".to_string(), "UTC".to_string())]);
    assert!(pg.not_native.iter().any(|n| n.contains("TZ")));

    let redis = &got.services[1];
    assert_eq!(
        (redis.kind, redis.container.as_str()),
        (ServiceKind::Redis, "wss_redis")
    );
    assert_eq!(redis.volumes, ["wallstreetsim_redis_data"]);
    assert_eq!(redis.apply.appendonly, Some(true));
    assert_eq!(redis.apply.save.as_deref(), Some("900 1 300 10 60 10000"));
    assert_eq!(redis.apply.settings["maxmemory"], "256mb");
    assert_eq!(redis.apply.settings["maxmemory-policy"], "noeviction");
    let over = redis.overridden.join("\n");
    assert!(
        over.contains("requirepass") && over.contains("bind"),
        "{over}"
    );
    assert!(
        !over.contains("change-me-too"),
        "a password in the report: {over}"
    );

    let ch = &got.services[2];
    assert_eq!(ch.kind, ServiceKind::ClickHouse);
    assert_eq!(ch.apply.database.as_deref(), Some("wss_analytics"));
    assert_eq!(ch.apply.extras.files.len(), 1);
    assert_eq!(ch.apply.extras.files[0].folder, "config.d");
    assert_eq!(ch.apply.extras.files[0].name, "limits.xml");
    assert!(ch.overridden.iter().any(|o| o.contains("ulimits")));
}

#[test]
fn the_shell_overrides_dot_env_and_required_variables_are_required() {
    let got = import(
        &wallstreetsim(),
        &BTreeMap::new(),
        &shell(&[("POSTGRES_DB", "from_shell")]),
    )
    .unwrap();
    assert_eq!(
        got.services[0].apply.database.as_deref(),
        Some("from_shell")
    );

    let (_d, file) = write(
        "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: ${PW:?put PW in .env}\n",
        &[],
    );
    let e = import(&file, &BTreeMap::new(), &shell(&[])).unwrap_err();
    assert_eq!((e.line, e.column), (5, 26), "{e}");
    assert_eq!(e.key, "services.db.environment.POSTGRES_PASSWORD");
    assert!(
        e.message.contains("PW") && e.message.contains("put PW in .env"),
        "{e}"
    );
    assert_eq!(e.file, file);
}

#[test]
fn errors_name_the_file_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("services:\n  db:\n    image: [postgres\n", 4, "", "YAML"),
        ("version: '3'\n", 1, "services", "no `services:`"),
        (
            "services:\n  web:\n    image: nginx\n",
            2,
            "services",
            "no PostgreSQL",
        ),
        (
            "services:\n  a:\n    image: postgres:15\n  b:\n    image: timescale/timescaledb:latest-pg16\n",
            4,
            "services.b",
            "compose-services",
        ),
        (
            "services:\n  db:\n    ports: [5432]\n",
            2,
            "services.db",
            "image",
        ),
        (
            "services:\n  db:\n    image: postgres\n    command: postgres -c \"shared_buffers=1GB\n",
            4,
            "services.db.command",
            "quote",
        ),
    ];
    for (text, line, key, needle) in cases {
        let (_d, file) = write(text, &[]);
        let e = import(&file, &BTreeMap::new(), &shell(&[])).unwrap_err();
        let all = format!("{e}");
        assert!(
            e.line == *line || (*line == 4 && e.line >= 3),
            "line {} for {text:?}: {all}",
            e.line
        );
        assert_eq!(e.key, *key, "{all}");
        assert!(
            all.contains(needle) || e.help.contains(needle),
            "{needle} not in {all} / {}",
            e.help
        );
    }
}

#[test]
fn a_mapping_picks_services_by_name() {
    let (_d, file) = write(
        "name: Shop\nservices:\n  db:\n    image: registry.local/custom-db:1\n  cache:\n    image: valkey/valkey:8\n    volumes: [cachedata:/data]\nvolumes:\n  cachedata:\n    name: shop-cache\n",
        &[],
    );
    let map: Mapping = [("postgres".to_string(), "db".to_string())].into();
    let got = import(&file, &map, &shell(&[])).unwrap();
    assert_eq!(got.services.len(), 1);
    assert_eq!(got.services[0].kind, ServiceKind::Postgres);
    assert_eq!(got.services[0].container, "shop-db-1");
    assert_eq!(got.not_drilled, ["cache"]);
    // Without a mapping, the image names the engine; a declared `name:`
    // is the volume's Docker name.
    let (_d2, file2) = write(
        "services:\n  cache:\n    image: valkey/valkey:8\n    volumes: [cachedata:/data]\nvolumes:\n  cachedata:\n    name: shop-cache\n",
        &[],
    );
    let got = import(&file2, &BTreeMap::new(), &shell(&[])).unwrap();
    assert_eq!(got.services[0].volumes, ["shop-cache"]);
    let bad: Mapping = [("postgres".to_string(), "nope".to_string())].into();
    let e = import(&file, &bad, &shell(&[])).unwrap_err();
    assert!(
        e.message.contains("nope") && e.message.contains("db, cache"),
        "{e}"
    );
}

#[test]
fn env_files_and_list_environment_are_read_as_compose_does() {
    let (_d, file) = write(
        "services:\n  pg:\n    image: postgres:15\n    env_file: [db.env]\n    environment:\n      - POSTGRES_DB=shop\n      - FROM_SHELL\n",
        &[("db.env", "POSTGRES_USER=shopper\nPOSTGRES_DB=ignored\n")],
    );
    let got = import(&file, &BTreeMap::new(), &shell(&[("FROM_SHELL", "yes")])).unwrap();
    let pg = &got.services[0];
    assert_eq!(pg.apply.user.as_deref(), Some("shopper"));
    assert_eq!(pg.apply.database.as_deref(), Some("shop"));
    assert!(
        pg.apply
            .extras
            .env
            .contains(&("FROM_SHELL".into(), "yes".into()))
    );
    let (_d, file) = write(
        "services:\n  pg:\n    image: postgres:15\n    env_file: missing.env\n",
        &[],
    );
    let e = import(&file, &BTreeMap::new(), &shell(&[])).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("missing.env"), "{e}");
}

#[test]
fn recognise_reads_the_image_name() {
    for (image, kind) in [
        ("postgres:16", Some(ServiceKind::Postgres)),
        ("timescale/timescaledb-ha:pg16", Some(ServiceKind::Postgres)),
        ("postgis/postgis:16-3.4", Some(ServiceKind::Postgres)),
        ("bitnami/redis:7.2", Some(ServiceKind::Redis)),
        (
            "clickhouse/clickhouse-server:24.8",
            Some(ServiceKind::ClickHouse),
        ),
        (
            "yandex/clickhouse-server:20.3",
            Some(ServiceKind::ClickHouse),
        ),
        ("nginx:1.27", None),
        ("redis/redisinsight", None),
        ("prometheuscommunity/postgres-exporter", None),
    ] {
        assert_eq!(recognise(image), kind, "{image}");
    }
}
