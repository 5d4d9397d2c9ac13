//! The one way a long-running command learns it should stop.

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, whichever comes first (Ctrl-C
/// only where SIGTERM cannot be listened to).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
