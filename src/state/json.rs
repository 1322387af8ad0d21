//! Small versioned JSON objects in the destination: read, written atomically (one put),
//! deleted. Every state object carries `format_version`; one written by a newer
//! release is refused rather than misread.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::sink::retry;
use crate::sink::upload::put_bytes;

/// The state format this release reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot read the state object {key}: {source}")]
    Read {
        key: String,
        source: object_store::Error,
    },
    #[error("cannot write the state object {key}: {source}")]
    Write {
        key: String,
        source: object_store::Error,
    },
    #[error("the state object {key} is damaged ({detail}); delete it to ingest that file again")]
    Damaged { key: String, detail: String },
    #[error(
        "the state object {key} has format {found}, newer than this release understands ({FORMAT_VERSION}); upgrade cdr-ingest"
    )]
    TooNew { key: String, found: u32 },
    #[error(
        "this worker lost its lease {key} (another worker took it over, or it could not be renewed in time) and stopped before committing; the work is done by the lease's holder or tried again on the next run"
    )]
    LeaseLost { key: String },
}

/// Reads and writes state objects in the destination.
#[derive(Clone)]
pub struct JsonStore {
    store: Arc<dyn ObjectStore>,
}

impl JsonStore {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        JsonStore { store }
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &Path) -> Result<Option<T>, StateError> {
        let bytes = retry::with_backoff("get", retry::is_transient, || async {
            match self.store.get(key).await {
                Ok(result) => result.bytes().await,
                Err(e) => Err(e),
            }
        })
        .await;
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    key: key.to_string(),
                    source,
                });
            }
        };
        #[derive(serde::Deserialize)]
        struct Version {
            format_version: u32,
        }
        let damaged = |e: serde_json::Error| StateError::Damaged {
            key: key.to_string(),
            detail: e.to_string(),
        };
        let version: Version = serde_json::from_slice(&bytes).map_err(damaged)?;
        if version.format_version > FORMAT_VERSION {
            return Err(StateError::TooNew {
                key: key.to_string(),
                found: version.format_version,
            });
        }
        serde_json::from_slice(&bytes).map(Some).map_err(damaged)
    }

    pub async fn put<T: Serialize>(&self, key: &Path, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).expect("state serializes");
        bytes.push(b'\n');
        put_bytes(&self.store, key, bytes)
            .await
            .map_err(|source| StateError::Write {
                key: key.to_string(),
                source,
            })
    }

    pub async fn delete(&self, key: &Path) -> Result<(), StateError> {
        match retry::with_backoff("delete", retry::is_transient, || self.store.delete(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StateError::Write {
                key: key.to_string(),
                source,
            }),
        }
    }
}
