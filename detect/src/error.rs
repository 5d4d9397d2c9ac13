//! What detection refuses to do, and why.

/// Why two sets of runs cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// A side has no runs, or only empty ones.
    #[error("the {0} has no samples")]
    Empty(&'static str),
    /// The candidate's time goes to functions the baseline never spent
    /// time in: two different programs.
    #[error("the baseline and the candidate have no function in common where the time goes: are they the same program?")]
    NoCommonFunctions,
}

/// The detection crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
