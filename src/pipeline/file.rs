//! The steps every source file goes through, whatever its format: compare with the
//! ledger, confirm the download is whole, then write the outputs and commit.

use std::fs::File;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::connection::Connection;
use super::parse::Parsed;
use super::{Context, FileOutcome, IngestError, Ingested, Phases, millis};
use crate::formats::table::Table;
use crate::model::Category;
use crate::retention::Target;
use crate::sink::retry;
use crate::sink::upload::upload_file;
use crate::sink::{layout, overlap};
use crate::source::RemoteFile;
use crate::state::json::FORMAT_VERSION;
use crate::state::ledger::LedgerEntry;

/// What the ledger says about a file on the source.
pub enum Check {
    /// Nothing to transfer.
    Done(FileOutcome),
    /// New or changed: fetch it.
    Fetch {
        remote: RemoteFile,
        previous: Option<LedgerEntry>,
    },
}

/// Looks the file up on the source and in the ledger.
pub async fn check(
    ctx: &Context,
    connection: &mut Connection<'_>,
    category: Category,
    day: NaiveDate,
    path: &str,
    now: DateTime<Utc>,
) -> Result<Check, IngestError> {
    let Some(remote) = connection.source().await?.stat(path).await? else {
        return Ok(Check::Done(FileOutcome::NotThereYet {
            path: path.to_string(),
            due: ctx.settings.schedule.missing(day, now),
        }));
    };
    let previous = ctx.ledger.get(category, day).await?;
    if let Some(previous) = &previous {
        if previous.size == remote.size && previous.modified == modified_text(&remote) {
            return Ok(Check::Done(FileOutcome::Unchanged {
                path: path.to_string(),
            }));
        }
    }
    Ok(Check::Fetch { remote, previous })
}

/// Refuses a download that is short, or of a file that changed while it was read
/// (still being uploaded): it is tried again on the next run.
pub async fn confirm_complete(
    connection: &mut Connection<'_>,
    remote: &RemoteFile,
    bytes: u64,
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
    match connection.source().await?.stat(&remote.path).await? {
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

/// Uploads the outputs, removes what an earlier version produced and no longer does,
/// then commits the ledger entry, in that order, so the ledger never lists an object
/// that is not complete.
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
        quarantine: Vec::new(),
    };
    if let Some(previous) = &previous {
        if previous.sha256 == entry.sha256 {
            // Only the time changed: the output already matches.
            entry.outputs.clone_from(&previous.outputs);
            entry.quarantine.clone_from(&previous.quarantine);
            ctx.ledger.put(day, category, &entry).await?;
            return Ok(FileOutcome::SameContent { path });
        }
        tracing::warn!(
            file = %path,
            old_size = previous.size,
            new_size = remote.size,
            old_sha256 = %previous.sha256,
            new_sha256 = %entry.sha256,
            "the file changed on the server since it was ingested; ingesting it again and replacing that day's output"
        );
    }
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
            let key = layout::data_object(dataset.table.dataset, part.date, day);
            let file = if part.date == day {
                if previous.is_some() {
                    report_correction(ctx, dataset.table, &path, &key, &part.file).await?;
                }
                claim_from_spill(ctx, dataset.table, &key, &part.file).await?;
                part.file
            } else {
                match spill_not_yet_written(ctx, dataset.table, part.date, part.file).await? {
                    (Some(file), dropped) => {
                        entry.rows_written -= dropped;
                        entry.duplicates_dropped += dropped;
                        file
                    }
                    (None, dropped) => {
                        entry.rows_written -= dropped;
                        entry.duplicates_dropped += dropped;
                        continue;
                    }
                }
            };
            upload(ctx, &key, file).await?;
            crate::crash::point("data-written");
            entry.outputs.push(key.to_string());
        }
        if let Some(file) = dataset.quarantine {
            let key = layout::quarantine_object(dataset.table.dataset, day);
            upload(ctx, &key, file).await?;
            entry.quarantine.push(key.to_string());
        }
    }
    if let Some(previous) = &previous {
        remove_stale(ctx, previous, &entry).await?;
    }
    crate::crash::point("before-ledger");
    ctx.ledger.put(day, category, &entry).await?;
    crate::crash::point("ledger-written");
    Ok(FileOutcome::Ingested(Ingested {
        path,
        bytes,
        rows_written: entry.rows_written,
        rows_rejected: entry.rows_rejected,
        duplicates_dropped: entry.duplicates_dropped,
        replaced: previous.is_some(),
        seconds: started.elapsed().as_secs_f64(),
        phases: Phases {
            transfer_ms: millis(transferred - started),
            parse_ms: millis(parse_done.saturating_duration_since(transferred)),
            write_ms: millis(parse_done.elapsed()),
        },
    }))
}

/// Spill rows (calls of `date`, in another day's file) minus the ids the file of
/// `date` itself already wrote; with how many rows were dropped.
async fn spill_not_yet_written(
    ctx: &Context,
    table: &'static Table,
    date: NaiveDate,
    spill: File,
) -> Result<(Option<File>, u64), IngestError> {
    let home = layout::data_object(table.dataset, date, date);
    let Some(home_bytes) = read_object(ctx, &home).await? else {
        return Ok((Some(spill), 0));
    };
    let parquet_error = |e: parquet::errors::ParquetError| IngestError::Spool {
        detail: e.to_string(),
    };
    let spill_ids =
        overlap::ids(table, spill.try_clone().map_err(io_error)?, None).map_err(parquet_error)?;
    let written = overlap::ids(table, home_bytes, Some(&spill_ids)).map_err(parquet_error)?;
    if written.is_empty() {
        return Ok((Some(spill), 0));
    }
    tracing::info!(partition = %home, rows = written.len(), "rows the day's own file already has are not written again");
    let kept = overlap::without(table, spill, &written).map_err(parquet_error)?;
    Ok((kept.map(|(file, _)| file), written.len() as u64))
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
    let Some(old) = read_object(ctx, key).await? else {
        return Ok(());
    };
    let old = overlap::ids(table, old, None).map_err(parquet_error)?;
    let new =
        overlap::ids(table, new.try_clone().map_err(io_error)?, None).map_err(parquet_error)?;
    let added = new.difference(&old).count();
    let removed = old.difference(&new).count();
    tracing::warn!(file = %path, dataset = table.dataset, rows_before = old.len(), rows_after = new.len(), added, removed, "corrected file: the day's rows are replaced");
    Ok(())
}

/// Removes the ids of a day's own file (`home`) from what other files spilled into
/// the same partition before it arrived.
async fn claim_from_spill(
    ctx: &Context,
    table: &'static Table,
    home: &Path,
    ours: &File,
) -> Result<(), IngestError> {
    let parquet_error = |e: parquet::errors::ParquetError| IngestError::Spool {
        detail: e.to_string(),
    };
    let folder = Path::from(
        home.as_ref()
            .rsplit_once('/')
            .map_or("", |(folder, _)| folder),
    );
    let others: Vec<_> = ctx
        .store
        .list(Some(&folder))
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| IngestError::Write {
            key: folder.to_string(),
            detail: e.to_string(),
        })?;
    for other in others.into_iter().filter(|o| &o.location != home) {
        let Some(bytes) = read_object(ctx, &other.location).await? else {
            continue;
        };
        let theirs = overlap::ids(table, bytes.clone(), None).map_err(parquet_error)?;
        let shared = overlap::ids(table, ours.try_clone().map_err(io_error)?, Some(&theirs))
            .map_err(parquet_error)?;
        if shared.is_empty() {
            continue;
        }
        tracing::info!(object = %other.location, rows = shared.len(), "rows now written by their own day's file removed from another file's output");
        match overlap::without(table, bytes, &shared).map_err(parquet_error)? {
            Some((rest, _)) => upload(ctx, &other.location, rest).await?,
            None => {
                let key = other.location.clone();
                retry::with_backoff("delete", retry::is_transient, || ctx.store.delete(&key))
                    .await
                    .map_err(|e| IngestError::Write {
                        key: key.to_string(),
                        detail: e.to_string(),
                    })?;
            }
        }
    }
    Ok(())
}

/// An object's bytes, or `None` if there is no such object.
async fn read_object(ctx: &Context, key: &Path) -> Result<Option<bytes::Bytes>, IngestError> {
    let read = retry::with_backoff("get", retry::is_transient, || async {
        match ctx.store.get(key).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        }
    })
    .await;
    match read {
        Ok(bytes) => Ok(Some(bytes)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(IngestError::Write {
            key: key.to_string(),
            detail: e.to_string(),
        }),
    }
}

fn io_error(e: std::io::Error) -> IngestError {
    IngestError::Spool {
        detail: e.to_string(),
    }
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

/// Deletes objects the previous version of the file produced and this one does not.
async fn remove_stale(
    ctx: &Context,
    previous: &LedgerEntry,
    current: &LedgerEntry,
) -> Result<(), IngestError> {
    let keep: Vec<&String> = current.outputs.iter().chain(&current.quarantine).collect();
    for key in previous.outputs.iter().chain(&previous.quarantine) {
        if keep.contains(&key) {
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
