//! Turning uploads into rows: pprof (or any format the profile crate
//! reads), request statistics, deploy events, Pyroscope's ingest and
//! push APIs (push.rs) and OpenTelemetry profiles (otlp.rs).
//!
//! Pure functions: an [`Upload`] (what arrived, with when) in, a [`Batch`]
//! or an error naming the problem out. The same function runs when an
//! upload arrives and when the write-ahead log is replayed, so replay
//! rebuilds exactly what was acknowledged.
//!
//! Length: over 600 lines with its tests: one decoder per upload kind, sharing the validation rules (names, labels, times, units) that must not diverge.

pub mod otlp;
mod push;

pub use push::{split_by_service as split_push_by_service, CONTENT_TYPE as PUSH_CONTENT_TYPE};

use std::collections::BTreeMap;
use std::sync::Arc;

use flameshift_profile::{format, units, FrameId, LabelSetId, LabelValue, Profile, StackId};
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

pub use flameshift_profile::wire::{DeployBody, EndpointRequests, RequestsBody};

use crate::detect::suspects;
use crate::model::{
    bucket, stack_node_id, Batch, DeployEvent, RequestAgg, RequestKey, SampleKey, StackNode, Unit, Weight,
    SAMPLE_BUCKET_MS,
};
use crate::store::facts;
use crate::{Error, Result};

/// Which API an upload came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    /// `POST /api/v1/profiles`: a profile (pprof, gzipped or not; folded).
    Profile,
    /// `POST /api/v1/requests`: request statistics JSON.
    Requests,
    /// `POST /api/v1/deploys`: a deploy event JSON.
    Deploy,
    /// `POST /ingest`: Pyroscope's ingest API.
    Pyroscope,
    /// `POST /push.v1.PusherService/Push`: Pyroscope's push API.
    Push,
    /// `POST /v1development/profiles`: OpenTelemetry profiles (OTLP/HTTP).
    Otlp,
}

/// One upload as it arrived: what the write-ahead log stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The API it came through.
    pub kind: UploadKind,
    /// Query parameters.
    pub params: BTreeMap<String, String>,
    /// When the server received it, ms since the Unix epoch.
    pub received_ms: i64,
    /// The sender's `Idempotency-Key`: the same for every attempt to send
    /// this upload, so that a store can keep it once however often it
    /// comes (the ClickHouse store does; docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The body.
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// Limits applied to uploads, the time resolution they are stored at,
/// and how their labels are read.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Cap on a gzipped body's decompressed size.
    pub max_decompressed: u64,
    /// Width of the time buckets samples and request statistics are
    /// summed in (default [`SAMPLE_BUCKET_MS`], 10 s). Detection windows
    /// are multiples of it.
    pub bucket_ms: i64,
    /// Labels that name a sample's endpoint, first found wins, before
    /// [`ENDPOINT_LABEL`] (`serve --endpoint-label http.route`): Pyroscope
    /// tags, OTLP sample attributes and pprof labels alike. The embedded
    /// store replays its log with the labels in force at restart.
    pub endpoint_labels: Vec<String>,
}

/// The label that names a sample's endpoint: what the agents send, and
/// always recognised after `--endpoint-label`'s names.
pub const ENDPOINT_LABEL: &str = "endpoint";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed: 256 << 20,
            bucket_ms: SAMPLE_BUCKET_MS,
            endpoint_labels: Vec::new(),
        }
    }
}

/// Longest accepted name (service, deploy, host, label key).
const MAX_NAME: usize = 200;
/// Longest accepted label value or endpoint.
const MAX_VALUE: usize = 2_000;
/// Most commits one deploy event may carry.
const MAX_COMMITS: usize = 1_000;
/// How far in the future an upload's time may be (clock skew).
const MAX_FUTURE_MS: i64 = 3_600_000;

/// An upload that decoded and passed validation, with the rows it adds:
/// what a [`crate::store::Store`] appends. The store that logs uploads
/// (the embedded one) logs `upload` and replays it through [`decode`];
/// a store of rows (ClickHouse) inserts `batch`.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The upload as it arrived.
    pub upload: Upload,
    /// The rows it adds.
    pub batch: Batch,
}

/// Decodes and validates `upload`: the one step every store's ingest
/// starts from. An error names the problem; nothing is stored.
pub fn accept(upload: Upload, limits: &Limits) -> Result<Accepted> {
    let batch = decode(&upload, limits)?;
    Ok(Accepted { upload, batch })
}

/// Decodes and validates an upload into the rows it adds.
pub fn decode(upload: &Upload, limits: &Limits) -> Result<Batch> {
    match upload.kind {
        UploadKind::Profile => profile_upload(upload, limits),
        UploadKind::Requests => requests_upload(upload, limits),
        UploadKind::Deploy => deploy_upload(upload),
        UploadKind::Pyroscope => pyroscope_upload(upload, limits),
        UploadKind::Push => push::push_upload(upload, limits),
        UploadKind::Otlp => otlp::otlp_upload(upload, limits),
    }
}

/// Adds one profile's rows to those of an upload's earlier profiles. The
/// handlers split requests per service first, so two services here mean
/// a part that was not split: refused.
fn add_profile_rows(out: &mut Option<Batch>, batch: Batch) -> Result<()> {
    match out {
        None => *out = Some(batch),
        Some(all) if all.service == batch.service => {
            all.samples.extend(batch.samples);
            all.stack_nodes.extend(batch.stack_nodes);
            all.facts.extend(batch.facts);
        }
        Some(all) => {
            return Err(Error::bad(format!(
                "an upload carries one service's profiles; this one has {} and {}",
                all.service, batch.service
            )))
        }
    }
    Ok(())
}

/// Checks a service, deploy or host name.
pub fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::bad(format!("{what} is empty")));
    }
    if value.len() > MAX_NAME {
        return Err(Error::bad(format!("{what} is longer than {MAX_NAME} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad(format!(
            "{what} {value:?} contains control characters"
        )));
    }
    Ok(())
}

fn check_label(key: &str, value: &str) -> Result<()> {
    let valid_key = key.len() <= MAX_NAME
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_key {
        return Err(Error::bad(format!(
            "bad label key {key:?}: use letters, digits, `_`, `.`, `-`, starting with a letter or `_`"
        )));
    }
    if value.len() > MAX_VALUE {
        return Err(Error::bad(format!(
            "label {key} is longer than {MAX_VALUE} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad(format!(
            "label {key} = {value:?} contains control characters"
        )));
    }
    Ok(())
}

fn check_time(time_ms: i64, received_ms: i64) -> Result<i64> {
    if time_ms < 0 {
        return Err(Error::bad(format!("time {time_ms} ms is before 1970")));
    }
    if time_ms > received_ms + MAX_FUTURE_MS {
        return Err(Error::bad(format!(
            "time {time_ms} ms is more than an hour ahead of the server's clock ({received_ms} ms)"
        )));
    }
    Ok(time_ms)
}

/// The service, deploy, host and time of a profile upload, from query
/// parameters first and the profile's own labels second.
struct Identity {
    service: String,
    deploy: Arc<str>,
    host: Arc<str>,
    time_ms: i64,
    /// Labels of every sample (profile-level labels, Pyroscope tags);
    /// a sample's own labels win.
    tags: BTreeMap<String, String>,
}

/// Who sent a producer's profiles (a push series, an OTLP resource):
/// the identity of each profile but its time.
struct Sender {
    service: String,
    deploy: String,
    host: String,
    tags: BTreeMap<String, String>,
}

impl Sender {
    /// The identity of one of its profiles: at the profile's own time,
    /// else when the upload was received.
    fn of(&self, profile: &Profile, received_ms: i64) -> Result<Identity> {
        let time_ms = match profile.time_nanos / 1_000_000 {
            t if t > 0 => t,
            _ => received_ms,
        };
        Ok(Identity {
            service: self.service.clone(),
            deploy: self.deploy.as_str().into(),
            host: self.host.as_str().into(),
            time_ms: check_time(time_ms, received_ms)?,
            tags: self.tags.clone(),
        })
    }
}

fn param_number(params: &BTreeMap<String, String>, key: &str) -> Result<Option<i64>> {
    params
        .get(key)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::bad(format!("parameter {key}={v:?} is not an integer")))
        })
        .transpose()
}

fn identity(
    upload: &Upload,
    profile_labels: &BTreeMap<String, String>,
    profile_time_ms: i64,
) -> Result<Identity> {
    let pick = |key: &str| {
        upload
            .params
            .get(key)
            .or_else(|| profile_labels.get(key))
            .cloned()
    };
    let service = pick("service").ok_or_else(|| {
        Error::bad("missing service: pass ?service=NAME or a `service` label in the profile")
    })?;
    check_name("service", &service)?;
    let deploy = pick("deploy").ok_or_else(|| {
        Error::bad("missing deploy: pass ?deploy=VERSION or a `deploy` label in the profile")
    })?;
    check_name("deploy", &deploy)?;
    let host = pick("host").unwrap_or_else(|| "unknown".to_owned());
    check_name("host", &host)?;
    let time_ms = match param_number(&upload.params, "time_ms")? {
        Some(t) => t,
        None if profile_time_ms > 0 => profile_time_ms,
        None => upload.received_ms,
    };
    let mut tags = BTreeMap::new();
    for (k, v) in profile_labels
        .iter()
        .filter(|(k, _)| !IDENTITY_LABELS.contains(&k.as_str()))
    {
        check_label(k, v)?;
        tags.insert(k.clone(), v.clone());
    }
    Ok(Identity {
        service,
        deploy: deploy.into(),
        host: host.into(),
        time_ms: check_time(time_ms, upload.received_ms)?,
        tags,
    })
}

/// How a profile's values become weights in one [`Unit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighting {
    /// The unit of the weights.
    pub unit: Unit,
    /// Which sample type to read.
    pub value_index: usize,
    /// Multiplier from that value to the unit (e.g. 1000 for µs).
    pub factor: f64,
    /// Which sample type counts samples, if any.
    pub count_index: Option<usize>,
}

/// Chooses the sample type to store: instructions if present, else CPU
/// time (any time unit, scaled to ns), else sample counts times a period
/// in instructions or time. Anything else is refused: flameshift stores
/// CPU cost only.
pub fn weighting(profile: &Profile) -> Result<Weighting> {
    let types = &profile.sample_types;
    let count_index = types
        .iter()
        .position(|t| t.unit == "count" && t.kind == "samples");
    if let Some(i) = types.iter().position(|t| t.unit == "instructions") {
        return Ok(Weighting {
            unit: Unit::Instructions,
            value_index: i,
            factor: 1.0,
            count_index,
        });
    }
    let time = types
        .iter()
        .enumerate()
        .filter_map(|(i, t)| units::nanoseconds_per_unit(&t.unit).map(|ns| (i, t, ns)))
        .min_by_key(|(i, t, _)| (t.kind != "cpu", *i));
    if let Some((i, _, ns)) = time {
        return Ok(Weighting {
            unit: Unit::CpuNs,
            value_index: i,
            factor: ns,
            count_index,
        });
    }
    if let (Some(i), Some(period)) = (count_index, &profile.period) {
        let per = if period.kind.unit == "instructions" {
            Some((Unit::Instructions, 1.0))
        } else {
            units::nanoseconds_per_unit(&period.kind.unit).map(|ns| (Unit::CpuNs, ns))
        };
        if let Some((unit, per)) = per.filter(|_| period.value > 0) {
            return Ok(Weighting {
                unit,
                value_index: i,
                factor: per * period.value as f64,
                count_index,
            });
        }
    }
    let names: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    Err(Error::bad(format!(
        "no CPU sample type: the profile has [{}]; flameshift stores CPU instructions or CPU time",
        names.join(", ")
    )))
}

/// Labels every sample row keeps apart from the identity and endpoint.
const IDENTITY_LABELS: [&str; 3] = ["service", "deploy", "host"];

fn profile_labels(profile: &Profile) -> BTreeMap<String, String> {
    profile
        .labels
        .iter()
        .map(|l| (profile.str(l.key).to_owned(), profile.label_value_text(l.value)))
        .collect()
}

/// Per label set: the endpoint and the other labels as canonical JSON.
/// The endpoint is the first of `endpoint_labels` that the sample's
/// labels or the upload's tags carry (a sample's own label wins), then
/// `endpoint`; none: the whole service (`""`).
fn sample_labels(
    profile: &Profile,
    set: LabelSetId,
    id: &Identity,
    endpoint_labels: &[String],
) -> Result<(Arc<str>, Arc<str>)> {
    let mut rest = id.tags.clone();
    for label in profile.label_set(set) {
        let key = profile.str(label.key);
        let value = match label.value {
            LabelValue::Str(s) => profile.str(s).to_owned(),
            num => profile.label_value_text(num),
        };
        check_label(key, &value)?;
        match key {
            "service" if value != id.service => {
                return Err(Error::bad(format!(
                    "mislabelled upload: a sample has service {value:?} but the upload is for {:?}",
                    id.service
                )))
            }
            "deploy" if *value != *id.deploy => {
                return Err(Error::bad(format!(
                    "mislabelled upload: a sample has deploy {value:?} but the upload is for {:?}",
                    &*id.deploy
                )))
            }
            k if IDENTITY_LABELS.contains(&k) => {}
            _ => {
                rest.insert(key.to_owned(), value);
            }
        }
    }
    let endpoint: Arc<str> = endpoint_labels
        .iter()
        .map(String::as_str)
        .chain([ENDPOINT_LABEL])
        .find_map(|key| rest.remove(key))
        .unwrap_or_default()
        .into();
    let labels = serde_json::to_string(&rest).unwrap_or_else(|_| "{}".to_owned());
    Ok((endpoint, labels.into()))
}

/// Stack nodes of one profile, deduplicated, with a cache per stack and
/// one shared name per frame (a function's name is allocated once per
/// upload, not once per node).
#[derive(Default)]
struct StackBuilder {
    nodes: HashMap<u64, StackNode>,
    leaf_of: HashMap<StackId, u64>,
    /// (parent node, frame) → node: shared prefixes are hashed once.
    child_of: HashMap<(u64, FrameId), u64>,
    names: HashMap<FrameId, Arc<str>>,
}

impl StackBuilder {
    fn leaf(&mut self, profile: &Profile, stack: StackId) -> u64 {
        if let Some(&leaf) = self.leaf_of.get(&stack) {
            return leaf;
        }
        let mut parent = 0;
        let frames = profile.stack(stack);
        if frames.is_empty() {
            parent = self.node(parent, &Arc::from("[unknown]"));
        }
        for &frame in frames {
            if let Some(&child) = self.child_of.get(&(parent, frame)) {
                parent = child;
                continue;
            }
            let name = self
                .names
                .entry(frame)
                .or_insert_with(|| Arc::from(profile.frame_name(frame)))
                .clone();
            let child = self.node(parent, &name);
            self.child_of.insert((parent, frame), child);
            parent = child;
        }
        self.leaf_of.insert(stack, parent);
        parent
    }

    fn node(&mut self, parent: u64, function: &Arc<str>) -> u64 {
        let id = stack_node_id(parent, function);
        self.nodes.entry(id).or_insert_with(|| StackNode {
            id,
            parent,
            function: function.clone(),
        });
        id
    }
}

/// Rows of a decoded profile for `id`.
fn profile_rows(profile: &Profile, id: &Identity, limits: &Limits) -> Result<Batch> {
    let weighting = weighting(profile)?;
    let time_ms = bucket(id.time_ms, limits.bucket_ms.max(1));
    let period = profile.period.as_ref().map(|p| p.value).filter(|&p| p > 0);
    let mut stacks = StackBuilder::default();
    let mut label_cache: HashMap<LabelSetId, (Arc<str>, Arc<str>)> = HashMap::default();
    // Sized once: most samples are rows of their own.
    let mut rows: HashMap<SampleKey, Weight> = HashMap::default();
    rows.reserve(profile.samples().len());
    for (sample, values) in profile.iter_samples() {
        let value = values.get(weighting.value_index).copied().unwrap_or(0);
        if value < 0 {
            return Err(Error::bad(format!("negative sample value {value}")));
        }
        let weight = (value as f64 * weighting.factor).round() as i64;
        let count = match weighting.count_index {
            Some(i) => values.get(i).copied().unwrap_or(0).max(0),
            None => match period {
                Some(p) if weighting.factor == 1.0 => (value / p).max(1),
                _ => 1,
            },
        };
        if weight == 0 && count == 0 {
            continue;
        }
        let (endpoint, labels) = match label_cache.get(&sample.labels) {
            Some(cached) => cached.clone(),
            None => {
                let computed = sample_labels(profile, sample.labels, id, &limits.endpoint_labels)?;
                label_cache.insert(sample.labels, computed.clone());
                computed
            }
        };
        let key = SampleKey {
            time_ms,
            deploy: id.deploy.clone(),
            host: id.host.clone(),
            endpoint,
            labels,
            stack_id: stacks.leaf(profile, sample.stack),
            unit: weighting.unit,
        };
        rows.entry(key).or_default().add(Weight { weight, count });
    }
    Ok(Batch {
        service: id.service.clone(),
        samples: rows.into_iter().collect(),
        stack_nodes: stacks.nodes.into_values().collect(),
        requests: Vec::new(),
        deploys: Vec::new(),
        facts: facts::source_facts(suspects::frame_spans(profile), &id.deploy, id.time_ms),
    })
}

fn profile_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    if upload.body.is_empty() {
        return Err(Error::bad(
            "empty body: send a pprof profile (gzipped or not) or folded stacks",
        ));
    }
    let options = format::ReadOptions {
        max_decompressed: limits.max_decompressed,
    };
    let profile = format::read_bytes(&upload.body, &options)?;
    let labels = profile_labels(&profile);
    let id = identity(upload, &labels, profile.time_nanos / 1_000_000)?;
    profile_rows(&profile, &id, limits)
}

fn requests_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    let body: RequestsBody = serde_json::from_slice(&upload.body)
        .map_err(|e| Error::bad(format!("malformed request statistics: {e}")))?;
    check_name("service", &body.service)?;
    check_name("deploy", &body.deploy)?;
    let host = body.host.clone().unwrap_or_else(|| "unknown".to_owned());
    check_name("host", &host)?;
    let unit = body.unit;
    let time_ms = bucket(
        check_time(body.start_ms, upload.received_ms)?,
        limits.bucket_ms.max(1),
    );
    let (deploy, host): (Arc<str>, Arc<str>) = (body.deploy.as_str().into(), host.into());
    let mut rows: HashMap<RequestKey, RequestAgg> = HashMap::default();
    for e in &body.endpoints {
        check_label("endpoint", &e.endpoint)?;
        if e.count < 0 || e.cost_sum < 0 {
            return Err(Error::bad(format!(
                "endpoint {:?}: negative count or cost",
                e.endpoint
            )));
        }
        let in_histogram: u64 = e.histogram.iter().map(|&(_, n)| n).sum();
        if !e.histogram.is_empty() && in_histogram != e.count as u64 {
            return Err(Error::bad(format!(
                "endpoint {:?}: histogram holds {in_histogram} requests but count is {}",
                e.endpoint, e.count
            )));
        }
        let key = RequestKey {
            time_ms,
            deploy: deploy.clone(),
            host: host.clone(),
            endpoint: e.endpoint.as_str().into(),
            unit,
        };
        rows.entry(key).or_default().add(&RequestAgg {
            count: e.count,
            cost: e.cost_sum,
            histogram: e.histogram.iter().copied().collect(),
        });
    }
    Ok(Batch {
        service: body.service,
        requests: rows.into_iter().collect(),
        ..Batch::default()
    })
}

fn deploy_upload(upload: &Upload) -> Result<Batch> {
    let body: DeployBody = serde_json::from_slice(&upload.body)
        .map_err(|e| Error::bad(format!("malformed deploy event: {e}")))?;
    check_name("service", &body.service)?;
    check_name("deploy", &body.deploy)?;
    for (key, value) in [
        ("commit", &body.commit),
        ("author", &body.author),
        ("message", &body.message),
    ] {
        if let Some(value) = value {
            if value.len() > MAX_VALUE {
                return Err(Error::bad(format!("{key} is longer than {MAX_VALUE} bytes")));
            }
        }
    }
    if body.commits.len() > MAX_COMMITS {
        return Err(Error::bad(format!(
            "{} commits in one deploy event; at most {MAX_COMMITS}",
            body.commits.len()
        )));
    }
    for commit in &body.commits {
        if commit.sha.is_empty()
            || commit.sha.len() > 64
            || !commit.sha.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(Error::bad(format!(
                "commit {:?}: `sha` must be 1 to 64 hex digits",
                commit.sha
            )));
        }
        if commit
            .files
            .iter()
            .any(|f| f.lines.iter().any(|&(a, b)| a == 0 || b < a))
        {
            return Err(Error::bad(format!(
                "commit {}: line ranges are [first, last], 1-based, first ≤ last",
                commit.sha
            )));
        }
    }
    let time_ms = check_time(body.time_ms.unwrap_or(upload.received_ms), upload.received_ms)?;
    Ok(Batch {
        service: body.service,
        facts: facts::commit_facts(&body.commits, &body.deploy, upload.received_ms),
        deploys: vec![DeployEvent {
            deploy: body.deploy,
            time_ms,
            commit: body.commit,
            author: body.author,
            message: body.message,
        }],
        ..Batch::default()
    })
}

/// Parses Pyroscope's `name` parameter, `app.cpu{k=v,k2=v2}`, into the
/// application name and its tags.
pub fn parse_pyroscope_name(name: &str) -> Result<(String, BTreeMap<String, String>)> {
    let (app, tags) = match name.find('{') {
        Some(open) => {
            let close = name
                .rfind('}')
                .filter(|&c| c > open && c == name.len() - 1)
                .ok_or_else(|| Error::bad(format!("bad name {name:?}: tags must end with `}}`")))?;
            (&name[..open], &name[open + 1..close])
        }
        None => (name, ""),
    };
    let mut parsed = BTreeMap::new();
    for pair in tags.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::bad(format!("bad tag {pair:?} in name {name:?}: expected key=value")))?;
        check_label(k.trim(), v.trim())?;
        parsed.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let app = app.trim();
    let app = match app.rsplit_once('.') {
        Some((base, "cpu" | "itimer")) => base,
        Some((_, kind)) if !kind.is_empty() && !kind.contains(' ') && is_pyroscope_profile_kind(kind) => {
            return Err(Error::bad(format!(
                "only CPU profiles are stored; {name:?} is a `{kind}` profile"
            )))
        }
        _ => app,
    };
    check_name("application name", app)?;
    Ok((app.to_owned(), parsed))
}

fn is_pyroscope_profile_kind(kind: &str) -> bool {
    matches!(
        kind,
        "alloc_objects"
            | "alloc_space"
            | "inuse_objects"
            | "inuse_space"
            | "goroutines"
            | "mutex_count"
            | "mutex_duration"
            | "block_count"
            | "block_duration"
            | "wall"
    )
}

fn pyroscope_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    let name = upload
        .params
        .get("name")
        .ok_or_else(|| Error::bad("missing name: pass ?name=app.cpu{tag=value,...}"))?;
    let (service, mut tags) = parse_pyroscope_name(name)?;
    let from_s = param_number(&upload.params, "from")?;
    let time_ms = from_s
        .map(|s| s.saturating_mul(1000))
        .unwrap_or(upload.received_ms);
    let deploy = tags
        .remove("deploy")
        .or_else(|| tags.remove("version"))
        .unwrap_or_else(|| "unknown".to_owned());
    let host = tags
        .remove("host")
        .or_else(|| tags.remove("hostname"))
        .unwrap_or_else(|| "unknown".to_owned());
    check_name("deploy", &deploy)?;
    check_name("host", &host)?;
    let id = Identity {
        service,
        deploy: deploy.into(),
        host: host.into(),
        time_ms: check_time(time_ms, upload.received_ms)?,
        tags,
    };
    let format = upload
        .params
        .get("format")
        .map(String::as_str)
        .unwrap_or("folded");
    let profile = match format {
        "pprof" => format::pprof::read(&upload.body, limits.max_decompressed)?,
        "folded" | "lines" => {
            let mut profile = format::read_bytes(&upload.body, &format::ReadOptions::default())?;
            // Folded counts are samples at `sampleRate` Hz (Pyroscope's
            // default 100): each stands for 1e9/rate ns of CPU.
            let rate = param_number(&upload.params, "sampleRate")?.unwrap_or(100);
            if rate <= 0 {
                return Err(Error::bad(format!("sampleRate {rate} must be positive")));
            }
            profile.period = Some(flameshift_profile::Period {
                kind: flameshift_profile::SampleType::new("cpu", "nanoseconds"),
                value: 1_000_000_000 / rate,
            });
            profile
        }
        other => {
            return Err(Error::bad(format!(
                "unsupported format {other:?}: use pprof or folded"
            )))
        }
    };
    profile_rows(&profile, &id, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The endpoints of a profile whose samples carry `labels` (one
    /// sample each), read with `endpoint_labels`.
    fn endpoints_read(labels: &[&[(&str, &str)]], endpoint_labels: &[&str]) -> Vec<(String, String)> {
        let mut p = Profile::new(vec![flameshift_profile::SampleType::new("cpu", "nanoseconds")]);
        for (i, set) in labels.iter().enumerate() {
            let stack = p.stack_from_names(["main", &format!("f{i}")]);
            let set: Vec<_> = set.iter().map(|(k, v)| p.str_label(k, v)).collect();
            let set = p.intern_labels(set);
            p.push_sample(stack, set, &[10]);
        }
        let mut body = Vec::new();
        flameshift_profile::format::pprof::write(&p, &mut body).unwrap();
        let upload = Upload {
            kind: UploadKind::Profile,
            params: BTreeMap::from([
                ("service".to_owned(), "shop".to_owned()),
                ("deploy".to_owned(), "v1".to_owned()),
                ("time_ms".to_owned(), "1000".to_owned()),
            ]),
            received_ms: 2_000,
            key: None,
            body,
        };
        let limits = Limits {
            endpoint_labels: endpoint_labels.iter().map(|l| (*l).to_owned()).collect(),
            ..Limits::default()
        };
        let mut rows: Vec<(String, String)> = decode(&upload, &limits)
            .unwrap()
            .samples
            .into_iter()
            .map(|(k, _)| (k.endpoint.to_string(), k.labels.to_string()))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn the_endpoint_comes_from_the_configured_labels_first_then_endpoint() {
        let samples: &[&[(&str, &str)]] = &[
            &[("http.route", "/users/{id}"), ("region", "eu")],
            &[("endpoint", "GET /feed")],
            &[("http.route", "/a"), ("endpoint", "GET /a")],
            &[("region", "us")],
        ];
        // By default only `endpoint` names one; other labels stay labels.
        assert_eq!(
            endpoints_read(samples, &[]),
            [
                (
                    "".to_owned(),
                    r#"{"http.route":"/users/{id}","region":"eu"}"#.to_owned()
                ),
                ("".to_owned(), r#"{"region":"us"}"#.to_owned()),
                ("GET /a".to_owned(), r#"{"http.route":"/a"}"#.to_owned()),
                ("GET /feed".to_owned(), "{}".to_owned()),
            ]
        );
        // `--endpoint-label http.route`: it wins over `endpoint`, which
        // still names the endpoint of samples without it.
        assert_eq!(
            endpoints_read(samples, &["http.route"]),
            [
                ("".to_owned(), r#"{"region":"us"}"#.to_owned()),
                ("/a".to_owned(), r#"{"endpoint":"GET /a"}"#.to_owned()),
                ("/users/{id}".to_owned(), r#"{"region":"eu"}"#.to_owned()),
                ("GET /feed".to_owned(), "{}".to_owned()),
            ]
        );
    }

    #[test]
    fn pyroscope_names() {
        let (app, tags) = parse_pyroscope_name("shop.cpu{region=eu, deploy=v2}").unwrap();
        assert_eq!(app, "shop");
        assert_eq!(tags["region"], "eu");
        assert_eq!(tags["deploy"], "v2");
        assert_eq!(parse_pyroscope_name("plain").unwrap().0, "plain");
        assert!(parse_pyroscope_name("shop.alloc_objects{}")
            .unwrap_err()
            .to_string()
            .contains("only CPU"));
        assert!(parse_pyroscope_name("shop{region}").is_err());
        assert!(parse_pyroscope_name("shop{a=b").is_err());
        assert!(parse_pyroscope_name("{a=b}").is_err());
    }

    #[test]
    fn label_keys_are_checked() {
        assert!(check_label("endpoint", "GET /x").is_ok());
        assert!(check_label("9x", "v").is_err());
        assert!(check_label("a b", "v").is_err());
        assert!(check_label("k", "line\nbreak").is_err());
    }

    #[test]
    fn node_ids_depend_on_the_whole_path() {
        let a = stack_node_id(stack_node_id(0, "main"), "work");
        let b = stack_node_id(stack_node_id(0, "other"), "work");
        assert_ne!(a, b);
        assert_eq!(a, stack_node_id(stack_node_id(0, "main"), "work"));
    }
}
