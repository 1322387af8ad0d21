//! The row-source seam under [`super::table`]: a source splits its input into records
//! and says where each one is; naming, typing, key checks, fingerprints and the
//! reasons a row is set aside are the table's, the same for every source.
//!
//! A source is either positional (a header row, then records whose fields follow it:
//! CSV, a sheet) or named (each record names its own fields: JSON objects). Records
//! are lent, one at a time, from a buffer the source reuses, so a fast source (CSV)
//! allocates nothing per row.

use super::table::{FileError, Unreadable};

/// Where a table's records come from: [`super::csv_rows::CsvRows`],
/// [`super::json_rows::JsonRows`], ….
pub trait RowSource {
    type Record: Record;

    /// The column names the records' fields follow, by position (a CSV file's first
    /// row), or `None` for a source whose records name their own fields. Asked once,
    /// before the first record.
    fn header(&mut self) -> Result<Option<Vec<String>>, FileError>;

    /// The next record, or `None` at the end. An error fails the whole input.
    fn next_record(&mut self) -> Result<Option<&Self::Record>, FileError>;
}

/// One record as its source read it.
pub trait Record {
    /// Where it is, for the quarantine: the line it starts on, counting from 1.
    fn line(&self) -> u64;

    /// Why the source could not split it into fields at all, if it could not.
    fn unreadable(&self) -> Option<Unreadable>;

    /// How many fields it has, known columns or not.
    fn width(&self) -> usize;

    /// The text of field `index`; an empty text is a missing value.
    fn get(&self, index: usize) -> Option<&str>;

    /// The name of field `index`, for a record that names its fields; `None` for a
    /// positional one (its names are the header's).
    fn name(&self, index: usize) -> Option<&str>;

    /// The record as the source wrote it, for the quarantine.
    fn raw(&self) -> String;

    /// [`super::table::fingerprint`] over every field, known column or not.
    fn fingerprint(&self) -> u64;
}
