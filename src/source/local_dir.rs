//! A local or mounted folder in the provider's layout (`file:///path`), for customers
//! who sync the drop first, and for measuring the pipeline without a network.

use std::io::ErrorKind;
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::AsyncReadExt;

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
        let full = self.full(path);
        // Opened and its first chunk read in one go on the blocking pool: a small file
        // (a session document) costs one hop there, not one per call, and a buffer of
        // its size, not of a chunk's.
        let opened = tokio::task::spawn_blocking(move || open_and_read_first(full, offset))
            .await
            .map_err(std::io::Error::other)
            .and_then(|opened| opened);
        let (file, first, at_end) = opened.map_err(|e| match e.kind() {
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
        if !first.is_empty() {
            sink.write(&first)
                .await
                .map_err(|e| self.error("read", path, e))?;
        }
        let mut copied = first.len() as u64;
        if at_end {
            return Ok(copied);
        }
        let mut file = tokio::fs::File::from_std(file);
        let mut buffer = vec![0u8; READ_CHUNK];
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

/// The file opened at `offset`, its first chunk (the whole rest, if it fits), and
/// whether that reached its end.
fn open_and_read_first(
    full: PathBuf,
    offset: u64,
) -> std::io::Result<(std::fs::File, Vec<u8>, bool)> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(full)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let left = file.metadata()?.len().saturating_sub(offset);
    // One byte more than is left, to see the end without another read.
    let mut first =
        vec![0u8; usize::try_from(left).map_or(READ_CHUNK, |l| (l + 1).min(READ_CHUNK))];
    let mut filled = 0;
    while filled < first.len() {
        match file.read(&mut first[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let at_end = filled < first.len();
    first.truncate(filled);
    Ok((file, first, at_end))
}
