//! Shipping profiles and request statistics to the analyzer
//! (`flameshift serve`): gzipped pprof to [`routes::PROFILES`], request
//! statistics JSON to [`routes::REQUESTS`], with the service, deploy
//! and host, an optional bearer token, over the one [`Client`] (http or
//! https, a deadline per attempt, its [`RetryPolicy`]). Every attempt of
//! one upload carries the same `Idempotency-Key`, so an analyzer that
//! stored an attempt whose answer was lost keeps it once. A refusal (4xx
//! but 408 and 429) is not retried: the error carries the analyzer's
//! message and status.

use std::path::PathBuf;
use std::time::Duration;

use flameshift_profile::wire::RequestsBody;
use flameshift_profile::{format, Profile};

use crate::http::{Client, ClientOptions, HttpError, Request, RetryPolicy};
use crate::routes::{self, Route};
use crate::Result;

/// Where and as whom to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The analyzer, e.g. `https://analyzer.internal:7411`.
    pub analyzer: String,
    /// The service name.
    pub service: String,
    /// The deploy (version) running.
    pub deploy: String,
    /// This host's name.
    pub host: String,
    /// Bearer token, if the analyzer requires one.
    pub token: Option<String>,
    /// Deadline of each attempt.
    pub timeout: Duration,
    /// Attempts before giving up (at least 1).
    pub attempts: u32,
    /// Extra certificate authorities (PEM) to trust for `https://`.
    pub ca_cert: Option<PathBuf>,
}

impl Destination {
    /// A destination with this host's name, a 10 s deadline, 3 attempts
    /// and `FLAMESHIFT_CA_CERT` as the CA file if set.
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
            ca_cert: ClientOptions::from_env().ca_cert,
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

/// Ships uploads to one [`Destination`] over one [`Client`].
#[derive(Debug, Clone)]
pub struct Exporter {
    dest: Destination,
    client: Client,
    auth: Option<String>,
}

impl Exporter {
    /// The client for `dest` (its deadline, attempts and CA file). Warns
    /// once per process when a token would travel over plain http to
    /// another host.
    pub fn new(dest: Destination) -> Result<Exporter> {
        static WARNED: std::sync::Once = std::sync::Once::new();
        if dest.token.is_some() && token_in_clear(&dest.analyzer) {
            WARNED.call_once(|| {
                tracing::warn!(analyzer = %dest.analyzer, "the token travels in clear over plain http to another host; serve with --tls-cert and use https://");
            });
        }
        let client = Client::new(&ClientOptions {
            timeout: dest.timeout,
            ca_cert: dest.ca_cert.clone(),
            retry: RetryPolicy {
                attempts: dest.attempts.max(1),
                ..RetryPolicy::default()
            },
        })?;
        let auth = dest.token.as_ref().map(|t| format!("Bearer {t}"));
        Ok(Exporter { dest, client, auth })
    }

    /// Where this exporter ships.
    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    /// The client's retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        self.client.retry_policy()
    }

    fn profile_url(&self) -> String {
        Route::new(routes::PROFILES)
            .param("service", &self.dest.service)
            .param("deploy", &self.dest.deploy)
            .param("host", &self.dest.host)
            .on(&self.dest.analyzer)
    }

    fn requests_url(&self) -> String {
        Route::new(routes::REQUESTS).on(&self.dest.analyzer)
    }

    /// Posts `body` to `url` as upload `key`: one attempt, or with the
    /// retry policy.
    fn post(&self, url: &str, body: &[u8], key: &str, retry: bool) -> Result<String, HttpError> {
        let mut headers = vec![("Idempotency-Key", key)];
        if let Some(auth) = &self.auth {
            headers.push(("Authorization", auth));
        }
        let request = Request::post(url, body).headers(&headers);
        let response = if retry {
            self.client.call(&request)?
        } else {
            self.client.send(&request)?.error_for_status(url)?
        };
        Ok(response.text())
    }

    /// One attempt to upload `body` (gzipped pprof, [`encode_profile`]) as
    /// upload `key`; the analyzer's receipt JSON. For callers that keep
    /// the upload and retry on their own.
    pub fn send_profile(&self, body: &[u8], key: &str) -> Result<String, HttpError> {
        self.post(&self.profile_url(), body, key, false)
    }

    /// One attempt to upload request statistics JSON ([`requests_json`])
    /// as upload `key`.
    pub fn send_requests(&self, body: &str, key: &str) -> Result<String, HttpError> {
        self.post(&self.requests_url(), body.as_bytes(), key, false)
    }

    /// Uploads `profile` with the retry policy; the analyzer's receipt JSON.
    pub fn upload_profile(&self, profile: &Profile) -> Result<String> {
        let body = encode_profile(profile)?;
        Ok(self.post(&self.profile_url(), &body, &idempotency_key(), true)?)
    }

    /// Uploads request statistics with the retry policy.
    pub fn upload_requests(&self, body: &RequestsBody) -> Result<String> {
        let json = requests_json(body);
        Ok(self.post(&self.requests_url(), json.as_bytes(), &idempotency_key(), true)?)
    }
}

/// `profile` as the gzipped pprof the analyzer takes.
pub fn encode_profile(profile: &Profile) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    format::pprof::write(profile, &mut body)?;
    Ok(body)
}

/// Request statistics as the JSON the analyzer takes.
pub fn requests_json(body: &RequestsBody) -> String {
    // Strings, numbers and sequences only: serializing cannot fail.
    serde_json::to_string(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(service: &str, endpoint: &str) -> RequestsBody {
        RequestsBody {
            service: service.to_owned(),
            deploy: "v1".to_owned(),
            host: Some("h".to_owned()),
            unit: flameshift_profile::wire::Unit::CpuNs,
            start_ms: 5,
            duration_ms: 10,
            endpoints: vec![flameshift_profile::wire::EndpointRequests {
                endpoint: endpoint.to_owned(),
                count: 1,
                cost_sum: 9,
                histogram: vec![(9, 1)],
            }],
        }
    }

    #[test]
    fn request_json_escapes_names() {
        let json = requests_json(&window("sh\"op", "GET /a\n"));
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
        let exporter = Exporter::new(Destination::new(format!("http://{addr}"), "s", "d")).unwrap();
        let err = exporter.upload_requests(&window("s", "GET /")).unwrap_err();
        assert!(err.to_string().contains("HTTP 400: missing deploy"), "{err}");
        assert!(
            matches!(err, crate::Error::Http(ref e) if e.status() == Some(400)),
            "{err:?}"
        );
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

    #[test]
    fn a_retry_waits_at_least_what_retry_after_asks() {
        let (url, server) = keys_seen(&["503 Service Unavailable\r\nretry-after: 1", "200 OK"]);
        let exporter = Exporter::new(Destination::new(url, "s", "d")).unwrap();
        let started = std::time::Instant::now();
        exporter.upload_requests(&window("s", "GET /")).unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.join().unwrap().len(), 2);
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
        let exporter = Exporter::new(Destination::new(url, "s", "d")).unwrap();
        exporter.upload_requests(&window("s", "GET /")).unwrap();
        exporter.upload_requests(&window("s", "GET /")).unwrap();
        let keys = server.join().unwrap();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(keys[0], keys[1], "a retry sends the same key");
        assert_ne!(keys[1], keys[2], "another upload, another key");
        assert!(keys.iter().all(|k| k.len() == 32), "{keys:?}");
    }
}
