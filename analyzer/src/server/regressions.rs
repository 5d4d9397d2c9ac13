//! The regression routes: list, change state, and run detection now.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;

use super::access::Caller;
use super::params::Params;
use super::response::{json, ApiError};
use super::AppState;
use crate::detect::State as RegressionState;
use crate::regressions::Filter;
use crate::Error;

type Answer = std::result::Result<Response, ApiError>;

fn parse_state(text: &str) -> Result<RegressionState, Error> {
    text.parse().map_err(Error::bad)
}

/// `GET /api/v1/regressions?service=&state=&deploy=`; with a service,
/// `comparison` says on what its newest deploy pair is compared (each
/// endpoint's measure) and which endpoints cannot be compared yet, and why.
/// Only the services the caller may see.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    if let Some(service) = params.get("service") {
        caller.see(service)?;
    }
    let filter = Filter {
        service: params.get("service").map(str::to_owned),
        state: params.get("state").map(parse_state).transpose()?,
        deploy: params.get("deploy").map(str::to_owned),
    };
    let (store, detector) = (state.store.clone(), state.detector.clone());
    let (regressions, status) = super::handlers::blocking(move || {
        // With a service: what its newest deploy pair's comparison stands
        // on, so that an empty list says "not yet" where it is not "none".
        let status = match &filter.service {
            Some(service) => detector.status(&*store, service)?,
            None => None,
        };
        let mut regressions = detector.list(&filter)?;
        regressions.retain(|r| caller.covers(&r.service));
        Ok((regressions, status))
    })
    .await?;
    let mut body = serde_json::json!({ "regressions": regressions });
    if let Some(status) = status {
        body["comparison"] = serde_json::to_value(status).unwrap_or_default();
    }
    Ok(json(&body))
}

/// `POST /api/v1/regressions/{id}` with `{"state": "acknowledged"}` (or
/// `open`, `resolved`).
pub async fn set_state(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = super::handlers::body_or_error(body)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Change {
        state: String,
    }
    let change: Change = serde_json::from_slice(&body)
        .map_err(|e| Error::bad(format!("expected {{\"state\": \"acknowledged\"}}: {e}")))?;
    let new_state = parse_state(&change.state)?;
    let detector = state.detector.clone();
    let regression = super::handlers::blocking(move || {
        // Another service's regression is one the caller never saw.
        let found = detector.get(&id)?;
        caller.see(&found.service).map_err(|_| Error::NotFound {
            what: "regression",
            name: id.clone(),
        })?;
        detector.set_state(&id, new_state)
    })
    .await?;
    Ok(json(&regression))
}

/// `POST /api/v1/detect?service=`: runs detection now (on the services
/// the caller may see) and reports what it did.
pub async fn detect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let service = params.get("service").map(str::to_owned);
    if let Some(service) = &service {
        caller.see(service)?;
    }
    let (store, detector) = (state.store.clone(), state.detector.clone());
    let run = super::handlers::blocking(move || {
        let now = super::handlers::now_ms();
        match service {
            Some(service) => detector.run(&*store, Some(&service), now),
            None => detector.run_where(&*store, |s| caller.covers(s), now),
        }
    })
    .await?;
    Ok(json(&run))
}

/// `GET /api/v1/sensitivity?service=&deploy=`: how small a rise the
/// comparison of `deploy` with the deploy before it could have shown.
pub async fn sensitivity(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let service = params.required("service")?.to_owned();
    caller.see(&service)?;
    let deploy = params.required("deploy")?.to_owned();
    let (store, detector) = (state.store.clone(), state.detector.clone());
    let found = super::handlers::blocking(move || detector.sensitivity(&*store, &service, &deploy)).await?;
    Ok(json(&serde_json::json!({ "sensitivity": found })))
}
