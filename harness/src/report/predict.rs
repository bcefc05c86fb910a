//! Production RTO, predicted from scaled-down drills: a least-squares line
//! of restore time against backup size over a scenario's passing runs in
//! the history (`bytes`, `rto_ms`), read at production's size, with a 95%
//! prediction interval (Student's t on the residuals, widening with the
//! distance from the sizes measured: extrapolating from megabytes to
//! hundreds of gigabytes says so in its ±).
//!
//! What it assumes: the restore's time grows linearly with its size (COPY,
//! index builds and checksums do, at one machine's speed). What it does
//! not know: a production machine's other speed, or a restore that turns
//! superlinear (an index larger than memory). The line's fixed part is
//! drill's own (server start in the recovery, checks).

use std::time::Duration;

use super::history::HistoryEntry;
pub use crate::vocab::{fmt_bytes, parse_size};

/// A prediction of one scenario's RTO at one size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub scenario: String,
    pub backend: String,
    /// The size predicted for, in bytes.
    pub bytes: u64,
    #[serde(with = "crate::vocab::millis")]
    pub rto: Duration,
    /// Half the 95% prediction interval.
    #[serde(with = "crate::vocab::millis")]
    pub plus_minus: Duration,
    /// Milliseconds per MiB, and at size zero.
    pub ms_per_mib: f64,
    pub fixed_ms: f64,
    /// Passing runs fitted, and the smallest and largest size among them.
    pub runs: usize,
    pub sizes: (u64, u64),
    #[serde(with = "crate::vocab::millis")]
    pub target: Duration,
    /// The prediction is over the target.
    pub over: bool,
}

impl Prediction {
    /// One line for people.
    pub fn line(&self) -> String {
        let fmt = crate::vocab::fmt_duration;
        let factor = self.bytes as f64 / self.sizes.1.max(1) as f64;
        format!(
            "{} [{}]: predicted RTO at {}: {} ± {} (95%; {} runs at {}–{}{}; {:.1} ms/MiB + {:.0} ms) vs target {}{}",
            self.scenario,
            self.backend,
            fmt_bytes(self.bytes),
            fmt(self.rto),
            fmt(self.plus_minus),
            self.runs,
            fmt_bytes(self.sizes.0),
            fmt_bytes(self.sizes.1),
            if factor > 1.5 {
                format!(", extrapolated {factor:.0}x")
            } else {
                String::new()
            },
            self.ms_per_mib,
            self.fixed_ms,
            fmt(self.target),
            if self.over { ": OVER" } else { "" }
        )
    }
}

/// Why no prediction can be made, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoPrediction(pub String);

impl std::fmt::Display for NoPrediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fits `scenario` on `backend` from `history` and predicts its RTO at
/// `bytes`. Err: why no prediction can be made, for people.
pub fn predict(
    history: &[HistoryEntry],
    scenario: &str,
    backend: &str,
    bytes: u64,
    target: Duration,
) -> Result<Prediction, NoPrediction> {
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter(|h| h.scenario == scenario && h.backend == backend && h.verdict == "pass")
        .filter_map(|h| Some((h.bytes? as f64, h.rto_ms? as f64)))
        .collect();
    let mut sizes: Vec<u64> = points.iter().map(|p| p.0 as u64).collect();
    sizes.sort();
    sizes.dedup();
    if points.len() < 3 || sizes.len() < 2 {
        return Err(NoPrediction(format!(
            "{scenario} [{backend}]: no prediction: {} passing runs with a backup size in the history, at {} sizes; \
             it needs 3 runs at 2 or more sizes (run the scenario at a few fixture sizes with --history)",
            points.len(),
            sizes.len()
        )));
    }
    let fit = Fit::of(&points);
    let x0 = bytes as f64;
    let rto_ms = fit.at(x0).max(0.0);
    Ok(Prediction {
        scenario: scenario.into(),
        backend: backend.into(),
        bytes,
        rto: Duration::from_secs_f64(rto_ms / 1e3),
        plus_minus: Duration::from_secs_f64(fit.half_interval(x0) / 1e3),
        ms_per_mib: fit.slope * (1u64 << 20) as f64,
        fixed_ms: fit.intercept,
        runs: points.len(),
        sizes: (sizes[0], *sizes.last().expect("two sizes")),
        target,
        over: rto_ms > target.as_secs_f64() * 1e3,
    })
}

/// Writes `dir/prediction.json`: every prediction, for machines.
pub fn write(
    dir: &std::path::Path,
    predictions: &[Prediction],
) -> crate::Result<std::path::PathBuf> {
    let path = dir.join("prediction.json");
    let text = serde_json::to_string_pretty(predictions).expect("serialisable");
    std::fs::write(&path, text).map_err(crate::Error::io("write", &path))?;
    Ok(path)
}

/// An ordinary least-squares line with what its prediction interval needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fit {
    pub(crate) slope: f64,
    pub(crate) intercept: f64,
    n: f64,
    mean_x: f64,
    sxx: f64,
    /// Residual standard error.
    s: f64,
}

impl Fit {
    /// Needs two distinct x.
    pub(crate) fn of(points: &[(f64, f64)]) -> Fit {
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let slope = sxy / sxx;
        let intercept = mean_y - slope * mean_x;
        let sse: f64 = points
            .iter()
            .map(|p| (p.1 - (intercept + slope * p.0)).powi(2))
            .sum();
        let s = if n > 2.0 {
            (sse / (n - 2.0)).sqrt()
        } else {
            0.0
        };
        Fit {
            slope,
            intercept,
            n,
            mean_x,
            sxx,
            s,
        }
    }

    pub(crate) fn at(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }

    /// Half the 95% prediction interval of one new run at `x`.
    pub(crate) fn half_interval(&self, x: f64) -> f64 {
        let dof = (self.n - 2.0).max(1.0) as usize;
        t95(dof) * self.s * (1.0 + 1.0 / self.n + (x - self.mean_x).powi(2) / self.sxx).sqrt()
    }
}

/// Student's t, two-sided 95%, for `dof` degrees of freedom.
fn t95(dof: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(dof.saturating_sub(1)).copied().unwrap_or(1.96)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn entry(bytes: u64, rto_ms: u64) -> HistoryEntry {
        HistoryEntry {
            scenario: "s".into(),
            backend: "native".into(),
            verdict: "pass".into(),
            rto_ms: Some(rto_ms),
            bytes: Some(bytes),
            ..HistoryEntry::default()
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn an_exact_line_is_found_exactly() {
        // 2 s fixed + 100 ms per MiB.
        let h: Vec<HistoryEntry> = [1, 2, 4, 8]
            .map(|m| entry(m * MIB, 2_000 + 100 * m))
            .to_vec();
        let p = predict(&h, "s", "native", 1024 * MIB, Duration::from_secs(60)).unwrap();
        assert_eq!(p.rto.as_millis(), 2_000 + 100 * 1024);
        assert!(p.plus_minus < Duration::from_millis(1), "{p:?}");
        assert!(p.over, "104 s is over a 60 s target");
        assert!((p.ms_per_mib - 100.0).abs() < 1e-6);
        assert!(p.line().contains("extrapolated 128x"), "{}", p.line());
    }

    #[test]
    fn noisy_linear_histories_predict_within_their_interval() {
        // Many seeded histories: three sizes, three runs each, ±10% noise;
        // the fourth size's truth must fall in the interval about 95% of
        // the time and the point estimate within 20% nearly always.
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261201);
        let (mut inside, mut within_20, trials) = (0, 0, 400);
        for _ in 0..trials {
            let fixed = rng.random_range(500.0..5_000.0);
            let per_mib = rng.random_range(5.0..500.0);
            let truth = |mib: f64| fixed + per_mib * mib;
            let mut h = Vec::new();
            for mib in [10.0, 20.0, 40.0] {
                for _ in 0..3 {
                    let noise = 1.0 + rng.random_range(-0.1..0.1);
                    h.push(entry(
                        (mib * MIB as f64) as u64,
                        (truth(mib) * noise) as u64,
                    ));
                }
            }
            let p = predict(&h, "s", "native", 80 * MIB, Duration::from_secs(3600)).unwrap();
            let (got, want) = (p.rto.as_secs_f64() * 1e3, truth(80.0));
            if (got - want).abs() <= p.plus_minus.as_secs_f64() * 1e3 + 1.0 {
                inside += 1;
            }
            if (got - want).abs() <= 0.2 * want {
                within_20 += 1;
            }
        }
        assert!(
            inside >= trials * 88 / 100,
            "{inside} of {trials} in the interval"
        );
        assert!(
            within_20 >= trials * 97 / 100,
            "{within_20} of {trials} within 20%"
        );
    }

    #[test]
    fn too_little_history_says_what_it_needs() {
        let h = vec![entry(MIB, 1_000), entry(MIB, 1_100), entry(MIB, 900)];
        let e = predict(&h, "s", "native", MIB, Duration::from_secs(1))
            .unwrap_err()
            .0;
        assert!(
            e.contains("3 passing runs") && e.contains("at 1 sizes"),
            "{e}"
        );
        let mut failing = entry(2 * MIB, 50);
        failing.verdict = "fail".into();
        let e = predict(
            &[entry(MIB, 1), failing],
            "s",
            "native",
            MIB,
            Duration::ZERO,
        )
        .unwrap_err()
        .0;
        assert!(e.contains("1 passing runs"), "{e}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("200GiB"), Ok(200 << 30));
        assert_eq!(parse_size("1.5 TiB"), Ok(3 << 39));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        for bad in ["", "GiB", "12 parsecs", "-1GiB", "0"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_bytes(200 << 30), "200.0 GiB");
    }
}
