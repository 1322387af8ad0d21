//! The `calls` columns as Arrow and Parquet: [`schema`] is the README's table.

use std::fs::File;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use arrow_array::builder::{
    Decimal128Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
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

/// A date's calls written as they come, into a Parquet temporary file: each call's
/// values are copied into the columns of the batch being made (so a call may borrow
/// them from the rows it was made of), and each full batch is encoded: in place for
/// a date's first [`APART_ROWS`] calls, then on a thread of its own, beside the making
/// of the next batches.
pub struct Writer<'a> {
    /// The `account` column, the same for every call of a destination.
    account: &'a str,
    columns: Columns,
    /// Calls in the batches encoded or sent to be.
    encoded: usize,
    in_place: Option<ArrowWriter<File>>,
    apart: Option<Encoder>,
}

/// Calls of a date encoded in place before the rest go to a thread: a thread for a
/// small date costs more than it saves, and each one started leaves the allocator an
/// arena of its own (10 dates of 10,000 recordings each, each with a thread from its
/// first batch of 8,192: 145 MiB peak against 90 MiB).
const APART_ROWS: usize = ROW_GROUP_ROWS;

/// The encoder thread: the batches sent to it, and its result once they end.
struct Encoder {
    batches: SyncSender<RecordBatch>,
    done: JoinHandle<Result<File, ParquetError>>,
}

impl<'a> Writer<'a> {
    pub fn new(account: &'a str) -> Self {
        Writer {
            account,
            columns: Columns::default(),
            encoded: 0,
            in_place: None,
            apart: None,
        }
    }

    pub fn push(&mut self, call: &Call<'_>) -> Result<(), ParquetError> {
        self.columns.push(call, self.account);
        if self.columns.rows < BATCH_ROWS {
            return Ok(());
        }
        let full = self.columns.finish()?;
        self.encode(full)
    }

    fn encode(&mut self, batch: RecordBatch) -> Result<(), ParquetError> {
        self.encoded += batch.num_rows();
        if let Some(encoder) = &self.apart {
            if encoder.batches.send(batch).is_err() {
                // It stops early only on an error, which it returns.
                return Err(self.finish_apart().err().unwrap_or_else(stopped_early));
            }
            return Ok(());
        }
        let writer = match &mut self.in_place {
            Some(writer) => writer,
            None => self.in_place.insert(new_writer()?),
        };
        writer.write(&batch)?;
        if self.encoded >= APART_ROWS {
            let mut writer = self.in_place.take().expect("written above");
            // Two batches in flight: the reader never waits for a batch being encoded.
            let (batches, received) = sync_channel::<RecordBatch>(2);
            let done = std::thread::spawn(move || {
                for batch in received {
                    writer.write(&batch)?;
                }
                writer.into_inner()
            });
            self.apart = Some(Encoder { batches, done });
        }
        Ok(())
    }

    /// Ends the encoder thread and takes its result.
    fn finish_apart(&mut self) -> Result<Option<File>, ParquetError> {
        let Some(Encoder { batches, done }) = self.apart.take() else {
            return Ok(None);
        };
        drop(batches);
        done.join()
            .unwrap_or_else(|_| Err(ParquetError::General("the calls encoder panicked".into())))
            .map(Some)
    }

    /// The file (`None`: no calls were pushed).
    pub fn finish(mut self) -> Result<Option<File>, ParquetError> {
        let last = self.columns.finish()?;
        if last.num_rows() > 0 {
            self.encode(last)?;
        }
        if self.apart.is_some() {
            return self.finish_apart();
        }
        self.in_place.map(ArrowWriter::into_inner).transpose()
    }
}

fn stopped_early() -> ParquetError {
    ParquetError::General("the calls encoder stopped before its last batch".into())
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

/// The columns of the batch being made, one builder per column of [`schema`], in its
/// order.
struct Columns {
    rows: usize,
    builders: Vec<Builder>,
}

/// One column's builder, by the column's type.
enum Builder {
    Text(StringBuilder),
    Time(TimestampMicrosecondBuilder),
    Whole(Int64Builder),
    Cost(Decimal128Builder),
}

/// One value of a call, for the builder of its column.
enum Value<'c> {
    Text(Option<&'c str>),
    Time(Option<i64>),
    Whole(Option<i64>),
    Cost(Option<i128>),
}

impl Default for Columns {
    fn default() -> Self {
        let builders = schema()
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::Utf8 => Builder::Text(StringBuilder::new()),
                DataType::Timestamp(..) => {
                    Builder::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                }
                DataType::Int64 => Builder::Whole(Int64Builder::new()),
                _ => Builder::Cost(
                    Decimal128Builder::new()
                        .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                        .expect("the model's precision and scale are valid"),
                ),
            })
            .collect();
        Columns { rows: 0, builders }
    }
}

impl Columns {
    fn push(&mut self, c: &Call<'_>, account: &str) {
        use Value::{Cost, Text, Time, Whole};
        // In [`schema`]'s order.
        let values = [
            Text(Some(c.provider)),
            Text(Some(account)),
            Text(Some(c.feed)),
            Text(Some(c.call_id)),
            Time(Some(c.started_at)),
            Time(c.answered_at),
            Time(c.ended_at),
            Text(c.direction.map(|d| d.as_str())),
            Text(c.from_number),
            Text(c.to_number),
            Text(c.did),
            Text(c.destination),
            Text(c.agent_id),
            Text(c.agent_name),
            Text(c.queue_id),
            Text(c.queue_name),
            Whole(c.ring_seconds),
            Whole(c.wait_seconds),
            Whole(c.talk_seconds),
            Text(Some(c.outcome.as_str())),
            Text(c.outcome_detail),
            Cost(c.cost),
            Text(c.currency),
            Text(c.recording_key),
            Text(Some(c.source_object)),
            Whole(c.source_line),
        ];
        for (builder, value) in self.builders.iter_mut().zip(values) {
            match (builder, value) {
                (Builder::Text(b), Text(v)) => b.append_option(v),
                (Builder::Time(b), Time(v)) => b.append_option(v),
                (Builder::Whole(b), Whole(v)) => b.append_option(v),
                (Builder::Cost(b), Cost(v)) => b.append_option(v),
                _ => unreachable!("a value of another type than its column's"),
            }
        }
        self.rows += 1;
    }

    /// The batch made so far; the builders start again empty.
    fn finish(&mut self) -> Result<RecordBatch, ParquetError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|builder| -> ArrayRef {
                match builder {
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                    Builder::Whole(b) => Arc::new(b.finish()),
                    Builder::Cost(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(schema(), columns).map_err(|e| ParquetError::General(e.to_string()))
    }
}
