//! Where the drop is read from: a small trait every protocol implements, plus the
//! error type whose variants say what went wrong and what to check.

pub mod bucket;
mod ftp_listing;
pub mod ftps;
mod ftps_stream;
pub mod local_dir;
pub mod sftp;
mod ssh_offer;
mod tls;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::config::{SourceEndpoint, SourceSettings};

/// A file on the source with what the ledger compares: size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path (relative to the login folder, or absolute), `/`-separated.
    pub path: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    /// The object's version tag, where the source has one (a bucket); `None` for
    /// FTPS, SFTP and a folder. A file whose tag changes during its download is
    /// refused as still uploading, as one whose size or time changes is.
    pub etag: Option<String>,
}

/// Receives a download chunk by chunk, so no file is ever held in memory whole.
#[async_trait]
pub trait ChunkSink: Send {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()>;
    /// Bytes taken so far: where a broken download resumes.
    fn written(&self) -> u64;
}

/// A connected source. Methods take `&mut self`: one connection does one thing at a time.
/// A source that lists one folder at a time, so that every such source walks a tree
/// the same way ([`walk_tree`]).
#[async_trait]
pub(crate) trait FolderLister: Send {
    /// The files directly in `folder`; its subfolders go to `subfolders` if given.
    async fn list_folder(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
        subfolders: Option<&mut Vec<String>>,
    ) -> Result<u64, SourceError>;
}

/// Every file under `folder` at any depth, one folder at a time.
pub(crate) async fn walk_tree(
    source: &mut dyn FolderLister,
    folder: &str,
    each: &mut (dyn FnMut(RemoteFile) + Send),
) -> Result<u64, SourceError> {
    let mut to_visit = vec![folder.trim_end_matches('/').to_string()];
    let mut files = 0;
    while let Some(next) = to_visit.pop() {
        files += source.list_folder(&next, each, Some(&mut to_visit)).await?;
    }
    Ok(files)
}

#[async_trait]
pub trait Source: Send {
    /// Size and time of `path`, or `None` when it is not there.
    async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError>;
    /// Calls `each` with every file in `folder` (not recursive) as the listing arrives,
    /// so a folder of hundreds of thousands of files is never held whole. Returns how
    /// many files there were.
    async fn list(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError>;
    /// Calls `each` with every file under `folder` at any depth (paths as `list` gives
    /// them), as the listing arrives. Folders are visited one after another and only
    /// the names of those still to visit are held, so memory follows the tree's
    /// breadth, never its number of files. Returns how many files there were.
    async fn list_tree(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError>;
    /// Streams `path` from byte `offset` on into `sink`, returning the number of bytes
    /// copied. A non-zero offset resumes a download that broke off.
    async fn download(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError>;
    /// Ends the session the way the protocol says goodbye (FTP `QUIT` and a TLS
    /// close_notify, an SSH disconnect), so the provider's server logs a clean end
    /// rather than a reset. Best effort, bounded by the timeout: the work is done
    /// either way. Dropping a source without this still closes it, less politely
    /// (`Drop` cannot wait for the server).
    async fn close(self: Box<Self>) {}
}

/// What went wrong talking to the source; each message names the server and what to check.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error(
        "cannot connect to {endpoint}: {detail}; check source.url's host and port and that this machine can reach it"
    )]
    Connect { endpoint: String, detail: String },
    #[error(
        "{endpoint} did not answer within {seconds} s while {during}; check the network, or raise source.timeout_secs"
    )]
    Timeout {
        endpoint: String,
        during: String,
        seconds: u64,
    },
    #[error(
        "TLS verification of {endpoint} failed for the name {name:?}: {detail}; if the provider uses a private CA, set source.ca_file to its certificate (PEM)"
    )]
    Tls {
        endpoint: String,
        name: String,
        detail: String,
    },
    #[error(
        "{endpoint} refused the login of user {user:?} ({detail}); check the user name in source.url and the password"
    )]
    LoginRefused {
        endpoint: String,
        user: String,
        detail: String,
    },
    #[error("{path:?} is not on {endpoint}")]
    Missing { endpoint: String, path: String },
    #[error(
        "{endpoint} denies reading {path:?} ({detail}); ask the provider to fix the file's permissions for this account"
    )]
    PermissionDenied {
        endpoint: String,
        path: String,
        detail: String,
    },
    #[error("{endpoint} refused {action} {path:?}: {detail}")]
    Refused {
        endpoint: String,
        action: &'static str,
        path: String,
        detail: String,
    },
    #[error("the transfer of {path:?} from {endpoint} broke off: {detail}")]
    Transfer {
        endpoint: String,
        path: String,
        detail: String,
    },
    /// The session broke (the server closed or reset it, answered a reconnect with a
    /// plain-text reply inside TLS, or said to try later: FTP 421, 425, 426, 450).
    #[error("the session with {endpoint} broke off while {during}: {detail}")]
    Interrupted {
        endpoint: String,
        during: String,
        detail: String,
    },
    /// The download's receiver failed (the parser stopped, the upload failed): the
    /// source is not at fault, and its own error is reported where it happened.
    #[error("could not take the data of {path:?}: {detail}")]
    Sink { path: String, detail: String },
    /// The destination, where logins are counted (`source.max_connections`), failed.
    #[error("cannot take a connection slot (source.max_connections) in the destination: {detail}")]
    Slot { detail: String },
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    #[error(
        "{endpoint} presents a host key that is not in {known_hosts}: {key_type} {fingerprint}. If the provider confirms this fingerprint, trust it with: ssh-keyscan -p {port} {host} >> {known_hosts}"
    )]
    HostKeyUnknown {
        endpoint: String,
        host: String,
        port: u16,
        key_type: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error(
        "the host key of {endpoint} has CHANGED: it now presents {key_type} {fingerprint}, which does not match {known_hosts}. This can be an attack; if the provider confirms a new key, replace its line in {known_hosts}"
    )]
    HostKeyChanged {
        endpoint: String,
        key_type: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("{endpoint}: {detail}")]
    Ssh { endpoint: String, detail: String },
    /// The server sent something its protocol does not allow (garbage, an endless line,
    /// an endless listing): retrying will not help.
    #[error(
        "{endpoint} does not behave like a working server: {detail}; ask the provider to check it"
    )]
    Protocol { endpoint: String, detail: String },
    /// A bucket source's request failed (after the store's own retries); `location`
    /// is the bucket, prefix and key, `advice` what to check.
    #[error("cannot {action} {location}: {advice}")]
    Store {
        action: &'static str,
        location: String,
        advice: String,
    },
}

impl SourceError {
    /// Whether the error may pass if the operation is tried again over a new
    /// connection: the connection is unusable afterwards. Everything else (a refused
    /// login, an untrusted certificate or host key, a missing or unreadable file) fails
    /// at once with its own message. The one place that decides what is retried.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Connect { .. }
                | SourceError::Timeout { .. }
                | SourceError::Transfer { .. }
                | SourceError::Interrupted { .. }
        )
    }
}

/// `future`, or a [`SourceError::Timeout`] naming `endpoint` once `limit` has passed:
/// the time limit of each call of the sources whose clients have none of their own
/// (FTPS, buckets). `during` says what was being waited for; it is only made when the
/// limit is reached, as it wraps every chunk of a download.
pub(crate) async fn time_limited<T>(
    limit: std::time::Duration,
    endpoint: &str,
    during: impl FnOnce() -> String,
    future: impl Future<Output = T>,
) -> Result<T, SourceError> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| SourceError::Timeout {
            endpoint: endpoint.to_string(),
            during: during(),
            seconds: limit.as_secs(),
        })
}

/// Opens the source the settings describe.
pub async fn connect(settings: &SourceSettings) -> Result<Box<dyn Source>, SourceError> {
    match &settings.endpoint {
        SourceEndpoint::Ftps(ftps) => Ok(Box::new(
            ftps::FtpsSource::connect(ftps, settings.timeout, settings.max_listing_entries).await?,
        )),
        SourceEndpoint::Sftp(sftp) => Ok(Box::new(
            sftp::SftpSource::connect(sftp, settings.timeout, settings.max_listing_entries).await?,
        )),
        SourceEndpoint::LocalDir(root) => {
            Ok(Box::new(local_dir::LocalDirSource::new(root.clone())))
        }
        SourceEndpoint::Bucket(bucket) => Ok(Box::new(bucket::BucketSource::open(
            bucket,
            settings.timeout,
        )?)),
        SourceEndpoint::None => Err(SourceError::Connect {
            endpoint: settings.endpoint(),
            detail: "the configuration has no [source] url".into(),
        }),
    }
}
