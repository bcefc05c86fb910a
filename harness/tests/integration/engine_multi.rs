//! The engine with several services: each is judged after the last step
//! that names it, and judged again at the end, so a later step that undoes
//! it (here a user's command attributed to postgres that deletes a Redis
//! key) is caught, not hidden behind an early green.

use std::path::Path;

use drill::engine::{DrillOptions, Verdict};

const SCENARIO: &str = r#"
description = "a later step undoes a service judged earlier"
[services.postgres]
engine = "postgres"
[services.redis]
[fixture]
ticks = 2000
[fault]
action = "restart"
service = "all"
[[recovery]]
name = "undone"
steps = [
  { step = "redis", run = "PING" },
  { step = "shell", service = "postgres", run = "redis-cli DEL cache:pairs" },
]
[expect]
rto = "1 min"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_undone_by_a_later_step_is_not_recovered() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/undone.toml");
    let sc = drill::scenario::parse_str(SCENARIO, &path).unwrap();
    let report = drill::engine::run(&sc, &DrillOptions::default())
        .await
        .unwrap();
    let rec = &report.recoveries[0];
    assert_eq!(report.verdict, Verdict::Fail, "{}", rec.summary);
    let keys = rec.checks.iter().find(|c| c.name == "redis keys").unwrap();
    assert!(!keys.ok);
    assert!(
        keys.evidence.as_deref().unwrap().contains("cache:pairs"),
        "{keys:?}"
    );
    // Redis was green after its own step, then undone: no RTO for it.
    let redis = rec
        .rto_per_service
        .iter()
        .find(|s| s.service == drill::ServiceKind::Redis)
        .unwrap();
    assert_eq!(redis.rto, None);
    // Each service can be reached at a pause, and --keep says how.
    let timeline: Vec<&str> = report.timeline.iter().map(|e| e.step.as_str()).collect();
    assert_eq!(
        timeline.iter().filter(|s| **s == "checks redis").count(),
        2,
        "judged after its step and again at the end: {timeline:?}"
    );
}
