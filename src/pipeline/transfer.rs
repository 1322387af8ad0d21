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

use crate::sink::upload::PARTS_IN_FLIGHT;
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
    hasher: Sha256,
    bytes: u64,
}

/// From this size on, a file is hashed on its own thread (see [`BackgroundSha256`]);
/// below it, handing the chunks over costs about what hashing them does.
const BACKGROUND_HASH_BYTES: u64 = 1024 * 1024;

impl ObjectUpload {
    /// An upload of about `size` bytes (the listed size) to `key`, in parts of
    /// `part_bytes` (`sink::upload::part_bytes`), hashed unless `hash` is false
    /// (`ingest.recordings_sha256`).
    pub fn new(
        store: &Arc<dyn ObjectStore>,
        key: Path,
        size: u64,
        part_bytes: usize,
        hash: bool,
    ) -> Self {
        ObjectUpload {
            writer: BufWriter::with_capacity(Arc::clone(store), key, part_bytes)
                .with_max_concurrency(PARTS_IN_FLIGHT),
            hasher: if !hash {
                Sha256::Skipped
            } else if size >= BACKGROUND_HASH_BYTES {
                Sha256::Background(BackgroundSha256::new())
            } else {
                Sha256::Inline(digest::Context::new(&digest::SHA256))
            },
            bytes: 0,
        }
    }

    /// Completes the upload; returns the size and SHA-256 (hex) of what was written,
    /// empty when it was not hashed.
    pub async fn finish(mut self) -> std::io::Result<(u64, String)> {
        // Once shut down, `BufWriter` cannot be aborted (and a failed single put left
        // nothing behind), so a failure here is only reported.
        self.writer.shutdown().await?;
        let sha256 = match self.hasher {
            Sha256::Inline(context) => hex(context.finish().as_ref()),
            Sha256::Background(hasher) => hasher.finish().await?,
            Sha256::Skipped => String::new(),
        };
        Ok((self.bytes, sha256))
    }

    pub async fn abort(mut self) {
        // Best effort: the error that matters is the one that led here.
        let _ = self.writer.abort().await;
    }
}

#[async_trait]
impl ChunkSink for ObjectUpload {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        // One copy, shared by the hasher and the upload buffer.
        let chunk = Bytes::copy_from_slice(chunk);
        self.bytes += chunk.len() as u64;
        match &mut self.hasher {
            Sha256::Inline(context) => context.update(&chunk),
            Sha256::Background(hasher) => hasher.update(chunk.clone()).await?,
            Sha256::Skipped => {}
        }
        self.writer.put(chunk).await.map_err(std::io::Error::other)
    }

    fn written(&self) -> u64 {
        self.bytes
    }
}

/// The checksum kept in the ledger, computed as the bytes pass, or not at all.
enum Sha256 {
    Inline(digest::Context),
    Background(BackgroundSha256),
    Skipped,
}

/// SHA-256 on a blocking thread: the download hands each chunk over and goes on
/// reading, so hashing runs beside the transfer instead of in series with it.
struct BackgroundSha256 {
    chunks: mpsc::Sender<Bytes>,
    digest: tokio::task::JoinHandle<String>,
}

impl BackgroundSha256 {
    fn new() -> Self {
        let (chunks, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let digest = tokio::task::spawn_blocking(move || {
            let mut context = digest::Context::new(&digest::SHA256);
            while let Some(chunk) = rx.blocking_recv() {
                context.update(&chunk);
            }
            hex(context.finish().as_ref())
        });
        BackgroundSha256 { chunks, digest }
    }

    async fn update(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.chunks
            .send(chunk)
            .await
            .map_err(|_| std::io::Error::other("the hashing thread stopped"))
    }

    async fn finish(self) -> std::io::Result<String> {
        drop(self.chunks);
        self.digest.await.map_err(std::io::Error::other)
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

    /// Small files are hashed inline, large ones on their own thread: the same
    /// checksum and the same object either way, in one put or in parts of a local
    /// disk's size or a bucket's, on a local disk or in memory; unhashed, the same
    /// object and no checksum.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_stores_and_hashes_what_it_was_given() {
        let disk = tempfile::tempdir().unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(disk.path()).unwrap();
        uploads_store_and_hash(Arc::new(local)).await;
        uploads_store_and_hash(Arc::new(object_store::memory::InMemory::new())).await;
        // Nothing is left beside the objects (a local part's staging file, say).
        let left = std::fs::read_dir(disk.path()).unwrap().count();
        assert_eq!(left, 5);
    }

    async fn uploads_store_and_hash(store: Arc<dyn ObjectStore>) {
        use object_store::ObjectStoreExt;
        let data: Vec<u8> = (0..3 * BACKGROUND_HASH_BYTES)
            .map(|i| (i % 251) as u8)
            .collect();
        let sha256 = hex(digest::digest(&digest::SHA256, &data).as_ref());
        let small_parts = crate::sink::upload::LOCAL_PART_BYTES;
        for (size, part_bytes, hash) in [
            (BACKGROUND_HASH_BYTES - 1, small_parts, true),
            (3 * BACKGROUND_HASH_BYTES, small_parts, true),
            (
                3 * BACKGROUND_HASH_BYTES,
                8 * BACKGROUND_HASH_BYTES as usize,
                true,
            ),
            (BACKGROUND_HASH_BYTES - 1, small_parts, false),
            (3 * BACKGROUND_HASH_BYTES, small_parts, false),
        ] {
            let expected = if hash { sha256.as_str() } else { "" };
            let key = Path::from(format!("f{size}-{part_bytes}-{hash}"));
            let mut upload = ObjectUpload::new(&store, key.clone(), size, part_bytes, hash);
            for chunk in data.chunks(100_000) {
                upload.write(chunk).await.unwrap();
            }
            let (bytes, sha256) = upload.finish().await.unwrap();
            assert_eq!((bytes, sha256.as_str()), (data.len() as u64, expected));
            let stored = store.get(&key).await.unwrap().bytes().await.unwrap();
            assert!(stored == data, "{size} {part_bytes} {hash}");
        }
    }
}
