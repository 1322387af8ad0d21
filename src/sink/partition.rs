//! Exactly one row per id in a partition (one dataset's rows of one date) that several
//! source files write into: the provider repeats the previous day's last calls at the
//! top of the next day's file, and later feeds (rewritten sessions, overlapping exports)
//! do the same on a larger scale.
//!
//! # The rule
//!
//! A source file's rows for a partition are its *contribution*. Contributions are
//! ranked: the file of the partition's own date first, then the others by source name.
//! The visible object `<dataset>/date=P/<S>.parquet` holds S's contribution without the
//! ids of every higher-ranked contribution, and an object left with no rows is not
//! kept. So a partition is a function of its contributions only, never of the order
//! they arrived in, of how many workers wrote them, or of a crash in between.
//!
//! To recompute a partition when a higher-ranked file arrives, changes or goes, the
//! other files' contributions are kept whole under `_state/spill/<dataset>/date=P/<S>.parquet`
//! (the own file's contribution is its visible object, which is never filtered); the
//! visible objects are derived from them by [`settle`]. A visible object without a
//! kept contribution (written before contributions were kept) counts as its own.
//!
//! # Who may write
//!
//! Whoever writes into a partition holds the partition's lease from its first write to
//! its ledger entry, across threads and processes; [`put`] and [`settle`] assume it.
//! A crash in between leaves the ledger without the file, so its next run writes and
//! settles again, and ends where an uninterrupted run would.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use parquet::file::reader::ChunkReader;
use thiserror::Error;

use super::layout;
use super::partitioned::write_file;
use super::retry;
use super::upload::upload_file;
use crate::formats::table::Table;

/// Why a partition could not be read or written.
#[derive(Debug, Error)]
pub enum PartitionError {
    #[error("cannot read {key} from the destination: {source}")]
    Read {
        key: String,
        source: object_store::Error,
    },
    #[error("cannot write {key} to the destination: {source}")]
    Write { key: String, source: std::io::Error },
    #[error("cannot delete {key} in the destination: {source}")]
    Delete {
        key: String,
        source: object_store::Error,
    },
    #[error(
        "{key} is not a readable Parquet file of this dataset ({source}); delete it, or run `cdr-ingest verify --repair`"
    )]
    Damaged { key: String, source: ParquetError },
    #[error(
        "cannot spool to a temporary file: {0}; check free space in the temporary folder (TMPDIR)"
    )]
    Spool(std::io::Error),
}

/// One dataset's rows of one call date.
#[derive(Debug, Clone, Copy)]
pub struct Partition {
    pub table: &'static Table,
    pub date: NaiveDate,
}

impl Partition {
    fn order_key(&self) -> (&'static str, NaiveDate) {
        (self.table.dataset, self.date)
    }
}

impl PartialEq for Partition {
    fn eq(&self, other: &Self) -> bool {
        self.order_key() == other.order_key()
    }
}
impl Eq for Partition {}
impl PartialOrd for Partition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Partition {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl Partition {
    /// The visible object of `source`'s rows here.
    pub fn data_object(&self, source: NaiveDate) -> Path {
        layout::data_object(self.table.dataset, self.date, source)
    }

    /// Where `source`'s whole contribution is kept when it is not the own file.
    pub fn spill_object(&self, source: NaiveDate) -> Path {
        layout::spill_object(self.table.dataset, self.date, source)
    }

    fn is_own(&self, source: NaiveDate) -> bool {
        source == self.date
    }
}

/// What [`settle`] did (or, not applied, would do) to one visible object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Written with `rows` rows, `shadowed` of its contribution's rows left out; it
    /// had `before` rows (0: it was not there).
    Write {
        key: Path,
        rows: u64,
        shadowed: u64,
        before: u64,
    },
    /// Removed: every row of it belongs to a higher-ranked file, or it has none.
    Delete { key: Path, rows: u64 },
}

/// A settled partition: the rows each non-own source keeps visible, and the changes.
#[derive(Debug, Default)]
pub struct Settlement {
    pub visible: BTreeMap<NaiveDate, u64>,
    pub changes: Vec<Change>,
}

/// Replaces `source`'s contribution to `partition` with `rows` (a Parquet file of the
/// dataset), or removes it. The own file's goes straight to its visible object; the
/// others' are kept whole, and made visible by [`settle`].
pub async fn put(
    store: &Arc<dyn ObjectStore>,
    partition: Partition,
    source: NaiveDate,
    rows: Option<&File>,
) -> Result<(), PartitionError> {
    let visible = partition.data_object(source);
    if partition.is_own(source) {
        return match rows {
            Some(file) => upload(store, &visible, file).await,
            None => delete(store, &visible).await,
        };
    }
    let kept = partition.spill_object(source);
    match rows {
        Some(file) => upload(store, &kept, file).await,
        None => {
            // The visible object first: without its kept contribution it would count as one.
            delete(store, &visible).await?;
            delete(store, &kept).await
        }
    }
}

/// Makes the visible objects of `partition` follow the rule from the contributions;
/// `changed` is the source whose contribution was just replaced (its object is
/// rewritten even when its ids did not change). With `apply` false nothing is written
/// and the changes say what would be. `own_rows` is the own file's contribution when
/// the caller has it at hand, to save downloading it again.
pub async fn settle(
    store: &Arc<dyn ObjectStore>,
    partition: Partition,
    changed: Option<NaiveDate>,
    own_rows: Option<&File>,
    apply: bool,
) -> Result<Settlement, PartitionError> {
    let table = partition.table;
    let visible = sources(store, &layout::data_folder(table.dataset, partition.date)).await?;
    let kept = sources(store, &layout::spill_folder(table.dataset, partition.date)).await?;
    let others: BTreeSet<NaiveDate> = visible
        .iter()
        .chain(&kept)
        .copied()
        .filter(|s| !partition.is_own(*s))
        .collect();
    let mut settlement = Settlement::default();
    if others.is_empty() {
        return Ok(settlement);
    }
    let mut contributions = Vec::new();
    let mut wanted: HashSet<String> = HashSet::new();
    for &source in &others {
        let key = if kept.contains(&source) {
            partition.spill_object(source)
        } else {
            partition.data_object(source)
        };
        let Some(file) = fetch(store, &key).await? else {
            continue;
        };
        let contributed = ids(table, clone(&file)?, None).map_err(damaged(&key))?;
        wanted.extend(contributed.iter().cloned());
        contributions.push((source, key, file, contributed));
    }
    let own_key = partition.data_object(partition.date);
    let mut seen = match own_rows {
        Some(file) => ids(table, clone(file)?, Some(&wanted)).map_err(damaged(&own_key))?,
        None if visible.contains(&partition.date) => match fetch(store, &own_key).await? {
            Some(file) => ids(table, file, Some(&wanted)).map_err(damaged(&own_key))?,
            None => HashSet::new(),
        },
        None => HashSet::new(),
    };
    for (source, kept_key, file, contributed) in contributions {
        let key = partition.data_object(source);
        let shadowed: HashSet<String> = contributed.intersection(&seen).cloned().collect();
        let rows = (contributed.len() - shadowed.len()) as u64;
        // The ids the visible object holds now.
        let shown = if !visible.contains(&source) {
            None
        } else if kept_key == key {
            Some(contributed.clone())
        } else {
            match fetch(store, &key).await? {
                Some(current) => Some(ids(table, current, None).map_err(damaged(&key))?),
                None => None,
            }
        };
        let wanted_ids: HashSet<String> = contributed.difference(&shadowed).cloned().collect();
        if rows == 0 {
            if shown.is_some() {
                settlement.changes.push(Change::Delete {
                    key: key.clone(),
                    rows: shown.as_ref().map_or(0, |s| s.len() as u64),
                });
                if apply {
                    delete(store, &key).await?;
                }
            }
        } else if changed == Some(source) || shown.as_ref() != Some(&wanted_ids) {
            settlement.changes.push(Change::Write {
                key: key.clone(),
                rows,
                shadowed: shadowed.len() as u64,
                before: shown.as_ref().map_or(0, |s| s.len() as u64),
            });
            if apply {
                let out = if shadowed.is_empty() {
                    file
                } else {
                    without(table, file, &shadowed)
                        .map_err(damaged(&kept_key))?
                        .expect("rows are left")
                };
                upload(store, &key, &out).await?;
                crate::crash::point("data-written");
            }
        }
        settlement.visible.insert(source, rows);
        seen.extend(wanted_ids);
    }
    Ok(settlement)
}

/// The sources with a visible object in `partition`, and those with a kept contribution.
pub async fn contents(
    store: &Arc<dyn ObjectStore>,
    partition: Partition,
) -> Result<(BTreeSet<NaiveDate>, BTreeSet<NaiveDate>), PartitionError> {
    let dataset = partition.table.dataset;
    Ok((
        sources(store, &layout::data_folder(dataset, partition.date)).await?,
        sources(store, &layout::spill_folder(dataset, partition.date)).await?,
    ))
}

/// How many visible rows of `partition` repeat an id an earlier row has (in the same
/// object or another), exactly, in the memory of [`crate::dedup::Repeats`] (about 2
/// bytes a row, at most its budget).
pub async fn duplicate_rows(
    store: &Arc<dyn ObjectStore>,
    partition: Partition,
) -> Result<u64, PartitionError> {
    let table = partition.table;
    let mut readers = Vec::new();
    for source in sources(store, &layout::data_folder(table.dataset, partition.date)).await? {
        let key = partition.data_object(source);
        if let Some(file) = fetch(store, &key).await? {
            let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(damaged(&key))?;
            readers.push((key, reader));
        }
    }
    let rows = readers
        .iter()
        .map(|(_, r)| u64::try_from(r.metadata().file_metadata().num_rows()).unwrap_or(0))
        .sum();
    let mut repeats = crate::dedup::Repeats::new(rows, crate::dedup::FILTER_BUDGET);
    for (key, reader) in readers {
        let index = reader
            .schema()
            .index_of(table.columns[table.id_column].name)
            .map_err(|e| damaged(&key)(ParquetError::General(e.to_string())))?;
        let mask = ProjectionMask::roots(reader.parquet_schema(), [index]);
        for batch in reader
            .with_projection(mask)
            .build()
            .map_err(damaged(&key))?
        {
            let batch = batch.map_err(|e| damaged(&key)(ParquetError::General(e.to_string())))?;
            for id in batch.column(0).as_string::<i32>().iter().flatten() {
                repeats.push(id).map_err(PartitionError::Spool)?;
            }
        }
    }
    repeats.finish().map_err(PartitionError::Spool)
}

/// Everything under `folder`, listed with retries of transient store errors.
pub(crate) async fn list_folder(
    store: &Arc<dyn ObjectStore>,
    folder: &Path,
) -> Result<Vec<object_store::ObjectMeta>, PartitionError> {
    retry::with_backoff("list", retry::is_transient, || {
        store.list(Some(folder)).try_collect::<Vec<_>>()
    })
    .await
    .map_err(|source| PartitionError::Read {
        key: folder.to_string(),
        source,
    })
}

/// The sources with an object directly in `folder` (named `<source day>.parquet`).
async fn sources(
    store: &Arc<dyn ObjectStore>,
    folder: &Path,
) -> Result<BTreeSet<NaiveDate>, PartitionError> {
    let listed = list_folder(store, folder).await?;
    Ok(listed
        .iter()
        .filter_map(|o| {
            o.location
                .filename()?
                .strip_suffix(".parquet")?
                .parse()
                .ok()
        })
        .collect())
}

/// An object streamed into a temporary file (memory stays bounded whatever its size),
/// or `None` if there is no such object.
pub(crate) async fn fetch(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
) -> Result<Option<File>, PartitionError> {
    let read_error = |source| PartitionError::Read {
        key: key.to_string(),
        source,
    };
    let fetched = retry::with_backoff("get", retry::is_transient, || async {
        let mut file = tempfile::tempfile().map_err(|e| object_store::Error::Generic {
            store: "spool",
            source: Box::new(e),
        })?;
        let mut body = store.get(key).await?.into_stream();
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk?)
                .map_err(|e| object_store::Error::Generic {
                    store: "spool",
                    source: Box::new(e),
                })?;
        }
        Ok(file)
    })
    .await;
    match fetched {
        Ok(file) => Ok(Some(file)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(read_error(e)),
    }
}

pub(crate) async fn upload(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    file: &File,
) -> Result<(), PartitionError> {
    upload_file(store, key, file)
        .await
        .map(|_| ())
        .map_err(|source| PartitionError::Write {
            key: key.to_string(),
            source,
        })
}

pub(crate) async fn delete(store: &Arc<dyn ObjectStore>, key: &Path) -> Result<(), PartitionError> {
    match retry::with_backoff("delete", retry::is_transient, || store.delete(key)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(PartitionError::Delete {
            key: key.to_string(),
            source,
        }),
    }
}

fn clone(file: &File) -> Result<File, PartitionError> {
    file.try_clone().map_err(PartitionError::Spool)
}

fn damaged(key: &Path) -> impl Fn(ParquetError) -> PartitionError + '_ {
    move |source| PartitionError::Damaged {
        key: key.to_string(),
        source,
    }
}

/// The ids of `table` rows in a Parquet file, all of them or only those in `among`.
pub fn ids<R: ChunkReader + 'static>(
    table: &'static Table,
    input: R,
    among: Option<&HashSet<String>>,
) -> Result<HashSet<String>, ParquetError> {
    let mut found = HashSet::new();
    for_each_id(table, input, |value| {
        if among.is_none_or(|wanted| wanted.contains(value)) {
            found.insert(value.to_string());
        }
    })?;
    Ok(found)
}

/// Calls `f` with the id of each `table` row in a Parquet file, reading only that column.
fn for_each_id<R: ChunkReader + 'static>(
    table: &'static Table,
    input: R,
    mut f: impl FnMut(&str),
) -> Result<(), ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(input)?;
    let id = table.columns[table.id_column].name;
    let index = builder
        .schema()
        .index_of(id)
        .map_err(|e| ParquetError::General(e.to_string()))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .for_each(&mut f);
    }
    Ok(())
}

/// How a file's rows changed from `old` to `new` (Parquet files of `table`), by id.
#[derive(Debug, PartialEq, Eq)]
pub struct IdChanges {
    pub before: u64,
    pub after: u64,
    pub added: u64,
    pub removed: u64,
}

/// Compares the ids of two Parquet files of `table` through 64-bit hashes of them:
/// 8 bytes a row of `old` and one bit a row of `new`, where sets of the ids as text
/// took about 70 bytes a row of each (1.4 GB for a corrected day of 10,000,000 rows).
/// Two ids of one hash would count as one; this only feeds a log line.
pub fn id_changes<R: ChunkReader + 'static>(
    table: &'static Table,
    old: R,
    new: R,
) -> Result<IdChanges, ParquetError> {
    let mut old_ids = Vec::new();
    for_each_id(table, old, |id| {
        old_ids.push(xxhash_rust::xxh3::xxh3_64(id.as_bytes()))
    })?;
    old_ids.sort_unstable();
    old_ids.dedup();
    let mut kept = vec![false; old_ids.len()];
    let (mut after, mut added) = (0, 0);
    for_each_id(table, new, |id| {
        after += 1;
        match old_ids.binary_search(&xxhash_rust::xxh3::xxh3_64(id.as_bytes())) {
            Ok(index) => kept[index] = true,
            Err(_) => added += 1,
        }
    })?;
    Ok(IdChanges {
        before: old_ids.len() as u64,
        after,
        added,
        removed: kept.iter().filter(|k| !**k).count() as u64,
    })
}

/// The file without the rows whose id is in `drop`, or `None` when nothing is left.
pub fn without<R: ChunkReader + 'static>(
    table: &'static Table,
    input: R,
    drop: &HashSet<String>,
) -> Result<Option<File>, ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(input)?.build()?;
    let id = table.columns[table.id_column].name;
    let mut kept: Vec<RecordBatch> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        let ids = batch
            .column_by_name(id)
            .ok_or_else(|| ParquetError::General(format!("no {id} column")))?
            .as_string::<i32>()
            .clone();
        let keep: BooleanArray = ids
            .iter()
            .map(|v| Some(!v.is_some_and(|v| drop.contains(v))))
            .collect();
        let filtered =
            filter_record_batch(&batch, &keep).map_err(|e| ParquetError::General(e.to_string()))?;
        if filtered.num_rows() > 0 {
            kept.push(filtered);
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    Ok(Some(write_file(table, &kept)?))
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::formats::cdr_csv::CDR;
    use crate::formats::table::read;
    use crate::sink::table_parquet::TableBatch;

    /// A Parquet file of CDR rows with these ids (and `duration` as given).
    fn rows(calls: &[(&str, u32)]) -> File {
        let mut csv = "id,calldate,src,dst,duration,billsec,disposition\n".to_string();
        for (id, duration) in calls {
            csv.push_str(&format!("{id},2024-03-01 00:00:00,1,2,{duration},0,A\n"));
        }
        let mut batch = TableBatch::new(&CDR);
        read::<_, ()>(
            &CDR,
            csv.as_bytes(),
            |_| Ok(()),
            |row, _| {
                batch.push(&row.unwrap(), "test.csv");
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        write_file(&CDR, &[batch.take()]).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    async fn visible(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, BTreeSet<String>> {
        let mut found = BTreeMap::new();
        let listed: Vec<_> = store
            .list(Some(&Path::from("cdr")))
            .try_collect()
            .await
            .unwrap();
        for object in listed {
            let file = fetch(store, &object.location).await.unwrap().unwrap();
            let ids = ids(&CDR, file, None).unwrap().into_iter().collect();
            found.insert(object.location.to_string(), ids);
        }
        found
    }

    #[test]
    fn id_changes_count_calls_added_and_gone() {
        let old = rows(&[("a", 1), ("b", 1), ("c", 1)]);
        let new = rows(&[("b", 2), ("c", 1), ("d", 1), ("e", 1)]);
        assert_eq!(
            id_changes(&CDR, old, new).unwrap(),
            IdChanges {
                before: 3,
                after: 4,
                added: 2,
                removed: 1
            }
        );
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rows_with_given_ids_are_removed_and_an_emptied_file_is_none() {
        let file = rows(&[("1", 3), ("2", 3), ("3", 3)]);
        let all = ids(&CDR, file.try_clone().unwrap(), None).unwrap();
        assert_eq!(all.len(), 3);
        let wanted: HashSet<String> = ["2".to_string(), "9".to_string()].into();
        assert_eq!(
            ids(&CDR, file.try_clone().unwrap(), Some(&wanted)).unwrap(),
            ["2".to_string()].into()
        );
        let rest = without(&CDR, file.try_clone().unwrap(), &wanted)
            .unwrap()
            .unwrap();
        assert_eq!(
            ids(&CDR, rest, None).unwrap(),
            ["1".to_string(), "3".to_string()].into()
        );
        assert!(without(&CDR, file, &all).unwrap().is_none());
    }

    /// Every order of three files writing into the partition of the 1st (its own file,
    /// and the 2nd's and 3rd's spill, overlapping each other) ends the same, and a
    /// correction of the own file that drops a call gives it back to the next file.
    #[tokio::test]
    async fn the_partition_is_the_same_whatever_order_the_files_come_in() {
        let partition = Partition {
            table: &CDR,
            date: day(1),
        };
        let contributions = [
            (day(1), rows(&[("a", 1), ("b", 1), ("c", 1)])),
            (day(2), rows(&[("b", 1), ("c", 2), ("d", 1)])),
            (day(3), rows(&[("c", 1), ("d", 1), ("e", 1)])),
        ];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let mut results = Vec::new();
        for order in orders {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            for index in order {
                let (source, file) = &contributions[index];
                put(&store, partition, *source, Some(file)).await.unwrap();
                settle(&store, partition, Some(*source), None, true)
                    .await
                    .unwrap();
            }
            results.push(visible(&store).await);
        }
        let want: BTreeMap<String, BTreeSet<String>> = [
            (
                "cdr/date=2024-03-01/2024-03-01.parquet".to_string(),
                set(&["a", "b", "c"]),
            ),
            (
                "cdr/date=2024-03-01/2024-03-02.parquet".to_string(),
                set(&["d"]),
            ),
            (
                "cdr/date=2024-03-01/2024-03-03.parquet".to_string(),
                set(&["e"]),
            ),
        ]
        .into();
        for (order, result) in orders.iter().zip(&results) {
            assert_eq!(result, &want, "order {order:?}");
        }

        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for (source, file) in &contributions {
            put(&store, partition, *source, Some(file)).await.unwrap();
            settle(&store, partition, Some(*source), None, true)
                .await
                .unwrap();
        }
        let corrected = rows(&[("a", 1), ("b", 1)]);
        put(&store, partition, day(1), Some(&corrected))
            .await
            .unwrap();
        let settled = settle(&store, partition, Some(day(1)), Some(&corrected), true)
            .await
            .unwrap();
        assert_eq!(settled.visible, [(day(2), 2), (day(3), 1)].into());
        let after = visible(&store).await;
        assert_eq!(
            after["cdr/date=2024-03-01/2024-03-02.parquet"],
            set(&["c", "d"]),
            "c is the 2nd's again"
        );

        // The 2nd's file no longer has rows of the 1st: its objects go, the 3rd takes d.
        put(&store, partition, day(2), None).await.unwrap();
        settle(&store, partition, Some(day(2)), None, true)
            .await
            .unwrap();
        let after = visible(&store).await;
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(
            after["cdr/date=2024-03-01/2024-03-03.parquet"],
            set(&["c", "d", "e"])
        );
    }

    #[tokio::test]
    async fn an_object_whose_rows_all_belong_to_another_file_is_removed() {
        let partition = Partition {
            table: &CDR,
            date: day(1),
        };
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, partition, day(2), Some(&rows(&[("b", 1)])))
            .await
            .unwrap();
        settle(&store, partition, Some(day(2)), None, true)
            .await
            .unwrap();
        let own = rows(&[("a", 1), ("b", 1)]);
        put(&store, partition, day(1), Some(&own)).await.unwrap();
        let dry = settle(&store, partition, Some(day(1)), None, false)
            .await
            .unwrap();
        assert_eq!(
            dry.changes,
            [Change::Delete {
                key: partition.data_object(day(2)),
                rows: 1
            }]
        );
        assert_eq!(visible(&store).await.len(), 2, "a dry run changes nothing");
        settle(&store, partition, Some(day(1)), None, true)
            .await
            .unwrap();
        assert_eq!(visible(&store).await.len(), 1);
    }
}
