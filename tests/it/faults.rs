//! Fault injection on the destination (the one place for a mock): transient store
//! errors are retried; a lasting one fails that file cleanly and the run goes on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use cdr_ingest::config::Settings;
use cdr_ingest::generate::{DropSpec, write_drop};
use cdr_ingest::pass;
use cdr_ingest::pipeline::{Context, FileOutcome};
use chrono::NaiveDate;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Fails puts under `prefix`: the first `transient` ones with a 503, or all of them.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    prefix: &'static str,
    transient: Option<u32>,
    failed: AtomicU32,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl Faulty {
    fn fault(&self, location: &Path) -> Result<()> {
        if !location.as_ref().starts_with(self.prefix) {
            return Ok(());
        }
        let failed = self.failed.fetch_add(1, Ordering::SeqCst);
        match self.transient {
            Some(n) if failed >= n => Ok(()),
            _ => Err(object_store::Error::Generic {
                store: "Faulty",
                source: "injected: 503 SlowDown".into(),
            }),
        }
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.fault(location)?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.fault(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// A generated day in a local folder, and a context writing through `Faulty`.
fn setup(work: &std::path::Path, prefix: &'static str, transient: Option<u32>) -> Context {
    let drop = work.join("drop");
    let mut spec = DropSpec::new(9, day(1), day(1));
    spec.recordings_per_day = Some(0);
    write_drop(&drop, &spec).unwrap();
    let out = work.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let text = format!(
        "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"cdr\", \"queue\"]\n",
        drop.display(),
        out.display()
    );
    let settings = Settings::parse(&text, &|_| None).unwrap();
    let store = Arc::new(Faulty {
        inner: Arc::new(LocalFileSystem::new_with_prefix(&out).unwrap()),
        prefix,
        transient,
        failed: AtomicU32::new(0),
    });
    Context::new(settings, store)
}

#[tokio::test]
async fn transient_store_errors_are_retried() {
    let work = tempfile::tempdir().unwrap();
    let ctx = setup(work.path(), "cdr/", Some(2));
    let report = pass::run(&ctx, &[day(1)], chrono::Utc::now(), &Default::default()).await;
    assert!(report.is_success(), "{report:?}");
    assert!(matches!(
        report.files[0].result,
        Ok(FileOutcome::Ingested(_))
    ));
    assert!(
        work.path()
            .join("out/_state/ledger/cdr/2024-03-01.json")
            .exists()
    );
}

#[tokio::test]
async fn a_lasting_store_error_fails_that_file_only_and_leaves_nothing_half_done() {
    let work = tempfile::tempdir().unwrap();
    let ctx = setup(work.path(), "cdr/", None);
    let report = pass::run(&ctx, &[day(1)], chrono::Utc::now(), &Default::default()).await;
    assert!(!report.is_success());
    let cdr = &report.files[0];
    let error = cdr.result.as_ref().unwrap_err().to_string();
    assert!(error.contains("cannot write cdr/date="), "{error}");
    assert!(error.contains("503 SlowDown"), "{error}");
    // The queue zip of the same day still went in; the CDRs' ledger entry only says
    // what the attempt may have written (so that the next run cleans up after it),
    // not that the file is in.
    assert!(
        matches!(report.files[1].result, Ok(FileOutcome::Ingested(_))),
        "{report:?}"
    );
    let out = work.path().join("out");
    let entry = crate::util::json(&out.join("_state/ledger/cdr/2024-03-01.json"));
    assert_eq!(
        entry["sha256"], "",
        "no version of the file is done: {entry}"
    );
    assert!(
        entry["pending"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k.as_str().unwrap().starts_with("cdr/"))),
        "{entry}"
    );
    assert!(out.join("_state/ledger/queue/2024-03-01.json").exists());
    assert!(!out.join("cdr").exists(), "no half-written CDR output");
}
