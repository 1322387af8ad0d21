//! Leases on units of work (one category of one day), so that two workers on the same
//! destination (an overrunning cron job, two replicas, N pods of one Job) never ingest
//! the same unit at once. A lease is taken with a create-only put, which the store
//! makes atomic; it expires, so a crashed holder blocks nobody for longer than
//! `ingest.lease_secs`.
//!
//! # Heartbeat and fencing
//!
//! A held lease ([`HeldLease`]) is renewed in the background every third of its
//! period, so a short lease is safe for work that takes longer. The holder counts it as
//! its own only until five sixths of a period after the last renewal it sent (the last
//! sixth is the margin for clocks that differ between machines); past that, or when a
//! renewal finds another record in its place, the lease is *lost*: [`HeldLease::lost`]
//! resolves, the work under it is dropped before it commits (callers race their work
//! against it and check [`HeldLease::confirm`] right before their commit point), and
//! `release` leaves the object alone, since it may be someone else's by then. So a taker
//! only ever takes over a lease whose holder has already stopped, or stops before its
//! next commit.
//!
//! # Takeover, renewal and release on stores without conditional updates
//!
//! Taking over an expired (or dead process's) lease must also leave exactly one holder.
//! Where the store has conditional updates the new record replaces the old one only
//! if the object is still the version that was read. Local disk has none (nor does S3
//! as configured here), and delete then create is not enough: a taker that read the old
//! record can delete another taker's fresh lease. There a takeover first creates,
//! create-only, a marker `<lease>.takeover-<hash of the old record's bytes>-<generation>`;
//! only the one taker whose marker create succeeds re-reads the lease and, if it still
//! holds exactly those bytes, deletes and recreates it; the others are busy. Every
//! record carries a unique token, so its bytes are never written again once replaced:
//! that makes removing the marker right after the replacement safe, since a late taker
//! that then creates the same marker re-reads a different lease and backs off. A marker
//! is itself a lease record of its taker: if that taker crashed before removing it (or
//! overran its lease), the next generation is taken the same way, so a crash blocks
//! nobody for longer than a lease either. The holder's own renewal and release go
//! through the same marker (generation 0 of its current record), so they exclude any
//! takeover of that record: a renewal overwrites the record in one put (never absent in
//! between), a release deletes it only if it still holds the holder's token. A marker
//! whose taker crashed after replacing the lease stays behind as a small orphan object.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, PutResult, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_128;

use super::json::{FORMAT_VERSION, StateError};
use crate::model::Category;
use crate::sink::{layout, retry};

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    format_version: u32,
    holder: String,
    expires_at: DateTime<Utc>,
    /// Makes every lease object's bytes unique, so that a takeover marker (named after
    /// a hash of those bytes) stands for exactly one lease ever written.
    #[serde(default)]
    token: String,
}

/// How many takeover markers for one lease may be found abandoned (their taker crashed
/// or overran its own lease) before a taker gives up for this pass.
const MARKER_GENERATIONS: u32 = 8;

/// The answer to a request for a lease.
#[derive(Debug)]
pub enum Lease {
    /// Ours, renewed in the background until released (or lost).
    Held(HeldLease),
    /// Another worker has it.
    Busy {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// The wall clock leases are written by: the real one, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Takes and releases leases in the destination under `_state/leases/`.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn ObjectStore>,
    /// Who we are, in the lease objects and in messages.
    holder: String,
    duration: Duration,
    clock: Clock,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("holder", &self.holder)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl Leases {
    pub fn new(store: Arc<dyn ObjectStore>, holder: String, duration: Duration) -> Self {
        Leases {
            store,
            holder,
            duration,
            clock: Arc::new(Utc::now),
        }
    }

    /// The same leases, their records written by `clock` (a test's mock clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How long a lease lasts unless renewed.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes the lease of `category` on `day`, or says who holds it.
    pub async fn acquire(
        &self,
        category: Category,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Lease, StateError> {
        self.acquire_key(layout::unit_lease(category, day), now)
            .await
    }

    /// Takes the lease at `key`, or says who holds it. A lease taken is renewed in the
    /// background from now on.
    pub async fn acquire_key(&self, key: Path, now: DateTime<Utc>) -> Result<Lease, StateError> {
        let sent = Instant::now();
        let (payload, bytes) = self.record(now);
        match self.create(&key, &payload).await {
            Ok(put) => return Ok(self.held(key, bytes, &put, sent)),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(source) => {
                return Err(StateError::Write {
                    key: key.to_string(),
                    source,
                });
            }
        }
        let current = match self.store.get(&key).await {
            Ok(current) => current,
            // Released in between: try once more from the start.
            Err(object_store::Error::NotFound { .. }) => {
                return match self.create(&key, &payload).await {
                    Ok(put) => Ok(self.held(key, bytes, &put, sent)),
                    Err(_) => Ok(Lease::Busy {
                        holder: "another worker".into(),
                        expires_at: now,
                    }),
                };
            }
            Err(source) => {
                return Err(StateError::Read {
                    key: key.to_string(),
                    source,
                });
            }
        };
        let version = UpdateVersion {
            e_tag: current.meta.e_tag.clone(),
            version: current.meta.version.clone(),
        };
        let old = current.bytes().await.map_err(|source| StateError::Read {
            key: key.to_string(),
            source,
        })?;
        let record: Option<LeaseRecord> = serde_json::from_slice(&old).ok();
        if let Some(record) = &record
            && record.expires_at > now
            && !self.left_by_a_dead_process(&record.holder)
        {
            return Ok(Lease::Busy {
                holder: record.holder.clone(),
                expires_at: record.expires_at,
            });
        }
        // Expired (or unreadable): take it over, but only if nobody else did first.
        tracing::warn!(lease = %key, holder = record.as_ref().map_or("unknown", |r| r.holder.as_str()), "taking over an expired lease");
        let taken = match self
            .store
            .put_opts(&key, payload.clone(), PutMode::Update(version).into())
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) => {
                return self
                    .take_over_by_marker(key, &old, payload, bytes, now, sent)
                    .await;
            }
            other => other,
        };
        match taken {
            Ok(put) => Ok(self.held(key, bytes, &put, sent)),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Lease::Busy {
                holder: "another worker".into(),
                expires_at: now,
            }),
            Err(source) => Err(StateError::Write {
                key: key.to_string(),
                source,
            }),
        }
    }

    /// Takes over the lease at `key`, whose object held `old` when it was found
    /// expired, on a store without conditional updates: only the worker whose
    /// create-only put of a takeover marker for `old` succeeds may replace it (the
    /// module docs say why this is sound).
    async fn take_over_by_marker(
        &self,
        key: Path,
        old: &[u8],
        payload: PutPayload,
        bytes: Bytes,
        now: DateTime<Utc>,
        sent: Instant,
    ) -> Result<Lease, StateError> {
        for generation in 0..MARKER_GENERATIONS {
            let taken = marker(&key, old, generation);
            match self.create(&taken, &self.record(now).0).await {
                Ok(_) => {
                    let lease = self.replace(&key, old, &payload).await;
                    for generation in 0..=generation {
                        let _ = self.store.delete(&marker(&key, old, generation)).await;
                    }
                    return Ok(match lease? {
                        Some(put) => self.held(key, bytes, &put, sent),
                        None => Lease::Busy {
                            holder: "another worker".into(),
                            expires_at: now,
                        },
                    });
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(source) => {
                    return Err(StateError::Write {
                        key: taken.to_string(),
                        source,
                    });
                }
            }
            // Another taker's marker: wait for it unless its taker is gone.
            let other = match self.store.get(&taken).await {
                Ok(current) => current.bytes().await.ok(),
                // Removed: that taker is done, the lease is no longer `old`.
                Err(object_store::Error::NotFound { .. }) => None,
                Err(source) => {
                    return Err(StateError::Read {
                        key: taken.to_string(),
                        source,
                    });
                }
            };
            let Some(other) = other else {
                break;
            };
            if let Ok(record) = serde_json::from_slice::<LeaseRecord>(&other)
                && record.expires_at > now
                && !self.left_by_a_dead_process(&record.holder)
            {
                return Ok(Lease::Busy {
                    holder: record.holder,
                    expires_at: record.expires_at,
                });
            }
        }
        Ok(Lease::Busy {
            holder: "another worker".into(),
            expires_at: now,
        })
    }

    /// Replaces the lease at `key` with `payload` if it still holds `old` (`None`
    /// if it does not); the caller holds the takeover marker for `old`, so nobody else
    /// replaces it meanwhile.
    async fn replace(
        &self,
        key: &Path,
        old: &[u8],
        payload: &PutPayload,
    ) -> Result<Option<PutResult>, StateError> {
        match self.store.get(key).await {
            Ok(current) => {
                let bytes = current.bytes().await.map_err(|source| StateError::Read {
                    key: key.to_string(),
                    source,
                })?;
                if bytes.as_ref() != old {
                    return Ok(None);
                }
                if let Err(source) = self.store.delete(key).await
                    && !matches!(source, object_store::Error::NotFound { .. })
                {
                    return Err(StateError::Write {
                        key: key.to_string(),
                        source,
                    });
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(StateError::Read {
                    key: key.to_string(),
                    source,
                });
            }
        }
        match self.create(key, payload).await {
            Ok(put) => Ok(Some(put)),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(source) => Err(StateError::Write {
                key: key.to_string(),
                source,
            }),
        }
    }

    /// A create-only put, tried again when the store fails for a reason that may pass:
    /// on a local disk another worker's release can remove the emptied folder between
    /// this put creating it and writing into it.
    async fn create(&self, key: &Path, payload: &PutPayload) -> object_store::Result<PutResult> {
        retry::with_backoff("create", retry::is_transient, || {
            self.store
                .put_opts(key, payload.clone(), PutMode::Create.into())
        })
        .await
    }

    /// The guard of a lease just written as `bytes` (`put` says which version), its
    /// heartbeat started; `sent` is when the write was sent, which its validity counts
    /// from.
    fn held(&self, key: Path, bytes: Bytes, put: &PutResult, sent: Instant) -> Lease {
        let (lost, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            leases: self.clone(),
            key,
            written: Mutex::new(Written {
                bytes,
                version: version_of(put),
                valid_until: sent + validity(self.duration),
            }),
            lost,
            released: AtomicBool::new(false),
        });
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&inner)));
        Lease::Held(HeldLease {
            inner,
            heartbeat: heartbeat.abort_handle(),
        })
    }

    /// Whether `holder` was a process on this machine that is gone (it crashed): its
    /// lease need not be waited out. A holder with our own pid but another start time
    /// is an earlier life of this process's slot, e.g. a restarted container's PID 1.
    fn left_by_a_dead_process(&self, holder: &str) -> bool {
        let parse = |name: &str| -> Option<(String, u32)> {
            let mut parts = name.splitn(3, '/');
            let host = parts.next()?.to_string();
            let pid = parts.next()?.strip_prefix("pid-")?.parse().ok()?;
            Some((host, pid))
        };
        let (Some((host, pid)), Some((our_host, our_pid))) = (parse(holder), parse(&self.holder))
        else {
            return false;
        };
        host == our_host && holder != self.holder && (pid == our_pid || !alive(pid))
    }

    /// A new record of ours, expiring a lease period after `now`, and its bytes.
    fn record(&self, now: DateTime<Utc>) -> (PutPayload, Bytes) {
        let expires_at = now + chrono::Duration::from_std(self.duration).unwrap_or_default();
        let record = LeaseRecord {
            format_version: FORMAT_VERSION,
            holder: self.holder.clone(),
            expires_at,
            token: unique_token(),
        };
        let bytes = Bytes::from(serde_json::to_vec(&record).expect("a lease serializes"));
        (PutPayload::from(bytes.clone()), bytes)
    }
}

/// The takeover marker of generation `generation` for the lease at `key` while it
/// holds `record`.
fn marker(key: &Path, record: &[u8], generation: u32) -> Path {
    Path::from(format!(
        "{key}.takeover-{:032x}-{generation}",
        xxh3_128(record)
    ))
}

fn version_of(put: &PutResult) -> UpdateVersion {
    UpdateVersion {
        e_tag: put.e_tag.clone(),
        version: put.version.clone(),
    }
}

/// How long after a renewal was sent the holder counts the lease as its own: five
/// sixths of the period, the rest being the margin for clocks that differ.
fn validity(duration: Duration) -> Duration {
    duration * 5 / 6
}

/// How often a held lease is renewed: three times a period, so one failed renewal
/// still leaves time for the next.
fn renewal_interval(duration: Duration) -> Duration {
    duration / 3
}

/// A lease this worker holds. Dropping it (the work was abandoned) stops its heartbeat
/// and gives it back in the background.
#[derive(Debug)]
pub struct HeldLease {
    inner: Arc<Inner>,
    heartbeat: tokio::task::AbortHandle,
}

#[derive(Debug)]
struct Inner {
    leases: Leases,
    key: Path,
    written: Mutex<Written>,
    /// Turns true, once, when the lease is lost.
    lost: watch::Sender<bool>,
    released: AtomicBool,
}

/// The record this holder last wrote.
#[derive(Debug, Clone)]
struct Written {
    bytes: Bytes,
    version: UpdateVersion,
    /// Until when it is ours for sure.
    valid_until: Instant,
}

impl HeldLease {
    /// The lease object's key.
    pub fn key(&self) -> &Path {
        &self.inner.key
    }

    /// Whether the lease is still ours for sure: not lost, and renewed recently enough.
    pub fn is_valid(&self) -> bool {
        self.inner.is_valid()
    }

    /// Resolves when the lease is lost (taken over, or not renewed in time).
    pub async fn lost(&self) {
        let mut lost = self.inner.lost.subscribe();
        // The heartbeat says when it is lost, and the validity running out (checked
        // here too, so this does not depend on the heartbeat being scheduled in time).
        while self.inner.is_valid() {
            let valid_until = self.inner.written().valid_until;
            tokio::select! {
                _ = lost.changed() => {}
                () = tokio::time::sleep_until(valid_until) => {}
            }
        }
    }

    /// Fencing before a commit: the lease is still valid and its object still holds
    /// this holder's record (token), else [`StateError::LeaseLost`].
    pub async fn confirm(&self) -> Result<(), StateError> {
        let written = self.inner.written();
        let ours = self.is_valid()
            && match self.inner.leases.store.get(&self.inner.key).await {
                Ok(current) => current.bytes().await.is_ok_and(|b| b == written.bytes),
                Err(object_store::Error::NotFound { .. }) => false,
                Err(source) => {
                    return Err(StateError::Read {
                        key: self.inner.key.to_string(),
                        source,
                    });
                }
            };
        if ours {
            Ok(())
        } else {
            self.inner
                .lose("its object no longer holds this worker's record");
            Err(self.inner.lost_error())
        }
    }

    /// Stops renewing the lease without giving it back, as a crash would.
    #[cfg(test)]
    pub fn abandon(self) {
        self.heartbeat.abort();
        self.inner.released.store(true, Ordering::SeqCst);
    }

    /// Gives the lease back, unless it was lost (then it may be someone else's now).
    pub async fn release(&self) {
        self.heartbeat.abort();
        self.inner.release().await;
    }
}

/// Resolves when any lease in `held` is lost (never, if there are none), with that
/// lease's error.
pub async fn first_lost(held: &[HeldLease]) -> StateError {
    if held.is_empty() {
        return std::future::pending().await;
    }
    let (lost, _, _) = futures::future::select_all(held.iter().map(|lease| {
        Box::pin(async {
            lease.lost().await;
            lease.inner.lost_error()
        })
    }))
    .await;
    lost
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if !self.inner.released.load(Ordering::SeqCst)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let inner = Arc::clone(&self.inner);
            runtime.spawn(async move { inner.release().await });
        }
    }
}

impl Inner {
    fn written(&self) -> Written {
        self.written.lock().expect("not poisoned").clone()
    }

    fn is_valid(&self) -> bool {
        !*self.lost.borrow() && Instant::now() < self.written().valid_until
    }

    fn lose(&self, why: &str) {
        if !self.lost.send_replace(true) {
            tracing::warn!(lease = %self.key, why, "lease lost: the work under it stops before it commits");
        }
    }

    fn lost_error(&self) -> StateError {
        StateError::LeaseLost {
            key: self.key.to_string(),
        }
    }

    /// Writes a new record of ours in place of the one last written, if it is still
    /// there: `Ok(false)` if another is (the lease was taken over).
    async fn renew(&self) -> Result<bool, StateError> {
        let leases = &self.leases;
        let sent = Instant::now();
        let old = self.written();
        let (payload, bytes) = leases.record((leases.clock)());
        let write_error = |source| StateError::Write {
            key: self.key.to_string(),
            source,
        };
        let put = match leases
            .store
            .put_opts(
                &self.key,
                payload.clone(),
                PutMode::Update(old.version).into(),
            )
            .await
        {
            Ok(put) => put,
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::NotFound { .. },
            ) => return Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => {
                match self
                    .exclusively(&old.bytes, || async {
                        leases
                            .store
                            .put_opts(&self.key, payload.clone(), PutMode::Overwrite.into())
                            .await
                    })
                    .await?
                {
                    Some(put) => put.map_err(write_error)?,
                    None => return Ok(false),
                }
            }
            Err(source) => return Err(write_error(source)),
        };
        *self.written.lock().expect("not poisoned") = Written {
            bytes,
            version: version_of(&put),
            valid_until: sent + validity(leases.duration),
        };
        Ok(true)
    }

    /// Runs `change` on the lease while it holds `ours`, with no takeover of that
    /// record possible meanwhile (its generation-0 marker held): `None` if it does not
    /// hold `ours`, or a taker has that marker.
    async fn exclusively<T, F: std::future::Future<Output = T>>(
        &self,
        ours: &[u8],
        change: impl FnOnce() -> F,
    ) -> Result<Option<T>, StateError> {
        let leases = &self.leases;
        let marker = marker(&self.key, ours, 0);
        match leases
            .create(&marker, &leases.record((leases.clock)()).0)
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(None),
            Err(source) => {
                return Err(StateError::Write {
                    key: marker.to_string(),
                    source,
                });
            }
        }
        let still_ours = match leases.store.get(&self.key).await {
            Ok(current) => current.bytes().await.is_ok_and(|b| b == ours),
            Err(_) => false,
        };
        let changed = if still_ours {
            Some(change().await)
        } else {
            None
        };
        let _ = leases.store.delete(&marker).await;
        Ok(changed)
    }

    async fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) || !self.is_valid() {
            return;
        }
        let written = self.written();
        let deleted = self
            .exclusively(&written.bytes, || async {
                self.leases.store.delete(&self.key).await
            })
            .await;
        let error = match deleted {
            Ok(Some(Ok(())) | None) => return,
            Ok(Some(Err(e))) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(lease = %self.key, error, "could not release a lease; it expires on its own");
    }
}

/// Renews a held lease every [`renewal_interval`] until it is released or lost; a
/// renewal that fails for another reason is tried again sooner, while the lease is
/// still valid.
async fn heartbeat(inner: Arc<Inner>) {
    let every = renewal_interval(inner.leases.duration);
    let mut next = Instant::now() + every;
    loop {
        let valid_until = inner.written().valid_until;
        tokio::time::sleep_until(next.min(valid_until)).await;
        if Instant::now() >= valid_until {
            inner.lose("it could not be renewed in time");
            return;
        }
        match tokio::time::timeout_at(valid_until, inner.renew()).await {
            Ok(Ok(true)) => next = Instant::now() + every,
            Ok(Ok(false)) => {
                inner.lose("another worker took it over");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %inner.key, error = %e, "could not renew a lease; trying again");
                next = Instant::now() + every / 4;
            }
            Err(_) => {
                inner.lose("its renewal did not finish in time");
                return;
            }
        }
    }
}

/// Whether process `pid` on this machine still runs. A zombie (ended, not yet reaped
/// by its parent) does not: it holds nothing any more. Where `/proc` cannot tell, it
/// is taken to run, so its leases are waited out.
fn alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (command) state …`: the command may hold spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A token no other lease record has: this process's start, a count of the records it
/// wrote and the clock, hashed.
fn unique_token() -> String {
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}/{}/{nanos}",
        std::process::id(),
        WRITTEN.fetch_add(1, Ordering::Relaxed)
    );
    format!("{:032x}", xxh3_128(seed.as_bytes()))
}

/// A name for this worker: host, process and start time, unique enough to tell two
/// workers apart in a lease.
pub fn holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}/pid-{}/{started:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::feeds::{cdr, queue};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_expires_or_is_released() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let a = Leases::new(Arc::clone(&store), "a".into(), Duration::from_secs(60));
        let b = Leases::new(Arc::clone(&store), "b".into(), Duration::from_secs(60));
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let held = |lease: Lease| match lease {
            Lease::Held(held) => held,
            busy => panic!("not held: {busy:?}"),
        };
        let by_a = held(a.acquire(cdr::CATEGORY, day, at(1000)).await.unwrap());
        match b.acquire(cdr::CATEGORY, day, at(1030)).await.unwrap() {
            Lease::Busy { holder, .. } => assert_eq!(holder, "a"),
            held => panic!("b must not get it: {held:?}"),
        }
        let other = held(b.acquire(queue::CATEGORY, day, at(1030)).await.unwrap());
        other.release().await;
        // a stalled past its lease: b takes over, and a late release by a leaves b's
        // lease alone (its token is not a's).
        let by_b = held(b.acquire(cdr::CATEGORY, day, at(1061)).await.unwrap());
        by_a.release().await;
        assert!(matches!(
            a.acquire(cdr::CATEGORY, day, at(1062)).await.unwrap(),
            Lease::Busy { .. }
        ));
        by_b.release().await;
        let again = held(a.acquire(cdr::CATEGORY, day, at(1063)).await.unwrap());
        again.release().await;
    }

    /// Holders on two machines whose clock is tokio's (paused in these tests: time
    /// only moves when every task waits, so heartbeats run exactly on schedule).
    fn mock_clocked(store: &Arc<dyn ObjectStore>, name: &str, period: Duration) -> Leases {
        let start = Instant::now();
        let clock: Clock =
            Arc::new(move || at(1_000_000) + chrono::Duration::from_std(start.elapsed()).unwrap());
        Leases::new(Arc::clone(store), format!("{name}/pid-1/x"), period).with_clock(clock)
    }

    /// A minute's lease at `key` held by a (on host-a), and b (on host-b) wanting it.
    async fn held_by_a_wanted_by_b() -> (Arc<dyn ObjectStore>, HeldLease, Leases, Path) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let minute = Duration::from_secs(60);
        let a = mock_clocked(&store, "host-a", minute);
        let b = mock_clocked(&store, "host-b", minute);
        let key = Path::from("_state/leases/cdr/2024-03-01.json");
        let Lease::Held(held) = a.acquire_key(key.clone(), (a.clock)()).await.unwrap() else {
            panic!("free")
        };
        (store, held, b, key)
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_lease_is_kept_by_its_heartbeat_and_taken_over_within_a_period_of_a_crash() {
        let (_store, held, b, key) = held_by_a_wanted_by_b().await;
        let minute = b.duration();
        // Ten lease periods of work: renewed all along, never free to take.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let busy = b.acquire_key(key.clone(), (b.clock)()).await.unwrap();
            assert!(matches!(busy, Lease::Busy { .. }), "{busy:?}");
            assert!(held.is_valid());
        }
        held.confirm().await.unwrap();
        // Killed: nobody renews it, and within one period it is someone else's.
        held.abandon();
        tokio::time::sleep(minute).await;
        let Lease::Held(taken) = b.acquire_key(key.clone(), (b.clock)()).await.unwrap() else {
            panic!("a lease period after the crash it is free")
        };
        taken.release().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_whose_lease_was_taken_over_stops_before_committing_and_leaves_it_alone() {
        let (store, held, b, key) = held_by_a_wanted_by_b().await;
        let minute = b.duration();
        // b finds it expired (a stalled, or the clocks differ by more than the margin)
        // and takes it over between two of a's renewals.
        let Lease::Held(taken) = b
            .acquire_key(key.clone(), (b.clock)() + chrono::Duration::minutes(2))
            .await
            .unwrap()
        else {
            panic!("expired by b's clock")
        };
        let b_record = store.get(&key).await.unwrap().bytes().await.unwrap();
        // Before a's next renewal notices, the commit's check does.
        assert!(matches!(
            held.confirm().await,
            Err(StateError::LeaseLost { .. })
        ));
        assert!(!held.is_valid());
        held.lost().await;
        held.release().await;
        let now = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(now, b_record, "a's release leaves b's lease alone");
        assert!(taken.is_valid());

        // And the heartbeat notices on its own: c's lease replaced behind its back.
        let c = mock_clocked(&store, "host-c", minute);
        let other = Path::from("_state/leases/cdr/2024-03-02.json");
        let Lease::Held(held) = c.acquire_key(other.clone(), (c.clock)()).await.unwrap() else {
            panic!("free")
        };
        store
            .put(&other, PutPayload::from(b.record((b.clock)()).1))
            .await
            .unwrap();
        let work = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "committed"
        };
        let outcome = tokio::select! {
            done = work => done,
            () = held.lost() => "stopped",
        };
        assert_eq!(
            outcome, "stopped",
            "the work under a lost lease does not go on"
        );
        assert!(matches!(
            first_lost(std::slice::from_ref(&held)).await,
            StateError::LeaseLost { .. }
        ));
    }

    /// Regression: on a local disk, a release that emptied the lease folder removed it
    /// while another worker's put was creating its lease there, which failed the unit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_taken_and_released_at_once_in_one_local_folder_never_fail() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir.path())
                .unwrap()
                .with_automatic_cleanup(true),
        );
        let workers = (0..4).map(|worker| {
            let leases = Leases::new(
                Arc::clone(&store),
                format!("w{worker}"),
                Duration::from_secs(60),
            );
            tokio::spawn(async move {
                for round in 0..1000 {
                    let key = Path::from(format!(
                        "_state/leases/partitions/cdr/{worker}-{round}.json"
                    ));
                    match leases.acquire_key(key, at(1000)).await.unwrap() {
                        Lease::Held(held) => held.release().await,
                        busy => panic!("nobody else takes this key: {busy:?}"),
                    }
                }
            })
        });
        for worker in workers.collect::<Vec<_>>() {
            worker.await.unwrap();
        }
    }

    #[test]
    fn a_process_that_ended_but_was_not_reaped_is_not_alive() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie until `wait`; poll until it has ended.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(std::time::Instant::now() < deadline, "`true` did not end");
            std::thread::yield_now();
        }
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[tokio::test]
    async fn a_lease_left_by_a_crashed_process_on_this_machine_is_taken_over() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let hour = Duration::from_secs(3600);
        let crashed = Leases::new(Arc::clone(&store), "host-a/pid-999999999/1".into(), hour);
        let alive = Leases::new(
            Arc::clone(&store),
            format!("host-a/pid-{}/2", std::process::id()),
            hour,
        );
        let elsewhere = Leases::new(Arc::clone(&store), "host-b/pid-1/3".into(), hour);
        match crashed.acquire(cdr::CATEGORY, day, at(1000)).await.unwrap() {
            Lease::Held(held) => held.abandon(),
            busy => panic!("free: {busy:?}"),
        }
        let busy = elsewhere
            .acquire(cdr::CATEGORY, day, at(1001))
            .await
            .unwrap();
        assert!(
            matches!(busy, Lease::Busy { .. }),
            "another machine cannot tell: it waits"
        );
        let taken = alive.acquire(cdr::CATEGORY, day, at(1002)).await.unwrap();
        assert!(matches!(taken, Lease::Held(_)), "pid 999999999 is gone");
        let busy = elsewhere
            .acquire(cdr::CATEGORY, day, at(1003))
            .await
            .unwrap();
        assert!(matches!(busy, Lease::Busy { .. }));
    }

    /// Regression: on a local disk (no conditional update) two workers taking over the
    /// same expired lease at once could both hold it: one deleted the other's fresh
    /// lease and created its own. Seeded rounds of many takers at once; exactly one
    /// wins each round. `CDR_TEST_LEASE_ROUNDS=N` runs more rounds.
    #[test]
    fn exactly_one_of_many_workers_takes_over_a_dead_lease_on_a_local_disk() {
        let rounds: u64 = std::env::var("CDR_TEST_LEASE_ROUNDS").map_or(200, |n| {
            n.parse().expect("CDR_TEST_LEASE_ROUNDS is a number")
        });
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir.path())
                .unwrap()
                .with_automatic_cleanup(true),
        );
        let hour = Duration::from_secs(3600);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        // Each taker poses as its own live process on this host (a child that sleeps),
        // since one process's holders with our pid would count each other as dead.
        struct Lives(Vec<std::process::Child>);
        impl Drop for Lives {
            fn drop(&mut self) {
                for child in &mut self.0 {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        let lives = Lives(
            (0..8)
                .map(|_| {
                    std::process::Command::new("sleep")
                        .arg("600")
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        );
        let pids: Vec<u32> = lives.0.iter().map(|child| child.id()).collect();
        for seed in 1..=rounds {
            // xorshift from the seed: how many takers, and whether the old holder
            // expired or died.
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let takers = 2 + next() % 7;
            let died = next() % 2 == 0;
            let key = Path::from(format!("_state/leases/partitions/cdr/{seed}.json"));
            let (old_holder, old_at) = if died {
                ("host-a/pid-999999999/1".to_string(), at(4999))
            } else {
                ("host-b/pid-1/1".to_string(), at(0))
            };
            let old = Leases::new(Arc::clone(&store), old_holder, hour);
            runtime.block_on(async {
                match old.acquire_key(key.clone(), old_at).await.unwrap() {
                    Lease::Held(held) => held.abandon(),
                    busy => panic!("the old holder gets it: {busy:?}"),
                }
            });
            let start = Arc::new(std::sync::Barrier::new(takers as usize));
            let handles: Vec<_> = (0..takers)
                .map(|taker| {
                    let leases = Leases::new(
                        Arc::clone(&store),
                        format!("host-a/pid-{}/taker", pids[taker as usize]),
                        hour,
                    );
                    let key = key.clone();
                    let start = Arc::clone(&start);
                    let handle = runtime.handle().clone();
                    std::thread::spawn(move || {
                        start.wait();
                        handle.block_on(leases.acquire_key(key, at(5000))).unwrap()
                    })
                })
                .collect();
            let held = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|lease| matches!(lease, Lease::Held(_)))
                .count();
            assert_eq!(
                held,
                1,
                "seed {seed}: {takers} takers of a lease whose holder {}, {held} hold it",
                if died { "died" } else { "expired" }
            );
        }
        drop(lives);
    }
}
