//! The harness's errors. Two kinds are kept apart on purpose: a scenario whose
//! expectations were missed is a *verdict* (see [`crate::engine::Verdict`]),
//! never an error; an [`Error`] means the harness itself could not do its job
//! (bad input, a missing tool, a server that would not start).
//!
//! Each variant keeps the error it came from as its `source()`, so a Docker,
//! Redis, ClickHouse or PostgreSQL failure can be followed to its cause, and
//! [`Error::kind`] classifies an error by its variant, never by its text.
//!
//! **Architecture Invariant:** this module imports nothing from the rest of
//! the crate but [`crate::vocab`], so every layer may use it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::vocab::ServiceKind;

/// Result alias for the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something the harness could not do. Messages fit "failed to {..}" style:
/// lowercase, no trailing period, and they say what to do where we know.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file (or another input) is malformed; the inner error names
    /// file, line and key.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),

    /// A flag or an input file is unusable; says which and what to do.
    #[error("{what}: {why}")]
    BadInput { what: String, why: String },

    /// A server binary or client tool is not installed.
    #[error("{tool} not found (looked in {looked_in}); install it with `{install}`")]
    MissingTool {
        tool: String,
        looked_in: String,
        install: String,
    },

    /// An external command ran and reported failure.
    #[error("{what} failed ({status}){}", detail(.output))]
    Command {
        what: String,
        status: String,
        /// The end of what it printed (stderr, else stdout).
        output: String,
    },

    /// An external command could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },

    /// A server did not answer within its start-up time.
    #[error("{service} did not become ready within {}s{}{}", .waited.as_secs(), last(.last_answer), detail(.log_tail))]
    NotReady {
        service: ServiceKind,
        waited: Duration,
        last_answer: String,
        log_tail: String,
    },

    /// A server process or container stopped when it should run.
    #[error("{service} is not running ({why}){}", detail(.log_tail))]
    Down {
        service: ServiceKind,
        why: String,
        log_tail: String,
    },

    /// A SQL statement the harness needs failed (PostgreSQL).
    #[error("query failed ({context}): {source}")]
    Sql {
        context: String,
        source: sqlx::Error,
    },

    /// A Redis command the harness needs failed.
    #[error("redis: {context}: {source}")]
    Redis {
        context: String,
        source: ::redis::RedisError,
    },

    /// A ClickHouse query the harness needs failed.
    #[error("clickhouse: {context}: {source}")]
    ClickHouse {
        context: String,
        source: ::clickhouse::error::Error,
    },

    /// The Docker engine refused or failed a call.
    #[error("docker: {context}: {source}")]
    Docker {
        context: String,
        source: testcontainers::bollard::errors::Error,
    },

    /// testcontainers could not start a container.
    #[error("docker: {context}: {source}")]
    Container {
        context: String,
        source: testcontainers::TestcontainersError,
    },

    /// File system trouble, with the path involved.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// A result the harness relies on was not there (a server that named
    /// no data dir, a backup with no parts): what was expected and what
    /// was found.
    #[error("{what}: {found}")]
    Unexpected { what: String, found: String },
}

/// What kind of trouble an error is, for exit codes and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's input: fix it and run again (exit 3).
    BadInput,
    /// The machine lacks something: install it (exit 2).
    Environment,
    /// A server or tool failed while the drill ran (exit 2).
    Harness,
}

impl Error {
    /// Classifies by variant.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Scenario(_) | Error::BadInput { .. } => ErrorKind::BadInput,
            Error::MissingTool { .. } => ErrorKind::Environment,
            _ => ErrorKind::Harness,
        }
    }

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

    pub(crate) fn redis(context: impl Into<String>) -> impl FnOnce(::redis::RedisError) -> Error {
        let context = context.into();
        move |source| Error::Redis { context, source }
    }

    pub(crate) fn clickhouse(
        context: impl Into<String>,
    ) -> impl FnOnce(::clickhouse::error::Error) -> Error {
        let context = context.into();
        move |source| Error::ClickHouse { context, source }
    }

    pub(crate) fn docker(
        context: impl Into<String>,
    ) -> impl FnOnce(testcontainers::bollard::errors::Error) -> Error {
        let context = context.into();
        move |source| Error::Docker { context, source }
    }

    pub(crate) fn spawn(command: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let command = command.into();
        move |source| Error::Spawn { command, source }
    }

    /// A command that ran and failed, with the end of its output.
    pub(crate) fn command(what: impl Into<String>, out: &std::process::Output) -> Error {
        let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &out.stderr
        } else {
            &out.stdout
        };
        Error::Command {
            what: what.into(),
            status: out.status.to_string(),
            output: crate::vocab::tail(String::from_utf8_lossy(text).trim(), 15),
        }
    }

    pub(crate) fn unexpected(what: impl Into<String>, found: impl fmt::Display) -> Error {
        Error::Unexpected {
            what: what.into(),
            found: found.to_string(),
        }
    }

    pub(crate) fn bad_input(what: impl Into<String>, why: impl fmt::Display) -> Error {
        Error::BadInput {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

fn detail(text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", text.trim_end())
    }
}

fn last(answer: &str) -> String {
    if answer.is_empty() {
        String::new()
    } else {
        format!(" (last answer: {answer})")
    }
}

/// An input file that cannot be used, and why: file, line, column, key,
/// what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `recovery[1].steps[0].step`.
    pub key: String,
    pub message: String,
    pub help: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        Ok(())
    }
}

/// Why an input is refused, in words for the person who gave it: a reason
/// with no underlying error to keep (a FIFO where a file belongs, an
/// unbalanced quote in a probe).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refusal(pub(crate) String);

impl From<&str> for Refusal {
    fn from(s: &str) -> Self {
        Refusal(s.to_string())
    }
}

impl From<String> for Refusal {
    fn from(s: String) -> Self {
        Refusal(s)
    }
}
