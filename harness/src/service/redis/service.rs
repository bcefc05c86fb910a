//! Redis in a drill: the market-state fixture, a baseline of every key, the
//! writer's stream, the manual RDB backup, the faults it takes (a damaged
//! AOF among them, with the keys it costs predicted), the runbook's
//! recovery steps and its checks.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use drill_fixtures::Dataset;

use super::aof::Damage;
use super::snapshot::{self, Snapshot};
use super::{Redis, RedisSpec, checks, workload};
use crate::check::{CheckKind, CheckResult};
use crate::scenario::{Fault, FaultAction, KeysExpect, Scenario, Step};
use crate::service::postgres::PostgresService;
use crate::service::{
    BackupCx, BackupMethod, BackupRecord, BackupTaken, JudgeCx, Lifecycle, Placement, Service,
    StepDone,
};
use crate::vocab::ServiceKind;
use crate::workload::{Boundary, Ledger, RpoMeasurement, Writer, rpo_from};
use crate::{Error, Result};

/// Redis in a drill.
#[derive(Debug)]
pub(crate) struct RedisService {
    server: Redis,
    backup_method: Option<RdbCopy>,
    baseline: Option<Snapshot>,
    /// The newest RDB copy.
    rdb: Option<PathBuf>,
    /// The last AOF damage dealt, with the keys it costs.
    damage: Option<Damage>,
    /// When the first fault began, on the drill's clock and the wall's
    /// (the AOF's `#TS:` annotations are wall-clock seconds).
    fault_at: Option<(Instant, SystemTime)>,
    /// Where the last `redis-pitr` cut the AOF: the ledger judges against it.
    recovered_to: Option<Boundary>,
}

impl RedisService {
    /// Starts the server the scenario declares.
    pub(crate) fn start(sc: &Scenario, at: &Placement<'_>) -> Result<RedisService> {
        let cfg = sc
            .services
            .redis
            .as_ref()
            .expect("the engine starts declared services only");
        let spec = RedisSpec {
            image: ServiceKind::Redis.image(cfg.image.as_deref()),
            appendonly: cfg.appendonly,
            appendfsync: cfg.appendfsync.clone(),
            save: cfg
                .save
                .clone()
                .unwrap_or_else(|| RedisSpec::new(at.run_id).save),
            shared: at.shared.clone(),
            aof_timestamps: cfg.aof_timestamps,
            settings: cfg
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            extras: cfg.extras.clone(),
            ..RedisSpec::new(at.run_id)
        };
        let server = Redis::start(at.backend, &spec).map_err(|e| {
            // Redis before 7.0 refuses the directive ("Bad directive").
            if cfg.aof_timestamps && e.to_string().contains("aof-timestamp-enabled") {
                Error::bad_input(
                    format!("{}: services.redis.aof-timestamps", sc.path.display()),
                    format!(
                        "this Redis does not know `aof-timestamp-enabled` (Redis 7.0 and later do): use a Redis 7 image (DRILL_REDIS_IMAGE) or remove `aof-timestamps`; it said: {e}"
                    ),
                )
            } else {
                e
            }
        })?;
        Ok(RedisService {
            server,
            backup_method: sc.backup.redis.as_ref().map(|_| RdbCopy),
            baseline: None,
            rdb: None,
            damage: None,
            fault_at: None,
            recovered_to: None,
        })
    }

    /// The `redis-pitr` step: the AOF cut at the last whole second before
    /// the target (`#TS:` annotations have a second's resolution), so the
    /// ledger judges against an interval: writes acknowledged before that
    /// second began must be back, writes sent after the target must not.
    fn pitr(&mut self, target: &crate::scenario::RecoveryTarget) -> Result<StepDone> {
        let crate::scenario::RecoveryTarget::Fault { offset_ms } = target else {
            return Ok(StepDone::refused("redis-pitr cuts the AOF at a time"));
        };
        let Some((fault, fault_wall)) = self.fault_at else {
            return Ok(StepDone::refused("no fault has happened yet"));
        };
        let shift = Duration::from_millis(offset_ms.unsigned_abs());
        let (at, wall) = if *offset_ms < 0 {
            match (fault.checked_sub(shift), fault_wall.checked_sub(shift)) {
                (Some(a), Some(w)) => (a, w),
                _ => return Ok(StepDone::refused("the target lies before the drill began")),
            }
        } else {
            (fault + shift, fault_wall + shift)
        };
        let since_epoch = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let second = since_epoch.as_secs();
        let into_second = since_epoch - Duration::from_secs(second);
        let since = at.checked_sub(into_second).unwrap_or(at);
        let keep_to = second.saturating_sub(1);
        let started = Instant::now();
        let said = match self.server.truncate_aof_to(keep_to) {
            Ok(said) => said,
            Err(e) => return Ok(StepDone::failed(e.to_string())),
        };
        self.recovered_to = Some(Boundary {
            since,
            at,
            label: format!(
                "{} ({}; the AOF kept to second {keep_to})",
                target.describe(),
                humantime::format_rfc3339_millis(wall)
            ),
        });
        Ok(StepDone::done(format!(
            "redis-check-aof --truncate-to-timestamp {keep_to} in {}: {said}",
            crate::fmt_duration(started.elapsed())
        )))
    }

    /// The runbook's `redis-cli` checks and commands.
    fn cli(&self, run: &str, limit: std::time::Duration) -> Result<StepDone> {
        tracing::debug!(command = %format!("redis-cli {run}"), "step");
        let mut cmd = self.server.cli();
        cmd.args(run.split_whitespace());
        let done = crate::shell::output_within(&mut cmd, &[], limit)?;
        if done.timed_out {
            return Ok(StepDone::failed(format!(
                "redis-cli {run} ran past its time limit of {} and was killed",
                humantime::format_duration(limit)
            )));
        }
        let out = done.output;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // redis-cli exits 0 on server errors; they start with ERR.
        let refused = !out.status.success()
            || text.starts_with("ERR")
            || text.starts_with("NOAUTH")
            || text.contains("Connection refused")
            || err.contains("Connection refused");
        if refused {
            return Ok(StepDone::failed(format!("redis-cli {run}: {text}{err}")));
        }
        Ok(StepDone::done(
            text.lines().take(3).collect::<Vec<_>>().join(" | "),
        ))
    }

    /// Keys rebuilt from PostgreSQL must equal the rows a query gives.
    async fn cross_check(
        &self,
        x: &crate::scenario::CrossCheck,
        pg: &PostgresService,
    ) -> Result<CheckResult> {
        let mut con = self.server.connect().await?;
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(&x.keys)
            .query_async(&mut con)
            .await
            .map_err(Error::redis(format!("KEYS {}", x.keys)))?;
        let mut in_redis = BTreeMap::new();
        for k in keys {
            let v: Option<String> = ::redis::cmd("GET")
                .arg(&k)
                .query_async(&mut con)
                .await
                .unwrap_or(None);
            in_redis.insert(k, v.unwrap_or_default());
        }
        let mut conn = pg.server.coordinates().connect().await?;
        let rows: std::result::Result<Vec<(String, String)>, _> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT k::text, v::text FROM ({}) AS q(k, v)",
                x.sql
            )))
            .fetch_all(&mut conn)
            .await;
        Ok(match rows {
            Ok(rows) => checks::matches_postgres(&x.keys, &in_redis, &rows.into_iter().collect()),
            Err(e) => CheckResult::new(
                CheckKind::CrossCheck,
                format!("redis {} matches postgres", x.keys),
                "keys equal to postgres",
                "the query failed",
                false,
                Some(e.to_string()),
            ),
        })
    }
}

/// The runbook's manual RDB backup: SAVE, then `dump.rdb` copied out of the
/// data dir or volume.
#[derive(Debug)]
struct RdbCopy;

#[async_trait]
impl BackupMethod<Redis> for RdbCopy {
    fn label(&self) -> String {
        "redis rdb copy".into()
    }

    async fn take(&self, server: &Redis, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        let started = Instant::now();
        let path = server.backup_rdb(cx.work).await?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(BackupTaken {
            detail: format!("SAVE, then dump.rdb → {} ({bytes} bytes)", path.display()),
            record: Some(BackupRecord {
                service: ServiceKind::Redis,
                path,
                bytes,
                method: "SAVE + dump.rdb copied out".into(),
                took: started.elapsed(),
            }),
            artifact: None,
        })
    }
}

#[async_trait]
impl Service for RedisService {
    fn server(&self) -> &dyn Lifecycle {
        &self.server
    }

    fn server_mut(&mut self) -> &mut dyn Lifecycle {
        &mut self.server
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::Redis
    }

    fn started(&self) -> String {
        let (i, s) = (self.server.info(), self.server.spec());
        format!(
            "Redis {} ({}: {}), appendonly {}, appendfsync {}",
            i.version,
            i.backend,
            i.source,
            if s.appendonly { "yes" } else { "no" },
            s.appendfsync
        )
    }

    async fn load_fixture(&self, data: &Dataset) -> Result<String> {
        let n = super::load_fixture(&self.server, data).await?;
        Ok(format!(
            "{n} commands: {} (newest {} ticks), price:*, session:*, cache:pairs, leaderboard:pnl",
            drill_fixtures::market::PRICE_STREAM,
            drill_fixtures::market::STREAM_MAX.min(data.ticks)
        ))
    }

    async fn baseline(&mut self) -> Result<String> {
        let mut con = self.server.connect().await?;
        let s = snapshot::take(&mut con).await?;
        let said = format!("redis: {} keys", s.keys.len());
        self.baseline = Some(s);
        Ok(said)
    }

    async fn start_writer(&self, rate: u32, seed: u64) -> Result<Writer> {
        let sink = workload::RedisSink(self.server.connect().await?);
        Ok(Writer::spawn(sink, rate, seed))
    }

    fn backup_label(&self) -> Option<String> {
        self.backup_method.as_ref().map(RdbCopy::label)
    }

    async fn backup(&mut self, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        let taken = RdbCopy.take(&self.server, cx).await?;
        self.rdb = taken.record.as_ref().map(|r| r.path.clone());
        Ok(taken)
    }

    fn fault_began(&mut self, at: Instant) {
        let wall = SystemTime::now() - at.elapsed();
        self.fault_at.get_or_insert((at, wall));
    }

    async fn inject(&mut self, fault: &Fault, seed: u64) -> Result<String> {
        self.recovered_to = None;
        if fault.action == FaultAction::RedisCommand {
            let command = fault.command.as_deref().unwrap_or_default();
            let mut parts = command.split_whitespace();
            let mut cmd = ::redis::cmd(parts.next().unwrap_or_default());
            for p in parts {
                cmd.arg(p);
            }
            let mut con = self.server.connect().await?;
            let answer: ::redis::Value = cmd
                .query_async(&mut con)
                .await
                .map_err(Error::redis(format!("`{command}`")))?;
            return Ok(format!(
                "ran `{command}` while the writer wrote: {answer:?}"
            ));
        }
        let r = &mut self.server;
        tokio::task::block_in_place(|| {
            Ok(match fault.action {
                FaultAction::Wipe => {
                    r.wipe()?;
                    "volume destroyed; a fresh, empty redis".into()
                }
                FaultAction::Crash => {
                    r.crash()?;
                    "every process killed (SIGKILL); started again on its data".into()
                }
                FaultAction::Kill => {
                    r.halt()?;
                    "every process killed (SIGKILL); left down".into()
                }
                FaultAction::Restart => {
                    let stopped = r.restart()?;
                    format!("SIGTERM ({stopped}); started again on its data")
                }
                FaultAction::CorruptAof => {
                    let kind = fault.damage.expect("validated: corrupt-aof has damage");
                    let (d, outcome) = r.corrupt_aof(kind, seed)?;
                    let text = format!(
                        "AOF damaged ({} at byte {} of {}: the last {} of {} commands, {} keys); {outcome}",
                        d.kind,
                        d.offset,
                        d.len,
                        d.commands - d.first_lost,
                        d.commands,
                        d.lost_keys.len()
                    );
                    self.damage = Some(d);
                    text
                }
                other => unreachable!("validated: {} is not a redis fault", other.name()),
            })
        })
    }

    async fn run_step(&mut self, step: &Step) -> Result<StepDone> {
        if let Step::Redis { run, .. } = step {
            return tokio::task::block_in_place(|| self.cli(run, step.time_limit()));
        }
        if let Step::RedisPitr { target, .. } = step {
            return tokio::task::block_in_place(|| self.pitr(target));
        }
        let r = &mut self.server;
        tokio::task::block_in_place(|| match step {
            Step::Start { .. } => Ok(crate::service::start_step(r)),
            Step::Stop { .. } => crate::service::stop_step(r),
            Step::RedisCheckAof => Ok(match r.check_aof_fix() {
                Ok(out) => StepDone::done(
                    out.lines()
                        .filter(|l| {
                            l.contains("AOF analyzed")
                                || l.contains("truncated")
                                || l.contains("valid")
                        })
                        .collect::<Vec<_>>()
                        .join(" | "),
                ),
                Err(e) => StepDone::failed(e.to_string()),
            }),
            Step::RedisRestoreRdb {
                aof_off_while_loading,
            } => Ok(match &self.rdb {
                None => StepDone::refused("no redis backup was taken"),
                Some(rdb) => match r.restore_rdb(rdb, *aof_off_while_loading) {
                    Ok(did) => StepDone::done(did),
                    Err(e) => StepDone::failed(e.to_string()),
                },
            }),
            other => unreachable!("validated: `{}` does not act on redis", other.kind()),
        })
    }

    async fn judge(&self, cx: &JudgeCx<'_>) -> Result<Vec<CheckResult>> {
        let r = &self.server;
        let expect = cx.scenario.expect.redis.clone().unwrap_or_default();
        if let Some(why) = r.down() {
            return Ok(vec![CheckResult::new(
                CheckKind::Answers,
                "redis running",
                "answers PING",
                "down",
                false,
                Some(why.to_string()),
            )]);
        }
        let mut out = Vec::new();
        if expect.persistence {
            let info = r.info_section("persistence").await?;
            out.extend(checks::persistence(&info, r.spec().appendonly));
        }
        let skip = |k: &str| {
            k == workload::REDIS_LIVE_STREAM
                || expect.ignore_keys.iter().any(|p| checks::glob(p, k))
        };
        if expect.keys != KeysExpect::Ignore {
            let mut con = r.connect().await?;
            let now = snapshot::take(&mut con).await?;
            let before = self.baseline.as_ref().expect("taken before any fault");
            let diff = before.diff(&now, skip);
            out.push(match (expect.keys, &self.damage) {
                (KeysExpect::LostAsPredicted, Some(d)) => {
                    let predicted = d.lost_keys.iter().filter(|k| !skip(k)).cloned().collect();
                    checks::keys_as_predicted(&diff, &predicted)
                }
                _ => {
                    let compared = before.keys.keys().filter(|k| !skip(k)).count();
                    checks::keys(&diff, compared)
                }
            });
        }
        for x in &expect.matches_postgres {
            let pg = cx
                .peer::<PostgresService>()
                .expect("validated: a cross-check needs postgres declared");
            out.push(self.cross_check(x, pg).await?);
        }
        Ok(out)
    }

    async fn measure_rpo(&self, ledger: &Ledger, fault_at: Instant) -> Result<RpoMeasurement> {
        if self.server.down().is_some() {
            return Ok(rpo_from(ledger, &vec![false; ledger.acks.len()], fault_at));
        }
        workload::measure_rpo(&self.server, ledger, fault_at, self.recovered_to.as_ref()).await
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.server.env();
        if let Some(p) = &self.rdb {
            env.push(("DRILL_REDIS_BACKUP_FILE".into(), p.display().to_string()));
        }
        env
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
