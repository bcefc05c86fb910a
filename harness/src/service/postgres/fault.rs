//! The faults PostgreSQL takes. Each is a verb that documents what survives
//! it (see [`FaultAction`]), and acts on real things: a wipe deletes the
//! real data directory or Docker volume.

use crate::Result;
use crate::scenario::{Fault, FaultAction};
use crate::service::Lifecycle;
use crate::service::postgres::Postgres;

/// Injects the fault into the server. See [`FaultAction`] for what survives.
/// `base_settings` are the service's own `-c` settings; a restart keeps
/// them unless the fault overrides them.
pub(super) async fn inject(
    server: &mut Postgres,
    fault: &Fault,
    base_settings: &std::collections::BTreeMap<String, String>,
) -> Result<String> {
    match fault.action {
        FaultAction::Wipe => {
            tokio::task::block_in_place(|| server.wipe())?;
            Ok("data directory destroyed; server re-initialised with an empty database".into())
        }
        FaultAction::Restart => {
            let stopped = tokio::task::block_in_place(|| server.restart())?;
            Ok(format!(
                "stopped (fast shutdown: {stopped}) and started again on the same data"
            ))
        }
        FaultAction::CorruptAof | FaultAction::RedisCommand => {
            unreachable!("validated: {} acts on redis", fault.action.name())
        }
        FaultAction::Crash => {
            tokio::task::block_in_place(|| server.crash())?;
            Ok("every server process killed (SIGKILL); started again on the same data".into())
        }
        FaultAction::Cutover => Ok(format!(
            "maintenance window open: the application stops writing; the server ({}) is untouched",
            server.info.flavour
        )),
        FaultAction::Kill => {
            tokio::task::block_in_place(|| server.halt())?;
            Ok("every server process killed (SIGKILL); left down, its data where it was".into())
        }
        FaultAction::DropDatabase => {
            crate::service::postgres::drop_and_recreate(server.coordinates()).await?;
            Ok(format!(
                "database {} dropped and created again, empty",
                server.coordinates().database
            ))
        }
        FaultAction::RestartWith => {
            // The service's own settings, overridden by the restart's.
            let mut merged = base_settings.clone();
            merged.extend(fault.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
            let settings: Vec<(String, String)> = merged.into_iter().collect();
            tokio::task::block_in_place(|| server.restart_with(&settings, fault.reattach))?;
            let flags: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Ok(format!(
                "restarted with {}; data directory {}",
                if flags.is_empty() {
                    "default settings".into()
                } else {
                    flags.join(" ")
                },
                if fault.reattach {
                    "reattached"
                } else {
                    "NOT reattached (a fresh, empty one)"
                }
            ))
        }
        FaultAction::Sql => {
            let sql = fault
                .sql
                .as_deref()
                .expect("validated: sql faults carry sql");
            tokio::task::block_in_place(|| super::restore::run_sql(server, sql))?;
            Ok(format!(
                "ran: {}",
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        }
    }
}
