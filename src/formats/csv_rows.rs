//! CSV as a row source: the provider's files, read while they stream in.
//!
//! The first row is the header. Records come from the `csv` crate into one reused
//! `ByteRecord`; each is checked as UTF-8 once, as a whole (cheaper than per field),
//! and blank lines are skipped. CRLF becomes LF before the reader sees it, so that
//! lines are numbered as editors number them (see `crlf.rs`).

use std::io::{BufReader, Read};

use csv::{ByteRecord, Reader, ReaderBuilder, StringRecord};

use super::crlf::CrlfToLf;
use super::rows::{Record, RowSource};
use super::table::{FileError, Unreadable, fingerprint};

/// Bytes read from the input at a time.
const INPUT_BUFFER: usize = 256 * 1024;

/// The records of a CSV file.
pub struct CsvRows<R: Read> {
    reader: Reader<CrlfToLf<BufReader<R>>>,
    /// The record last lent out; its buffer is reused for the next.
    record: Option<CsvRecord>,
}

/// One CSV record: its fields as text, or as bytes when they are not UTF-8.
#[derive(Debug)]
pub struct CsvRecord {
    line: u64,
    fields: Result<StringRecord, ByteRecord>,
}

impl<R: Read> CsvRows<R> {
    pub fn new(input: R) -> Self {
        Self::with_delimiter(input, b',')
    }

    /// The records of a CSV file whose fields are split at `delimiter` (`;` in
    /// spreadsheets set to a language whose decimal point is a comma).
    pub fn with_delimiter(input: R, delimiter: u8) -> Self {
        CsvRows {
            reader: ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .from_reader(CrlfToLf::new(BufReader::with_capacity(INPUT_BUFFER, input))),
            record: None,
        }
    }
}

impl<R: Read> RowSource for CsvRows<R> {
    type Record = CsvRecord;

    fn header(&mut self) -> Result<Option<Vec<String>>, FileError> {
        let mut record = ByteRecord::new();
        if !self
            .reader
            .read_byte_record(&mut record)
            .map_err(csv_error)?
        {
            return Err(FileError::Empty);
        }
        Ok(Some(
            record
                .iter()
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .collect(),
        ))
    }

    fn next_record(&mut self) -> Result<Option<&CsvRecord>, FileError> {
        let mut bytes = match self.record.take() {
            Some(record) => record.into_bytes(),
            None => ByteRecord::new(),
        };
        loop {
            if !self
                .reader
                .read_byte_record(&mut bytes)
                .map_err(csv_error)?
            {
                return Ok(None);
            }
            if !(bytes.len() == 1 && bytes.get(0) == Some(b"")) {
                break;
            }
            // A blank line, e.g. at the end of the file.
        }
        let line = bytes.position().map_or(0, |p| p.line());
        // One UTF-8 check for the whole row: cheaper than one per field.
        let fields = StringRecord::from_byte_record(bytes).map_err(|e| e.into_byte_record());
        Ok(Some(self.record.insert(CsvRecord { line, fields })))
    }
}

impl CsvRecord {
    /// The record's bytes, as the `csv` crate read them.
    pub fn bytes(&self) -> &ByteRecord {
        match &self.fields {
            Ok(text) => text.as_byte_record(),
            Err(bytes) => bytes,
        }
    }

    fn into_bytes(self) -> ByteRecord {
        match self.fields {
            Ok(text) => text.into_byte_record(),
            Err(bytes) => bytes,
        }
    }
}

impl Record for CsvRecord {
    fn line(&self) -> u64 {
        self.line
    }

    fn unreadable(&self) -> Option<Unreadable> {
        self.fields.is_err().then_some(Unreadable::NotText)
    }

    fn width(&self) -> usize {
        self.bytes().len()
    }

    fn get(&self, index: usize) -> Option<&str> {
        self.fields.as_ref().ok()?.get(index)
    }

    fn name(&self, _: usize) -> Option<&str> {
        None
    }

    fn raw(&self) -> String {
        reencode(self.bytes())
    }

    fn fingerprint(&self) -> u64 {
        // A `ByteRecord` keeps its fields one after another in one buffer.
        let bytes = self.bytes();
        fingerprint(bytes.iter().map(<[u8]>::len), bytes.as_slice())
    }
}

fn csv_error(e: csv::Error) -> FileError {
    FileError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        source: e,
    }
}

/// The row written back as one CSV line, for the quarantine.
pub fn reencode(record: &ByteRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_byte_record(record);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_string()
}
