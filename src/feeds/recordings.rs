//! Recordings: list the folder as a stream, keep the names that parse and fall in the
//! requested days, skip what the ledger has and what may still be uploading, copy the
//! rest byte for byte over several connections at once, day by day, writing each
//! day's index and then its ledger entry as soon as that day's copies are done.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use object_store::ObjectStoreExt;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Dataset, Feed, HOSTED_PBX, ListedFeed, OwnedFiles, Unit};
use crate::calls::{self, Facts, Mapping, Objects, Outcome, PerCall, Rank, Record, Said};
use crate::formats::recording_name;
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::file::modified_text;
use crate::pipeline::transfer::ObjectUpload;
use crate::pipeline::transfer_count::{self, Controller};
use crate::pipeline::{Context, CopyReport, IngestError, Observer, millis};
use crate::sink::{layout, upload::put_bytes};
use crate::sink::{recording_index, retry};
use crate::source::{ChunkSink, RemoteFile};
use crate::state::json::FORMAT_VERSION;
use crate::state::json::StateError;
use crate::state::ledger::{RecordingFile, RecordingsEntry};

/// This feed's name.
pub const CATEGORY: Category = Category::new("recordings");

static DATASETS: [Dataset; 1] = [Dataset {
    name: layout::RECORDING_INDEX,
    table: None,
    quarantine: false,
}];

pub static FEED: Feed = Feed {
    category: CATEGORY,
    about: "call recordings: recordings/*.mp3, copied byte for byte as they appear",
    folder: ("recordings", "recordings"),
    datasets: &DATASETS,
    unit: Unit::Listed(&Recordings),
    files: Some(&Recordings),
    generate: crate::generate::recordings::write,
    calls: &CALLS,
};

/// A recording says who talked (its SIP user) and where the audio is; a call with a
/// recording was answered.
static CALLS: [Mapping; 1] = [Mapping {
    dataset: layout::RECORDING_INDEX,
    provider: HOSTED_PBX,
    rank: Rank {
        call: 2,
        outcome: 2,
        routing: 1,
    },
    outcomes: &[],
    direction: "none (the CDR's)",
    columns: &[
        "unique_id",
        "started",
        "caller_id",
        "called_no",
        "sip_user",
        "object_key",
        "file_name",
    ],
    facts,
    objects: Objects::Every,
    per_call: PerCall::Many,
}];

/// A `recording_index` row's columns → the calls columns (README: "The calls dataset").
fn facts<'a>(r: &Record<'a>) -> Option<Facts<'a>> {
    Some(Facts {
        call_id: r.value("unique_id")?,
        started_at: r.micros("started"),
        from_number: r.value("caller_id"),
        to_number: r.value("called_no"),
        agent_id: r.value("sip_user"),
        recording_key: r.value("object_key"),
        said: Said {
            outcome: Some(Outcome::Answered),
            detail: None,
            unmapped: false,
        },
        source_object: r.value("file_name").unwrap_or_default(),
        ..Facts::default()
    })
}

struct Recordings;

#[async_trait]
impl ListedFeed for Recordings {
    /// Copies the recordings of `days` that are not in yet.
    async fn ingest(
        &self,
        ctx: &Context,
        connection: &mut Connection<'_>,
        days: &[NaiveDate],
        now: DateTime<Utc>,
        observer: Option<&dyn Observer>,
    ) -> Result<CopyReport, IngestError> {
        let (Some(&first), Some(&last)) = (days.iter().min(), days.iter().max()) else {
            return Ok(CopyReport::default());
        };
        let folder = ctx.settings.source.folders.of(CATEGORY).to_string();
        let min_age =
            chrono::Duration::from_std(ctx.settings.ingest.recordings_min_age).unwrap_or_default();
        let mut report = CopyReport::default();
        let started = Instant::now();
        let mut candidates: BTreeMap<NaiveDate, Vec<(String, RemoteFile)>> = BTreeMap::new();
        report.listed = connection
            .list(&folder, &mut |file| {
                let name = file.path.rsplit('/').next().unwrap_or_default().to_string();
                let parsed = match recording_name::parse(&name) {
                    Ok(parsed) => parsed,
                    Err(_) => {
                        let day = recording_name::day_of_unmatched(&name);
                        if day.is_some_and(|d| !days.contains(&d)) {
                            return;
                        }
                        let unmatched = report.unmatched.entry(day).or_default();
                        unmatched.count += 1;
                        if unmatched.examples.len() < UNMATCHED_SHOWN {
                            unmatched.examples.push(name);
                        }
                        return;
                    }
                };
                let day = parsed.date();
                if day < first || day > last || !days.contains(&day) {
                    return;
                }
                // A file written to within `min_age` may still be growing.
                if file.modified.is_some_and(|m| now - m < min_age) {
                    report.pending += 1;
                    return;
                }
                candidates.entry(day).or_default().push((name, file));
            })
            .await?;

        report.list_ms = millis(started.elapsed());
        if let Some(observer) = observer {
            observer.recordings_found(candidates.values().map(|files| files.len() as u64).sum());
        }

        // Day by day: a day's index and ledger entry are written as soon as its copies are
        // done, so memory holds one day's results and ledger (plus the listed names), and
        // a long backfill keeps what it did.
        let controller = Mutex::new(Controller::new(
            ctx.settings.ingest.transfers,
            ctx.settings.source.max_connections,
        ));
        for (day, files) in candidates {
            let looked_up = Instant::now();
            let mut entry = ctx.ledger.copies(CATEGORY, day).await?.unwrap_or_default();
            let mut jobs = VecDeque::new();
            let mut already = 0;
            for (name, remote) in files {
                let known = entry.files.binary_search_by(|f| f.name.as_str().cmp(&name));
                if known.is_ok() {
                    already += 1;
                } else {
                    jobs.push_back(Job { day, remote, name });
                }
            }
            report.already += already;
            if let Some(observer) = observer {
                observer.recordings_done(already, 0);
            }
            report.list_ms += millis(looked_up.elapsed());
            if jobs.is_empty() {
                tracing::info!(%day, copied = 0, bytes = 0, already, pending = 0, failed = 0, "recordings of the day copied");
                continue;
            }
            // At most `source.max_connections` (all workers together): the listing's
            // own connection gives its slot back first.
            connection.close().await;
            let copy_started = Instant::now();
            let results = copy_day(ctx, jobs, &controller, observer).await;
            report.copy_ms += millis(copy_started.elapsed());

            let index_started = Instant::now();
            let (mut copied, mut bytes, mut pending, mut failed) = (0, 0, 0, 0);
            for (job, result) in results {
                match result {
                    Ok(file) => {
                        copied += 1;
                        bytes += file.size;
                        // At debug: a day can have thousands; the day's line below counts them.
                        tracing::debug!(%day, file = %job.remote.path, bytes = file.size, "recording copied");
                        entry.files.push(file);
                    }
                    Err(IngestError::StillUploading { .. }) => pending += 1,
                    Err(e) => {
                        failed += 1;
                        tracing::error!(%day, file = %job.remote.path, error = %e, "recording failed");
                        report.failures.push((job.remote.path, e));
                    }
                }
            }
            tracing::info!(%day, copied, bytes, already, pending, failed, "recordings of the day copied");
            report.copied += copied;
            report.bytes += bytes;
            report.pending += pending;
            if copied > 0 {
                commit_day(ctx, day, entry).await?;
            }
            report.index_ms += millis(index_started.elapsed());
        }
        tracing::info!(
            listed = report.listed,
            copied = report.copied,
            bytes = report.bytes,
            already = report.already,
            pending = report.pending,
            failed = report.failures.len(),
            list_ms = report.list_ms,
            copy_ms = report.copy_ms,
            index_ms = report.index_ms,
            "recordings finished"
        );
        Ok(report)
    }

    fn pattern(&self) -> &'static str {
        "YYYY_mm_dd_HH_mm_ss-SIP_USERNAME-CALLER_ID-CALLED_NO-UNIQUEID.mp3"
    }

    async fn copied(&self, ctx: &Context, day: NaiveDate) -> Result<Option<u64>, StateError> {
        Ok(ctx
            .ledger
            .copies(CATEGORY, day)
            .await?
            .map(|entry| entry.files.len() as u64))
    }
}

impl OwnedFiles for Recordings {
    fn folder_of_day(&self, day: NaiveDate) -> String {
        layout::recordings_folder(day)
    }

    fn root(&self) -> &'static str {
        layout::RECORDINGS
    }

    fn owns(&self, key: &str) -> bool {
        layout::is_recording_object(key)
    }

    fn day_of(&self, key: &str) -> Option<NaiveDate> {
        layout::recording_date(key)
    }
}

/// Names that do not match the pattern, shown in full up to this many per day.
const UNMATCHED_SHOWN: usize = 20;

/// One recording to copy.
struct Job {
    day: NaiveDate,
    remote: RemoteFile,
    name: String,
}

type Copied = (Job, Result<RecordingFile, IngestError>);

/// Copies a day's recordings over as many connections as `controller` says (see
/// `pipeline::transfer_count`): workers are started up to its count while there is
/// work, and stop (after their file) when it falls; while all of them are busy, the
/// bytes moved in each window are measured for it.
async fn copy_day(
    ctx: &Context,
    jobs: VecDeque<Job>,
    controller: &Mutex<Controller>,
    observer: Option<&dyn Observer>,
) -> Vec<Copied> {
    let pool = Pool {
        queue: Mutex::new(jobs),
        results: Mutex::new(Vec::new()),
        controller,
        live: AtomicUsize::new(0),
        opening: AtomicUsize::new(0),
        moved: AtomicU64::new(0),
    };
    let mut workers = FuturesUnordered::new();
    // The start of a window of measurement and the bytes moved by then.
    let mut window: Option<(Instant, u64)> = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        let target = pool.target();
        // Not more than there are files for: each worker opening takes one.
        while pool.live.load(Ordering::SeqCst) < target
            && pool.opening.load(Ordering::SeqCst) < lock(&pool.queue).len()
        {
            pool.live.fetch_add(1, Ordering::SeqCst);
            pool.opening.fetch_add(1, Ordering::SeqCst);
            workers.push(work(ctx, &pool, observer));
            window = None;
        }
        if workers.is_empty() {
            break;
        }
        tokio::select! {
            _ = workers.next() => window = None,
            _ = tick.tick() => {
                // Measured only while the count holds, every connection is open and busy.
                let steady = pool.opening.load(Ordering::SeqCst) == 0
                    && pool.live.load(Ordering::SeqCst) == target
                    && !pool.queue_is_empty();
                let (now, moved) = (Instant::now(), pool.moved.load(Ordering::SeqCst));
                match window {
                    _ if !steady => window = None,
                    None => window = Some((now, moved)),
                    Some((start, before)) if now - start >= transfer_count::WINDOW => {
                        let elapsed = now - start;
                        lock(controller).measured(moved - before, elapsed);
                        window = None;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    drop(workers);
    pool.results.into_inner().expect("not poisoned")
}

/// How often the copy looks at its workers and its window.
const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// What the workers of a day's copy share.
struct Pool<'c> {
    queue: Mutex<VecDeque<Job>>,
    results: Mutex<Vec<Copied>>,
    controller: &'c Mutex<Controller>,
    /// Workers running (opening their connection or copying).
    live: AtomicUsize,
    /// Workers still opening their connection.
    opening: AtomicUsize,
    /// Bytes downloaded, as they arrive.
    moved: AtomicU64,
}

impl Pool<'_> {
    fn target(&self) -> usize {
        lock(self.controller).target()
    }

    fn queue_is_empty(&self) -> bool {
        lock(&self.queue).is_empty()
    }

    /// Leaves the pool if more workers run than `still_wanted` allows of them; a
    /// worker never leaves as the last one.
    fn leave_if(&self, still_wanted: impl Fn(usize) -> bool) -> bool {
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |live| {
                (live > 1 && !still_wanted(live)).then(|| live - 1)
            })
            .is_ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("not poisoned")
}

/// One worker of a day's copy: opens its connection (beside others, with one try: if
/// the server refuses it, or no slot is free, it leaves and says so to the
/// controller), then takes jobs until the queue is empty or the count falls below the
/// workers running. The previous file's upload completes while the next one
/// downloads: storing an object (a rename on disk, a PUT and a HEAD on S3) would
/// otherwise add its latency to every file. One at a time, so memory stays at two
/// files a connection.
async fn work(ctx: &Context, pool: &Pool<'_>, observer: Option<&dyn Observer>) {
    let mut connection = ctx.connection();
    let opened = connection.try_open().await;
    pool.opening.fetch_sub(1, Ordering::SeqCst);
    // The last worker, or one whose error no retry changes, goes on as always: each
    // operation is retried (and its failure reported) on its own.
    let refused = match &opened {
        Ok(true) => false,
        Ok(false) => true,
        Err(e) => e.is_transient(),
    };
    if refused && pool.leave_if(|_| false) {
        let others = pool.live.load(Ordering::SeqCst);
        match &opened {
            Err(e) => lock(pool.controller).refused(others, e),
            _ => lock(pool.controller).no_slot(others),
        };
        connection.close().await;
        return;
    }
    let done = |result: &Result<RecordingFile, IngestError>| {
        if let Some(observer) = observer {
            observer.recordings_done(1, result.as_ref().map_or(0, |file| file.size));
        }
    };
    let mut storing: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    loop {
        let next = if pool.leave_if(|live| live <= pool.target()) {
            None
        } else {
            let next = lock(&pool.queue).pop_front();
            if next.is_none() {
                pool.live.fetch_sub(1, Ordering::SeqCst);
            }
            next
        };
        let previous = async {
            if let Some(storing) = storing.take() {
                storing.await;
            }
        };
        let Some(job) = next else {
            previous.await;
            // Its slot goes back, for whoever waits for one (another worker's copies).
            connection.close().await;
            return;
        };
        let fetching = fetch(ctx, &mut connection, &job, &pool.moved);
        let ((), fetched) = futures::future::join(previous, fetching).await;
        match fetched {
            Ok(upload) => {
                storing = Some(Box::pin(async move {
                    let result = store(ctx, &job, upload).await;
                    done(&result);
                    lock(&pool.results).push((job, result));
                }));
            }
            Err(e) => {
                let result = Err(e);
                done(&result);
                lock(&pool.results).push((job, result));
            }
        }
    }
}

/// Writes a day's index, marks the day's calls for the end of the pass, then writes
/// its ledger entry (the
/// ledger never names an object that is not complete).
async fn commit_day(
    ctx: &Context,
    day: NaiveDate,
    mut entry: RecordingsEntry,
) -> Result<(), IngestError> {
    entry.format_version = FORMAT_VERSION;
    entry.files.sort_by(|a, b| a.name.cmp(&b.name));
    let index = recording_index::build(&entry.files).map_err(|e| IngestError::Spool {
        detail: e.to_string(),
    })?;
    let key = layout::recording_index_object(day);
    put_bytes(&ctx.store, &key, index)
        .await
        .map_err(|e| IngestError::Write {
            key: key.to_string(),
            detail: e.to_string(),
        })?;
    calls::mark(&ctx.json, [day], &[]).await?;
    ctx.ledger.put_copies(CATEGORY, day, &entry).await?;
    Ok(())
}

/// Downloads one recording into its upload; a size that differs from the listing
/// means the file is still being written, and nothing is left behind.
async fn fetch(
    ctx: &Context,
    connection: &mut Connection<'_>,
    job: &Job,
    moved: &AtomicU64,
) -> Result<ObjectUpload, IngestError> {
    let key = layout::recording_object(job.day, &job.name);
    let mut upload = ObjectUpload::new(
        &ctx.store,
        key,
        job.remote.size,
        crate::sink::upload::part_bytes(&ctx.settings.destination.url, job.remote.size),
        ctx.settings.ingest.recordings_sha256,
    );
    // The recording's own retry budget (`pipeline::connection`).
    let mut retries = connection.retry_budget();
    let mut counted = Counted {
        inner: &mut upload,
        moved,
    };
    let copied = match connection
        .download(&job.remote.path, &mut counted, &mut retries)
        .await
    {
        Ok(copied) => copied,
        Err(e) => {
            upload.abort().await;
            return Err(e.into());
        }
    };
    if copied != job.remote.size {
        upload.abort().await;
        return Err(IngestError::StillUploading {
            path: job.remote.path.clone(),
            detail: format!("listed as {} bytes, {copied} arrived", job.remote.size),
        });
    }
    Ok(upload)
}

/// Passes a download on, adding its bytes to the copy's count as they arrive.
struct Counted<'a> {
    inner: &'a mut dyn ChunkSink,
    moved: &'a AtomicU64,
}

#[async_trait]
impl ChunkSink for Counted<'_> {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.moved.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.inner.write(chunk).await
    }

    fn written(&self) -> u64 {
        self.inner.written()
    }
}

/// Completes a downloaded recording's object and checks what the store holds.
async fn store(
    ctx: &Context,
    job: &Job,
    upload: ObjectUpload,
) -> Result<RecordingFile, IngestError> {
    let key = layout::recording_object(job.day, &job.name);
    let write_error = |detail: String| IngestError::Write {
        key: key.to_string(),
        detail,
    };
    let (size, sha256) = upload
        .finish()
        .await
        .map_err(|e| write_error(e.to_string()))?;
    // What the store holds must be what was read.
    let stored = retry::with_backoff("head", retry::is_transient, || ctx.store.head(&key))
        .await
        .map_err(|e| write_error(e.to_string()))?;
    if stored.size != size {
        return Err(write_error(format!(
            "the store holds {} bytes, {size} were written",
            stored.size
        )));
    }
    crate::crash::point("recording-copied");
    Ok(RecordingFile {
        name: job.name.clone(),
        size,
        modified: modified_text(&job.remote),
        sha256,
        key: key.to_string(),
    })
}
