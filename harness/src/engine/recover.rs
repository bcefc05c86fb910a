//! One recovery after its fault: its steps in order, each service judged
//! right after the last step that acts on it (so its RTO is its own) and
//! again at the end when a later step could have undone it, then the
//! recovery judged as a whole against what the scenario expects of it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::services::{Ledgers, Services};
use super::timeline::{Phase, Timeline};
use super::{DrillOptions, RecoveryReport, ServiceRpo, ServiceRto, steps};
use crate::Result;
use crate::check::{self, CheckKind, CheckResult};
use crate::scenario::{Recovery, RecoveryExpect, Scenario};
use crate::service::JudgeCx;
use crate::vocab::{ServiceKind, fmt_duration};
use crate::workload::RpoMeasurement;

/// What a recovery needs to know besides the servers.
pub(crate) struct RecoverCx<'a> {
    pub(crate) sc: &'a Scenario,
    pub(crate) rec: &'a Recovery,
    pub(crate) phase: Phase,
    pub(crate) ledgers: &'a Ledgers,
    pub(crate) scenario_dir: &'a Path,
    pub(crate) work: &'a Path,
    /// When this recovery's fault began: its RTO runs from here.
    pub(crate) fault_started: Instant,
    /// When the first fault began: data was lost then (RPO).
    pub(crate) fault_at: Instant,
    pub(crate) opts: &'a DrillOptions,
}

/// One service after a recovery.
struct Outcome {
    checks: Vec<CheckResult>,
    rpo: Option<RpoMeasurement>,
    /// Fault to its checks green (minus time paused); None when red.
    green: Option<Duration>,
}

/// A recovery under way.
struct Run<'a, 'b> {
    cx: &'b RecoverCx<'a>,
    services: &'b mut Services,
    tl: &'b mut Timeline,
    /// Time spent paused, left out of the RTO.
    paused: Duration,
    /// Every declared service, in order.
    kinds: Vec<ServiceKind>,
    /// The last step that acts on each service (a step without a service
    /// acts on all); None: judged right after the fault.
    last_step: BTreeMap<ServiceKind, Option<usize>>,
    judged: BTreeMap<ServiceKind, Outcome>,
    errors: Vec<String>,
    failed_step: Option<CheckResult>,
    /// WAL replayed by the steps so far.
    wal_bytes: Option<u64>,
    /// The compose `docker` shim's state, when services came from one.
    shim: Option<super::docker_shim::Shim>,
}

/// Runs the recovery's steps after its fault and judges it.
pub(crate) async fn recover(
    cx: &RecoverCx<'_>,
    services: &mut Services,
    tl: &mut Timeline,
    paused: Duration,
) -> Result<RecoveryReport> {
    let kinds: Vec<ServiceKind> = services.0.iter().map(|s| s.kind()).collect();
    let last_step = kinds
        .iter()
        .map(|k| {
            let last = cx
                .rec
                .steps
                .iter()
                .rposition(|s| s.service().is_none_or(|x| x == *k));
            (*k, last)
        })
        .collect();
    let mut run = Run {
        cx,
        services,
        tl,
        paused,
        kinds,
        last_step,
        judged: BTreeMap::new(),
        errors: Vec::new(),
        failed_step: None,
        wal_bytes: None,
        shim: cx
            .sc
            .services
            .imported
            .as_ref()
            .map(super::docker_shim::Shim::new),
    };
    run.judge_where(|_, last| last.is_none()).await?;
    run.steps().await?;
    // After a failed step: every service not judged yet, for evidence.
    run.judge_where(|r, _| !r).await?;
    if run.failed_step.is_none() {
        run.rejudge_early_ones().await?;
    }
    cx.opts
        .maybe_pause(&cx.sc.name, &cx.phase, &["checks"], run.services);
    Ok(run.report())
}

impl Run<'_, '_> {
    /// Runs the steps in order until one fails, judging each service after
    /// its last step.
    async fn steps(&mut self) -> Result<()> {
        let cx = self.cx;
        for (i, step) in cx.rec.steps.iter().enumerate() {
            let label = step.label();
            let t = self.tl.start(&cx.phase, &label);
            let id = format!("{}-{i}", cx.rec.name);
            let done = steps::run_step(
                self.services,
                step,
                cx.scenario_dir,
                cx.work,
                &id,
                self.shim.as_mut(),
            )
            .await?;
            self.errors.extend(done.errors.iter().cloned());
            if let Some(b) = done.wal_bytes {
                *self.wal_bytes.get_or_insert(0) += b;
            }
            self.tl
                .finish(&cx.phase, &label, t, done.clean, done.detail.clone());
            self.paused += cx.opts.maybe_pause(
                &cx.sc.name,
                &cx.phase,
                &[&label, step.kind()],
                self.services,
            );
            if !done.ok {
                // A failing step fails the recovery; the checks still run
                // for evidence.
                self.failed_step = Some(CheckResult::new(
                    CheckKind::Step,
                    format!("step {label}"),
                    "succeeds",
                    done.status,
                    false,
                    Some(done.evidence),
                ));
                return Ok(());
            }
            self.judge_where(|_, last| last == Some(i)).await?;
        }
        Ok(())
    }

    /// Judges the services not judged yet for which `pick(judged, last
    /// step)` holds.
    async fn judge_where(&mut self, pick: impl Fn(bool, Option<usize>) -> bool) -> Result<()> {
        for k in self.kinds.clone() {
            if pick(self.judged.contains_key(&k), self.last_step[&k])
                && !self.judged.contains_key(&k)
            {
                let o = self.judge(k).await?;
                self.judged.insert(k, o);
            }
        }
        Ok(())
    }

    /// A service judged before the last step is judged again at the end: a
    /// later step (another service's, or a user's command) may have undone
    /// it. Its RTO stays the moment it first turned green, unless it
    /// regressed.
    async fn rejudge_early_ones(&mut self) -> Result<()> {
        if self.kinds.len() < 2 {
            return Ok(());
        }
        let last = self.cx.rec.steps.len().checked_sub(1);
        for k in self.kinds.clone() {
            if self.last_step[&k] == last {
                continue;
            }
            let again = self.judge(k).await?;
            if again.checks.iter().any(|c| !c.ok) {
                self.judged.insert(
                    k,
                    Outcome {
                        green: None,
                        ..again
                    },
                );
            }
        }
        Ok(())
    }

    /// One service's checks (and its RPO), as a timeline step. A server
    /// that cannot be read is a service that did not come back: a red
    /// check with the reason, not the end of the drill.
    async fn judge(&mut self, k: ServiceKind) -> Result<Outcome> {
        let cx = self.cx;
        let step = if self.kinds.len() > 1 {
            format!("checks {k}")
        } else {
            "checks".to_string()
        };
        let t = self.tl.start(&cx.phase, &step);
        let (checks, rpo) = match self.measure(k).await {
            Ok(x) => x,
            Err(e) => (
                vec![CheckResult::new(
                    CheckKind::Answers,
                    format!("{k} answers"),
                    "its data can be read",
                    "unreachable",
                    false,
                    Some(e.to_string()),
                )],
                None,
            ),
        };
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: expected {}, got {}", c.name, c.expected, c.actual))
            .collect();
        let detail = if failed.is_empty() {
            "all green".to_string()
        } else {
            failed.join("; ")
        };
        self.tl
            .finish(&cx.phase, &step, t, failed.is_empty(), detail);
        let green = checks
            .iter()
            .all(|c| c.ok)
            .then(|| cx.fault_started.elapsed().saturating_sub(self.paused));
        Ok(Outcome { checks, rpo, green })
    }

    /// The service's checks, and its data loss when a writer ran.
    async fn measure(&self, k: ServiceKind) -> Result<(Vec<CheckResult>, Option<RpoMeasurement>)> {
        let cx = self.cx;
        let ledger = cx.ledgers.get(&k);
        let jcx = JudgeCx {
            scenario: cx.sc,
            workload: ledger.is_some(),
            services: &self.services.0,
        };
        let s = self.services.get(k);
        let mut checks = s.judge(&jcx).await?;
        let Some(l) = ledger else {
            return Ok((checks, None));
        };
        let m = s.measure_rpo(l, cx.fault_at).await?;
        if let Some(target) = cx.sc.expect.rpo {
            checks.push(check::rpo(k, &m, target.0));
        }
        if m.pitr.is_some() {
            checks.push(check::ledger(k, &m));
        }
        if m.replication.is_some() {
            checks.push(check::failover(k, &m));
        }
        Ok((checks, Some(m)))
    }

    /// The recovery, judged.
    fn report(mut self) -> RecoveryReport {
        let rec = self.cx.rec;
        let multi = self.kinds.len() > 1;
        let step_failed = self.failed_step.is_some();
        let mut checks: Vec<CheckResult> = self.failed_step.take().into_iter().collect();
        let mut per_service = Vec::new();
        let mut rpo_per_service = Vec::new();
        for k in &self.kinds {
            let o = self.judged.remove(k).expect("every service judged");
            checks.extend(o.checks);
            per_service.push(ServiceRto {
                service: *k,
                rto: if step_failed { None } else { o.green },
            });
            if let Some(m) = o.rpo {
                rpo_per_service.push(ServiceRpo {
                    service: *k,
                    measurement: m,
                });
            }
        }
        let recovered = checks.iter().all(|c| c.ok);
        let rto = recovered
            .then(|| per_service.iter().filter_map(|s| s.rto).max())
            .flatten();
        checks.push(check::rto(rto, self.cx.sc.expect.rto.0));
        let (met, summary) = verdict(rec, recovered, rto, &checks, &mut self.errors);
        let rpo = rpo_per_service
            .iter()
            .map(|r| r.measurement.clone())
            .max_by_key(|m| m.window);
        RecoveryReport {
            name: rec.name.clone(),
            expect: rec.expect,
            recovered,
            rto,
            rpo,
            rto_per_service: if multi { per_service } else { Vec::new() },
            rpo_per_service: if multi { rpo_per_service } else { Vec::new() },
            checks,
            errors: self.errors,
            met_expectation: met,
            summary,
            wal_replayed_bytes: self.wal_bytes,
        }
    }
}

/// Whether the recovery did what the scenario expects of it, and one line
/// saying so. A negative control must fail *with* its `expect-error`.
fn verdict(
    rec: &Recovery,
    recovered: bool,
    rto: Option<Duration>,
    checks: &[CheckResult],
    errors: &mut Vec<String>,
) -> (bool, String) {
    let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.ok).collect();
    match rec.expect {
        RecoveryExpect::Recovers => (
            failed.is_empty(),
            summarize(rec.expect, recovered, rto, &failed),
        ),
        RecoveryExpect::Fails => {
            let shown = errors.iter().map(String::as_str).chain(
                failed
                    .iter()
                    .flat_map(|c| [c.actual.as_str(), c.evidence.as_deref().unwrap_or("")]),
            );
            let want = rec.expect_error.as_deref();
            let reason_ok = want.is_none_or(|w| shown.into_iter().any(|s| s.contains(w)));
            if !recovered && !reason_ok {
                errors.push(format!(
                    "the negative control failed, but not with `{}`: it no longer reproduces the incident it names",
                    want.unwrap_or("")
                ));
                let summary = format!(
                    "failed, but not as the incident did (no `{}`)",
                    want.unwrap_or("")
                );
                return (false, summary);
            }
            (
                !recovered && reason_ok,
                summarize(rec.expect, recovered, rto, &failed),
            )
        }
    }
}

/// One line a person reads first.
fn summarize(
    expect: RecoveryExpect,
    recovered: bool,
    rto: Option<Duration>,
    failed: &[&CheckResult],
) -> String {
    let count = |k: CheckKind, f: &dyn Fn(&CheckResult) -> bool| {
        failed.iter().filter(|c| c.kind == k && f(c)).count()
    };
    let mut what: Vec<String> = failed
        .iter()
        .filter(|c| c.kind == CheckKind::Step)
        .map(|c| format!("{} failed", c.name))
        .collect();
    let missing = count(CheckKind::Rows, &|c| c.actual == "missing");
    let short = count(CheckKind::Rows, &|c| c.actual != "missing");
    let orphaned = count(CheckKind::FkOrphans, &|_| true);
    let changed = count(CheckKind::Content, &|_| true);
    for (n, text) in [
        (missing, "tables missing"),
        (short, "tables short"),
        (orphaned, "foreign keys with orphans"),
    ] {
        if n > 0 {
            what.push(format!("{n} {text}"));
        }
    }
    if count(CheckKind::Rpo, &|_| true) > 0 {
        what.push("RPO missed".into());
    }
    if changed > 0 {
        what.push(format!("{changed} tables with changed rows"));
    }
    if count(CheckKind::Schema, &|_| true) > 0 {
        what.push("schema differs".into());
    }
    let what = what.join(", ");
    match (expect, recovered) {
        (RecoveryExpect::Recovers, true) => match rto {
            Some(r) if failed.is_empty() => format!("recovered in {}", fmt_duration(r)),
            Some(r) => format!("recovered in {}, over the RTO", fmt_duration(r)),
            None => "recovered".into(),
        },
        (RecoveryExpect::Recovers, false) => format!("NOT recovered: {what}"),
        (RecoveryExpect::Fails, false) => format!("incident reproduced: {what}"),
        (RecoveryExpect::Fails, true) => {
            "negative control recovered: the incident was NOT reproduced".into()
        }
    }
}
