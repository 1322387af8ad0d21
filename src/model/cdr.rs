//! One call detail record, typed, borrowing its text from the parsed CSV row.

use super::{Decimal, TimestampMicros};

/// A validated CDR row. Text fields borrow from the CSV record; `None` is an empty field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrRecord<'a> {
    pub id: &'a str,
    pub calldate: TimestampMicros,
    pub src_id: Option<&'a str>,
    pub src: Option<&'a str>,
    pub clid: Option<&'a str>,
    pub dst: Option<&'a str>,
    pub dst_name: Option<&'a str>,
    pub duration: Option<i64>,
    pub billsec: Option<i64>,
    pub disposition: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub rate: Option<Decimal>,
    pub charge: Option<Decimal>,
    pub t_cause: Option<&'a str>,
    /// 1-based line of the record in its source file.
    pub line: u64,
}
