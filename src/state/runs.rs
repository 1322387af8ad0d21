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
    /// `ok`, `failed` or `stopped`.
    pub outcome: String,
    pub files: Vec<FileRecord>,
}

/// How one file went in the last pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub day: NaiveDate,
    pub category: String,
    /// `ingested`, `unchanged`, `not_due`, `late`, `overdue`, `busy`, `failed`, …
    pub outcome: String,
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
