//! The pass's connection to the source, and the one retry policy of every source
//! operation: opened on first use; when an operation fails for a reason that may pass
//! ([`SourceError::is_transient`]: refused, reset, timed out, a broken TLS or SSH
//! session, FTP 4xx), the connection is dropped and the operation tried again over a
//! new one, with backoff and jitter. A download resumes from the bytes already taken
//! (REST for FTP, a seek for SFTP); a listing that broke off is read again without
//! repeating entries.
//!
//! # How long
//!
//! The bound is a [`RetryBudget`] of `source.retry_max_secs`, one per source file:
//! made where the file's processing starts ([`Connection::retry_budget`]; the
//! ledger check in `pipeline::file`, a recording's copy, each file of a changed-files
//! batch) and passed to each of the file's operations (stat, download, second stat),
//! which all draw on it. A listing and the opening of the connection before a unit's
//! files each have a budget of their own. Counted against it: every wait between
//! tries, and the time each failed try spent failing, which is its whole length less
//! the time from its first to its last chunk (or listing entry) — so connecting,
//! logging in, a stall until the timeout and a refused try all count, and time spent
//! moving data does not. A healthy download of an hour that breaks twice spends only
//! its two failures and waits; a server that keeps refusing is given up on after
//! `source.retry_max_secs`, the last wait ending on the limit.
//!
//! # How many at once
//!
//! Providers cap logins per account, so `source.max_connections` holds across every
//! worker on the destination: before it logs in, a connection takes one of that many
//! slot leases (`_state/leases/connections/slot-K.json`, renewed while held, like every
//! lease), waiting while all are taken, and gives it back when it is closed. It keeps
//! its slot across reconnects. Whoever holds a slot never waits for another one (a pass
//! closes its connection before waiting for a unit another worker holds; a recordings
//! copy closes the listing's before its transfers open, and uses at most that many), so
//! the workers never wait on each other in a circle. A worker killed with its slots
//! frees them when their leases expire.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

pub use crate::backoff::RetryBudget;
use crate::backoff::{Backoff, Policy};
use crate::config::SourceSettings;
use crate::source::{self, ChunkSink, RemoteFile, Source, SourceError};
use crate::state::lease::{HeldLease, Lease, Leases};

/// The waits between tries: about half a second at first, doubling up to 30 s.
const POLICY: Policy = Policy {
    first_delay: Duration::from_millis(500),
    factor: 2,
    max_delay: Duration::from_secs(30),
    max_tries: None,
};

/// The clock of one try: when it started, and when data first and last arrived.
struct TryClock {
    started: Instant,
    moving: Option<(Instant, Instant)>,
}

impl TryClock {
    fn start() -> Self {
        TryClock {
            started: Instant::now(),
            moving: None,
        }
    }

    /// Data arrived (a chunk was taken, a listing entry read).
    fn moved(&mut self) {
        let now = Instant::now();
        let first = self.moving.map_or(now, |(first, _)| first);
        self.moving = Some((first, now));
    }

    /// The try failed now: how long it spent failing rather than moving data.
    fn failing(&self) -> Duration {
        let moving = self
            .moving
            .map_or(Duration::ZERO, |(first, last)| last - first);
        self.started.elapsed().saturating_sub(moving)
    }
}

/// A source connection opened on demand, under a slot lease taken from `leases`.
pub struct Connection<'s> {
    settings: &'s SourceSettings,
    leases: &'s Leases,
    open: Option<Box<dyn Source>>,
    slot: Option<HeldLease>,
}

/// The first pause while every connection slot is taken; it doubles up to
/// `MAX_SLOT_PAUSE`.
const FIRST_SLOT_PAUSE: Duration = Duration::from_millis(50);
const MAX_SLOT_PAUSE: Duration = Duration::from_secs(2);

impl<'s> Connection<'s> {
    pub fn new(settings: &'s SourceSettings, leases: &'s Leases) -> Self {
        Connection {
            settings,
            leases,
            open: None,
            slot: None,
        }
    }

    /// The open connection, opened now if need be (one try), once a slot is held.
    async fn source(&mut self) -> Result<&mut dyn Source, SourceError> {
        if self.open.is_none() {
            if self.slot.is_none() {
                self.slot = Some(take_slot(self.settings, self.leases).await?);
            }
            self.open = Some(source::connect(self.settings).await?);
        }
        Ok(self.open.as_deref_mut().expect("just opened"))
    }

    /// Says goodbye on the open connection, if there is one (the next use opens
    /// another), and gives its slot back.
    pub async fn close(&mut self) {
        if let Some(open) = self.open.take() {
            open.close().await;
        }
        if let Some(slot) = self.slot.take() {
            slot.release().await;
        }
    }

    /// Opens the connection if it is not open, with one try and without waiting for a
    /// slot: for a connection beside others, which can be done without when the
    /// server refuses it. `Ok(false)`: every slot is taken.
    pub async fn try_open(&mut self) -> Result<bool, SourceError> {
        if self.open.is_none() && self.slot.is_none() {
            match try_take_slot(self.settings, self.leases).await? {
                Some(slot) => self.slot = Some(slot),
                None => return Ok(false),
            }
        }
        self.source().await?;
        Ok(true)
    }

    /// A fresh budget of `source.retry_max_secs`, for one file's operations.
    pub fn retry_budget(&self) -> RetryBudget {
        RetryBudget::new(self.settings.retry_max)
    }

    /// Opens the connection if it is not open, retrying as every operation does (with
    /// a budget of its own).
    pub async fn open(&mut self) -> Result<(), SourceError> {
        let mut budget = self.retry_budget();
        let mut backoff = Backoff::new(POLICY);
        loop {
            let clock = TryClock::start();
            match self.source().await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    self.failed(&mut backoff, &mut budget, &clock, "connecting", "", e)
                        .await?
                }
            }
        }
    }

    /// Size and time of `path`, or `None` when it is not there; retries draw on
    /// `budget`, the file's.
    pub async fn stat(
        &mut self,
        path: &str,
        budget: &mut RetryBudget,
    ) -> Result<Option<RemoteFile>, SourceError> {
        let mut backoff = Backoff::new(POLICY);
        loop {
            let clock = TryClock::start();
            let result = async {
                let source = self.source().await?;
                crate::crash::pause("stat", path);
                source.stat(path).await
            }
            .await;
            match result {
                Ok(found) => return Ok(found),
                Err(e) => {
                    self.failed(&mut backoff, budget, &clock, "stat", path, e)
                        .await?
                }
            }
        }
    }

    /// Calls `each` with every file in `folder` as the listing arrives (see
    /// [`Source::list`]); retried with a budget of its own.
    pub async fn list(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.listing(folder, false, each).await
    }

    /// Calls `each` with every file under `folder` at any depth as the listing arrives
    /// (see [`Source::list_tree`]); retried with a budget of its own.
    pub async fn list_tree(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.listing(folder, true, each).await
    }

    /// A listing, retried as every operation is: one that broke off is read again from
    /// the start, and the files `each` was already given are skipped (by a 128-bit hash
    /// of the path, so memory stays at 16 bytes a file).
    async fn listing(
        &mut self,
        folder: &str,
        tree: bool,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        let mut given: HashSet<u128> = HashSet::new();
        let mut budget = self.retry_budget();
        let mut backoff = Backoff::new(POLICY);
        loop {
            let mut clock = TryClock::start();
            let mut pass_on = |file: RemoteFile| {
                clock.moved();
                crate::crash::pause("listed", folder);
                if given.insert(xxhash_rust::xxh3::xxh3_128(file.path.as_bytes())) {
                    each(file);
                }
            };
            let result = async {
                let source = self.source().await?;
                crate::crash::pause("list", folder);
                if tree {
                    source.list_tree(folder, &mut pass_on).await
                } else {
                    source.list(folder, &mut pass_on).await
                }
            }
            .await;
            match result {
                Ok(_) => return Ok(given.len() as u64),
                Err(e) => {
                    self.failed(&mut backoff, &mut budget, &clock, "listing", folder, e)
                        .await?
                }
            }
        }
    }

    /// Streams `path` into `sink`, resuming from the bytes the sink already has after
    /// each break; retries draw on `budget`, the file's. Returns the file's size.
    pub async fn download(
        &mut self,
        path: &str,
        sink: &mut dyn ChunkSink,
        budget: &mut RetryBudget,
    ) -> Result<u64, SourceError> {
        let mut backoff = Backoff::new(POLICY);
        let mut taken = sink.written();
        loop {
            let offset = sink.written();
            if offset > taken {
                backoff.progressed();
                taken = offset;
            }
            let mut clock = TryClock::start();
            let result = async {
                let source = self.source().await?;
                crate::crash::pause("download", path);
                let mut sink = Pausing {
                    inner: sink,
                    path,
                    clock: &mut clock,
                };
                source.download(path, offset, &mut sink).await
            }
            .await;
            match result {
                Ok(copied) => return Ok(offset + copied),
                Err(e) => {
                    let during = format!("downloading (resuming at byte {})", sink.written());
                    self.failed(&mut backoff, budget, &clock, &during, path, e)
                        .await?
                }
            }
        }
    }

    /// After a failed try: forgets a connection the error left unusable, counts the
    /// try's failing time against `budget`, and waits before the next try, or returns
    /// the error when it will not pass or the budget is spent.
    async fn failed(
        &mut self,
        backoff: &mut Backoff,
        budget: &mut RetryBudget,
        clock: &TryClock,
        during: &str,
        subject: &str,
        error: SourceError,
    ) -> Result<(), SourceError> {
        if !error.is_transient() {
            if matches!(error, SourceError::Protocol { .. }) {
                // The server broke the protocol: what it sends next cannot be trusted.
                self.open = None;
            }
            return Err(error);
        }
        // Dropped, not closed: a broken connection would only wait out the timeout.
        self.open = None;
        budget.spend(clock.failing());
        let Some(wait) = backoff.next_delay().and_then(|wait| budget.wait(wait)) else {
            tracing::warn!(during, subject, tries = backoff.tries(), failing_ms = super::millis(budget.spent()), error = %error, "giving up: the source.retry_max_secs allowed for failed tries and waits are spent");
            return Err(error);
        };
        tracing::warn!(during, subject, try_number = backoff.tries() - 1, retry_in_ms = super::millis(wait), error = %error, "source operation failed; connecting again to retry");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// One of the `source.max_connections` slots, waiting while all are taken.
async fn take_slot(settings: &SourceSettings, leases: &Leases) -> Result<HeldLease, SourceError> {
    let mut pause = FIRST_SLOT_PAUSE;
    let mut waited = false;
    loop {
        if let Some(held) = try_take_slot(settings, leases).await? {
            return Ok(held);
        }
        if !waited {
            tracing::info!(
                max_connections = settings.max_connections,
                "every connection slot is taken (source.max_connections, all workers together); waiting for one"
            );
            waited = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_SLOT_PAUSE);
    }
}

/// One of the `source.max_connections` slots if one is free.
async fn try_take_slot(
    settings: &SourceSettings,
    leases: &Leases,
) -> Result<Option<HeldLease>, SourceError> {
    for slot in 0..settings.max_connections {
        let key = crate::sink::layout::connection_slot(slot);
        match leases.acquire_key(key, chrono::Utc::now()).await {
            Ok(Lease::Held(held)) => return Ok(Some(held)),
            Ok(Lease::Busy { .. }) => {}
            Err(e) => {
                return Err(SourceError::Slot {
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(None)
}

/// Passes a download's chunks on, with a pause point after each (see `crash::pause`),
/// and tells the try's clock when data moved (as each chunk arrives and once it is
/// taken, so the sink's own time counts as moving).
struct Pausing<'a> {
    inner: &'a mut dyn ChunkSink,
    path: &'a str,
    clock: &'a mut TryClock,
}

#[async_trait]
impl ChunkSink for Pausing<'_> {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.clock.moved();
        crate::crash::pause("received", self.path);
        let written = self.inner.write(chunk).await;
        self.clock.moved();
        written
    }

    fn written(&self) -> u64 {
        self.inner.written()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `source.max_connections` holds across workers: six connections of three workers
    /// (each its own holder of leases in one destination) wanting to be open at once,
    /// with two slots: never more than two are open, and every one gets its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_of_all_workers_together_stay_within_max_connections() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let drop = tempfile::tempdir().unwrap();
        let settings = crate::config::Settings::parse(
            &format!(
                "[source]\nurl = \"file://{}\"\nmax_connections = 2\n[destination]\nurl = \"memory://\"\n",
                drop.path().display()
            ),
            &|_| None,
        )
        .unwrap_or_else(|issues| panic!("{issues:?}"))
        .source;
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let open = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let workers: Vec<Leases> = (0..3)
            .map(|n| {
                Leases::new(
                    Arc::clone(&store),
                    format!("host-{n}/pid-1/x"),
                    Duration::from_secs(60),
                )
            })
            .collect();
        let connections = (0..6).map(|n| {
            let (settings, leases, open, most, done) =
                (&settings, &workers[n % 3], &open, &most, &done);
            async move {
                let mut connection = Connection::new(settings, leases);
                connection.open().await.unwrap();
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
                open.fetch_sub(1, Ordering::SeqCst);
                connection.close().await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
        futures::future::join_all(connections).await;
        assert_eq!(done.load(Ordering::SeqCst), 6);
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "{} open at once",
            most.load(Ordering::SeqCst)
        );
    }

    /// A failed try counts its time before the first chunk and after the last (the
    /// stall until the timeout), not the transfer in between.
    #[tokio::test(start_paused = true)]
    async fn a_try_counts_only_its_failing_time() {
        let mut clock = TryClock::start();
        tokio::time::sleep(Duration::from_secs(2)).await; // connecting and logging in
        clock.moved();
        tokio::time::sleep(Duration::from_secs(3600)).await; // an hour of data
        clock.moved();
        tokio::time::sleep(Duration::from_secs(30)).await; // the stall until the timeout
        assert_eq!(clock.failing(), Duration::from_secs(32));

        let refused = TryClock::start();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(refused.failing(), Duration::from_secs(5));
    }

    /// Three breaks of an hour-long download spend three failures and waits of a
    /// 300 s budget, not the hour.
    #[tokio::test(start_paused = true)]
    async fn a_long_download_keeps_its_budget() {
        let mut budget = RetryBudget::new(Duration::from_secs(300));
        let mut backoff = Backoff::new(POLICY);
        for _ in 0..3 {
            let mut clock = TryClock::start();
            tokio::time::sleep(Duration::from_secs(1)).await;
            clock.moved();
            tokio::time::sleep(Duration::from_secs(1200)).await;
            clock.moved();
            tokio::time::sleep(Duration::from_secs(30)).await;
            budget.spend(clock.failing());
            let wait = backoff.next_delay().and_then(|w| budget.wait(w)).unwrap();
            tokio::time::sleep(wait).await;
            backoff.progressed();
        }
        assert!(
            budget.spent() <= Duration::from_secs(3 * 32),
            "{:?}",
            budget.spent()
        );
        assert!(budget.wait(Duration::from_secs(1)).is_some());
    }
}
