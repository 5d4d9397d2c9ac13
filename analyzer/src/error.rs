//! The analyzer's errors. Each says whose fault it is, so the HTTP layer
//! can answer 4xx for the caller's and 5xx only for ours.

/// What went wrong in the analyzer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or upload is malformed or mislabelled (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The upload could not be decoded as a profile (HTTP 400).
    #[error("malformed profile: {0}")]
    Profile(#[from] flameshift_profile::Error),
    /// A service, deploy or other named thing does not exist (HTTP 404).
    #[error("unknown {what} `{name}`")]
    NotFound {
        /// What kind of thing, e.g. `service`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The request has no token, or one the server does not know (HTTP
    /// 401).
    #[error("missing or unknown `Authorization: Bearer` token ({0})")]
    Unauthorized(&'static str),
    /// The caller's token may not do this (HTTP 403): the message names
    /// what it lacks.
    #[error("{0}")]
    Forbidden(String),
    /// The selection holds data in more than one unit (HTTP 400): units
    /// are never added or converted.
    #[error("the selection mixes units ({0}); narrow it to one deploy or host")]
    MixedUnits(String),
    /// The disk is full; nothing was stored (HTTP 507).
    #[error("no space left on the data directory's disk; nothing was stored")]
    DiskFull,
    /// An I/O error on the data directory (HTTP 500).
    #[error("storage: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A Parquet file of the store could not be written or read (HTTP 500).
    #[error("storage: Parquet file {}: {source}", path.display())]
    Parquet {
        /// The file.
        path: std::path::PathBuf,
        /// What the Parquet library said.
        source: parquet::errors::ParquetError,
    },
    /// A stack a row refers to is not in the store (HTTP 500): the rows
    /// and the stacks they use are always stored together, so this is
    /// damage, never the caller's fault.
    #[error("storage: stack {id:016x} of service `{service}` is missing")]
    MissingStack {
        /// The service.
        service: String,
        /// The stack id.
        id: u64,
    },
    /// The store cannot be reached or is refusing work for now (HTTP 503
    /// with `Retry-After`); nothing was stored, and the same request may
    /// be sent again.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error (HTTP 500): ClickHouse's own
    /// message, with the statement's first words.
    #[error("storage: {0}")]
    Backend(String),
    /// A store location or setting is unusable (at start: exit 2).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// An I/O error with what was being done; `ENOSPC` becomes [`Error::DiskFull`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        if source.raw_os_error() == Some(28) || source.kind() == std::io::ErrorKind::StorageFull {
            return Error::DiskFull;
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A [`Error::BadRequest`] from anything printable.
    pub fn bad(message: impl Into<String>) -> Error {
        Error::BadRequest(message.into())
    }
}

/// The analyzer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
