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
//! <dataset>/date=D/b<batch>.parquet              the rows a batch wrote, per table and date
//! _state/newest/<group>/head.json                the next batch number, and the batch in flight
//! _state/newest/<group>/index/<shard>.json       per key: its version and date (256 shards)
//! _state/newest/<group>/index/<shard>.next.json  a shard's next version, while a batch is in flight
//! ```
//!
//! Files come in batches (`pipeline::changed`), and a batch writes one object per
//! table and date it has winners for, so many small files make few objects. When a
//! key's newer version takes its rows out of a date, the batch *merges* that date:
//! the rows of every object of the date that the batch does not replace, and the
//! batch's own rows for it, go into one object per table, and the old objects go. So
//! a rewrite costs one write per table and date it touches, whatever the number of
//! batches that wrote there before, and it compacts their small objects too. The
//! index names a key's date, not its object, so moving rows into a merged object
//! touches no other key's entry. The index is sharded by a hash of the key: a batch
//! reads and rewrites only the shards of its keys, one at a time.
//!
//! # Memory
//!
//! The candidates are the caller's; a plan keeps, per key that won, its key's 64-bit
//! hash and its candidate's position (a hash match is confirmed on the key's text, so
//! two keys with one hash stay two keys), and one shard of the index at a time. Rows
//! are streamed from object to object.
//!
//! # Crash safety
//!
//! [`apply`] first records in the head every object the batch may write (`pending`:
//! its data objects and the next versions of its index shards), then writes them,
//! then records the rest of its work (the objects its merged ones replace, and the
//! shards whose next version is written) as the head's journal in one atomic put, then
//! does that work (deletes the replaced objects, puts each next shard in place) and
//! clears the journal. [`recover`], run before the next batch, deletes what a batch
//! that stopped before its journal wrote (its number is used again; the objects it
//! would have replaced are untouched), and finishes the work of a journal; every step
//! of that work can be done twice. So a crash at any point leaves, after the next
//! pass, what an uninterrupted pass leaves.
//!
//! Whoever writes a group holds its feed's folder lease (one writer at a time), and
//! the partition leases of what a batch writes, as `sink::partition`'s writers do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::DataType;
use arrow_select::filter::filter_record_batch;
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use parquet::file::reader::ChunkReader;
use serde::{Deserialize, Serialize};

use super::partition::{self, Partition, PartitionError};
use super::partitioned::{FileWriter, Part};
use super::retry;
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
    /// The file's path on the source, as the rows' `_source_file` holds it (shared by
    /// every key the file brings).
    pub file: Arc<str>,
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
pub struct Plan<'c> {
    batch: u64,
    /// One per candidate, in the order given.
    pub decisions: Vec<Decision>,
    /// The candidates that won, found by key.
    winners: Winners<'c>,
    /// The positions of the winners, in index order (by shard, then key).
    by_shard: Vec<u32>,
    /// The dates the winners go to.
    dates: BTreeSet<NaiveDate>,
    /// The dates that winners take rows out of: merged.
    merged: BTreeSet<NaiveDate>,
    /// The dates whose candidates all won, with their number: a batch's own file of
    /// such a date holds only winning rows.
    all_won: BTreeMap<NaiveDate, u64>,
}

impl Plan<'_> {
    /// The partitions the batch writes into (its own and those it merges), in order:
    /// the leases to hold while it is applied.
    pub fn partitions(&self, group: &Group) -> Vec<Partition> {
        let dates = self.written_dates();
        let mut partitions: Vec<Partition> = group
            .tables
            .iter()
            .flat_map(|&(table, _)| dates.iter().map(move |&date| Partition { table, date }))
            .collect();
        partitions.sort();
        partitions
    }

    fn written_dates(&self) -> BTreeSet<NaiveDate> {
        self.dates.union(&self.merged).copied().collect()
    }

    /// The shards the winners' index entries are in, in order.
    fn shards(&self) -> Vec<u64> {
        let mut shards: Vec<u64> = self
            .by_shard
            .iter()
            .map(|&i| shard_of(&self.winners.candidates[i as usize].key))
            .collect();
        shards.dedup();
        shards
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
    /// Objects of merged dates whose rows the batch's objects now hold: to delete.
    #[serde(default)]
    replaced: Vec<String>,
    /// Shards whose next version is written: to put in place.
    #[serde(default)]
    shards: Vec<u64>,
}

/// Which version of a key is in, and in which date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    key: String,
    version: Version,
    date: NaiveDate,
}

#[derive(Serialize, Deserialize)]
struct Shard {
    format_version: u32,
    /// Sorted by key.
    entries: Vec<Entry>,
}

/// The object of one table's rows a batch wrote for one date.
pub fn batch_object(dataset: &str, date: NaiveDate, batch: u64) -> Path {
    Path::from(format!("{dataset}/date={date}/b{batch:010}.parquet"))
}

/// The folder of a group's state (purge empties it).
pub fn state_root(group: &Group) -> String {
    state_root_of(group.name)
}

/// The folder of the state of the group named `name`.
pub fn state_root_of(name: &str) -> String {
    format!("_state/newest/{name}")
}

fn head_object(group: &Group) -> Path {
    Path::from(format!("{}/head.json", state_root(group)))
}

fn shard_object(group: &Group, shard: u64) -> Path {
    Path::from(format!("{}/index/{shard:03}.json", state_root(group)))
}

fn next_shard_object(group: &Group, shard: u64) -> Path {
    Path::from(format!("{}/index/{shard:03}.next.json", state_root(group)))
}

fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

fn shard_of(key: &str) -> u64 {
    key_hash(key) % SHARDS
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
pub async fn plan<'c>(
    json: &JsonStore,
    group: &Group,
    candidates: &'c [Candidate],
) -> Result<Plan<'c>, NewestError> {
    let head = head(json, group).await?;
    let batch = head.next_batch;
    // Every candidate in index order; a key's versions together, the best first (the
    // first given among equals).
    let mut order: Vec<(u64, u32)> = candidates
        .iter()
        .enumerate()
        .map(|(position, c)| (key_hash(&c.key), position as u32))
        .collect();
    let at = |position: u32| &candidates[position as usize];
    order.sort_unstable_by(|a, b| {
        (a.0 % SHARDS, a.0)
            .cmp(&(b.0 % SHARDS, b.0))
            .then_with(|| at(a.1).key.cmp(&at(b.1).key))
            .then_with(|| at(b.1).version.cmp(&at(a.1).version))
            .then(a.1.cmp(&b.1))
    });
    let mut decisions = vec![Decision::Stale; candidates.len()];
    let mut by_shard = Vec::new();
    let (mut dates, mut merged) = (BTreeSet::new(), BTreeSet::new());
    let mut stored: Option<(u64, Vec<Entry>)> = None;
    for versions in order.chunk_by(|a, b| a.0 == b.0 && at(a.1).key == at(b.1).key) {
        let (hash, best) = versions[0];
        let top = at(best);
        for &(_, other) in &versions[1..] {
            if at(other).version == top.version {
                decisions[other as usize] = Decision::Unchanged;
            }
        }
        let shard = hash % SHARDS;
        if stored.as_ref().is_none_or(|(s, _)| *s != shard) {
            stored = Some((shard, index_shard(json, group, shard).await?));
        }
        let entries = stored
            .as_ref()
            .map(|(_, e)| e.as_slice())
            .unwrap_or_default();
        let known = entries
            .binary_search_by(|e| e.key.as_str().cmp(&top.key))
            .ok()
            .map(|i| &entries[i]);
        let decision = match known {
            Some(known) if known.version == top.version => Decision::Unchanged,
            Some(known) if known.version > top.version => Decision::Stale,
            Some(known) => {
                merged.insert(known.date);
                Decision::Won { replaced: true }
            }
            None => Decision::Won { replaced: false },
        };
        decisions[best as usize] = decision;
        if let Decision::Won { .. } = decision {
            by_shard.push(best);
            dates.insert(top.date);
        }
    }
    let winners = Winners::new(candidates, &by_shard, key_hash);
    let mut tally: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    for (candidate, decision) in candidates.iter().zip(&decisions) {
        let (all, won) = tally.entry(candidate.date).or_default();
        *all += 1;
        *won += u64::from(matches!(decision, Decision::Won { .. }));
    }
    let all_won = tally
        .into_iter()
        .filter(|(_, (all, won))| all == won)
        .map(|(date, (all, _))| (date, all))
        .collect();
    Ok(Plan {
        batch,
        decisions,
        winners,
        by_shard,
        dates,
        merged,
        all_won,
    })
}

/// Writes what `plan` decided: per table of the group and date, the winners' rows from
/// `parts` (the batch's rows by date, as `PartitionedWriter` gives them), with, for a
/// merged date, the rows of the date's objects that stay; then the index. Returns the
/// main table's rows written per winning file.
pub async fn apply(
    store: &Arc<dyn ObjectStore>,
    json: &JsonStore,
    group: &Group,
    plan: Plan<'_>,
    parts: Vec<Vec<Part>>,
) -> Result<HashMap<String, u64>, NewestError> {
    let mut written: HashMap<String, u64> = HashMap::new();
    if plan.winners.is_empty() {
        return Ok(written);
    }
    let dates = plan.written_dates();
    let shards = plan.shards();
    let mut head = head(json, group).await?;
    head.pending = group
        .tables
        .iter()
        .flat_map(|(table, _)| {
            dates
                .iter()
                .map(|&date| batch_object(table.dataset, date, plan.batch).to_string())
        })
        .chain(
            shards
                .iter()
                .map(|&s| next_shard_object(group, s).to_string()),
        )
        .collect();
    json.put(&head_object(group), &head).await?;

    // A date that is not merged and whose candidates all won, each with its one main
    // row in the batch's file (every row a candidate's): the batch's files of that date
    // hold only winning rows and go in as they are, neither read nor encoded again (the
    // first pass over a drop).
    let as_they_are: BTreeSet<NaiveDate> = parts
        .first()
        .into_iter()
        .flatten()
        .filter(|p| !plan.merged.contains(&p.date) && plan.all_won.get(&p.date) == Some(&p.rows))
        .map(|p| p.date)
        .collect();
    for &position in &plan.by_shard {
        let winner = &plan.winners.candidates[position as usize];
        if as_they_are.contains(&winner.date) {
            match written.get_mut(&*winner.version.file) {
                Some(rows) => *rows += 1,
                None => {
                    written.insert(winner.version.file.to_string(), 1);
                }
            }
        }
    }
    let mut replaced = Vec::new();
    for (position, (&(table, key_column), parts)) in group.tables.iter().zip(parts).enumerate() {
        let mut parts: BTreeMap<NaiveDate, Part> = parts.into_iter().map(|p| (p.date, p)).collect();
        let mut count = (position == 0).then_some(&mut written);
        for &date in &dates {
            let key = batch_object(table.dataset, date, plan.batch);
            if as_they_are.contains(&date) {
                if let Some(part) = parts.remove(&date) {
                    tracing::debug!(%key, rows = part.rows, "writing a batch's rows as they are");
                    partition::upload(store, &key, &part.file).await?;
                    crate::crash::point("data-written");
                }
                continue;
            }
            let mut out = FileWriter::new(table);
            if plan.merged.contains(&date) {
                for old in date_objects(store, table.dataset, date).await? {
                    if old == key {
                        continue;
                    }
                    let Some(file) = partition::fetch(store, &old).await? else {
                        continue;
                    };
                    staying_rows(key_column, file, &plan.winners, &mut out)
                        .map_err(damaged(&old))?;
                    replaced.push(old.to_string());
                }
            }
            if let Some(part) = parts.remove(&date) {
                winning_rows(
                    key_column,
                    part.file,
                    &plan.winners,
                    count.as_deref_mut(),
                    &mut out,
                )
                .map_err(damaged(&key))?;
            }
            if let Some((file, rows)) = out.finish().map_err(damaged(&key))? {
                tracing::debug!(%key, rows, "writing a batch's rows");
                partition::upload(store, &key, &file).await?;
                crate::crash::point("data-written");
            }
        }
    }
    for &shard in &shards {
        let next = with_winners(
            index_shard(json, group, shard).await?,
            plan.winners.of_shard(&plan.by_shard, shard),
        );
        json.put(&next_shard_object(group, shard), &next).await?;
    }
    crate::crash::point("index-written");
    crate::crash::point("before-ledger");
    let journal = Journal { replaced, shards };
    head.pending.clear();
    head.journal = Some(journal.clone());
    json.put(&head_object(group), &head).await?;
    crate::crash::point("ledger-written");
    head.journal = None;
    finish(store, json, group, head, &journal).await?;
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
    for old in &journal.replaced {
        partition::delete(store, &Path::from(old.as_str())).await?;
    }
    crate::crash::point("replaced-deleted");
    for &shard in &journal.shards {
        let (next, current) = (next_shard_object(group, shard), shard_object(group, shard));
        // Renamed, not read and written again (one rename on a folder, a server-side
        // copy on a bucket); gone once it is in place, the second time round.
        let renamed = retry::with_backoff("rename", retry::is_transient, || {
            store.rename(&next, &current)
        })
        .await;
        match renamed {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(StateError::Write {
                    key: current.to_string(),
                    source,
                }
                .into());
            }
        }
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

/// A shard's entries, sorted by key.
async fn index_shard(
    json: &JsonStore,
    group: &Group,
    shard: u64,
) -> Result<Vec<Entry>, StateError> {
    let stored: Option<Shard> = json.get(&shard_object(group, shard)).await?;
    Ok(stored.map(|s| s.entries).unwrap_or_default())
}

/// A shard's entries with the winners' (sorted by key, as the entries are) in.
fn with_winners<'c>(entries: Vec<Entry>, winners: impl Iterator<Item = &'c Candidate>) -> Shard {
    let mut merged: BTreeMap<String, Entry> =
        entries.into_iter().map(|e| (e.key.clone(), e)).collect();
    for winner in winners {
        merged.insert(
            winner.key.clone(),
            Entry {
                key: winner.key.clone(),
                version: winner.version.clone(),
                date: winner.date,
            },
        );
    }
    Shard {
        format_version: FORMAT_VERSION,
        entries: merged.into_values().collect(),
    }
}

/// The batch objects of a dataset's date, in name order.
async fn date_objects(
    store: &Arc<dyn ObjectStore>,
    dataset: &str,
    date: NaiveDate,
) -> Result<Vec<Path>, PartitionError> {
    let folder = Path::from(format!("{dataset}/date={date}"));
    let listed = partition::list_folder(store, &folder).await?;
    let mut objects: Vec<Path> = listed
        .into_iter()
        .map(|o| o.location)
        .filter(|p| {
            p.filename()
                .and_then(|n| n.strip_prefix('b')?.strip_suffix(".parquet"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    objects.sort();
    Ok(objects)
}

fn damaged(key: &Path) -> impl Fn(ParquetError) -> PartitionError + '_ {
    move |source| PartitionError::Damaged {
        key: key.to_string(),
        source,
    }
}

/// The candidates that won, found by their key's hash and confirmed on its text.
struct Winners<'c> {
    candidates: &'c [Candidate],
    /// (hash of the key, position of the candidate), sorted.
    by_hash: Vec<(u64, u32)>,
    hash: fn(&str) -> u64,
}

impl<'c> Winners<'c> {
    fn new(candidates: &'c [Candidate], won: &[u32], hash: fn(&str) -> u64) -> Self {
        let mut by_hash: Vec<(u64, u32)> = won
            .iter()
            .map(|&p| (hash(&candidates[p as usize].key), p))
            .collect();
        by_hash.sort_unstable();
        Winners {
            candidates,
            by_hash,
            hash,
        }
    }

    fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The winner of `key`, if it won.
    fn get(&self, key: &str) -> Option<&'c Candidate> {
        let hash = (self.hash)(key);
        let start = self.by_hash.partition_point(|&(h, _)| h < hash);
        self.by_hash[start..]
            .iter()
            .take_while(|&&(h, _)| h == hash)
            .map(|&(_, p)| &self.candidates[p as usize])
            .find(|c| c.key == key)
    }

    /// The winners in `shard`, by key, from the winners' positions in index order.
    fn of_shard<'a>(
        &'a self,
        by_shard: &'a [u32],
        shard: u64,
    ) -> impl Iterator<Item = &'c Candidate> + 'a {
        let shard_at = move |p: &u32| shard_of(&self.candidates[*p as usize].key);
        let start = by_shard.partition_point(|p| shard_at(p) < shard);
        by_shard[start..]
            .iter()
            .take_while(move |p| shard_at(p) == shard)
            .map(|&p| &self.candidates[p as usize])
    }
}

/// Calls `each` with every row's key as text, whether the table keeps its key as text
/// or as a number.
fn each_key(column: &ArrayRef, mut each: impl FnMut(Option<&str>)) -> Result<(), ParquetError> {
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().for_each(each),
        DataType::Int64 => {
            let mut text = String::new();
            for value in column
                .as_primitive::<arrow_array::types::Int64Type>()
                .iter()
            {
                match value {
                    Some(value) => {
                        use std::fmt::Write;
                        text.clear();
                        write!(text, "{value}").expect("a String takes any text");
                        each(Some(&text));
                    }
                    None => each(None),
                }
            }
        }
        other => {
            return Err(ParquetError::General(format!(
                "a key column of type {other} is not supported"
            )));
        }
    }
    Ok(())
}

/// Adds to `out` the rows of a batch's file that belong to a winning version (their key
/// won, and they come from the winner's file). With `count`, each winning file's rows
/// are added to it.
fn winning_rows<R: ChunkReader + 'static>(
    id: &str,
    input: R,
    winners: &Winners,
    mut count: Option<&mut HashMap<String, u64>>,
    out: &mut FileWriter,
) -> Result<(), ParquetError> {
    filter_rows(input, out, |batch, keep| {
        let files = column(batch, "_source_file")?.as_string::<i32>();
        let mut row = 0;
        each_key(column(batch, id)?, |key| {
            let file = files.is_valid(row).then(|| files.value(row));
            row += 1;
            let wins = match (key, file) {
                (Some(key), Some(file)) => {
                    winners.get(key).is_some_and(|w| *w.version.file == *file)
                }
                _ => false,
            };
            if wins && let (Some(count), Some(file)) = (count.as_deref_mut(), file) {
                match count.get_mut(file) {
                    Some(rows) => *rows += 1,
                    None => {
                        count.insert(file.to_string(), 1);
                    }
                }
            }
            keep.push(wins);
        })
    })
}

/// Adds to `out` the rows of an object that stay: those of keys that did not win.
fn staying_rows<R: ChunkReader + 'static>(
    id: &str,
    input: R,
    winners: &Winners,
    out: &mut FileWriter,
) -> Result<(), ParquetError> {
    filter_rows(input, out, |batch, keep| {
        each_key(column(batch, id)?, |key| {
            keep.push(key.is_none_or(|k| winners.get(k).is_none()));
        })
    })
}

/// Adds to `out` the rows of `input` that `decide` keeps, batch by batch.
fn filter_rows<R: ChunkReader + 'static>(
    input: R,
    out: &mut FileWriter,
    mut decide: impl FnMut(&RecordBatch, &mut Vec<bool>) -> Result<(), ParquetError>,
) -> Result<(), ParquetError> {
    let mut keep = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(input)?.build()? {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        keep.clear();
        decide(&batch, &mut keep)?;
        let keep = BooleanArray::from(std::mem::take(&mut keep));
        let filtered =
            filter_record_batch(&batch, &keep).map_err(|e| ParquetError::General(e.to_string()))?;
        out.write(&filtered)?;
    }
    Ok(())
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ParquetError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ParquetError::General(format!("no {name} column")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(key: &str, file: &str) -> Candidate {
        Candidate {
            key: key.to_string(),
            version: Version {
                updated: None,
                modified: None,
                file: file.into(),
            },
            date: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
        }
    }

    /// Keys are found by their hash and confirmed on their text: with a hash that gives
    /// every key the same value, or only two values, each key still finds its own
    /// winner, and a key that did not win finds none.
    #[test]
    fn keys_with_one_hash_stay_apart() {
        let candidates: Vec<Candidate> = (0..50)
            .map(|n| candidate(&format!("key {n}"), &format!("f{n}")))
            .collect();
        let won: Vec<u32> = (0..50).filter(|n| n % 3 != 0).collect();
        let hashes: [fn(&str) -> u64; 3] = [|_| 7, |k| k.len() as u64 % 2, key_hash];
        for hash in hashes {
            let winners = Winners::new(&candidates, &won, hash);
            for (n, c) in candidates.iter().enumerate() {
                let found = winners.get(&c.key);
                if n % 3 == 0 {
                    assert_eq!(found, None, "{}", c.key);
                } else {
                    assert_eq!(found.map(|w| &*w.version.file), Some(&*c.version.file));
                }
            }
            assert_eq!(winners.get("key 50"), None);
            assert_eq!(winners.get(""), None);
        }
    }

    /// The winners of each shard, from the winners in index order, are exactly the
    /// winners whose key is in that shard.
    #[test]
    fn the_winners_of_a_shard_are_those_of_its_keys() {
        let candidates: Vec<Candidate> =
            (0..2_000).map(|n| candidate(&n.to_string(), "f")).collect();
        let mut won: Vec<u32> = (0..2_000).filter(|n| n % 2 == 0).collect();
        let at = |p: &u32| &candidates[*p as usize].key;
        won.sort_by(|a, b| (shard_of(at(a)), at(a)).cmp(&(shard_of(at(b)), at(b))));
        let winners = Winners::new(&candidates, &won, key_hash);
        let mut seen = 0;
        for shard in 0..SHARDS {
            for c in winners.of_shard(&won, shard) {
                assert_eq!(shard_of(&c.key), shard);
                seen += 1;
            }
        }
        assert_eq!(seen, won.len());
    }
}
