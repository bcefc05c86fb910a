//! The servers of one drill and what is done to all of them: start them in
//! the runbook's order, load their fixtures, take their baselines and
//! backups, start their writers, deal a fault to its targets at one
//! instant, and give a user's command every service's environment. Each
//! service is a [`Service`]; nothing here knows an engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use drill_fixtures::Dataset;

use super::timeline::{Phase, Timeline};
use crate::scenario::{Fault, FaultAction, Scenario};
use crate::service::postgres::backup::Artifact;
use crate::service::{self, BackupCx, BackupRecord, Placement, Service};
use crate::vocab::{ServerInfo, ServiceKind};
use crate::workload::{Ledger, Writer};
use crate::{Error, Result};

/// Every server a drill runs, in the runbook's order.
#[derive(Debug, Default)]
pub(crate) struct Services(pub(crate) Vec<Box<dyn Service>>);

/// The writers while they run, one per service.
#[derive(Debug, Default)]
pub(crate) struct Writers(Vec<(ServiceKind, Writer)>);

/// What each writer had acknowledged when it stopped.
pub(crate) type Ledgers = BTreeMap<ServiceKind, Ledger>;

/// The backups taken so far, for the report.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// PostgreSQL's newest dump.
    pub(crate) dump: Option<Artifact>,
    /// Every other service's backups.
    pub(crate) records: Vec<BackupRecord>,
}

impl Services {
    /// Starts every service the scenario declares, each a timeline step.
    pub(crate) fn start(sc: &Scenario, at: &Placement<'_>, tl: &mut Timeline) -> Result<Services> {
        let mut all = Services::default();
        for kind in sc.services.kinds() {
            let s = tl.timed(
                &Phase::Setup,
                &format!("start {kind}"),
                || service::start(kind, sc, at),
                |s| s.started(),
            )?;
            all.0.push(s);
        }
        Ok(all)
    }

    /// The flavour of the first service that has several (PostgreSQL's).
    pub(crate) fn flavour(&self) -> String {
        self.0.iter().find_map(|s| s.flavour()).unwrap_or_default()
    }

    pub(crate) fn infos(&self) -> Vec<ServerInfo> {
        self.0.iter().map(|s| s.info().clone()).collect()
    }

    pub(crate) fn get_mut(&mut self, kind: ServiceKind) -> &mut dyn Service {
        self.0
            .iter_mut()
            .find(|s| s.kind() == kind)
            .map(|s| s.as_mut())
            .expect("validated: steps and faults name declared services")
    }

    pub(crate) fn get(&self, kind: ServiceKind) -> &dyn Service {
        self.0
            .iter()
            .find(|s| s.kind() == kind)
            .map(|s| s.as_ref())
            .expect("validated: checks name declared services")
    }

    /// Loads each service's part of one dataset.
    pub(crate) async fn load_fixtures(&self, data: &Dataset, tl: &mut Timeline) -> Result<()> {
        for s in &self.0 {
            let step = format!("load {} fixture", s.kind());
            let t = tl.start(&Phase::Setup, &step);
            let said = s.load_fixture(data).await?;
            tl.finish(&Phase::Setup, &step, t, true, said);
        }
        Ok(())
    }

    /// Every service's baseline now, as one step.
    pub(crate) async fn baselines(&mut self, tl: &mut Timeline) -> Result<BTreeMap<String, i64>> {
        let t = tl.start(&Phase::Setup, "baseline");
        let mut said = Vec::new();
        let mut rows = BTreeMap::new();
        for s in &mut self.0 {
            said.push(s.baseline().await?);
            rows.extend(s.baseline_rows());
        }
        tl.finish(&Phase::Setup, "baseline", t, true, said.join("; "));
        Ok(rows)
    }

    /// One writer per service, at `rate` acknowledged writes per second.
    pub(crate) async fn start_writers(&self, rate: u32, seed: u64) -> Result<Writers> {
        let mut w = Vec::new();
        for s in &self.0 {
            w.push((s.kind(), s.start_writer(rate, seed).await?));
        }
        Ok(Writers(w))
    }

    /// Takes each service's backup that the scenario asks for, each a step.
    pub(crate) async fn backup(
        &mut self,
        scenario_dir: &Path,
        work: &Path,
        tl: &mut Timeline,
        taken: &mut Taken,
    ) -> Result<()> {
        for i in 0..self.0.len() {
            let Some(label) = self.0[i].backup_label() else {
                continue;
            };
            let env = self.env(work);
            let cx = BackupCx {
                scenario_dir,
                work,
                env: &env,
            };
            let t = tl.start(&Phase::Backup, &label);
            match self.0[i].backup(&cx).await {
                Ok(b) => {
                    for p in b
                        .record
                        .iter()
                        .map(|r| &r.path)
                        .chain(b.artifact.iter().map(|a| &a.path))
                    {
                        owner_only(p).map_err(Error::io("restrict the permissions of", p))?;
                    }
                    tl.finish(&Phase::Backup, &label, t, true, b.detail);
                    if let Some(a) = b.artifact {
                        taken.dump = Some(a);
                    }
                    taken.records.extend(b.record);
                }
                Err(e) => {
                    tl.finish(&Phase::Backup, &label, t, false, e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Deals the fault to its targets at one instant: first every target is
    /// killed (when the fault destroys or crashes and several die), then
    /// each is dealt its fault. Returns what happened.
    /// Tells every service when the first fault began.
    pub(crate) fn fault_began(&mut self, at: Instant) {
        for s in &mut self.0 {
            s.fault_began(at);
        }
    }

    pub(crate) async fn inject(&mut self, fault: &Fault, seed: u64) -> Result<String> {
        let declared: Vec<ServiceKind> = self.0.iter().map(|s| s.kind()).collect();
        let targets = fault.targets(&declared);
        if targets.len() > 1
            && matches!(
                fault.action,
                FaultAction::Wipe | FaultAction::Crash | FaultAction::Kill
            )
        {
            // All at once, as when the machine or its disk goes: nothing is
            // written to one service after another has died.
            for t in &targets {
                let s = self.get_mut(*t);
                tokio::task::block_in_place(|| s.halt())?;
            }
        }
        let mut said = Vec::new();
        for t in targets {
            let what = self.get_mut(t).inject(fault, seed).await?;
            said.push(format!("{t}: {what}"));
        }
        Ok(said.join("; "))
    }

    /// What each service does before the fault while the writers write;
    /// what they said.
    pub(crate) async fn before_fault(&mut self, fault: &Fault) -> Result<Vec<String>> {
        let mut said = Vec::new();
        for s in &mut self.0 {
            if let Some(what) = s.before_fault(fault).await? {
                said.push(format!("{}: {what}", s.kind()));
            }
        }
        Ok(said)
    }

    /// The environment a user's command gets: each service's variables,
    /// the work dir, and the servers' own tools first on PATH (local
    /// binaries, or shims that run them in the containers).
    pub(crate) fn env(&self, work: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.0.iter().flat_map(|s| s.env()).collect();
        env.push(("DRILL_WORK_DIR".into(), work.display().to_string()));
        let shims: Vec<(String, String)> = self.0.iter().flat_map(|s| s.shims()).collect();
        let bin = work.join("bin");
        match write_shims(&bin, &shims) {
            Ok(()) => {
                let path = std::env::var("PATH").unwrap_or_default();
                env.push(("PATH".into(), format!("{}:{path}", bin.display())));
            }
            Err(e) => {
                tracing::warn!(error = %Error::io("write shims into", &bin)(e), "user commands get no tool shims")
            }
        }
        env
    }

    /// How to reach every service, for a person at a pause.
    pub(crate) fn connection_help(&self) -> Vec<String> {
        self.0.iter().map(|s| s.connection_help()).collect()
    }

    /// Leaves every server running; how to reach and remove each.
    pub(crate) fn keep(&mut self) -> Vec<String> {
        self.0.iter_mut().map(|s| s.keep()).collect()
    }
}

impl Writers {
    /// Stops every writer; returns their ledgers.
    pub(crate) async fn stop(self) -> Result<Ledgers> {
        let mut out = Ledgers::new();
        for (k, w) in self.0 {
            out.insert(k, w.stop().await?);
        }
        Ok(out)
    }
}

/// Writes each (program, script) into `bin` (again each time: a wipe or a
/// crash makes a new container). They hold the servers' passwords: the
/// folder and the scripts are their owner's only.
fn write_shims(bin: &Path, shims: &[(String, String)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin)?;
    std::fs::set_permissions(bin, std::fs::Permissions::from_mode(0o700))?;
    for (program, text) in shims {
        write_private(&bin.join(program), text)?;
    }
    Ok(())
}

/// Writes an executable only its owner reads, unless it already says
/// `text`: into a temp file renamed over it, so a script running it (bash
/// reads as it goes) never sees it half written.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), text)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A backup is its owner's only: files 0600, folders 0700 (the owner stays:
/// the server's user where it wrote them).
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        for e in std::fs::read_dir(path)? {
            owner_only(&e?.path())?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
