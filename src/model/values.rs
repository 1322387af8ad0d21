//! Scalar values with exact semantics: UTC timestamps in microseconds and fixed-point money.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampMicros(pub i64);

impl TimestampMicros {
    /// The UTC calendar day, which decides the output partition.
    pub fn utc_date(self) -> NaiveDate {
        DateTime::<Utc>::from_timestamp_micros(self.0)
            .map(|t| t.date_naive())
            .unwrap_or_default()
    }
}

/// Digits after the point kept for money (`rate`, `charge`).
pub const DECIMAL_SCALE: i8 = 6;
/// Total digits: 18 fits a Parquet INT64, which every BI tool reads.
pub const DECIMAL_PRECISION: u8 = 18;

/// A fixed-point number with [`DECIMAL_SCALE`] digits after the point, never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(pub i128);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10i128.pow(DECIMAL_SCALE as u32);
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / scale as u128,
            abs % scale as u128,
            width = DECIMAL_SCALE as usize
        )
    }
}
