//! Typed records and the small value types shared by parsers, sinks and the ledger.

mod values;

pub use values::{DECIMAL_PRECISION, DECIMAL_SCALE, Decimal, TimestampMicros};

use std::fmt;

/// A data category: what the ledger, the layout and retention are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Call detail records (`CDRs/YYYY-MM-DD.csv`).
    Cdr,
    /// Queue-call reports, both datasets (`QueueCalls/YYYY-MM-DD-queue-calls.zip`).
    Queue,
    /// Call recordings (`recordings/*.mp3`), filed by the call's date.
    Recordings,
}

impl Category {
    /// Every category, in the order a day is ingested.
    pub const ALL: [Category; 3] = [Category::Cdr, Category::Queue, Category::Recordings];

    /// The names, for messages listing what is allowed.
    pub fn names() -> String {
        Category::ALL.map(Category::as_str).join(", ")
    }

    /// The name used in object keys and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Cdr => "cdr",
            Category::Queue => "queue",
            Category::Recordings => "recordings",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
