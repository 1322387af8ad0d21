//! Opens the destination named by `destination.url` as an object store:
//! `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` and `memory://`
//! through [`crate::store`] (the same code a bucket source opens with: `object_store`'s
//! URL forms, credentials from the environment, `destination.options` over them), and
//! `file:///path`, a folder created if missing.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use url::Url;

pub use crate::store::redact;
use crate::store::{self, Role};

/// Whether `url` names a destination this build can open.
pub fn supported(url: &Url) -> bool {
    matches!(url.scheme(), "file" | "memory") || store::is_cloud(url.scheme())
}

/// Why the destination could not be opened or used; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("destination.url {0} is not an absolute local path")]
    NotAbsolute(String),
    #[error("cannot create {path}: {source}")]
    CreateFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open {path}: {source}")]
    OpenFolder {
        path: String,
        source: object_store::Error,
    },
    #[error("cannot open destination {url}: {source}")]
    Open {
        url: String,
        source: object_store::Error,
    },
    #[error("cannot {step} {PROBE_KEY} at {url}: {advice}")]
    Probe {
        step: &'static str,
        url: String,
        advice: String,
    },
    #[error("the probe object at {0} read back different bytes")]
    ProbeDiffers(String),
}

/// Opens the store at `url`'s bucket and prefix; a `file://` folder is created if missing.
pub fn open(
    url: &Url,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, DestinationError> {
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|_| DestinationError::NotAbsolute(url.to_string()))?;
        std::fs::create_dir_all(&path).map_err(|source| DestinationError::CreateFolder {
            path: path.display().to_string(),
            source,
        })?;
        // Folders emptied by deletions (retention, purge) are removed too, so they do not
        // pile up day after day.
        let store = LocalFileSystem::new_with_prefix(&path)
            .map(|store| store.with_automatic_cleanup(true))
            .map_err(|source| DestinationError::OpenFolder {
                path: path.display().to_string(),
                source,
            })?;
        return Ok(Arc::new(store));
    }
    store::open(url, options).map_err(|source| DestinationError::Open {
        url: redact(url),
        source,
    })
}

/// The key `validate --connect` writes, reads back and deletes.
const PROBE_KEY: &str = super::layout::PROBE;

/// Writes, reads and deletes a probe object; on failure, says what to check.
pub async fn probe(store: &Arc<dyn ObjectStore>, url: &Url) -> Result<(), DestinationError> {
    use object_store::ObjectStoreExt;
    let key = object_store::path::Path::from(PROBE_KEY);
    let body = b"cdr-ingest probe".to_vec();
    let explain = |step: &'static str, e: object_store::Error| DestinationError::Probe {
        step,
        url: redact(url),
        advice: store::advice(&e, Role::Destination),
    };
    store
        .put(&key, body.clone().into())
        .await
        .map_err(|e| explain("write", e))?;
    let read = store
        .get(&key)
        .await
        .map_err(|e| explain("read", e))?
        .bytes()
        .await
        .map_err(|e| explain("read", e))?;
    if read.as_ref() != body.as_slice() {
        return Err(DestinationError::ProbeDiffers(redact(url)));
    }
    store.delete(&key).await.map_err(|e| explain("delete", e))
}
