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
    /// An upload to the analyzer failed.
    #[error("upload to {url}: {message}")]
    Upload {
        /// Where it went.
        url: String,
        /// What happened (the analyzer's error text for a refusal).
        message: String,
    },
    /// Building the profile failed.
    #[error(transparent)]
    Profile(#[from] flameshift_profile::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
