//! The pass's connection to the source, and the one retry policy of every source
//! operation: opened on first use; when an operation fails for a reason that may pass
//! ([`SourceError::is_transient`]: refused, reset, timed out, a broken TLS or SSH
//! session, FTP 4xx), the connection is dropped and the operation tried again over a
//! new one, with backoff and jitter, until `source.retry_max_secs` have passed since
//! its first failure. A download resumes from the bytes already taken (REST for FTP, a
//! seek for SFTP); a listing that broke off is read again without repeating entries.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use crate::backoff::{Backoff, Policy};
use crate::config::SourceSettings;
use crate::source::{self, ChunkSink, RemoteFile, Source, SourceError};

/// The waits between tries: about half a second at first, doubling up to 30 s.
fn policy(within: Duration) -> Policy {
    Policy {
        first_delay: Duration::from_millis(500),
        factor: 2,
        max_delay: Duration::from_secs(30),
        max_tries: None,
        within: Some(within),
    }
}

/// A source connection opened on demand.
pub struct Connection<'s> {
    settings: &'s SourceSettings,
    open: Option<Box<dyn Source>>,
}

impl<'s> Connection<'s> {
    pub fn new(settings: &'s SourceSettings) -> Self {
        Connection {
            settings,
            open: None,
        }
    }

    /// The open connection, opened now if need be (one try).
    async fn source(&mut self) -> Result<&mut dyn Source, SourceError> {
        if self.open.is_none() {
            self.open = Some(source::connect(self.settings).await?);
        }
        Ok(self.open.as_deref_mut().expect("just opened"))
    }

    /// Says goodbye on the open connection, if there is one (the next use opens another).
    pub async fn close(&mut self) {
        if let Some(open) = self.open.take() {
            open.close().await;
        }
    }

    /// Opens the connection if it is not open, retrying as every operation does.
    pub async fn open(&mut self) -> Result<(), SourceError> {
        let mut backoff = self.backoff();
        loop {
            match self.source().await {
                Ok(_) => return Ok(()),
                Err(e) => self.failed(&mut backoff, "connecting", "", e).await?,
            }
        }
    }

    /// Size and time of `path`, or `None` when it is not there.
    pub async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError> {
        let mut backoff = self.backoff();
        loop {
            let result = async {
                let source = self.source().await?;
                crate::crash::pause("stat", path);
                source.stat(path).await
            }
            .await;
            match result {
                Ok(found) => return Ok(found),
                Err(e) => self.failed(&mut backoff, "stat", path, e).await?,
            }
        }
    }

    /// Calls `each` with every file in `folder` as the listing arrives (see
    /// [`Source::list`]).
    pub async fn list(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.listing(folder, false, each).await
    }

    /// Calls `each` with every file under `folder` at any depth as the listing arrives
    /// (see [`Source::list_tree`]).
    pub async fn list_tree(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.listing(folder, true, each).await
    }

    /// A listing, retried as every operation is: one that broke off is read again from
    /// the start, and the files `each` was already given are skipped (by a 128-bit hash
    /// of the path, so memory stays at 16 bytes a file).
    async fn listing(
        &mut self,
        folder: &str,
        tree: bool,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        let mut given: HashSet<u128> = HashSet::new();
        let mut backoff = self.backoff();
        loop {
            let mut pass_on = |file: RemoteFile| {
                crate::crash::pause("listed", folder);
                if given.insert(xxhash_rust::xxh3::xxh3_128(file.path.as_bytes())) {
                    each(file);
                }
            };
            let result = async {
                let source = self.source().await?;
                crate::crash::pause("list", folder);
                if tree {
                    source.list_tree(folder, &mut pass_on).await
                } else {
                    source.list(folder, &mut pass_on).await
                }
            }
            .await;
            match result {
                Ok(_) => return Ok(given.len() as u64),
                Err(e) => self.failed(&mut backoff, "listing", folder, e).await?,
            }
        }
    }

    /// Streams `path` into `sink`, resuming from the bytes the sink already has after
    /// each break. Returns the file's size.
    pub async fn download(
        &mut self,
        path: &str,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let mut backoff = self.backoff();
        let mut taken = sink.written();
        loop {
            let offset = sink.written();
            if offset > taken {
                backoff.progressed();
                taken = offset;
            }
            let result = async {
                let source = self.source().await?;
                crate::crash::pause("download", path);
                let mut sink = Pausing { inner: sink, path };
                source.download(path, offset, &mut sink).await
            }
            .await;
            match result {
                Ok(copied) => return Ok(offset + copied),
                Err(e) => {
                    let during = format!("downloading (resuming at byte {})", sink.written());
                    self.failed(&mut backoff, &during, path, e).await?
                }
            }
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(policy(self.settings.retry_max))
    }

    /// After a failed try: forgets a connection the error left unusable, and waits
    /// before the next try, or returns the error when it will not pass or the time
    /// for retries is up.
    async fn failed(
        &mut self,
        backoff: &mut Backoff,
        during: &str,
        subject: &str,
        error: SourceError,
    ) -> Result<(), SourceError> {
        if !error.is_transient() {
            if matches!(error, SourceError::Protocol { .. }) {
                // The server broke the protocol: what it sends next cannot be trusted.
                self.open = None;
            }
            return Err(error);
        }
        // Dropped, not closed: a broken connection would only wait out the timeout.
        self.open = None;
        let Some(wait) = backoff.next_delay() else {
            tracing::warn!(during, subject, tries = backoff.tries(), error = %error, "giving up: source.retry_max_secs have passed since the first failure");
            return Err(error);
        };
        tracing::warn!(during, subject, try_number = backoff.tries() - 1, retry_in_ms = super::millis(wait), error = %error, "source operation failed; connecting again to retry");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Passes a download's chunks on, with a pause point after each (see `crash::pause`).
struct Pausing<'a> {
    inner: &'a mut dyn ChunkSink,
    path: &'a str,
}

#[async_trait]
impl ChunkSink for Pausing<'_> {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        crate::crash::pause("received", self.path);
        self.inner.write(chunk).await
    }

    fn written(&self) -> u64 {
        self.inner.written()
    }
}
