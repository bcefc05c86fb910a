//! `--pause-at`: the engine stops at the named points with the broken state
//! left as it is, hands over how to connect, and does not count the pause in
//! the RTO.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drill::engine::{DrillOptions, Pause, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_at_the_fault_with_the_broken_state_reachable() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/verbose-dump.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ticks = 20000 ", "ticks = 2000  ");
    let scenario = drill::scenario::parse_str(&text, &path).unwrap();
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let record = seen.clone();
    let pause = Arc::new(move |p: &Pause| {
        // Poke at the broken state the way a person would: with psql.
        let url = p.connect[0]
            .split('\'')
            .nth(1)
            .expect("a psql URL")
            .to_string();
        let out = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-X",
                "-A",
                "-t",
                "-c",
                "SELECT to_regclass('public.pairs') IS NOT NULL",
            ])
            .output()
            .unwrap();
        let pairs_exist = String::from_utf8_lossy(&out.stdout).trim() == "t";
        record.lock().unwrap().push((p.at.clone(), pairs_exist));
        std::thread::sleep(Duration::from_millis(1500));
    });
    let opts = DrillOptions {
        pause_at: vec!["fault".into()],
        pause: Some(pause),
        ..Default::default()
    };
    let report = drill::engine::run(&scenario, &opts).await.unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("recovery naive › fault: wipe".to_string(), false),
            ("recovery sanitized › fault: wipe".to_string(), false)
        ]
    );
    let main = report.main_recovery().unwrap();
    let phase: Duration = report
        .timeline
        .iter()
        .filter(|e| e.phase == "recovery sanitized")
        .map(|e| e.duration)
        .sum();
    let rto = main.rto.unwrap();
    assert!(
        rto <= phase + Duration::from_millis(50),
        "RTO {rto:?} must exclude the 1.5 s pause (steps took {phase:?})"
    );
}
