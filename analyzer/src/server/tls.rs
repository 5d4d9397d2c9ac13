//! https for `flameshift serve --tls-cert FILE --tls-key FILE`: rustls
//! (ring) over the same router, HTTP/1.1, PEM files (the certificate
//! chain, leaf first, and its PKCS#8, PKCS#1 or SEC1 key). A `SIGHUP`
//! reads both files again (certificates renewed by cert-manager or
//! certbot take effect without a restart); a pair that does not load
//! leaves the old one serving and logs why. A client that fails the
//! handshake (plain http on this port, a certificate it does not trust)
//! is dropped and counted in the debug log; nothing else is affected.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// The PEM files of the server's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf.
    pub key: PathBuf,
}

/// The server's TLS settings, replaced whole on reload.
pub(crate) struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl Certificates {
    /// Loads the files; fails with the file and what is wrong with it.
    pub(crate) fn load(files: TlsFiles) -> Result<Certificates> {
        let config = server_config(&files)?;
        Ok(Certificates {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on failure the old pair keeps serving.
    pub(crate) fn reload(&self) -> Result<()> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("TLS file {}: {why}", path.display()))
}

fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig> {
    let pem = std::fs::read(&files.cert).map_err(|e| bad(&files.cert, e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad(&files.cert, "no CERTIFICATE in it"));
    }
    let pem = std::fs::read(&files.key).map_err(|e| bad(&files.key, e))?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(&files.key, format!("no private key: {e}")))?;
    // See the client's note on ring (flameshift_client::http).
    #[allow(deprecated, reason = "ring builds with cc alone")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&files.key, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `app` over TLS on `listener` until `shutdown`, then waits (up
/// to 30 s) for connections in flight to finish their requests.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    certificates: Arc<Certificates>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reloads = tokio::spawn(reload_on_sighup(certificates.clone()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(certificates.current());
        let (service, watcher) = (service.clone(), graceful.watcher());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    reloads.abort();
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; closing them");
    }
    Ok(())
}

async fn reload_on_sighup(certificates: Arc<Certificates>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        match certificates.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; the old certificate keeps serving")
            }
        }
    }
}
