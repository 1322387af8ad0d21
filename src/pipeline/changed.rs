//! The unit of a changed-files feed (`feeds::ChangedFeed`): its folder searched at any
//! depth, and each pass taking the files that are new or changed since the last one.
//!
//! # A pass
//!
//! 1. **List.** The folder tree is listed as a stream (`Source::list_tree`). Names the
//!    feed does not want are counted, files modified within the feed's minimum age are
//!    left for the next pass, and the rest are spooled to temporary files, one per
//!    shard of the state (`state::seen`): nothing of the listing stays in memory.
//! 2. **Compare.** Shard by shard, the spooled files are compared with the state
//!    (size, modification time, version tag): the same mark means nothing to do; a
//!    file over the size limit is refused with an error (and stays unrecorded, so it
//!    is reported on every pass until it changes); the rest go to a to-do spool, in
//!    shard order.
//! 3. **Ingest.** The to-do spool is handed to the feed in batches (at most
//!    [`BATCH_FILES`] files or [`BATCH_BYTES`] bytes), so that many small files make
//!    few output objects.
//! 4. **Record.** A file's mark is written to its shard only after its batch is in.
//!    Because the to-do spool is in shard order, a shard is complete once the batches
//!    have moved past it, and each shard is rewritten at most once a pass.
//!
//! A crash before a batch's files are recorded makes the next pass give the feed the
//! same files again; the feed's ingestion is idempotent, so the output ends as an
//! uninterrupted pass leaves it. Memory holds one shard of the state and one batch,
//! whatever the number of files already seen.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::connection::Connection;
use super::{Context, CopyReport, IngestError, millis};
use crate::feeds::{ChangedFeed, Feed};
use crate::source::RemoteFile;
use crate::state::seen::{Mark, SHARDS, Seen, shard_of};

/// The most files handed to the feed at once.
pub const BATCH_FILES: usize = 5_000;
/// The most bytes (as listed) handed to the feed at once.
pub const BATCH_BYTES: u64 = 32 << 20;
/// Names that are not the feed's, shown in the report (the rest are counted).
const UNMATCHED_SHOWN: usize = 5;

/// Takes what is new or changed in `feed`'s folder.
pub async fn ingest(
    ctx: &Context,
    feed: &'static Feed,
    changed: &'static dyn ChangedFeed,
    connection: &mut Connection<'_>,
    now: DateTime<Utc>,
) -> Result<CopyReport, IngestError> {
    let category = feed.category;
    let folder = ctx.settings.source.folders.of(category).to_string();
    let limits = ctx.settings.ingest.changed(category);
    let min_age = chrono::Duration::from_std(limits.min_age).unwrap_or_default();
    let mut report = CopyReport::default();
    let started = Instant::now();

    let mut listing = Spool::default();
    let mut spool_error = None;
    let (mut unmatched, mut pending) = (super::Unmatched::default(), 0);
    let listed = connection
        .list_tree(&folder, &mut |file| {
            if !changed.wants(&file.path) {
                unmatched.count += 1;
                if unmatched.examples.len() < UNMATCHED_SHOWN {
                    unmatched.examples.push(file.path);
                }
                return;
            }
            // A file written to within `min_age` may still be growing.
            if file.modified.is_some_and(|m| now - m < min_age) {
                pending += 1;
                return;
            }
            if let Err(e) = listing.add(shard_of(&file.path), &Mark::of(&file)) {
                spool_error.get_or_insert(e);
            }
        })
        .await?;
    if let Some(e) = spool_error {
        return Err(IngestError::spool(e));
    }
    report.listed = listed - unmatched.count;
    report.pending = pending;
    if unmatched.count > 0 {
        report.unmatched.insert(None, unmatched);
    }

    let seen = Seen::new(ctx.json.clone(), category);
    let mut todo = Spool::default();
    for shard in 0..SHARDS {
        let files = listing.take(shard).map_err(IngestError::spool)?;
        if files.is_empty() {
            continue;
        }
        let known = seen.shard(shard).await?;
        for mark in files {
            if known.get(&mark.path) == Some(&mark) {
                report.already += 1;
            } else if mark.size > limits.max_bytes {
                report.failures.push((
                    mark.path.clone(),
                    IngestError::TooBig {
                        path: mark.path,
                        size: mark.size,
                        key: limits.max_bytes_key,
                        limit: limits.max_bytes,
                    },
                ));
            } else {
                todo.add(0, &Entry { shard, mark })
                    .map_err(IngestError::spool)?;
            }
        }
    }
    drop(listing);
    report.list_ms = millis(started.elapsed());

    let started = Instant::now();
    let mut done: BTreeMap<u16, Vec<Mark>> = BTreeMap::new();
    let mut batch: Vec<Entry> = Vec::new();
    let mut batch_bytes = 0;
    let mut entries = todo.read::<Entry>(0).map_err(IngestError::spool)?;
    loop {
        let next = entries.next().transpose().map_err(IngestError::spool)?;
        let full = batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES;
        if !batch.is_empty() && (next.is_none() || full) {
            let taken = std::mem::take(&mut batch);
            batch_bytes = 0;
            take_batch(ctx, changed, connection, taken, now, &mut report, &mut done).await;
            // The to-do list is in shard order: shards before the next file's are complete.
            let complete = next.as_ref().map_or(SHARDS, |e| e.shard);
            let later = done.split_off(&complete);
            for (shard, marks) in std::mem::replace(&mut done, later) {
                seen.record(shard, marks).await?;
            }
        }
        let Some(entry) = next else {
            break;
        };
        batch_bytes += entry.mark.size;
        batch.push(entry);
    }
    report.copy_ms = millis(started.elapsed());
    tracing::info!(
        %category,
        listed = report.listed,
        taken = report.copied,
        bytes = report.bytes,
        unchanged = report.already,
        stale = report.stale,
        list_ms = report.list_ms,
        ingest_ms = report.copy_ms,
        "changed files taken"
    );
    Ok(report)
}

/// One batch through the feed; what went in is added to `done`.
async fn take_batch(
    ctx: &Context,
    changed: &'static dyn ChangedFeed,
    connection: &mut Connection<'_>,
    batch: Vec<Entry>,
    now: DateTime<Utc>,
    report: &mut CopyReport,
    done: &mut BTreeMap<u16, Vec<Mark>>,
) {
    let files: Vec<RemoteFile> = batch.iter().map(|e| e.mark.remote()).collect();
    match changed.ingest(ctx, connection, &files, now).await {
        Ok(results) => {
            for (entry, result) in batch.into_iter().zip(results) {
                match result {
                    Ok(taken) => {
                        report.copied += 1;
                        report.bytes += entry.mark.size;
                        report.stale += taken.stale;
                        report.rows += taken.rows;
                        report.rejected += taken.rejected;
                        done.entry(entry.shard).or_default().push(entry.mark);
                    }
                    Err(e) => report.failures.push((entry.mark.path, e)),
                }
            }
        }
        Err(e) => {
            tracing::error!(files = files.len(), first = %files[0].path, error = %e, "a batch failed");
            let first = files[0].path.clone();
            let name = if files.len() == 1 {
                first
            } else {
                format!("{first} and {} more files of its batch", files.len() - 1)
            };
            report.failures.push((name, e));
        }
    }
}

/// A file to take, with the shard of the state it is recorded in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    shard: u16,
    mark: Mark,
}

/// Lines of JSON in temporary files, one file per shard, written once then read back.
#[derive(Default)]
struct Spool {
    files: BTreeMap<u16, BufWriter<File>>,
}

impl Spool {
    fn add<T: serde::Serialize>(&mut self, shard: u16, value: &T) -> std::io::Result<()> {
        let file = match self.files.entry(shard) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(BufWriter::new(tempfile::tempfile()?))
            }
        };
        serde_json::to_writer(&mut *file, value)?;
        file.write_all(b"\n")
    }

    /// The lines of one shard, read back one at a time (the shard's file goes).
    fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        shard: u16,
    ) -> std::io::Result<impl Iterator<Item = std::io::Result<T>> + use<T>> {
        let file = match self.files.remove(&shard) {
            Some(writer) => {
                let mut file = writer.into_inner().map_err(|e| e.into_error())?;
                file.rewind()?;
                Some(BufReader::new(file))
            }
            None => None,
        };
        Ok(file.into_iter().flat_map(|file| {
            file.lines().map(|line| {
                line.and_then(|line| serde_json::from_str(&line).map_err(std::io::Error::other))
            })
        }))
    }

    /// Every line of one shard.
    fn take(&mut self, shard: u16) -> std::io::Result<Vec<Mark>> {
        self.read(shard)?.collect()
    }
}
