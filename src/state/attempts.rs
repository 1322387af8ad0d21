//! Failed tries of a file that may still be uploading (a truncated zip), so that it
//! is retried on later runs and reported as failed once it has had enough tries,
//! without being downloaded again until it changes on the server.

use std::sync::Arc;

use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::ledger::{FORMAT_VERSION, LedgerError};
use crate::model::Category;
use crate::sink::upload::put_bytes;

/// The tries of one version (size and time) of one source file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub format_version: u32,
    pub remote_path: String,
    pub size: u64,
    pub modified: Option<String>,
    pub tries: u32,
    pub last_error: String,
}

/// Reads and writes attempt records in the destination, beside the ledger.
#[derive(Clone)]
pub struct Attempts {
    store: Arc<dyn ObjectStore>,
}

fn key(category: Category, day: NaiveDate) -> Path {
    Path::from(format!("_state/attempts/{category}/{day}.json"))
}

impl Attempts {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Attempts { store }
    }

    pub async fn get(
        &self,
        category: Category,
        day: NaiveDate,
    ) -> Result<Option<AttemptRecord>, LedgerError> {
        let key = key(category, day);
        let bytes = match self.store.get(&key).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| LedgerError::Damaged {
                        key: key.to_string(),
                        detail: e.to_string(),
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(LedgerError::Read {
                key: key.to_string(),
                source,
            }),
        }
    }

    pub async fn put(
        &self,
        category: Category,
        day: NaiveDate,
        record: &AttemptRecord,
    ) -> Result<(), LedgerError> {
        let key = key(category, day);
        let bytes = serde_json::to_vec_pretty(record).expect("an attempt record serializes");
        put_bytes(&self.store, &key, bytes)
            .await
            .map_err(|source| LedgerError::Write {
                key: key.to_string(),
                source,
            })
    }

    /// Forgets the tries once the file is in.
    pub async fn clear(&self, category: Category, day: NaiveDate) -> Result<(), LedgerError> {
        let key = key(category, day);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(LedgerError::Write {
                key: key.to_string(),
                source,
            }),
        }
    }
}

/// A new record for `tries` failed tries, in the current format.
pub fn record(
    remote_path: &str,
    size: u64,
    modified: Option<String>,
    tries: u32,
    last_error: String,
) -> AttemptRecord {
    AttemptRecord {
        format_version: FORMAT_VERSION,
        remote_path: remote_path.to_string(),
        size,
        modified,
        tries,
        last_error,
    }
}
