//! The record of one regression, as the API, the webhook and the CLI show it.

use flameshift_profile::wire::Unit;
use serde::{Deserialize, Serialize};

use crate::callpath::CallPath;

/// Which cost rose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The function's own cost (samples whose leaf it is).
    #[serde(rename = "self")]
    SelfCost,
    /// The function's cost with everything it calls.
    Inclusive,
    /// The whole endpoint's cost per request.
    Total,
}

impl Metric {
    /// `self`, `inclusive` or `total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::SelfCost => "self",
            Metric::Inclusive => "inclusive",
            Metric::Total => "total",
        }
    }
}

/// What a cost was divided by: the best the data supports
/// (docs/detection.md, "Measures").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Cost per request: the agents that count requests.
    #[default]
    PerRequest,
    /// Share of the endpoint's sampled cost (of the whole service where
    /// no endpoint is labelled): any profile, after Meta's FBDetect.
    Share,
    /// Cost per second of wall time, summed over the service's hosts:
    /// where a share is always 1 (a single function does all the work).
    PerSecond,
}

impl Measure {
    /// `per_request`, `share` or `per_second`: the name the API and the
    /// CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::PerRequest => "per_request",
            Measure::Share => "share",
            Measure::PerSecond => "per_second",
        }
    }

    /// `value` of this measure in `unit`, for people: `338 µs` (per
    /// request), `27.9%` (share), `0.41 cores` or `2.1 G instructions/s`
    /// (per second).
    pub fn quantity(self, unit: Unit, value: f64) -> String {
        match (self, unit) {
            (Measure::PerRequest, _) => quantity(unit, value),
            (Measure::Share, _) => format!("{:.2}% of samples", value * 100.0),
            (Measure::PerSecond, Unit::CpuNs) => format!("{:.3} cores", value / 1e9),
            (Measure::PerSecond, Unit::Instructions) => format!("{}/s", quantity(unit, value)),
        }
    }

    /// How a change of this measure reads after a number: `per
    /// request`, `in share`, `per second`.
    pub fn per(self) -> &'static str {
        match self {
            Measure::PerRequest => "per request",
            Measure::Share => "in share",
            Measure::PerSecond => "per second",
        }
    }
}

impl std::str::FromStr for Measure {
    type Err = String;
    fn from_str(s: &str) -> Result<Measure, String> {
        match s {
            "per_request" => Ok(Measure::PerRequest),
            "share" => Ok(Measure::Share),
            "per_second" => Ok(Measure::PerSecond),
            other => Err(format!(
                "unknown measure {other:?}: per_request, share or per_second"
            )),
        }
    }
}

/// Which layer found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The comparison of a deploy with the one before.
    Deploy,
    /// A change point inside one deploy's series.
    ChangePoint,
}

/// Where a regression stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Found, nobody has looked at it yet.
    #[default]
    Open,
    /// Somebody said they are on it.
    Acknowledged,
    /// A later deploy brought the cost back.
    Resolved,
}

impl State {
    /// `open`, `acknowledged` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acknowledged => "acknowledged",
            State::Resolved => "resolved",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        match s {
            "open" => Ok(State::Open),
            "acknowledged" => Ok(State::Acknowledged),
            "resolved" => Ok(State::Resolved),
            other => Err(format!(
                "unknown state {other:?}: use open, acknowledged or resolved"
            )),
        }
    }
}

/// A cost per request with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The mean over windows.
    pub mean: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// One regression: a cost per request that rose and stayed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// Stable identifier: the same regression found again keeps it.
    pub id: String,
    /// The service.
    pub service: String,
    /// The endpoint.
    pub endpoint: String,
    /// The function, or none for the endpoint's total.
    pub function: Option<String>,
    /// Which cost rose.
    pub metric: Metric,
    /// Which layer found it.
    pub source: Source,
    /// What the costs are divided by: per request, share of the
    /// endpoint's samples, or per second of wall time.
    #[serde(default)]
    pub measure: Measure,
    /// The deploy compared against (the same as `deploy_after` for a change
    /// point inside one deploy).
    pub deploy_before: String,
    /// The deploy in which the cost rose.
    pub deploy_after: String,
    /// Unit of every cost.
    pub unit: Unit,
    /// The cost before, in `measure` (per request, share or per second).
    pub before: Estimate,
    /// The cost after, in `measure`.
    pub after: Estimate,
    /// The shift (Hodges–Lehmann) in `measure`, with its bootstrap interval.
    pub change: Estimate,
    /// The shift relative to `before.mean`, with its interval (none when
    /// the cost was zero before: new code).
    pub relative: Option<Estimate>,
    /// The larger of the one-sided Mann–Whitney and Welch p-values.
    pub p_value: f64,
    /// Mann–Whitney U, one-sided.
    pub p_mann_whitney: f64,
    /// Welch's t-test, one-sided.
    pub p_welch: f64,
    /// Benjamini–Hochberg q-value over every test of the deploy (for a
    /// change point: its p-value times the series tested).
    pub q_value: f64,
    /// Windows before and after.
    pub windows: [usize; 2],
    /// Samples before and after.
    pub samples: [i64; 2],
    /// Other rises this one explains (`inclusive:FUNCTION`, `total`).
    pub explains: Vec<String>,
    /// For an inclusive or total rise: the function below whose self cost
    /// rose most and explains at least half of it (its own rise may be too
    /// small to be significant alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// For a change point: start of the first window after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    /// When it was first found, ms since the Unix epoch.
    pub first_seen_ms: i64,
    /// When it was last confirmed, ms.
    pub last_seen_ms: i64,
    /// Where it stands.
    pub state: State,
    /// The deploy that brought the cost back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// API paths to look at it: the differential flame graph and the
    /// series (filled by the analyzer, which knows its routes; empty in a
    /// record that never left the detection core).
    #[serde(default)]
    pub links: Links,
    /// For a self-cost rise, the callers above the function where it
    /// concentrates (the code that changed is often there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_path: Option<CallPath>,
    /// The smallest relative rise the test that found it could have seen
    /// (80% power at its significance; docs/detection.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mde: Option<f64>,
    /// What the rise costs in CPU (CPU time only; none for instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// The commits of its deploy that may have caused it, likeliest
    /// first (when the deploy event listed them: `flameshift deploy
    /// --commits`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspects: Vec<crate::suspects::Suspect>,
}

/// What a rise costs in CPU: its shift times the load of the deploy
/// after, at its busiest window and over a day at its mean load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Extra cores at the busiest window (shift × requests a second
    /// there, or the endpoint's CPU a second for shares; a rise in CPU a
    /// second is cores already).
    pub cores_at_peak: f64,
    /// Extra core-hours a day at the deploy's mean load.
    pub core_hours_per_day: f64,
    /// Requests a second at the busiest window, where requests were
    /// counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rps: Option<f64>,
}

impl Capacity {
    /// "+0.80 cores at peak, 14.2 core-hours a day".
    pub fn describe(&self) -> String {
        let cores = |x: f64| {
            if x.abs() >= 10.0 {
                format!("{x:+.0}")
            } else if x.abs() >= 0.1 {
                format!("{x:+.2}")
            } else {
                format!("{x:+.4}")
            }
        };
        let hours = if self.core_hours_per_day.abs() >= 10.0 {
            format!("{:.0}", self.core_hours_per_day)
        } else {
            format!("{:.2}", self.core_hours_per_day)
        };
        format!(
            "{} cores at peak, {hours} core-hours a day",
            cores(self.cores_at_peak)
        )
    }
}

/// Where to look at a regression.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// Differential flame graph of the endpoint, before → after (SVG).
    pub diff: String,
    /// Cost-per-request series of the function in the endpoint.
    pub series: String,
}

impl Regression {
    /// One line for people and chat tools: what rose, where, by how much.
    pub fn summary(&self) -> String {
        let mut what = match &self.function {
            Some(f) => format!("{f} ({} cost)", self.metric.as_str()),
            None => "total cost".to_owned(),
        };
        if let Some(cause) = &self.cause {
            what.push_str(&format!(", likely {cause}"));
        }
        let pct = |x: f64| format!("{:+.1}%", x * 100.0);
        let deploys = match self.source {
            Source::Deploy => format!("{} → {}", self.deploy_before, self.deploy_after),
            Source::ChangePoint => format!("within {}", self.deploy_after),
        };
        let m = self.measure;
        let per = format!(" {}", m.per());
        let change = match &self.relative {
            Some(r) => format!(
                "{}{per} [{}, {}] ({} → {})",
                pct(r.mean),
                pct(r.low),
                pct(r.high),
                m.quantity(self.unit, self.before.mean),
                m.quantity(self.unit, self.after.mean)
            ),
            None if m == Measure::PerRequest => {
                format!("new, {} per request", quantity(self.unit, self.change.mean))
            }
            None => format!("new, {}", m.quantity(self.unit, self.change.mean)),
        };
        let mut place = self
            .call_path
            .as_ref()
            .map(|p| format!(", {}", p.describe()))
            .unwrap_or_default();
        if let Some(capacity) = &self.capacity {
            place.push_str(&format!(", {}", capacity.describe()));
        }
        let suspect = self
            .suspects
            .first()
            .map(|s| format!(", suspect {} \"{}\" ({})", s.short, s.title, s.author))
            .unwrap_or_default();
        format!(
            "{service} {endpoint}: {what} {change}{place}, {deploys}, q={q:.1e}{suspect}",
            service = self.service,
            endpoint = self.endpoint,
            q = self.q_value,
        )
    }
}

/// `value` in `unit` for people: `12.3 µs`, `45.6 k instructions`.
pub fn quantity(unit: Unit, value: f64) -> String {
    let ty = match unit {
        Unit::CpuNs => flameshift_profile::SampleType::new("cpu", "nanoseconds"),
        Unit::Instructions => flameshift_profile::SampleType::new("instructions", "instructions"),
    };
    flameshift_profile::units::format_quantity(value, &ty)
}

/// The stable id of a regression of `metric` of `function` in `endpoint`
/// first seen in `deploy`.
pub fn regression_id(
    service: &str,
    endpoint: &str,
    function: Option<&str>,
    metric: Metric,
    deploy: &str,
) -> String {
    let key = format!(
        "{service}\u{1f}{endpoint}\u{1f}{}\u{1f}{}\u{1f}{deploy}",
        function.unwrap_or(""),
        metric.as_str()
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}
