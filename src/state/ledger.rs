//! The ledger: one small JSON object per ingested source file under `_state/ledger/`.
//!
//! An entry is written only after every object it lists is complete, and each put is
//! atomic, so a crash leaves either the old entry or the new one, never half of one.
//! Entries carry a format version; one written by a newer release is refused rather
//! than misread.

use std::sync::Arc;

use chrono::NaiveDate;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::Category;
use crate::sink::layout;
use crate::sink::upload::put_bytes;

/// The entry format this release reads and writes.
pub const FORMAT_VERSION: u32 = 1;

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
    /// Data objects written, relative to the destination.
    pub outputs: Vec<String>,
    /// The quarantine objects, one per dataset that had rows set aside.
    pub quarantine: Vec<String>,
}

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error("cannot read the ledger entry {key}: {source}")]
    Read {
        key: String,
        source: object_store::Error,
    },
    #[error("cannot write the ledger entry {key}: {source}")]
    Write {
        key: String,
        source: object_store::Error,
    },
    #[error("the ledger entry {key} is damaged ({detail}); delete it to ingest that file again")]
    Damaged { key: String, detail: String },
    #[error(
        "the ledger entry {key} has format {found}, newer than this release understands ({FORMAT_VERSION}); upgrade cdr-ingest"
    )]
    TooNew { key: String, found: u32 },
}

/// Reads and writes ledger entries in the destination.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn ObjectStore>,
}

impl Ledger {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Ledger { store }
    }

    pub async fn get(
        &self,
        category: Category,
        day: NaiveDate,
    ) -> Result<Option<LedgerEntry>, LedgerError> {
        let key = layout::ledger_object(category, day);
        let bytes = match self.store.get(&key).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(LedgerError::Read {
                    key: key.to_string(),
                    source,
                });
            }
        };
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let damaged = |e: serde_json::Error| LedgerError::Damaged {
            key: key.to_string(),
            detail: e.to_string(),
        };
        let version: Version = serde_json::from_slice(&bytes).map_err(damaged)?;
        if version.format_version > FORMAT_VERSION {
            return Err(LedgerError::TooNew {
                key: key.to_string(),
                found: version.format_version,
            });
        }
        serde_json::from_slice(&bytes).map(Some).map_err(damaged)
    }

    pub async fn put(
        &self,
        day: NaiveDate,
        category: Category,
        entry: &LedgerEntry,
    ) -> Result<(), LedgerError> {
        let key = layout::ledger_object(category, day);
        let mut bytes = serde_json::to_vec_pretty(entry).expect("a ledger entry serializes");
        bytes.push(b'\n');
        put_bytes(&self.store, &key, bytes)
            .await
            .map_err(|source| LedgerError::Write {
                key: key.to_string(),
                source,
            })
    }
}
