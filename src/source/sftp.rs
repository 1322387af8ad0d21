//! SFTP over SSH (libssh2 through `ssh2`), for provider accounts that deliver that way.
//!
//! The server's host key is checked against a `known_hosts` file (hashed entries and
//! `[host]:port` supported); an unknown or changed key is refused with its type and
//! SHA-256 fingerprint. libssh2 is blocking, so every call runs on a blocking thread,
//! bounded by the session's own timeout.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::DateTime;
use ssh2::{
    CheckResult, ErrorCode, FileStat, HashType, HostKeyType, KnownHostFileKind, Session, Sftp,
};
use tokio::sync::mpsc;

use super::{ChunkSink, RemoteFile, Source, SourceError, ssh_offer};
use crate::config::{SftpAuth, SftpSettings};

/// Bytes read at a time: libssh2 is slow with small reads.
const READ_CHUNK: usize = 256 * 1024;
/// libssh2's "no such file" and "permission denied" SFTP status codes.
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
/// libssh2's "end of directory" signal from `readdir`.
const ERROR_FILE: i32 = -16;

/// A logged-in SFTP session.
pub struct SftpSource {
    /// Dropped first: closes the SFTP channel.
    sftp: Arc<Sftp>,
    /// Dropped last: says goodbye and closes the connection.
    _session: Disconnecting,
    endpoint: Arc<str>,
    /// Most entries one listing may have.
    max_listing_entries: u64,
}

/// The SSH session, which sends an SSH disconnect when dropped: without one, OpenSSH
/// logs the end of every session as `Connection closed by …` (ProFTPD's mod_sftp as
/// `Connection reset by peer` or `Broken pipe`).
struct Disconnecting {
    session: Session,
    /// The session's connection, to close gracefully after the disconnect.
    socket: Option<TcpStream>,
}

/// How long a closing session waits for the server to close its side.
const LINGER: Duration = Duration::from_secs(2);

impl Drop for Disconnecting {
    fn drop(&mut self) {
        // One small packet, bounded by the session's timeout.
        if let Err(e) = self.session.disconnect(None, "cdr-ingest is done", None) {
            tracing::debug!(error = %e, "the SSH disconnect was not sent");
        }
        // Closing a socket with unread data in it resets the connection: the server's
        // answer to the channel's close, still arriving, would be lost with our
        // disconnect, and mod_sftp logs `Broken pipe`. So our side is shut for writing
        // and what the server still sends is read until it closes (a round trip).
        if let Some(socket) = self.socket.take() {
            linger(socket);
        }
    }
}

fn linger(mut socket: TcpStream) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + LINGER;
    // libssh2 made the socket non-blocking (for this duplicate too): reads here wait.
    if socket.shutdown(std::net::Shutdown::Write).is_err() || socket.set_nonblocking(false).is_err()
    {
        return;
    }
    let mut buffer = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

impl SftpSource {
    /// Connects, verifies the host key, logs in and opens the SFTP channel.
    pub async fn connect(
        settings: &SftpSettings,
        timeout: Duration,
        max_listing_entries: u64,
    ) -> Result<SftpSource, SourceError> {
        if settings.insecure_accept_any_host_key {
            tracing::warn!(
                endpoint = %format_args!("{}:{}", settings.host, settings.port),
                "source.insecure_accept_any_host_key is on: the server's identity is NOT checked, so the login can be intercepted"
            );
        }
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || {
            connect_blocking(&settings, timeout, max_listing_entries)
        })
        .await
        .map_err(|e| SourceError::Ssh {
            endpoint: "sftp".into(),
            detail: e.to_string(),
        })?
    }

    /// Runs a blocking SFTP call on a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Sftp) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let sftp = Arc::clone(&self.sftp);
        let endpoint = Arc::clone(&self.endpoint);
        tokio::task::spawn_blocking(move || call(&sftp))
            .await
            .map_err(|e| SourceError::Ssh {
                endpoint: endpoint.to_string(),
                detail: e.to_string(),
            })?
    }
}

fn connect_blocking(
    settings: &SftpSettings,
    timeout: Duration,
    max_listing_entries: u64,
) -> Result<SftpSource, SourceError> {
    let endpoint = format!("{}:{}", settings.host, settings.port);
    let connect_error = |detail: String| SourceError::Connect {
        endpoint: endpoint.clone(),
        detail,
    };
    let ssh_error = |e: ssh2::Error| classify(&endpoint, "connecting", e);
    let address = (settings.host.as_str(), settings.port)
        .to_socket_addrs()
        .map_err(|e| connect_error(e.to_string()))?
        .next()
        .ok_or_else(|| connect_error("the host name has no address".into()))?;
    let tcp = TcpStream::connect_timeout(&address, timeout).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => SourceError::Timeout {
            endpoint: endpoint.clone(),
            during: "connecting".into(),
            seconds: timeout.as_secs(),
        },
        _ => connect_error(e.to_string()),
    })?;
    // libssh2 writes each SFTP request as its own small packet and waits for the
    // answer: with Nagle's algorithm on, many wait for a delayed ACK first (measured:
    // 2,000 files of 256 KiB took 38 s instead of 3.4 s).
    tcp.set_nodelay(true)
        .map_err(|e| connect_error(e.to_string()))?;
    // Wrapped at once, so a refused login or host key also ends with a disconnect.
    let mut owned = Disconnecting {
        session: Session::new().map_err(ssh_error)?,
        socket: tcp.try_clone().ok(),
    };
    let session = &mut owned.session;
    session.set_tcp_stream(tcp);
    session.set_timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32);
    session
        .handshake()
        .map_err(|e| handshake_error(&endpoint, address, timeout, e))?;
    if !settings.insecure_accept_any_host_key {
        verify_host_key(session, settings, &endpoint)?;
    }
    crate::crash::pause("login", &endpoint);
    // Asked first (it is a login attempt with no method), so a refusal can say which
    // methods the server takes; empty if it accepts the user without any.
    let offered = session
        .auth_methods(&settings.user)
        .map(str::to_string)
        .unwrap_or_default();
    let (login, method) = match &settings.auth {
        SftpAuth::Password(password) => (
            session.userauth_password(&settings.user, password.expose()),
            "password",
        ),
        SftpAuth::Key { file, passphrase } => (
            session.userauth_pubkey_file(
                &settings.user,
                None,
                file,
                passphrase.as_ref().map(|p| p.expose()),
            ),
            "publickey",
        ),
    };
    login
        .or_else(|e| {
            if session.authenticated() {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| {
            // libssh2 reports a public-key reply that never came (the connection broke)
            // as "Waiting for … USERAUTH response" under an authentication code.
            if is_transient(e.code()) || e.message().starts_with("Waiting for") {
                SourceError::Interrupted {
                    endpoint: endpoint.clone(),
                    during: "logging in".into(),
                    detail: e.message().to_string(),
                }
            } else {
                SourceError::LoginRefused {
                    endpoint: endpoint.clone(),
                    user: settings.user.clone(),
                    detail: login_refusal(e.message(), method, &offered),
                }
            }
        })?;
    let sftp = session.sftp().map_err(|e| subsystem_error(&endpoint, e))?;
    Ok(SftpSource {
        sftp: Arc::new(sftp),
        _session: owned,
        endpoint: endpoint.into(),
        max_listing_entries,
    })
}

/// A failed handshake; when the two sides found no algorithm in common, which ones
/// each side has.
fn handshake_error(
    endpoint: &str,
    address: std::net::SocketAddr,
    timeout: Duration,
    error: ssh2::Error,
) -> SourceError {
    // LIBSSH2_ERROR_KEX_FAILURE: "Unable to exchange encryption keys".
    if error.code() == ErrorCode::Session(-5) {
        let missing = ssh_offer::fetch(address, timeout)
            .map(|offer| ssh_offer::mismatches(&offer))
            .unwrap_or_default();
        if !missing.is_empty() {
            return SourceError::Ssh {
                endpoint: endpoint.to_string(),
                detail: format!(
                    "the key exchange failed: {}; ask the provider to enable one this client supports",
                    missing.join("; ")
                ),
            };
        }
    }
    classify(endpoint, "connecting", error)
}

/// Why a login was refused, with the methods the server offers when ours is not one.
fn login_refusal(message: &str, method: &str, offered: &str) -> String {
    if offered.is_empty() || offered.split(',').any(|m| m == method) {
        return message.to_string();
    }
    let instead = if method == "password" {
        "set source.key_file to a private key the provider has installed for this user"
    } else {
        "ask the provider to accept this key, or use a password"
    };
    format!("{message}: the server offers only {offered} logins, not {method}; {instead}")
}

/// The SFTP channel or subsystem could not start although the login worked.
fn subsystem_error(endpoint: &str, error: ssh2::Error) -> SourceError {
    if is_transient(error.code()) {
        // The connection broke, not the subsystem: retried like any other break.
        return classify(endpoint, "starting the SFTP subsystem", error);
    }
    SourceError::Ssh {
        endpoint: endpoint.to_string(),
        detail: format!(
            "the login worked but the SFTP subsystem could not start ({}); ask the provider to check the server's log and its SFTP setup: the `Subsystem sftp` line of sshd_config, and with a ChrootDirectory that the folder and every parent are owned by root and writable by no one else",
            error.message()
        ),
    }
}

fn verify_host_key(
    session: &Session,
    settings: &SftpSettings,
    endpoint: &str,
) -> Result<(), SourceError> {
    let known_hosts = settings.known_hosts.display().to_string();
    let (key, key_type) = session.host_key().ok_or_else(|| SourceError::Ssh {
        endpoint: endpoint.to_string(),
        detail: "the server sent no host key".into(),
    })?;
    let fingerprint = session
        .host_key_hash(HashType::Sha256)
        .map(|hash| format!("SHA256:{}", base64_unpadded(hash)))
        .unwrap_or_default();
    let key_type = key_type_name(key_type).to_string();
    let mut known = session
        .known_hosts()
        .map_err(|e| classify(endpoint, "reading known_hosts", e))?;
    if let Err(e) = known.read_file(&settings.known_hosts, KnownHostFileKind::OpenSSH) {
        return Err(SourceError::Ssh {
            endpoint: endpoint.to_string(),
            detail: format!(
                "cannot read source.known_hosts {known_hosts} ({}); the server presents {key_type} {fingerprint}, trust it with: ssh-keyscan -p {} {} >> {known_hosts}",
                e.message(),
                settings.port,
                settings.host
            ),
        });
    }
    match known.check_port(&settings.host, settings.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SourceError::HostKeyChanged {
            endpoint: endpoint.to_string(),
            key_type,
            fingerprint,
            known_hosts,
        }),
        CheckResult::NotFound | CheckResult::Failure => Err(SourceError::HostKeyUnknown {
            endpoint: endpoint.to_string(),
            host: settings.host.clone(),
            port: settings.port,
            key_type,
            fingerprint,
            known_hosts,
        }),
    }
}

fn key_type_name(key_type: HostKeyType) -> &'static str {
    match key_type {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown key type",
    }
}

/// Base64 without padding, as `ssh-keygen -l` prints fingerprints.
fn base64_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// libssh2's errors of a connection that broke (closed, reset, unanswered): banner
/// receive/send (-2, -3), socket send (-7), disconnect (-13), channel closed or at EOF
/// (-26, -27), socket timeout (-30), socket receive (-43), bad socket (-45); and the
/// SFTP statuses "no connection" and "connection lost" (6, 7).
fn is_transient(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Session(-2 | -3 | -7 | -13 | -26 | -27 | -30 | -43 | -45)
            | ErrorCode::SFTP(6 | 7)
    )
}

/// Names the error by what the operator can do about it.
fn classify(endpoint: &str, during: &str, error: ssh2::Error) -> SourceError {
    match error.code() {
        // LIBSSH2_ERROR_TIMEOUT
        ErrorCode::Session(-9) => SourceError::Timeout {
            endpoint: endpoint.to_string(),
            during: during.to_string(),
            seconds: 0,
        },
        code if is_transient(code) => SourceError::Interrupted {
            endpoint: endpoint.to_string(),
            during: during.to_string(),
            detail: error.message().to_string(),
        },
        _ => SourceError::Ssh {
            endpoint: endpoint.to_string(),
            detail: format!("{during}: {}", error.message()),
        },
    }
}

fn sftp_error(endpoint: &str, action: &'static str, path: &str, error: ssh2::Error) -> SourceError {
    let (endpoint, path) = (endpoint.to_string(), path.to_string());
    match (error.code(), action) {
        (ErrorCode::SFTP(FX_NO_SUCH_FILE), "read") => SourceError::Missing { endpoint, path },
        (ErrorCode::SFTP(FX_PERMISSION_DENIED), "read") => SourceError::PermissionDenied {
            endpoint,
            path,
            detail: error.message().to_string(),
        },
        (ErrorCode::SFTP(FX_NO_SUCH_FILE | FX_PERMISSION_DENIED), _) => SourceError::Refused {
            endpoint,
            action,
            path,
            detail: error.message().to_string(),
        },
        _ => classify(&endpoint, action, error),
    }
}

fn remote_file(path: String, stat: &FileStat) -> RemoteFile {
    RemoteFile {
        path,
        size: stat.size.unwrap_or(0),
        modified: stat
            .mtime
            .and_then(|t| DateTime::from_timestamp(t as i64, 0)),
        etag: None,
    }
}

impl SftpSource {
    /// The files in `folder`, and with `descend` those of its subfolders at any depth.
    async fn list_walk(
        &mut self,
        folder: &str,
        descend: bool,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        // Entries cross from the blocking reader in small batches, never the whole folder.
        let (tx, rx) = mpsc::channel::<RemoteFile>(256);
        let (folder_name, endpoint) = (folder.to_string(), Arc::clone(&self.endpoint));
        let max_entries = self.max_listing_entries;
        let reader = self.call(move |sftp| {
            let mut to_visit = vec![folder_name.trim_end_matches('/').to_string()];
            while let Some(folder_name) = to_visit.pop() {
                let mut dir = sftp
                    .opendir(Path::new(&folder_name))
                    .map_err(|e| sftp_error(&endpoint, "list", &folder_name, e))?;
                for entries in 1.. {
                    if entries > max_entries {
                        return Err(SourceError::Protocol {
                            endpoint: endpoint.to_string(),
                            detail: format!(
                                "its listing of {folder_name:?} goes on past {max_entries} entries (a listing without end?); if the folder really holds more, raise source.max_listing_entries"
                            ),
                        });
                    }
                    match dir.readdir() {
                        Ok((name, stat)) => {
                            let name = name.to_string_lossy();
                            let path = format!("{folder_name}/{name}");
                            // A listing shows a link itself: what it leads to is asked
                            // for (links to folders are not followed down).
                            let stat = if stat.file_type().is_symlink() {
                                match sftp.stat(Path::new(&path)) {
                                    Ok(target) if target.is_file() => target,
                                    _ => continue, // a broken link, or one to a folder
                                }
                            } else {
                                stat
                            };
                            if stat.is_file() {
                                if tx.blocking_send(remote_file(path, &stat)).is_err() {
                                    return Ok(());
                                }
                            } else if descend && stat.is_dir() && name != "." && name != ".." {
                                to_visit.push(path);
                            }
                        }
                        Err(e) if e.code() == ErrorCode::Session(ERROR_FILE) => break,
                        Err(e) => return Err(sftp_error(&endpoint, "list", &folder_name, e)),
                    }
                }
            }
            Ok(())
        });
        let consumer = async {
            let mut rx = rx;
            let mut files = 0;
            while let Some(file) = rx.recv().await {
                each(file);
                files += 1;
            }
            files
        };
        let (read, files) = tokio::join!(reader, consumer);
        read.map(|()| files)
    }
}

#[async_trait]
impl Source for SftpSource {
    async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError> {
        let (path, endpoint) = (path.to_string(), Arc::clone(&self.endpoint));
        self.call(move |sftp| match sftp.stat(Path::new(&path)) {
            Ok(stat) if stat.is_file() => Ok(Some(remote_file(path, &stat))),
            Ok(_) => Ok(None),
            Err(e) if e.code() == ErrorCode::SFTP(FX_NO_SUCH_FILE) => Ok(None),
            Err(e) => Err(sftp_error(&endpoint, "stat", &path, e)),
        })
        .await
    }

    async fn list(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.list_walk(folder, false, each).await
    }

    async fn list_tree(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
    ) -> Result<u64, SourceError> {
        self.list_walk(folder, true, each).await
    }

    async fn download(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let (path_name, endpoint) = (path.to_string(), Arc::clone(&self.endpoint));
        let reader = self.call(move |sftp| {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = sftp
                .open(Path::new(&path_name))
                .map_err(|e| sftp_error(&endpoint, "read", &path_name, e))?;
            let broke_off = |e: std::io::Error| SourceError::Transfer {
                endpoint: endpoint.to_string(),
                path: path_name.clone(),
                detail: e.to_string(),
            };
            file.seek(SeekFrom::Start(offset)).map_err(broke_off)?;
            let mut buffer = vec![0u8; READ_CHUNK];
            loop {
                let n = file.read(&mut buffer).map_err(broke_off)?;
                if n == 0
                    || tx
                        .blocking_send(Bytes::copy_from_slice(&buffer[..n]))
                        .is_err()
                {
                    return Ok(());
                }
            }
        });
        let writer = async {
            // Owning the receiver here means that if the sink fails, the reader's next
            // send fails too and it stops, instead of waiting for room for ever.
            let mut rx = rx;
            let mut copied = 0u64;
            while let Some(chunk) = rx.recv().await {
                sink.write(&chunk).await.map_err(|e| SourceError::Sink {
                    path: path.to_string(),
                    detail: e.to_string(),
                })?;
                copied += chunk.len() as u64;
            }
            Ok(copied)
        };
        let (read, written) = tokio::join!(reader, writer);
        read?;
        written
    }

    /// Closes the channel and disconnects (what dropping does) on a blocking thread,
    /// as libssh2 waits for the channel's close to be sent.
    async fn close(self: Box<Self>) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_unpadded_base64() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foobar"), "Zm9vYmFy");
    }
}
