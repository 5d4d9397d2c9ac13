//! The wire types between the agent and the analyzer, written once and
//! used by both sides: the [`Unit`] of every weight, the request
//! statistics body of `POST /api/v1/requests` ([`RequestsBody`]) and the
//! deploy event of `POST /api/v1/deploys` ([`DeployBody`]). Profiles
//! themselves travel as pprof (see [`crate::format::pprof`]); the JSON
//! bodies are described in `docs/wire-format.md`.
//!
//! ```
//! use flameshift_profile::wire::{EndpointRequests, RequestsBody, Unit};
//!
//! let body = RequestsBody {
//!     service: "shop".into(),
//!     deploy: "v2".into(),
//!     host: Some("web-1".into()),
//!     unit: Unit::CpuNs,
//!     start_ms: 1_764_000_000_000,
//!     duration_ms: 10_000,
//!     endpoints: vec![EndpointRequests {
//!         endpoint: "GET /feed".into(),
//!         count: 2,
//!         cost_sum: 900_000,
//!         histogram: vec![(131, 2)],
//!     }],
//! };
//! let json = serde_json::to_string(&body)?;
//! assert!(json.contains(r#""unit":"cpu_ns""#));
//! assert_eq!(serde_json::from_str::<RequestsBody>(&json)?, body);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::SampleType;

/// The unit of every weight: CPU instructions, or CPU nanoseconds where
/// the host has no hardware counter. Never mixed, never converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Retired CPU instructions.
    Instructions,
    /// CPU time in nanoseconds.
    CpuNs,
}

impl Unit {
    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Instructions => "instructions",
            Unit::CpuNs => "cpu_ns",
        }
    }

    /// Parses [`Unit::as_str`]'s names.
    pub fn parse(text: &str) -> Option<Unit> {
        match text {
            "instructions" => Some(Unit::Instructions),
            "cpu_ns" => Some(Unit::CpuNs),
            _ => None,
        }
    }

    /// The pprof sample type of this unit.
    pub fn sample_type(self) -> SampleType {
        match self {
            Unit::Instructions => SampleType::new("cpu", "instructions"),
            Unit::CpuNs => SampleType::new("cpu", "nanoseconds"),
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Request statistics of one window, as the agent sends them
/// (`POST /api/v1/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsBody {
    /// The service.
    pub service: String,
    /// The deploy.
    pub deploy: String,
    /// The host (default `unknown`).
    #[serde(default)]
    pub host: Option<String>,
    /// Unit of the costs.
    pub unit: Unit,
    /// Start of the window, ms since the Unix epoch.
    pub start_ms: i64,
    /// Length of the window in ms.
    #[serde(default)]
    pub duration_ms: i64,
    /// One entry per endpoint.
    pub endpoints: Vec<EndpointRequests>,
}

/// One endpoint's requests in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequests {
    /// The endpoint (route template).
    pub endpoint: String,
    /// Requests completed.
    pub count: i64,
    /// Sum of their own CPU cost.
    pub cost_sum: i64,
    /// `[bucket, requests]` pairs of the log-linear cost histogram.
    #[serde(default)]
    pub histogram: Vec<(u32, u64)>,
}

/// A deploy event (`POST /api/v1/deploys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// The service.
    pub service: String,
    /// The deploy (version).
    pub deploy: String,
    /// When, ms since the Unix epoch (default: when received).
    #[serde(default)]
    pub time_ms: Option<i64>,
    /// Commit.
    #[serde(default)]
    pub commit: Option<String>,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// The commits the deploy brought, with what each changed
    /// (`flameshift deploy --commits BASE..HEAD`): the server ranks
    /// them as suspects of the deploy's regressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<Commit>,
}

/// A commit and what it left in the source of the version it is part of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    /// Full SHA.
    pub sha: String,
    /// Short SHA.
    pub short: String,
    /// Its title (first line of the message).
    pub title: String,
    /// `Name <email>`.
    pub author: String,
    /// The files it changed.
    pub files: Vec<FileChange>,
}

/// A file a commit changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    /// The path in the repository.
    pub path: String,
    /// The version's lines that this commit last changed (inclusive
    /// ranges, 1-based); empty when it only deleted lines or the file.
    pub lines: Vec<(u32, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_have_one_spelling() {
        for unit in [Unit::Instructions, Unit::CpuNs] {
            assert_eq!(Unit::parse(unit.as_str()), Some(unit));
            let json = serde_json::to_string(&unit).unwrap();
            assert_eq!(json, format!("\"{}\"", unit.as_str()));
        }
        assert_eq!(Unit::parse("nanoseconds"), None);
    }

    #[test]
    fn an_unknown_unit_is_refused_by_name() {
        let json = r#"{"service":"s","deploy":"d","unit":"cycles","start_ms":0,"endpoints":[]}"#;
        let err = serde_json::from_str::<RequestsBody>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycles"), "{err}");
    }

    #[test]
    fn names_with_quotes_and_control_characters_round_trip() {
        let body = RequestsBody {
            service: "sh\"op".into(),
            deploy: "v\\1".into(),
            host: None,
            unit: Unit::Instructions,
            start_ms: 5,
            duration_ms: 10,
            endpoints: vec![EndpointRequests {
                endpoint: "GET /a\n".into(),
                count: 1,
                cost_sum: 9,
                histogram: vec![(9, 1)],
            }],
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains(r#""endpoint":"GET /a\n""#), "{json}");
        assert_eq!(serde_json::from_str::<RequestsBody>(&json).unwrap(), body);
    }
}
