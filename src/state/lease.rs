//! Leases on units of work (one category of one day), so that two workers on the same
//! destination (an overrunning cron job, two replicas) never ingest the same unit at
//! once. A lease is taken with a create-only put, which the store makes atomic; it
//! expires, so a crashed holder blocks nobody for longer than `ingest.lease_secs`.
//!
//! Taking over an expired (or dead process's) lease must also leave exactly one holder.
//! Where the store has conditional updates (S3) the new record replaces the old one only
//! if the object is still the version that was read. Local disk has none, and delete
//! then create is not enough: a taker that read the old record can delete another
//! taker's fresh lease. There a takeover first creates, create-only, a marker
//! `<lease>.takeover-<hash of the old record's bytes>-<generation>`; only the one taker
//! whose marker create succeeds re-reads the lease and, if it still holds exactly those
//! bytes, deletes and recreates it; the others are busy. Every record carries a unique
//! token, so its bytes are never written again once replaced: that makes removing the
//! marker right after the replacement safe, since a late taker that then creates the
//! same marker re-reads a different lease and backs off. A marker is itself a lease
//! record of its taker: if that taker crashed before removing it (or overran its lease),
//! the next generation is taken the same way, so a crash blocks nobody for longer than
//! a lease either. The one assumption left is the lease's own: a holder that overruns
//! its lease while still working is not stopped. A marker whose taker crashed after
//! replacing the lease stays behind as a small orphan object.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
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
    /// Ours until released or expired.
    Held(Path),
    /// Another worker has it.
    Busy {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// Takes and releases leases in the destination under `_state/leases/`.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn ObjectStore>,
    /// Who we are, in the lease objects and in messages.
    holder: String,
    duration: Duration,
}

impl Leases {
    pub fn new(store: Arc<dyn ObjectStore>, holder: String, duration: Duration) -> Self {
        Leases {
            store,
            holder,
            duration,
        }
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

    /// Takes the lease at `key`, or says who holds it.
    pub async fn acquire_key(&self, key: Path, now: DateTime<Utc>) -> Result<Lease, StateError> {
        let payload = self.record(now);
        match self.create(&key, &payload).await {
            Ok(_) => return Ok(Lease::Held(key)),
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
                    Ok(_) => Ok(Lease::Held(key)),
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
        let bytes = current.bytes().await.map_err(|source| StateError::Read {
            key: key.to_string(),
            source,
        })?;
        let record: Option<LeaseRecord> = serde_json::from_slice(&bytes).ok();
        if let Some(record) = &record {
            if record.expires_at > now && !self.left_by_a_dead_process(&record.holder) {
                return Ok(Lease::Busy {
                    holder: record.holder.clone(),
                    expires_at: record.expires_at,
                });
            }
        }
        // Expired (or unreadable): take it over, but only if nobody else did first.
        tracing::warn!(lease = %key, holder = record.as_ref().map_or("unknown", |r| r.holder.as_str()), "taking over an expired lease");
        let taken = match self
            .store
            .put_opts(&key, payload.clone(), PutMode::Update(version).into())
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) => {
                return self.take_over_by_marker(key, &bytes, &payload, now).await;
            }
            other => other.map(|_| ()),
        };
        match taken {
            Ok(_) => Ok(Lease::Held(key)),
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
        payload: &PutPayload,
        now: DateTime<Utc>,
    ) -> Result<Lease, StateError> {
        let identity = format!("{:032x}", xxh3_128(old));
        let marker =
            |generation: u32| Path::from(format!("{key}.takeover-{identity}-{generation}"));
        for generation in 0..MARKER_GENERATIONS {
            let taken = marker(generation);
            match self.create(&taken, &self.record(now)).await {
                Ok(()) => {
                    let lease = self.replace(&key, old, payload).await;
                    for generation in 0..=generation {
                        let _ = self.store.delete(&marker(generation)).await;
                    }
                    return lease;
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
            if let Ok(record) = serde_json::from_slice::<LeaseRecord>(&other) {
                if record.expires_at > now && !self.left_by_a_dead_process(&record.holder) {
                    return Ok(Lease::Busy {
                        holder: record.holder,
                        expires_at: record.expires_at,
                    });
                }
            }
        }
        Ok(Lease::Busy {
            holder: "another worker".into(),
            expires_at: now,
        })
    }

    /// Replaces the lease at `key` with `payload` if it still holds `old`; the caller
    /// holds the takeover marker for `old`, so nobody else replaces it meanwhile.
    async fn replace(
        &self,
        key: &Path,
        old: &[u8],
        payload: &PutPayload,
    ) -> Result<Lease, StateError> {
        let busy = Lease::Busy {
            holder: "another worker".into(),
            expires_at: Utc::now(),
        };
        match self.store.get(key).await {
            Ok(current) => {
                let bytes = current.bytes().await.map_err(|source| StateError::Read {
                    key: key.to_string(),
                    source,
                })?;
                if bytes.as_ref() != old {
                    return Ok(busy);
                }
                if let Err(source) = self.store.delete(key).await {
                    if !matches!(source, object_store::Error::NotFound { .. }) {
                        return Err(StateError::Write {
                            key: key.to_string(),
                            source,
                        });
                    }
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
            Ok(()) => Ok(Lease::Held(key.clone())),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(busy),
            Err(source) => Err(StateError::Write {
                key: key.to_string(),
                source,
            }),
        }
    }

    /// A create-only put, tried again when the store fails for a reason that may pass:
    /// on a local disk another worker's release can remove the emptied folder between
    /// this put creating it and writing into it.
    async fn create(&self, key: &Path, payload: &PutPayload) -> object_store::Result<()> {
        retry::with_backoff("create", retry::is_transient, || {
            self.store
                .put_opts(key, payload.clone(), PutMode::Create.into())
        })
        .await
        .map(|_| ())
    }

    /// Gives a lease back, unless it expired and someone else holds it now.
    pub async fn release(&self, key: &Path) {
        let ours = match self.store.get(key).await {
            Ok(current) => match current.bytes().await {
                Ok(bytes) => serde_json::from_slice::<LeaseRecord>(&bytes)
                    .is_ok_and(|r| r.holder == self.holder),
                Err(_) => false,
            },
            Err(_) => false,
        };
        if ours {
            if let Err(e) = self.store.delete(key).await {
                tracing::warn!(lease = %key, error = %e, "could not release a lease; it expires on its own");
            }
        }
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

    fn record(&self, now: DateTime<Utc>) -> PutPayload {
        let expires_at = now + chrono::Duration::from_std(self.duration).unwrap_or_default();
        let record = LeaseRecord {
            format_version: FORMAT_VERSION,
            holder: self.holder.clone(),
            expires_at,
            token: unique_token(),
        };
        PutPayload::from(serde_json::to_vec(&record).expect("a lease serializes"))
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
        let Lease::Held(key) = a.acquire(cdr::CATEGORY, day, at(1000)).await.unwrap() else {
            panic!("a gets it")
        };
        match b.acquire(cdr::CATEGORY, day, at(1030)).await.unwrap() {
            Lease::Busy { holder, .. } => assert_eq!(holder, "a"),
            held => panic!("b must not get it: {held:?}"),
        }
        assert!(
            matches!(
                b.acquire(queue::CATEGORY, day, at(1030)).await.unwrap(),
                Lease::Held(_)
            ),
            "other units are free"
        );
        // a crashed: after expiry b takes over, and a late release by a leaves b's lease alone.
        assert!(matches!(
            b.acquire(cdr::CATEGORY, day, at(1061)).await.unwrap(),
            Lease::Held(_)
        ));
        a.release(&key).await;
        assert!(matches!(
            a.acquire(cdr::CATEGORY, day, at(1062)).await.unwrap(),
            Lease::Busy { .. }
        ));
        b.release(&key).await;
        assert!(matches!(
            a.acquire(cdr::CATEGORY, day, at(1063)).await.unwrap(),
            Lease::Held(_)
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
                        Lease::Held(key) => leases.release(&key).await,
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
        assert!(matches!(
            crashed.acquire(cdr::CATEGORY, day, at(1000)).await.unwrap(),
            Lease::Held(_)
        ));
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
                assert!(matches!(
                    old.acquire_key(key.clone(), old_at).await.unwrap(),
                    Lease::Held(_)
                ));
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
