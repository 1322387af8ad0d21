//! Failed tries of a file: for a file that may still be uploading (a truncated zip),
//! so that it is retried on later runs and reported as failed once it has had enough
//! tries, without being downloaded again until it changes on the server; and for
//! every file, so that `status` can say why a day failed after later passes.

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::json::{FORMAT_VERSION, JsonStore, StateError};
use crate::model::Category;
use crate::sink::layout;

/// The tries of one version (size and time) of one source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub format_version: u32,
    pub remote_path: String,
    pub size: u64,
    pub modified: Option<String>,
    pub tries: u32,
    pub last_error: String,
    /// When the last try failed (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_try: Option<DateTime<Utc>>,
}

impl AttemptRecord {
    pub fn new(
        remote_path: &str,
        size: u64,
        modified: Option<String>,
        tries: u32,
        last_error: String,
        last_try: DateTime<Utc>,
    ) -> Self {
        AttemptRecord {
            format_version: FORMAT_VERSION,
            remote_path: remote_path.to_string(),
            size,
            modified,
            tries,
            last_error,
            last_try: Some(last_try),
        }
    }

    /// Whether this record counts the tries of `size` and `modified`, the version of
    /// the file on the server now.
    pub fn is_of(&self, size: u64, modified: &Option<String>) -> bool {
        self.size == size && self.modified == *modified
    }
}

/// Reads and writes attempt records in the destination, beside the ledger.
#[derive(Clone)]
pub struct Attempts {
    json: JsonStore,
}

fn key(category: Category, day: NaiveDate) -> Path {
    layout::attempts_object(category, day)
}

impl Attempts {
    pub fn new(json: JsonStore) -> Self {
        Attempts { json }
    }

    pub async fn get(
        &self,
        category: Category,
        day: NaiveDate,
    ) -> Result<Option<AttemptRecord>, StateError> {
        self.json.get(&key(category, day)).await
    }

    pub async fn put(
        &self,
        category: Category,
        day: NaiveDate,
        record: &AttemptRecord,
    ) -> Result<(), StateError> {
        self.json.put(&key(category, day), record).await
    }

    /// Forgets the tries once the file is in.
    pub async fn clear(&self, category: Category, day: NaiveDate) -> Result<(), StateError> {
        self.json.delete(&key(category, day)).await
    }
}
