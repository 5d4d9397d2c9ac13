//! Webhooks for new regressions: a JSON `POST` to each URL with a one-line
//! `text` (what Slack, Mattermost and most chat tools display) and the
//! whole regression, over http or https (the client's CA settings:
//! `FLAMESHIFT_CA_CERT`). Deliveries run on their own thread, each retried
//! with the client's backoff, so detection never waits for a slow receiver; a full queue
//! drops (and logs) rather than grows.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

use flameshift_analyzer::regressions::Notifier;
use flameshift_client::http::{Client, ClientOptions, Request, RetryPolicy};
use flameshift_detect::Regression;

/// Sends each new regression to every URL.
#[derive(Debug)]
pub struct Webhooks {
    queue: SyncSender<String>,
}

/// Attempts per delivery.
const ATTEMPTS: u32 = 4;

impl Webhooks {
    /// Starts the delivery thread for `urls` (http:// or https://);
    /// `first_backoff` is the wait before the first retry (doubled after
    /// each, ±25 %, at least the receiver's `Retry-After`).
    pub fn start(urls: Vec<String>, first_backoff: Duration) -> anyhow::Result<Webhooks> {
        let client = Client::new(&ClientOptions {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                attempts: ATTEMPTS,
                first_backoff,
                ..RetryPolicy::default()
            },
            ..ClientOptions::from_env()
        })?;
        let (queue, deliveries) = sync_channel::<String>(1024);
        std::thread::Builder::new()
            .name("flameshift-webhooks".into())
            .spawn(move || {
                for body in deliveries {
                    for url in &urls {
                        deliver(&client, url, &body);
                    }
                }
            })?;
        Ok(Webhooks { queue })
    }
}

/// The JSON a webhook receives.
pub fn payload(regression: &Regression) -> String {
    serde_json::json!({
        "text": format!("flameshift: regression — {}", regression.summary()),
        "regression": regression,
    })
    .to_string()
}

fn deliver(client: &Client, url: &str, body: &str) {
    let headers = [("Content-Type", "application/json")];
    match client.call(&Request::post(url, body.as_bytes()).headers(&headers)) {
        Ok(_) => {}
        Err(e) if e.status().is_some() && !e.is_retryable() => {
            tracing::warn!(%url, error = %e, "webhook refused the regression; not retrying");
        }
        Err(e) => tracing::error!(%url, error = %e, "webhook gave up after {ATTEMPTS} attempts"),
    }
}

impl Notifier for Webhooks {
    fn notify(&self, regression: &Regression) {
        match self.queue.try_send(payload(regression)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::error!(id = %regression.id, "webhook queue full; dropped"),
            Err(TrySendError::Disconnected(_)) => tracing::error!(id = %regression.id, "webhook thread gone"),
        }
    }
}
