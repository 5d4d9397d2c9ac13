//! The route handlers: ingest (profiles, request statistics, deploy
//! events, Pyroscope's `/ingest`) and queries (services, deploys, flame
//! graphs, diffs, top functions, series). Store calls block (fsync,
//! scans), so they run on tokio's blocking pool.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flameshift_profile::format::{self, Format, WriteOptions};
use flameshift_profile::render::{self, FlameGraphOptions};

use super::access::Caller;
use super::params::Params;
use super::response::{json, typed, ApiError};
use super::AppState;
use crate::ingest::{self, Upload, UploadKind};
use crate::query::{self, TopOrder};
use crate::store::{Selection, Store};
use crate::{Error, Result};

type Answer = std::result::Result<Response, ApiError>;

pub(super) use crate::model::now_ms;

/// Runs blocking store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )),
    }
}

pub(super) fn body_or_error(
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body is larger than the server's limit (--max-body)".to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    })
}

/// The `Idempotency-Key` header: at most 200 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> std::result::Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 200 => Ok(Some(key.to_owned())),
        _ => Err(ApiError::from(Error::bad(
            "Idempotency-Key must be 1 to 200 printable ASCII characters",
        ))),
    }
}

async fn ingest(
    state: AppState,
    caller: &Caller,
    kind: UploadKind,
    params: Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Answer {
    let receipts = ingest_parts(state, caller, kind, params, headers, vec![body.to_vec()]).await?;
    Ok((StatusCode::OK, json(&receipts[0])).into_response())
}

/// Stores the parts of one request (one per service) as uploads of their
/// own: all are decoded and checked before any is stored, so a bad part
/// stores nothing. Part `i` of a request with `Idempotency-Key: K` is
/// kept once as `K/i`. A part for a service the caller may not write
/// refuses the request (403).
async fn ingest_parts(
    state: AppState,
    caller: &Caller,
    kind: UploadKind,
    params: Params,
    headers: &HeaderMap,
    bodies: Vec<Vec<u8>>,
) -> std::result::Result<Vec<crate::store::Receipt>, ApiError> {
    let key = idempotency_key(headers)?;
    let parts = bodies.len();
    let params = params.into_map();
    let received_ms = now_ms();
    let uploads: Vec<Upload> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Upload {
            kind,
            params: params.clone(),
            received_ms,
            key: match &key {
                Some(k) if parts > 1 => Some(format!("{k}/{i}")),
                other => other.clone(),
            },
            body,
        })
        .collect();
    let bytes = uploads.iter().map(|u| u.body.len()).sum();
    let (store, limits, caller) = (state.store.clone(), state.limits.clone(), caller.clone());
    let receipts = blocking(move || {
        let accepted = uploads
            .into_iter()
            .map(|upload| ingest::accept(upload, &limits))
            .collect::<Result<Vec<_>>>()?;
        for part in &accepted {
            caller.write(&part.batch.service)?;
        }
        accepted
            .into_iter()
            .map(|a| store.append(a))
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    let name = match kind {
        UploadKind::Profile => "profile",
        UploadKind::Requests => "requests",
        UploadKind::Deploy => "deploy",
        UploadKind::Pyroscope => "pyroscope",
        UploadKind::Push => "push",
        UploadKind::Otlp => "otlp",
    };
    state
        .metrics
        .accepted(name, receipts.iter().map(|r| r.samples).sum(), bytes);
    Ok(receipts)
}

/// `POST /api/v1/profiles?service=&deploy=&host=`: a pprof (or folded) body.
pub async fn post_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_or_error(body)?;
    ingest(
        state,
        &caller,
        UploadKind::Profile,
        Params::parse(query.as_deref()),
        &headers,
        body,
    )
    .await
}

/// `POST /api/v1/requests`: request statistics JSON.
pub async fn post_requests(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_or_error(body)?;
    ingest(
        state,
        &caller,
        UploadKind::Requests,
        Params::default(),
        &headers,
        body,
    )
    .await
}

/// `POST /api/v1/deploys`: a deploy event JSON.
pub async fn post_deploy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_or_error(body)?;
    ingest(
        state,
        &caller,
        UploadKind::Deploy,
        Params::default(),
        &headers,
        body,
    )
    .await
}

/// The `profile` part of a `multipart/form-data` body, as Pyroscope's
/// clients send pprof.
fn multipart_profile(content_type: &str, body: &[u8]) -> Result<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(|| Error::bad("multipart body without a boundary"))?;
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some(start) = find(&text[at..], delimiter.as_bytes()).map(|i| at + i + delimiter.len()) {
        let Some(end) = find(&text[start..], delimiter.as_bytes()).map(|i| start + i) else {
            break;
        };
        parts.push(&text[start..end]);
        at = end;
    }
    for part in parts {
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&part[..split]).to_ascii_lowercase();
        if headers.contains("name=\"profile\"") {
            let content = &part[split + 4..];
            let content = content.strip_suffix(b"\r\n").unwrap_or(content);
            return Ok(content.to_vec());
        }
    }
    Err(Error::bad("multipart body has no `profile` part"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The request's `Content-Type`, if it has a readable one.
fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::CONTENT_TYPE)?.to_str().ok()
}

/// `POST /push.v1.PusherService/Push`: Pyroscope's push API (Connect
/// protocol; protobuf or JSON, gzipped or not).
pub async fn post_push(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_or_error(body)?;
    let content_type = content_type(&headers).unwrap_or("application/proto").to_owned();
    let limits = state.limits.clone();
    let given = content_type.clone();
    let (parts_type, parts) = blocking(move || ingest::split_push_by_service(&given, &body, &limits)).await?;
    let params = Params::from_pairs([(ingest::PUSH_CONTENT_TYPE, parts_type.unwrap_or(&content_type))]);
    let receipts = ingest_parts(state, &caller, UploadKind::Push, params, &headers, parts).await?;
    let answer = match receipts.as_slice() {
        [one] => json(one),
        many => json(&serde_json::json!({ "services": many })),
    };
    Ok((StatusCode::OK, answer).into_response())
}

/// `POST /v1development/profiles`: OpenTelemetry profiles (OTLP/HTTP,
/// protobuf, gzip or not), split per service. Answers an empty
/// `ExportProfilesServiceResponse` (protobuf) on success.
pub async fn post_otlp(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_or_error(body)?;
    if content_type(&headers).is_some_and(|t| t.starts_with("application/json")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send OTLP profiles as protobuf (application/x-protobuf); JSON is not taken",
        ));
    }
    let params = Params::from_pairs([
        (
            ingest::otlp::DEPLOY_ATTRIBUTE,
            state.otlp.deploy_attribute.as_str(),
        ),
        (
            ingest::otlp::WALL_AS_CPU,
            if state.otlp.wall_as_cpu { "true" } else { "false" },
        ),
    ]);
    let limits = state.limits.clone();
    let parts = blocking(move || ingest::otlp::split_by_service(&body, &limits)).await?;
    ingest_parts(state, &caller, UploadKind::Otlp, params, &headers, parts).await?;
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response())
}

/// `POST /ingest?name=app.cpu{k=v}&from=&until=&format=pprof|folded`: Pyroscope's ingest API.
pub async fn post_pyroscope(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Answer {
    let body = body_or_error(body)?;
    let content_type = content_type(&headers).unwrap_or("");
    let body = if content_type.starts_with("multipart/form-data") {
        Bytes::from(multipart_profile(content_type, &body)?)
    } else {
        body
    };
    ingest(
        state,
        &caller,
        UploadKind::Pyroscope,
        Params::parse(query.as_deref()),
        &headers,
        body,
    )
    .await
}

async fn timed<T: Send + 'static>(
    state: &AppState,
    route: &'static str,
    work: impl FnOnce(Arc<dyn Store>) -> Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    let started = Instant::now();
    let result = blocking(move || work(store)).await;
    state.metrics.query(route, started.elapsed());
    result
}

/// `GET /api/v1/services`: those the caller may see.
pub async fn services(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Answer {
    let mut services = timed(&state, "services", |store| store.services()).await?;
    services.retain(|s| caller.covers(&s.service));
    Ok(json(&serde_json::json!({ "services": services })))
}

/// `GET /api/v1/services/{service}/deploys`.
pub async fn deploys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(service): Path<String>,
) -> Answer {
    caller.see(&service)?;
    let deploys = timed(&state, "deploys", move |store| store.deploys(&service)).await?;
    Ok(json(&serde_json::json!({ "deploys": deploys })))
}

/// Refuses deploys the service never had (404, not an empty answer).
fn check_deploys(store: &dyn Store, service: &str, deploys: &[&str]) -> Result<()> {
    if deploys.is_empty() {
        return Ok(());
    }
    for deploy in deploys {
        if !store.has_deploy(service, deploy)? {
            return Err(Error::NotFound {
                what: "deploy",
                name: format!("{deploy}` of service `{service}"),
            });
        }
    }
    Ok(())
}

/// The query's selection, of a service the caller may see, with deploys
/// the service has.
fn checked_selection(store: &dyn Store, caller: &Caller, params: &Params) -> Result<Selection> {
    let sel = params.selection()?;
    caller.see(&sel.service)?;
    let deploys: Vec<&str> = sel.deploys.iter().map(String::as_str).collect();
    check_deploys(store, &sel.service, &deploys)?;
    Ok(sel)
}

/// `GET /api/v1/flamegraph?service=&deploy=&from=&until=&endpoint=&label=k=v&format=json|svg|folded|pprof`.
pub async fn flamegraph(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let format = params.get("format").unwrap_or("json").to_owned();
    let max_nodes = params.int("max_nodes")?.unwrap_or(20_000).max(0) as usize;
    let inverted = params.get("icicle").is_some_and(|v| v == "true" || v == "1");
    let answer = timed(&state, "flamegraph", move |store| {
        let sel = checked_selection(&*store, &caller, &params)?;
        if format == "json" {
            return Ok(json(&query::flame_tree(&*store, &sel, max_nodes)?));
        }
        let (profile, _) = query::profile(&*store, &sel)?;
        let mut out = Vec::new();
        let content_type = match format.as_str() {
            "svg" => {
                let options = FlameGraphOptions {
                    title: Some(format!("{} {}", sel.service, sel.deploys.join(", "))),
                    inverted,
                    ..FlameGraphOptions::default()
                };
                render::flamegraph(&profile, &options, &mut out)?;
                "image/svg+xml"
            }
            "folded" => {
                format::write(&profile, Format::Folded, &WriteOptions::default(), &mut out)?;
                "text/plain; charset=utf-8"
            }
            "pprof" => {
                format::write(&profile, Format::Pprof, &WriteOptions::default(), &mut out)?;
                "application/octet-stream"
            }
            other => {
                return Err(Error::bad(format!(
                    "unknown format `{other}`: use json, svg, folded or pprof"
                )))
            }
        };
        Ok(typed(content_type, out))
    })
    .await?;
    Ok(answer)
}

/// `GET /api/v1/diff?service=&base=&candidate=&endpoint=&label=&format=svg|json|tree&max_nodes=`
/// (`tree`: the dashboard's differential tree).
pub async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let format = params.get("format").unwrap_or("svg").to_owned();
    let answer = timed(&state, "diff", move |store| {
        let base = params.required("base")?.to_owned();
        let candidate = params.required("candidate")?.to_owned();
        let mut sel = params.selection()?;
        caller.see(&sel.service)?;
        check_deploys(&*store, &sel.service, &[&base, &candidate])?;
        if format == "tree" {
            let max_nodes = params.int("max_nodes")?.unwrap_or(20_000).max(0) as usize;
            return Ok(json(&query::diff_tree(&*store, &sel, &base, &candidate, max_nodes)?));
        }
        sel.deploys = vec![base.clone()];
        let (before, _) = query::profile(&*store, &sel)?;
        sel.deploys = vec![candidate.clone()];
        let (after, _) = query::profile(&*store, &sel)?;
        if before.sample_types != after.sample_types {
            return Err(Error::MixedUnits(format!(
                "{base} is in {}, {candidate} in {}",
                before.sample_types[1], after.sample_types[1]
            )));
        }
        match format.as_str() {
            "svg" => {
                let options = FlameGraphOptions {
                    title: Some(format!("{}: {base} → {candidate}", sel.service)),
                    ..FlameGraphOptions::default()
                };
                let mut out = Vec::new();
                render::diff_flamegraph(&before, &after, &options, &mut out)?;
                Ok(typed("image/svg+xml", out))
            }
            "json" => {
                let fold = |p: &flameshift_profile::Profile| {
                    p.fold(&flameshift_profile::FoldOptions {
                        value_index: 1,
                        root_label: None,
                    })
                };
                let (b, a) = (fold(&before), fold(&after));
                let mut stacks = std::collections::BTreeMap::new();
                for (stack, v) in &b {
                    stacks.entry(stack.clone()).or_insert((0, 0)).0 = *v;
                }
                for (stack, v) in &a {
                    stacks.entry(stack.clone()).or_insert((0, 0)).1 = *v;
                }
                let rows: Vec<_> = stacks
                    .into_iter()
                    .map(|(stack, (base, candidate))| serde_json::json!({"stack": stack, "base": base, "candidate": candidate}))
                    .collect();
                Ok(json(&serde_json::json!({
                    "base": base, "candidate": candidate,
                    "base_total": before.total(1), "candidate_total": after.total(1),
                    "stacks": rows,
                })))
            }
            other => Err(Error::bad(format!("unknown format `{other}`: use svg, json or tree"))),
        }
    })
    .await?;
    Ok(answer)
}

/// `GET /api/v1/functions?service=&deploy=&endpoint=&order=self|inclusive&limit=`.
pub async fn functions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let top = timed(&state, "functions", move |store| {
        let sel = checked_selection(&*store, &caller, &params)?;
        let order = match params.get("order").unwrap_or("self") {
            "self" => TopOrder::SelfCost,
            "inclusive" => TopOrder::Inclusive,
            other => {
                return Err(Error::bad(format!(
                    "unknown order `{other}`: use self or inclusive"
                )))
            }
        };
        let limit = params.int("limit")?.unwrap_or(100).clamp(1, 100_000) as usize;
        query::top_functions(&*store, &sel, order, limit)
    })
    .await?;
    Ok(json(&top))
}

/// `GET /api/v1/series?service=&endpoint=&deploy=&from=&until=&window=60s&function=&self=true`.
pub async fn series(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let series = timed(&state, "series", move |store| {
        let sel = checked_selection(&*store, &caller, &params)?;
        let window = params.duration_ms("window")?.unwrap_or(60_000);
        let self_only = params.get("self").is_some_and(|v| v == "true" || v == "1");
        query::series(&*store, &sel, window, params.get("function"), self_only)
    })
    .await?;
    Ok(json(&series))
}

/// `GET /api/v1/endpoints?service=&deploy=&from=&until=&label=&window=60s`:
/// cost per request of every endpoint per window.
pub async fn endpoints(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Answer {
    let params = Params::parse(query.as_deref());
    let series = timed(&state, "endpoints", move |store| {
        let sel = checked_selection(&*store, &caller, &params)?;
        let window = params.duration_ms("window")?.unwrap_or(60_000);
        query::endpoint_series(&*store, &sel, window)
    })
    .await?;
    Ok(json(&series))
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /metrics`: fleet-wide, so only for a token of every service.
pub async fn metrics(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Answer {
    caller.fleet_wide("/metrics")?;
    let store = state.store.clone();
    let gauges = tokio::task::spawn_blocking(move || store.gauges())
        .await
        .unwrap_or_default();
    Ok(typed("text/plain; version=0.0.4", state.metrics.render(&gauges)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_profile_part_is_found() {
        let body = b"--XYZ\r\nContent-Disposition: form-data; name=\"sample_type_config\"\r\n\r\n{}\r\n--XYZ\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\nPPROF\r\n--XYZ--\r\n";
        assert_eq!(
            multipart_profile("multipart/form-data; boundary=XYZ", body).unwrap(),
            b"PPROF"
        );
        assert!(multipart_profile("multipart/form-data", body).is_err());
        assert!(multipart_profile("multipart/form-data; boundary=NOPE", body).is_err());
    }
}
