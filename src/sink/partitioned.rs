//! Rows split by call date into one Parquet file per date, spooled to anonymous
//! temporary files so memory stays bounded whatever the input size.
//!
//! Rows are gathered into Arrow batches on the caller's thread and encoded to Parquet
//! on a thread of its own, so parsing and compression run on two cores at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::table_parquet::{TableBatch, schema};
use crate::formats::table::Table;

/// Rows per Arrow batch handed to the Parquet writer, and at most this many rows wait
/// in the batches of all dates together (a file whose rows spread over many dates
/// would otherwise hold them all until the end).
const BATCH_ROWS: usize = 32 * 1024;
/// Encoded bytes the writers of all dates may hold before the biggest writes its row
/// group out; so may [`ROW_GROUP_ROWS`] rows over all dates (a row group is then
/// shorter than that).
const ENCODED_BUDGET: usize = 64 << 20;
/// Rows per row group, and over the row groups in progress of all dates together:
/// bounds the encoded data the writers hold.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Batches waiting for the encoder; more would only hold memory.
const QUEUED_BATCHES: usize = 2;

/// One finished partition file, ready to upload.
#[derive(Debug)]
pub struct Part {
    pub date: NaiveDate,
    pub file: File,
    pub rows: u64,
}

/// Writes one table's rows into per-date Parquet files.
pub struct PartitionedWriter {
    table: &'static Table,
    open: BTreeMap<NaiveDate, (TableBatch, u64)>,
    /// Rows in the batches of `open`, all dates together.
    waiting: usize,
    batches: SyncSender<(NaiveDate, RecordBatch)>,
    encoder: Option<JoinHandle<Encoded>>,
}

type Encoded = Result<BTreeMap<NaiveDate, File>, ParquetError>;

impl PartitionedWriter {
    pub fn new(table: &'static Table) -> Self {
        let (batches, received) = sync_channel(QUEUED_BATCHES);
        let encoder = std::thread::Builder::new()
            .name("parquet-encoder".into())
            .spawn(move || encode(table, received))
            .expect("a thread can be started");
        PartitionedWriter {
            table,
            open: BTreeMap::new(),
            waiting: 0,
            batches,
            encoder: Some(encoder),
        }
    }

    /// Adds one row to the file of `date`.
    pub fn push(
        &mut self,
        date: NaiveDate,
        add: impl FnOnce(&mut TableBatch),
    ) -> Result<(), ParquetError> {
        let table = self.table;
        let (builder, rows) = self
            .open
            .entry(date)
            .or_insert_with(|| (TableBatch::new(table), 0));
        add(builder);
        *rows += 1;
        self.waiting += 1;
        if self.waiting >= BATCH_ROWS {
            self.send_biggest()?;
        }
        Ok(())
    }

    /// Hands the date with the most waiting rows to the encoder.
    fn send_biggest(&mut self) -> Result<(), ParquetError> {
        let Some((&date, (builder, _))) = self.open.iter_mut().max_by_key(|(_, (b, _))| b.len())
        else {
            return Ok(());
        };
        self.waiting -= builder.len();
        let batch = builder.take();
        if self.batches.send((date, batch)).is_err() {
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| ParquetError::General("the Parquet encoder stopped".into())));
        }
        Ok(())
    }

    /// Adds `batch` (rows of this table) to the file of `date`, after the rows pushed
    /// so far.
    pub fn push_batch(&mut self, date: NaiveDate, batch: RecordBatch) -> Result<(), ParquetError> {
        let table = self.table;
        let (builder, rows) = self
            .open
            .entry(date)
            .or_insert_with(|| (TableBatch::new(table), 0));
        *rows += batch.num_rows() as u64;
        let mut batches = vec![batch];
        if !builder.is_empty() {
            self.waiting -= builder.len();
            batches.insert(0, builder.take());
        }
        for batch in batches {
            if self.batches.send((date, batch)).is_err() {
                return Err(self.join().err().unwrap_or_else(|| {
                    ParquetError::General("the Parquet encoder stopped".into())
                }));
            }
        }
        Ok(())
    }

    /// Rows added so far, all dates together.
    pub fn rows(&self) -> u64 {
        self.open.values().map(|(_, rows)| rows).sum()
    }

    /// Encodes what is left, closes every file and returns them in date order.
    pub fn finish(mut self) -> Result<Vec<Part>, ParquetError> {
        let mut rows = BTreeMap::new();
        for (date, (mut builder, count)) in std::mem::take(&mut self.open) {
            if !builder.is_empty() && self.batches.send((date, builder.take())).is_err() {
                break;
            }
            rows.insert(date, count);
        }
        let (closed, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.batches, closed));
        let files = self.join()?;
        Ok(files
            .into_iter()
            .map(|(date, file)| Part {
                date,
                file,
                rows: rows.get(&date).copied().unwrap_or(0),
            })
            .collect())
    }
}

/// Rows split by date and held in memory, then encoded one date at a time: for a
/// batch of many small files (`sink::newest`), whose rows are bounded by the batch's
/// size. Unlike [`PartitionedWriter`], at most one Parquet writer exists at a time
/// (a batch of sessions spread over 28 dates had 28 open at once, more memory than
/// its rows), and no encoder thread is started per batch (three threads a batch left
/// the allocator's memory scattered over their arenas, growing batch after batch).
/// The files are byte for byte the ones a `PartitionedWriter` given the same rows
/// writes.
pub struct DatedRows {
    table: &'static Table,
    open: BTreeMap<NaiveDate, Dated>,
}

#[derive(Default)]
struct Dated {
    /// Full batches of [`BATCH_ROWS`] rows, as the encoder would get them.
    done: Vec<RecordBatch>,
    builder: Option<TableBatch>,
    rows: u64,
}

impl DatedRows {
    pub fn new(table: &'static Table) -> Self {
        DatedRows {
            table,
            open: BTreeMap::new(),
        }
    }

    /// Adds one row to the rows of `date`.
    pub fn push(&mut self, date: NaiveDate, add: impl FnOnce(&mut TableBatch)) {
        let table = self.table;
        let dated = self.open.entry(date).or_default();
        let builder = dated.builder.get_or_insert_with(|| TableBatch::new(table));
        add(builder);
        dated.rows += 1;
        if builder.len() >= BATCH_ROWS {
            dated.done.push(builder.take());
        }
    }

    /// Writes each date's file, one after the other, and returns them in date order.
    pub fn finish(self) -> Result<Vec<Part>, ParquetError> {
        let table = self.table;
        self.open
            .into_iter()
            .map(|(date, mut dated)| {
                if let Some(mut builder) = dated.builder.take().filter(|b| !b.is_empty()) {
                    dated.done.push(builder.take());
                }
                Ok(Part {
                    date,
                    file: write_file(table, &dated.done)?,
                    rows: dated.rows,
                })
            })
            .collect()
    }
}

impl PartitionedWriter {
    /// Waits for the encoder to end (it does once the batches stop) and takes its result.
    fn join(&mut self) -> Encoded {
        match self.encoder.take().map(JoinHandle::join) {
            Some(Ok(encoded)) => encoded,
            Some(Err(_)) => Err(ParquetError::General("the Parquet encoder panicked".into())),
            None => Err(ParquetError::General(
                "the Parquet encoder already ended".into(),
            )),
        }
    }
}

/// zstd, bounded row groups, and encodings chosen for what the columns hold: ids are
/// unique, so a dictionary only costs time; times and line numbers mostly rise, which
/// delta encoding stores in a few bits each.
fn writer_properties(table: &'static Table) -> WriterProperties {
    let column = |index: usize| ColumnPath::from(table.columns[index].name);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // No library version in the file: the same rows give the same bytes across upgrades.
        .set_created_by("cdr-ingest".to_string())
        .set_column_dictionary_enabled(column(table.id_column), false)
        .set_column_dictionary_enabled(column(table.date_column), false)
        .set_column_encoding(column(table.date_column), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("_source_line"), false)
        .set_column_encoding(
            ColumnPath::from("_source_line"),
            Encoding::DELTA_BINARY_PACKED,
        )
        .build()
}

/// Writes `batches` of `table` into one Parquet temporary file, as the encoder would.
pub fn write_file(table: &'static Table, batches: &[RecordBatch]) -> Result<File, ParquetError> {
    let file = tempfile::tempfile().map_err(|e| ParquetError::External(Box::new(e)))?;
    let mut writer = ArrowWriter::try_new(file, schema(table), Some(writer_properties(table)))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.into_inner()
}

/// One Parquet temporary file written batch by batch (the rows of many objects merged
/// into one need not be in memory at once), with [`write_file`]'s encoding.
pub struct FileWriter {
    table: &'static Table,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
}

impl FileWriter {
    pub fn new(table: &'static Table) -> Self {
        FileWriter {
            table,
            writer: None,
            rows: 0,
        }
    }

    /// Adds a batch's rows (an empty batch adds nothing).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let file = tempfile::tempfile().map_err(|e| ParquetError::External(Box::new(e)))?;
                let props = writer_properties(self.table);
                self.writer
                    .insert(ArrowWriter::try_new(file, schema(self.table), Some(props))?)
            }
        };
        self.rows += batch.num_rows() as u64;
        writer.write(batch)
    }

    /// The file and its rows, or `None` if no row was written.
    pub fn finish(self) -> Result<Option<(File, u64)>, ParquetError> {
        match self.writer {
            Some(writer) => Ok(Some((writer.into_inner()?, self.rows))),
            None => Ok(None),
        }
    }
}

/// The encoder thread: one Parquet writer per date, closed when the batches end.
fn encode(
    table: &'static Table,
    batches: Receiver<(NaiveDate, RecordBatch)>,
) -> Result<BTreeMap<NaiveDate, File>, ParquetError> {
    let props = writer_properties(table);
    let mut writers: BTreeMap<NaiveDate, ArrowWriter<File>> = BTreeMap::new();
    for (date, batch) in batches {
        let writer = match writers.entry(date) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let file = tempfile::tempfile().map_err(|e| ParquetError::External(Box::new(e)))?;
                e.insert(ArrowWriter::try_new(
                    file,
                    schema(table),
                    Some(props.clone()),
                )?)
            }
        };
        writer.write(&batch)?;
        // A writer holds its row group's pages and column dictionaries until it ends
        // the row group: over many dates, the rows of every date would be held.
        let rows: usize = writers.values().map(ArrowWriter::in_progress_rows).sum();
        let bytes: usize = writers.values().map(ArrowWriter::in_progress_size).sum();
        if (rows > ROW_GROUP_ROWS || bytes > ENCODED_BUDGET)
            && let Some(biggest) = writers.values_mut().max_by_key(|w| w.in_progress_rows())
        {
            biggest.flush()?;
        }
    }
    writers
        .into_iter()
        .map(|(date, writer)| Ok((date, writer.into_inner()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek};

    use super::*;
    use crate::formats::cdr_csv::CDR;
    use crate::formats::table::read;

    fn bytes(mut file: File) -> Vec<u8> {
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    /// Rows spread over many dates do not all wait until the end: at most a batch of
    /// them waits, over every date, and each date's file still has all of its rows.
    #[test]
    fn rows_over_many_dates_wait_a_batch_at_most() {
        let mut csv = "id,calldate,src,dst,duration,billsec,disposition\n".to_string();
        let (count, days) = (3 * BATCH_ROWS, 90);
        for id in 0..count {
            csv.push_str(&format!("{id},2024-03-01 00:00:00,1,2,{id},0,A\n"));
        }
        let mut streamed = PartitionedWriter::new(&CDR);
        let (mut line, mut most_waiting) = (0, 0);
        read::<_, ()>(
            &CDR,
            csv.as_bytes(),
            |_| Ok(()),
            |row, _| {
                let date =
                    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(line % days);
                line += 1;
                streamed
                    .push(date, |b| b.push(&row.unwrap(), "test.csv"))
                    .unwrap();
                most_waiting = most_waiting.max(streamed.waiting);
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        assert!(most_waiting < BATCH_ROWS, "{most_waiting} rows waited");
        let parts = streamed.finish().unwrap();
        assert_eq!(parts.len(), days as usize);
        assert!(
            parts
                .iter()
                .all(|p| p.rows == (count / days as usize) as u64
                    || p.rows == (count / days as usize + 1) as u64)
        );
        assert_eq!(parts.iter().map(|p| p.rows).sum::<u64>(), count as u64);
    }

    /// The rows of three dates, one of them over a batch of rows, give the same files
    /// held in memory as through the encoder.
    #[test]
    fn dated_rows_write_what_the_partitioned_writer_writes() {
        let mut csv = "id,calldate,src,dst,duration,billsec,disposition\n".to_string();
        let count = BATCH_ROWS + BATCH_ROWS / 2;
        for id in 0..count {
            csv.push_str(&format!("{id},2024-03-01 00:00:00,1,2,{id},0,A\n"));
        }
        let (mut streamed, mut held) = (PartitionedWriter::new(&CDR), DatedRows::new(&CDR));
        let mut line = 0;
        read::<_, ()>(
            &CDR,
            csv.as_bytes(),
            |_| Ok(()),
            |row, _| {
                let row = row.unwrap();
                // Most rows on the 1st, every seventh on the 2nd, every eleventh on the 3rd.
                let day = match line {
                    n if n % 11 == 0 => 3,
                    n if n % 7 == 0 => 2,
                    _ => 1,
                };
                line += 1;
                let date = NaiveDate::from_ymd_opt(2024, 3, day).unwrap();
                streamed.push(date, |b| b.push(&row, "test.csv")).unwrap();
                held.push(date, |b| b.push(&row, "test.csv"));
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        let (streamed, held) = (streamed.finish().unwrap(), held.finish().unwrap());
        assert_eq!(held.len(), 3);
        assert_eq!(held.iter().map(|p| p.rows).sum::<u64>(), count as u64);
        assert!(held[0].rows > BATCH_ROWS as u64);
        for (streamed, held) in streamed.into_iter().zip(held) {
            assert_eq!((streamed.date, streamed.rows), (held.date, held.rows));
            assert_eq!(bytes(streamed.file), bytes(held.file), "{}", held.date);
        }
    }
}
