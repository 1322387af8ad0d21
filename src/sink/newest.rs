//! Newest wins: one row per key in a whole dataset (not per partition), the row of the
//! key's newest version, for records the provider rewrites later (a session's metadata
//! file is written again after the session ends).
//!
//! # The rule
//!
//! A *group* is a main table, whose id column is the key, and child tables whose id
//! column holds their parent's key (a session's participants and transfers). A
//! version of a key is ranked by `(updated, modified, file)`: the record's own update
//! time, then the file's modification time, then the file's name; a missing time
//! ranks below any time. The dataset holds, for every key, the rows (main and
//! children) of its highest-ranked version seen so far, in the partition of that
//! version's date (`<dataset>/date=D/`), and nowhere else. A lower-ranked version that
//! arrives later changes nothing (it is *stale*); the same version again changes
//! nothing (*unchanged*).
//!
//! # Layout
//!
//! ```text
//! <dataset>/date=D/b<batch>.parquet            the rows a batch won, per table and date
//! _state/newest/<group>/head.json              the next batch number, and the batch in flight
//! _state/newest/<group>/index/<shard>.json     per key: its version, date and batch (256 shards)
//! ```
//!
//! Files come in batches (`pipeline::changed`), and a batch writes one object per
//! table and date it has winners for, so many small files make few objects. A key's
//! newer version removes its rows from the older batch's objects (an object left
//! empty is deleted). The index is sharded by a hash of the key: a batch reads and
//! rewrites only the shards of its keys, one at a time.
//!
//! # Crash safety
//!
//! [`apply`] first records in the head every object the batch may write (`pending`),
//! then writes them, then records the rest of its work (the rows to remove from older
//! objects and the index entries) as the head's journal in one atomic put, then does
//! that work and clears the journal. [`recover`], run before the next batch, deletes
//! what a batch that stopped before its journal wrote (its number is used again), and
//! finishes the work of a journal; every step of that work can be done twice. So a
//! crash at any point leaves, after the next pass, what an uninterrupted pass leaves.
//!
//! Whoever writes a group holds its feed's folder lease (one writer at a time), and
//! the partition leases of what a batch writes, as `sink::partition`'s writers do.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::DataType;
use arrow_select::filter::filter_record_batch;
use chrono::NaiveDate;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use parquet::file::reader::ChunkReader;
use serde::{Deserialize, Serialize};

use super::partition::{self, Partition, PartitionError};
use super::partitioned::{Part, write_file};
use crate::formats::table::Table;
use crate::state::json::{FORMAT_VERSION, JsonStore, StateError};

/// Shards of a group's index.
const SHARDS: u64 = 256;

/// A main table and its children, which follow it (`tables[0]` is the main table),
/// each with the column that holds the key (Text or Int64).
pub struct Group {
    /// Names the group's state (`_state/newest/<name>/`): the main dataset's name.
    pub name: &'static str,
    pub tables: &'static [(&'static Table, &'static str)],
}

/// How one version of a key ranks: the higher wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// The record's own update time (µs since the epoch, UTC).
    pub updated: Option<i64>,
    /// The file's modification time (µs).
    pub modified: Option<i64>,
    /// The file's path on the source, as the rows' `_source_file` holds it.
    pub file: String,
}

/// One version of one key that a batch brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub version: Version,
    /// Its partition.
    pub date: NaiveDate,
}

/// What became of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Its rows are in (replacing an older version's, if `replaced`).
    Won { replaced: bool },
    /// An older version than the one in: nothing written.
    Stale,
    /// The version that is in already.
    Unchanged,
}

/// Why a batch could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NewestError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// What a batch will do, worked out from the index before anything is written.
pub struct Plan {
    batch: u64,
    /// One per candidate, in the order given.
    pub decisions: Vec<Decision>,
    /// The winning version's file of each key that won.
    winners: HashMap<String, String>,
    /// The dates the winners go to.
    dates: BTreeSet<NaiveDate>,
    journal: Journal,
}

impl Plan {
    /// The partitions the batch writes into (its own and those it removes rows from),
    /// in order: the leases to hold while it is applied.
    pub fn partitions(&self, group: &Group) -> Vec<Partition> {
        let mut dates = self.dates.clone();
        dates.extend(self.journal.removals.iter().map(|r| r.date));
        let mut partitions: Vec<Partition> = group
            .tables
            .iter()
            .flat_map(|&(table, _)| dates.iter().map(move |&date| Partition { table, date }))
            .collect();
        partitions.sort();
        partitions
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Head {
    format_version: u32,
    /// The number the next batch's objects get.
    next_batch: u64,
    /// Objects the batch in flight may have written before its journal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<String>,
    /// The rest of the work of the batch in flight, once its objects are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal: Option<Journal>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Journal {
    /// Rows of keys that a newer version took, to remove from an older batch's objects.
    removals: Vec<Removal>,
    /// New index entries, by shard.
    index: BTreeMap<u64, Vec<Entry>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Removal {
    date: NaiveDate,
    batch: u64,
    keys: Vec<String>,
}

/// Where a key's rows are, and which version they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    key: String,
    version: Version,
    date: NaiveDate,
    batch: u64,
}

#[derive(Serialize, Deserialize)]
struct Shard {
    format_version: u32,
    /// Sorted by key.
    entries: Vec<Entry>,
}

/// The object of one table's rows a batch won for one date.
pub fn batch_object(dataset: &str, date: NaiveDate, batch: u64) -> Path {
    Path::from(format!("{dataset}/date={date}/b{batch:010}.parquet"))
}

/// The folder of a group's state (purge empties it).
pub fn state_root(group: &Group) -> String {
    format!("_state/newest/{}", group.name)
}

fn head_object(group: &Group) -> Path {
    Path::from(format!("{}/head.json", state_root(group)))
}

fn shard_object(group: &Group, shard: u64) -> Path {
    Path::from(format!("{}/index/{shard:03}.json", state_root(group)))
}

fn shard_of(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % SHARDS
}

/// Finishes or undoes the batch a crash interrupted, if there is one.
pub async fn recover(
    store: &Arc<dyn ObjectStore>,
    json: &JsonStore,
    group: &Group,
) -> Result<(), NewestError> {
    let mut head = head(json, group).await?;
    if let Some(journal) = head.journal.take() {
        finish(store, json, group, head, &journal).await?;
    } else if !head.pending.is_empty() {
        for key in std::mem::take(&mut head.pending) {
            partition::delete(store, &Path::from(key)).await?;
        }
        json.put(&head_object(group), &head).await?;
    }
    Ok(())
}

/// Decides each candidate against the index (and the others of the batch).
pub async fn plan(
    json: &JsonStore,
    group: &Group,
    candidates: &[Candidate],
) -> Result<Plan, NewestError> {
    let head = head(json, group).await?;
    let batch = head.next_batch;
    // The best candidate of each key within the batch.
    let mut best: HashMap<&str, usize> = HashMap::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let entry = best.entry(&candidate.key).or_insert(index);
        if candidates[*entry].version < candidate.version {
            *entry = index;
        }
    }
    let mut decisions: Vec<Decision> = candidates
        .iter()
        .enumerate()
        .map(|(index, candidate)| {
            let top = &candidates[best[candidate.key.as_str()]];
            if best[candidate.key.as_str()] == index {
                Decision::Won { replaced: false }
            } else if top.version == candidate.version {
                Decision::Unchanged
            } else {
                Decision::Stale
            }
        })
        .collect();
    let mut by_shard: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &index in best.values() {
        by_shard
            .entry(shard_of(&candidates[index].key))
            .or_default()
            .push(index);
    }
    let mut journal = Journal::default();
    let mut removals: BTreeMap<(NaiveDate, u64), Vec<String>> = BTreeMap::new();
    let (mut winners, mut dates) = (HashMap::new(), BTreeSet::new());
    for (shard, mut indexes) in by_shard {
        indexes.sort_by(|a, b| candidates[*a].key.cmp(&candidates[*b].key));
        let stored = index_shard(json, group, shard).await?;
        let mut entries = Vec::new();
        for index in indexes {
            let candidate = &candidates[index];
            let known = stored.get(&candidate.key);
            match known {
                Some(known) if known.version == candidate.version => {
                    decisions[index] = Decision::Unchanged;
                    continue;
                }
                Some(known) if known.version > candidate.version => {
                    decisions[index] = Decision::Stale;
                    continue;
                }
                Some(known) => {
                    removals
                        .entry((known.date, known.batch))
                        .or_default()
                        .push(candidate.key.clone());
                    decisions[index] = Decision::Won { replaced: true };
                }
                None => {}
            }
            winners.insert(candidate.key.clone(), candidate.version.file.clone());
            dates.insert(candidate.date);
            entries.push(Entry {
                key: candidate.key.clone(),
                version: candidate.version.clone(),
                date: candidate.date,
                batch,
            });
        }
        if !entries.is_empty() {
            journal.index.insert(shard, entries);
        }
    }
    journal.removals = removals
        .into_iter()
        .map(|((date, batch), mut keys)| {
            keys.sort();
            Removal { date, batch, keys }
        })
        .collect();
    Ok(Plan {
        batch,
        decisions,
        winners,
        dates,
        journal,
    })
}

/// Writes what `plan` decided: the winners' rows from `parts` (per table of the
/// group, the batch's rows by date, as `PartitionedWriter` gives them), then the
/// removals and the index. Returns the main table's rows written per winning file.
pub async fn apply(
    store: &Arc<dyn ObjectStore>,
    json: &JsonStore,
    group: &Group,
    plan: Plan,
    parts: Vec<Vec<Part>>,
) -> Result<HashMap<String, u64>, NewestError> {
    let mut written: HashMap<String, u64> = HashMap::new();
    if plan.winners.is_empty() {
        return Ok(written);
    }
    let mut head = head(json, group).await?;
    head.pending = group
        .tables
        .iter()
        .flat_map(|(table, _)| {
            plan.dates
                .iter()
                .map(|&date| batch_object(table.dataset, date, plan.batch).to_string())
        })
        .collect();
    json.put(&head_object(group), &head).await?;
    for (position, (&(table, key_column), parts)) in group.tables.iter().zip(parts).enumerate() {
        for part in parts {
            let key = batch_object(table.dataset, part.date, plan.batch);
            let Some((file, rows)) = winning_rows(
                table,
                key_column,
                part.file,
                &plan.winners,
                position == 0,
                &mut written,
            )
            .map_err(damaged(&key))?
            else {
                continue;
            };
            tracing::debug!(%key, rows, "writing a batch's winners");
            partition::upload(store, &key, &file).await?;
            crate::crash::point("data-written");
        }
    }
    crate::crash::point("before-ledger");
    head.pending.clear();
    head.journal = Some(plan.journal.clone());
    json.put(&head_object(group), &head).await?;
    crate::crash::point("ledger-written");
    head.journal = None;
    finish(store, json, group, head, &plan.journal).await?;
    Ok(written)
}

/// The journal's work, then the head without it and with the next batch's number.
async fn finish(
    store: &Arc<dyn ObjectStore>,
    json: &JsonStore,
    group: &Group,
    mut head: Head,
    journal: &Journal,
) -> Result<(), NewestError> {
    for removal in &journal.removals {
        let keys: HashSet<&str> = removal.keys.iter().map(String::as_str).collect();
        for &(table, key_column) in group.tables {
            let key = batch_object(table.dataset, removal.date, removal.batch);
            let Some(file) = partition::fetch(store, &key).await? else {
                continue;
            };
            match without_keys(table, key_column, file, &keys).map_err(damaged(&key))? {
                Kept::All => {}
                Kept::Some(file) => partition::upload(store, &key, &file).await?,
                Kept::None => partition::delete(store, &key).await?,
            }
        }
    }
    for (&shard, entries) in &journal.index {
        let mut stored = index_shard(json, group, shard).await?;
        for entry in entries {
            stored.insert(entry.key.clone(), entry.clone());
        }
        let shard_state = Shard {
            format_version: FORMAT_VERSION,
            entries: stored.into_values().collect(),
        };
        json.put(&shard_object(group, shard), &shard_state).await?;
    }
    head.next_batch += 1;
    head.journal = None;
    head.pending.clear();
    head.format_version = FORMAT_VERSION;
    json.put(&head_object(group), &head).await?;
    Ok(())
}

async fn head(json: &JsonStore, group: &Group) -> Result<Head, StateError> {
    Ok(json
        .get::<Head>(&head_object(group))
        .await?
        .unwrap_or(Head {
            format_version: FORMAT_VERSION,
            next_batch: 1,
            ..Head::default()
        }))
}

async fn index_shard(
    json: &JsonStore,
    group: &Group,
    shard: u64,
) -> Result<BTreeMap<String, Entry>, StateError> {
    let stored: Option<Shard> = json.get(&shard_object(group, shard)).await?;
    Ok(stored
        .map(|s| s.entries.into_iter().map(|e| (e.key.clone(), e)).collect())
        .unwrap_or_default())
}

fn damaged(key: &Path) -> impl Fn(ParquetError) -> PartitionError + '_ {
    move |source| PartitionError::Damaged {
        key: key.to_string(),
        source,
    }
}

/// A key column's values as text, whether the table keeps its key as text or a number.
fn keys_of(column: &ArrayRef) -> Result<Vec<Option<String>>, ParquetError> {
    match column.data_type() {
        DataType::Utf8 => Ok(column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()),
        DataType::Int64 => Ok(column
            .as_primitive::<arrow_array::types::Int64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect()),
        other => Err(ParquetError::General(format!(
            "a key column of type {other} is not supported"
        ))),
    }
}

/// The rows of a batch's file that belong to a winning version (their key won, and
/// they come from the winner's file), or `None` when there are none. With `count`,
/// each winning file's rows are added to `written`.
fn winning_rows<R: ChunkReader + 'static>(
    table: &'static Table,
    id: &str,
    input: R,
    winners: &HashMap<String, String>,
    count: bool,
    written: &mut HashMap<String, u64>,
) -> Result<Option<(File, u64)>, ParquetError> {
    let mut kept = Vec::new();
    let mut rows = 0;
    for batch in ParquetRecordBatchReaderBuilder::try_new(input)?.build()? {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        let keys = keys_of(column(&batch, id)?)?;
        let files = column(&batch, "_source_file")?.as_string::<i32>().clone();
        let keep: BooleanArray = keys
            .iter()
            .zip(files.iter())
            .map(|(key, file)| {
                let wins = match (key, file) {
                    (Some(key), Some(file)) => winners.get(key).is_some_and(|w| w == file),
                    _ => false,
                };
                if wins && count {
                    *written
                        .entry(file.unwrap_or_default().to_string())
                        .or_default() += 1;
                }
                Some(wins)
            })
            .collect();
        let filtered =
            filter_record_batch(&batch, &keep).map_err(|e| ParquetError::General(e.to_string()))?;
        rows += filtered.num_rows() as u64;
        if filtered.num_rows() > 0 {
            kept.push(filtered);
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    Ok(Some((write_file(table, &kept)?, rows)))
}

enum Kept {
    All,
    Some(File),
    None,
}

/// The object without the rows of `keys`.
fn without_keys<R: ChunkReader + 'static>(
    table: &'static Table,
    id: &str,
    input: R,
    keys: &HashSet<&str>,
) -> Result<Kept, ParquetError> {
    let (mut kept, mut dropped) = (Vec::new(), 0);
    for batch in ParquetRecordBatchReaderBuilder::try_new(input)?.build()? {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        let keep: BooleanArray = keys_of(column(&batch, id)?)?
            .iter()
            .map(|key| Some(!key.as_deref().is_some_and(|k| keys.contains(k))))
            .collect();
        dropped += keep.false_count();
        let filtered =
            filter_record_batch(&batch, &keep).map_err(|e| ParquetError::General(e.to_string()))?;
        if filtered.num_rows() > 0 {
            kept.push(filtered);
        }
    }
    Ok(match (dropped, kept.is_empty()) {
        (0, _) => Kept::All,
        (_, true) => Kept::None,
        (_, false) => Kept::Some(write_file(table, &kept)?),
    })
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ParquetError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ParquetError::General(format!("no {name} column")))
}
