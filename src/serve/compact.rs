//! Compaction: the inbox's records into typed Parquet, one file per call date and
//! dataset (`push_cdr`, and `push_cdr_ivr` with a row per IVR layer), under a lease so
//! that any number of replicas can run it.
//!
//! ```text
//! push_cdr/date=D/g<generation>.parquet       every record of call date D, one row per key
//! push_cdr_ivr/date=D/g<generation>.parquet   their IVR layers (key, dtmf_order, layer)
//! ```
//!
//! A day's file is rewritten whole with each flush that brings it records: the new
//! generation holds the previous one's rows plus the new ones, minus keys it already
//! has (late resends). The `push_cdr` file is the commit point: the IVR file of the
//! same generation is written first, then it; only then are the older generations and
//! the compacted inbox objects deleted. So at a crash anywhere, the highest `push_cdr`
//! generation holds every record it was built from, and the next flush first deletes
//! whatever is not that generation (an older file, or an IVR file of a generation that
//! never committed), then drops the inbox records that file already has. Nothing
//! acknowledged is lost (it stays in the inbox until a committed file has it) and no
//! key is in a day's files twice.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow_array::builder::{
    Decimal128Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use thiserror::Error;

use super::inbox::{self, Accepted};
use super::recordings::Fetcher;
use super::{DATASET, IVR_DATASET};
use crate::calls;
use crate::formats::push_record::PushRecord;
use crate::pipeline::{IngestError, partition_lock};
use crate::sink::{layout, retry};
use crate::state::json::JsonStore;
use crate::state::lease::{Lease, Leases};

/// Why a flush stopped; what it had not finished stays for the next.
#[derive(Debug, Error)]
pub enum CompactError {
    #[error("cannot {action} {key} in the destination: {source}")]
    Store {
        action: &'static str,
        key: String,
        source: object_store::Error,
    },
    #[error("{key} is not a readable Parquet file of {DATASET} ({detail}); move it away")]
    Damaged { key: String, detail: String },
    #[error("cannot take the compaction lease: {0}")]
    Lease(String),
    #[error(
        "{key} was written by another compaction first (its lease had expired); this flush stops and the next one goes on from there"
    )]
    Overtaken { key: String },
    /// A partition lease, a calls mark or the rebuild of a day's calls.
    #[error("{0}")]
    Calls(Box<IngestError>),
}

impl From<IngestError> for CompactError {
    fn from(e: IngestError) -> Self {
        CompactError::Calls(Box::new(e))
    }
}

/// How a flush keeps `calls` up with the days it compacts (`crate::calls`): each
/// compacted day is marked before its file changes, under that partition's lease, and
/// rebuilt at the end of the flush, as a pass does.
#[derive(Debug, Clone, Copy)]
pub struct CallsCatchUp<'a> {
    /// The `account` column (`calls::account`).
    pub account: &'a str,
    /// Rebuild every marked date, not only those compacted now: a replica's first
    /// flush, for what a crash left marked.
    pub every_mark: bool,
}

/// What one flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// Another replica held the lease: nothing done.
    pub busy: bool,
    /// Records written into a day's file, per call date.
    pub written: BTreeMap<NaiveDate, u64>,
    /// Inbox records whose key the day's file already had (resent after compaction).
    pub duplicates: u64,
    /// Records older than the retention limit, dropped.
    pub expired: u64,
    /// Inbox objects left for a later flush (more than one flush takes).
    pub left: u64,
    /// When the newest record this flush took was received.
    pub last_received: Option<DateTime<Utc>>,
    /// The recordings' downloads, when `serve.fetch_recordings` is on.
    pub recordings: Option<super::recordings::Fetched>,
}

/// The most records one flush takes: bounds its memory.
const RECORDS_PER_FLUSH: usize = 50_000;
/// Inbox objects read at once.
const READS_IN_FLIGHT: usize = 32;

/// The compaction lease's key.
pub fn lease_key() -> Path {
    Path::from("_state/leases/push_cdr/compaction.json")
}

/// Compacts the inbox if no other replica is doing it. Records of days before
/// `oldest_kept` (retention) are dropped.
pub async fn flush(
    store: &Arc<dyn ObjectStore>,
    leases: &Leases,
    now: DateTime<Utc>,
    oldest_kept: Option<NaiveDate>,
    fetcher: Option<&Fetcher>,
    calls: CallsCatchUp<'_>,
) -> Result<Flushed, CompactError> {
    let held = match leases
        .acquire_key(lease_key(), now)
        .await
        .map_err(|e| CompactError::Lease(e.to_string()))?
    {
        Lease::Held(held) => held,
        Lease::Busy { .. } => {
            return Ok(Flushed {
                busy: true,
                ..Flushed::default()
            });
        }
    };
    // A replica that lost the lease (stalled past it) stops where it is, as a crash
    // would; the next holder's flush finishes what it left.
    let flushed = tokio::select! {
        flushed = flush_held(store, leases, oldest_kept, fetcher, calls) => flushed,
        () = held.lost() => Err(CompactError::Lease(format!("the compaction lease {} was lost", held.key()))),
    };
    held.release().await;
    flushed
}

async fn flush_held(
    store: &Arc<dyn ObjectStore>,
    leases: &Leases,
    oldest_kept: Option<NaiveDate>,
    fetcher: Option<&Fetcher>,
    calls: CallsCatchUp<'_>,
) -> Result<Flushed, CompactError> {
    let listed = inbox::list(store)
        .await
        .map_err(|source| CompactError::Store {
            action: "list",
            key: inbox::INBOX.into(),
            source,
        })?;
    let mut flushed = Flushed {
        left: listed.len().saturating_sub(RECORDS_PER_FLUSH) as u64,
        ..Flushed::default()
    };
    let reads = futures::stream::iter(listed.into_iter().take(RECORDS_PER_FLUSH))
        .map(|meta| {
            let store = Arc::clone(store);
            async move {
                let read = inbox::read(&store, &meta.location).await;
                (meta.location, read)
            }
        })
        .buffered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut days: BTreeMap<NaiveDate, Vec<(Path, Accepted)>> = BTreeMap::new();
    for (key, read) in reads {
        match read {
            Ok(Some(Ok(accepted))) => {
                flushed.last_received = flushed.last_received.max(Some(accepted.received_at));
                let day = call_date(&accepted.record);
                days.entry(day).or_default().push((key, accepted));
            }
            Ok(None) => {}
            Ok(Some(Err(reason))) => {
                // Only this program writes the inbox: an object it cannot read was
                // damaged in the store. It is left there and reported every flush.
                tracing::error!(object = %key, %reason, "an inbox object is not a stored record; move it away");
            }
            Err(source) => {
                return Err(CompactError::Store {
                    action: "read",
                    key: key.to_string(),
                    source,
                });
            }
        }
    }
    for (day, records) in days {
        if oldest_kept.is_some_and(|oldest| day < oldest) {
            tracing::info!(%day, records = records.len(), "pushed records older than the retention limit dropped");
            flushed.expired += records.len() as u64;
            remove_all(store, records.iter().map(|(key, _)| key)).await?;
            continue;
        }
        let (written, duplicates) =
            compact_day(store, leases, day, &records, fetcher.is_some()).await?;
        if written > 0 {
            flushed.written.insert(day, written);
        }
        flushed.duplicates += duplicates;
    }
    if calls::rebuild::reads(DATASET) {
        let compacted: BTreeSet<NaiveDate> = flushed.written.keys().copied().collect();
        let only = (!calls.every_mark).then_some(&compacted);
        if calls.every_mark || !compacted.is_empty() {
            calls::settle_with(store, leases, calls.account, only).await?;
        }
    }
    if let Some(fetcher) = fetcher {
        flushed.recordings = Some(super::recordings::fetch_pending(store, fetcher).await?);
    }
    Ok(flushed)
}

/// The UTC date of a record's call.
pub fn call_date(record: &PushRecord) -> NaiveDate {
    call_date_of(record.time)
}

/// The UTC date of epoch seconds.
pub fn call_date_of(time: i64) -> NaiveDate {
    DateTime::from_timestamp(time, 0)
        .unwrap_or_default()
        .date_naive()
}

/// The generation of a day's file, from its name (`g<generation>.parquet`).
fn generation(key: &Path) -> Option<u64> {
    key.filename()?
        .strip_prefix('g')?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// A day's file of one generation.
pub fn day_object(dataset: &str, day: NaiveDate, generation: u64) -> Path {
    Path::from(format!(
        "{}/g{generation:010}.parquet",
        layout::data_folder(dataset, day)
    ))
}

/// The generations of a dataset's files of `day`.
pub(super) async fn generations(
    store: &Arc<dyn ObjectStore>,
    dataset: &str,
    day: NaiveDate,
) -> Result<Vec<(u64, Path)>, CompactError> {
    let folder = layout::data_folder(dataset, day);
    let listed: Vec<_> = retry::with_backoff("list", retry::is_transient, || {
        store.list(Some(&folder)).try_collect::<Vec<_>>()
    })
    .await
    .map_err(|source| CompactError::Store {
        action: "list",
        key: folder.to_string(),
        source,
    })?;
    let mut found: Vec<(u64, Path)> = listed
        .into_iter()
        .filter_map(|meta| generation(&meta.location).map(|g| (g, meta.location)))
        .collect();
    found.sort();
    Ok(found)
}

/// The committed generation of a day (its highest `push_cdr` file), if any.
pub async fn committed(
    store: &Arc<dyn ObjectStore>,
    day: NaiveDate,
) -> Result<Option<(u64, Path)>, CompactError> {
    Ok(generations(store, DATASET, day).await?.pop())
}

/// Adds `records` to the day's files; returns the records written and those the
/// files already had.
async fn compact_day(
    store: &Arc<dyn ObjectStore>,
    leases: &Leases,
    day: NaiveDate,
    records: &[(Path, Accepted)],
    fetch: bool,
) -> Result<(u64, u64), CompactError> {
    let calls = generations(store, DATASET, day).await?;
    let layers = generations(store, IVR_DATASET, day).await?;
    let current = calls.last().map(|(g, _)| *g);
    // What an interrupted flush left: older generations, and IVR files of another one.
    let stale = calls
        .iter()
        .filter(|(g, _)| Some(*g) != current)
        .chain(layers.iter().filter(|(g, _)| Some(*g) != current));
    remove_all(store, stale.map(|(_, key)| key)).await?;

    let (old_calls, have) = match &calls.last() {
        Some((_, key)) => {
            let batches = read_batches(store, key).await?;
            let have = keys(&batches);
            (batches, have)
        }
        None => (Vec::new(), HashSet::new()),
    };
    let old_layers = match current {
        Some(g) if layers.iter().any(|(lg, _)| *lg == g) => {
            read_batches(store, &day_object(IVR_DATASET, day, g)).await?
        }
        _ => Vec::new(),
    };
    let fresh: Vec<&Accepted> = records
        .iter()
        .map(|(_, accepted)| accepted)
        .filter(|a| !have.contains(&key_of(&a.record)))
        .collect();
    let duplicates = (records.len() - fresh.len()) as u64;
    if !fresh.is_empty() {
        // The day's partition lease, which a rebuild of its calls holds too, so that
        // none reads the day halfway through a commit (and loses the mark below).
        let held = partition_lock::hold_with(
            leases,
            std::iter::once(layout::partition_lease(DATASET, day)),
        )
        .await?;
        let committed = partition_lock::fenced(&held, async {
            if calls::rebuild::reads(DATASET) {
                let origins: Vec<String> = fresh
                    .iter()
                    .map(|a| inbox::object(&a.record).to_string())
                    .collect();
                let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
                calls::mark(&JsonStore::new(Arc::clone(store)), [day], &origins).await?;
            }
            commit_day(store, day, current, old_calls, old_layers, &fresh).await
        })
        .await;
        partition_lock::release(&held).await;
        committed.map_err(|lost| CompactError::Lease(lost.to_string()))??;
    }
    if fetch {
        // Before the inbox objects go: a record's job must outlive it.
        super::recordings::add_jobs(store, records.iter().map(|(_, a)| &a.record)).await?;
    }
    crate::crash::point("push-before-inbox-removed");
    remove_all(store, records.iter().map(|(key, _)| key)).await?;
    Ok((fresh.len() as u64, duplicates))
}

/// Writes the day's next generation (the IVR file, then the `push_cdr` file: the
/// commit point) with `fresh` added, then removes the generation before.
async fn commit_day(
    store: &Arc<dyn ObjectStore>,
    day: NaiveDate,
    current: Option<u64>,
    old_calls: Vec<RecordBatch>,
    old_layers: Vec<RecordBatch>,
    fresh: &[&Accepted],
) -> Result<(), CompactError> {
    let next = current.map_or(1, |g| g + 1);
    let new_layers = layer_batch(fresh);
    if new_layers.num_rows() > 0 || !old_layers.is_empty() {
        let mut all = old_layers;
        all.push(new_layers);
        put_parquet(
            store,
            &day_object(IVR_DATASET, day, next),
            &layer_schema(),
            &all,
        )
        .await?;
    }
    crate::crash::point("push-ivr-written");
    let mut all = old_calls;
    all.push(call_batch(fresh));
    put_parquet(store, &day_object(DATASET, day, next), &call_schema(), &all).await?;
    crate::crash::point("push-committed");
    if let Some(g) = current {
        remove_all(
            store,
            [day_object(DATASET, day, g), day_object(IVR_DATASET, day, g)].iter(),
        )
        .await?;
    }
    tracing::info!(%day, records = fresh.len(), generation = next, "pushed records compacted");
    Ok(())
}

pub(super) async fn remove_all<'a>(
    store: &Arc<dyn ObjectStore>,
    keys: impl Iterator<Item = &'a Path>,
) -> Result<(), CompactError> {
    let keys: Vec<Path> = keys.cloned().collect();
    futures::stream::iter(keys)
        .map(|key| {
            let store = Arc::clone(store);
            async move {
                inbox::remove(&store, &key)
                    .await
                    .map_err(|source| CompactError::Store {
                        action: "delete",
                        key: key.to_string(),
                        source,
                    })
            }
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

fn key_of(record: &PushRecord) -> (String, String) {
    (record.ivruniqueid.clone(), record.r#type.clone())
}

/// The keys (`ivruniqueid`, `type`) in a day's file.
fn keys(batches: &[RecordBatch]) -> HashSet<(String, String)> {
    let mut keys = HashSet::new();
    for batch in batches {
        let ids = batch.column(0).as_string::<i32>();
        let kinds = batch.column(1).as_string::<i32>();
        for (id, kind) in ids.iter().zip(kinds.iter()) {
            keys.insert((id.unwrap_or("").into(), kind.unwrap_or("").into()));
        }
    }
    keys
}

pub(super) async fn read_batches(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
) -> Result<Vec<RecordBatch>, CompactError> {
    let bytes: Bytes = retry::with_backoff("get", retry::is_transient, || async {
        store.get(key).await?.bytes().await
    })
    .await
    .map_err(|source| CompactError::Store {
        action: "read",
        key: key.to_string(),
        source,
    })?;
    let damaged = |detail: String| CompactError::Damaged {
        key: key.to_string(),
        detail,
    };
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| damaged(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| damaged(e.to_string()))
}

pub(super) async fn put_parquet(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), CompactError> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let encode = || -> Result<Vec<u8>, parquet::errors::ParquetError> {
        let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(properties))?;
        for batch in batches {
            // A file of an earlier version of the schema is read back with its own.
            let batch = RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?;
            writer.write(&batch)?;
        }
        writer.into_inner()
    };
    let bytes = encode().map_err(|e| CompactError::Damaged {
        key: key.to_string(),
        detail: e.to_string(),
    })?;
    let payload = PutPayload::from(bytes);
    // Create-only: a generation is written once. Should a compaction outlive its lease,
    // the one that comes second stops here, before it deletes anything.
    let put = retry::with_backoff("put", retry::is_transient, || {
        store.put_opts(key, payload.clone(), PutMode::Create.into())
    })
    .await;
    match put {
        Ok(_) => Ok(()),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Err(CompactError::Overtaken {
            key: key.to_string(),
        }),
        Err(source) => Err(CompactError::Store {
            action: "write",
            key: key.to_string(),
            source,
        }),
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Price in shekels, exact: agorot are hundredths.
const PRICE: DataType = DataType::Decimal128(18, 2);

/// The text columns of `push_cdr` after the key and the time, as the provider names them.
const TEXT_COLUMNS: [&str; 20] = [
    "caller",
    "target",
    "status",
    "leg1DialStatusName",
    "targetextension",
    "callerextension",
    "did",
    "queueid",
    "queuename",
    "record",
    "representative_name",
    "representative_code",
    "targetextension_name",
    "callerextension_name",
    "target_country",
    "caller_country",
    "OriginalIvrUniqueID",
    "DepartmentName",
    "DepartmentID",
    "TopDepartmentName",
];

fn text_values(r: &PushRecord) -> [&Option<String>; 20] {
    [
        &r.caller,
        &r.target,
        &r.status,
        &r.leg1_dial_status_name,
        &r.targetextension,
        &r.callerextension,
        &r.did,
        &r.queueid,
        &r.queuename,
        &r.record,
        &r.representative_name,
        &r.representative_code,
        &r.targetextension_name,
        &r.callerextension_name,
        &r.target_country,
        &r.caller_country,
        &r.original_ivr_unique_id,
        &r.department_name,
        &r.department_id,
        &r.top_department_name,
    ]
}

/// The schema of `push_cdr`.
pub fn call_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("ivruniqueid", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("time", utc_micros(), false),
    ];
    fields.extend(TEXT_COLUMNS.map(|name| Field::new(name, DataType::Utf8, true)));
    fields.extend([
        Field::new("TopDepartmentID", DataType::Utf8, true),
        Field::new("duration", DataType::Int64, true),
        Field::new("dialtime", DataType::Int64, true),
        Field::new("seconds_waiting_in_queue", DataType::Int64, true),
        Field::new("price_agorot", DataType::Int64, true),
        Field::new("price", PRICE, true),
        Field::new("ivr_layers", DataType::Int64, false),
        Field::new("extra", DataType::Utf8, true),
        Field::new("received_at", utc_micros(), false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The schema of `push_cdr_ivr`: one row per layer, with its call's key.
pub fn layer_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ivruniqueid", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("time", utc_micros(), false),
        Field::new("dtmf_order", DataType::Int64, true),
        Field::new("layer_id", DataType::Utf8, true),
        Field::new("layer_name", DataType::Utf8, true),
        Field::new("layer_number", DataType::Utf8, true),
        Field::new("Dtmf", DataType::Utf8, true),
    ]))
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    b.extend(values.map(Some));
    Arc::new(b.finish())
}

fn texts<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    b.extend(values);
    Arc::new(b.finish())
}

fn wholes(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut b = Int64Builder::new();
    b.extend(values);
    Arc::new(b.finish())
}

/// The `push_cdr` rows of `records`.
pub fn call_batch(records: &[&Accepted]) -> RecordBatch {
    let r = || records.iter().map(|a| &a.record);
    let mut columns: Vec<ArrayRef> = vec![
        texts(r().map(|r| Some(r.ivruniqueid.as_str()))),
        texts(r().map(|r| Some(r.r#type.as_str()))),
        timestamps(r().map(|r| r.time * 1_000_000)),
    ];
    for index in 0..TEXT_COLUMNS.len() {
        columns.push(texts(r().map(|r| text_values(r)[index].as_deref())));
    }
    let mut price = Decimal128Builder::new()
        .with_precision_and_scale(18, 2)
        .expect("18, 2 is a decimal");
    price.extend(r().map(|r| r.price_agorot.map(i128::from)));
    columns.extend([
        texts(r().map(|r| r.top_department_id.as_deref())),
        wholes(r().map(|r| r.duration)),
        wholes(r().map(|r| r.dialtime)),
        wholes(r().map(|r| r.seconds_waiting_in_queue)),
        wholes(r().map(|r| r.price_agorot)),
        Arc::new(price.finish()) as ArrayRef,
        wholes(r().map(|r| Some(r.ivr.len() as i64))),
        texts(r().map(|r| r.extra.as_deref())),
        timestamps(records.iter().map(|a| a.received_at.timestamp_micros())),
    ]);
    RecordBatch::try_new(call_schema(), columns).expect("columns follow the schema")
}

/// The `push_cdr_ivr` rows of `records`' layers.
pub fn layer_batch(records: &[&Accepted]) -> RecordBatch {
    let layers: Vec<_> = records
        .iter()
        .flat_map(|a| a.record.ivr.iter().map(move |layer| (&a.record, layer)))
        .collect();
    let l = || layers.iter();
    let columns: Vec<ArrayRef> = vec![
        texts(l().map(|(r, _)| Some(r.ivruniqueid.as_str()))),
        texts(l().map(|(r, _)| Some(r.r#type.as_str()))),
        timestamps(l().map(|(r, _)| r.time * 1_000_000)),
        wholes(l().map(|(_, layer)| layer.dtmf_order)),
        texts(l().map(|(_, layer)| layer.layer_id.as_deref())),
        texts(l().map(|(_, layer)| layer.layer_name.as_deref())),
        texts(l().map(|(_, layer)| layer.layer_number.as_deref())),
        texts(l().map(|(_, layer)| layer.dtmf.as_deref())),
    ];
    RecordBatch::try_new(layer_schema(), columns).expect("columns follow the schema")
}

/// How many records a day's committed file holds (from its footer), if it has one.
pub async fn records_of_day(
    store: &Arc<dyn ObjectStore>,
    day: NaiveDate,
) -> Result<Option<u64>, CompactError> {
    let Some((_, key)) = committed(store, day).await? else {
        return Ok(None);
    };
    let batches = read_batches(store, &key).await?;
    Ok(Some(batches.iter().map(|b| b.num_rows() as u64).sum()))
}
