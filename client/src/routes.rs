//! The analyzer's HTTP API: every route's path, and the one way to put a
//! value in a query. The server's router and every client build their
//! URLs from here, so a path is written once.

/// `POST`: a profile (pprof, gzipped or not, or folded stacks).
pub const PROFILES: &str = "/api/v1/profiles";
/// `POST`: request statistics (`profile::wire::RequestsBody`).
pub const REQUESTS: &str = "/api/v1/requests";
/// `POST`: a deploy event.
pub const DEPLOYS: &str = "/api/v1/deploys";
/// `GET`: the services.
pub const SERVICES: &str = "/api/v1/services";
/// `GET`: one service's deploys (axum's path syntax).
pub const SERVICE_DEPLOYS: &str = "/api/v1/services/{service}/deploys";
/// `GET`: a flame graph.
pub const FLAMEGRAPH: &str = "/api/v1/flamegraph";
/// `GET`: a differential flame graph of two deploys.
pub const DIFF: &str = "/api/v1/diff";
/// `GET`: the top functions.
pub const FUNCTIONS: &str = "/api/v1/functions";
/// `GET`: a cost series.
pub const SERIES: &str = "/api/v1/series";
/// `GET`: every endpoint's cost series.
pub const ENDPOINTS: &str = "/api/v1/endpoints";
/// `GET`: the regressions found.
pub const REGRESSIONS: &str = "/api/v1/regressions";
/// `POST`: one regression's state (axum's path syntax).
pub const REGRESSION: &str = "/api/v1/regressions/{id}";
/// `POST`: run detection now.
pub const DETECT: &str = "/api/v1/detect";
/// `GET`: what a deploy comparison could see.
pub const SENSITIVITY: &str = "/api/v1/sensitivity";
/// `POST`: Pyroscope's ingest API.
pub const PYROSCOPE_INGEST: &str = "/ingest";
/// `POST`: Pyroscope's push API (Connect).
pub const PYROSCOPE_PUSH: &str = "/push.v1.PusherService/Push";
/// `POST`: OpenTelemetry profiles over OTLP/HTTP.
pub const OTLP_PROFILES: &str = "/v1development/profiles";
/// `GET`: liveness.
pub const HEALTHZ: &str = "/healthz";
/// `GET`: Prometheus metrics.
pub const METRICS: &str = "/metrics";

/// Percent-encodes a query parameter value or a path segment (RFC 3986:
/// everything but unreserved characters).
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A route with its query: `path?k=v&…`, values percent-encoded, absent
/// ones left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    path_and_query: String,
    params: usize,
}

impl Route {
    /// `path` with no query yet.
    pub fn new(path: &str) -> Route {
        Route {
            path_and_query: path.to_owned(),
            params: 0,
        }
    }

    /// Adds `key=value`.
    pub fn param(mut self, key: &str, value: impl AsRef<str>) -> Route {
        let sep = if self.params == 0 { '?' } else { '&' };
        self.path_and_query
            .push_str(&format!("{sep}{key}={}", encode_component(value.as_ref())));
        self.params += 1;
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn maybe(self, key: &str, value: Option<impl AsRef<str>>) -> Route {
        match value {
            Some(v) => self.param(key, v),
            None => self,
        }
    }

    /// The path and query, for links relative to the analyzer.
    pub fn path(&self) -> &str {
        &self.path_and_query
    }

    /// The whole URL on the analyzer at `base` (`https://host:7411`, a
    /// trailing `/` or not).
    pub fn on(&self, base: &str) -> String {
        format!("{}{}", base.trim_end_matches('/'), self.path_and_query)
    }
}

/// The differential flame graph (SVG) of `endpoint` of `service`, deploy
/// `before` → `after`: a regression's link.
pub fn diff_link(service: &str, endpoint: &str, before: &str, after: &str) -> String {
    Route::new(DIFF)
        .param("service", service)
        .param("endpoint", endpoint)
        .param("base", before)
        .param("candidate", after)
        .param("format", "svg")
        .path_and_query
}

/// The cost series of `function` (none: the endpoint's total) in
/// `endpoint` of `service`: a regression's link.
pub fn series_link(service: &str, endpoint: &str, function: Option<&str>, self_only: bool) -> String {
    let route = Route::new(SERIES)
        .param("service", service)
        .param("endpoint", endpoint);
    match function {
        Some(f) => route
            .param("function", f)
            .param("self", if self_only { "true" } else { "false" }),
        None => route,
    }
    .path_and_query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_once_and_absent_ones_left_out() {
        assert_eq!(encode_component("GET /a b~"), "GET%20%2Fa%20b~");
        let route = Route::new(REGRESSIONS)
            .param("service", "shop & co")
            .maybe("state", None::<&str>)
            .maybe("deploy", Some("v1"));
        assert_eq!(
            route.path(),
            "/api/v1/regressions?service=shop%20%26%20co&deploy=v1"
        );
        assert_eq!(
            route.on("https://a:7411/"),
            "https://a:7411/api/v1/regressions?service=shop%20%26%20co&deploy=v1"
        );
        assert_eq!(Route::new(DETECT).on("http://a"), "http://a/api/v1/detect");
    }

    #[test]
    fn links_name_the_deploys_and_the_function() {
        assert_eq!(
            diff_link("shop", "GET /feed", "v1", "v2"),
            "/api/v1/diff?service=shop&endpoint=GET%20%2Ffeed&base=v1&candidate=v2&format=svg"
        );
        assert_eq!(
            series_link("shop", "", Some("a::b"), true),
            "/api/v1/series?service=shop&endpoint=&function=a%3A%3Ab&self=true"
        );
        assert_eq!(
            series_link("shop", "GET /", None, false),
            "/api/v1/series?service=shop&endpoint=GET%20%2F"
        );
    }
}
