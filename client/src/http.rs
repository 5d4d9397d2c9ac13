//! flameshift's one HTTP client: uploads to the analyzer, queries of it
//! and webhooks all go through [`Client`] and its [`RetryPolicy`].
//!
//! Built on reqwest's blocking client over rustls (ring): `https://` is
//! verified against the system's roots plus an optional CA file
//! (`--ca-cert` / `FLAMESHIFT_CA_CERT`); `HTTPS_PROXY`, `HTTP_PROXY` and
//! `NO_PROXY` are honoured; connections are reused. Each attempt has an
//! overall deadline (connect, send and read together). Errors are typed:
//! [`HttpError::status`] tells a refusal (4xx: not retried) from a failure
//! that may pass (no connection, a timeout, 5xx, 429), and a `Retry-After`
//! the server sent is kept for the next wait.
//!
//! ```no_run
//! use flameshift_client::http::{Client, ClientOptions, Request};
//!
//! let client = Client::new(&ClientOptions::default())?;
//! let answer = client.call(&Request::get("https://analyzer.example:7411/healthz"))?;
//! assert_eq!(answer.status, 200);
//! # Ok::<(), flameshift_client::http::HttpError>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status code (4xx or 5xx).
        status: u16,
        /// The server's `error` text, or its body.
        message: String,
        /// How long the server asked to be left alone (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// No answer: the connection, the TLS handshake or the deadline failed.
    #[error("{url}: {message}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What happened, with a hint where one helps.
        message: String,
        /// A certificate or handshake failure: trying again will not help.
        tls: bool,
    },
    /// The client cannot be built (a CA file that is missing or not PEM)
    /// or the URL is not one it can ask.
    #[error("{0}")]
    Config(String),
}

impl HttpError {
    /// The status code, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same request may succeed later: no connection, a
    /// timeout, 5xx, 408 and 429. A refusal (other 4xx), a certificate
    /// failure or a bad configuration will not pass by waiting.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            HttpError::Transport { tls, .. } => !tls,
            HttpError::Config(_) => false,
        }
    }

    /// The wait the server asked for, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A request: method, URL, headers and body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: Method,
    /// `http(s)://host:port/path?query`.
    pub url: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (empty for a `GET`).
    pub body: &'a [u8],
    /// This request's deadline instead of the client's.
    pub timeout: Option<Duration>,
}

/// The methods flameshift uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl<'a> Request<'a> {
    /// A `GET` of `url`.
    pub fn get(url: &'a str) -> Request<'a> {
        Request {
            method: Method::Get,
            url,
            headers: &[],
            body: &[],
            timeout: None,
        }
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method: Method::Post,
            body,
            ..Request::get(url)
        }
    }

    /// With these headers.
    pub fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request { headers, ..self }
    }

    /// With this deadline.
    pub fn timeout(self, timeout: Duration) -> Request<'a> {
        Request {
            timeout: Some(timeout),
            ..self
        }
    }
}

/// An answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `Retry-After`, if the server sent one.
    pub retry_after: Option<Duration>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` field of a JSON error body, or the body itself.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| self.text().trim().to_owned())
    }

    /// `Ok(self)` for a 2xx or 3xx, the typed error otherwise.
    pub fn error_for_status(self, url: &str) -> Result<Response, HttpError> {
        if self.status < 400 {
            return Ok(self);
        }
        Err(HttpError::Status {
            url: url.to_owned(),
            status: self.status,
            message: self.error_message(),
            retry_after: self.retry_after,
        })
    }
}

/// When to try again: exponential backoff with jitter, and never sooner
/// than the server's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in [`Client::call`] (at least 1).
    pub attempts: u32,
    /// The wait after the first failure (doubled after each next one).
    pub first_backoff: Duration,
    /// The longest wait backoff reaches.
    pub max_backoff: Duration,
    /// Each wait is scaled by a uniform factor in `1 ± jitter`, so that a
    /// fleet that failed together does not retry together.
    pub jitter: f64,
    /// The longest `Retry-After` honoured (a longer one is cut to this).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 200 ms doubling to 60 s, ±25 % jitter, `Retry-After`
    /// up to 5 minutes.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            jitter: 0.25,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt after `failures` failures in a
    /// row (1 for the first), given the server's `Retry-After` and a
    /// uniform random number `unit` in `[0, 1)`.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let base = self
            .first_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0);
        let backoff = base.mul_f64(factor);
        match retry_after {
            Some(asked) => backoff.max(asked.min(self.max_retry_after)),
            None => backoff,
        }
    }
}

/// A uniform random number in `[0, 1)` from the OS-seeded hasher.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How a [`Client`] is built.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Each attempt's deadline: connect, send and read together.
    pub timeout: Duration,
    /// A PEM file of extra certificate authorities to trust beside the
    /// system's (a private CA that signed the analyzer's certificate).
    pub ca_cert: Option<PathBuf>,
    /// When [`Client::call`] tries again.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    /// 30 s per attempt, the system's roots, [`RetryPolicy::default`].
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(30),
            ca_cert: None,
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientOptions {
    /// The defaults, with `FLAMESHIFT_CA_CERT` as the CA file if set.
    pub fn from_env() -> ClientOptions {
        ClientOptions {
            ca_cert: std::env::var_os("FLAMESHIFT_CA_CERT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..ClientOptions::default()
        }
    }
}

/// The HTTP client; cheap to clone (clones share connections).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    retry: RetryPolicy,
}

impl Client {
    /// Builds a client. Fails on a CA file that cannot be read or holds
    /// no PEM certificate.
    pub fn new(options: &ClientOptions) -> Result<Client, HttpError> {
        let tls = tls_config(options.ca_cert.as_deref())?;
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(2)
            .user_agent(concat!("flameshift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Client {
            http,
            retry: options.retry,
        })
    }

    /// A client for the process built from the environment
    /// ([`ClientOptions::from_env`]), made on first use.
    pub fn shared() -> Result<&'static Client, HttpError> {
        static SHARED: OnceLock<Result<Client, HttpError>> = OnceLock::new();
        SHARED
            .get_or_init(|| Client::new(&ClientOptions::from_env()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The retry policy [`Client::call`] follows.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// One attempt: the answer whatever its status, or why there is none.
    pub fn send(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        let url = request.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HttpError::Config(format!(
                "{url:?} is not an http:// or https:// URL"
            )));
        }
        let mut builder = match request.method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url).body(request.body.to_vec()),
        };
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        if let Some(timeout) = request.timeout {
            builder = builder.timeout(timeout);
        }
        let answer = builder.send().map_err(|e| transport_error(url, &e))?;
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = answer.bytes().map_err(|e| transport_error(url, &e))?.to_vec();
        Ok(Response {
            status,
            body,
            retry_after,
        })
    }

    /// Sends with the retry policy: a 2xx or 3xx answer, or the last
    /// error. Refusals (4xx but 408 and 429) are returned at once.
    pub fn call(&self, request: &Request<'_>) -> Result<Response, HttpError> {
        let attempts = self.retry.attempts.max(1);
        let mut failures = 0;
        loop {
            let error = match self.send(request).and_then(|r| r.error_for_status(request.url)) {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            failures += 1;
            if failures >= attempts || !error.is_retryable() {
                return Err(error);
            }
            let wait = self.retry.delay(failures, error.retry_after(), random_unit());
            tracing::debug!(url = request.url, %error, ?wait, "request failed; retrying");
            std::thread::sleep(wait);
        }
    }
}

/// `Retry-After` as seconds or an HTTP date (a date in the past is zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// rustls with ring, verifying against the system's roots and `ca_cert`.
fn tls_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, HttpError> {
    let extra = match ca_cert {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    // ring builds with cc alone (aws-lc-rs wants a larger toolchain);
    // rustls deprecates it for lacking post-quantum key exchange, which
    // profiles inside a fleet can do without.
    #[allow(deprecated, reason = "ring: see above")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        .map_err(|e| HttpError::Config(format!("cannot set up certificate verification: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Config(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// Checks that `path` is a PEM file with at least one certificate.
pub fn check_ca_file(path: &Path) -> Result<(), HttpError> {
    read_ca_file(path).map(|_| ())
}

/// The certificates of a PEM file (at least one).
fn read_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, HttpError> {
    use rustls::pki_types::pem::PemObject;
    let bad = |why: String| HttpError::Config(format!("CA file {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE in it".to_owned()));
    }
    Ok(certs)
}

/// A failure without an answer, its causes spelled out, with a hint for
/// the usual TLS mistakes.
fn transport_error(url: &str, error: &reqwest::Error) -> HttpError {
    let tls = tls_cause(error);
    let mut message = chain(error);
    if error.is_timeout() {
        message = format!("no answer in time ({message})");
    }
    if let Some(cause) = &tls {
        let hint = match cause {
            rustls::Error::InvalidMessage(_) => {
                " (is the server speaking plain http on this port? then use http://)"
            }
            rustls::Error::InvalidCertificate(_) => {
                " (pass the CA that signed the server's certificate with --ca-cert or FLAMESHIFT_CA_CERT)"
            }
            _ => "",
        };
        message.push_str(hint);
    } else if url.starts_with("http://")
        && !error.is_connect()
        && !error.is_timeout()
        && (error.is_request() || error.is_body() || error.is_decode())
    {
        message.push_str(" (is the server speaking https on this port? then use https://)");
    }
    HttpError::Transport {
        url: url.to_owned(),
        message,
        tls: tls.is_some(),
    }
}

/// The rustls error somewhere in `error`'s causes.
fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        // An io::Error's source() skips the error it wraps: go through it.
        cause = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// An error and its causes, `: `-separated, without repeats.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}

/// `GET`s `url` once with the shared client; any status is an answer.
pub fn get(url: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<Response, HttpError> {
    Client::shared()?.send(&Request::get(url).headers(headers).timeout(timeout))
}

/// `POST`s `body` once with the shared client; any status is an answer.
pub fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    Client::shared()?.send(&Request::post(url, body).headers(headers).timeout(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            jitter: 0.25,
            max_retry_after: Duration::from_secs(300),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_within_the_jitter_bounds() {
        let p = policy();
        assert_eq!(p.delay(1, None, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay(2, None, 0.5), Duration::from_secs(2));
        assert_eq!(p.delay(3, None, 0.5), Duration::from_secs(4));
        assert_eq!(p.delay(30, None, 0.5), Duration::from_secs(60));
        assert_eq!(p.delay(u32::MAX, None, 0.5), Duration::from_secs(60));
        assert_eq!(p.delay(3, None, 0.0), Duration::from_secs(3));
        assert_eq!(p.delay(3, None, 1.0), Duration::from_secs(5));
        for i in 0..1000 {
            let d = p.delay(2, None, random_unit());
            assert!(
                (Duration::from_millis(1500)..=Duration::from_millis(2500)).contains(&d),
                "{i}: {d:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        let waits: std::collections::BTreeSet<_> =
            (0..50).map(|_| policy().delay(3, None, random_unit())).collect();
        assert!(waits.len() > 40, "{} distinct waits of 50", waits.len());
    }

    #[test]
    fn retry_after_is_a_floor_and_has_a_cap() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7)), 0.5),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(3, Some(Duration::from_millis(10)), 0.5),
            Duration::from_secs(4)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(86_400)), 0.5),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn what_is_retried() {
        let status = |status| HttpError::Status {
            url: "u".into(),
            status,
            message: String::new(),
            retry_after: None,
        };
        for s in [500, 502, 503, 507, 429, 408] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        let transport = |tls| HttpError::Transport {
            url: "u".into(),
            message: String::new(),
            tls,
        };
        assert!(transport(false).is_retryable());
        assert!(!transport(true).is_retryable(), "a bad certificate stays bad");
        assert_eq!(status(418).status(), Some(418));
        assert_eq!(transport(false).status(), None);
    }

    #[test]
    fn error_messages_come_from_json_or_the_body() {
        let r = |body: &str| Response {
            status: 400,
            body: body.as_bytes().to_vec(),
            retry_after: None,
        };
        assert_eq!(
            r("{\"error\":\"missing \\\"deploy\\\"\"}").error_message(),
            "missing \"deploy\""
        );
        assert_eq!(r("plain words\n").error_message(), "plain words");
        let e = r("{\"error\":\"no\"}")
            .error_for_status("http://x/y")
            .unwrap_err();
        assert_eq!(e.to_string(), "http://x/y: HTTP 400: no");
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let options = |ca: &Path| ClientOptions {
            ca_cert: Some(ca.to_owned()),
            ..ClientOptions::default()
        };
        let e = Client::new(&options(&empty)).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = Client::new(&options(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn a_dead_server_is_a_retryable_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = post(&format!("http://{addr}/x"), &[], b"x", Duration::from_secs(2)).unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        assert!(
            !e.to_string().contains("https"),
            "no TLS hint for a refused connection: {e}"
        );
        let e = get("ftp://x/", &[], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, HttpError::Config(_)), "{e}");
    }
}
