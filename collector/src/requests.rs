//! Request statistics per endpoint: exact counts, the CPU cost of each
//! request (in the counter's unit), and a log-bucketed distribution of
//! those costs for quantiles.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Buckets per power of two in the cost histogram (relative error ≤ 1/8).
const SUB_BUCKETS: u64 = 8;

/// A cost distribution with log-linear buckets: exact counts, quantiles
/// within 1/8 of the true value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u32, u64>,
}

impl Histogram {
    fn bucket(value: u64) -> u32 {
        if value < SUB_BUCKETS {
            return value as u32;
        }
        let log = 63 - value.leading_zeros() as u64; // ≥ 3
        let sub = (value >> (log - 3)) - SUB_BUCKETS; // 0..8
        ((log - 2) * SUB_BUCKETS + sub) as u32
    }

    fn lower_bound(bucket: u32) -> u64 {
        let bucket = u64::from(bucket);
        if bucket < SUB_BUCKETS {
            return bucket;
        }
        let log = bucket / SUB_BUCKETS + 2;
        let sub = bucket % SUB_BUCKETS;
        (SUB_BUCKETS + sub) << (log - 3)
    }

    /// Non-empty buckets and their counts, in bucket order (the analyzer's
    /// `histogram` pairs).
    pub fn buckets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.buckets.iter().map(|(&b, &n)| (b, n))
    }

    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        *self.buckets.entry(Self::bucket(value)).or_default() += 1;
    }

    /// The value below which a fraction `q` of the values lie (the lower
    /// bound of its bucket); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.values().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&bucket, &count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Self::lower_bound(bucket);
            }
        }
        0
    }
}

/// What one endpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Requests completed.
    pub count: u64,
    /// Sum of their own CPU cost.
    pub cost_sum: u64,
    /// Distribution of per-request cost.
    pub costs: Histogram,
}

/// Per-endpoint statistics, shared by every worker thread.
#[derive(Debug, Default)]
pub struct RequestStats {
    endpoints: Mutex<BTreeMap<String, EndpointStats>>,
}

impl RequestStats {
    /// Records one finished request of `endpoint` that cost `cost`.
    pub fn record(&self, endpoint: &str, cost: u64) {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        let stats = match endpoints.get_mut(endpoint) {
            Some(stats) => stats,
            None => endpoints.entry(endpoint.to_owned()).or_default(),
        };
        stats.count += 1;
        stats.cost_sum = stats.cost_sum.saturating_add(cost);
        stats.costs.record(cost);
    }

    /// A copy of the statistics so far, by endpoint.
    pub fn snapshot(&self) -> BTreeMap<String, EndpointStats> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The statistics so far, leaving empty ones (for a reporting window).
    pub fn take(&self) -> BTreeMap<String, EndpointStats> {
        std::mem::take(&mut *self.endpoints.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = Histogram::bucket(v);
            assert!(b >= last, "bucket order at {v}");
            last = b;
            let low = Histogram::lower_bound(b);
            assert!(low <= v, "{v} below its bucket's bound {low}");
            assert!(v - low <= v / 8, "{v}: bound {low} too loose");
        }
    }

    #[test]
    fn quantiles_and_counts() {
        let stats = RequestStats::default();
        for cost in 1..=1000u64 {
            stats.record("GET /a", cost * 1000);
        }
        stats.record("GET /b", 5);
        let snap = stats.snapshot();
        let a = &snap["GET /a"];
        assert_eq!(a.count, 1000);
        assert_eq!(a.cost_sum, 1000 * 1001 / 2 * 1000);
        let p50 = a.costs.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.13, "p50 {p50}");
        let p99 = a.costs.quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.13, "p99 {p99}");
        assert_eq!(snap["GET /b"].costs.quantile(0.5), 5);
        assert_eq!(stats.take().len(), 2);
        assert!(stats.snapshot().is_empty());
    }
}
