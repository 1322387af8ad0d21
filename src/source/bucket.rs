//! A bucket or container as the source (`s3://bucket/prefix`, `gs://…`, `az://…`), for
//! providers that deliver the drop into object storage. Opened as the destination is
//! ([`crate::store`]: the same environment credentials, `source.options` over them);
//! the URL's prefix is the root of the source's paths, as the login folder is for FTP.
//!
//! A bucket has no folders, only keys: a "folder" is the keys under `folder/`, so an
//! empty folder and a missing one are the same thing (no keys) and both list nothing;
//! a missing bucket is an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::SubsecRound;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};

use super::{ChunkSink, RemoteFile, Source, SourceError};
use crate::config::BucketSettings;
use crate::store::{self, Role};

/// Bytes gathered before they are handed to the sink: a response body arrives in
/// pieces of a few KiB.
const WRITE_CHUNK: usize = 256 * 1024;

/// Reads the drop from a bucket.
pub struct BucketSource {
    store: Arc<dyn ObjectStore>,
    /// The URL without user information and without a trailing `/`, for messages.
    root: String,
    timeout: Duration,
}

impl BucketSource {
    /// Opens the bucket `settings` names (nothing is sent until the first request).
    pub fn open(settings: &BucketSettings, timeout: Duration) -> Result<Self, SourceError> {
        let root = store::redact(&settings.url)
            .trim_end_matches('/')
            .to_string();
        let store =
            store::open(&settings.url, &settings.options).map_err(|e| SourceError::Store {
                action: "open",
                location: root.clone(),
                advice: store::advice(&e, Role::Source),
            })?;
        Ok(BucketSource::new(store, root, timeout))
    }

    /// A source over `store`; `root` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, root: String, timeout: Duration) -> Self {
        BucketSource {
            store,
            root,
            timeout,
        }
    }

    /// The key of `path`, taken as it is written (no percent-encoding: the provider's
    /// keys are used as they are); a leading `/` is the root, as for a local folder.
    fn key(&self, action: &'static str, path: &str) -> Result<Path, SourceError> {
        Path::parse(path.trim_matches('/')).map_err(|e| SourceError::Refused {
            endpoint: self.root.clone(),
            action,
            path: path.to_string(),
            detail: format!("not a valid object key: {e}"),
        })
    }

    /// `bucket/prefix/path`, for messages.
    fn location(&self, path: &str) -> String {
        format!("{}/{}", self.root, path.trim_start_matches('/'))
    }

    fn error(&self, action: &'static str, path: &str, e: &object_store::Error) -> SourceError {
        SourceError::Store {
            action,
            location: self.location(path),
            advice: store::advice(e, Role::Source),
        }
    }

    /// `future`, or a [`SourceError::Timeout`] after `source.timeout_secs`.
    async fn limit<T>(
        &self,
        during: &str,
        path: &str,
        future: impl Future<Output = T>,
    ) -> Result<T, SourceError> {
        super::time_limited(
            self.timeout,
            &self.root,
            || format!("{during} {path:?}"),
            future,
        )
        .await
    }

    async fn head(&self, path: &str) -> Result<Option<ObjectMeta>, SourceError> {
        let key = self.key("stat", path)?;
        match self.limit("stat", path, self.store.head(&key)).await? {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("stat", path, &e)),
        }
    }
}

/// What the ledger compares. Times are cut to whole seconds: a listing gives
/// milliseconds where a HEAD's `Last-Modified` gives seconds, and the two must agree.
fn remote_file(path: String, meta: &ObjectMeta) -> RemoteFile {
    RemoteFile {
        path,
        size: meta.size,
        modified: Some(meta.last_modified.trunc_subsecs(0)),
        etag: meta.e_tag.clone(),
    }
}

#[async_trait]
impl Source for BucketSource {
    async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError> {
        Ok(self
            .head(path)
            .await?
            .map(|meta| remote_file(path.to_string(), &meta)))
    }

    async fn list(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        let prefix = self.key("list", folder)?;
        let depth = prefix.parts_count() + 1;
        // `list` is a stream of pages; `list_with_delimiter` would give only the
        // folder's own keys but collects every page into one Vec first, which a folder
        // of hundreds of thousands of recordings must not. Keys in subfolders are
        // skipped here instead, as the other sources do not descend either.
        let mut stream = self.store.list(Some(&prefix));
        let mut files = 0;
        while let Some(meta) = self.limit("listing", folder, stream.next()).await? {
            let meta = meta.map_err(|e| self.error("list", folder, &e))?;
            if meta.location.parts_count() != depth {
                continue;
            }
            let Some(name) = meta.location.filename() else {
                continue;
            };
            each(remote_file(
                format!("{}/{name}", folder.trim_end_matches('/')),
                &meta,
            ));
            files += 1;
        }
        Ok(files)
    }

    async fn list_tree(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        let prefix = self.key("list", folder)?;
        let below = prefix.parts_count();
        let folder = folder.trim_end_matches('/');
        // A bucket's listing is recursive already, a page at a time.
        let mut stream = self.store.list(Some(&prefix));
        let mut files = 0;
        while let Some(meta) = self.limit("listing", folder, stream.next()).await? {
            let meta = meta.map_err(|e| self.error("list", folder, &e))?;
            let rest: Vec<_> = meta.location.parts().skip(below).collect();
            if rest.is_empty() {
                continue;
            }
            let rest = rest
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join("/");
            each(remote_file(format!("{folder}/{rest}"), &meta));
            files += 1;
        }
        Ok(files)
    }

    async fn download(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let key = self.key("read", path)?;
        let missing = || SourceError::Missing {
            endpoint: self.root.clone(),
            path: path.to_string(),
        };
        let mut options = GetOptions::default();
        if offset > 0 {
            // A resumed download: a ranged GET from where it stopped. A range that
            // starts at the end is refused (416), so a download that broke off after its
            // last byte is settled by the object's size instead.
            let meta = self.head(path).await?.ok_or_else(missing)?;
            if offset >= meta.size {
                return Ok(0);
            }
            options.range = Some(GetRange::Offset(offset));
        }
        let result = match self
            .limit(
                "starting the download of",
                path,
                self.store.get_opts(&key, options),
            )
            .await?
        {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(missing()),
            Err(e) => return Err(self.error("read", path, &e)),
        };
        let broke_off = |detail: String| SourceError::Transfer {
            endpoint: self.root.clone(),
            path: path.to_string(),
            detail,
        };
        let mut body = result.into_stream();
        let mut pending: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let mut copied = 0u64;
        loop {
            let next = self.limit("downloading", path, body.next()).await?;
            let chunk = match next {
                Some(chunk) => Some(chunk.map_err(|e| broke_off(e.to_string()))?),
                None => None,
            };
            let end = chunk.is_none();
            if let Some(chunk) = chunk {
                pending.extend_from_slice(&chunk);
            }
            if !pending.is_empty() && (end || pending.len() >= WRITE_CHUNK) {
                sink.write(&pending).await.map_err(|e| SourceError::Sink {
                    path: path.to_string(),
                    detail: e.to_string(),
                })?;
                copied += pending.len() as u64;
                pending.clear();
            }
            if end {
                return Ok(copied);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    struct Collect(Vec<u8>);

    #[async_trait]
    impl ChunkSink for Collect {
        async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
            self.0.extend_from_slice(chunk);
            Ok(())
        }
        fn written(&self) -> u64 {
            self.0.len() as u64
        }
    }

    async fn source_with(keys: &[(&str, &[u8])]) -> BucketSource {
        let store = Arc::new(InMemory::new());
        for (key, bytes) in keys {
            store
                .put(&Path::parse(key).unwrap(), bytes.to_vec().into())
                .await
                .unwrap();
        }
        BucketSource::new(store, "memory://test".into(), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_folder_lists_its_own_keys_only_and_stat_agrees_with_the_listing() {
        let mut source = source_with(&[
            ("CDRs/2024-03-01.csv", b"0123456789"),
            ("CDRs/older/2023-01-01.csv", b"x"),
            ("CDRs-old/2024-03-01.csv", b"y"),
            ("rec/a #1 [zoë].mp3", b"ID3"),
        ])
        .await;
        let mut listed = Vec::new();
        let count = source
            .list("/CDRs/", &mut |file| listed.push(file))
            .await
            .unwrap();
        assert_eq!(count, 1);
        assert_eq!(listed[0].path, "/CDRs/2024-03-01.csv");
        assert_eq!(listed[0].size, 10);
        assert!(listed[0].etag.is_some());
        let stat = source.stat(&listed[0].path).await.unwrap().unwrap();
        assert_eq!(stat, listed[0]);
        assert_eq!(source.stat("CDRs/nope.csv").await.unwrap(), None);
        // Keys are used as written, not percent-encoded.
        let mut names = Vec::new();
        source
            .list("rec", &mut |file| names.push(file.path))
            .await
            .unwrap();
        assert_eq!(names, ["rec/a #1 [zoë].mp3"]);
        assert!(source.stat(&names[0]).await.unwrap().is_some());
        assert_eq!(source.list("nothing", &mut |_| {}).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn downloads_resume_from_an_offset_even_at_the_end() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut source = source_with(&[("d/data.bin", &content)]).await;
        let mut whole = Collect(Vec::new());
        assert_eq!(
            source.download("d/data.bin", 0, &mut whole).await.unwrap(),
            content.len() as u64
        );
        assert!(whole.0 == content);
        let mut tail = Collect(Vec::new());
        source
            .download("d/data.bin", 123_457, &mut tail)
            .await
            .unwrap();
        assert!(tail.0 == content[123_457..]);
        let mut nothing = Collect(Vec::new());
        assert_eq!(
            source
                .download("d/data.bin", content.len() as u64, &mut nothing)
                .await
                .unwrap(),
            0
        );
        let missing = source
            .download("d/missing.bin", 0, &mut Collect(Vec::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(missing, SourceError::Missing { .. }),
            "{missing:?}"
        );
    }
}
