//! With `serve.fetch_recordings`: each compacted record's `record` URL downloaded
//! (HTTPS only, a time limit, a size cap, tries with backoff) into `recordings/` beside
//! the FTPS recordings, with a row in `push_recording_index`.
//!
//! ```text
//! _state/push/fetch/<ivruniqueid>__<type>.json       a recording still to download (tries, last error)
//! recordings/YYYY/MM/DD/<ivruniqueid>__<type>.mp3    the copy, by the call's date
//! push_recording_index/date=D/g<generation>.parquet  one row per copy: key, URL, object, size, sha256
//! ```
//!
//! The compaction creates a job (create-only) for each record with a URL before it
//! deletes the record from the inbox; the same flush then works through the jobs. A
//! job is deleted only after its copy and its index row are written; a failed one is
//! kept with its tries and its error, tried again at every flush and counted in the
//! metrics. The index is rewritten by generations as `push_cdr` is (`compact.rs`).

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use super::compact::{self, CompactError};
use super::inbox;
use crate::formats::push_record::PushRecord;
use crate::sink::{layout, retry};
use crate::state::json::FORMAT_VERSION;

/// The dataset of fetched recordings.
pub const INDEX_DATASET: &str = "push_recording_index";

const JOBS: &str = "_state/push/fetch";

/// Downloads at once.
const FETCHES_IN_FLIGHT: usize = 4;
/// Tries of one download within a flush, the first included.
const TRIES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// How recordings are downloaded.
#[derive(Clone)]
pub struct Fetcher {
    pub client: reqwest::Client,
    pub max_bytes: u64,
}

/// A recording still to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub format_version: u32,
    pub url: String,
    pub ivruniqueid: String,
    pub r#type: String,
    /// The call's time, epoch seconds.
    pub time: i64,
    pub tries: u32,
    pub last_error: Option<String>,
}

/// What a flush's downloads did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub copied: u64,
    /// Downloads that failed this flush (kept for the next).
    pub failed: u64,
    /// Jobs left after this flush.
    pub pending: u64,
}

fn job_key(record: &PushRecord) -> Path {
    let inbox = inbox::object(record);
    Path::from(format!("{JOBS}/{}", inbox.filename().unwrap_or_default()))
}

/// Where the copy of a record's recording goes.
pub fn recording_key(id: &str, kind: &str, time: i64) -> Path {
    let day = DateTime::from_timestamp(time, 0)
        .unwrap_or_default()
        .date_naive();
    let name = inbox::object_name(id, kind).replace(".json", ".mp3");
    layout::recording_object(day, &name)
}

/// Creates the job of each record that has a recording URL (once: create-only).
pub async fn add_jobs<'a>(
    store: &Arc<dyn ObjectStore>,
    records: impl Iterator<Item = &'a PushRecord>,
) -> Result<(), CompactError> {
    for record in records {
        let Some(url) = &record.record else { continue };
        let job = Job {
            format_version: FORMAT_VERSION,
            url: url.clone(),
            ivruniqueid: record.ivruniqueid.clone(),
            r#type: record.r#type.clone(),
            time: record.time,
            tries: 0,
            last_error: None,
        };
        let key = job_key(record);
        let payload = PutPayload::from(serde_json::to_vec(&job).expect("a job serializes"));
        let put = retry::with_backoff("put", retry::is_transient, || {
            store.put_opts(&key, payload.clone(), PutMode::Create.into())
        })
        .await;
        match put {
            Ok(_)
            | Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {}
            Err(source) => {
                return Err(CompactError::Store {
                    action: "write",
                    key: key.to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// One download: the body, at most `max_bytes`.
async fn download(fetcher: &Fetcher, url: &str) -> Result<bytes::Bytes, String> {
    if !url.starts_with("https://") {
        return Err(format!("{url:?} is not an https:// URL"));
    }
    let mut reply = fetcher
        .client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot get {url}: {e}"))?;
    if !reply.status().is_success() {
        return Err(format!("{url} answered {}", reply.status()));
    }
    if reply
        .content_length()
        .is_some_and(|n| n > fetcher.max_bytes)
    {
        return Err(format!("{url} is larger than {} bytes", fetcher.max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = reply
        .chunk()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?
    {
        if (body.len() + chunk.len()) as u64 > fetcher.max_bytes {
            return Err(format!("{url} is larger than {} bytes", fetcher.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(body))
}

/// A download tried up to [`TRIES`] times, waiting longer each time.
async fn download_with_backoff(fetcher: &Fetcher, url: &str) -> Result<bytes::Bytes, String> {
    let mut delay = FIRST_DELAY;
    let mut last = String::new();
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
        match download(fetcher, url).await {
            Ok(body) => return Ok(body),
            Err(e) if !url.starts_with("https://") => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// An index row of a copied recording.
struct Copied {
    job: Job,
    key: Path,
    size: u64,
    sha256: String,
    at: DateTime<Utc>,
}

/// Works through the jobs: downloads, copies, index rows; then deletes the jobs done.
pub async fn fetch_pending(
    store: &Arc<dyn ObjectStore>,
    fetcher: &Fetcher,
) -> Result<Fetched, CompactError> {
    let listed = inbox::list_under(store, JOBS)
        .await
        .map_err(|source| CompactError::Store {
            action: "list",
            key: JOBS.into(),
            source,
        })?;
    let results = futures::stream::iter(listed)
        .map(|meta| {
            let store = Arc::clone(store);
            let fetcher = fetcher.clone();
            async move { fetch_one(&store, &fetcher, meta.location).await }
        })
        .buffer_unordered(FETCHES_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut fetched = Fetched::default();
    let mut copied: Vec<(Path, Copied)> = Vec::new();
    for result in results {
        match result? {
            Some(Ok(done)) => copied.push(done),
            Some(Err(())) => fetched.failed += 1,
            None => {}
        }
    }
    fetched.pending = fetched.failed;
    let mut days: std::collections::BTreeMap<NaiveDate, Vec<&Copied>> = Default::default();
    for (_, c) in &copied {
        days.entry(compact::call_date_of(c.job.time))
            .or_default()
            .push(c);
    }
    for (day, rows) in days {
        write_index(store, day, &rows).await?;
    }
    for (job, _) in &copied {
        inbox::remove(store, job)
            .await
            .map_err(|source| CompactError::Store {
                action: "delete",
                key: job.to_string(),
                source,
            })?;
    }
    fetched.copied = copied.len() as u64;
    Ok(fetched)
}

/// Downloads one job's recording and copies it; `Err(())` when the download failed
/// (the job is updated with the error), `None` when the job is gone.
async fn fetch_one(
    store: &Arc<dyn ObjectStore>,
    fetcher: &Fetcher,
    key: Path,
) -> Result<Option<Result<(Path, Copied), ()>>, CompactError> {
    let read = retry::with_backoff("get", retry::is_transient, || async {
        store.get(&key).await?.bytes().await
    })
    .await;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => {
            return Err(CompactError::Store {
                action: "read",
                key: key.to_string(),
                source,
            });
        }
    };
    let Ok(mut job) = serde_json::from_slice::<Job>(&bytes) else {
        tracing::error!(object = %key, "a recording job is not readable; move it away");
        return Ok(Some(Err(())));
    };
    match download_with_backoff(fetcher, &job.url).await {
        Ok(body) => {
            let target = recording_key(&job.ivruniqueid, &job.r#type, job.time);
            let size = body.len() as u64;
            let sha256 = crate::pipeline::hex(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body).as_ref(),
            );
            let payload = PutPayload::from(body);
            retry::with_backoff("put", retry::is_transient, || {
                store.put(&target, payload.clone())
            })
            .await
            .map_err(|source| CompactError::Store {
                action: "write",
                key: target.to_string(),
                source,
            })?;
            Ok(Some(Ok((
                key,
                Copied {
                    job,
                    key: target,
                    size,
                    sha256,
                    at: Utc::now(),
                },
            ))))
        }
        Err(error) => {
            job.tries += 1;
            tracing::warn!(url = %job.url, ivruniqueid = %job.ivruniqueid, tries = job.tries, %error, "a recording could not be downloaded; tried again at the next flush");
            job.last_error = Some(error);
            let payload = PutPayload::from(serde_json::to_vec(&job).expect("a job serializes"));
            if let Err(e) = store.put(&key, payload).await {
                tracing::warn!(object = %key, error = %e, "could not record the failed try");
            }
            Ok(Some(Err(())))
        }
    }
}

/// The schema of `push_recording_index`.
pub fn index_schema() -> SchemaRef {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("ivruniqueid", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("time", utc(), false),
        Field::new("url", DataType::Utf8, false),
        Field::new("object_key", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("fetched_at", utc(), false),
    ]))
}

fn index_batch(rows: &[&Copied]) -> RecordBatch {
    let text = |f: &dyn Fn(&Copied) -> &str| -> ArrayRef {
        let mut b = StringBuilder::new();
        for r in rows {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let time = |f: &dyn Fn(&Copied) -> i64| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for r in rows {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let mut size = Int64Builder::new();
    for r in rows {
        size.append_value(r.size as i64);
    }
    RecordBatch::try_new(
        index_schema(),
        vec![
            text(&|r| &r.job.ivruniqueid),
            text(&|r| &r.job.r#type),
            time(&|r| r.job.time * 1_000_000),
            text(&|r| &r.job.url),
            text(&|r| r.key.as_ref()),
            Arc::new(size.finish()),
            text(&|r| &r.sha256),
            time(&|r| r.at.timestamp_micros()),
        ],
    )
    .expect("columns follow the schema")
}

/// Adds `rows` to the day's index (a new generation; keys it has are left out).
async fn write_index(
    store: &Arc<dyn ObjectStore>,
    day: NaiveDate,
    rows: &[&Copied],
) -> Result<(), CompactError> {
    let found = compact::generations(store, INDEX_DATASET, day).await?;
    let current = found.last().cloned();
    let stale = found
        .iter()
        .filter(|(g, _)| Some(*g) != current.as_ref().map(|c| c.0));
    compact::remove_all(store, stale.map(|(_, key)| key)).await?;
    let mut batches = match &current {
        Some((_, key)) => compact::read_batches(store, key).await?,
        None => Vec::new(),
    };
    let mut have = std::collections::HashSet::new();
    for batch in &batches {
        let ids = batch.column(0).as_string::<i32>();
        let kinds = batch.column(1).as_string::<i32>();
        for (id, kind) in ids.iter().zip(kinds.iter()) {
            have.insert((id.unwrap_or("").to_string(), kind.unwrap_or("").to_string()));
        }
    }
    let fresh: Vec<&Copied> = rows
        .iter()
        .copied()
        .filter(|r| !have.contains(&(r.job.ivruniqueid.clone(), r.job.r#type.clone())))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    batches.push(index_batch(&fresh));
    let next = current.as_ref().map_or(1, |(g, _)| g + 1);
    compact::put_parquet(
        store,
        &compact::day_object(INDEX_DATASET, day, next),
        &index_schema(),
        &batches,
    )
    .await?;
    if let Some((_, key)) = current {
        compact::remove_all(store, [key].iter()).await?;
    }
    Ok(())
}
