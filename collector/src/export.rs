//! Shipping profiles and request statistics to the analyzer
//! (`flameshift serve`): gzipped pprof to `POST /api/v1/profiles`, request
//! statistics JSON to `POST /api/v1/requests`, with the service, deploy
//! and host, an optional bearer token, a timeout per attempt, and retries
//! with backoff for failures that may pass (no connection, 5xx, 507).
//! Every attempt of one upload carries the same `Idempotency-Key`.
//! A 4xx other than 507 is the caller's fault and is not retried: the
//! error carries the analyzer's message.
//!
//! The plain requests underneath ([`get`], [`post`], [`Response`],
//! [`encode_component`]: HTTP/1.1 over a socket, no TLS) are offered as
//! they are for the CLI's other calls to the analyzer and for webhooks,
//! so that flameshift has one client.

use std::collections::BTreeMap;
use std::time::Duration;

use flameshift_profile::wire::{EndpointRequests, RequestsBody, Unit};
use flameshift_profile::{format, Profile};

use crate::http;
pub use crate::http::{encode_component, get, post, Response};
use crate::requests::EndpointStats;
use crate::{Error, Result};

/// Where and as whom to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The analyzer, e.g. `http://127.0.0.1:7411`.
    pub analyzer: String,
    /// The service name.
    pub service: String,
    /// The deploy (version) running.
    pub deploy: String,
    /// This host's name.
    pub host: String,
    /// Bearer token, if the analyzer requires one.
    pub token: Option<String>,
    /// Timeout of each attempt.
    pub timeout: Duration,
    /// Attempts before giving up (at least 1).
    pub attempts: u32,
}

impl Destination {
    /// A destination with this host's name, a 10 s timeout and 3 attempts.
    pub fn new(
        analyzer: impl Into<String>,
        service: impl Into<String>,
        deploy: impl Into<String>,
    ) -> Destination {
        Destination {
            analyzer: analyzer.into().trim_end_matches('/').to_owned(),
            service: service.into(),
            deploy: deploy.into(),
            host: hostname(),
            token: None,
            timeout: Duration::from_secs(10),
            attempts: 3,
        }
    }
}

/// This machine's host name (`unknown` if it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A key no other upload from any process shares (128 random bits):
/// sent as `Idempotency-Key` with every attempt of one upload, so that
/// an analyzer that stored an attempt whose answer was lost keeps the
/// upload once.
pub fn idempotency_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SENT: AtomicU64 = AtomicU64::new(0);
    let n = SENT.fetch_add(1, Ordering::Relaxed);
    let random = |salt: u64| {
        // Each RandomState is seeded from the OS's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n ^ salt);
        h.finish()
    };
    format!("{:016x}{:016x}", random(0), random(u64::MAX))
}

/// Whether a request to `url` would carry a token where others can read
/// it: plain http to a host other than this machine.
pub fn token_in_clear(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

fn send_with_retries(dest: &Destination, url: &str, body: &[u8]) -> Result<http::Response> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if dest.token.is_some() && token_in_clear(url) {
        WARNED.call_once(|| {
            tracing::warn!(analyzer = %dest.analyzer, "the token travels in clear over plain http to another host");
        });
    }
    let auth = dest.token.as_ref().map(|t| format!("Bearer {t}"));
    let key = idempotency_key();
    let mut headers: Vec<(&str, &str)> = vec![("Idempotency-Key", &key)];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let mut delay = Duration::from_millis(200);
    let mut last = None;
    for attempt in 1..=dest.attempts.max(1) {
        match http::post(url, &headers, body, dest.timeout) {
            Ok(response) if response.status < 300 => return Ok(response),
            Ok(response) if response.status >= 500 || response.status == 429 => {
                last = Some(Error::Upload {
                    url: url.to_owned(),
                    message: format!("HTTP {}: {}", response.status, response.error_message()),
                });
            }
            Ok(response) => {
                return Err(Error::Upload {
                    url: url.to_owned(),
                    message: format!("HTTP {}: {}", response.status, response.error_message()),
                })
            }
            Err(e) => last = Some(e),
        }
        if attempt < dest.attempts {
            tracing::debug!(attempt, ?delay, "upload failed; retrying");
            std::thread::sleep(delay);
            delay *= 2;
        }
    }
    Err(last.unwrap_or_else(|| Error::Upload {
        url: url.to_owned(),
        message: "no attempt made".to_owned(),
    }))
}

/// Uploads `profile` (gzipped pprof); returns the analyzer's receipt JSON.
pub fn upload_profile(dest: &Destination, profile: &Profile) -> Result<String> {
    let mut body = Vec::new();
    format::pprof::write(profile, &mut body)?;
    let url = format!(
        "{}/api/v1/profiles?service={}&deploy={}&host={}",
        dest.analyzer,
        encode_component(&dest.service),
        encode_component(&dest.deploy),
        encode_component(&dest.host)
    );
    Ok(send_with_retries(dest, &url, &body)?.text())
}

/// The request statistics body the analyzer takes.
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
    let body = requests_body(dest, unit, start_ms, duration_ms, stats);
    // Strings, numbers and sequences only: serializing cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// Uploads request statistics for a window.
pub fn upload_requests(
    dest: &Destination,
    unit: Unit,
    start_ms: i64,
    duration_ms: i64,
    stats: &BTreeMap<String, EndpointStats>,
) -> Result<String> {
    let body = requests_json(dest, unit, start_ms, duration_ms, stats);
    let url = format!("{}/api/v1/requests", dest.analyzer);
    Ok(send_with_retries(dest, &url, body.as_bytes())?.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_escapes_names() {
        let mut dest = Destination::new("http://x", "sh\"op", "v1");
        dest.host = "h".into();
        let mut stats = BTreeMap::new();
        let mut s = EndpointStats {
            count: 1,
            cost_sum: 9,
            ..EndpointStats::default()
        };
        s.costs.record(9);
        stats.insert("GET /a\n".to_owned(), s);
        let json = requests_json(&dest, Unit::CpuNs, 5, 10, &stats);
        assert!(json.contains("\"service\":\"sh\\\"op\""), "{json}");
        assert!(json.contains("\"endpoint\":\"GET /a\\n\""), "{json}");
        assert!(json.contains("\"unit\":\"cpu_ns\""), "{json}");
        assert!(json.contains("\"histogram\":[[9,1]]"), "{json}");
    }

    #[test]
    fn a_refusal_is_not_retried_and_carries_the_message() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = "{\"error\":\"missing deploy\"}";
            let _ = write!(
                conn,
                "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            listener.set_nonblocking(true).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            listener.accept().is_ok() // a retry would connect again
        });
        let dest = Destination::new(format!("http://{addr}"), "s", "d");
        let err = upload_requests(&dest, Unit::CpuNs, 0, 0, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("HTTP 400: missing deploy"), "{err}");
        assert!(!server.join().unwrap(), "no second attempt");
    }

    #[test]
    fn a_token_is_in_clear_over_http_to_another_host_only() {
        for url in [
            "http://10.0.0.5:7411",
            "http://analyzer.internal/api",
            "http://[2001:db8::1]:7411/x",
        ] {
            assert!(token_in_clear(url), "{url}");
        }
        for url in [
            "http://127.0.0.1:7411",
            "http://localhost:7411/api",
            "http://[::1]:7411",
            "https://analyzer.internal",
        ] {
            assert!(!token_in_clear(url), "{url}");
        }
    }

    /// Serves `answers` in turn and returns each request's `Idempotency-Key`.
    fn keys_seen(answers: &'static [&'static str]) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            let mut keys = Vec::new();
            for status in answers {
                let (conn, _) = listener.accept().unwrap();
                let mut reader = std::io::BufReader::new(conn);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("idempotency-key:") {
                        keys.push(v.trim().to_owned());
                    }
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                std::io::Read::read_exact(&mut reader, &mut body).unwrap();
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
            }
            keys
        });
        (url, server)
    }

    #[test]
    fn every_attempt_of_an_upload_carries_its_key_and_uploads_differ() {
        let (url, server) = keys_seen(&["503 Service Unavailable", "200 OK", "200 OK"]);
        let dest = Destination::new(url, "s", "d");
        upload_requests(&dest, Unit::CpuNs, 0, 0, &BTreeMap::new()).unwrap();
        upload_requests(&dest, Unit::CpuNs, 0, 0, &BTreeMap::new()).unwrap();
        let keys = server.join().unwrap();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(keys[0], keys[1], "a retry sends the same key");
        assert_ne!(keys[1], keys[2], "another upload, another key");
        assert!(keys.iter().all(|k| k.len() == 32), "{keys:?}");
    }
}
