//! A batch of small files fetched whole over several connections at once and handed
//! on in the batch's order: a feed of many small files (session documents) waits on a
//! round trip per file, so one connection at a time leaves a bucket or a distant
//! server idle most of the pass.

use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;

use super::connection::Connection;
use super::{Context, IngestError};
use crate::config::Transfers;
use crate::source::{ChunkSink, RemoteFile};

/// How many files are fetched at once: `ingest.transfers` (its starting count when
/// `auto`), within `source.max_connections`.
pub fn fetchers(ctx: &Context) -> usize {
    let wanted = match ctx.settings.ingest.transfers {
        Transfers::Fixed(n) => n,
        Transfers::Auto => super::transfer_count::START,
    };
    wanted.clamp(1, ctx.settings.source.max_connections.max(1))
}

/// Calls `each` with every file of `files` and its bytes (or why they could not be
/// fetched), in the order of `files`. The files are fetched over `connection` and up
/// to [`fetchers`]` - 1` more, each opened on first use under a connection slot and
/// closed (together) at the end; at most that many fetched files wait for `each`.
pub async fn each_whole<E>(
    ctx: &Context,
    connection: &mut Connection<'_>,
    files: &[RemoteFile],
    mut each: impl FnMut(&RemoteFile, Result<Vec<u8>, IngestError>) -> Result<(), E>,
) -> Result<(), E> {
    let count = fetchers(ctx).min(files.len()).max(1);
    let given = Mutex::new(Some(connection));
    let extra = Mutex::new((1..count).map(|_| ctx.connection()).collect::<Vec<_>>());
    let result = async {
        // By position: a closure over `&RemoteFile` is not general enough for a `Send`
        // future (rust-lang/rust#102211).
        let mut fetched = futures::stream::iter(0..files.len())
            .map(|position| {
                let (given, extra, file) = (&given, &extra, &files[position]);
                async move {
                    // At most `count` fetches run, and there are `count` connections.
                    let free = given.lock().expect("not poisoned").take();
                    if let Some(connection) = free {
                        let bytes = download_whole(connection, file).await;
                        *given.lock().expect("not poisoned") = Some(connection);
                        return bytes;
                    }
                    let free = extra.lock().expect("not poisoned").pop();
                    let mut connection = free.expect("a connection for each fetch in flight");
                    let bytes = download_whole(&mut connection, file).await;
                    extra.lock().expect("not poisoned").push(connection);
                    bytes
                }
            })
            .buffered(count);
        let mut files = files.iter();
        while let Some(bytes) = fetched.next().await {
            each(files.next().expect("one result per file"), bytes)?;
        }
        Ok(())
    }
    .await;
    let extra = std::mem::take(&mut *extra.lock().expect("not poisoned"));
    futures::future::join_all(
        extra
            .into_iter()
            .map(|mut c| async move { c.close().await }),
    )
    .await;
    result
}

/// A file whole (it is within the feed's size limit); one that changed while it was
/// read is left for the next pass.
pub async fn download_whole(
    connection: &mut Connection<'_>,
    file: &RemoteFile,
) -> Result<Vec<u8>, IngestError> {
    let mut sink = Bytes(Vec::with_capacity(file.size as usize));
    // The file's own retry budget (`pipeline::connection`).
    let mut retries = connection.retry_budget();
    connection
        .download(&file.path, &mut sink, &mut retries)
        .await?;
    if sink.0.len() as u64 != file.size {
        return Err(IngestError::StillUploading {
            path: file.path.clone(),
            detail: format!("listed as {} bytes, {} arrived", file.size, sink.0.len()),
        });
    }
    Ok(sink.0)
}

struct Bytes(Vec<u8>);

#[async_trait]
impl ChunkSink for Bytes {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(chunk);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.0.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Settings;

    /// Fetched four at a time, the files are handed on in the batch's order, each with
    /// its own bytes; a file gone since the listing and one whose size changed fail
    /// alone, and the files after them still arrive.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_fetched_at_once_arrive_in_order_and_fail_alone() {
        let drop = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for n in 0..40u64 {
            let body = format!("file {n} ").repeat(1 + n as usize % 7);
            std::fs::write(drop.path().join(format!("{n}.json")), &body).unwrap();
            files.push(RemoteFile {
                path: format!("{n}.json"),
                size: body.len() as u64 + u64::from(n == 17),
                modified: None,
                etag: None,
            });
        }
        std::fs::remove_file(drop.path().join("9.json")).unwrap();
        let settings = Settings::parse(
            &format!(
                "[source]\nurl = \"file://{}\"\nmax_connections = 8\n[destination]\nurl = \"memory://\"\n[ingest]\ntransfers = 4\n",
                drop.path().display()
            ),
            &|_| None,
        )
        .unwrap_or_else(|issues| panic!("{issues:?}"));
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let ctx = Context::new(settings, store);
        assert_eq!(fetchers(&ctx), 4);
        let mut connection = ctx.connection();
        let mut seen = Vec::new();
        each_whole(&ctx, &mut connection, &files, |file, bytes| {
            seen.push((file.path.clone(), bytes.map_err(|e| e.to_string())));
            Ok::<(), ()>(())
        })
        .await
        .unwrap();
        connection.close().await;
        assert_eq!(seen.len(), files.len());
        for (n, (path, bytes)) in seen.into_iter().enumerate() {
            assert_eq!(path, format!("{n}.json"));
            match n {
                9 | 17 => assert!(bytes.is_err(), "{path}: {bytes:?}"),
                _ => {
                    let expected = format!("file {n} ").repeat(1 + n % 7);
                    assert_eq!(bytes.as_deref(), Ok(expected.as_bytes()), "{path}");
                }
            }
        }
    }
}
