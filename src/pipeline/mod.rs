//! The ingestion pass: for each requested day, list → skip what the ledger has →
//! fetch → parse → deduplicate → write → commit. One file's failure is recorded and
//! the pass goes on with the rest.

pub mod cdr;
mod connection;
mod dedup;
mod file;
mod parse;
pub(crate) mod partition_lock;
pub mod queue;
pub mod recordings;
mod transfer;

use std::sync::Arc;

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use object_store::ObjectStore;
use thiserror::Error;

use crate::config::Settings;
use crate::formats::cdr_csv::CDR;
use crate::formats::queue_csv::{QUEUE_CALL, QUEUE_USER_CALL};
use crate::formats::table::{FileError, Table};
use crate::model::Category;
use crate::retention::{self, Keep, Removed, RetentionError, Target};
use crate::schedule::Due;
use crate::shutdown::Shutdown;
use crate::sink::partition::PartitionError;
use crate::source::SourceError;
use crate::state::attempts::Attempts;
use crate::state::json::{JsonStore, StateError};
use crate::state::lease::{self, Lease, Leases};
use crate::state::ledger::Ledger;
use connection::Connection;

pub use transfer::hex;

/// Every dataset the daily files write, with the category whose ledger describes it.
pub static DATASETS: [(&Table, Category); 3] = [
    (&CDR, Category::Cdr),
    (&QUEUE_CALL, Category::Queue),
    (&QUEUE_USER_CALL, Category::Queue),
];

/// What a pass works with.
pub struct Context {
    pub settings: Settings,
    pub store: Arc<dyn ObjectStore>,
    pub ledger: Ledger,
    pub attempts: Attempts,
    pub leases: Leases,
    /// The state objects beside the ledger (the run record).
    pub json: JsonStore,
}

impl Context {
    pub fn new(settings: Settings, store: Arc<dyn ObjectStore>) -> Self {
        let json = JsonStore::new(Arc::clone(&store));
        Context {
            ledger: Ledger::new(json.clone()),
            attempts: Attempts::new(json.clone()),
            leases: Leases::new(
                Arc::clone(&store),
                lease::holder_name(),
                settings.ingest.lease,
            ),
            json,
            settings,
            store,
        }
    }
}

/// A file that was transferred and written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub path: String,
    pub bytes: u64,
    pub rows_written: u64,
    pub rows_rejected: u64,
    pub duplicates_dropped: u64,
    /// It replaced the output of an earlier version of the file.
    pub replaced: bool,
    pub seconds: f64,
    pub phases: Phases,
}

/// A duration in whole milliseconds, for log fields.
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where a file's time went, in milliseconds. A CSV is parsed while it downloads, so
/// each phase counts from the end of the one before: `parse_ms` is the parsing left
/// after the last byte arrived, `write_ms` the uploads and the ledger after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases {
    pub transfer_ms: u64,
    pub parse_ms: u64,
    pub write_ms: u64,
}

/// How one file went, when nothing failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    Ingested(Ingested),
    /// Same size and time as in the ledger: nothing transferred.
    Unchanged {
        path: String,
    },
    /// A new time but the same bytes: only the ledger was updated.
    SameContent {
        path: String,
    },
    /// Not on the server (yet); `due` says whether that is a failure.
    NotThereYet {
        path: String,
        due: Due,
    },
    /// Older than the retention limit, or removed by retention: not ingested.
    Expired {
        reason: String,
    },
    /// Another worker is ingesting this unit right now.
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// Why one file failed; the pass goes on with the others.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "{path}: {source}; fix the file on the server or ask the provider, it is tried again on the next run"
    )]
    Format { path: String, source: FileError },
    /// A queue zip that could not be read (damaged, or an entry that does not parse);
    /// each try of the same version counts against `ingest.max_tries`.
    #[error("{path}: {reason} (try {tries} of {max_tries}); {}", after_try(*tries, *max_tries))]
    Zip {
        path: String,
        reason: String,
        tries: u32,
        max_tries: u32,
    },
    #[error(
        "{path} failed {tries} tries, the last with: {last_error}; it is not tried again until it changes on the server (or raise ingest.max_tries)"
    )]
    GaveUp {
        path: String,
        tries: u32,
        last_error: String,
    },
    #[error("{path} is still being uploaded ({detail}); it is tried again on the next run")]
    StillUploading { path: String, detail: String },
    #[error("cannot write {key} to the destination: {detail}")]
    Write { key: String, detail: String },
    #[error(
        "cannot spool to a temporary file: {detail}; check free space in the temporary folder (TMPDIR)"
    )]
    Spool { detail: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(
        "{holder} has been writing a partition this file shares ({lease}) for over {waited_secs} s; the file is tried again on the next run"
    )]
    PartitionBusy {
        lease: String,
        holder: String,
        waited_secs: u64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// What happens to a file after a failed try: on the last one, only what will happen.
fn after_try(tries: u32, max_tries: u32) -> &'static str {
    if tries >= max_tries {
        "it is not tried again until it changes on the server (or raise ingest.max_tries)"
    } else {
        "it is tried again on the next run"
    }
}

/// The result of one file of one day in a pass.
#[derive(Debug)]
pub struct FileReport {
    pub day: NaiveDate,
    pub category: Category,
    pub result: Result<FileOutcome, IngestError>,
}

/// The outcome of a pass.
#[derive(Debug, Default)]
pub struct PassReport {
    pub files: Vec<FileReport>,
    /// Set when the source could not be opened; the days after it were not tried.
    pub source_error: Option<SourceError>,
    pub not_tried: Vec<NaiveDate>,
    /// Set when recordings were asked for.
    pub recordings: Option<Result<recordings::RecordingsReport, IngestError>>,
    /// A shutdown was requested: `not_tried` were left for the next run.
    pub stopped: bool,
    /// What retention removed after the ingestion, per target.
    pub retention: Vec<(Target, Result<Removed, RetentionError>)>,
}

impl PassReport {
    /// Whether anything failed or was missing.
    pub fn is_success(&self) -> bool {
        let recordings_ok = match &self.recordings {
            None => true,
            Some(Ok(report)) => report.failures.is_empty(),
            Some(Err(_)) => false,
        };
        recordings_ok
            && self.source_error.is_none()
            && self.retention.iter().all(|(_, r)| r.is_ok())
            && self.files.iter().all(|f| {
                matches!(&f.result, Ok(o) if !matches!(o, FileOutcome::NotThereYet { due: Due::Overdue { .. }, .. }))
            })
    }
}

/// Told how a pass goes while it runs (for progress): daily files, then recordings.
pub trait Observer: Sync {
    /// A daily file (CDRs, queue calls) of one day is done, however it went.
    fn file_done(&self, file: &FileReport);
    /// The recordings folder was listed: this many recordings of the pass's days are
    /// old enough to copy (some may be in already).
    fn recordings_found(&self, count: u64);
    /// `count` of them are done (copied, in already, or failed); `bytes` were copied.
    fn recordings_done(&self, count: u64, bytes: u64);
}

/// How a pass runs.
#[derive(Clone)]
pub struct PassOptions<'a> {
    /// Days ingested at once, each over its own connection.
    pub parallel_days: usize,
    pub shutdown: Shutdown,
    /// Told about each file and recording as it is done (for progress).
    pub observer: Option<&'a dyn Observer>,
    /// Skip days retention has removed, even if the limit has since been raised: true
    /// for scheduled passes, false when the user names the days (a backfill).
    pub respect_retention_history: bool,
}

impl Default for PassOptions<'_> {
    /// One day at a time, no progress, and a shutdown that never comes.
    fn default() -> Self {
        PassOptions {
            parallel_days: 1,
            shutdown: Shutdown::new(std::time::Duration::ZERO).0,
            observer: None,
            respect_retention_history: false,
        }
    }
}

/// Runs one pass over `days`: each day's files (several days at once if asked), then
/// the recordings of all of them. A connection is opened on first need and again after
/// a failure that broke it; if it cannot be opened the pass stops there, as everything
/// after would fail the same way. `now` decides what is due and which recordings are
/// old enough to be complete. After a shutdown request no new unit is started.
pub async fn run(
    ctx: &Context,
    days: &[NaiveDate],
    now: DateTime<Utc>,
    options: &PassOptions<'_>,
) -> PassReport {
    let queue = Mutex::new(days.iter().copied().collect::<VecDeque<_>>());
    let report = Mutex::new(PassReport::default());
    let worker = || async {
        let mut connection = Connection::new(&ctx.settings.source);
        loop {
            if options.shutdown.is_requested()
                || report.lock().expect("not poisoned").source_error.is_some()
            {
                return;
            }
            let Some(day) = queue.lock().expect("not poisoned").pop_front() else {
                return;
            };
            match options
                .shutdown
                .finish_or_abandon(run_day(
                    ctx,
                    &mut connection,
                    day,
                    now,
                    options.respect_retention_history,
                ))
                .await
            {
                Some(Ok(files)) => {
                    if let Some(observer) = options.observer {
                        files.iter().for_each(|file| observer.file_done(file));
                    }
                    report.lock().expect("not poisoned").files.extend(files);
                }
                Some(Err(e)) => {
                    let mut report = report.lock().expect("not poisoned");
                    report.source_error.get_or_insert(e);
                    report.not_tried.push(day);
                }
                None => report.lock().expect("not poisoned").not_tried.push(day),
            }
        }
    };
    futures::future::join_all(
        (0..options.parallel_days.clamp(1, days.len().max(1))).map(|_| worker()),
    )
    .await;
    let mut report = report.into_inner().expect("not poisoned");
    report
        .not_tried
        .extend(queue.into_inner().expect("not poisoned"));
    report.not_tried.sort();
    report.files.sort_by_key(|f| (f.day, f.category));
    if report.source_error.is_none()
        && !options.shutdown.is_requested()
        && ctx
            .settings
            .ingest
            .categories
            .contains(&Category::Recordings)
    {
        let mut connection = Connection::new(&ctx.settings.source);
        match options
            .shutdown
            .finish_or_abandon(run_recordings(
                ctx,
                &mut connection,
                days,
                now,
                options,
                &mut report,
            ))
            .await
        {
            Some(()) => {}
            None => report.stopped = true,
        }
    }
    report.stopped |= options.shutdown.is_requested();
    if !report.stopped {
        report.retention = enforce_retention(ctx, now.date_naive()).await;
    }
    report
}

/// Deletes what has aged out of every target with a limit.
async fn enforce_retention(
    ctx: &Context,
    today: NaiveDate,
) -> Vec<(Target, Result<Removed, RetentionError>)> {
    let mut results = Vec::new();
    for target in Target::ALL {
        let keep = ctx.settings.retention.keep(target);
        if keep != Keep::Forever {
            results.push((
                target,
                retention::enforce(&ctx.store, &ctx.json, target, keep, today, false).await,
            ));
        }
    }
    results
}

/// The report of a unit retention keeps from being ingested, if it does.
async fn skip_expired(
    ctx: &Context,
    category: Category,
    day: NaiveDate,
    now: DateTime<Utc>,
    respect_history: bool,
) -> Option<FileReport> {
    let result = match expired(
        ctx,
        Target::Data(category),
        day,
        now.date_naive(),
        respect_history,
    )
    .await
    {
        Ok(None) => return None,
        Ok(Some(reason)) => {
            tracing::info!(%day, %category, %reason, "skipped");
            Ok(FileOutcome::Expired { reason })
        }
        Err(e) => Err(IngestError::State(e)),
    };
    Some(FileReport {
        day,
        category,
        result,
    })
}

/// Why `day` of `target` is not to be ingested, if it is not.
async fn expired(
    ctx: &Context,
    target: Target,
    day: NaiveDate,
    today: NaiveDate,
    respect_history: bool,
) -> Result<Option<String>, StateError> {
    let keep = ctx.settings.retention.keep(target);
    if keep.oldest_kept(today).is_some_and(|oldest| day < oldest) {
        return Ok(Some(format!(
            "older than the retention limit ({keep}); not ingested"
        )));
    }
    if respect_history {
        if let Some(through) = retention::deleted_through(&ctx.json, target).await? {
            if day <= through {
                return Ok(Some(format!(
                    "removed by retention (through {through}); scheduled passes do not ingest it again, a backfill can"
                )));
            }
        }
    }
    Ok(None)
}

/// The daily files of one day. An error means the source cannot be opened at all.
async fn run_day(
    ctx: &Context,
    connection: &mut Connection<'_>,
    day: NaiveDate,
    now: DateTime<Utc>,
    respect_history: bool,
) -> Result<Vec<FileReport>, SourceError> {
    let mut files = Vec::new();
    for &category in ctx
        .settings
        .ingest
        .categories
        .iter()
        .filter(|c| **c != Category::Recordings)
    {
        if let Some(skipped) = skip_expired(ctx, category, day, now, respect_history).await {
            files.push(skipped);
            continue;
        }
        let lease = match claim(ctx, category, day, now).await {
            Ok(lease) => lease,
            Err(result) => {
                files.push(FileReport {
                    day,
                    category,
                    result,
                });
                continue;
            }
        };
        if let Err(e) = connection.source().await {
            tracing::error!(error = %e, "cannot open the source");
            ctx.leases.release(&lease).await;
            return Err(e);
        }
        let started = std::time::Instant::now();
        let result = match category {
            Category::Cdr => cdr::ingest_day(ctx, connection, day, now).await,
            _ => queue::ingest_day(ctx, connection, day, now).await,
        };
        ctx.leases.release(&lease).await;
        log_result(day, &result, started.elapsed());
        if let Err(IngestError::Source(e)) = &result {
            connection.check(e);
        }
        files.push(FileReport {
            day,
            category,
            result,
        });
    }
    Ok(files)
}

/// The recordings of `days`, under a lease per day.
async fn run_recordings(
    ctx: &Context,
    connection: &mut Connection<'_>,
    days: &[NaiveDate],
    now: DateTime<Utc>,
    options: &PassOptions<'_>,
    report: &mut PassReport,
) {
    let respect_history = options.respect_retention_history;
    let mut held = Vec::new();
    let mut leases = Vec::new();
    for &day in days {
        if let Some(skipped) =
            skip_expired(ctx, Category::Recordings, day, now, respect_history).await
        {
            report.files.push(skipped);
            continue;
        }
        match claim(ctx, Category::Recordings, day, now).await {
            Ok(lease) => {
                held.push(day);
                leases.push(lease);
            }
            Err(result) => report.files.push(FileReport {
                day,
                category: Category::Recordings,
                result,
            }),
        }
    }
    if !held.is_empty() {
        report.recordings =
            Some(recordings::ingest(ctx, connection, &held, now, options.observer).await);
    }
    for lease in &leases {
        ctx.leases.release(lease).await;
    }
}

/// Takes the lease of one unit of work, or gives the outcome to report instead.
async fn claim(
    ctx: &Context,
    category: Category,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<object_store::path::Path, Result<FileOutcome, IngestError>> {
    match ctx.leases.acquire(category, day, now).await {
        Ok(Lease::Held(key)) => Ok(key),
        Ok(Lease::Busy { holder, expires_at }) => {
            tracing::info!(%day, %category, %holder, until = %expires_at, "another worker is ingesting this; skipped");
            Err(Ok(FileOutcome::Busy {
                holder,
                until: expires_at,
            }))
        }
        Err(e) => Err(Err(IngestError::State(e))),
    }
}

fn log_result(
    day: NaiveDate,
    result: &Result<FileOutcome, IngestError>,
    took: std::time::Duration,
) {
    let duration_ms = millis(took);
    match result {
        Ok(FileOutcome::Ingested(i)) => tracing::info!(
            %day,
            file = %i.path,
            bytes = i.bytes,
            rows = i.rows_written,
            rejected = i.rows_rejected,
            duplicates = i.duplicates_dropped,
            duration_ms,
            transfer_ms = i.phases.transfer_ms,
            parse_ms = i.phases.parse_ms,
            write_ms = i.phases.write_ms,
            "ingested"
        ),
        Ok(FileOutcome::Unchanged { path }) => {
            tracing::info!(%day, file = %path, "already ingested (same size and time); nothing transferred")
        }
        Ok(FileOutcome::SameContent { path }) => {
            tracing::info!(%day, file = %path, "new time but same content; ledger updated, output kept")
        }
        Ok(FileOutcome::NotThereYet {
            path,
            due: Due::NotYet,
        }) => {
            tracing::info!(%day, file = %path, "not due yet: the provider uploads each day's files at 01:00 GMT the next day")
        }
        Ok(FileOutcome::NotThereYet {
            path,
            due: Due::Late { due },
        }) => {
            tracing::warn!(%day, file = %path, %due, "late: due but not on the server yet; tried again on the next pass")
        }
        Ok(FileOutcome::NotThereYet {
            path,
            due: Due::Overdue { due },
        }) => {
            tracing::error!(%day, file = %path, %due, "overdue: not on the server long after it was due")
        }
        Ok(FileOutcome::Busy { .. } | FileOutcome::Expired { .. }) => {}
        Err(e) => tracing::error!(%day, error = %e, "failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the last try said "it is tried again on the next run", and the
    /// run after it repeated that inside "it is tried again when it changes".
    #[test]
    fn the_last_try_says_only_what_will_happen() {
        let zip = |tries| IngestError::Zip {
            path: "QueueCalls/2024-03-01-queue-calls.zip".into(),
            reason: "the zip is truncated or damaged (eof)".into(),
            tries,
            max_tries: 5,
        };
        assert!(
            zip(4)
                .to_string()
                .ends_with("(try 4 of 5); it is tried again on the next run")
        );
        let last = zip(5).to_string();
        assert!(
            last.ends_with("(try 5 of 5); it is not tried again until it changes on the server (or raise ingest.max_tries)"),
            "{last}"
        );
        let gave_up = IngestError::GaveUp {
            path: "QueueCalls/2024-03-01-queue-calls.zip".into(),
            tries: 5,
            last_error: "the zip is truncated or damaged (eof)".into(),
        }
        .to_string();
        assert!(!gave_up.contains("next run"), "{gave_up}");
        assert_eq!(gave_up.matches("tried again").count(), 1, "{gave_up}");
    }
}
