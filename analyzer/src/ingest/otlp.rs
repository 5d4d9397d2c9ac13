//! OpenTelemetry profiles over OTLP/HTTP, `POST /v1development/profiles`:
//! who sent them, and whether they are CPU profiles. The request itself
//! is read by `flameshift_profile::format::otlp`.
//!
//! Mapping (docs/operations.md): resource `service.name` is the service
//! (required), `service.version` the deploy (or the resource attribute
//! the server names with `--otlp-deploy-attribute`; else `unknown`),
//! `host.name` the host; other resource attributes become labels,
//! except those a producer adds about itself and identifiers
//! ([`otlp::is_producer_attribute`]), which would make every sample its
//! own series. String-valued sample attributes (e.g. `thread.name`)
//! become sample labels.
//!
//! Only CPU profiles are taken: a sample type in instructions or CPU
//! time, or sample counts with a period in CPU time or instructions. A
//! wall-clock profile (period `wall`, as the Python SDK's stack sampler
//! sends) is refused with a 400 naming it unless the server counts wall
//! time as CPU time (`--otlp-wall-as-cpu`: right for CPU-bound,
//! single-threaded programs, wrong where threads wait).

use std::collections::BTreeMap;

use flameshift_profile::format::otlp;
use flameshift_profile::{Profile, SampleType};

use super::{check_label, check_name, profile_rows, Identity, Limits, Sender, Upload};
use crate::model::Batch;
use crate::{Error, Result};

/// The upload parameter naming the resource attribute that is the deploy.
pub const DEPLOY_ATTRIBUTE: &str = "otlp_deploy_attribute";
/// The upload parameter that is `true` when wall time counts as CPU time.
pub const WALL_AS_CPU: &str = "otlp_wall_as_cpu";

/// Refuses what is not a CPU profile, naming it; with `wall_as_cpu`, a
/// wall-clock period is read as CPU time.
fn cpu_period(
    sample: &SampleType,
    period: Option<&SampleType>,
    wall_as_cpu: bool,
) -> Result<Option<SampleType>> {
    let is_time = |unit: &str| flameshift_profile::units::nanoseconds_per_unit(unit).is_some();
    let cpu_value = sample.unit == "instructions" || (sample.kind == "cpu" && is_time(&sample.unit));
    if cpu_value {
        return Ok(period.cloned());
    }
    let counts = sample.unit == "count" || sample.unit.is_empty();
    match period {
        Some(p) if counts && (p.unit == "instructions" || (p.kind == "cpu" && is_time(&p.unit))) => {
            Ok(Some(p.clone()))
        }
        Some(p) if counts && wall_as_cpu && p.kind == "wall" && is_time(&p.unit) => {
            Ok(Some(SampleType::new("cpu", p.unit.clone())))
        }
        _ => {
            let period = period.map_or("none".to_owned(), |p| p.to_string());
            let hint = if period.starts_with("wall") {
                " (wall-clock time; serve --otlp-wall-as-cpu counts it as CPU time)"
            } else {
                ""
            };
            Err(Error::bad(format!(
                "OTLP profile of {sample} with period {period} is not a CPU profile{hint}; flameshift takes CPU time or instructions"
            )))
        }
    }
}

/// The service, deploy, host and labels of a resource.
fn resource_identity(mut attributes: BTreeMap<String, String>, deploy_attribute: &str) -> Result<Sender> {
    let service = attributes
        .remove("service.name")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("OTLP resource without a service.name attribute"))?;
    let deploy = attributes
        .remove(deploy_attribute)
        .unwrap_or_else(|| "unknown".to_owned());
    let host = attributes
        .remove("host.name")
        .unwrap_or_else(|| "unknown".to_owned());
    check_name("service", &service)?;
    check_name("deploy", &deploy)?;
    check_name("host", &host)?;
    let mut tags = BTreeMap::new();
    for (key, value) in attributes {
        if !otlp::is_producer_attribute(&key) && !key.starts_with("service.") {
            check_label(&key, &value)?;
            tags.insert(key, value);
        }
    }
    Ok(Sender {
        service,
        deploy,
        host,
        tags,
    })
}

/// Each CPU profile of an OTLP export with who sent it (service, deploy,
/// host, labels; `time_ms` from the profile, else `received_ms`).
fn read_profiles(upload: &Upload, limits: &Limits) -> Result<Vec<(Identity, Profile)>> {
    let deploy_attribute = upload
        .params
        .get(DEPLOY_ATTRIBUTE)
        .map_or("service.version", String::as_str);
    let wall_as_cpu = upload.params.get(WALL_AS_CPU).is_some_and(|v| v == "true");
    let mut out = Vec::new();
    for resource in otlp::read(&upload.body, limits.max_decompressed)? {
        let sender = resource_identity(resource.attributes, deploy_attribute)?;
        for mut profile in resource.profiles {
            let sample_type = profile.sample_types[0].clone();
            let period = cpu_period(
                &sample_type,
                profile.period.as_ref().map(|p| &p.kind),
                wall_as_cpu,
            )?;
            profile.period = match (period, profile.period.take()) {
                (Some(kind), Some(p)) => Some(flameshift_profile::Period { kind, value: p.value }),
                _ => None,
            };
            out.push((sender.of(&profile, upload.received_ms)?, profile));
        }
    }
    Ok(out)
}

/// The CPU profiles of an OTLP export as the analyzer reads them (wall
/// time counted as CPU time where the upload says so): for benchmarks.
pub fn profiles(upload: &Upload, limits: &Limits) -> Result<Vec<Profile>> {
    Ok(read_profiles(upload, limits)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// The rows of an OTLP export: every profile of every resource, all of
/// one service.
pub(super) fn otlp_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    let mut out: Option<Batch> = None;
    for (id, profile) in read_profiles(upload, limits)? {
        super::add_profile_rows(&mut out, profile_rows(&profile, &id, limits)?)?;
    }
    out.ok_or_else(|| Error::bad("OTLP profiles request without samples"))
}

/// The request as one body per service (`service.name`), each with the
/// whole dictionary: flameshift stores each upload under one service.
pub fn split_by_service(body: &[u8], limits: &Limits) -> Result<Vec<Vec<u8>>> {
    Ok(otlp::split_by_resource(
        body,
        limits.max_decompressed,
        "service.name",
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::UploadKind;
    use otlp::proto;
    use prost::Message as _;

    /// The first export of fixtures/otlp-profiles/work.py (OpenTelemetry's
    /// Python SDK), gzipped as sent.
    const CAPTURED: &[u8] = include_bytes!("../../../fixtures/otlp-profiles/python-sdk.pb.gz");

    fn upload(body: Vec<u8>, wall_as_cpu: bool) -> Upload {
        Upload {
            kind: UploadKind::Otlp,
            params: BTreeMap::from([(WALL_AS_CPU.to_owned(), wall_as_cpu.to_string())]),
            received_ms: 1_796_460_890_000,
            key: None,
            body,
        }
    }

    #[test]
    fn the_python_sdk_export_becomes_rows_of_its_service() {
        let limits = Limits::default();
        let batch = otlp_upload(&upload(CAPTURED.to_vec(), true), &limits).unwrap();
        assert_eq!(batch.service, "pyotel");
        let sent: i64 = otlp::read(CAPTURED, 1 << 24).unwrap()[0].profiles[0].total(0);
        assert!(sent > 100, "about 4 s at 100 Hz: {sent}");
        assert_eq!(batch.sample_count(), sent);
        let key = &batch.samples[0].0;
        assert_eq!((&*key.deploy, &*key.host), ("v3", "unknown"));
        assert!(key.labels.contains("\"region\":\"eu\""), "{}", key.labels);
        assert!(
            key.labels.contains("\"thread.name\":\"MainThread\""),
            "{}",
            key.labels
        );
        assert!(
            !key.labels.contains("thread.id") && !key.labels.contains("telemetry"),
            "{}",
            key.labels
        );
        // 10 ms of wall time per sample, stored as CPU time.
        assert!(batch
            .samples
            .iter()
            .all(|(_, w)| w.weight == w.count * 10_000_000));
        let names: Vec<&str> = batch.stack_nodes.iter().map(|n| &*n.function).collect();
        assert!(
            names.iter().any(|n| *n == "busy_hash" || *n == "slow_sort"),
            "{names:?}"
        );
    }

    #[test]
    fn a_sample_attribute_named_by_endpoint_labels_is_the_endpoint() {
        // The SDK puts `thread.name` on each sample; as if it were
        // `http.route`, with `serve --endpoint-label thread.name`.
        let limits = Limits {
            endpoint_labels: vec!["thread.name".to_owned()],
            ..Limits::default()
        };
        let batch = otlp_upload(&upload(CAPTURED.to_vec(), true), &limits).unwrap();
        assert!(batch
            .samples
            .iter()
            .all(|(k, _)| &*k.endpoint == "MainThread" && !k.labels.contains("thread.name")));
        let plain = otlp_upload(&upload(CAPTURED.to_vec(), true), &Limits::default()).unwrap();
        assert!(plain.samples.iter().all(|(k, _)| k.endpoint.is_empty()));
    }

    #[test]
    fn wall_clock_is_refused_by_name_unless_counted_as_cpu() {
        let e = otlp_upload(&upload(CAPTURED.to_vec(), false), &Limits::default()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("wall") && text.contains("--otlp-wall-as-cpu"),
            "{text}"
        );
    }

    /// Edits the decoded fixture and re-encodes it.
    fn edited(edit: impl FnOnce(&mut proto::ExportRequest)) -> Vec<u8> {
        let mut request = otlp::decode(CAPTURED, 1 << 24).unwrap();
        edit(&mut request);
        request.encode_to_vec()
    }

    fn refusal(body: Vec<u8>) -> String {
        match otlp_upload(&upload(body, true), &Limits::default()) {
            Err(e @ (Error::BadRequest(_) | Error::Profile(_))) => e.to_string(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn bad_exports_are_refused_naming_the_problem() {
        let text = refusal(edited(|r| r.resource_profiles[0].resource = None));
        assert!(text.contains("service.name"), "{text}");
        let text = refusal(edited(|r| {
            r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 9_999
        }));
        assert!(
            text.contains("samples[0].stack_index") && text.contains("9999"),
            "{text}"
        );
        let text = refusal(edited(|r| {
            let dict = r.dictionary.as_mut().unwrap();
            let bytes = dict.string_table.len() as i32;
            dict.string_table.push("memory.heap.bytes".into());
            dict.string_table.push("bytes".into());
            let profile = &mut r.resource_profiles[0].scope_profiles[0].profiles[0];
            profile.sample_type = Some(proto::ValueType {
                type_strindex: bytes,
                unit_strindex: bytes + 1,
            });
            profile.period_type = None;
        }));
        assert!(
            text.contains("memory.heap.bytes/bytes") && text.contains("not a CPU profile"),
            "{text}"
        );
    }
}
