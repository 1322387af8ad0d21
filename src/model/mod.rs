//! Typed records and the small value types shared by parsers, sinks and the ledger.

mod values;

pub use values::{DECIMAL_PRECISION, DECIMAL_SCALE, Decimal, TimestampMicros};

use std::fmt;

/// A feed's name, which the ledger, leases, retention, reports and configuration are
/// keyed by (`cdr`, `queue`, `recordings`, …). Each feed module declares its own;
/// `feeds::FEEDS` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(&'static str);

impl Category {
    pub const fn new(name: &'static str) -> Self {
        Category(name)
    }

    /// The name used in object keys, in the configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
