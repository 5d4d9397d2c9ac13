//! Webhooks for new regressions: a JSON `POST` to each URL with a one-line
//! `text` (what Slack, Mattermost and most chat tools display) and the
//! whole regression. Deliveries run on their own thread, each retried with
//! backoff, so detection never waits for a slow receiver; a full queue
//! drops (and logs) rather than grows.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

use flameshift_analyzer::regressions::Notifier;
use flameshift_collector::export;
use flameshift_detect::Regression;

/// Sends each new regression to every URL.
#[derive(Debug)]
pub struct Webhooks {
    queue: SyncSender<String>,
}

/// Attempts per delivery, and the wait before the first retry (doubled after each).
const ATTEMPTS: u32 = 4;

impl Webhooks {
    /// Starts the delivery thread for `urls`; `first_backoff` is the wait
    /// before the first retry.
    pub fn start(urls: Vec<String>, first_backoff: Duration) -> Webhooks {
        let (queue, deliveries) = sync_channel::<String>(1024);
        std::thread::Builder::new()
            .name("flameshift-webhooks".into())
            .spawn(move || {
                for body in deliveries {
                    for url in &urls {
                        deliver(url, &body, first_backoff);
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the webhook thread"));
        Webhooks { queue }
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

fn deliver(url: &str, body: &str, first_backoff: Duration) {
    let mut wait = first_backoff;
    for attempt in 1..=ATTEMPTS {
        let headers = [("Content-Type", "application/json")];
        match export::post(url, &headers, body.as_bytes(), Duration::from_secs(10)) {
            Ok(response) if response.status < 300 => return,
            Ok(response) if (400..500).contains(&response.status) && response.status != 429 => {
                tracing::warn!(%url, status = response.status, "webhook refused the regression; not retrying");
                return;
            }
            Ok(response) => tracing::warn!(%url, status = response.status, attempt, "webhook failed"),
            Err(e) => tracing::warn!(%url, error = %e, attempt, "webhook unreachable"),
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    tracing::error!(%url, "webhook gave up after {ATTEMPTS} attempts");
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
