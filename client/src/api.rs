//! Queries of the analyzer, typed: run detection, list regressions, post
//! a deploy event. The regression record itself belongs to the detection
//! crate; a listing is generic over it, so this crate needs only the wire
//! types.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::http::{Client, ClientOptions, Request};
use crate::routes::{self, Route};
use crate::{Error, Result};

/// The analyzer at one address, as one caller (an optional token).
#[derive(Debug, Clone)]
pub struct Analyzer {
    base: String,
    client: Client,
    auth: Option<String>,
}

/// Which regressions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegressionQuery {
    /// Only this service (the listing then also says what its newest
    /// deploy pair was compared on).
    pub service: Option<String>,
    /// Only in this state (`open`, `acknowledged`, `resolved`).
    pub state: Option<String>,
    /// Only found in this deploy.
    pub deploy: Option<String>,
}

/// `GET /api/v1/regressions`: the regressions, and with a service, what
/// its newest deploy pair's comparison stands on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound = "R: DeserializeOwned")]
pub struct Listing<R> {
    /// The regressions, newest first.
    pub regressions: Vec<R>,
    /// With a service: the measure of each endpoint compared and the
    /// endpoints not compared yet, with why.
    #[serde(default)]
    pub comparison: Option<serde_json::Value>,
}

impl Analyzer {
    /// The analyzer at `base` (`https://analyzer.internal:7411`), with
    /// `token` sent as a bearer token when given.
    pub fn new(base: &str, token: Option<&str>, options: &ClientOptions) -> Result<Analyzer> {
        Ok(Analyzer {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::new(options)?,
            auth: token.map(|t| format!("Bearer {t}")),
        })
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        self.auth.iter().map(|a| ("Authorization", a.as_str())).collect()
    }

    /// `POST /api/v1/detect`: runs detection now (one service, or all)
    /// and returns what it did.
    pub fn detect(&self, service: Option<&str>) -> Result<serde_json::Value> {
        let url = Route::new(routes::DETECT)
            .maybe("service", service)
            .on(&self.base);
        let answer = self
            .client
            .call(&Request::post(&url, b"").headers(&self.headers()))?;
        json(routes::DETECT, "a detection run", &answer.body)
    }

    /// `GET /api/v1/regressions`, the records read as `R`.
    pub fn regressions<R: DeserializeOwned>(&self, query: &RegressionQuery) -> Result<Listing<R>> {
        let url = Route::new(routes::REGRESSIONS)
            .maybe("service", query.service.as_deref())
            .maybe("state", query.state.as_deref())
            .maybe("deploy", query.deploy.as_deref())
            .on(&self.base);
        let answer = self.client.call(&Request::get(&url).headers(&self.headers()))?;
        json(routes::REGRESSIONS, "a regression listing", &answer.body)
    }

    /// `POST /api/v1/deploys`: a deploy event (a JSON object with
    /// `service`, `deploy` and optionally `time_ms`, `commit`, `author`,
    /// `message`).
    pub fn post_deploy(&self, event: &serde_json::Value) -> Result<serde_json::Value> {
        let url = Route::new(routes::DEPLOYS).on(&self.base);
        let body = event.to_string();
        let headers = self.headers();
        let answer = self
            .client
            .call(&Request::post(&url, body.as_bytes()).headers(&headers))?;
        json(routes::DEPLOYS, "a receipt", &answer.body)
    }
}

fn json<T: DeserializeOwned>(route: &'static str, expected: &'static str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Answer {
        route,
        expected,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_any_record_type_and_a_bad_answer_names_the_route() {
        let listing: Listing<serde_json::Value> = json(
            routes::REGRESSIONS,
            "a regression listing",
            br#"{"regressions":[{"id":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(listing.regressions.len(), 1);
        assert!(listing.comparison.is_none());
        let err = json::<Listing<serde_json::Value>>(routes::REGRESSIONS, "a regression listing", b"<html>")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/api/v1/regressions") && err.contains("a regression listing"),
            "{err}"
        );
    }
}
