//! What the agent ships, in the analyzer's wire format: a window's request
//! statistics as a [`RequestsBody`]. The shipping itself (the HTTP
//! client, retries, idempotency keys) is `flameshift_client::upload`.

use std::collections::BTreeMap;

use flameshift_client::upload::{requests_json as body_json, Destination};
use flameshift_profile::wire::{EndpointRequests, RequestsBody, Unit};

use crate::requests::EndpointStats;

/// The request statistics of one window for `dest`'s service, deploy and
/// host.
pub fn requests_body(
    dest: &Destination,
    unit: Unit,
    start_ms: i64,
    duration_ms: i64,
    stats: &BTreeMap<String, EndpointStats>,
) -> RequestsBody {
    let saturating = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    RequestsBody {
        service: dest.service.clone(),
        deploy: dest.deploy.clone(),
        host: Some(dest.host.clone()),
        unit,
        start_ms,
        duration_ms,
        endpoints: stats
            .iter()
            .map(|(endpoint, s)| EndpointRequests {
                endpoint: endpoint.clone(),
                count: saturating(s.count),
                cost_sum: saturating(s.cost_sum),
                histogram: s.costs.buckets().collect(),
            })
            .collect(),
    }
}

/// [`requests_body`] as the JSON the analyzer takes.
pub fn requests_json(
    dest: &Destination,
    unit: Unit,
    start_ms: i64,
    duration_ms: i64,
    stats: &BTreeMap<String, EndpointStats>,
) -> String {
    body_json(&requests_body(dest, unit, start_ms, duration_ms, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_counts_costs_and_the_histogram() {
        let mut dest = Destination::new("http://x", "shop", "v1");
        dest.host = "h".into();
        let mut stats = BTreeMap::new();
        let mut s = EndpointStats {
            count: 1,
            cost_sum: 9,
            ..EndpointStats::default()
        };
        s.costs.record(9);
        stats.insert("GET /a".to_owned(), s);
        let json = requests_json(&dest, Unit::CpuNs, 5, 10, &stats);
        assert!(json.contains("\"host\":\"h\""), "{json}");
        assert!(json.contains("\"count\":1,\"cost_sum\":9"), "{json}");
        assert!(json.contains("\"histogram\":[[9,1]]"), "{json}");
    }
}
