//! The record of the last pass, for `cdr-ingest status`: when it ran, how it ended,
//! and how each file went. Unlike the data, it carries wall-clock times.

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::json::{JsonStore, StateError};
use crate::sink::layout;

/// The last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format_version: u32,
    /// `run`, `daemon` or `backfill`.
    pub mode: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: PassOutcome,
    pub files: Vec<FileRecord>,
}

/// How a pass ended (stored as `ok`, `failed`, `stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassOutcome {
    /// Everything asked for is in, up to date, or not due or late yet.
    Ok,
    /// Something failed or is overdue.
    Failed,
    /// A shutdown was requested before the end.
    Stopped,
}

/// Where one unit of work (a feed's day) stands, as a pass left it and `status` shows
/// it (stored as `ingested`, `not_due`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    Ingested,
    /// Already in; nothing transferred.
    Unchanged,
    NotDue,
    Late,
    Overdue,
    Failed,
    /// Another worker held its lease.
    Busy,
    /// Older than the retention limit, or removed by retention.
    Expired,
    /// The pass was stopped before it.
    Stopped,
    /// The source could not be opened, so it was not tried.
    NotTried,
}

impl UnitState {
    /// Whether monitoring should hear about it.
    pub fn is_bad(self) -> bool {
        matches!(self, UnitState::Overdue | UnitState::Failed)
    }
}

/// The stored names, for tables and logs.
macro_rules! stored_names {
    ($($type:ty { $($variant:ident => $name:literal),* $(,)? })*) => {$(
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),*
                }
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )*};
}

stored_names! {
    PassOutcome { Ok => "ok", Failed => "failed", Stopped => "stopped" }
    UnitState {
        Ingested => "ingested",
        Unchanged => "unchanged",
        NotDue => "not_due",
        Late => "late",
        Overdue => "overdue",
        Failed => "failed",
        Busy => "busy",
        Expired => "expired",
        Stopped => "stopped",
        NotTried => "not_tried",
    }
}

/// How one file went in the last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub day: NaiveDate,
    pub category: String,
    pub outcome: UnitState,
    pub detail: Option<String>,
}

fn key() -> Path {
    layout::last_run()
}

pub async fn get(json: &JsonStore) -> Result<Option<RunRecord>, StateError> {
    json.get(&key()).await
}

pub async fn put(json: &JsonStore, record: &RunRecord) -> Result<(), StateError> {
    json.put(&key(), record).await
}
