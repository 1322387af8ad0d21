//! The steps every source file goes through, whatever its format: compare with the
//! ledger, confirm the download is whole, then write the outputs and commit.

use std::fs::File;
use std::time::Instant;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::connection::{Connection, RetryBudget};
use super::parse::Parsed;
use super::{Context, FileOutcome, IngestError, Ingested, Phases, millis, partition_lock};
use crate::calls;
use crate::feeds;
use crate::formats::table::Table;
use crate::model::Category;
use crate::retention::Target;
use crate::sink::layout;
use crate::sink::partition::{self, Change, Partition};
use crate::sink::retry;
use crate::sink::upload::upload_file;
use crate::source::RemoteFile;
use crate::state::json::FORMAT_VERSION;
use crate::state::ledger::LedgerEntry;

/// What the ledger says about a file on the source.
pub enum Check {
    /// Nothing to transfer.
    Done(FileOutcome),
    /// New or changed: fetch it. (Boxed: an entry is large next to an outcome.)
    Fetch {
        remote: RemoteFile,
        previous: Option<Box<LedgerEntry>>,
        /// The file's retry budget, the stat's retries already drawn from it: its
        /// download and [`confirm_complete`] draw on it too.
        retries: RetryBudget,
    },
}

/// Looks the file up on the source and in the ledger. The file's retry budget starts
/// here (`pipeline::connection`).
pub async fn check(
    ctx: &Context,
    connection: &mut Connection<'_>,
    category: Category,
    day: NaiveDate,
    path: &str,
    now: DateTime<Utc>,
) -> Result<Check, IngestError> {
    let mut retries = connection.retry_budget();
    let Some(remote) = connection.stat(path, &mut retries).await? else {
        return Ok(Check::Done(FileOutcome::NotThereYet {
            path: path.to_string(),
            due: ctx.settings.schedule.missing(day, now),
        }));
    };
    let previous = ctx.ledger.get(category, day).await?;
    if let Some(previous) = previous.as_ref().filter(|p| p.pending.is_empty())
        && previous.size == remote.size
        && previous.modified == modified_text(&remote)
    {
        return Ok(Check::Done(FileOutcome::Unchanged {
            path: path.to_string(),
        }));
    }
    Ok(Check::Fetch {
        remote,
        previous: previous.map(Box::new),
        retries,
    })
}

/// Refuses a download that is short, or of a file that changed while it was read
/// (still being uploaded): it is tried again on the next run.
pub async fn confirm_complete(
    connection: &mut Connection<'_>,
    remote: &RemoteFile,
    bytes: u64,
    retries: &mut RetryBudget,
) -> Result<(), IngestError> {
    let still_uploading = |detail: String| IngestError::StillUploading {
        path: remote.path.clone(),
        detail,
    };
    if bytes != remote.size {
        return Err(still_uploading(format!(
            "listed as {} bytes, {bytes} arrived",
            remote.size
        )));
    }
    match connection.stat(&remote.path, retries).await? {
        Some(now) if now == *remote => Ok(()),
        _ => Err(still_uploading(
            "its size or time changed during the download".into(),
        )),
    }
}

/// A fetched file, parsed into one or more datasets.
pub struct Fetched {
    pub category: Category,
    pub day: NaiveDate,
    pub remote: RemoteFile,
    pub previous: Option<LedgerEntry>,
    pub bytes: u64,
    pub sha256: String,
    pub parsed: Vec<Parsed>,
    pub started: Instant,
    /// When the last byte arrived, and when parsing was done.
    pub transferred: Instant,
    pub parse_done: Instant,
    /// Today, by the pass's clock: rows older than the retention limit are not written.
    pub today: NaiveDate,
}

/// Writes the file's rows into each partition they belong to and settles those
/// partitions (`sink::partition`), removes what an earlier version produced and no
/// longer does, then commits the ledger entry, in that order and under the leases of
/// every partition touched, so the ledger never lists an object that is not complete
/// and no other writer of a shared partition works in between.
pub async fn commit(ctx: &Context, fetched: Fetched) -> Result<FileOutcome, IngestError> {
    let Fetched {
        category,
        day,
        remote,
        previous,
        bytes,
        sha256,
        parsed,
        started,
        transferred,
        parse_done,
        today,
    } = fetched;
    crate::crash::point("downloaded");
    let oldest_kept = ctx
        .settings
        .retention
        .keep(Target::Data(category))
        .oldest_kept(today);
    let path = remote.path.clone();
    let mut entry = LedgerEntry {
        format_version: FORMAT_VERSION,
        category: category.to_string(),
        remote_path: path.clone(),
        size: remote.size,
        modified: modified_text(&remote),
        sha256,
        rows_written: parsed.iter().map(|p| p.rows_written).sum(),
        rows_rejected: parsed.iter().map(|p| p.quarantined).sum(),
        duplicates_dropped: parsed.iter().map(|p| p.duplicates_dropped).sum(),
        outputs: Vec::new(),
        spill: Vec::new(),
        quarantine: Vec::new(),
        pending: Vec::new(),
    };
    // The last version that was done, if any (an unfinished attempt's entry says
    // which one that was, if any).
    let done = previous.as_ref().filter(|p| !p.sha256.is_empty());
    let unfinished = previous.as_ref().is_some_and(|p| !p.pending.is_empty());
    if let Some(previous) = done {
        if previous.sha256 == entry.sha256 && !unfinished {
            // Only the time changed: the output already matches.
            entry.outputs.clone_from(&previous.outputs);
            entry.spill.clone_from(&previous.spill);
            entry.quarantine.clone_from(&previous.quarantine);
            ctx.ledger.put(day, category, &entry).await?;
            return Ok(FileOutcome::SameContent { path });
        }
        if previous.sha256 == entry.sha256 {
            tracing::info!(file = %path, "finishing an ingestion of this file that was interrupted");
        } else {
            tracing::warn!(
                file = %path,
                old_size = previous.size,
                new_size = remote.size,
                old_sha256 = %previous.sha256,
                new_sha256 = %entry.sha256,
                "the file changed on the server since it was ingested; ingesting it again and replacing that day's output"
            );
        }
    }
    let mut contributions: BTreeMap<Partition, Option<(File, u64)>> = BTreeMap::new();
    let mut quarantine = Vec::new();
    for dataset in parsed {
        for column in &dataset.unknown_columns {
            tracing::warn!(file = %path, dataset = dataset.table.dataset, column = %column, "unknown column ignored");
        }
        for part in dataset.parts {
            if oldest_kept.is_some_and(|oldest| part.date < oldest) {
                // The file also holds calls of a day retention has removed: not again.
                tracing::info!(file = %path, call_date = %part.date, rows = part.rows, "rows older than the retention limit not written");
                continue;
            }
            let partition = Partition {
                table: dataset.table,
                date: part.date,
            };
            contributions.insert(partition, Some((part.file, part.rows)));
        }
        if let Some(file) = dataset.quarantine {
            quarantine.push((layout::quarantine_object(dataset.table.dataset, day), file));
        }
    }
    // Partitions the previous version, or an attempt that did not finish, wrote into
    // and this one does not: its rows there go.
    for key in previous
        .iter()
        .flat_map(|p| p.outputs.iter().chain(&p.spill).chain(&p.pending))
    {
        let written = layout::parse_data_object(key).or_else(|| layout::parse_spill_object(key));
        let Some((table, date)) =
            written.and_then(|(dataset, date, _)| Some((table_of(dataset)?, date)))
        else {
            continue;
        };
        if oldest_kept.is_none_or(|oldest| date >= oldest) {
            contributions
                .entry(Partition { table, date })
                .or_insert(None);
        }
    }
    // The calls of every date whose input changes, rebuilt at the end of the pass.
    let calls_dates: BTreeSet<NaiveDate> = contributions
        .keys()
        .filter(|p| calls::rebuild::reads(p.table.dataset))
        .map(|p| p.date)
        .collect();
    let held = partition_lock::hold(
        ctx,
        contributions.keys().map(|p| partition_lock::lease_of(*p)),
    )
    .await?;
    let written = partition_lock::fenced(&held, async {
        // Said before anything is written, so that whatever a crash leaves is found
        // and cleaned up by the next commit of this file, even of another version.
        let mut marker = previous.clone().unwrap_or_else(|| LedgerEntry {
            sha256: String::new(),
            ..entry.clone()
        });
        for key in contributions
            .keys()
            .map(|p| p.data_object(day))
            .chain(quarantine.iter().map(|(key, _)| key.clone()))
        {
            if !marker.pending.contains(&key.to_string()) {
                marker.pending.push(key.to_string());
            }
        }
        ctx.ledger.put(day, category, &marker).await?;
        calls::mark(&ctx.json, calls_dates, &[&path]).await?;
        for (key, file) in quarantine {
            upload(ctx, &key, file).await?;
            entry.quarantine.push(key.to_string());
        }
        write_partitions(ctx, day, &path, done.is_some(), contributions, &mut entry).await?;
        remove_stale_quarantine(ctx, &marker, &entry).await?;
        crate::crash::point("before-ledger");
        partition_lock::confirm(&held).await?;
        ctx.ledger.put(day, category, &entry).await?;
        crate::crash::point("ledger-written");
        Ok::<_, IngestError>(())
    })
    .await;
    partition_lock::release(&held).await;
    written??;
    Ok(FileOutcome::Ingested(Ingested {
        path,
        bytes,
        rows_written: entry.rows_written,
        rows_rejected: entry.rows_rejected,
        duplicates_dropped: entry.duplicates_dropped,
        replaced: done.is_some(),
        seconds: started.elapsed().as_secs_f64(),
        phases: Phases {
            transfer_ms: millis(transferred - started),
            parse_ms: millis(parse_done.saturating_duration_since(transferred)),
            write_ms: millis(parse_done.elapsed()),
        },
    }))
}

/// The table of a dataset a ledger entry names.
fn table_of(dataset: &str) -> Option<&'static Table> {
    feeds::table(dataset)
}

/// Puts the file's contribution to each partition (`None`: it has none any more) and
/// settles the partition; the entry gets the objects and counts that result.
async fn write_partitions(
    ctx: &Context,
    day: NaiveDate,
    path: &str,
    replacing: bool,
    contributions: BTreeMap<Partition, Option<(File, u64)>>,
    entry: &mut LedgerEntry,
) -> Result<(), IngestError> {
    for (partition, contribution) in contributions {
        let own = partition.date == day;
        let (file, rows) = match contribution {
            Some((file, rows)) => (Some(file), rows),
            None => (None, 0),
        };
        let key = partition.data_object(day);
        if let (true, true, Some(file)) = (own, replacing, &file) {
            report_correction(ctx, partition.table, path, &key, file).await?;
        }
        partition::put(&ctx.store, partition, day, file.as_ref()).await?;
        if file.is_some() {
            crate::crash::point("data-written");
        }
        let own_rows = if own { file.as_ref() } else { None };
        let settled = partition::settle(&ctx.store, partition, Some(day), own_rows, true).await?;
        for change in &settled.changes {
            log_change(&key, change);
            // Rows this file takes over from another file's object are duplicates
            // dropped now, so a pass counts them whichever of the two came first.
            entry.duplicates_dropped += match change {
                Change::Write {
                    key: other,
                    rows,
                    before,
                    ..
                } if *other != key => before.saturating_sub(*rows),
                Change::Delete { key: other, rows } if *other != key => *rows,
                _ => 0,
            };
        }
        if file.is_none() {
            continue;
        }
        let visible = if own {
            rows
        } else {
            settled.visible.get(&day).copied().unwrap_or(0)
        };
        let shadowed = rows - visible;
        entry.rows_written -= shadowed;
        entry.duplicates_dropped += shadowed;
        if visible > 0 {
            entry.outputs.push(key.to_string());
        }
        if !own {
            entry.spill.push(partition.spill_object(day).to_string());
        }
    }
    Ok(())
}

/// Says what settling a partition did to the objects of other files than `ours`.
fn log_change(ours: &Path, change: &Change) {
    match change {
        Change::Write {
            key,
            rows,
            shadowed,
            ..
        } if key != ours => {
            tracing::info!(object = %key, rows, shadowed, "another file's rows in this partition rewritten: each id stays with the file of its own day");
        }
        Change::Write { shadowed, .. } if *shadowed > 0 => {
            tracing::info!(object = %ours, rows = shadowed, "rows the day's own file (or an earlier day's) already has are not written again");
        }
        Change::Delete { key, rows } if key != ours => {
            tracing::info!(object = %key, rows, "another file's rows in this partition all belong to the file of their own day: object removed");
        }
        Change::Delete { key, rows } => {
            tracing::info!(object = %key, rows, "every row of this file for the partition is already there from the file of its own day: nothing written");
        }
        Change::Write { .. } => {}
    }
}

/// Logs how a corrected file changes its day: calls added and calls gone, by id.
async fn report_correction(
    ctx: &Context,
    table: &'static Table,
    path: &str,
    key: &Path,
    new: &File,
) -> Result<(), IngestError> {
    let parquet_error = |e: parquet::errors::ParquetError| IngestError::Spool {
        detail: e.to_string(),
    };
    let Some(old) = partition::fetch(&ctx.store, key).await? else {
        return Ok(());
    };
    let changes = partition::id_changes(table, old, new.try_clone().map_err(IngestError::spool)?)
        .map_err(parquet_error)?;
    tracing::warn!(file = %path, dataset = table.dataset, rows_before = changes.before, rows_after = changes.after, added = changes.added, removed = changes.removed, "corrected file: the day's rows are replaced");
    Ok(())
}

/// The server's time as the ledger stores it.
pub fn modified_text(remote: &RemoteFile) -> Option<String> {
    remote
        .modified
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

async fn upload(ctx: &Context, key: &Path, file: File) -> Result<(), IngestError> {
    upload_file(&ctx.store, key, &file)
        .await
        .map(|_| ())
        .map_err(|e| IngestError::Write {
            key: key.to_string(),
            detail: e.to_string(),
        })
}

/// Deletes the quarantine objects the previous version of the file, or an attempt
/// that did not finish, produced and this one does not.
async fn remove_stale_quarantine(
    ctx: &Context,
    previous: &LedgerEntry,
    current: &LedgerEntry,
) -> Result<(), IngestError> {
    let quarantine = |key: &&String| key.starts_with(layout::QUARANTINE);
    for key in previous
        .quarantine
        .iter()
        .chain(previous.pending.iter().filter(quarantine))
    {
        if current.quarantine.contains(key) {
            continue;
        }
        let path = Path::from(key.as_str());
        match retry::with_backoff("delete", retry::is_transient, || ctx.store.delete(&path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                tracing::info!(object = %key, "removed output of the file's previous version");
            }
            Err(e) => {
                return Err(IngestError::Write {
                    key: key.clone(),
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(())
}
