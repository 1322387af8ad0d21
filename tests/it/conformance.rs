//! One conformance suite, written once and run against every source: vsftpd (FTPS,
//! no MLSD), pure-ftpd (FTPS, MLSD), ProFTPD (FTPS with TLS session reuse required,
//! MLSD; and its mod_sftp), OpenSSH (SFTP), a local folder and
//! a bucket (moto as S3: the fixture's folder is uploaded under a prefix of the test
//! bucket before the source is opened).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lc_rs::digest;
use cdr_ingest::config::SourceEndpoint;
use cdr_ingest::config::{Settings, SourceSettings};
use cdr_ingest::source::{self, ChunkSink, RemoteFile, SourceError};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vsftpd(Tls),
    PureFtpd(Tls),
    Proftpd(Tls),
    Sftp,
    ProftpdSftp,
    Local,
    Bucket,
}

/// The newest TLS version an FTPS source offers (`source.tls_max_version`): TLS 1.3,
/// where each data connection makes its own key exchange, or 1.2, where it resumes the
/// control connection's session without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Newest,
    V12,
}

impl Tls {
    fn key(self) -> &'static str {
        match self {
            Tls::Newest => "",
            Tls::V12 => "\ntls_max_version = \"1.2\"",
        }
    }
}

/// Where the bucket source's fixtures go in the test bucket.
const BUCKET_ROOT: &str = "source-conformance";

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// A folder of this test's own on one server, and settings to reach it.
struct Fixture {
    /// The folder on disk, which the server serves as `folder`.
    dir: PathBuf,
    folder: String,
    settings: SourceSettings,
    kind: Kind,
    _local_root: Option<tempfile::TempDir>,
}

/// `[source]` lines reaching the test bucket under `root`, with the credentials as
/// options (the test process has no AWS_* variables).
fn bucket_source(bucket: &str, root: &str) -> String {
    format!(
        "url = \"s3://{bucket}/{root}\"\n[source.options]\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = \"true\"\nvirtual_hosted_style_request = \"false\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
        env("CDR_TEST_S3_ENDPOINT"),
        env("CDR_TEST_S3_REGION"),
        env("CDR_TEST_S3_ACCESS_KEY_ID"),
        env("CDR_TEST_S3_SECRET_ACCESS_KEY")
    )
}

fn fixture(kind: Kind, test: &str) -> Fixture {
    let folder = format!("conformance-{kind:?}-{test}")
        .to_lowercase()
        .replace(['(', ')'], "-");
    let (root, url_and_keys, password, local) = match kind {
        Kind::Vsftpd(tls) => (
            env("CDR_TEST_FTPS_ROOT"),
            format!(
                "url = \"ftps://{}@localhost:{}\"\nca_file = \"{}\"{}",
                env("CDR_TEST_FTPS_USER"),
                env("CDR_TEST_FTPS_PORT"),
                env("CDR_TEST_CA_FILE"),
                tls.key()
            ),
            env("CDR_TEST_FTPS_PASSWORD"),
            None,
        ),
        Kind::PureFtpd(tls) => (
            env("CDR_TEST_PUREFTPD_ROOT"),
            format!(
                "url = \"ftps://{}@localhost:{}\"\nca_file = \"{}\"{}",
                env("CDR_TEST_PUREFTPD_USER"),
                env("CDR_TEST_PUREFTPD_PORT"),
                env("CDR_TEST_CA_FILE"),
                tls.key()
            ),
            env("CDR_TEST_PUREFTPD_PASSWORD"),
            None,
        ),
        Kind::Proftpd(tls) => (
            env("CDR_TEST_PROFTPD_ROOT"),
            format!(
                "url = \"ftps://{}@localhost:{}\"\nca_file = \"{}\"{}",
                env("CDR_TEST_PROFTPD_USER"),
                env("CDR_TEST_PROFTPD_PORT"),
                env("CDR_TEST_CA_FILE"),
                tls.key()
            ),
            env("CDR_TEST_PROFTPD_PASSWORD"),
            None,
        ),
        // Chrooted into the served folder: relative paths start there.
        Kind::ProftpdSftp => (
            env("CDR_TEST_PROFTPD_ROOT"),
            format!(
                "url = \"sftp://{}@127.0.0.1:{}\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"",
                env("CDR_TEST_PROFTPD_USER"),
                env("CDR_TEST_PROFTPD_SFTP_PORT"),
                env("CDR_TEST_SFTP_KEY"),
                env("CDR_TEST_PROFTPD_SFTP_KNOWN_HOSTS")
            ),
            String::new(),
            None,
        ),
        Kind::Sftp => (
            env("CDR_TEST_SFTP_ROOT"),
            format!(
                "url = \"sftp://{}@127.0.0.1:{}\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"",
                env("CDR_TEST_SFTP_USER"),
                env("CDR_TEST_SFTP_PORT"),
                env("CDR_TEST_SFTP_KEY"),
                env("CDR_TEST_SFTP_KNOWN_HOSTS")
            ),
            String::new(),
            None,
        ),
        Kind::Bucket => {
            let temp = tempfile::tempdir().unwrap();
            (
                temp.path().display().to_string(),
                bucket_source(&env("CDR_TEST_S3_BUCKET"), BUCKET_ROOT),
                String::new(),
                Some(temp),
            )
        }
        Kind::Local => {
            let temp = tempfile::tempdir().unwrap();
            let root = temp.path().display().to_string();
            (
                root.clone(),
                format!("url = \"file://{root}\""),
                String::new(),
                Some(temp),
            )
        }
    };
    let dir = Path::new(&root).join(&folder);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        format!("[source]\ntimeout_secs = 5\n{url_and_keys}\n[destination]\nurl = \"memory://\"\n");
    let settings = Settings::parse(&text, &|name| {
        (name == "CDR_INGEST_SOURCE_PASSWORD").then(|| password.clone())
    })
    .unwrap_or_else(|issues| panic!("{issues:?}"))
    .source;
    Fixture {
        dir,
        folder,
        settings,
        kind,
        _local_root: local,
    }
}

impl Fixture {
    fn put(&self, name: &str, bytes: &[u8], modified: SystemTime) {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    fn remote(&self, name: &str) -> String {
        format!("{}/{name}", self.folder)
    }

    /// The source, opened on what the fixture's folder holds now (uploaded first, for
    /// a bucket).
    async fn source(&self) -> Box<dyn source::Source> {
        if self.kind == Kind::Bucket {
            crate::s3::upload_tree(&self.dir, &format!("{BUCKET_ROOT}/{}", self.folder)).await;
        }
        source::connect(&self.settings).await.unwrap()
    }

    /// Deletes a file from the folder (and the bucket).
    async fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.join(name)).unwrap();
        if self.kind == Kind::Bucket {
            let key = Key::parse(format!("{BUCKET_ROOT}/{}/{name}", self.folder)).unwrap();
            crate::s3::bucket().delete(&key).await.unwrap();
        }
    }

    /// Checks a file's time: the time it was given, within `slack`; in a bucket, where
    /// an object's time is when it was uploaded, a time within the last minutes.
    fn check_time(&self, actual: Option<DateTime<Utc>>, given: &str, slack: chrono::Duration) {
        let actual = actual.expect("a modification time");
        if self.kind == Kind::Bucket {
            let age = Utc::now() - actual;
            assert!(
                age >= chrono::Duration::seconds(-5) && age < chrono::Duration::minutes(5),
                "{actual} is not the upload's time"
            );
        } else {
            assert!(
                (actual - utc(given)).abs() <= slack,
                "{actual} is not {given}"
            );
        }
    }

    /// The error message must not show the bucket's credentials.
    fn check_no_secret(&self, message: &str) {
        if self.kind == Kind::Bucket {
            assert!(
                !message.contains(&env("CDR_TEST_S3_SECRET_ACCESS_KEY")),
                "{message}"
            );
        }
    }
}

/// Keeps nothing but a count and a hash, so a big download holds no memory here.
struct Digest {
    bytes: u64,
    context: digest::Context,
}

impl Digest {
    fn new() -> Self {
        Digest {
            bytes: 0,
            context: digest::Context::new(&digest::SHA256),
        }
    }
    fn finish(self) -> (u64, Vec<u8>) {
        (self.bytes, self.context.finish().as_ref().to_vec())
    }
}

#[async_trait]
impl ChunkSink for Digest {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.bytes += chunk.len() as u64;
        self.context.update(chunk);
        Ok(())
    }
    fn written(&self) -> u64 {
        self.bytes
    }
}

/// Collects a small download whole.
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

fn at(rfc3339: &str) -> SystemTime {
    SystemTime::from(DateTime::parse_from_rfc3339(rfc3339).unwrap())
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

async fn lists_files_with_sizes_and_times(kind: Kind) {
    let f = fixture(kind, "list");
    f.put("2024-03-01.csv", b"0123456789", at("2024-03-02T01:00:00Z"));
    f.put("old.csv", b"abc", at("2023-01-15T10:30:00Z"));
    // Listings do not descend into subfolders.
    std::fs::create_dir_all(f.dir.join("subfolder")).unwrap();
    f.put("subfolder/inner.csv", b"xyz", at("2024-03-02T01:00:00Z"));
    let mut source = f.source().await;
    let mut listed: Vec<RemoteFile> = Vec::new();
    let count = source
        .list(&f.folder, &mut |file| listed.push(file))
        .await
        .unwrap();
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(count, 2, "{listed:?}");
    assert_eq!(listed[0].path, f.remote("2024-03-01.csv"));
    assert_eq!(listed[0].size, 10);
    assert_eq!(listed[1].size, 3);
    // A listing's times can be coarse (LIST shows only the day for old files).
    f.check_time(
        listed[1].modified,
        "2023-01-15T10:30:00Z",
        chrono::Duration::hours(24),
    );
    if kind == Kind::Bucket {
        // A bucket's listing is exact: what stat says, version tag included.
        for file in &listed {
            assert!(file.etag.is_some(), "{file:?}");
            assert_eq!(source.stat(&file.path).await.unwrap().as_ref(), Some(file));
        }
    }
}

/// A tree listing finds the files of every subfolder at any depth, with the paths a
/// plain listing gives, and the plain listing still stays in its folder.
async fn lists_a_tree_at_every_depth(kind: Kind) {
    let f = fixture(kind, "tree");
    std::fs::create_dir_all(f.dir.join("2024/03/01")).unwrap();
    std::fs::create_dir_all(f.dir.join("empty")).unwrap();
    f.put("top.json", b"{}", at("2024-03-01T10:00:00Z"));
    f.put("2024/a.json", b"{\"a\":1}", at("2024-03-01T10:00:00Z"));
    f.put("2024/03/01/b c.json", b"[]", at("2024-03-01T10:00:00Z"));
    let mut source = f.source().await;
    let mut listed = Vec::new();
    let count = source
        .list_tree(&f.folder, &mut |file| listed.push((file.path, file.size)))
        .await
        .unwrap();
    listed.sort();
    assert_eq!(count, 3, "{listed:?}");
    assert_eq!(
        listed,
        [
            (f.remote("2024/03/01/b c.json"), 2),
            (f.remote("2024/a.json"), 7),
            (f.remote("top.json"), 2),
        ]
    );
    let mut flat = Vec::new();
    source
        .list(&f.folder, &mut |file| flat.push(file.path))
        .await
        .unwrap();
    assert_eq!(flat, [f.remote("top.json")]);
}

async fn stat_gives_exact_size_and_time(kind: Kind) {
    let f = fixture(kind, "stat");
    f.put("old.csv", b"abcdef", at("2023-01-15T10:30:07Z"));
    let mut source = f.source().await;
    let file = source.stat(&f.remote("old.csv")).await.unwrap().unwrap();
    assert_eq!(file.size, 6);
    f.check_time(
        file.modified,
        "2023-01-15T10:30:07Z",
        chrono::Duration::zero(),
    );
    assert_eq!(source.stat(&f.remote("nope.csv")).await.unwrap(), None);
}

async fn reads_whole_and_from_an_offset(kind: Kind) {
    let f = fixture(kind, "read");
    let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    f.put("data.bin", &content, at("2024-03-02T01:00:00Z"));
    let mut source = f.source().await;
    let mut whole = Collect(Vec::new());
    assert_eq!(
        source
            .download(&f.remote("data.bin"), 0, &mut whole)
            .await
            .unwrap(),
        content.len() as u64
    );
    assert!(whole.0 == content);
    let mut tail = Collect(Vec::new());
    source
        .download(&f.remote("data.bin"), 123_457, &mut tail)
        .await
        .unwrap();
    assert!(tail.0 == content[123_457..]);
    // The connection is still usable after both.
    assert!(source.stat(&f.remote("data.bin")).await.unwrap().is_some());
}

async fn missing_and_unreadable_files_give_distinct_errors(kind: Kind) {
    let f = fixture(kind, "errors");
    f.put("secret.csv", b"x", at("2024-03-02T01:00:00Z"));
    std::fs::set_permissions(
        f.dir.join("secret.csv"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut source = f.source().await;
    let missing = source
        .download(&f.remote("missing.csv"), 0, &mut Collect(Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, SourceError::Missing { .. }),
        "{missing:?}"
    );
    assert!(
        missing.to_string().contains("missing.csv\" is not on"),
        "{missing}"
    );
    f.check_no_secret(&missing.to_string());
    // The test runs as root, which reads anything on a local disk; the servers run their
    // sessions as other users, who may not read a root-only file. A bucket grants
    // access per credentials, not by a file's mode.
    if !matches!(kind, Kind::Local | Kind::Bucket) {
        let denied = source
            .download(&f.remote("secret.csv"), 0, &mut Collect(Vec::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(denied, SourceError::PermissionDenied { .. }),
            "{denied:?}"
        );
        assert!(denied.to_string().contains("denies reading"), "{denied}");
    }
}

async fn names_with_spaces_and_non_ascii_work(kind: Kind) {
    let f = fixture(kind, "names");
    let name = "2024_03_01_10_00_00-zoë łukasiewicz-+48 22-101-1.mp3";
    f.put(name, b"ID3 zo\xc3\xab", at("2024-03-02T01:00:00Z"));
    let mut source = f.source().await;
    let mut listed = Vec::new();
    source
        .list(&f.folder, &mut |file| listed.push(file.path))
        .await
        .unwrap();
    assert_eq!(listed, [f.remote(name)]);
    let mut body = Collect(Vec::new());
    source
        .download(&f.remote(name), 0, &mut body)
        .await
        .unwrap();
    assert_eq!(body.0, b"ID3 zo\xc3\xab");
}

async fn a_link_to_a_file_lists_as_that_file(kind: Kind) {
    // A folder and a bucket have no links of their own (a folder follows them itself).
    if matches!(kind, Kind::Local | Kind::Bucket) {
        return;
    }
    let f = fixture(kind, "links");
    f.put("2024-03-01.csv", b"0123456789", at("2024-03-02T01:00:00Z"));
    std::os::unix::fs::symlink("2024-03-01.csv", f.dir.join("today.csv")).unwrap();
    std::os::unix::fs::symlink("gone.csv", f.dir.join("broken.csv")).unwrap();
    std::fs::create_dir_all(f.dir.join("sub")).unwrap();
    std::os::unix::fs::symlink("sub", f.dir.join("folder-link")).unwrap();
    let mut source = f.source().await;
    let mut listed = Vec::new();
    source
        .list(&f.folder, &mut |file| listed.push((file.path, file.size)))
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            (f.remote("2024-03-01.csv"), 10),
            (f.remote("today.csv"), 10)
        ]
    );
}

async fn an_empty_folder_lists_nothing_and_a_missing_one_is_an_error(kind: Kind) {
    let f = fixture(kind, "empty");
    let mut source = f.source().await;
    assert_eq!(
        source
            .list(&f.folder, &mut |_| panic!("nothing to list"))
            .await
            .unwrap(),
        0
    );
    if kind != Kind::Bucket {
        let missing = source
            .list(&format!("{}/nope", f.folder), &mut |_| {})
            .await;
        assert!(missing.is_err(), "{missing:?}");
        return;
    }
    // A bucket has no folders, only keys: a missing folder is an empty one. What can
    // be missing is the bucket, and the error says so and what to check.
    let mut settings = f.settings.clone();
    let SourceEndpoint::Bucket(bucket) = &mut settings.endpoint else {
        unreachable!()
    };
    bucket.url = url::Url::parse("s3://no-such-source-bucket/drop").unwrap();
    let mut source = source::connect(&settings).await.unwrap();
    let missing = source
        .list("CDRs", &mut |_| {})
        .await
        .expect_err("a missing bucket");
    let message = missing.to_string();
    assert!(
        message.contains("s3://no-such-source-bucket/drop/CDRs")
            && message.contains("does not exist (check source.url)"),
        "{message}"
    );
    f.check_no_secret(&message);
}

async fn a_200_mb_file_streams_whole(kind: Kind) {
    let f = fixture(kind, "big");
    let block: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut expected = digest::Context::new(&digest::SHA256);
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(File::create(f.dir.join("big.mp3")).unwrap());
        for i in 0..200u8 {
            let mut chunk = block.clone();
            chunk[0] = i;
            file.write_all(&chunk).unwrap();
            expected.update(&chunk);
        }
    }
    let mut source = f.source().await;
    let mut sink = Digest::new();
    source
        .download(&f.remote("big.mp3"), 0, &mut sink)
        .await
        .unwrap();
    let (bytes, hash) = sink.finish();
    assert_eq!(bytes, 200 * 1024 * 1024);
    assert_eq!(hash, expected.finish().as_ref());
    f.remove("big.mp3").await;
}

async fn a_silent_server_times_out(kind: Kind) {
    if kind == Kind::Local {
        return;
    }
    // Accepts the connection and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
    let mut settings = fixture(kind, "silent").settings;
    settings.timeout = Duration::from_secs(1);
    match &mut settings.endpoint {
        SourceEndpoint::Ftps(ftps) => ftps.port = port,
        SourceEndpoint::Sftp(sftp) => sftp.port = port,
        SourceEndpoint::Bucket(bucket) => {
            bucket
                .options
                .insert("endpoint".into(), format!("http://127.0.0.1:{port}"));
        }
        SourceEndpoint::LocalDir(_) | SourceEndpoint::None => unreachable!(),
    }
    let started = std::time::Instant::now();
    // Opening a bucket sends nothing: its first request is what goes unanswered.
    let error = match source::connect(&settings).await {
        Ok(mut source) => source.stat("CDRs/x.csv").await.err(),
        Err(e) => Some(e),
    }
    .expect("a timeout");
    assert!(matches!(error, SourceError::Timeout { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout was not applied"
    );
    drop(holder.join());
}

macro_rules! conformance {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[tokio::test]
            async fn lists_files_with_sizes_and_times() { super::lists_files_with_sizes_and_times($kind).await }
            #[tokio::test]
            async fn lists_a_tree_at_every_depth() { super::lists_a_tree_at_every_depth($kind).await }
            #[tokio::test]
            async fn stat_gives_exact_size_and_time() { super::stat_gives_exact_size_and_time($kind).await }
            #[tokio::test]
            async fn reads_whole_and_from_an_offset() { super::reads_whole_and_from_an_offset($kind).await }
            #[tokio::test]
            async fn missing_and_unreadable_files_give_distinct_errors() { super::missing_and_unreadable_files_give_distinct_errors($kind).await }
            #[tokio::test]
            async fn names_with_spaces_and_non_ascii_work() { super::names_with_spaces_and_non_ascii_work($kind).await }
            #[tokio::test]
            async fn a_link_to_a_file_lists_as_that_file() { super::a_link_to_a_file_lists_as_that_file($kind).await }
            #[tokio::test]
            async fn an_empty_folder_lists_nothing_and_a_missing_one_is_an_error() { super::an_empty_folder_lists_nothing_and_a_missing_one_is_an_error($kind).await }
            #[tokio::test]
            async fn a_200_mb_file_streams_whole() { super::a_200_mb_file_streams_whole($kind).await }
            #[tokio::test]
            async fn a_silent_server_times_out() { super::a_silent_server_times_out($kind).await }
        }
    )*};
}

conformance! {
    vsftpd => Kind::Vsftpd(Tls::Newest),
    pure_ftpd => Kind::PureFtpd(Tls::Newest),
    proftpd => Kind::Proftpd(Tls::Newest),
    vsftpd_tls12 => Kind::Vsftpd(Tls::V12),
    pure_ftpd_tls12 => Kind::PureFtpd(Tls::V12),
    proftpd_tls12 => Kind::Proftpd(Tls::V12),
    sftp => Kind::Sftp,
    proftpd_sftp => Kind::ProftpdSftp,
    local_folder => Kind::Local,
    bucket => Kind::Bucket,
}
