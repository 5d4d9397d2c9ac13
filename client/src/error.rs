//! Errors of the client.

use crate::http::HttpError;

/// What can go wrong talking to the analyzer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request failed or was refused.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The profile could not be encoded.
    #[error(transparent)]
    Profile(#[from] flameshift_profile::Error),
    /// The analyzer's answer is not what the API says.
    #[error("the analyzer's answer to {route} is not {expected}: {reason}")]
    Answer {
        /// The route asked.
        route: &'static str,
        /// What it should have been.
        expected: &'static str,
        /// Why it is not.
        reason: String,
    },
}

impl Error {
    /// Whether the same request may succeed later (no connection, a
    /// timeout, 5xx, 429); everything else will fail again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Http(e) if e.is_retryable())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
