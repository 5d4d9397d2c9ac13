//! A reqwest client and the calls tests make with it.

use std::time::Duration;

/// reqwest is built with rustls but no default crypto provider (the
/// workspace picks ring explicitly): the tests' clients install it.
pub fn install_tls_provider() {
    #[allow(deprecated, reason = "ring, as flameshift's own client uses")]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with a 30 s timeout.
pub fn client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn answer(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// POSTs `body`; the status and the answer as JSON (a string if it is not).
pub async fn post(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    answer(client().post(url).body(body).send().await.unwrap()).await
}

/// GETs `url`; the status and the answer as JSON (a string if it is not).
pub async fn get(url: &str) -> (u16, serde_json::Value) {
    answer(client().get(url).send().await.unwrap()).await
}

/// GETs `url`; the status and the text.
pub async fn get_text(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Now, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
