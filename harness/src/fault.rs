//! Faults are verbs acting on a service; each documents what survives it.
//! They act on real things: a wipe deletes the real data directory.

use crate::Result;
use crate::backend::PostgresServer;
use crate::scenario::FaultAction;

/// Injects `action` into the server. See [`FaultAction`] for what survives.
pub async fn inject(server: &mut dyn PostgresServer, action: FaultAction) -> Result<String> {
    match action {
        FaultAction::Wipe => {
            tokio::task::block_in_place(|| server.wipe())?;
            Ok("data directory destroyed; server re-initialised with an empty database".into())
        }
        FaultAction::DropDatabase => {
            crate::postgres::drop_and_recreate(server.coordinates()).await?;
            Ok(format!("database {} dropped and created again, empty", server.coordinates().database))
        }
    }
}
