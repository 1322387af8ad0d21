//! The steps every feed's files go through (check the ledger, transfer over a
//! connection that reconnects, parse, deduplicate, commit into partitions under their
//! leases), the context a pass works in, and what a file and a pass end as.

mod aside;
pub mod changed;
pub(crate) mod connection;
pub(crate) mod fetch;
pub(crate) mod file;
pub(crate) mod newest_batch;
pub mod parse;
pub(crate) mod partition_lock;
pub(crate) mod transfer;
pub(crate) mod transfer_count;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use object_store::ObjectStore;
use thiserror::Error;

use crate::config::Settings;
use crate::formats::table::FileError;
use crate::model::Category;
use crate::retention::{Removed, RetentionError, Target};
use crate::schedule::Due;
use crate::shutdown::Shutdown;
use crate::sink::partition::PartitionError;
use crate::source::SourceError;
use crate::state::attempts::Attempts;
use crate::state::json::{JsonStore, StateError};
use crate::state::lease::{self, Leases};
use crate::state::ledger::Ledger;

pub use transfer::hex;

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

impl Context {
    /// A connection to the source, opened on first use under a connection slot.
    pub fn connection(&self) -> connection::Connection<'_> {
        connection::Connection::new(&self.settings.source, &self.leases)
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
    #[error(
        "{path} is {size} bytes, over ingest.{key} ({limit}); it is not read. If the file is genuine raise the limit; it is tried again on every run until it changes"
    )]
    TooBig {
        path: String,
        size: u64,
        key: &'static str,
        limit: u64,
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

impl IngestError {
    /// A temporary file that could not be written or read.
    pub fn spool(e: std::io::Error) -> Self {
        IngestError::Spool {
            detail: e.to_string(),
        }
    }
}

/// What happens to a file after a failed try: on the last one, only what will happen.
fn after_try(tries: u32, max_tries: u32) -> &'static str {
    if tries >= max_tries {
        "it is not tried again until it changes on the server (or raise ingest.max_tries)"
    } else {
        "it is tried again on the next run"
    }
}

/// Names in a listed feed's folder that do not match its pattern, of one day (or of none).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub count: u64,
    pub examples: Vec<String>,
}

/// How a listed feed's copies went in one pass.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub listed: u64,
    pub copied: u64,
    pub bytes: u64,
    pub already: u64,
    /// Modified too recently, or grew while copied: left for the next run.
    pub pending: u64,
    /// Records older than the version already in (a changed-files feed): nothing written.
    pub stale: u64,
    /// Rows written, and rows or documents set aside (a changed-files feed).
    pub rows: u64,
    pub rejected: u64,
    /// Names that do not match the pattern, by the day their name starts with, for
    /// the pass's days only (the folder holds every day's); `None`: names that tell
    /// no day, listed on every pass.
    pub unmatched: BTreeMap<Option<NaiveDate>, Unmatched>,
    pub failures: Vec<(String, IngestError)>,
    /// Listing the folder and looking the names up in the ledger.
    pub list_ms: u64,
    /// Copying, all connections together (wall time).
    pub copy_ms: u64,
    /// Writing each touched day's index and ledger entry.
    pub index_ms: u64,
}

impl CopyReport {
    /// Adds the report of another listing of the same folder, for other days.
    pub fn absorb(&mut self, other: CopyReport) {
        // The same folder listed again: its size, not a sum.
        self.listed = self.listed.max(other.listed);
        self.copied += other.copied;
        self.bytes += other.bytes;
        self.already += other.already;
        self.pending += other.pending;
        self.stale += other.stale;
        for (day, unmatched) in other.unmatched {
            // Names of no day are found by every listing; of a day, by its own only.
            self.unmatched.entry(day).or_insert(unmatched);
        }
        self.failures.extend(other.failures);
        self.list_ms += other.list_ms;
        self.copy_ms += other.copy_ms;
        self.index_ms += other.index_ms;
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
    /// What each listed feed asked for copied.
    pub listed: Vec<(Category, Result<CopyReport, IngestError>)>,
    /// A shutdown was requested: `not_tried` were left for the next run.
    pub stopped: bool,
    /// What retention removed after the ingestion, per target.
    pub retention: Vec<(Target, Result<Removed, RetentionError>)>,
    /// The `calls` of the dates the pass (or an earlier, cut short) changed, rebuilt
    /// once each at its end (`None`: the pass stopped before).
    pub calls: Option<Result<crate::calls::Rebuilt, IngestError>>,
}

impl PassReport {
    /// Whether anything failed or was missing.
    pub fn is_success(&self) -> bool {
        let listed_ok = self.listed.iter().all(|(_, copied)| match copied {
            Ok(report) => report.failures.is_empty(),
            Err(_) => false,
        });
        listed_ok
            && self.source_error.is_none()
            && !matches!(self.calls, Some(Err(_)))
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
