//! Header-driven tables: each provider file is described once as a list of typed
//! columns, and one reader serves them all, whatever its rows come from.
//!
//! A row source ([`super::rows`]) only splits its input into records: [`read`] reads
//! CSV (`csv_rows.rs`); [`read_rows`] reads any source (`json_rows.rs`: JSON objects).
//! The rest is done here, once for every source. Columns may come in any order;
//! unknown extra columns are ignored (the caller warns once); a missing required
//! column fails the whole file (for a source whose records name their own fields, it
//! sets that record aside); a missing optional column is NULL. Each record becomes
//! typed [`Value`]s or a [`Rejected`] row with the reason, so one bad line never stops
//! the rest of the file.

use std::io::Read;
use std::sync::OnceLock;

use arrow_schema::SchemaRef;
use csv::ByteRecord;
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::csv_rows::CsvRows;
use super::fields::{parse_decimal, parse_seconds, parse_timestamp};
use super::rows::{Record, RowSource};
use crate::model::TimestampMicros;

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

    /// The column a header or a record calls `name` (already [`clean`]ed), ignoring case.
    fn column_named(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The required columns that have no position.
    fn missing(&self, positions: &[Option<usize>]) -> Vec<&'static str> {
        self.columns
            .iter()
            .zip(positions)
            .filter(|(c, p)| c.required && p.is_none())
            .map(|(c, _)| c.name)
            .collect()
    }
}

/// A column name as a header or a record gives it, without a byte-order mark or
/// surrounding blanks.
fn clean(name: &str) -> &str {
    name.trim_start_matches('\u{feff}').trim()
}

/// A typed field, borrowing text from the record.
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
    #[error("the header row lacks the required {}; found: {found}", columns(.missing))]
    MissingColumns {
        missing: Vec<&'static str>,
        found: String,
    },
    #[error("column {0:?} appears twice in the header row")]
    DuplicateColumn(String),
    #[error("line {line}: {source}")]
    Csv { line: u64, source: csv::Error },
}

/// Why a record is set aside before any of its values are typed. A source says which
/// applies; the words are the table's, like every other reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unreadable {
    #[error("is not valid UTF-8")]
    NotText,
    #[error("is not a JSON object: {0}")]
    NotJson(&'static str),
    #[error("has {fields} fields, the header has {header}")]
    Width { fields: usize, header: usize },
    #[error("has column {0:?} twice")]
    DuplicateColumn(String),
    #[error("lacks the required {}", columns(.0))]
    MissingColumns(Vec<&'static str>),
}

/// `column a` or `columns a, b`.
fn columns(names: &[&str]) -> String {
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("column{plural} {}", names.join(", "))
}

/// A row set aside, with what is needed to find and fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The line the record starts on.
    pub line: u64,
    /// The record as its source wrote it ([`Record::raw`]): a CSV row re-encoded as
    /// one CSV line (lossy only where the bytes were not UTF-8), a JSON object as sent.
    pub raw: String,
    pub reason: String,
}

/// A typed row and what deduplication needs to know about it.
#[derive(Debug)]
pub struct Row<'v, 'r> {
    pub values: &'v [Value<'r>],
    /// The line the record starts on.
    pub line: u64,
    pub id: &'r str,
    pub date: TimestampMicros,
    /// Hash of the record's fields ([`fingerprint`]): equal rows, equal fingerprints.
    pub fingerprint: u64,
}

/// Maps each known column to its position in this file's rows.
#[derive(Debug, Clone)]
pub struct Header {
    positions: Vec<Option<usize>>,
    width: usize,
    /// Columns present in the file that the table does not know.
    pub unknown: Vec<String>,
}

impl Header {
    /// Matches a header row's `names`, as sent, to the table's columns.
    pub fn parse(table: &'static Table, names: &[String]) -> Result<Header, FileError> {
        let mut positions = vec![None; table.columns.len()];
        let mut unknown = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let name = clean(name);
            match table.column_named(name) {
                Some(column) if positions[column].is_some() => {
                    return Err(FileError::DuplicateColumn(name.to_string()));
                }
                Some(column) => positions[column] = Some(index),
                None => unknown.push(name.to_string()),
            }
        }
        let missing = table.missing(&positions);
        if !missing.is_empty() {
            return Err(FileError::MissingColumns {
                missing,
                found: names.join(","),
            });
        }
        Ok(Header {
            positions,
            width: names.len(),
            unknown,
        })
    }
}

/// Where each of the table's columns is among a record's fields.
enum Binding {
    /// Fixed by the header row, the same for every record.
    Header(Header),
    /// Found by name in each record (the buffer is reused).
    Named(Vec<Option<usize>>),
}

impl Binding {
    /// The position of each column in `record`, or why the record cannot be read.
    fn bind(
        &mut self,
        table: &Table,
        record: &impl Record,
    ) -> Result<&[Option<usize>], Unreadable> {
        if let Some(problem) = record.unreadable() {
            return Err(problem);
        }
        match self {
            Binding::Header(header) => {
                if record.width() != header.width {
                    return Err(Unreadable::Width {
                        fields: record.width(),
                        header: header.width,
                    });
                }
                Ok(&header.positions)
            }
            Binding::Named(positions) => {
                positions.fill(None);
                for index in 0..record.width() {
                    let Some(name) = record.name(index).map(clean) else {
                        continue;
                    };
                    match table.column_named(name) {
                        Some(column) if positions[column].is_some() => {
                            return Err(Unreadable::DuplicateColumn(name.to_string()));
                        }
                        Some(column) => positions[column] = Some(index),
                        None => {}
                    }
                }
                let missing = table.missing(positions);
                if !missing.is_empty() {
                    return Err(Unreadable::MissingColumns(missing));
                }
                Ok(positions)
            }
        }
    }
}

/// Types one record, whose columns are at `positions`, into `values`, or says which
/// column cannot be typed and why.
fn type_row<'r>(
    table: &Table,
    positions: &[Option<usize>],
    record: &'r impl Record,
    values: &mut Vec<Value<'r>>,
) -> Result<(), (usize, String)> {
    values.clear();
    for (index, (column, position)) in table.columns.iter().zip(positions).enumerate() {
        let text = position.and_then(|p| record.get(p)).unwrap_or_default();
        let value = if text.is_empty() {
            // Only the id and the call time cannot be missing: without them a row
            // cannot be deduplicated or filed. Any other empty field is NULL (a
            // withheld caller number, say).
            if table.is_key(index) {
                return Err((index, format!("{} is empty", column.name)));
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
            typed.map_err(|e| (index, format!("{}: {e}", column.name)))?
        };
        values.push(value);
    }
    Ok(())
}

/// One hash over a record's bytes (`joined`: its fields one after another), seeded
/// with the fields' `lengths` so that `ab,c` and `a,bc` differ. Every field counts,
/// known column or not: a row that differs anywhere is not an identical repeat.
pub fn fingerprint(lengths: impl ExactSizeIterator<Item = usize>, joined: &[u8]) -> u64 {
    let seed = lengths.len() as u64;
    let seed = lengths.fold(seed, |acc, length| {
        acc.wrapping_mul(0x100_0000_01b3) ^ length as u64
    });
    xxh3_64_with_seed(joined, seed)
}

/// Reads `table` rows from CSV `input`. `on_header` sees the header once (for
/// warnings); `on_row` gets each typed row or rejected one, plus the raw record for
/// quarantining. The outer error fails the file; the inner one is the callbacks' own.
pub fn read<R: Read, E>(
    table: &'static Table,
    input: R,
    on_header: impl FnOnce(&Header) -> Result<(), E>,
    mut on_row: impl FnMut(Result<Row<'_, '_>, Rejected>, &ByteRecord) -> Result<(), E>,
) -> Result<Result<(), E>, FileError> {
    read_rows(table, CsvRows::new(input), on_header, |row, record| {
        on_row(row, record.bytes())
    })
}

/// Reads `table` rows from any row source, as [`read`] does from CSV; `on_header` is
/// called only by a source with a header row, and `on_row` gets the source's record.
pub fn read_rows<S: RowSource, E>(
    table: &'static Table,
    mut source: S,
    on_header: impl FnOnce(&Header) -> Result<(), E>,
    mut on_row: impl FnMut(Result<Row<'_, '_>, Rejected>, &S::Record) -> Result<(), E>,
) -> Result<Result<(), E>, FileError> {
    let mut binding = match source.header()? {
        Some(names) => {
            let header = Header::parse(table, &names)?;
            if let Err(e) = on_header(&header) {
                return Ok(Err(e));
            }
            Binding::Header(header)
        }
        None => Binding::Named(vec![None; table.columns.len()]),
    };
    let mut values = Vec::with_capacity(table.columns.len());
    while let Some(record) = source.next_record()? {
        // `values` borrows from `record`; it is emptied before the next one is read.
        let mut typed = recycle(std::mem::take(&mut values));
        let row = type_bound(table, &mut binding, record, &mut typed).map_err(|refusal| Rejected {
            line: record.line(),
            raw: record.raw(),
            reason: refusal.reason,
        });
        let outcome = on_row(row, record);
        values = recycle(typed);
        if let Err(e) = outcome {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// Why one record could not be typed: the column at fault (`None` when the record
/// could not be split into fields at all) and the reason, worded as [`read_rows`]
/// words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub column: Option<usize>,
    pub reason: String,
}

/// Types one record of a source whose records name their own fields, exactly as
/// [`read_rows`] types each of its records, for a caller that finds its records
/// itself (a nested document: `sessions_json.rs`). `values` is the buffer the row's
/// values are kept in.
pub fn type_record<'v, 'r>(
    table: &'static Table,
    record: &'r impl Record,
    values: &'v mut Vec<Value<'r>>,
) -> Result<Row<'v, 'r>, Refusal> {
    let mut binding = Binding::Named(vec![None; table.columns.len()]);
    type_bound(table, &mut binding, record, values)
}

/// Binds `record` to the table's columns and types it into `values`.
fn type_bound<'v, 'r>(
    table: &'static Table,
    binding: &mut Binding,
    record: &'r impl Record,
    values: &'v mut Vec<Value<'r>>,
) -> Result<Row<'v, 'r>, Refusal> {
    let positions = binding.bind(table, record).map_err(|e| Refusal {
        column: match &e {
            Unreadable::MissingColumns(names) => {
                names.first().and_then(|name| table.column_named(name))
            }
            _ => None,
        },
        reason: e.to_string(),
    })?;
    type_row(table, positions, record, values).map_err(|(column, reason)| Refusal {
        column: Some(column),
        reason,
    })?;
    let id = match values[table.id_column] {
        Value::Text(id) => id.trim(),
        // A numeric id is identified by its text as sent.
        Value::Whole(_) => positions[table.id_column]
            .and_then(|p| record.get(p))
            .map_or("", str::trim),
        _ => "",
    };
    Ok(Row {
        id,
        date: match values[table.date_column] {
            Value::Micros(t) => TimestampMicros(t),
            _ => TimestampMicros(0),
        },
        values,
        line: record.line(),
        fingerprint: record.fingerprint(),
    })
}

/// Empties a vector of borrowed values and hands its allocation to a new lifetime, so
/// one buffer serves every row. (The standard library reuses the allocation when
/// collecting an empty `IntoIter` into a vector of a same-sized type.)
fn recycle<'a>(mut values: Vec<Value<'_>>) -> Vec<Value<'a>> {
    values.clear();
    values.into_iter().map(|_| Value::Null).collect()
}
