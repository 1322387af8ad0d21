//! Header-driven CSV tables: each provider file is described once as a list of typed
//! columns, and one reader serves them all.
//!
//! Columns may come in any order; unknown extra columns are ignored (the caller warns
//! once); a missing required column fails the whole file; a missing optional column is
//! NULL. Each data row becomes typed [`Value`]s or a [`Rejected`] row with the reason,
//! so one bad line never stops the rest of the file.

use std::io::{BufReader, Read};
use std::sync::OnceLock;

use arrow_schema::SchemaRef;
use csv::{ByteRecord, ReaderBuilder, StringRecord};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::crlf::CrlfToLf;
use super::fields::{parse_decimal, parse_seconds, parse_timestamp};
use crate::model::TimestampMicros;

/// Bytes read from the input at a time.
const INPUT_BUFFER: usize = 256 * 1024;

/// How a column's text is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Kept as text: ids and phone numbers keep their `+` and leading zeros.
    Text,
    /// UTC timestamp in microseconds.
    Timestamp,
    /// A whole non-negative number (seconds, counts).
    Whole,
    /// Exact fixed-point money.
    Decimal,
    /// A one-letter code, written as the letter plus a readable `<name>_name` column.
    Code(&'static [(&'static str, &'static str)]),
}

/// One column of a provider file.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// The header must have it (its values may still be empty, except the keys').
    pub required: bool,
}

/// A provider file format and the dataset it becomes.
#[derive(Debug)]
pub struct Table {
    /// Dataset name: the first part of the object key (`cdr`, `queue_call`, …).
    pub dataset: &'static str,
    pub columns: &'static [Column],
    /// The column that identifies a row, for deduplication.
    pub id_column: usize,
    /// The timestamp column whose UTC date is the partition.
    pub date_column: usize,
    /// The Arrow schema, built once from `columns`.
    pub schema: OnceLock<SchemaRef>,
}

impl Table {
    /// The id and the partition time: never empty.
    pub fn is_key(&self, column: usize) -> bool {
        column == self.id_column || column == self.date_column
    }
}

/// A typed field, borrowing text from the CSV row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'r> {
    Null,
    Text(&'r str),
    Micros(i64),
    Whole(i64),
    Decimal(i128),
    /// The letter as sent, and its readable name when the letter is known.
    Code(&'r str, Option<&'static str>),
}

/// Why a whole file cannot be read.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("the file is empty: it has no header row")]
    Empty,
    #[error("the header row lacks the required column{} {}; found: {found}", if .missing.len() == 1 { "" } else { "s" }, .missing.join(", "))]
    MissingColumns {
        missing: Vec<&'static str>,
        found: String,
    },
    #[error("column {0:?} appears twice in the header row")]
    DuplicateColumn(String),
    #[error("line {line}: {source}")]
    Csv { line: u64, source: csv::Error },
}

/// A row set aside, with what is needed to find and fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    /// The row re-encoded as CSV (lossy only where the bytes were not UTF-8).
    pub raw: String,
    pub reason: String,
}

/// A typed row and what deduplication needs to know about it.
#[derive(Debug)]
pub struct Row<'v, 'r> {
    pub values: &'v [Value<'r>],
    pub line: u64,
    pub id: &'r str,
    pub date: TimestampMicros,
    /// Hash of the known columns' bytes: equal rows, equal fingerprints.
    pub fingerprint: u64,
}

/// Maps each known column to its position in this file's rows.
#[derive(Debug, Clone)]
pub struct Header {
    table: &'static Table,
    positions: Vec<Option<usize>>,
    width: usize,
    /// Columns present in the file that the table does not know.
    pub unknown: Vec<String>,
}

impl Header {
    pub fn parse(table: &'static Table, record: &ByteRecord) -> Result<Header, FileError> {
        let mut positions = vec![None; table.columns.len()];
        let mut unknown = Vec::new();
        for (index, raw) in record.iter().enumerate() {
            let name = String::from_utf8_lossy(raw);
            let name = name.trim_start_matches('\u{feff}').trim();
            match table
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
            {
                Some(column) if positions[column].is_some() => {
                    return Err(FileError::DuplicateColumn(name.to_string()));
                }
                Some(column) => positions[column] = Some(index),
                None => unknown.push(name.to_string()),
            }
        }
        let missing: Vec<&'static str> = table
            .columns
            .iter()
            .zip(&positions)
            .filter(|(c, p)| c.required && p.is_none())
            .map(|(c, _)| c.name)
            .collect();
        if !missing.is_empty() {
            let found = record
                .iter()
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(",");
            return Err(FileError::MissingColumns { missing, found });
        }
        Ok(Header {
            table,
            positions,
            width: record.len(),
            unknown,
        })
    }

    /// Types one row into `values`, or says why it cannot be.
    fn type_row<'r>(
        &self,
        record: &'r StringRecord,
        values: &mut Vec<Value<'r>>,
    ) -> Result<(), String> {
        values.clear();
        if record.len() != self.width {
            return Err(format!(
                "has {} fields, the header has {}",
                record.len(),
                self.width
            ));
        }
        for (index, (column, position)) in
            self.table.columns.iter().zip(&self.positions).enumerate()
        {
            let text = position.and_then(|p| record.get(p)).unwrap_or_default();
            let value = if text.is_empty() {
                // Only the id and the call time cannot be missing: without them a row
                // cannot be deduplicated or filed. Any other empty field is NULL (a
                // withheld caller number, say).
                if self.table.is_key(index) {
                    return Err(format!("{} is empty", column.name));
                }
                Value::Null
            } else {
                let typed = match column.kind {
                    Kind::Text => Ok(Value::Text(text)),
                    Kind::Timestamp => parse_timestamp(text).map(|t| Value::Micros(t.0)),
                    Kind::Whole => parse_seconds(text).map(Value::Whole),
                    Kind::Decimal => parse_decimal(text).map(|d| Value::Decimal(d.0)),
                    Kind::Code(names) => {
                        let letter = text.trim();
                        let name = names
                            .iter()
                            .find(|(code, _)| code.eq_ignore_ascii_case(letter));
                        Ok(Value::Code(letter, name.map(|(_, name)| *name)))
                    }
                };
                typed.map_err(|e| format!("{}: {e}", column.name))?
            };
            values.push(value);
        }
        Ok(())
    }

    /// One hash over the whole row's bytes, seeded with its field lengths so that
    /// `ab,c` and `a,bc` differ. Extra columns count too: a row that differs anywhere
    /// is not an identical repeat.
    fn fingerprint(&self, record: &ByteRecord) -> u64 {
        let lengths = record.iter().fold(record.len() as u64, |acc, field| {
            acc.wrapping_mul(0x100_0000_01b3) ^ field.len() as u64
        });
        xxh3_64_with_seed(record.as_slice(), lengths)
    }
}

/// Reads `table` rows from `input`. `on_header` sees the header once (for warnings);
/// `on_row` gets each typed row or rejected one, plus the raw record for quarantining.
/// The outer error fails the file; the inner one is the callbacks' own.
pub fn read<R: Read, E>(
    table: &'static Table,
    input: R,
    on_header: impl FnOnce(&Header) -> Result<(), E>,
    mut on_row: impl FnMut(Result<Row<'_, '_>, Rejected>, &ByteRecord) -> Result<(), E>,
) -> Result<Result<(), E>, FileError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(CrlfToLf::new(BufReader::with_capacity(INPUT_BUFFER, input)));
    let mut record = ByteRecord::new();
    let csv_error = |e: csv::Error| FileError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        source: e,
    };
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(FileError::Empty);
    }
    let header = Header::parse(table, &record)?;
    if let Err(e) = on_header(&header) {
        return Ok(Err(e));
    }
    let mut values = Vec::with_capacity(table.columns.len());
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0) == Some(b"") {
            continue; // a blank line, e.g. at the end of the file
        }
        // One UTF-8 check for the whole row: cheaper than one per field.
        let text = match StringRecord::from_byte_record(std::mem::take(&mut record)) {
            Ok(text) => text,
            Err(e) => {
                record = e.into_byte_record();
                let rejected = Rejected {
                    line,
                    raw: reencode(&record),
                    reason: "is not valid UTF-8".to_string(),
                };
                if let Err(e) = on_row(Err(rejected), &record) {
                    return Ok(Err(e));
                }
                continue;
            }
        };
        // `values` borrows from `text`; it is emptied before `text` is taken apart.
        let mut typed = recycle(std::mem::take(&mut values));
        let row = match header.type_row(&text, &mut typed) {
            Ok(()) => Ok(Row {
                id: match typed[table.id_column] {
                    Value::Text(id) => id.trim(),
                    _ => "",
                },
                date: match typed[table.date_column] {
                    Value::Micros(t) => TimestampMicros(t),
                    _ => TimestampMicros(0),
                },
                values: &typed,
                line,
                fingerprint: header.fingerprint(text.as_byte_record()),
            }),
            Err(reason) => Err(Rejected {
                line,
                raw: reencode(text.as_byte_record()),
                reason,
            }),
        };
        let outcome = on_row(row, text.as_byte_record());
        values = recycle(typed);
        record = text.into_byte_record();
        if let Err(e) = outcome {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// Empties a vector of borrowed values and hands its allocation to a new lifetime, so
/// one buffer serves every row. (The standard library reuses the allocation when
/// collecting an empty `IntoIter` into a vector of a same-sized type.)
fn recycle<'a>(mut values: Vec<Value<'_>>) -> Vec<Value<'a>> {
    values.clear();
    values.into_iter().map(|_| Value::Null).collect()
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
