//! Errors of the collector.

/// Everything that can go wrong sampling a process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `perf_event_open` failed; the message says which setting to change.
    #[error("perf_event_open({event}): {message}")]
    PerfOpen {
        /// The event that could not be opened.
        event: String,
        /// What went wrong and what to do about it.
        message: String,
    },
    /// The requested event does not exist on this machine (e.g. no PMU).
    #[error("event {0} is not supported on this machine (no hardware PMU?); use --event cpu-clock or auto")]
    Unsupported(String),
    /// There is no process with this pid (or it is not ours to see).
    #[error("no such process: {0}")]
    NoSuchProcess(u32),
    /// Mapping the ring buffer failed.
    #[error("mmap of the perf ring buffer: {0}")]
    Mmap(std::io::Error),
    /// Starting the command failed.
    #[error("cannot start {command:?}: {error}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        error: std::io::Error,
    },
    /// Another I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A request to the analyzer failed or was refused.
    #[error(transparent)]
    Http(#[from] flameshift_client::http::HttpError),
    /// `--python on`, and the target's Python frames cannot be read.
    #[error("--python on: {0}")]
    Python(#[from] crate::cpython::process::NotRead),
    /// Building the profile failed.
    #[error(transparent)]
    Profile(#[from] flameshift_profile::Error),
}

impl Error {
    /// Whether the same upload may succeed later (no connection, a
    /// timeout, 5xx, 429); everything else will fail again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Http(e) if e.is_retryable())
    }

    /// The wait the analyzer asked for (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Http(e) => e.retry_after(),
            _ => None,
        }
    }
}

impl From<flameshift_client::Error> for Error {
    fn from(e: flameshift_client::Error) -> Error {
        match e {
            flameshift_client::Error::Http(e) => Error::Http(e),
            flameshift_client::Error::Profile(e) => Error::Profile(e),
            other => Error::Io(std::io::Error::other(other.to_string())),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
