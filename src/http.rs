//! The HTTP server (axum on hyper 1): `GET /metrics` (Prometheus text format) and
//! `GET /healthz` for the daemon. [`router`] takes more routes, so a status page at `/`
//! shares the one listener; `serve` runs its own routes on the same server
//! ([`serve_with`]: a connection cap, a time limit on each request's headers, TLS).
//!
//! `/healthz` answers 200 while the last successful pass ended at most
//! [`Monitor::healthy_within`] ago (before the first success: while the daemon started
//! at most that long ago, so a long first catch-up is not a failure), and 503 after
//! that; the body says which, with the last pass and how it ended. One failed pass
//! (a late provider, a broken file) does not make it unhealthy: the alert rules report
//! those; passes that stop succeeding, or stop happening, do.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;

use crate::metrics::{self, LastPass, Metrics};

/// What the endpoints read: the metrics the passes add to, and what health means.
pub struct Monitor {
    pub metrics: Arc<Mutex<Metrics>>,
    /// When the daemon started.
    pub started: DateTime<Utc>,
    /// How old the last successful pass may be while the daemon is healthy.
    pub healthy_within: Duration,
}

/// `/metrics` and `/healthz`, with `extra`'s routes beside them.
pub fn router(monitor: Arc<Monitor>, extra: Router) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(monitor)
        .merge(extra)
}

/// Listens on `address` (port 0: any free port; the listener says which).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves `router` on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, Limits::default(), None, stop).await
}

/// What a client may take of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; the next waits to be accepted.
    pub connections: usize,
    /// Time for a request's headers to arrive (and for a TLS handshake).
    pub header_timeout: Duration,
    /// After `stop`, how long requests in flight may take to finish.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 64,
            header_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(10),
        }
    }
}

/// Loads a certificate chain and a private key (PEM files) for HTTPS, with the one
/// crypto provider of the build.
pub fn tls_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{} and {} do not make a server identity: {e}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` (over TLS with `tls`) within `limits` until `stop`
/// resolves, then lets the requests in flight finish within the grace time.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut stop = std::pin::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
            () = &mut stop => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => connection(stream, router, limits, stopped).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => connection(stream, router, limits, stopped).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every permit back: every connection ended.
    let all = u32::try_from(limits.connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = limits.grace.as_secs(),
            "connections still open after the grace time were cut"
        );
    }
    Ok(())
}

/// Serves one connection's requests until it closes or the server stops.
async fn connection<S>(
    stream: S,
    router: Router,
    limits: Limits,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stopped.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn metrics_text(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    let text = monitor.metrics.lock().expect("not poisoned").render();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}

async fn healthz(State(monitor): State<Arc<Monitor>>) -> impl IntoResponse {
    let (last_success, last_pass) = {
        let metrics = monitor.metrics.lock().expect("not poisoned");
        (metrics.last_success(), metrics.last_pass())
    };
    let health = health(
        Utc::now(),
        monitor.started,
        monitor.healthy_within,
        last_success,
        last_pass,
    );
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", health.message))
}

/// What `/healthz` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub message: String,
}

/// Healthy while the last successful pass (or, before one, the start) is at most
/// `within` old.
pub fn health(
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    within: Duration,
    last_success: Option<DateTime<Utc>>,
    last_pass: Option<LastPass>,
) -> Health {
    let since = last_success.unwrap_or(started);
    let age = (now - since).to_std().unwrap_or_default();
    let healthy = age <= within;
    let limit = format!("{} s", within.as_secs());
    let mut message = match (healthy, last_success) {
        (true, Some(at)) => format!(
            "ok: the last successful pass ended at {at} ({} s ago; at most {limit})",
            age.as_secs()
        ),
        (true, None) => format!(
            "ok: started at {started}, no pass has succeeded yet (allowed for {limit} after the start)"
        ),
        (false, Some(at)) => format!(
            "unhealthy: the last successful pass ended at {at}, {} s ago (more than {limit})",
            age.as_secs()
        ),
        (false, None) => format!(
            "unhealthy: no pass has succeeded since the start at {started}, {} s ago (more than {limit})",
            age.as_secs()
        ),
    };
    match last_pass {
        Some(last) => message.push_str(&format!(
            "; the last pass ended {} at {}",
            last.outcome, last.finished
        )),
        None => message.push_str("; the first pass is running"),
    }
    Health { healthy, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::runs::PassOutcome;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    #[test]
    fn healthy_while_the_last_success_is_recent_enough() {
        let within = Duration::from_secs(26 * 3600);
        let started = at("2024-03-01T00:00:00Z");
        let first = health(at("2024-03-01T20:00:00Z"), started, within, None, None);
        assert_eq!(
            first,
            Health {
                healthy: true,
                message: "ok: started at 2024-03-01 00:00:00 UTC, no pass has succeeded yet (allowed for 93600 s after the start); the first pass is running".into()
            }
        );
        assert!(!health(at("2024-03-02T02:00:01Z"), started, within, None, None).healthy);

        let success = at("2024-03-01T01:20:00Z");
        let failed = LastPass {
            finished: at("2024-03-02T01:20:00Z"),
            outcome: PassOutcome::Failed,
            seconds: 3.0,
        };
        let one_failure = health(
            at("2024-03-02T03:00:00Z"),
            started,
            within,
            Some(success),
            Some(failed),
        );
        assert_eq!(
            one_failure,
            Health {
                healthy: true,
                message: "ok: the last successful pass ended at 2024-03-01 01:20:00 UTC (92400 s ago; at most 93600 s); the last pass ended failed at 2024-03-02 01:20:00 UTC".into()
            }
        );
        let too_old = health(
            at("2024-03-02T03:20:01Z"),
            started,
            within,
            Some(success),
            Some(failed),
        );
        assert!(!too_old.healthy);
        assert!(
            too_old.message.starts_with(
                "unhealthy: the last successful pass ended at 2024-03-01 01:20:00 UTC, 93601 s ago"
            ),
            "{}",
            too_old.message
        );
    }
}
