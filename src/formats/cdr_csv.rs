//! The provider's daily CDR file (`CDRs/YYYY-MM-DD.csv`), read by its header row.
//!
//! Columns may come in any order; unknown extra columns are ignored (the caller warns
//! once); a missing required column fails the whole file. Each data row becomes a
//! [`CdrRecord`] or a [`Rejected`] row with the reason, so one bad line never stops
//! the rest of the file.

use std::io::{BufReader, Read};

use csv::{ByteRecord, ReaderBuilder};
use thiserror::Error;
use xxhash_rust::xxh3::Xxh3;

use super::crlf::CrlfToLf;
use super::fields::{parse_decimal, parse_seconds, parse_timestamp};
use crate::model::CdrRecord;

/// The provider's columns, in the order we write them.
pub const COLUMNS: [&str; 14] = [
    "id",
    "calldate",
    "src_id",
    "src",
    "clid",
    "dst",
    "dst_name",
    "duration",
    "billsec",
    "disposition",
    "destination",
    "rate",
    "charge",
    "t_cause",
];

/// Bytes read from the input at a time.
const INPUT_BUFFER: usize = 256 * 1024;

/// Columns without which a file is refused; the others become NULL when absent.
pub const REQUIRED: [&str; 7] = [
    "id",
    "calldate",
    "src",
    "dst",
    "duration",
    "billsec",
    "disposition",
];

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

/// Maps each known column to its position in this file's rows.
#[derive(Debug, Clone)]
pub struct Header {
    positions: [Option<usize>; COLUMNS.len()],
    width: usize,
    /// Columns present in the file that we do not know.
    pub unknown: Vec<String>,
    /// Optional columns absent from the file (written as NULL).
    pub absent: Vec<&'static str>,
}

impl Header {
    pub fn parse(record: &ByteRecord) -> Result<Header, FileError> {
        let mut positions = [None; COLUMNS.len()];
        let mut unknown = Vec::new();
        for (index, raw) in record.iter().enumerate() {
            let name = String::from_utf8_lossy(raw);
            let name = name.trim_start_matches('\u{feff}').trim();
            match COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                Some(column) if positions[column].is_some() => {
                    return Err(FileError::DuplicateColumn(name.to_string()));
                }
                Some(column) => positions[column] = Some(index),
                None => unknown.push(name.to_string()),
            }
        }
        let missing: Vec<&'static str> = REQUIRED
            .iter()
            .copied()
            .filter(|name| positions[column_index(name)].is_none())
            .collect();
        if !missing.is_empty() {
            let found = record
                .iter()
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(",");
            return Err(FileError::MissingColumns { missing, found });
        }
        let absent = COLUMNS
            .iter()
            .zip(positions)
            .filter(|(_, p)| p.is_none())
            .map(|(name, _)| *name)
            .collect();
        Ok(Header {
            positions,
            width: record.len(),
            unknown,
            absent,
        })
    }

    fn field<'r>(&self, record: &'r ByteRecord, column: usize) -> Result<Option<&'r str>, String> {
        let Some(position) = self.positions[column] else {
            return Ok(None);
        };
        let bytes = record.get(position).unwrap_or_default();
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("{} is not valid UTF-8", COLUMNS[column]))?;
        Ok((!text.is_empty()).then_some(text))
    }

    fn typed<'r, T>(
        &self,
        record: &'r ByteRecord,
        column: usize,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        self.field(record, column)?
            .map(parse)
            .transpose()
            .map_err(|e| format!("{}: {e}", COLUMNS[column]))
    }

    /// Types one row, or says why it cannot be.
    pub fn record<'r>(&self, record: &'r ByteRecord, line: u64) -> Result<CdrRecord<'r>, String> {
        if record.len() != self.width {
            return Err(format!(
                "has {} fields, the header has {}",
                record.len(),
                self.width
            ));
        }
        let text = |column: usize| self.field(record, column);
        let id = text(0)?
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or("id is empty")?;
        let calldate = self
            .typed(record, 1, parse_timestamp)?
            .ok_or("calldate is empty")?;
        Ok(CdrRecord {
            id,
            calldate,
            src_id: text(2)?,
            src: text(3)?,
            clid: text(4)?,
            dst: text(5)?,
            dst_name: text(6)?,
            duration: self.typed(record, 7, parse_seconds)?,
            billsec: self.typed(record, 8, parse_seconds)?,
            disposition: text(9)?,
            destination: text(10)?,
            rate: self.typed(record, 11, parse_decimal)?,
            charge: self.typed(record, 12, parse_decimal)?,
            t_cause: text(13)?,
            line,
        })
    }

    /// A hash of the known columns' bytes: equal rows give equal fingerprints, so an
    /// identical repeat can be told from a conflicting one without keeping the row.
    pub fn fingerprint(&self, record: &ByteRecord) -> u64 {
        let mut hasher = Xxh3::new();
        for position in self.positions {
            match position.and_then(|p| record.get(p)) {
                Some(bytes) => {
                    hasher.update(&(bytes.len() as u64).to_le_bytes());
                    hasher.update(bytes);
                }
                None => hasher.update(&u64::MAX.to_le_bytes()),
            }
        }
        hasher.digest()
    }
}

fn column_index(name: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .expect("known column")
}

/// Reads CDR rows from `input`, calling `on_row` with each typed row (and its
/// fingerprint) or each rejected one, and the raw record for quarantining it later.
pub fn read<R: Read, E>(
    input: R,
    mut on_header: impl FnMut(&Header) -> Result<(), E>,
    mut on_row: impl FnMut(Result<(CdrRecord<'_>, u64), Rejected>, &ByteRecord) -> Result<(), E>,
) -> Result<Result<(), E>, FileError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(CrlfToLf::new(BufReader::with_capacity(INPUT_BUFFER, input)));
    let mut record = ByteRecord::new();
    let line_of = |record: &ByteRecord| record.position().map_or(0, |p| p.line());
    let csv_error = |e: csv::Error| FileError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        source: e,
    };
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(FileError::Empty);
    }
    let header = Header::parse(&record)?;
    if let Err(e) = on_header(&header) {
        return Ok(Err(e));
    }
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = line_of(&record);
        if record.len() == 1 && record.get(0) == Some(b"") {
            continue; // a blank line, e.g. at the end of the file
        }
        let row = match header.record(&record, line) {
            Ok(cdr) => Ok((cdr, header.fingerprint(&record))),
            Err(reason) => Err(Rejected {
                line,
                raw: reencode(&record),
                reason,
            }),
        };
        if let Err(e) = on_row(row, &record) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
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

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = (Vec<(String, u64, u64)>, Vec<Rejected>);

    fn parse(text: &str) -> Result<Rows, FileError> {
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        read::<_, ()>(
            text.as_bytes(),
            |_| Ok(()),
            |row, _| {
                match row {
                    Ok((r, fp)) => ok.push((
                        format!(
                            "{}|{:?}|{:?}|{:?}|{:?}",
                            r.id, r.clid, r.dst_name, r.charge, r.src
                        ),
                        r.line,
                        fp,
                    )),
                    Err(r) => rejected.push(r),
                }
                Ok(())
            },
        )?
        .unwrap();
        Ok((ok, rejected))
    }

    const HEADER: &str = "id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause";

    #[test]
    fn bom_crlf_quotes_and_non_ascii() {
        let text = format!(
            "\u{feff}{HEADER}\r\n1.1,2024-03-01 10:00:00,,+4822,\"\"\"Zoë Ł\"\" <+4822>\",0221,\"Support, 2nd line\",10,5,ANSWERED,,,,Normal\r\n"
        );
        let (ok, rejected) = parse(&text).unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(
            ok[0].0,
            "1.1|Some(\"\\\"Zoë Ł\\\" <+4822>\")|Some(\"Support, 2nd line\")|None|Some(\"+4822\")"
        );
        assert_eq!(ok[0].1, 2);
    }

    #[test]
    fn any_column_order_and_unknown_columns() {
        let text = "billsec,x_custom,dst,duration,calldate,disposition,src,id\n5,zz,100,10,2024-03-01 10:00:00,ANSWERED,0221,7\n";
        let mut unknown = Vec::new();
        let mut ids = Vec::new();
        read::<_, ()>(
            text.as_bytes(),
            |h| {
                unknown = h.unknown.clone();
                Ok(())
            },
            |row, _| {
                ids.push(row.unwrap().0.id.to_string());
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(unknown, ["x_custom"]);
        assert_eq!(ids, ["7"]);
    }

    #[test]
    fn missing_required_column_fails_the_file() {
        let err = parse("id,calldate,src\n1,2024-03-01 10:00:00,1\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("dst, duration, billsec, disposition"),
            "{err}"
        );
    }

    #[test]
    fn bad_rows_are_rejected_with_line_and_reason() {
        let text = format!(
            "{HEADER}\n1,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,,,\n2,2024-03-01\n3,2024-13-45 25:61:00,,1,,2,,10,5,ANSWERED,,,,\n4,2024-03-01 10:00:00,,1,,2,,12s,5,ANSWERED,,,,\n5,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,0.1,x,\n"
        );
        let (ok, rejected) = parse(&text).unwrap();
        assert_eq!(ok.len(), 1);
        let summary: Vec<(u64, &str)> = rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(summary[0], (3, "has 2 fields, the header has 14"));
        assert_eq!(summary[1].0, 4);
        assert!(summary[1].1.starts_with("calldate: "), "{}", summary[1].1);
        assert!(
            summary[2].1.starts_with("duration: \"12s\""),
            "{}",
            summary[2].1
        );
        assert!(
            summary[3].1.starts_with("charge: \"x\""),
            "{}",
            summary[3].1
        );
        assert_eq!(rejected[0].raw, "2,2024-03-01");
    }

    #[test]
    fn empty_values_are_null_and_identical_rows_share_a_fingerprint() {
        let row = "1,2024-03-01 10:00:00,,1,,2,,10,5,ANSWERED,,,,";
        let (ok, _) = parse(&format!(
            "{HEADER}\n{row}\n{row}\n1,2024-03-01 10:00:00,,1,,2,,10,6,ANSWERED,,,,\n"
        ))
        .unwrap();
        assert!(
            ok[0].0.ends_with("|None|None|None|Some(\"1\")"),
            "{}",
            ok[0].0
        );
        assert_eq!(ok[0].2, ok[1].2);
        assert_ne!(ok[0].2, ok[2].2);
    }
}
