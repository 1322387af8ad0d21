//! Opens the destination named by `destination.url` as an object store.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use url::Url;

/// Opens the store; a `file://` folder is created if missing.
pub fn open(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|_| format!("destination.url {url} is not an absolute local path"))?;
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let store = LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Ok(Arc::new(store))
        }
        "memory" => Ok(Arc::new(InMemory::new())),
        other => Err(format!("destination scheme {other}:// is not supported")),
    }
}
