//! Rows whose id may have come earlier in their file ([`crate::dedup`]), set aside on
//! disk until the file's end and then read back in the order they came: their typed
//! columns as a Parquet file of the table, and beside them, row for row, what deciding
//! and quarantining them needs (id, fingerprint, call time, line, the record as sent).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;

use crate::dedup::{read_text, write_text};
use crate::formats::table::{Row, Table};
use crate::model::TimestampMicros;
use crate::sink::table_parquet::{TableBatch, schema};

/// Rows gathered before they are encoded (set-aside rows are few, unless the file
/// repeats itself).
const BATCH_ROWS: usize = 8 * 1024;

/// What a set-aside row is decided and quarantined with.
pub struct Note {
    pub id: String,
    pub fingerprint: u64,
    pub date: TimestampMicros,
    pub line: u64,
    pub raw: String,
}

/// The rows set aside so far.
pub struct Aside {
    table: &'static Table,
    batch: TableBatch,
    spooled: Option<(ArrowWriter<File>, BufWriter<File>)>,
}

impl Aside {
    pub fn new(table: &'static Table) -> Self {
        Aside {
            table,
            batch: TableBatch::new(table),
            spooled: None,
        }
    }

    /// Sets `row` aside; `raw` is its record as sent.
    pub fn push(&mut self, row: &Row<'_, '_>, raw: &str, source_file: &str) -> io::Result<()> {
        let (rows, notes) = match &mut self.spooled {
            Some(spooled) => spooled,
            None => self.spooled.insert((
                ArrowWriter::try_new(tempfile::tempfile()?, schema(self.table), None)
                    .map_err(io::Error::other)?,
                BufWriter::new(tempfile::tempfile()?),
            )),
        };
        self.batch.push(row, source_file);
        write_text(notes, row.id)?;
        notes.write_all(&row.fingerprint.to_le_bytes())?;
        notes.write_all(&row.date.0.to_le_bytes())?;
        notes.write_all(&row.line.to_le_bytes())?;
        write_text(notes, raw)?;
        if self.batch.len() >= BATCH_ROWS {
            rows.write(&self.batch.take()).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// The rows set aside, to read back: first their notes alone (to find what to
    /// look up), then notes and rows together.
    pub fn finish(mut self) -> io::Result<Option<SetAside>> {
        let Some((mut rows, notes)) = self.spooled.take() else {
            return Ok(None);
        };
        if !self.batch.is_empty() {
            rows.write(&self.batch.take()).map_err(io::Error::other)?;
        }
        let rows = rows.into_inner().map_err(io::Error::other)?;
        let notes = notes.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(Some(SetAside { rows, notes }))
    }
}

/// The spooled rows and notes.
pub struct SetAside {
    rows: File,
    notes: File,
}

impl SetAside {
    /// Every note, in order.
    pub fn notes(&self) -> io::Result<Notes> {
        let mut file = self.notes.try_clone()?;
        file.rewind()?;
        Ok(Notes(BufReader::new(file)))
    }

    /// The rows, in batches, in order.
    pub fn rows(&self) -> Result<ParquetRecordBatchReader, ParquetError> {
        let file = self
            .rows
            .try_clone()
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(BATCH_ROWS)
            .build()
    }
}

/// The notes of the rows set aside, in order.
pub struct Notes(BufReader<File>);

impl Notes {
    pub fn next_note(&mut self) -> io::Result<Option<Note>> {
        let id = match read_text(&mut self.0) {
            Ok(id) => id,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        let fingerprint = u64::from_le_bytes(self.bytes()?);
        let date = TimestampMicros(i64::from_le_bytes(self.bytes()?));
        let line = u64::from_le_bytes(self.bytes()?);
        Ok(Some(Note {
            id,
            fingerprint,
            date,
            line,
            raw: read_text(&mut self.0)?,
        }))
    }

    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut bytes = [0; N];
        self.0.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}
