//! Parsers for the provider's files: pure functions from bytes to typed records or
//! reasons a row was set aside. No I/O beyond the reader they are given.

pub mod call_history;
pub mod cdr_csv;
mod crlf;
pub mod csv_rows;
pub mod fields;
pub mod json_rows;
pub mod push_record;
pub mod queue_csv;
pub mod queue_zip;
pub mod recording_name;
pub mod rows;
pub mod sessions_json;
pub mod sheet_rows;
pub mod table;
