//! The HTTP server (axum on hyper 1): `GET /metrics` (Prometheus text format) and
//! `GET /healthz` for the daemon. [`router`] takes more routes, so a status page at `/`
//! or a `serve` command shares the one listener.
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
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
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
