//! Errors of the profile crate.

use std::path::PathBuf;

/// Everything that can go wrong reading, combining or writing profiles.
///
/// Each variant names what was wrong and where (field, index, line), so that
/// a user can find the problem in their file without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with the path it happened on when there is one.
    #[error("{}{error}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Io {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The gzip stream is truncated or corrupt.
    #[error("corrupt gzip stream: {0}")]
    Gzip(std::io::Error),
    /// The decompressed input is larger than the configured cap.
    #[error(
        "decompressed input exceeds the limit of {limit} bytes (a decompression bomb, or raise the limit)"
    )]
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// The bytes are not a valid `profile.proto` message.
    #[error("not a valid pprof profile.proto: {0}")]
    Protobuf(prost::DecodeError),
    /// A pprof field holds a value that is out of range or refers to nothing.
    #[error("invalid pprof profile: {field}: {problem}")]
    InvalidPprof {
        /// The field, e.g. `sample[3].location_id[0]`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An OTLP profiles field holds a value that is out of range.
    #[error("invalid OTLP profiles request: {field}: {problem}")]
    InvalidOtlp {
        /// The field, e.g. `samples[3].stack_index`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A request of another producer (OTLP, Pyroscope push) is not valid
    /// protobuf or JSON.
    #[error("malformed {what}: {problem}")]
    Malformed {
        /// What was being read, e.g. `OTLP profiles request (protobuf)`.
        what: &'static str,
        /// The decoder's complaint.
        problem: String,
    },
    /// A line of a text format could not be parsed.
    #[error("{format} line {line}: {problem}")]
    Parse {
        /// The format being read, e.g. `folded`.
        format: &'static str,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        problem: String,
    },
    /// The input's format could not be recognised.
    #[error("unrecognised profile format: {0}")]
    UnknownFormat(String),
    /// Two profiles (or a profile and a request) use different sample types or units.
    #[error("mismatched units: {left} vs {right}; flameshift never mixes or converts units")]
    MismatchedUnits {
        /// Sample types of the first side, e.g. `cpu/nanoseconds`.
        left: String,
        /// Sample types of the second side.
        right: String,
    },
    /// A sample type index or name does not exist in the profile.
    #[error("no sample type {0} in this profile")]
    NoSuchSampleType(String),
    /// A label selector such as `key=value` is malformed.
    #[error("bad label selector {0:?}: expected key=value")]
    BadLabelSelector(String),
    /// Writing JSON failed.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// Rendering a flame graph failed.
    #[error("flame graph rendering: {0}")]
    Render(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error without a path.
    pub fn io(error: std::io::Error) -> Self {
        Error::Io { path: None, error }
    }

    /// Wraps an I/O error that happened on `path`.
    pub fn io_at(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            error,
        }
    }

    pub(crate) fn pprof(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::InvalidPprof {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

// Hand-written rather than `#[from]`, which would also make the wrapped
// error the `source()` and print its text twice in error chains.
impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::Protobuf(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}
