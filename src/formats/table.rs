//! Header-driven tables: each provider file is described once as a list of typed
//! columns, and one reader serves them all, whatever its rows come from.
//!
//! A column is found in a header by its name or by any of its other header texts (an
//! export's header is in its user's language), ignoring case, `ё`/`е` and runs of
//! blanks. Two kinds of column are not in the file but derived from each row: a
//! [`Kind::Key`] made of other columns (for exports without an id) and a
//! [`Kind::Extra`] keeping the values of the columns the table does not know.
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
use chrono::DateTime;
use chrono_tz::Tz;
use csv::ByteRecord;
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::csv_rows::CsvRows;
use super::fields::{
    parse_decimal, parse_duration, parse_local_timestamp, parse_money, parse_seconds,
    parse_timestamp,
};
use super::rows::{Record, RowSource};
use crate::model::TimestampMicros;

/// How a column's text is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Kept as text: ids and phone numbers keep their `+` and leading zeros.
    Text,
    /// A phone number, kept as text; in a [`Kind::Key`] only its digits count when it
    /// is written with digits, `+`, blanks, `-`, `(`, `)` and `.` alone, since a
    /// spreadsheet that stores it as a number drops its `+`.
    Phone,
    /// UTC timestamp in microseconds.
    Timestamp,
    /// A whole non-negative number (seconds, counts).
    Whole,
    /// Exact fixed-point money.
    Decimal,
    /// A one-letter code, written as the letter plus a readable `<name>_name` column.
    Code(&'static [(&'static str, &'static str)]),
    /// A time as people's exports write it, in [`Typing::zone`] unless it says its
    /// zone ([`parse_local_timestamp`]); UTC microseconds like [`Kind::Timestamp`].
    LocalTimestamp,
    /// Seconds, `MM:SS` or `HH:MM:SS`, as whole seconds.
    Duration,
    /// Money as a spreadsheet shows it (`0,12 ₽`), exact like [`Kind::Decimal`].
    Money,
    /// A label in any of its texts (`Вызов принят`, `Answered`), written as its stable
    /// code (`answered`; NULL for a text not in the list) plus the text as sent in a
    /// `<name>_text` column. Pairs are (text, code), compared as header texts are.
    Label(&'static [(&'static str, &'static str)]),
    /// Not in the file: the row's key, made of these columns' values (the code of a
    /// label, a time in UTC), `|`-separated.
    Key(&'static [usize]),
    /// Not in the file: the columns the table does not know, as a JSON object of header
    /// text → value (NULL when they are all empty or there are none).
    Extra,
}

impl Kind {
    /// Made from the row, not read from a column of the file.
    fn is_derived(self) -> bool {
        matches!(self, Kind::Key(_) | Kind::Extra)
    }
}

/// One column of a provider file.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// The header must have it (its values may still be empty, except the keys').
    pub required: bool,
    /// Other texts a header may call it by, e.g. in each language of an interface.
    pub headers: &'static [&'static str],
}

/// A column known by its name alone (no other header texts).
pub const fn col(name: &'static str, kind: Kind, required: bool) -> Column {
    Column {
        name,
        kind,
        required,
        headers: &[],
    }
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
        let known = |c: &Column| !c.kind.is_derived();
        if let Some(found) = self
            .columns
            .iter()
            .position(|c| known(c) && c.name.eq_ignore_ascii_case(name))
        {
            return Some(found);
        }
        if self.columns.iter().all(|c| c.headers.is_empty()) {
            return None;
        }
        let wanted = label(name);
        self.columns
            .iter()
            .position(|c| known(c) && c.headers.iter().any(|h| label(h) == wanted))
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

/// A header text or label as compared: lower case, `ё` as `е`, blanks (a no-break
/// space too) as one space.
pub fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars().flat_map(char::to_lowercase) {
            out.push(if c == 'ё' { 'е' } else { c });
        }
    }
    out
}

/// How a table's values are typed beyond what the file says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Typing {
    /// The zone of [`Kind::LocalTimestamp`] times written without one.
    pub zone: Tz,
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
    #[error("cannot read the workbook: {0}")]
    Workbook(String),
    #[error(
        "no sheet ({sheets}) has a header row with the required columns in its first {rows} rows; the first row tried, {first}"
    )]
    NoHeaderRow {
        sheets: String,
        rows: u32,
        first: String,
    },
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
    /// Where each of `unknown` is.
    unknown_positions: Vec<usize>,
}

impl Header {
    /// Matches a header row's `names`, as sent, to the table's columns.
    pub fn parse(table: &'static Table, names: &[String]) -> Result<Header, FileError> {
        let mut positions = vec![None; table.columns.len()];
        let mut unknown = Vec::new();
        let mut unknown_positions = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let name = clean(name);
            match table.column_named(name) {
                Some(column) if positions[column].is_some() => {
                    return Err(FileError::DuplicateColumn(name.to_string()));
                }
                Some(column) => positions[column] = Some(index),
                None => {
                    unknown.push(name.to_string());
                    unknown_positions.push(index);
                }
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
            unknown_positions,
        })
    }

    /// Whether `names` is a header row of `table`: a sheet's rows above it (a title,
    /// blank rows) are not.
    pub fn recognises(table: &'static Table, names: &[String]) -> bool {
        Header::parse(table, names).is_ok()
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
    typing: Typing,
    positions: &[Option<usize>],
    record: &'r impl Record,
    values: &mut Vec<Value<'r>>,
) -> Result<(), (usize, String)> {
    values.clear();
    for (index, (column, position)) in table.columns.iter().zip(positions).enumerate() {
        let text = position.and_then(|p| record.get(p)).unwrap_or_default();
        let value = if column.kind.is_derived() {
            // Filled in by `derive` once the other columns are typed.
            Value::Null
        } else if text.is_empty() {
            // Only the id and the call time cannot be missing: without them a row
            // cannot be deduplicated or filed. Any other empty field is NULL (a
            // withheld caller number, say).
            if table.is_key(index) {
                return Err((index, format!("{} is empty", column.name)));
            }
            Value::Null
        } else {
            let typed = match column.kind {
                Kind::Text | Kind::Phone => Ok(Value::Text(text)),
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
                Kind::LocalTimestamp => {
                    parse_local_timestamp(text, typing.zone).map(|t| Value::Micros(t.0))
                }
                Kind::Duration => parse_duration(text).map(Value::Whole),
                Kind::Money => parse_money(text).map(|d| Value::Decimal(d.0)),
                Kind::Label(pairs) => {
                    let text = text.trim();
                    Ok(Value::Code(text, label_code(pairs, text)))
                }
                Kind::Key(_) | Kind::Extra => unreachable!("derived columns are not read"),
            };
            typed.map_err(|e| (index, format!("{}: {e}", column.name)))?
        };
        values.push(value);
    }
    Ok(())
}

/// The code of `text` among a [`Kind::Label`]'s pairs.
fn label_code(pairs: &'static [(&'static str, &'static str)], text: &str) -> Option<&'static str> {
    // Most texts are spelled as listed: only the others are normalised.
    if let Some((_, code)) = pairs.iter().find(|(t, _)| t.eq_ignore_ascii_case(text)) {
        return Some(code);
    }
    let wanted = label(text);
    pairs
        .iter()
        .find(|(t, _)| label(t) == wanted)
        .map(|(_, code)| *code)
}

/// The texts of a row's derived columns, kept between rows so that their buffers are
/// reused.
#[derive(Default)]
struct Derived {
    key: String,
    extra: String,
}

/// Fills the derived columns of a typed row: its [`Kind::Key`] from the other values,
/// its [`Kind::Extra`] from the fields at `unknown` (positions, header texts).
fn derive<'r>(
    table: &Table,
    unknown: Option<(&[usize], &[String])>,
    record: &'r impl Record,
    values: &mut [Value<'r>],
    derived: &'r mut Derived,
) {
    let Derived { key, extra } = derived;
    let mut key_column = None;
    let mut extra_column = None;
    for (index, column) in table.columns.iter().enumerate() {
        match column.kind {
            Kind::Key(parts) => {
                key.clear();
                for (n, &part) in parts.iter().enumerate() {
                    if n > 0 {
                        key.push('|');
                    }
                    push_key_part(key, values[part], table.columns[part].kind);
                }
                key_column = Some(index);
            }
            Kind::Extra => {
                extra.clear();
                let mut fields = serde_json::Map::new();
                for (&position, name) in unknown.into_iter().flat_map(|(p, n)| p.iter().zip(n)) {
                    if let Some(text) = record.get(position).filter(|t| !t.is_empty()) {
                        fields.insert(name.clone(), text.into());
                    }
                }
                if !fields.is_empty() {
                    extra.push_str(&serde_json::Value::Object(fields).to_string());
                    extra_column = Some(index);
                }
            }
            _ => {}
        }
    }
    let key: &'r String = key;
    let extra: &'r String = extra;
    if let Some(index) = key_column {
        values[index] = Value::Text(key);
    }
    if let Some(index) = extra_column {
        values[index] = Value::Text(extra);
    }
}

/// One value of a [`Kind::Key`]: a label's code (its text when it has none), a time as
/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, a phone number's digits, text trimmed; `\` and `|`
/// escaped with `\`.
fn push_key_part(key: &mut String, value: Value<'_>, kind: Kind) {
    use std::fmt::Write as _;
    let text = match value {
        Value::Null => return,
        Value::Text(text) | Value::Code(_, Some(text)) | Value::Code(text, None) => text.trim(),
        Value::Micros(t) => {
            if let Some(time) = DateTime::from_timestamp_micros(t) {
                let _ = write!(key, "{}", time.format("%Y-%m-%dT%H:%M:%S%.fZ"));
            }
            return;
        }
        Value::Whole(n) => {
            let _ = write!(key, "{n}");
            return;
        }
        Value::Decimal(d) => {
            let _ = write!(key, "{}", crate::model::Decimal(d));
            return;
        }
    };
    let dialled = |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.');
    if kind == Kind::Phone && text.chars().all(dialled) {
        key.extend(text.chars().filter(char::is_ascii_digit));
        return;
    }
    for c in text.chars() {
        if matches!(c, '|' | '\\') {
            key.push('\\');
        }
        key.push(c);
    }
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
    source: S,
    on_header: impl FnOnce(&Header) -> Result<(), E>,
    on_row: impl FnMut(Result<Row<'_, '_>, Rejected>, &S::Record) -> Result<(), E>,
) -> Result<Result<(), E>, FileError> {
    read_rows_with(table, source, Typing::default(), on_header, on_row)
}

/// [`read_rows`] with `typing` for what the file leaves open (the zone of its times).
pub fn read_rows_with<S: RowSource, E>(
    table: &'static Table,
    mut source: S,
    typing: Typing,
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
    let mut derived = Derived::default();
    let has_derived = table.columns.iter().any(|c| c.kind.is_derived());
    while let Some(record) = source.next_record()? {
        // `values` borrows from `record`; it is emptied before the next one is read.
        let mut typed = recycle(std::mem::take(&mut values));
        let row = type_bound(
            table,
            &mut binding,
            typing,
            record,
            &mut typed,
            has_derived.then_some(&mut derived),
        )
        .map_err(|refusal| Rejected {
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
    type_bound(table, &mut binding, Typing::default(), record, values, None)
}

/// Binds `record` to the table's columns and types it into `values`.
fn type_bound<'v, 'r>(
    table: &'static Table,
    binding: &mut Binding,
    typing: Typing,
    record: &'r impl Record,
    values: &'v mut Vec<Value<'r>>,
    derived: Option<&'r mut Derived>,
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
    type_row(table, typing, positions, record, values).map_err(|(column, reason)| Refusal {
        column: Some(column),
        reason,
    })?;
    let id_position = positions[table.id_column];
    if let Some(derived) = derived {
        let unknown = match &*binding {
            Binding::Header(h) => Some((&h.unknown_positions[..], &h.unknown[..])),
            Binding::Named(_) => None,
        };
        derive(table, unknown, record, values, derived);
    }
    let id = match values[table.id_column] {
        Value::Text(id) => id.trim(),
        // A numeric id is identified by its text as sent.
        Value::Whole(_) => id_position
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
