//! The endpoint: `POST /push/{token}`, or `POST /push` with the token in the
//! `X-Push-Token` header (or `Authorization: Bearer`); `GET /healthz` (ready while the
//! destination answers) and `GET /metrics`.
//!
//! A wrong token in the path gets 404 (the URL does not exist for whoever guesses), a
//! missing or wrong header 401; either way nothing is read or stored, and the token is
//! never logged (the request line is not logged at all). The body is read within
//! `serve.body_timeout_secs` and `serve.max_body_bytes` (413 beyond). Then: parsed
//! (err 1 and HTTP 400 if it cannot be, the body kept in quarantine), stored
//! create-only (err 2 and HTTP 503 if the store fails, so the sender tries again), and
//! only then answered with err 0, in the request's own format.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::inbox::{self, Stored};
use super::{App, HEALTH_TIMEOUT, digest, same_digest};
use crate::formats::push_record::{self, Format};
use crate::metrics;

/// How a request ended, the `outcome` label of the request counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Stored,
    Duplicate,
    Unparsable,
    StoreFailed,
    Unauthorized,
    NotFound,
    TooLarge,
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Stored,
        Outcome::Duplicate,
        Outcome::Unparsable,
        Outcome::StoreFailed,
        Outcome::Unauthorized,
        Outcome::NotFound,
        Outcome::TooLarge,
        Outcome::Timeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Unparsable => "unparsable",
            Outcome::StoreFailed => "store_failed",
            Outcome::Unauthorized => "unauthorized",
            Outcome::NotFound => "not_found",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
        }
    }
}

/// The routes of `serve`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/push/{token}", post(push_in_path))
        .route("/push", post(push_in_header))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(app)
}

async fn push_in_path(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !same_digest(&digest(token.as_bytes()), &app.token_digest) {
        return refuse(&app, &headers, StatusCode::NOT_FOUND, Outcome::NotFound);
    }
    receive(&app, &headers, body).await
}

async fn push_in_header(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let given = headers
        .get("x-push-token")
        .map(|v| v.as_bytes())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        });
    match given {
        Some(token) if same_digest(&digest(token), &app.token_digest) => {
            receive(&app, &headers, body).await
        }
        _ => refuse(
            &app,
            &headers,
            StatusCode::UNAUTHORIZED,
            Outcome::Unauthorized,
        ),
    }
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A reply without reading the body: its format from the `Content-Type` alone.
fn refuse(app: &App, headers: &HeaderMap, status: StatusCode, outcome: Outcome) -> Response {
    let format = Format::of(content_type(headers), b"");
    let text = match outcome {
        Outcome::TooLarge => format!(
            "the body is larger than {} bytes",
            app.settings.serve.max_body_bytes
        ),
        Outcome::Timeout => "the body did not arrive in time".into(),
        _ => "unknown endpoint or token".into(),
    };
    answer(app, format, status, outcome, 2, &text)
}

fn answer(
    app: &App,
    format: Format,
    status: StatusCode,
    outcome: Outcome,
    err: u8,
    errdesc: &str,
) -> Response {
    app.metrics
        .lock()
        .expect("not poisoned")
        .request(format, outcome);
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        format.reply(err, errdesc),
    )
        .into_response()
}

enum Read {
    Body(Vec<u8>),
    TooLarge,
    Failed,
}

/// A body found too large while it streams is still read (and dropped) up to this many
/// times the limit, so that the sender, still sending, gets the 413 rather than a
/// broken connection; beyond that the connection is closed.
const DRAINED_LIMITS: usize = 8;

/// The body, up to the size limit.
async fn read_body(body: Body, limit: usize) -> Read {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Read::Failed;
        };
        seen += chunk.len();
        if seen > limit.saturating_mul(DRAINED_LIMITS) {
            return Read::TooLarge;
        }
        if seen <= limit {
            bytes.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        Read::TooLarge
    } else {
        Read::Body(bytes)
    }
}

async fn receive(app: &App, headers: &HeaderMap, body: Body) -> Response {
    let limits = &app.settings.serve;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return refuse(
            app,
            headers,
            StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::TooLarge,
        );
    }
    let body =
        match tokio::time::timeout(limits.body_timeout, read_body(body, limits.max_body_bytes))
            .await
        {
            Ok(Read::Body(body)) => body,
            Ok(Read::TooLarge) => {
                return refuse(
                    app,
                    headers,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Outcome::TooLarge,
                );
            }
            Ok(Read::Failed) | Err(_) => {
                return refuse(app, headers, StatusCode::REQUEST_TIMEOUT, Outcome::Timeout);
            }
        };
    let format = Format::of(content_type(headers), &body);
    let now = Utc::now();
    let record = match push_record::parse(format, &body) {
        Ok(record) => record,
        Err(reason) => {
            return match inbox::quarantine(&app.store, format, &body, &reason, now).await {
                Ok(key) => {
                    tracing::warn!(format = format.name(), %reason, quarantine = %key, "a pushed body that does not parse was set aside");
                    answer(
                        app,
                        format,
                        StatusCode::BAD_REQUEST,
                        Outcome::Unparsable,
                        1,
                        &format!("parse error: {reason}"),
                    )
                }
                Err(e) => {
                    tracing::error!(format = format.name(), error = %e, "cannot keep a body that does not parse; the sender is asked to send it again");
                    store_failed(app, format)
                }
            };
        }
    };
    let (id, kind) = (record.ivruniqueid.clone(), record.r#type.clone());
    match inbox::store(&app.store, record, now).await {
        Ok(stored) => {
            let outcome = match stored {
                Stored::New => Outcome::Stored,
                Stored::Duplicate => Outcome::Duplicate,
            };
            tracing::debug!(format = format.name(), ivruniqueid = %id, r#type = %kind, outcome = outcome.name(), "pushed record");
            answer(app, format, StatusCode::OK, outcome, 0, "OK")
        }
        Err(e) => {
            tracing::error!(format = format.name(), ivruniqueid = %id, r#type = %kind, error = %e, "cannot store a pushed record; the sender is asked to send it again");
            store_failed(app, format)
        }
    }
}

fn store_failed(app: &App, format: Format) -> Response {
    answer(
        app,
        format,
        StatusCode::SERVICE_UNAVAILABLE,
        Outcome::StoreFailed,
        2,
        "application error: the record could not be stored; send it again later",
    )
}

/// 200 while the destination answers a read (a missing object is an answer).
async fn healthz(State(app): State<Arc<App>>) -> Response {
    let probe = object_store::path::Path::from("_state/probe/healthz");
    let answered = tokio::time::timeout(HEALTH_TIMEOUT, app.store.head(&probe)).await;
    match answered {
        Ok(Ok(_) | Err(object_store::Error::NotFound { .. })) => {
            (StatusCode::OK, "ok: the destination answers\n").into_response()
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: the destination does not answer: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: the destination did not answer within {} s\n",
                HEALTH_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
    }
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.lock().expect("not poisoned").render();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
