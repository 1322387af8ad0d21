//! The bridge between an async download and a blocking parser: chunks are hashed on
//! the way through and handed over a bounded channel, so parsing overlaps the
//! transfer and memory is capped at a few chunks.

use std::io::Read;

use async_trait::async_trait;
use aws_lc_rs::digest;
use bytes::{Buf, Bytes};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::sink::upload::{PART_BYTES, PARTS_IN_FLIGHT};
use tokio::sync::mpsc;

use crate::source::ChunkSink;

/// Chunks in flight between the download and the parser.
const CHANNEL_CHUNKS: usize = 16;

/// Creates the two ends: the sink the source writes into, the reader the parser reads.
pub fn channel() -> (HashingSender, ChannelReader) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    (
        HashingSender {
            tx,
            hasher: digest::Context::new(&digest::SHA256),
            bytes: 0,
        },
        ChannelReader {
            rx,
            current: Bytes::new(),
        },
    )
}

/// Counts and hashes what passes through.
pub struct HashingSender {
    tx: mpsc::Sender<Bytes>,
    hasher: digest::Context,
    bytes: u64,
}

impl HashingSender {
    /// The byte count and SHA-256 (hex) of everything sent; closes the channel.
    pub fn finish(self) -> (u64, String) {
        let digest = self.hasher.finish();
        (self.bytes, hex(digest.as_ref()))
    }
}

#[async_trait]
impl ChunkSink for HashingSender {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.tx
            .send(Bytes::copy_from_slice(chunk))
            .await
            .map_err(|_| std::io::Error::other("the parser stopped reading"))
    }

    fn written(&self) -> u64 {
        self.bytes
    }
}

/// A blocking `Read` over the channel; end of input when the sender is gone.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Spools a download to an anonymous temporary file (never memory), hashing it, for
/// formats that need the whole file before reading, such as zip.
pub struct Spool {
    file: tokio::fs::File,
    hasher: digest::Context,
    bytes: u64,
}

impl Spool {
    pub fn new() -> std::io::Result<Spool> {
        Ok(Spool {
            file: tokio::fs::File::from_std(tempfile::tempfile()?),
            hasher: digest::Context::new(&digest::SHA256),
            bytes: 0,
        })
    }

    /// The spooled file, its size and its SHA-256 (hex).
    pub async fn finish(mut self) -> std::io::Result<(std::fs::File, u64, String)> {
        self.file.flush().await?;
        let digest = self.hasher.finish();
        Ok((self.file.into_std().await, self.bytes, hex(digest.as_ref())))
    }
}

#[async_trait]
impl ChunkSink for Spool {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    fn written(&self) -> u64 {
        self.bytes
    }
}

/// Streams a download straight into an object: buffered up to one part, then a
/// multipart upload, so memory does not grow with the file. The object appears only
/// when [`ObjectUpload::finish`] completes; [`ObjectUpload::abort`] leaves nothing.
pub struct ObjectUpload {
    writer: BufWriter,
    hasher: digest::Context,
    bytes: u64,
}

impl ObjectUpload {
    pub fn new(store: &Arc<dyn ObjectStore>, key: Path) -> Self {
        ObjectUpload {
            writer: BufWriter::with_capacity(Arc::clone(store), key, PART_BYTES)
                .with_max_concurrency(PARTS_IN_FLIGHT),
            hasher: digest::Context::new(&digest::SHA256),
            bytes: 0,
        }
    }

    /// Completes the upload; returns the size and SHA-256 (hex) of what was written.
    pub async fn finish(mut self) -> std::io::Result<(u64, String)> {
        // Once shut down, `BufWriter` cannot be aborted (and a failed single put left
        // nothing behind), so a failure here is only reported.
        self.writer.shutdown().await?;
        Ok((self.bytes, hex(self.hasher.finish().as_ref())))
    }

    pub async fn abort(mut self) {
        // Best effort: the error that matters is the one that led here.
        let _ = self.writer.abort().await;
    }
}

#[async_trait]
impl ChunkSink for ObjectUpload {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.writer.write_all(chunk).await
    }

    fn written(&self) -> u64 {
        self.bytes
    }
}

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order_with_their_hash() {
        let (mut tx, mut rx) = channel();
        let reader = tokio::task::spawn_blocking(move || {
            let mut all = String::new();
            rx.read_to_string(&mut all).map(|_| all)
        });
        tx.write(b"hello ").await.unwrap();
        tx.write(b"world").await.unwrap();
        let (bytes, sha) = tx.finish();
        assert_eq!(reader.await.unwrap().unwrap(), "hello world");
        assert_eq!(bytes, 11);
        assert_eq!(
            sha,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
