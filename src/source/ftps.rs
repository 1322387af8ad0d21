//! Explicit FTP over TLS (`AUTH TLS`), as the provider's drop server speaks it.
//!
//! Every call is bounded by the configured timeout (suppaftp has none of its own).
//! Data connections reuse the control connection's TLS session, which vsftpd's
//! `require_ssl_reuse=YES` demands; rustls does this through its session cache.
//!
//! suppaftp speaks the control connection; the data connections are ours, because
//! each recording's round trips decide a nightly copy from a server 10–80 ms away.
//! suppaftp connects the data socket before it sends `RETR` and starts TLS only after
//! the `150`, and waits for the `226` before the next command: six round trips a file.
//! Here a file costs four: the data connection's TCP connect and TLS handshake run
//! alongside `RETR` and its `150`; then the data; then our close_notify with the next
//! file's `EPSV` right behind it, so that the `226` (which vsftpd sends only once it
//! has read the close_notify) and the `229` come back together. The port of that
//! `229` waits in [`FtpsSource::passive`] for the next data command.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use rustls::pki_types::ServerName;
use suppaftp::tokio::ImplAsyncFtpStream;
use suppaftp::types::{FileType, Response};
use suppaftp::{FtpError, Mode, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::ftp_listing::{self, Entry};
use super::ftps_stream::{FlushingConnector, FlushingStream};
use super::{ChunkSink, FolderLister, RemoteFile, Source, SourceError, tls};
use crate::config::FtpsSettings;

/// Bytes read from the data connection at a time.
const READ_CHUNK: usize = 256 * 1024;
/// Longest listing line taken: a name is at most 255 bytes on every common file
/// system, so a longer line is a server sending garbage or a line without end.
const MAX_LISTING_LINE: usize = 16 * 1024;

type TlsStream = FlushingStream<tokio_rustls::client::TlsStream<TcpStream>>;
type FtpsStream = ImplAsyncFtpStream<TlsStream>;

/// A logged-in FTPS connection.
pub struct FtpsSource {
    ftp: FtpsStream,
    server: Server,
    /// Opens the data connections: the control connection's TLS configuration, whose
    /// session cache lets them resume its session.
    tls: tokio_rustls::TlsConnector,
    /// The name the certificate is checked against.
    name: ServerName<'static>,
    /// The control connection's peer: EPSV gives only a port on it.
    data_host: IpAddr,
    /// The port of an `EPSV` already answered (sent right behind the last transfer's
    /// close_notify), for the next data command.
    passive: Option<u16>,
    /// Whether the `EPSV` is sent before the last transfer's `226` is read; off for the
    /// rest of the session once a server answers it with anything but `229`.
    pipelining: bool,
    /// A data command's final reply still to read (its transfer was given up): read
    /// before the next command, so that replies stay with their commands.
    reply_owed: bool,
    /// The login folder, which every relative path is resolved against.
    home: String,
    /// Whether the server answers `MLSD` (exact times, in UTC); `None` until tried.
    mlsd: Option<bool>,
    /// Most lines one listing may have.
    max_listing_entries: u64,
    /// What a download reads into, made once for the connection rather than for each
    /// file: a fresh 256 KiB buffer a file costs its zeroing and page faults.
    buffer: Vec<u8>,
}

impl FtpsSource {
    /// Connects, upgrades to TLS, verifies the certificate and logs in.
    pub async fn connect(
        settings: &FtpsSettings,
        timeout: Duration,
        max_listing_entries: u64,
    ) -> Result<FtpsSource, SourceError> {
        if settings.insecure_skip_tls_verify {
            tracing::warn!(
                endpoint = %format_args!("{}:{}", settings.host, settings.port),
                "source.insecure_skip_tls_verify is on: the server's certificate is NOT verified, so the password can be intercepted"
            );
        }
        let endpoint = format!("{}:{}", settings.host, settings.port);
        let bounded = Server {
            endpoint: endpoint.clone(),
            timeout,
        };
        let config = tls::client_config(
            settings.ca_file.as_deref(),
            settings.insecure_skip_tls_verify,
            settings.tls_max_version,
        )?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
        let connector = FlushingConnector(tls.clone());
        let name = ServerName::try_from(settings.host.clone()).map_err(|e| SourceError::Tls {
            endpoint: endpoint.clone(),
            name: settings.host.clone(),
            detail: e.to_string(),
        })?;

        let connect_error = |detail: String| SourceError::Connect {
            endpoint: endpoint.clone(),
            detail,
        };
        let tcp = bounded
            .run(
                "connecting",
                TcpStream::connect((settings.host.as_str(), settings.port)),
            )
            .await?
            .map_err(|e| connect_error(e.to_string()))?;
        let data_host = tcp
            .peer_addr()
            .map_err(|e| connect_error(e.to_string()))?
            .ip();
        // Commands and replies are small: sent at once, not held for the next packet.
        let _ = tcp.set_nodelay(true);
        // The greeting's start, looked at without taking it, to say what a server that
        // is not an FTP server sent instead.
        let mut start = [0u8; 80];
        let seen = bounded
            .run("waiting for the FTP greeting", tcp.peek(&mut start))
            .await?
            .map_err(|e| connect_error(e.to_string()))?;
        let greeting = &start[..seen];
        let plain = bounded
            .run(
                "waiting for the FTP greeting",
                FtpsStream::connect_with_stream(tcp),
            )
            .await?
            .map_err(|e| bad_greeting(&endpoint, greeting, e))?;
        let mut ftp = bounded
            .run(
                "negotiating TLS (AUTH TLS)",
                plain.into_secure(connector, &settings.host),
            )
            .await?
            .map_err(|e| match e {
                FtpError::SecureError(detail) if refuses_certificate(&detail) => SourceError::Tls {
                    endpoint: endpoint.clone(),
                    name: settings.host.clone(),
                    detail,
                },
                secure @ FtpError::SecureError(_) => {
                    bounded.interrupted("negotiating TLS (AUTH TLS)", &secure)
                }
                other => connect_error(format!(
                    "the server did not accept AUTH TLS: {}",
                    describe(&other)
                )),
            })?;
        // EPSV names only a port, so a server behind NAT cannot send us to a private address.
        ftp.set_mode(Mode::ExtendedPassive);
        crate::crash::pause("login", &endpoint);
        bounded
            .run(
                "logging in",
                ftp.login(settings.user.as_str(), settings.password.expose()),
            )
            .await?
            .map_err(|e| match &e {
                FtpError::UnexpectedResponse(reply) if !is_transient_reply(reply.status) => {
                    SourceError::LoginRefused {
                        endpoint: endpoint.clone(),
                        user: settings.user.clone(),
                        detail: describe(&e),
                    }
                }
                _ => bounded.interrupted("logging in", &e),
            })?;
        bounded
            .run("setting binary mode", ftp.transfer_type(FileType::Binary))
            .await?
            .map_err(|e| connect_error(describe(&e)))?;
        let home = bounded
            .run("asking for the login folder (PWD)", ftp.pwd())
            .await?
            .map_err(|e| connect_error(describe(&e)))?;
        Ok(FtpsSource {
            ftp,
            server: bounded,
            tls,
            name,
            data_host,
            passive: None,
            pipelining: true,
            reply_owed: false,
            home,
            mlsd: None,
            max_listing_entries,
            buffer: Vec::new(),
        })
    }
}

/// Our half of a data connection: TLS over its own TCP connection.
type DataStream = TlsStream;

impl FtpsSource {
    /// Reads the final reply of a transfer that was given up, whatever it says.
    async fn settle(&mut self) -> Result<(), SourceError> {
        if self.reply_owed {
            let read = self
                .server
                .run(
                    "reading the reply to an abandoned transfer",
                    self.ftp.read_response_in(&[Status::ClosingDataConnection]),
                )
                .await?;
            match read {
                Ok(_) | Err(FtpError::UnexpectedResponse(_)) => self.reply_owed = false,
                Err(e) => return Err(self.server.interrupted("reading a reply", &e)),
            }
        }
        Ok(())
    }

    /// A passive port: the one an earlier `EPSV` left, or a new `EPSV`'s.
    async fn passive_port(&mut self) -> Result<u16, FtpError> {
        if let Some(port) = self.passive.take() {
            return Ok(port);
        }
        let reply = self
            .ftp
            .custom_command("EPSV", &[Status::ExtendedPassiveMode])
            .await?;
        epsv_port(&reply).ok_or(FtpError::UnexpectedResponse(reply))
    }

    /// Sends `command` (`RETR`, `LIST`, `MLSD`) and opens its data connection: the TCP
    /// connect and the TLS handshake go on while the command's `150` is awaited. A
    /// refusal of the command is what is reported, also when the data connection
    /// failed because of it. The caller reads the data, then calls [`Self::finish_data`].
    async fn open_data(&mut self, command: String) -> Result<DataStream, FtpError> {
        let port = self.passive_port().await?;
        let address = SocketAddr::new(self.data_host, port);
        let (tls, name) = (self.tls.clone(), self.name.clone());
        let data = async move {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(FtpError::ConnectionError)?;
            let _ = tcp.set_nodelay(true);
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| FtpError::SecureError(e.to_string()))?;
            let session = stream.get_ref().1;
            tracing::trace!(
                version = ?session.protocol_version(),
                handshake = ?session.handshake_kind(),
                "data connection secured"
            );
            Ok(FlushingStream(stream))
        };
        let reply = self
            .ftp
            .custom_command(command, &[Status::AboutToSend, Status::AlreadyOpen]);
        tokio::pin!(data, reply);
        tokio::select! {
            replied = &mut reply => {
                replied?;
                self.reply_owed = true;
                data.await
            }
            connected = &mut data => match (connected, reply.await) {
                (Ok(stream), Ok(_)) => {
                    self.reply_owed = true;
                    Ok(stream)
                }
                (_, Err(refused)) => Err(refused),
                (Err(failed), Ok(_)) => {
                    self.reply_owed = true;
                    Err(failed)
                }
            },
        }
    }

    /// Ends a data connection whose data was all read: our close_notify, then the
    /// transfer's `226`. With `next_passive`, an `EPSV` goes out right behind the
    /// close_notify and its `229` is kept for the next data command.
    async fn finish_data(
        &mut self,
        mut stream: DataStream,
        next_passive: bool,
    ) -> Result<(), FtpError> {
        stream.shutdown().await.map_err(FtpError::ConnectionError)?;
        drop(stream);
        let done = [Status::ClosingDataConnection, Status::RequestedFileActionOk];
        if !(next_passive && self.pipelining) {
            self.ftp.read_response_in(&done).await?;
            self.reply_owed = false;
            return Ok(());
        }
        // Sent now, answered with the 226 that was on its way before it; a server that
        // runs commands alongside a transfer (libunftp) may answer it first.
        let first = reply_of(self.ftp.custom_command("EPSV", &[]).await)?;
        let second = reply_of(self.ftp.read_response_in(&[]).await)?;
        self.reply_owed = false;
        let (done_reply, passive) = if first.status == Status::ExtendedPassiveMode {
            (second, first)
        } else {
            (first, second)
        };
        if !done.contains(&done_reply.status) {
            return Err(FtpError::UnexpectedResponse(done_reply));
        }
        match epsv_port(&passive) {
            Some(port) if passive.status == Status::ExtendedPassiveMode => {
                self.passive = Some(port)
            }
            _ => {
                tracing::debug!(endpoint = %self.server.endpoint, reply = %describe(&FtpError::UnexpectedResponse(passive)), "EPSV sent before the 226 was read was not answered with 229: no longer sent early");
                self.pipelining = false;
            }
        }
        Ok(())
    }
}

/// The reply read with no status expected (suppaftp reports every one as unexpected).
fn reply_of(read: Result<Response, FtpError>) -> Result<Response, FtpError> {
    match read {
        Err(FtpError::UnexpectedResponse(reply)) | Ok(reply) => Ok(reply),
        Err(e) => Err(e),
    }
}

/// The port of an `EPSV` reply, `229 Entering Extended Passive Mode (|||port|)` (RFC
/// 2428: any delimiter, the same four times).
fn epsv_port(reply: &Response) -> Option<u16> {
    let text = String::from_utf8_lossy(&reply.body);
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let mut chars = inner.chars();
    let delimiter = chars.next()?;
    let rest: String = chars.collect();
    let port = rest.strip_prefix(&format!("{delimiter}{delimiter}"))?;
    port.strip_suffix(delimiter)?.parse().ok()
}

impl FtpsSource {
    /// Streams the listing of the current folder into `each`: `MLSD` where the server
    /// has it, else `LIST`; its subfolders go to `subfolders` if given. Returns how
    /// many files there were and the paths of the symbolic links, which a listing does
    /// not say the target of.
    async fn list_here(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
        mut subfolders: Option<&mut Vec<String>>,
    ) -> Result<(u64, Vec<String>), SourceError> {
        let mlsd = self.mlsd != Some(false);
        let command = if mlsd { "MLSD" } else { "LIST" };
        let server = self.server.clone();
        let opened = server
            .run("listing a folder", self.open_data(command.to_string()))
            .await?;
        let stream = match opened {
            Ok(stream) => stream,
            // 500/502: not understood or not implemented (vsftpd has no MLSD).
            Err(FtpError::UnexpectedResponse(r))
                if mlsd && matches!(r.status, Status::BadCommand | Status::NotImplemented) =>
            {
                self.mlsd = Some(false);
                return Box::pin(self.list_here(folder, each, subfolders)).await;
            }
            Err(e) => return Err(self.server.refused(command, folder, &e)),
        };
        self.mlsd = Some(mlsd);
        let endpoint = self.server.endpoint.clone();
        let broke_off = |detail: String| SourceError::Transfer {
            endpoint: endpoint.clone(),
            path: folder.to_string(),
            detail,
        };
        let garbage = |detail: String| SourceError::Protocol {
            endpoint: endpoint.clone(),
            detail: format!("its listing ({command}) of {folder:?} {detail}"),
        };
        let mut lines = BufReader::new(stream);
        let mut line = Vec::new();
        let (mut count, mut files, mut unknown) = (0u64, 0u64, 0u64);
        let mut first_unknown = None;
        let mut links = Vec::new();
        loop {
            line.clear();
            let n = self
                .server
                .run(
                    "listing a folder",
                    (&mut lines)
                        .take(MAX_LISTING_LINE as u64 + 1)
                        .read_until(b'\n', &mut line),
                )
                .await?
                .map_err(|e| broke_off(e.to_string()))?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_LISTING_LINE {
                return Err(garbage(format!(
                    "has a line longer than {} KiB (a line without end?), starting {:?}",
                    MAX_LISTING_LINE / 1024,
                    excerpt(&line)
                )));
            }
            count += 1;
            if count > self.max_listing_entries {
                return Err(garbage(format!(
                    "goes on past {} entries (a listing without end?); if the folder really holds more, raise source.max_listing_entries",
                    self.max_listing_entries
                )));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                continue;
            }
            let entry = if mlsd {
                ftp_listing::parse_mlsd(text)
            } else {
                ftp_listing::parse_list(text)
            };
            match entry {
                Entry::File {
                    name,
                    size,
                    modified,
                } => {
                    each(RemoteFile {
                        path: format!("{folder}/{name}"),
                        size,
                        modified,
                        etag: None,
                    });
                    files += 1;
                }
                Entry::Link { name } => links.push(format!("{folder}/{name}")),
                Entry::Folder { name } => {
                    if let Some(subfolders) = subfolders.as_deref_mut() {
                        subfolders.push(format!("{folder}/{name}"));
                    }
                }
                Entry::Other => {}
                Entry::Unknown => {
                    unknown += 1;
                    first_unknown.get_or_insert_with(|| excerpt(text.as_bytes()));
                }
            }
        }
        let server = self.server.clone();
        server
            .run(
                "finishing a listing",
                self.finish_data(lines.into_inner(), false),
            )
            .await?
            .map_err(|e| broke_off(describe(&e)))?;
        if let Some(example) = first_unknown {
            if unknown == count {
                return Err(garbage(format!(
                    "has no line in a format this client reads (Unix ls, DOS/IIS, MLSD): {unknown} lines such as {example:?}"
                )));
            }
            tracing::warn!(endpoint = %endpoint, folder, lines = unknown, example = %example, "listing lines in no known format were skipped");
        }
        Ok((files, links))
    }
}

/// The start of what a server sent, for a message: at most 80 characters, printable.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The server's name for messages, and the time limit for each call to it.
#[derive(Clone)]
struct Server {
    endpoint: String,
    timeout: Duration,
}

impl Server {
    /// Runs `future` under the time limit, naming what was being waited for.
    async fn run<T>(
        &self,
        during: &str,
        future: impl Future<Output = T>,
    ) -> Result<T, SourceError> {
        super::time_limited(self.timeout, &self.endpoint, || during.to_string(), future).await
    }

    /// The session broke while `during`: closed, reset, a plain-text reply inside TLS
    /// (vsftpd's `500 OOPS` seen as "corrupt message of type InvalidContentType"), a
    /// failed handshake of a data connection, or a reply saying to try later.
    fn interrupted(&self, during: &str, error: &FtpError) -> SourceError {
        SourceError::Interrupted {
            endpoint: self.endpoint.clone(),
            during: during.to_string(),
            detail: describe(error),
        }
    }

    /// A broken session, or a refusal of `action` on `path` that will not pass.
    fn refused(&self, action: &'static str, path: &str, error: &FtpError) -> SourceError {
        match error {
            FtpError::ConnectionError(_) | FtpError::SecureError(_) => {
                self.interrupted(&format!("{action} {path:?}"), error)
            }
            FtpError::UnexpectedResponse(reply) if is_transient_reply(reply.status) => {
                self.interrupted(&format!("{action} {path:?}"), error)
            }
            other => SourceError::Refused {
                endpoint: self.endpoint.clone(),
                action,
                path: path.to_string(),
                detail: describe(other),
            },
        }
    }
}

/// FTP's transient negative replies (4xx: 421 closing, 425 no data connection, 426
/// transfer aborted, 450 file busy, ...): the same command may succeed later.
fn is_transient_reply(status: Status) -> bool {
    (400..500).contains(&status.code())
}

/// Whether a TLS failure is the server's certificate being refused, which no retry
/// changes (rustls: `invalid peer certificate: …`), rather than a broken handshake.
fn refuses_certificate(detail: &str) -> bool {
    detail.contains("invalid peer certificate")
}

/// Why the greeting was not taken: a connection error, or what the server sent.
fn bad_greeting(endpoint: &str, start: &[u8], error: FtpError) -> SourceError {
    let too_large = matches!(&error, FtpError::ConnectionError(e)
        if e.get_ref().is_some_and(|inner| inner.is::<suppaftp::ReplyTooLarge>()));
    let looks_like_ftp = start.len() >= 3 && start[..3].iter().all(u8::is_ascii_digit);
    let detail = if too_large {
        format!(
            "its greeting goes on past 256 KiB without ending (a line without end?), starting {:?}",
            excerpt(start)
        )
    } else if !start.is_empty() && !looks_like_ftp {
        format!(
            "it answered with {:?}, which is not an FTP greeting (\"220 …\"); check that source.url's port is the FTP server's",
            excerpt(start)
        )
    } else {
        return SourceError::Connect {
            endpoint: endpoint.to_string(),
            detail: describe(&error),
        };
    };
    SourceError::Protocol {
        endpoint: endpoint.to_string(),
        detail,
    }
}

/// The server's reply text, without the protocol noise.
fn describe(error: &FtpError) -> String {
    match error {
        FtpError::UnexpectedResponse(response) => {
            let body = String::from_utf8_lossy(&response.body);
            body.trim().to_string()
        }
        other => other.to_string(),
    }
}

fn is_missing(error: &FtpError) -> bool {
    matches!(error, FtpError::UnexpectedResponse(r) if r.status == Status::FileUnavailable)
}

#[async_trait]
impl FolderLister for FtpsSource {
    /// The files directly in `folder` (links to files as those files); its subfolders
    /// go to `subfolders` if given.
    async fn list_folder(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
        subfolders: Option<&mut Vec<String>>,
    ) -> Result<u64, SourceError> {
        self.settle().await?;
        // Some servers (vsftpd) answer LIST of a missing folder with an empty listing;
        // changing into it first tells "missing" from "empty".
        self.server
            .run("opening a folder (CWD)", self.ftp.cwd(folder))
            .await?
            .map_err(|e| self.server.refused("CWD", folder, &e))?;
        let listed = self.list_here(folder, each, subfolders).await;
        match &listed {
            // The connection is given up: the listing's reply and the way back would
            // only be waited for.
            Err(e) if e.is_transient() || matches!(e, SourceError::Protocol { .. }) => {
                return listed.map(|(files, _)| files);
            }
            // Refused (the reply is read) or given up by us (the reply is still owed).
            _ => self.settle().await?,
        }
        self.server
            .run(
                "returning to the login folder (CWD)",
                self.ftp.cwd(&self.home),
            )
            .await?
            .map_err(|e| self.server.refused("CWD", &self.home, &e))?;
        let (mut files, links) = listed?;
        // From the login folder, as the links' paths are: SIZE and MDTM follow a link.
        for link in links {
            if let Some(file) = self.stat(&link).await? {
                each(file);
                files += 1;
            }
        }
        Ok(files)
    }
}

#[async_trait]
impl Source for FtpsSource {
    async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError> {
        self.settle().await?;
        let size = match self
            .server
            .run("asking for a file size (SIZE)", self.ftp.size(path))
            .await?
        {
            Ok(size) => size as u64,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(self.server.refused("SIZE", path, &e)),
        };
        let modified = match self
            .server
            .run("asking for a file time (MDTM)", self.ftp.mdtm(path))
            .await?
        {
            Ok(time) => Some(time.and_utc()),
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(self.server.refused("MDTM", path, &e)),
        };
        Ok(Some(RemoteFile {
            path: path.to_string(),
            size,
            modified,
            etag: None,
        }))
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
        self.settle().await?;
        let server = self.server.clone();
        if offset > 0 {
            // After the EPSV (which may have been sent already), right before RETR.
            let port = server
                .run("asking for a passive port (EPSV)", self.passive_port())
                .await?
                .map_err(|e| server.refused("EPSV", path, &e))?;
            self.passive = Some(port);
            server
                .run(
                    "asking to resume (REST)",
                    self.ftp
                        .custom_command(format!("REST {offset}"), &[Status::RequestFilePending]),
                )
                .await?
                .map_err(|e| server.refused("REST", path, &e))?;
        }
        let broke_off = |detail: String| SourceError::Transfer {
            endpoint: server.endpoint.clone(),
            path: path.to_string(),
            detail,
        };
        let mut stream = match server
            .run(
                "starting a download (RETR)",
                self.open_data(format!("RETR {path}")),
            )
            .await?
        {
            Ok(stream) => stream,
            // FTP answers 550 both for a missing file and an unreadable one: SIZE tells which.
            Err(e) if is_missing(&e) => {
                let exists = matches!(
                    server
                        .run("asking for a file size (SIZE)", self.ftp.size(path))
                        .await,
                    Ok(Ok(_))
                );
                return Err(if exists {
                    SourceError::PermissionDenied {
                        endpoint: server.endpoint.clone(),
                        path: path.to_string(),
                        detail: describe(&e),
                    }
                } else {
                    SourceError::Missing {
                        endpoint: server.endpoint.clone(),
                        path: path.to_string(),
                    }
                });
            }
            Err(e) => return Err(server.refused("RETR", path, &e)),
        };
        if self.buffer.is_empty() {
            self.buffer = vec![0u8; READ_CHUNK];
        }
        let buffer = &mut self.buffer;
        let mut copied = 0u64;
        loop {
            let n = server
                .run("downloading", stream.read(buffer))
                .await?
                .map_err(|e| broke_off(e.to_string()))?;
            if n == 0 {
                break;
            }
            sink.write(&buffer[..n])
                .await
                .map_err(|e| SourceError::Sink {
                    path: path.to_string(),
                    detail: e.to_string(),
                })?;
            copied += n as u64;
        }
        server
            .run("finishing a download", self.finish_data(stream, true))
            .await?
            .map_err(|e| broke_off(describe(&e)))?;
        Ok(copied)
    }

    /// `QUIT`, answered by 221; dropping the stream then sends the TLS close_notify.
    async fn close(mut self: Box<Self>) {
        match self
            .server
            .run("saying goodbye (QUIT)", self.ftp.quit())
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %self.server.endpoint, error = %describe(&e), "QUIT was not answered with 221");
            }
            Err(e) => tracing::debug!(error = %e, "QUIT was not answered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port of a 229, whatever the delimiter (RFC 2428); none in anything else.
    #[test]
    fn the_port_of_an_epsv_reply_is_read() {
        let reply =
            |text: &str| Response::new(Status::ExtendedPassiveMode, text.as_bytes().to_vec());
        assert_eq!(
            epsv_port(&reply("229 Entering Extended Passive Mode (|||40123|)")),
            Some(40123)
        );
        assert_eq!(epsv_port(&reply("229 ok (!!!21!)")), Some(21));
        assert_eq!(epsv_port(&reply("229 ok (||40123|)")), None);
        assert_eq!(epsv_port(&reply("229 ok (|||99999|)")), None);
        assert_eq!(epsv_port(&reply("226 Transfer complete.")), None);
    }

    /// What is retried and what fails at once hangs on these two tests of the text
    /// rustls and suppaftp give: pinned here against their versions.
    #[test]
    fn a_refused_certificate_is_told_from_a_broken_handshake() {
        let as_suppaftp_reports = |e: rustls::Error| {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            format!("{}", FtpError::SecureError(io.to_string()))
        };
        let untrusted = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(refuses_certificate(&as_suppaftp_reports(untrusted)));
        let plain_text_reply =
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(!refuses_certificate(&as_suppaftp_reports(plain_text_reply)));
        assert!(is_transient_reply(Status::CannotOpenDataConnection));
        assert!(is_transient_reply(Status::NotAvailable));
        assert!(!is_transient_reply(Status::NotLoggedIn));
        assert!(!is_transient_reply(Status::FileUnavailable));
    }
}
