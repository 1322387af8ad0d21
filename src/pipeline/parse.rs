//! Parsing one file (a CSV, or any row source) into per-date Parquet files and a
//! quarantine, deduplicating by id. Runs on a blocking thread; everything it produces
//! is still in temporary files.

use std::fs::File;
use std::io::Read;

use super::IngestError;
use super::dedup::{IdSet, Seen};
use crate::formats::csv_rows::CsvRows;
use crate::formats::rows::{Record, RowSource};
use crate::formats::table::{self, FileError, Header, Table, Typing};
use crate::sink::partitioned::{Part, PartitionedWriter};
use crate::sink::quarantine::{QuarantineEntry, QuarantineWriter};

/// What parsing one file produced.
pub struct Parsed {
    pub table: &'static Table,
    pub parts: Vec<Part>,
    pub quarantine: Option<File>,
    pub rows_written: u64,
    pub quarantined: u64,
    pub duplicates_dropped: u64,
    pub unknown_columns: Vec<String>,
}

/// Why a file could not be parsed or spooled.
#[derive(Debug)]
pub enum ParseError {
    Format(FileError),
    Spool(String),
}

impl ParseError {
    pub fn with_path(self, path: &str) -> IngestError {
        match self {
            ParseError::Format(source) => IngestError::Format {
                path: path.to_string(),
                source,
            },
            ParseError::Spool(detail) => IngestError::Spool { detail },
        }
    }
}

/// Bytes per row assumed when sizing the duplicate check from a file's size; the
/// provider's rows are about 140 bytes, so this errs on the side of room.
const BYTES_PER_ROW_ESTIMATE: u64 = 100;

/// Parses `input` as `table`; `source_file` is recorded in every row and quarantine
/// entry; `size` (the file's size in bytes, if known) sizes the duplicate check.
pub fn parse(
    table: &'static Table,
    input: impl Read,
    source_file: &str,
    size: u64,
) -> Result<Parsed, ParseError> {
    parse_rows(
        table,
        CsvRows::new(input),
        Typing::default(),
        source_file,
        size,
    )
}

/// [`parse`] for any row source, typed with `typing`.
pub fn parse_rows(
    table: &'static Table,
    source: impl RowSource,
    typing: Typing,
    source_file: &str,
    size: u64,
) -> Result<Parsed, ParseError> {
    let mut writer = PartitionedWriter::new(table);
    let mut quarantine = QuarantineWriter::new();
    let counts = parse_into(
        table,
        source,
        typing,
        source_file,
        size,
        (&mut writer, &mut quarantine),
        |_| {},
    )?;
    Ok(Parsed {
        table,
        parts: writer
            .finish()
            .map_err(|e| ParseError::Spool(e.to_string()))?,
        quarantine: quarantine
            .finish()
            .map_err(|e| ParseError::Spool(e.to_string()))?,
        rows_written: counts.rows_written,
        quarantined: counts.quarantined,
        duplicates_dropped: counts.duplicates_dropped,
        unknown_columns: counts.unknown_columns,
    })
}

/// What [`parse_into`] added for one file.
#[derive(Debug, Default)]
pub struct Counts {
    pub rows_written: u64,
    pub quarantined: u64,
    pub duplicates_dropped: u64,
    pub unknown_columns: Vec<String>,
}

/// Parses one file into writers that other files of a batch share (one object per
/// date for the whole batch); `kept` sees each row written, after it was.
pub fn parse_into(
    table: &'static Table,
    source: impl RowSource,
    typing: Typing,
    source_file: &str,
    size: u64,
    (writer, quarantine): (&mut PartitionedWriter, &mut QuarantineWriter),
    mut kept: impl FnMut(&table::Row<'_, '_>),
) -> Result<Counts, ParseError> {
    let (rows_before, quarantined_before) = (writer.rows(), quarantine.count());
    let mut ids = IdSet::with_capacity((size / BYTES_PER_ROW_ESTIMATE) as usize);
    let mut duplicates_dropped = 0;
    let mut unknown_columns = Vec::new();
    let on_header = |header: &Header| -> Result<(), String> {
        unknown_columns.clone_from(&header.unknown);
        Ok(())
    };
    let set_aside = |quarantine: &mut QuarantineWriter, line: u64, raw: String, reason: String| {
        quarantine
            .push(&QuarantineEntry {
                file: source_file.to_string(),
                line,
                reason,
                raw,
            })
            .map_err(|e| e.to_string())
    };
    let result = table::read_rows_with(table, source, typing, on_header, |row, record| match row {
        Err(rejected) => set_aside(quarantine, rejected.line, rejected.raw, rejected.reason),
        Ok(row) => match ids.check(row.id, row.fingerprint) {
            Seen::First => {
                writer
                    .push(row.date.utc_date(), |batch| batch.push(&row, source_file))
                    .map_err(|e| e.to_string())?;
                kept(&row);
                Ok(())
            }
            Seen::Identical => {
                duplicates_dropped += 1;
                Ok(())
            }
            Seen::Conflicting => set_aside(
                quarantine,
                row.line,
                record.raw(),
                format!(
                    "id {:?} appeared earlier in the file with different values; the first row was kept",
                    row.id
                ),
            ),
        },
    })
    .map_err(ParseError::Format)?;
    result.map_err(ParseError::Spool)?;
    Ok(Counts {
        rows_written: writer.rows() - rows_before,
        quarantined: quarantine.count() - quarantined_before,
        duplicates_dropped,
        unknown_columns,
    })
}
