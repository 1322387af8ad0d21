//! Rebuilding one date's `calls` object from the visible rows of every mapped dataset
//! of that date, by whoever just changed one of them (see the module above).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;

use super::merge::{Contribution, one_call};
use super::runs::Runs;
use super::{DATASET, Objects, PerCall, Record, table};
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

/// Rows of an object from which its batches are decoded on a thread of their own,
/// beside the making of calls from the ones before: decoding was a fifth of the
/// rebuild's thread on a 1M-row day (`perf`). A smaller object is decoded in place, as
/// a thread for it costs more than it saves (`table::APART_ROWS`).
const READ_AHEAD_ROWS: i64 = 64 * 1024;

/// The batches of `reader`, an object of `rows` rows: read ahead on a thread when
/// there are enough of them. The thread ends with the reader, or when the batches are
/// no longer wanted.
fn batches(
    reader: ParquetRecordBatchReader,
    rows: i64,
) -> Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>> {
    if rows < READ_AHEAD_ROWS {
        return Box::new(reader);
    }
    // Two batches ahead: the reader keeps one decoded while the other is used.
    let (ahead, read) = sync_channel(2);
    std::thread::spawn(move || {
        for batch in reader {
            if ahead.send(batch).is_err() {
                break;
            }
        }
    });
    Box::new(read.into_iter())
}

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
    match (file, stored) {
        (None, None) => Ok(true),
        (Some(built), Some(stored)) => same_bytes(built, stored).map_err(PartitionError::Spool),
        _ => Ok(false),
    }
}

/// Whether two files hold the same bytes, compared a chunk at a time: a 10,000,000-call
/// date's object is 134 MiB, and both read whole took `verify` to 441 MiB.
fn same_bytes(mut a: std::fs::File, mut b: std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek};
    const CHUNK: usize = 64 * 1024;
    if a.seek(std::io::SeekFrom::End(0))? != b.seek(std::io::SeekFrom::End(0))? {
        return Ok(false);
    }
    a.rewind()?;
    b.rewind()?;
    let (mut left, mut right) = (vec![0; CHUNK], vec![0; CHUNK]);
    loop {
        let n = a.read(&mut left)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut right[..n])?;
        if left[..n] != right[..n] {
            return Ok(false);
        }
    }
}

/// `date`'s calls as a Parquet file (`None`: there are none), from the visible rows
/// of every mapped dataset of that date, read a row group at a time and written as
/// each call is complete, so memory stays bounded whatever the size of the date. When
/// one dataset alone has rows and has one row per call ([`PerCall::One`]), each row is
/// its call; otherwise the rows are joined through sorted runs ([`Runs`]).
async fn build(
    store: &Arc<dyn ObjectStore>,
    account: &str,
    date: NaiveDate,
    count: Count<'_>,
) -> Result<(Option<std::fs::File>, Rebuilt), PartitionError> {
    let started = std::time::Instant::now();
    let mut inputs = Vec::new();
    for feed in FEEDS.iter() {
        for mapping in feed.calls {
            let folder = layout::data_folder(mapping.dataset, date);
            let mut keys = objects(store, &folder).await?;
            if mapping.objects == Objects::Last {
                keys = keys.split_off(keys.len().saturating_sub(1));
            }
            if !keys.is_empty() {
                inputs.push((feed.category.as_str(), mapping, keys));
            }
        }
    }
    let alone = matches!(inputs.as_slice(), [(_, mapping, _)] if mapping.per_call == PerCall::One);
    let mut calls = Calls {
        count,
        rebuilt: Rebuilt::default(),
        writer: table::Writer::new(account),
        runs: (!alone).then(Runs::default),
    };
    for (feed, mapping, keys) in inputs {
        for key in keys {
            let Some(file) = fetch(store, &key).await? else {
                continue;
            };
            let damaged = |source: ParquetError| PartitionError::Damaged {
                key: key.to_string(),
                source,
            };
            let (reader, rows) = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| {
                    let rows = b.metadata().file_metadata().num_rows();
                    let only = ProjectionMask::columns(
                        b.parquet_schema(),
                        mapping.columns.iter().copied(),
                    );
                    Ok((
                        b.with_projection(only).with_batch_size(READ_ROWS).build()?,
                        rows,
                    ))
                })
                .map_err(damaged)?;
            for batch in batches(reader, rows) {
                let batch = batch.map_err(|e| damaged(ParquetError::General(e.to_string())))?;
                let arrays = Record::arrays(&batch, mapping.columns);
                for row in 0..batch.num_rows() {
                    let record = Record {
                        row,
                        columns: mapping.columns,
                        arrays: &arrays,
                    };
                    if let Some(facts) = (mapping.facts)(&record) {
                        calls
                            .contribution(Contribution {
                                feed,
                                mapping,
                                facts,
                            })
                            .map_err(PartitionError::Spool)?;
                    }
                }
            }
        }
    }
    let read = started.elapsed();
    let (file, rebuilt) = calls.finish().map_err(PartitionError::Spool)?;
    tracing::info!(
        %date,
        calls = rebuilt.calls,
        joined = !alone,
        read_ms = read.as_millis() as u64,
        join_ms = (started.elapsed() - read).as_millis() as u64,
        "calls rebuilt"
    );
    Ok((file, rebuilt))
}

/// A date's calls as they are made: counted, and written (or, to be joined first,
/// gathered in [`Runs`]).
struct Calls<'a> {
    count: Count<'a>,
    rebuilt: Rebuilt,
    writer: table::Writer<'a>,
    /// `None`: every contribution is a call of its own.
    runs: Option<Runs>,
}

impl Calls<'_> {
    fn contribution(&mut self, contribution: Contribution<'_>) -> std::io::Result<()> {
        match &mut self.runs {
            Some(runs) => runs.push(contribution),
            None => self.call(std::slice::from_ref(&contribution)),
        }
    }

    fn call(&mut self, group: &[Contribution<'_>]) -> std::io::Result<()> {
        let Some(call) = one_call(group) else {
            return Ok(());
        };
        let count = self.count;
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
        let mut found = call
            .unmapped
            .iter()
            .filter(|(_, source, _)| from_origin(source))
            .peekable();
        if let Some((feed, _, _)) = found.peek() {
            let rebuilt = &mut self.rebuilt;
            rebuilt.unmapped += 1;
            *rebuilt.unmapped_by_feed.entry(feed).or_default() += 1;
            rebuilt
                .codes
                .extend(found.map(|(_, _, code)| code.to_string()));
        }
        self.rebuilt.calls += 1;
        self.writer.push(&call).map_err(std::io::Error::other)
    }

    fn finish(mut self) -> std::io::Result<(Option<std::fs::File>, Rebuilt)> {
        if let Some(runs) = self.runs.take() {
            runs.for_each_call(|group| self.call(&group))?;
        }
        let file = self.writer.finish().map_err(std::io::Error::other)?;
        Ok((file, self.rebuilt))
    }
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

#[cfg(test)]
mod tests {
    use arrow_array::{RecordBatch, UInt32Array};
    use arrow_select::concat::concat_batches;
    use arrow_select::take::take_record_batch;

    use std::borrow::Cow;

    use super::*;
    use crate::calls::{Direction, Facts, Outcome, Said};
    use crate::generate::rng::Rng;

    /// Two files are the same when every byte is, however far into them the first
    /// difference lies (the last byte of a chunk, the first of the next, the end).
    #[test]
    fn same_bytes_finds_any_difference() {
        use std::io::Write;
        let file = |bytes: &[u8]| {
            let mut file = tempfile::tempfile().expect("temporary file");
            file.write_all(bytes).expect("written");
            file
        };
        let original: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert!(same_bytes(file(&original), file(&original)).expect("readable"));
        assert!(same_bytes(file(&[]), file(&[])).expect("readable"));
        for at in [0, 65_535, 65_536, original.len() - 1] {
            let mut changed = original.clone();
            changed[at] ^= 1;
            assert!(
                !same_bytes(file(&original), file(&changed)).expect("readable"),
                "{at}"
            );
        }
        let shorter = &original[..original.len() - 1];
        assert!(!same_bytes(file(&original), file(shorter)).expect("readable"));
    }

    /// `n` rows of a dataset with one row per call, each field present or not as
    /// the seed draws it, in a random order of their ids.
    fn rows(seed: u64, n: u32) -> Vec<Contribution<'static>> {
        let cdr = FEEDS
            .iter()
            .find(|f| f.calls.iter().any(|m| m.per_call == PerCall::One))
            .expect("a feed with one row per call");
        let mapping = &cdr.calls[0];
        let mut rng = Rng::derive(seed, &[]);
        let text = |rng: &mut Rng, what: &str| -> Option<Cow<'static, str>> {
            rng.percent(70)
                .then(|| format!("{what}-{}", rng.below(50)).into())
        };
        (0..n)
            .map(|i| {
                let started = i64::from(rng.below(86_400)) * 1_000_000;
                let facts = Facts {
                    // Unique (an odd multiplier permutes `u32`), in no order.
                    call_id: format!("call-{:08x}", i.wrapping_mul(0x9E37_79B1)).into(),
                    started_at: rng.percent(95).then_some(started),
                    answered_at: rng.percent(50).then_some(started + 5_000_000),
                    ended_at: rng.percent(80).then_some(started + 60_000_000),
                    direction: rng.percent(90).then_some(Direction::Inbound),
                    from_number: text(&mut rng, "from"),
                    to_number: text(&mut rng, "to"),
                    did: text(&mut rng, "did"),
                    destination: text(&mut rng, "destination"),
                    called_name: text(&mut rng, "name"),
                    agent_id: text(&mut rng, "agent"),
                    ring_seconds: rng.percent(60).then_some(i64::from(rng.below(30))),
                    talk_seconds: rng.percent(60).then_some(i64::from(rng.below(600))),
                    said: Said {
                        outcome: rng.percent(80).then_some(Outcome::Answered),
                        detail: text(&mut rng, "code"),
                        unmapped: rng.percent(5),
                    },
                    cost: rng.percent(30).then_some(i128::from(rng.below(10_000))),
                    source_object: format!("CDRs/2024-03-0{}.csv", 1 + rng.below(2)).into(),
                    source_line: Some(i64::from(rng.below(1_000_000))),
                    ..Facts::default()
                };
                Contribution {
                    feed: cdr.category.as_str(),
                    mapping,
                    facts,
                }
            })
            .collect()
    }

    /// The calls written from `rows`, joined or not, read back as one batch.
    fn written(rows: Vec<Contribution<'static>>, joined: Option<Runs>) -> (RecordBatch, Rebuilt) {
        let mut calls = Calls {
            count: Count::All,
            rebuilt: Rebuilt::default(),
            writer: table::Writer::new("account"),
            runs: joined,
        };
        for row in rows {
            calls.contribution(row).expect("in memory");
        }
        let (file, rebuilt) = calls.finish().expect("written");
        let batches: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(file.expect("calls"))
                .and_then(|b| b.build())
                .expect("readable")
                .collect::<Result<_, _>>()
                .expect("readable");
        (
            concat_batches(&table::schema(), &batches).expect("one schema"),
            rebuilt,
        )
    }

    /// A date that one dataset with one row per call alone reports is written without
    /// the join, and gives the join's rows, in its own order.
    #[test]
    fn one_row_per_call_alone_gives_what_the_join_gives() {
        let seeds: u64 = std::env::var("CDR_TEST_CALLS_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        for seed in 1..=seeds {
            // One batch; several, encoded in place; more than are encoded in place (the
            // encoder thread); many runs (the spill) in the last two.
            let n = [10, 20_000, 150_000][(seed % 3) as usize];
            let (alone, counted_alone) = written(rows(seed, n), None);
            let (joined, counted_joined) = written(rows(seed, n), Some(Runs::of(1_000)));
            assert_eq!(counted_alone, counted_joined, "seed {seed}");
            let ids = alone.column_by_name("call_id").expect("call_id");
            let ids = ids
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .expect("text");
            let mut order: Vec<u32> = (0..alone.num_rows() as u32).collect();
            order.sort_by_key(|&i| ids.value(i as usize));
            let sorted = take_record_batch(&alone, &UInt32Array::from(order)).expect("in range");
            assert_eq!(
                sorted, joined,
                "seed {seed}: replay with CDR_TEST_CALLS_SEEDS={seed}"
            );
        }
    }
}
