//! `cdr-ingest serve`: call records the provider pushes over HTTP (PROVIDER.md §2),
//! acknowledged only once stored in the destination, stored once however often they
//! are sent, and compacted into typed Parquet by date.
//!
//! ```text
//! receive.rs  POST /push/{token} (or the token in X-Push-Token): check the token,
//!             read the body within its limits, parse it, store it, reply in its format
//! inbox.rs    each accepted record as one create-only object under _state/push/inbox/
//! compact.rs  the inbox into push_cdr/ and push_cdr_ivr/ by call date, under a lease
//! recordings.rs  with serve.fetch_recordings: each record's recording into recordings/
//! ```
//!
//! One process serves the endpoint and, every `serve.flush_secs`, compacts; any number
//! of replicas can run on one destination (the store decides which put is first; the
//! lease decides which replica compacts). Killed at any moment, a replica loses nothing
//! it acknowledged: the reply is sent after the inbox put returns, and an inbox object
//! is deleted only after a committed Parquet file holds its record.

pub mod compact;
pub mod inbox;
pub mod receive;
pub mod recordings;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::feeds::{self, Unit};
use crate::metrics::serve::ServeMetrics;
use crate::retention::Target;
use crate::shutdown::Shutdown;
use crate::state::json::{FORMAT_VERSION, JsonStore, StateError};
use crate::state::lease::Leases;

/// The dataset of pushed records, one row per record.
pub const DATASET: &str = "push_cdr";
/// Their IVR layers, one row per layer.
pub const IVR_DATASET: &str = "push_cdr_ivr";

/// What the compaction remembers between flushes, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    pub format_version: u32,
    /// When the newest record compacted so far was received.
    pub last_received: DateTime<Utc>,
}

fn compacted_key() -> object_store::path::Path {
    object_store::path::Path::from("_state/push/compacted.json")
}

/// What is received and not yet compacted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    pub records: u64,
    pub oldest: Option<DateTime<Utc>>,
    /// The last record received, compacted or not.
    pub last_received: Option<DateTime<Utc>>,
    /// How old the oldest record not compacted is, in seconds.
    pub lag_seconds: f64,
}

impl fmt::Display for Backlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last_received {
            Some(at) => write!(f, "the last record was received at {at}")?,
            None => write!(f, "no record received yet")?,
        }
        match self.oldest {
            Some(oldest) => write!(
                f,
                "; {} not yet compacted (the oldest received at {oldest})",
                self.records
            ),
            None => write!(f, "; every record received is compacted"),
        }
    }
}

/// The inbox's size and age, and the last record received.
pub async fn backlog(
    store: &Arc<dyn ObjectStore>,
    now: DateTime<Utc>,
) -> Result<Backlog, object_store::Error> {
    let listed = inbox::list(store).await?;
    let oldest = listed.iter().map(|m| m.last_modified).min();
    let newest = listed.iter().map(|m| m.last_modified).max();
    let compacted: Option<Compacted> = JsonStore::new(Arc::clone(store))
        .get(&compacted_key())
        .await
        .ok()
        .flatten();
    Ok(Backlog {
        records: listed.len() as u64,
        oldest,
        last_received: newest.max(compacted.map(|c| c.last_received)),
        lag_seconds: oldest.map_or(0.0, |o| (now - o).num_milliseconds().max(0) as f64 / 1e3),
    })
}

/// Remembers the newest record a flush compacted.
async fn remember(store: &Arc<dyn ObjectStore>, received: DateTime<Utc>) -> Result<(), StateError> {
    let json = JsonStore::new(Arc::clone(store));
    let previous: Option<Compacted> = json.get(&compacted_key()).await?;
    if previous
        .as_ref()
        .is_some_and(|p| p.last_received >= received)
    {
        return Ok(());
    }
    json.put(
        &compacted_key(),
        &Compacted {
            format_version: FORMAT_VERSION,
            last_received: received,
        },
    )
    .await
}

/// What the endpoint and the compaction share.
pub struct App {
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub metrics: Mutex<ServeMetrics>,
    /// The SHA-256 of the token, compared in constant time.
    pub token_digest: [u8; 32],
    /// Downloads the recordings, with `serve.fetch_recordings`.
    pub fetcher: Option<recordings::Fetcher>,
}

impl App {
    pub fn new(
        settings: Settings,
        store: Arc<dyn ObjectStore>,
        token: &str,
        fetcher: Option<recordings::Fetcher>,
    ) -> Arc<App> {
        Arc::new(App {
            store,
            fetcher,
            token_digest: digest(token.as_bytes()),
            metrics: Mutex::new(Default::default()),
            settings,
        })
    }
}

/// Serves the endpoint on `listener` and compacts every `serve.flush_secs` until
/// `shutdown`; then the requests in flight are answered, and the inbox compacted once
/// more.
pub async fn run(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let limits = crate::http::Limits {
        connections: app.settings.serve.max_connections,
        header_timeout: app.settings.serve.header_timeout,
        grace: app.settings.ingest.shutdown_grace,
    };
    let compaction = tokio::spawn(compact_loop(Arc::clone(&app), shutdown.clone()));
    let stop = async move { shutdown.requested().await };
    crate::http::serve_with(listener, receive::router(app), limits, tls, stop).await?;
    compaction.await?;
    Ok(())
}

/// The pushed feed of the registry, whose retention limit applies.
fn feed() -> Option<&'static feeds::Feed> {
    feeds::FEEDS
        .iter()
        .copied()
        .find(|f| matches!(f.unit, Unit::Pushed(_)))
}

/// One flush, its outcome added to the metrics; `first` (a replica's first flush)
/// also rebuilds the calls of every date still marked (`compact::CallsCatchUp`).
pub async fn flush_once(
    app: &App,
    leases: &Leases,
    first: bool,
) -> Result<compact::Flushed, String> {
    let now = Utc::now();
    let oldest_kept = feed().and_then(|f| {
        app.settings
            .retention
            .keep(Target::Data(f.category))
            .oldest_kept(now.date_naive())
    });
    let calls = compact::CallsCatchUp {
        account: crate::calls::account(&app.settings),
        every_mark: first,
    };
    let flushed = compact::flush(
        &app.store,
        leases,
        now,
        oldest_kept,
        app.fetcher.as_ref(),
        calls,
    )
    .await;
    let backlog = backlog(&app.store, Utc::now()).await;
    {
        let mut metrics = app.metrics.lock().expect("not poisoned");
        if let Ok(backlog) = &backlog {
            metrics.backlog(backlog);
        }
        match &flushed {
            Ok(flushed) => metrics.flushed(flushed, now),
            Err(_) => metrics.flush_failed(),
        }
    }
    let flushed = flushed.map_err(|e| e.to_string())?;
    if let Some(received) = flushed.last_received
        && let Err(e) = remember(&app.store, received).await
    {
        tracing::warn!(error = %e, "could not record the last record compacted");
    }
    Ok(flushed)
}

/// Compacts every `flush` until `shutdown`, then once more.
pub async fn compact_loop(app: Arc<App>, shutdown: Shutdown) {
    // A replica killed while compacting holds the lease until it expires (on another
    // machine; on this one it is taken over at once): a short one keeps records from
    // waiting long, and a flush takes far less.
    let leases = Leases::new(
        Arc::clone(&app.store),
        crate::state::lease::holder_name(),
        app.settings.ingest.lease.min(COMPACTION_LEASE),
    );
    let every = app.settings.serve.flush;
    let mut first = true;
    loop {
        let flushed = flush_once(&app, &leases, first).await;
        first &= !matches!(&flushed, Ok(f) if !f.busy);
        match flushed {
            Ok(flushed) if flushed.busy => {
                tracing::debug!("another replica is compacting");
            }
            Ok(flushed) => {
                let written: u64 = flushed.written.values().sum();
                if written + flushed.duplicates + flushed.expired > 0 {
                    tracing::info!(
                        written,
                        duplicates = flushed.duplicates,
                        expired = flushed.expired,
                        left = flushed.left,
                        "flushed the pushed records"
                    );
                }
                if flushed.left > 0 {
                    continue;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "compaction failed; the records stay in the inbox for the next flush")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.requested() => {
                if let Err(e) = flush_once(&app, &leases, false).await {
                    tracing::error!(error = %e, "the last compaction failed; the records stay in the inbox");
                }
                return;
            }
        }
    }
}

/// The digest the token is compared by.
pub fn digest(token: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Equal digests, compared without stopping at the first difference.
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The longest a compaction's lease lasts (`ingest.lease_secs` if shorter).
const COMPACTION_LEASE: Duration = Duration::from_secs(600);

/// How long `/healthz` waits for the destination.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
