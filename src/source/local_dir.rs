//! A local or mounted folder in the provider's layout (`file:///path`), for customers
//! who sync the drop first, and for measuring the pipeline without a network.

use std::io::ErrorKind;
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{ChunkSink, FolderLister, RemoteFile, Source, SourceError};

/// Bytes read at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Reads the drop from a folder.
pub struct LocalDirSource {
    root: PathBuf,
}

impl LocalDirSource {
    pub fn new(root: PathBuf) -> Self {
        LocalDirSource { root }
    }

    /// The folder is the root of its paths, as a chrooted FTP login is: `/CDRs` and
    /// `CDRs` are the same folder, and nothing outside the root can be named.
    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn error(&self, action: &'static str, path: &str, e: std::io::Error) -> SourceError {
        SourceError::Refused {
            endpoint: self.root.display().to_string(),
            action,
            path: path.to_string(),
            detail: e.to_string(),
        }
    }
}

fn remote_file(path: String, meta: &std::fs::Metadata) -> RemoteFile {
    RemoteFile {
        path,
        size: meta.len(),
        modified: meta.modified().ok().map(DateTime::<Utc>::from),
        etag: None,
    }
}

#[async_trait]
impl FolderLister for LocalDirSource {
    /// The files directly in `folder`; its subfolders go to `subfolders` if given.
    async fn list_folder(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
        mut subfolders: Option<&mut Vec<String>>,
    ) -> Result<u64, SourceError> {
        let mut entries = tokio::fs::read_dir(self.full(folder))
            .await
            .map_err(|e| self.error("list", folder, e))?;
        let mut files = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| self.error("list", folder, e))?
        {
            let meta = entry
                .metadata()
                .await
                .map_err(|e| self.error("list", folder, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_file() {
                each(remote_file(format!("{folder}/{name}"), &meta));
                files += 1;
            } else if meta.is_dir()
                && let Some(subfolders) = subfolders.as_deref_mut()
            {
                subfolders.push(format!("{folder}/{name}"));
            }
        }
        Ok(files)
    }
}

#[async_trait]
impl Source for LocalDirSource {
    async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError> {
        match tokio::fs::metadata(self.full(path)).await {
            Ok(meta) if meta.is_file() => Ok(Some(remote_file(path.to_string(), &meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("stat", path, e)),
        }
    }

    async fn list(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.list_folder(folder, each, None).await
    }

    async fn list_tree(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        super::walk_tree(self, folder, each).await
    }

    async fn download(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let endpoint = self.root.display().to_string();
        let mut file =
            tokio::fs::File::open(self.full(path))
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::NotFound => SourceError::Missing {
                        endpoint,
                        path: path.to_string(),
                    },
                    ErrorKind::PermissionDenied => SourceError::PermissionDenied {
                        endpoint,
                        path: path.to_string(),
                        detail: e.to_string(),
                    },
                    _ => self.error("read", path, e),
                })?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| self.error("read", path, e))?;
        let mut buffer = vec![0u8; READ_CHUNK];
        let mut copied = 0u64;
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| self.error("read", path, e))?;
            if n == 0 {
                return Ok(copied);
            }
            sink.write(&buffer[..n])
                .await
                .map_err(|e| self.error("read", path, e))?;
            copied += n as u64;
        }
    }
}
