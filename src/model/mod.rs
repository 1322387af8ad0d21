//! Typed records and the small value types shared by parsers, sinks and the ledger.

mod values;

pub use values::{DECIMAL_PRECISION, DECIMAL_SCALE, Decimal, TimestampMicros};

use std::fmt;

/// A data category: what the ledger, the layout and retention are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Call detail records (`CDRs/YYYY-MM-DD.csv`).
    Cdr,
}

impl Category {
    /// The name used in object keys and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Cdr => "cdr",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
