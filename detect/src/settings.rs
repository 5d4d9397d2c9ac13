//! Every threshold of detection in one place, each with its default.

use serde::{Deserialize, Serialize};

/// The settings of the deploy comparison and of the change-point layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectSettings {
    /// Width of the windows whose cost per request is one observation
    /// (default 60 s).
    pub window_ms: i64,
    /// Fewest usable windows on each side of a comparison (default 10):
    /// a deploy with fewer has not "enough data" yet.
    pub min_windows: usize,
    /// Fewest requests for a window to be usable (default 20): a cost per
    /// request over a handful of requests is mostly noise.
    pub min_requests: i64,
    /// Fewest samples a function needs, summed over both deploys, to be
    /// tested at all (default 1,000: fewer cannot show a change below
    /// ~20% anyway). This filter looks at the total only, not at the
    /// direction, so it does not bias the test (independent filtering);
    /// functions below it are not counted in the Benjamini–Hochberg
    /// family, which keeps the family small and the tests that matter
    /// powerful.
    pub min_samples: i64,
    /// The false-discovery rate: regressions are reported with a q-value
    /// at most this (default 0.01).
    pub max_q: f64,
    /// Smallest relative rise reported (default 0.02 = 2%).
    pub min_relative: f64,
    /// Whether a rise needs to reach `min_relative` only within its
    /// interval (its mean plus `effect_slack` standard errors) rather than
    /// at its point estimate (default 1.0; 0 asks the estimate itself).
    /// A rise of exactly the minimum is estimated below it half the time;
    /// the slack lets the test decide those (on the fleet simulator,
    /// recall of exactly-2% rises 0.40 → 0.57 with precision still 1.0;
    /// BENCHMARKS.md).
    pub effect_slack: f64,
    /// The absolute floor: smallest rise reported, as a share of the
    /// endpoint's whole cost per request (default 0.0005 = 0.05%). It
    /// keeps a 50% rise of a function costing nothing from being news.
    pub min_share: f64,
    /// Level of the confidence intervals (default 0.95).
    pub confidence: f64,
    /// Bootstrap resamples for the interval of the shift (default 400).
    pub bootstrap_rounds: usize,
    /// *Went-away*: the second half of the new deploy's windows must keep
    /// at least this fraction of the rise (default 0.5).
    pub persist_fraction: f64,
    /// *Cost-shift*: a fall of another function counts against a rise when
    /// its one-sided Mann–Whitney p-value is below this (default 0.01); a
    /// rise whose remainder after the related falls is below the minimum
    /// effect is a cost shift, not a regression.
    pub shift_max_p: f64,
    /// *Dedupe*: an inclusive (or endpoint-total) rise is grouped under the
    /// self-cost regressions below it when they explain at least this
    /// fraction of it (default 0.5).
    pub explain_fraction: f64,
    /// *Exact cost*: where the agent measured every request's own cost
    /// (its counters, not samples), a sampled rise (of a function or of
    /// the endpoint's total) is kept only if the endpoint's exact cost per
    /// request rose by at least this fraction of it, at the upper end of
    /// its 95% interval (default 0.5). Sampling
    /// attributes cost to functions; the counters say whether there is
    /// more of it.
    pub exact_fraction: f64,
    /// Change points within a deploy: how many of an endpoint's most
    /// expensive functions get a series of their own (default 20), besides
    /// the endpoint total.
    pub drift_functions: usize,
    /// Change points within a deploy: p-value below which E-Divisive keeps
    /// a split (default 0.001, after its own correction).
    pub drift_max_p: f64,
    /// Change points within a deploy: largest reported q (the change
    /// point's p-value times the windows and the series examined; default
    /// 0.001 — stricter than `max_q` because a drift has no deploy to
    /// blame and is checked in every deploy).
    pub drift_max_q: f64,
}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings {
            window_ms: 60_000,
            min_windows: 10,
            min_requests: 20,
            min_samples: 1_000,
            max_q: 0.01,
            min_relative: 0.02,
            effect_slack: 1.0,
            min_share: 0.0005,
            confidence: 0.95,
            bootstrap_rounds: 400,
            persist_fraction: 0.5,
            shift_max_p: 0.01,
            explain_fraction: 0.5,
            exact_fraction: 0.5,
            drift_functions: 20,
            drift_max_p: 0.001,
            drift_max_q: 0.001,
        }
    }
}
