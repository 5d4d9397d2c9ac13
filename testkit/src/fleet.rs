//! The simulated fleet (`flameshift_detect::sim`) uploaded as agents
//! upload: per window and host a pprof profile and, where requests are
//! counted, the window's request statistics.

use flameshift_analyzer::profile::format;
use flameshift_client::routes::{self, encode_component};
use flameshift_detect::sim::Fleet;

use crate::http::client;

/// How a fleet is uploaded.
#[derive(Debug, Clone)]
pub struct FleetUpload {
    /// The service to upload as (default: the fleet's own).
    pub service: Option<String>,
    /// Whether request statistics are sent: without them the analyzer
    /// compares shares, as for a Pyroscope SDK or OTLP producer.
    pub requests: bool,
    /// The bearer token to send, if the server wants one.
    pub token: Option<String>,
}

impl Default for FleetUpload {
    fn default() -> Self {
        FleetUpload {
            service: None,
            requests: true,
            token: None,
        }
    }
}

/// Uploads every deploy, window and host of `fleet` to the server at
/// `url`, the hosts of a window concurrently; panics on any refusal.
pub async fn upload_fleet(url: &str, fleet: &Fleet, how: &FleetUpload) {
    let c = fleet.config();
    let service = how.service.clone().unwrap_or_else(|| c.service.clone());
    let client = client();
    let bearer = how
        .token
        .as_ref()
        .map(|t| format!("Bearer {t}"))
        .unwrap_or_default();
    for d in 0..c.deploys {
        for w in 0..c.windows_per_deploy {
            let mut pending = Vec::new();
            for h in 0..c.hosts {
                let window = fleet.host_window(d, w, h);
                let mut profile = Vec::new();
                format::pprof::write(&window.profile(), &mut profile).unwrap();
                let profile_url = format!(
                    "{url}{}?service={}&deploy={}&host={}",
                    routes::PROFILES,
                    encode_component(&service),
                    encode_component(&window.deploy),
                    encode_component(&window.host)
                );
                let requests = how
                    .requests
                    .then(|| serde_json::to_vec(&window.requests_body(&service)).unwrap());
                let requests_url = format!("{url}{}", routes::REQUESTS);
                let (client, bearer) = (client.clone(), bearer.clone());
                pending.push(tokio::spawn(async move {
                    let post = |url: &str, body: Vec<u8>| {
                        let request = client.post(url).body(body);
                        if bearer.is_empty() {
                            request
                        } else {
                            request.header("authorization", &bearer)
                        }
                    };
                    let sent = post(&profile_url, profile).send().await.unwrap();
                    assert!(
                        sent.status().is_success(),
                        "{profile_url}: {}",
                        sent.text().await.unwrap()
                    );
                    if let Some(requests) = requests {
                        let sent = post(&requests_url, requests).send().await.unwrap();
                        assert!(
                            sent.status().is_success(),
                            "{requests_url}: {}",
                            sent.text().await.unwrap()
                        );
                    }
                }));
            }
            for upload in pending {
                upload.await.unwrap();
            }
        }
    }
}

/// (deploy, function) of every regression of a `GET /api/v1/regressions`
/// listing, the function being its likely cause where it names one.
pub fn reported_regressions(listing: &serde_json::Value) -> Vec<(String, String)> {
    listing["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let function = r["cause"]
                .as_str()
                .or(r["function"].as_str())
                .unwrap_or("(total)");
            (
                r["deploy_after"].as_str().unwrap().to_owned(),
                function.to_owned(),
            )
        })
        .collect()
}
