//! Rebuilding one date's `calls` object from the visible rows of every mapped dataset
//! of that date, by whoever just changed one of them (see the module above).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;

use super::merge::{Contribution, one_call};
use super::runs::Runs;
use super::{DATASET, Objects, Record, table};
use crate::feeds::FEEDS;
use crate::pipeline::{Context, IngestError, partition_lock};
use crate::sink::layout;
use crate::sink::partition::{self, PartitionError, fetch};
use crate::sink::retry;
use crate::sink::upload::upload_file;
use crate::state::lease::HeldLease;

/// What one rebuild wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub calls: u64,
    /// Calls with a code no feed's outcome table knows.
    pub unmapped: u64,
    /// Those per feed of the row with the code.
    pub unmapped_by_feed: BTreeMap<&'static str, u64>,
    pub codes: BTreeSet<String>,
}

impl Rebuilt {
    pub fn add(&mut self, other: Rebuilt) {
        self.calls += other.calls;
        self.unmapped += other.unmapped;
        for (feed, n) in other.unmapped_by_feed {
            *self.unmapped_by_feed.entry(feed).or_default() += n;
        }
        self.codes.extend(other.codes);
    }
}

/// Whether rows of `dataset` go into `calls`: a change to its partition of a date
/// rebuilds that date's calls.
pub fn reads(dataset: &str) -> bool {
    FEEDS
        .iter()
        .any(|feed| feed.calls.iter().any(|m| m.dataset == dataset))
}

/// The lease of one date's `calls`, taken after every other partition lease.
pub fn lease(date: NaiveDate) -> Path {
    layout::partition_lease(DATASET, date)
}

/// Rows read from a feed's Parquet at a time.
const READ_ROWS: usize = 4 * 1024;

/// Which calls with an unmapped code a rebuild counts (and logs).
#[derive(Debug, Clone, Copy)]
pub enum Count<'a> {
    /// Those whose code comes from one of these source files, committed since the
    /// date's last rebuild (`super::dirty`): each is counted once, by the file that
    /// brought it, however often its date is rebuilt.
    From(&'a BTreeSet<String>),
    /// Every one (purge and repairs rebuild what files brought before; retention
    /// rebuilds through the marks, with no file of its own).
    All,
    /// None: the rebuild brings no code of its own (a recordings index).
    Nothing,
}

/// Rebuilds `date`'s calls of `account`; the caller holds [`lease`] of the date among
/// `held`, which are confirmed still its own right before the object is written.
pub async fn rebuild(
    store: &Arc<dyn ObjectStore>,
    account: &str,
    held: &[HeldLease],
    date: NaiveDate,
    count: Count<'_>,
) -> Result<Rebuilt, IngestError> {
    let (file, rebuilt) = build(store, account, date, count).await?;
    partition_lock::confirm(held).await?;
    let key = layout::calls_object(date);
    let Some(file) = file else {
        match retry::with_backoff("delete", retry::is_transient, || store.delete(&key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(IngestError::Partition(PartitionError::Delete {
                    key: key.to_string(),
                    source,
                }));
            }
        }
        return Ok(rebuilt);
    };
    upload_file(store, &key, &file)
        .await
        .map_err(|source| PartitionError::Write {
            key: key.to_string(),
            source,
        })
        .map_err(IngestError::Partition)?;
    if rebuilt.unmapped > 0 {
        let codes: Vec<&str> = rebuilt.codes.iter().map(String::as_str).collect();
        tracing::warn!(object = %key, calls = rebuilt.unmapped, codes = %codes.join(", "), "calls with an outcome code no feed's table maps: written as `other` with the code in outcome_detail; add the code to the feed's outcome table");
    }
    Ok(rebuilt)
}

/// Whether `date`'s calls object is what a rebuild writes now (`verify`): a day
/// ingested before `calls` existed, or whose rebuild a crash cut short, is not.
pub async fn is_current(
    store: &Arc<dyn ObjectStore>,
    account: &str,
    date: NaiveDate,
) -> Result<bool, PartitionError> {
    let (file, _) = build(store, account, date, Count::Nothing).await?;
    let key = layout::calls_object(date);
    let stored = fetch(store, &key).await?;
    let bytes = |file: Option<std::fs::File>| -> Result<Option<Vec<u8>>, PartitionError> {
        file.map(|mut f| {
            let mut bytes = Vec::new();
            std::io::Seek::rewind(&mut f)
                .and_then(|()| std::io::Read::read_to_end(&mut f, &mut bytes))
                .map(|_| bytes)
                .map_err(PartitionError::Spool)
        })
        .transpose()
    };
    Ok(bytes(file)? == bytes(stored)?)
}

/// `date`'s calls as a Parquet file (`None`: there are none), from the visible rows
/// of every mapped dataset of that date: read a row group at a time, joined through
/// sorted runs ([`Runs`]) and written as each call is complete, so memory stays
/// bounded whatever the size of the date.
async fn build(
    store: &Arc<dyn ObjectStore>,
    account: &str,
    date: NaiveDate,
    count: Count<'_>,
) -> Result<(Option<std::fs::File>, Rebuilt), PartitionError> {
    let spool = |e: std::io::Error| PartitionError::Spool(e);
    let started = std::time::Instant::now();
    let mut runs = Runs::default();
    for feed in FEEDS.iter() {
        for mapping in feed.calls {
            let folder = layout::data_folder(mapping.dataset, date);
            let mut keys = objects(store, &folder).await?;
            if mapping.objects == Objects::Last {
                keys = keys.split_off(keys.len().saturating_sub(1));
            }
            for key in keys {
                let Some(file) = fetch(store, &key).await? else {
                    continue;
                };
                let damaged = |source: ParquetError| PartitionError::Damaged {
                    key: key.to_string(),
                    source,
                };
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| {
                        let only = ProjectionMask::columns(
                            b.parquet_schema(),
                            mapping.columns.iter().copied(),
                        );
                        b.with_projection(only).with_batch_size(READ_ROWS).build()
                    })
                    .map_err(damaged)?;
                for batch in reader {
                    let batch = batch.map_err(|e| damaged(ParquetError::General(e.to_string())))?;
                    let arrays = Record::arrays(&batch, mapping.columns);
                    for row in 0..batch.num_rows() {
                        if let Some(facts) = (mapping.facts)(&Record {
                            row,
                            columns: mapping.columns,
                            arrays: &arrays,
                        }) {
                            runs.push(Contribution {
                                feed: feed.category.as_str(),
                                mapping,
                                facts,
                            })
                            .map_err(spool)?;
                        }
                    }
                }
            }
        }
    }
    let from_origin = |source: &str| match count {
        // A zip's entries are `<zip>!<entry>`.
        Count::From(origins) => origins.iter().any(|origin| {
            source == origin
                || source
                    .strip_prefix(origin.as_str())
                    .is_some_and(|rest| rest.starts_with('!'))
        }),
        Count::All => true,
        Count::Nothing => false,
    };
    let read = started.elapsed();
    let mut rebuilt = Rebuilt::default();
    let mut writer = table::Writer::new(account);
    let mut written = Ok(());
    runs.for_each_call(|group| {
        let Some(call) = one_call(&group) else {
            return Ok(());
        };
        let found: Vec<&(&'static str, String, String)> = call
            .unmapped
            .iter()
            .filter(|(_, source, _)| from_origin(source))
            .collect();
        if let Some((feed, _, _)) = found.first() {
            rebuilt.unmapped += 1;
            *rebuilt.unmapped_by_feed.entry(feed).or_default() += 1;
            rebuilt
                .codes
                .extend(found.iter().map(|(_, _, code)| code.clone()));
        }
        rebuilt.calls += 1;
        if written.is_ok() {
            written = writer.push(call);
        }
        Ok(())
    })
    .map_err(spool)?;
    let parquet = |e: ParquetError| spool(std::io::Error::other(e));
    written.map_err(parquet)?;
    let file = writer.finish().map_err(parquet)?;
    tracing::info!(
        %date,
        calls = rebuilt.calls,
        read_ms = read.as_millis() as u64,
        join_ms = (started.elapsed() - read).as_millis() as u64,
        "calls rebuilt"
    );
    Ok((file, rebuilt))
}

/// Rebuilds the calls of `dates`, taking each date's lease (for those who hold no
/// other partition lease: retention, purge, the recordings' index).
pub async fn rebuild_days(
    ctx: &Context,
    dates: impl IntoIterator<Item = NaiveDate>,
    count: Count<'_>,
) -> Result<Rebuilt, IngestError> {
    let mut total = Rebuilt::default();
    for date in dates.into_iter().collect::<BTreeSet<_>>() {
        let held = partition_lock::hold(ctx, std::iter::once(lease(date))).await?;
        let rebuilt = partition_lock::fenced(
            &held,
            rebuild(
                &ctx.store,
                super::account(&ctx.settings),
                &held,
                date,
                count,
            ),
        )
        .await;
        partition_lock::release(&held).await;
        total.add(rebuilt??);
    }
    Ok(total)
}

/// Every date that has a `calls` object or a partition of a dataset it reads, for a
/// rebuild after a purge.
pub async fn dates(store: &Arc<dyn ObjectStore>) -> Result<BTreeSet<NaiveDate>, PartitionError> {
    let mut found = BTreeSet::new();
    let datasets = FEEDS
        .iter()
        .flat_map(|f| f.calls.iter().map(|m| m.dataset))
        .chain([DATASET]);
    for dataset in datasets {
        let root = Path::from(dataset);
        let listing = retry::with_backoff("list", retry::is_transient, || {
            store.list_with_delimiter(Some(&root))
        })
        .await
        .map_err(|source| PartitionError::Read {
            key: root.to_string(),
            source,
        })?;
        found.extend(listing.common_prefixes.iter().filter_map(|prefix| {
            prefix
                .filename()?
                .strip_prefix("date=")?
                .parse::<NaiveDate>()
                .ok()
        }));
    }
    Ok(found)
}

/// The Parquet objects directly in `folder`, in key order.
async fn objects(store: &Arc<dyn ObjectStore>, folder: &Path) -> Result<Vec<Path>, PartitionError> {
    let listed = partition::list_folder(store, folder).await?;
    let mut keys: Vec<Path> = listed
        .into_iter()
        .map(|o| o.location)
        .filter(|key| {
            key.as_ref()
                .strip_prefix(folder.as_ref())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|name| !name.contains('/') && name.ends_with(".parquet"))
        })
        .collect();
    keys.sort();
    Ok(keys)
}
