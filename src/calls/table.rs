//! The `calls` columns as Arrow and Parquet: [`schema`] is the README's table.

use std::fs::File;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use arrow_array::builder::{
    Decimal128Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::Call;
use crate::model::{DECIMAL_PRECISION, DECIMAL_SCALE};

/// The dataset's name: `calls/date=D/calls.parquet`.
pub const DATASET: &str = crate::sink::layout::CALLS;

/// Rows per Arrow batch written, and per row group (which the writer holds encoded
/// until it is complete): what bounds the memory of writing a date's calls.
const BATCH_ROWS: usize = 8 * 1024;
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The columns of `calls`, in order.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
            let time = |name: &str, nullable| {
                Field::new(
                    name,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    nullable,
                )
            };
            let whole = |name: &str| Field::new(name, DataType::Int64, true);
            Arc::new(Schema::new(vec![
                text("provider", false),
                text("account", false),
                text("feed", false),
                text("call_id", false),
                time("started_at", false),
                time("answered_at", true),
                time("ended_at", true),
                text("direction", true),
                text("from_number", true),
                text("to_number", true),
                text("did", true),
                text("destination", true),
                text("agent_id", true),
                text("agent_name", true),
                text("queue_id", true),
                text("queue_name", true),
                whole("ring_seconds"),
                whole("wait_seconds"),
                whole("talk_seconds"),
                text("outcome", false),
                text("outcome_detail", true),
                Field::new(
                    "cost",
                    DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
                    true,
                ),
                text("currency", true),
                text("recording_key", true),
                text("source_object", false),
                whole("source_line"),
            ]))
        })
        .clone()
}

/// A date's calls written as they come, into a Parquet temporary file. Once a first
/// batch is full, the batches are made into columns and encoded on a thread of their
/// own, beside the reading of the next ones; a smaller date is encoded in place.
pub struct Writer<'a> {
    /// The `account` column, the same for every call of a destination.
    account: &'a str,
    batch: Vec<Call>,
    encoder: Option<Encoder>,
}

/// The encoder thread: the batches sent to it, and its result once they end.
struct Encoder {
    batches: SyncSender<Vec<Call>>,
    done: JoinHandle<Result<Option<File>, ParquetError>>,
}

impl<'a> Writer<'a> {
    pub fn new(account: &'a str) -> Self {
        Writer {
            account,
            batch: Vec::with_capacity(BATCH_ROWS),
            encoder: None,
        }
    }

    pub fn push(&mut self, call: Call) -> Result<(), ParquetError> {
        self.batch.push(call);
        if self.batch.len() < BATCH_ROWS {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        let account = self.account.to_string();
        let encoder = self.encoder.get_or_insert_with(|| {
            // Two batches in flight: the reader never waits for a batch being encoded.
            let (batches, received) = sync_channel(2);
            let done = std::thread::spawn(move || encode(&account, received));
            Encoder { batches, done }
        });
        if encoder.batches.send(full).is_err() {
            // It stops early only on an error, which it returns.
            return Err(self.finish_encoder().err().unwrap_or_else(stopped_early));
        }
        Ok(())
    }

    /// Ends the encoder thread and takes its result.
    fn finish_encoder(&mut self) -> Result<Option<File>, ParquetError> {
        let Some(Encoder { batches, done }) = self.encoder.take() else {
            return Ok(None);
        };
        drop(batches);
        done.join()
            .unwrap_or_else(|_| Err(ParquetError::General("the calls encoder panicked".into())))
    }

    /// The file (`None`: no calls were pushed).
    pub fn finish(mut self) -> Result<Option<File>, ParquetError> {
        let last = std::mem::take(&mut self.batch);
        let Some(encoder) = &self.encoder else {
            return encode(self.account, std::iter::once(last));
        };
        let sent = encoder.batches.send(last).is_ok();
        let file = self.finish_encoder()?;
        if sent { Ok(file) } else { Err(stopped_early()) }
    }
}

fn stopped_early() -> ParquetError {
    ParquetError::General("the calls encoder stopped before its last batch".into())
}

/// Writes `batches` of calls into a Parquet temporary file (`None`: none had calls).
fn encode(
    account: &str,
    batches: impl IntoIterator<Item = Vec<Call>>,
) -> Result<Option<File>, ParquetError> {
    let mut writer = None;
    for calls in batches {
        if calls.is_empty() {
            continue;
        }
        let writer = match &mut writer {
            Some(writer) => writer,
            None => writer.insert(new_writer()?),
        };
        writer.write(&batch(&calls, account)?)?;
    }
    writer.map(ArrowWriter::into_inner).transpose()
}

fn new_writer() -> Result<ArrowWriter<File>, ParquetError> {
    let file = tempfile::tempfile().map_err(|e| ParquetError::External(Box::new(e)))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // No library version in the file: the same calls give the same bytes.
        .set_created_by("cdr-ingest".to_string());
    // Columns whose values are (nearly) all different: a dictionary only costs
    // time (as in `sink::partitioned`).
    let props = [
        "call_id",
        "started_at",
        "answered_at",
        "ended_at",
        "source_line",
    ]
    .into_iter()
    .fold(props, |p, name| {
        p.set_column_dictionary_enabled(ColumnPath::from(name), false)
    })
    .build();
    ArrowWriter::try_new(file, schema(), Some(props))
}

fn batch(calls: &[Call], account: &str) -> Result<RecordBatch, ParquetError> {
    let texts = |f: &dyn Fn(&Call) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::new();
        for call in calls {
            b.append_option(f(call));
        }
        Arc::new(b.finish())
    };
    let times = |f: &dyn Fn(&Call) -> Option<i64>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for call in calls {
            b.append_option(f(call));
        }
        Arc::new(b.finish())
    };
    let wholes = |f: &dyn Fn(&Call) -> Option<i64>| -> ArrayRef {
        let mut b = Int64Builder::new();
        for call in calls {
            b.append_option(f(call));
        }
        Arc::new(b.finish())
    };
    let mut cost = Decimal128Builder::new()
        .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
        .map_err(|e| ParquetError::General(e.to_string()))?;
    for call in calls {
        cost.append_option(call.cost);
    }
    let columns: Vec<ArrayRef> = vec![
        texts(&|c| Some(c.provider)),
        Arc::new(StringArray::from(vec![account; calls.len()])),
        texts(&|c| Some(c.feed)),
        texts(&|c| Some(&c.call_id)),
        times(&|c| Some(c.started_at)),
        times(&|c| c.answered_at),
        times(&|c| c.ended_at),
        texts(&|c| c.direction.map(|d| d.as_str())),
        texts(&|c| c.from_number.as_deref()),
        texts(&|c| c.to_number.as_deref()),
        texts(&|c| c.did.as_deref()),
        texts(&|c| c.destination.as_deref()),
        texts(&|c| c.agent_id.as_deref()),
        texts(&|c| c.agent_name.as_deref()),
        texts(&|c| c.queue_id.as_deref()),
        texts(&|c| c.queue_name.as_deref()),
        wholes(&|c| c.ring_seconds),
        wholes(&|c| c.wait_seconds),
        wholes(&|c| c.talk_seconds),
        texts(&|c| Some(c.outcome.as_str())),
        texts(&|c| c.outcome_detail.as_deref()),
        Arc::new(cost.finish()),
        texts(&|c| c.currency.as_deref()),
        texts(&|c| c.recording_key.as_deref()),
        texts(&|c| Some(&c.source_object)),
        wholes(&|c| c.source_line),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| ParquetError::General(e.to_string()))
}
