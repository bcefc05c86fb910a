//! The harness's errors. Two kinds are kept apart on purpose: a scenario whose
//! expectations were missed is a *verdict* (see [`crate::engine::Verdict`]),
//! never an error; an [`Error`] means the harness itself could not do its job
//! (bad input, a missing tool, a server that would not start).

use std::path::PathBuf;

/// Result alias for the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something the harness could not do. Messages fit "failed to {..}" style:
/// lowercase, no trailing period, and they say what to do where we know.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file is malformed; the inner error names file, line and key.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),

    /// A server binary or client tool is not installed.
    #[error("{tool} not found (looked in {looked_in}); install it with `{install}`")]
    MissingTool {
        tool: String,
        looked_in: String,
        install: String,
    },

    /// A server process could not be started or stopped.
    #[error("{what}: {detail}")]
    Server { what: String, detail: String },

    /// An external command failed to run (not: ran and reported failure).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },

    /// A SQL query the harness needs failed.
    #[error("query failed ({context}): {source}")]
    Sql {
        context: String,
        source: sqlx::Error,
    },

    /// File system trouble, with the path involved.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// The run was interrupted (Ctrl-C); everything started was torn down.
    #[error("interrupted; servers and temp dirs were removed")]
    Interrupted,
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { context, source }
    }

    pub(crate) fn server(what: impl Into<String>, detail: impl std::fmt::Display) -> Error {
        Error::Server {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}
