//! ClickHouse in a drill: the analytics fixture, a baseline that reads
//! every row, the writer's batches, its backup (native, FREEZE or export,
//! by the server's version), the faults it takes, its restore and checks.

use std::any::Any;
use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use drill_fixtures::Dataset;

use super::backup::{self as ch_backup, ChBackup};
use super::{ClickHouse, ClickHouseSpec, Snapshot, checks, workload};
use crate::Result;
use crate::check::CheckResult;
use crate::scenario::{ClickHouseBackupMethod, Fault, FaultAction, Scenario, Step, TablesExpect};
use crate::service::{
    BackupCx, BackupMethod, BackupRecord, BackupTaken, JudgeCx, Lifecycle, Placement, Service,
    StepDone,
};
use crate::vocab::ServiceKind;
use crate::workload::{Ledger, RpoMeasurement, Writer};

/// ClickHouse in a drill.
#[derive(Debug)]
pub(crate) struct ClickHouseService {
    server: ClickHouse,
    backup_method: Option<ChBackupMethod>,
    baseline: Option<Snapshot>,
    /// The newest backup.
    newest: Option<ChBackup>,
}

impl ClickHouseService {
    /// Starts the server the scenario declares.
    pub(crate) fn start(sc: &Scenario, at: &Placement<'_>) -> Result<ClickHouseService> {
        let cfg = sc
            .services
            .clickhouse
            .as_ref()
            .expect("the engine starts declared services only");
        let spec = ClickHouseSpec {
            image: ServiceKind::ClickHouse.image(cfg.image.as_deref()),
            database: cfg.database.clone(),
            shared: at.shared.clone(),
            extras: cfg.extras.clone(),
            ..ClickHouseSpec::new(at.run_id)
        };
        let backup_method = sc.backup.clickhouse.as_ref().map(|b| {
            ChBackupMethod(match b.method {
                ClickHouseBackupMethod::Auto => None,
                ClickHouseBackupMethod::Native => Some(ch_backup::Method::Native),
                ClickHouseBackupMethod::Freeze => Some(ch_backup::Method::Freeze),
                ClickHouseBackupMethod::Export => Some(ch_backup::Method::Export),
            })
        });
        Ok(ClickHouseService {
            server: ClickHouse::start(at.backend, &spec)?,
            backup_method,
            baseline: None,
            newest: None,
        })
    }

    async fn restore(&self) -> Result<StepDone> {
        let Some(b) = &self.newest else {
            return Ok(StepDone::refused("no clickhouse backup was taken"));
        };
        Ok(match ch_backup::restore(&self.server, &b.dir).await {
            Ok(did) => StepDone::done(format!(
                "{} from {}: {did}",
                b.manifest.method.name(),
                b.dir.display()
            )),
            Err(e) => StepDone::failed(e.to_string()),
        })
    }
}

/// A backup of the analytics database by the method asked for, or (None)
/// the best the server's version has.
#[derive(Debug)]
struct ChBackupMethod(Option<ch_backup::Method>);

impl ChBackupMethod {
    /// The backup, and why its method was chosen.
    async fn take_backup(
        &self,
        server: &ClickHouse,
        cx: &BackupCx<'_>,
    ) -> Result<(ChBackup, String)> {
        let (method, why) = ch_backup::resolve(server, self.0)?;
        Ok((ch_backup::take(server, method, cx.work).await?, why))
    }
}

/// What the drill records of a backup.
fn taken(b: &ChBackup, why: &str) -> BackupTaken {
    BackupTaken {
        detail: format!(
            "{} ({why}) → {} ({} bytes, {} tables)",
            b.manifest.method.name(),
            b.dir.display(),
            b.bytes,
            b.manifest.tables.len()
        ),
        record: Some(BackupRecord {
            service: ServiceKind::ClickHouse,
            path: b.dir.clone(),
            bytes: b.bytes,
            method: format!("{} ({why})", b.manifest.method.name()),
            took: b.took,
        }),
        artifact: None,
    }
}

#[async_trait]
impl BackupMethod<ClickHouse> for ChBackupMethod {
    fn label(&self) -> String {
        "clickhouse backup".into()
    }

    async fn take(&self, server: &ClickHouse, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        let (b, why) = self.take_backup(server, cx).await?;
        Ok(taken(&b, &why))
    }
}

#[async_trait]
impl Service for ClickHouseService {
    fn server(&self) -> &dyn Lifecycle {
        &self.server
    }

    fn server_mut(&mut self) -> &mut dyn Lifecycle {
        &mut self.server
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::ClickHouse
    }

    fn started(&self) -> String {
        let i = self.server.info();
        format!("ClickHouse {} ({}: {})", i.version, i.backend, i.source)
    }

    async fn load_fixture(&self, data: &Dataset) -> Result<String> {
        let rows = super::load_fixture(&self.server, data).await?;
        Ok(rows
            .iter()
            .map(|(t, n)| format!("{t}: {n} rows"))
            .collect::<Vec<_>>()
            .join(", "))
    }

    async fn baseline(&mut self) -> Result<String> {
        let s = super::snapshot(&self.server).await?;
        let said = format!(
            "clickhouse: {}",
            s.tables
                .iter()
                .map(|(t, x)| format!("{t} {} rows", x.rows))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.baseline = Some(s);
        Ok(said)
    }

    fn baseline_rows(&self) -> BTreeMap<String, i64> {
        self.baseline
            .iter()
            .flat_map(|b| b.tables.iter().map(|(t, x)| (t.clone(), x.rows as i64)))
            .collect()
    }

    async fn start_writer(&self, rate: u32, seed: u64) -> Result<Writer> {
        let db = self.server.spec().database.clone();
        self.server
            .execute(&format!(
                "CREATE TABLE IF NOT EXISTS {db}.{} (time DateTime, ms UInt16, symbol String, price Float64) \
                 ENGINE = MergeTree() ORDER BY (time, ms)",
                workload::CLICKHOUSE_LIVE_TABLE
            ))
            .await?;
        let sink = workload::ClickHouseSink {
            client: self.server.client(),
            database: db,
        };
        Ok(Writer::spawn(sink, rate, seed))
    }

    fn backup_label(&self) -> Option<String> {
        self.backup_method.as_ref().map(ChBackupMethod::label)
    }

    async fn backup(&mut self, cx: &BackupCx<'_>) -> Result<BackupTaken> {
        let method = self
            .backup_method
            .as_ref()
            .expect("the engine asks only services with a backup");
        let (b, why) = method.take_backup(&self.server, cx).await?;
        let done = taken(&b, &why);
        self.newest = Some(b);
        Ok(done)
    }

    async fn inject(&mut self, fault: &Fault, _seed: u64) -> Result<String> {
        let c = &mut self.server;
        tokio::task::block_in_place(|| {
            Ok(match fault.action {
                FaultAction::Wipe => {
                    c.wipe()?;
                    "volume destroyed; a fresh server with an empty database".into()
                }
                FaultAction::Crash => {
                    c.crash()?;
                    "every process killed (SIGKILL); started again on its data".into()
                }
                FaultAction::Kill => {
                    c.halt()?;
                    "every process killed (SIGKILL); left down".into()
                }
                FaultAction::Restart => {
                    let stopped = c.restart()?;
                    format!("SIGTERM ({stopped}); started again on its data")
                }
                other => unreachable!("validated: {} is not a clickhouse fault", other.name()),
            })
        })
    }

    async fn run_step(&mut self, step: &Step) -> Result<StepDone> {
        match step {
            Step::Sql { run, .. } => Ok(
                match tokio::time::timeout(step.time_limit(), self.server.rows(run))
                    .await
                    .unwrap_or_else(|_| {
                        Err(crate::Error::unexpected(
                            format!("`{run}`"),
                            format!(
                                "it ran past its time limit of {}",
                                humantime::format_duration(step.time_limit())
                            ),
                        ))
                    }) {
                    Ok(rows) => StepDone::done(format!(
                        "ok{}",
                        rows.first()
                            .map(|r| format!(": {}", r.join(" ")))
                            .unwrap_or_default()
                    )),
                    Err(e) => StepDone::failed(e.to_string()),
                },
            ),
            Step::Start { .. } => Ok(tokio::task::block_in_place(|| {
                crate::service::start_step(&mut self.server)
            })),
            Step::Stop { .. } => {
                tokio::task::block_in_place(|| crate::service::stop_step(&mut self.server))
            }
            Step::ClickhouseRestore => self.restore().await,
            other => unreachable!("validated: `{}` does not act on clickhouse", other.kind()),
        }
    }

    async fn judge(&self, cx: &JudgeCx<'_>) -> Result<Vec<CheckResult>> {
        let expect = cx.scenario.expect.clickhouse.clone().unwrap_or_default();
        if expect.tables != TablesExpect::SameAsBefore {
            return Ok(Vec::new());
        }
        let now = super::snapshot(&self.server).await?;
        let before = self.baseline.as_ref().expect("taken before any fault");
        Ok(checks::tables(before, &now))
    }

    async fn measure_rpo(&self, ledger: &Ledger, fault_at: Instant) -> Result<RpoMeasurement> {
        workload::measure_rpo(&self.server, ledger, fault_at).await
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.server.env();
        if let Some(b) = &self.newest {
            env.push((
                "DRILL_CLICKHOUSE_BACKUP_DIR".into(),
                b.dir.display().to_string(),
            ));
        }
        env
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
