//! Pyroscope's push API, `POST /push.v1.PusherService/Push` (the Connect
//! protocol, as the Pyroscope SDKs and Grafana Alloy's `pyroscope.write`
//! send it): who sent each series. The request itself is read by
//! `flameshift_profile::format::pyroscope_push`.
//!
//! Labels: `service_name` is the service (else the application part of
//! `__name__`), `version` the deploy (else `deploy`, else `unknown`),
//! `host`/`hostname`/`instance` the host; `__name__` names the profile
//! type and must be a CPU one (`process_cpu`, `cpu`, `itimer`; memory,
//! lock and wall-clock profiles are refused); labels the SDKs
//! add about themselves (`__*`, `otel.*`, `process.*`) are dropped; the
//! rest become sample labels.

use std::collections::BTreeMap;

use flameshift_profile::format::{self, pyroscope_push};
use pyroscope_push::{Encoding, Series};

use super::{check_name, profile_rows, Limits, Sender, Upload};
use crate::model::Batch;
use crate::{Error, Result};

/// Profile types (`__name__`) that measure CPU time.
const CPU_TYPES: &[&str] = &["process_cpu", "cpu", "itimer"];

/// Label keys that say who sent, not what ran: dropped.
fn is_sdk_label(key: &str) -> bool {
    key.starts_with("__") || key.starts_with("otel.") || key.starts_with("process.")
}

/// The upload parameter the handler puts the request's `Content-Type` in
/// (kept with the body in the write-ahead log, to decode it again).
pub const CONTENT_TYPE: &str = "content_type";

fn decode_request(upload: &Upload, limits: &Limits) -> Result<Vec<Series>> {
    let encoding = Encoding::of_content_type(upload.params.get(CONTENT_TYPE).map_or("", String::as_str));
    Ok(pyroscope_push::decode(
        &upload.body,
        encoding,
        limits.max_decompressed,
    )?)
}

/// The service, deploy, host and labels of one series.
fn series_identity(series: &Series) -> Result<Sender> {
    let mut map: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in &series.labels {
        map.insert(name, value);
    }
    let profile_type = map.get("__name__").copied().unwrap_or("process_cpu");
    let (app, kind) = profile_type.rsplit_once('.').unwrap_or(("", profile_type));
    if !CPU_TYPES.contains(&kind) {
        return Err(Error::bad(format!(
            "profile type {profile_type:?} is not a CPU profile (flameshift takes {})",
            CPU_TYPES.join(", ")
        )));
    }
    let service = map
        .get("service_name")
        .copied()
        .or((!app.is_empty()).then_some(app))
        .ok_or_else(|| Error::bad("push series without a service_name label"))?
        .to_owned();
    check_name("service", &service)?;
    let pick = |keys: &[&str], default: &str| {
        keys.iter()
            .find_map(|k| map.get(k).copied())
            .unwrap_or(default)
            .to_owned()
    };
    let deploy = pick(&["version", "deploy"], "unknown");
    let host = pick(&["host", "hostname", "instance"], "unknown");
    check_name("deploy", &deploy)?;
    check_name("host", &host)?;
    let identity_keys = [
        "service_name",
        "version",
        "deploy",
        "host",
        "hostname",
        "instance",
    ];
    let mut tags = BTreeMap::new();
    for (key, value) in map {
        if !is_sdk_label(key) && !identity_keys.contains(&key) {
            super::check_label(key, value)?;
            tags.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(Sender {
        service,
        deploy,
        host,
        tags,
    })
}

/// The push as one body per service, for a push that carries several
/// (Grafana Alloy forwards many applications' profiles together); parts
/// are protobuf whatever the request was. A push of one service comes
/// back as it is, with `None`; parts come with `Some("application/proto")`,
/// their content type.
pub fn split_by_service(
    content_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<(Option<&'static str>, Vec<Vec<u8>>)> {
    let series = pyroscope_push::decode(
        body,
        Encoding::of_content_type(content_type),
        limits.max_decompressed,
    )?;
    let service_of = |series: &Series| {
        series
            .label("service_name")
            .or_else(|| series.label("__name__")?.rsplit_once('.').map(|(app, _)| app))
            .map(str::to_owned)
    };
    let mut groups: BTreeMap<Option<String>, Vec<Series>> = BTreeMap::new();
    for one in series {
        groups.entry(service_of(&one)).or_default().push(one);
    }
    if groups.len() <= 1 {
        return Ok((None, vec![body.to_vec()]));
    }
    let parts = groups
        .into_values()
        .map(|series| pyroscope_push::encode(&series))
        .collect();
    Ok((Some("application/proto"), parts))
}

/// The rows of a push request: every raw profile of every series, all of
/// one service.
pub(super) fn push_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    let mut out: Option<Batch> = None;
    for series in &decode_request(upload, limits)? {
        let sender = series_identity(series)?;
        for raw in &series.profiles {
            let profile = format::pprof::read(raw, limits.max_decompressed)?;
            let id = sender.of(&profile, upload.received_ms)?;
            super::add_profile_rows(&mut out, profile_rows(&profile, &id, limits)?)?;
        }
    }
    out.ok_or_else(|| Error::bad("push request without profiles"))
}
