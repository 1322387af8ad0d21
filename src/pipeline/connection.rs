//! The pass's connection to the source: opened on first use, opened again after a
//! failure that broke it, and able to resume a download that broke off.

use std::time::Duration;

use crate::config::SourceSettings;
use crate::source::{self, ChunkSink, Source, SourceError};

/// Tries of one download in all, the first included.
const DOWNLOAD_TRIES: u32 = 4;
/// Wait before the first retry; each later wait is four times longer.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

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

    /// The open connection, opened now if need be.
    pub async fn source(&mut self) -> Result<&mut dyn Source, SourceError> {
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

    /// Forgets a connection that `error` left unusable, so the next use opens another.
    /// It is dropped, not closed: a broken connection would only wait out the timeout.
    pub fn check(&mut self, error: &SourceError) {
        if error.breaks_connection() {
            self.open = None;
        }
    }

    /// Streams `path` into `sink`. When the connection breaks mid-way, it connects
    /// again after a pause and resumes from the bytes the sink already has (REST for
    /// FTP, a seek for SFTP), up to [`DOWNLOAD_TRIES`] tries. Returns the file's size.
    pub async fn download(
        &mut self,
        path: &str,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut tries = 1;
        loop {
            let offset = sink.written();
            let result = match self.source().await {
                Ok(source) => source
                    .download(path, offset, sink)
                    .await
                    .map(|n| offset + n),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.breaks_connection() && tries < DOWNLOAD_TRIES => {
                    self.open = None;
                    tracing::warn!(file = path, resume_at = sink.written(), try_number = tries, error = %e, "download broke off; connecting again to resume");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                    tries += 1;
                }
                Err(e) => {
                    self.check(&e);
                    return Err(e);
                }
                Ok(size) => return Ok(size),
            }
        }
    }
}
