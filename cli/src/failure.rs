//! How a command ends when it does not succeed: one type, one exit code per
//! kind (documented in the README), and the message a person reads.

/// Exit codes, documented in the README.
pub mod exit {
    /// Every expectation met.
    pub const OK: u8 = 0;
    /// A drill ran and missed an expectation (the system under test failed).
    pub const EXPECTATION_MISSED: u8 = 1;
    /// The harness itself failed (missing tools, a server that would not start, a bug).
    pub const HARNESS_ERROR: u8 = 2;
    /// Bad input: a malformed scenario, flag or file, or an unknown scenario name.
    pub const BAD_INPUT: u8 = 3;
    /// `--gate`: a scenario's RTO regressed beyond the margin, or its predicted
    /// RTO is over the target (expectations met).
    pub const REGRESSION: u8 = 4;
    /// Interrupted by Ctrl-C, SIGTERM or SIGHUP (everything started was removed).
    pub const INTERRUPTED: u8 = 130;
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// A drill ran and missed an expectation; the reports say which.
    ExpectationMissed,
    /// The harness could not do its job.
    Harness(anyhow::Error),
    /// The input is unusable; the message says where and how to fix it.
    BadInput(anyhow::Error),
    /// Every expectation met, but an RTO regressed beyond the gate's margin.
    Regression,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::ExpectationMissed => exit::EXPECTATION_MISSED,
            Failure::Harness(_) => exit::HARNESS_ERROR,
            Failure::BadInput(_) => exit::BAD_INPUT,
            Failure::Regression => exit::REGRESSION,
        }
    }

    /// What to print, when the command has not said it already.
    pub fn message(&self) -> Option<String> {
        match self {
            Failure::Harness(e) | Failure::BadInput(e) => Some(format!("error: {e:#}")),
            Failure::ExpectationMissed | Failure::Regression => None,
        }
    }

    pub fn bad_input(e: impl Into<anyhow::Error>) -> Failure {
        Failure::BadInput(e.into())
    }
}

impl From<drill::Error> for Failure {
    fn from(e: drill::Error) -> Failure {
        match e.kind() {
            drill::ErrorKind::BadInput => Failure::BadInput(e.into()),
            drill::ErrorKind::Environment | drill::ErrorKind::Harness => Failure::Harness(e.into()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Harness(e)
    }
}

impl From<drill::ScenarioError> for Failure {
    fn from(e: drill::ScenarioError) -> Failure {
        Failure::BadInput(e.into())
    }
}

/// What a command returns.
pub type Outcome = Result<(), Failure>;
