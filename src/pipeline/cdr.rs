//! One day's CDR file: stat → compare with the ledger → download while parsing →
//! write Parquet per call date and the quarantine → commit the ledger entry.

use std::fs::File;
use std::time::Instant;

use chrono::NaiveDate;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::parse::parse;
use super::transfer;
use super::{Context, FileOutcome, IngestError, Ingested};
use crate::formats::cdr_csv::CDR;
use crate::model::Category;
use crate::sink::layout;
use crate::sink::upload::upload_file;
use crate::source::{RemoteFile, Source};
use crate::state::ledger::{FORMAT_VERSION, LedgerEntry};

/// The remote path of a day's CDR file.
pub fn remote_path(folder: &str, day: NaiveDate) -> String {
    format!("{folder}/{day}.csv")
}

/// Ingests the CDR file of `day` unless the ledger shows it is already in.
pub async fn ingest_day(
    ctx: &Context,
    source: &mut dyn Source,
    day: NaiveDate,
) -> Result<FileOutcome, IngestError> {
    let path = remote_path(&ctx.settings.source.folders.cdrs, day);
    let Some(remote) = source.stat(&path).await? else {
        return Ok(FileOutcome::NotThereYet { path });
    };
    let previous = ctx.ledger.get(Category::Cdr, day).await?;
    if let Some(previous) = &previous {
        if previous.size == remote.size && previous.modified == modified_text(&remote) {
            return Ok(FileOutcome::Unchanged { path });
        }
    }

    let started = Instant::now();
    let (mut sink, reader) = transfer::channel();
    let source_file = path.clone();
    let size = remote.size;
    let parser = tokio::task::spawn_blocking(move || parse(&CDR, reader, &source_file, size));
    let downloaded = source.download(&path, &mut sink).await;
    let (bytes, sha256) = sink.finish();
    let parsed = parser
        .await
        .map_err(|e| IngestError::Internal(e.to_string()))?;
    downloaded?;
    let parsed = parsed.map_err(|e| e.with_path(&path))?;
    if bytes != remote.size {
        return Err(IngestError::StillUploading {
            path,
            detail: format!("listed as {} bytes, {bytes} arrived", remote.size),
        });
    }
    if let Some(now) = source.stat(&path).await? {
        if now != remote {
            return Err(IngestError::StillUploading {
                path,
                detail: "its size or time changed during the download".into(),
            });
        }
    }

    let mut entry = LedgerEntry {
        format_version: FORMAT_VERSION,
        category: Category::Cdr.to_string(),
        remote_path: path.clone(),
        size: remote.size,
        modified: modified_text(&remote),
        sha256,
        rows_written: parsed.rows_written,
        rows_rejected: parsed.quarantined,
        duplicates_dropped: parsed.duplicates_dropped,
        outputs: Vec::new(),
        quarantine: None,
    };
    if let Some(previous) = &previous {
        if previous.sha256 == entry.sha256 {
            // Only the time changed: the output already matches.
            entry.outputs.clone_from(&previous.outputs);
            entry.quarantine.clone_from(&previous.quarantine);
            ctx.ledger.put(day, Category::Cdr, &entry).await?;
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
    for column in &parsed.unknown_columns {
        tracing::warn!(file = %path, column = %column, "unknown column ignored");
    }

    for part in parsed.parts {
        let key = layout::data_object(parsed.table.dataset, part.date, day);
        upload(ctx, &key, part.file).await?;
        entry.outputs.push(key.to_string());
    }
    if let Some(file) = parsed.quarantine {
        let key = layout::quarantine_object(parsed.table.dataset, day);
        upload(ctx, &key, file).await?;
        entry.quarantine = Some(key.to_string());
    }
    if let Some(previous) = &previous {
        remove_stale(ctx, previous, &entry).await?;
    }
    ctx.ledger.put(day, Category::Cdr, &entry).await?;
    Ok(FileOutcome::Ingested(Ingested {
        path,
        bytes,
        rows_written: entry.rows_written,
        rows_rejected: entry.rows_rejected,
        duplicates_dropped: entry.duplicates_dropped,
        replaced: previous.is_some(),
        seconds: started.elapsed().as_secs_f64(),
    }))
}

fn modified_text(remote: &RemoteFile) -> Option<String> {
    remote
        .modified
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

async fn upload(ctx: &Context, key: &Path, file: File) -> Result<(), IngestError> {
    upload_file(&ctx.store, key, file)
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
        if !keep.contains(&key) {
            let path = Path::from(key.as_str());
            match ctx.store.delete(&path).await {
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
    }
    Ok(())
}
