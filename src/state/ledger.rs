//! The ledger: one small JSON object per ingested source file under `_state/ledger/`.
//!
//! An entry is written only after every object it lists is complete, and each put is
//! atomic, so a crash leaves either the old entry or the new one, never half of one.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::json::{JsonStore, StateError};
use crate::model::Category;
use crate::sink::layout;
pub use crate::sink::recording_index::RecordingFile;

/// What was ingested from one source file. No wall-clock time: reruns give equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub format_version: u32,
    pub category: String,
    pub remote_path: String,
    pub size: u64,
    /// The server's modification time, RFC 3339 UTC, when it reports one.
    pub modified: Option<String>,
    pub sha256: String,
    pub rows_written: u64,
    pub rows_rejected: u64,
    /// Rows dropped because the same row came earlier in the file.
    pub duplicates_dropped: u64,
    /// Data objects written, relative to the destination, as they were when the file
    /// was committed (a later file of a partition's own day can take rows over).
    pub outputs: Vec<String>,
    /// Where the file's whole rows for other days' partitions are kept
    /// (`sink::partition`), so that those partitions can be recomputed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spill: Vec<String>,
    /// The quarantine objects, one per dataset that had rows set aside.
    pub quarantine: Vec<String>,
    /// Set while a new version of the file is being written: every object (a data
    /// object per partition, quarantine) that attempt may write. An entry with it is
    /// not done, whatever its other fields say (they describe the last version that
    /// was done, if any; `sha256` is empty when none was); the next commit of the file
    /// starts by cleaning up after the attempt, even if the file changed meanwhile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

/// The recordings copied for one call date.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordingsEntry {
    pub format_version: u32,
    /// Sorted by name.
    pub files: Vec<RecordingFile>,
}

/// Reads and writes ledger entries in the destination.
#[derive(Clone)]
pub struct Ledger {
    json: JsonStore,
}

impl Ledger {
    pub fn new(json: JsonStore) -> Self {
        Ledger { json }
    }

    pub async fn get(
        &self,
        category: Category,
        day: NaiveDate,
    ) -> Result<Option<LedgerEntry>, StateError> {
        self.json.get(&layout::ledger_object(category, day)).await
    }

    pub async fn put(
        &self,
        day: NaiveDate,
        category: Category,
        entry: &LedgerEntry,
    ) -> Result<(), StateError> {
        self.json
            .put(&layout::ledger_object(category, day), entry)
            .await
    }

    /// The files of a listed feed (`category`) copied for one call date.
    pub async fn copies(
        &self,
        category: Category,
        day: NaiveDate,
    ) -> Result<Option<RecordingsEntry>, StateError> {
        self.json.get(&layout::ledger_object(category, day)).await
    }

    pub async fn put_copies(
        &self,
        category: Category,
        day: NaiveDate,
        entry: &RecordingsEntry,
    ) -> Result<(), StateError> {
        self.json
            .put(&layout::ledger_object(category, day), entry)
            .await
    }
}
