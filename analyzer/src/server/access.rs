//! The server's side of access: which scope each route needs, who the
//! caller is (the bearer token's grant), what it may see and write, and
//! the audit log of refused requests.
//!
//! Every `GET` needs `read`; `POST`s that change regressions or run
//! detection need `admin`; every other `POST` (uploads) needs `ingest`.
//! A token limited to some services never learns of the others: they
//! are left out of lists, and a request that names one is answered as
//! if it did not exist (404). An upload for a service the token does
//! not cover is refused whole (403) before anything is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flameshift_client::routes;

use super::response::ApiError;
use super::AppState;
use crate::access::{Grant, Scope};
use crate::Error;

/// The grant of the request's token, for the handlers.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Grant>);

impl Caller {
    /// Whether the caller may see `service`.
    pub fn covers(&self, service: &str) -> bool {
        self.0.covers(service)
    }

    /// `service` if the caller may see it; otherwise the answer an
    /// unknown service gets.
    pub fn see(&self, service: &str) -> crate::Result<()> {
        if self.covers(service) {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "service",
                name: service.to_owned(),
            })
        }
    }

    /// Whether the caller may write `service`.
    pub fn write(&self, service: &str) -> crate::Result<()> {
        if self.covers(service) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "token `{}` may not write service `{service}`; nothing was stored",
                self.0.name
            )))
        }
    }

    /// Whether the caller covers every service (for views that cannot
    /// be split by service).
    pub fn fleet_wide(&self, what: &str) -> crate::Result<()> {
        if self.0.is_fleet_wide() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{what} covers every service; token `{}` is limited to some",
                self.0.name
            )))
        }
    }
}

/// The scope a request on `route` (axum's path syntax) with `method`
/// needs.
pub fn scope_of(method: &Method, route: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        return Scope::Read;
    }
    match route {
        routes::REGRESSION | routes::DETECT => Scope::Admin,
        _ => Scope::Ingest,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Identifies the caller, checks the route's scope, and logs and counts
/// what is refused.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no such route)", |p| p.as_str())
        .to_owned();
    let grant = match &state.keys {
        None => state.anonymous.clone(),
        Some(keys) => match bearer(request.headers()) {
            Some(token) => match keys.identify(token) {
                Some(grant) => grant,
                None => {
                    return refuse(
                        &state,
                        "(unknown token)",
                        &route,
                        Error::Unauthorized("unknown token"),
                    )
                }
            },
            None => return refuse(&state, "(no token)", &route, Error::Unauthorized("no token")),
        },
    };
    let scope = scope_of(request.method(), &route);
    if !grant.has(scope) {
        let why = Error::Forbidden(format!(
            "token `{}` lacks the `{scope}` scope that {} {route} needs",
            grant.name,
            request.method()
        ));
        return refuse(&state, &grant.name, &route, why);
    }
    request.extensions_mut().insert(Caller(grant.clone()));
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::FORBIDDEN {
        state.audit.refused(&grant.name, &route, status);
    }
    if status.is_client_error() || status.is_server_error() {
        state.metrics.rejected(ApiError::new(status, "").reason());
    }
    response
}

fn refuse(state: &AppState, who: &str, route: &str, why: Error) -> Response {
    let error = ApiError::from(why);
    state.audit.refused(who, route, error.status);
    state.metrics.rejected(error.reason());
    error.into_response()
}

/// Refused requests, logged once per token and route per minute.
#[derive(Debug, Default)]
pub struct Audit {
    logged: Mutex<HashMap<(String, String), Instant>>,
}

/// How often one token's refusals on one route are logged.
const AUDIT_EVERY: Duration = Duration::from_secs(60);

impl Audit {
    /// A refused request of token `who` (its name) on `route`.
    pub fn refused(&self, who: &str, route: &str, status: StatusCode) {
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let key = (who.to_owned(), route.to_owned());
        if logged
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < AUDIT_EVERY)
        {
            return;
        }
        if logged.len() > 10_000 {
            logged.retain(|_, at| now.duration_since(*at) < AUDIT_EVERY);
        }
        logged.insert(key, now);
        tracing::warn!(
            token = who,
            route,
            status = status.as_u16(),
            "request refused (logged once a minute per token and route)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_the_scope_the_docs_give_it() {
        let post = Method::POST;
        let get = Method::GET;
        for route in [
            routes::PROFILES,
            routes::REQUESTS,
            routes::DEPLOYS,
            routes::PYROSCOPE_INGEST,
            routes::PYROSCOPE_PUSH,
            routes::OTLP_PROFILES,
        ] {
            assert_eq!(scope_of(&post, route), Scope::Ingest, "{route}");
        }
        for route in [routes::REGRESSION, routes::DETECT] {
            assert_eq!(scope_of(&post, route), Scope::Admin, "{route}");
        }
        for route in [
            routes::SERVICES,
            routes::SERVICE_DEPLOYS,
            routes::FLAMEGRAPH,
            routes::DIFF,
            routes::FUNCTIONS,
            routes::SERIES,
            routes::ENDPOINTS,
            routes::REGRESSIONS,
            routes::SENSITIVITY,
            routes::METRICS,
        ] {
            assert_eq!(scope_of(&get, route), Scope::Read, "{route}");
        }
    }
}
