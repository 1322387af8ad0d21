//! Explicit FTP over TLS (`AUTH TLS`), as the provider's drop server speaks it.
//!
//! Every call is bounded by the configured timeout (suppaftp has none of its own).
//! Data connections reuse the control connection's TLS session, which vsftpd's
//! `require_ssl_reuse=YES` demands; rustls does this through its session cache.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use suppaftp::tokio::ImplAsyncFtpStream;
use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;

use super::ftps_stream::{FlushingConnector, FlushingStream};
use super::{ChunkSink, RemoteFile, Source, SourceError, tls};
use crate::config::FtpsSettings;

/// Bytes read from the data connection at a time.
const READ_CHUNK: usize = 256 * 1024;

type FtpsStream = ImplAsyncFtpStream<FlushingStream<tokio_rustls::client::TlsStream<TcpStream>>>;

/// A logged-in FTPS connection.
pub struct FtpsSource {
    ftp: FtpsStream,
    server: Server,
    /// The login folder, which every relative path is resolved against.
    home: String,
}

impl FtpsSource {
    /// Connects, upgrades to TLS, verifies the certificate and logs in.
    pub async fn connect(
        settings: &FtpsSettings,
        timeout: Duration,
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
        )?;
        let connector = FlushingConnector(tokio_rustls::TlsConnector::from(Arc::new(config)));

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
        let plain = bounded
            .run(
                "waiting for the FTP greeting",
                FtpsStream::connect_with_stream(tcp),
            )
            .await?
            .map_err(|e| connect_error(describe(&e)))?;
        let mut ftp = bounded
            .run(
                "negotiating TLS (AUTH TLS)",
                plain.into_secure(connector, &settings.host),
            )
            .await?
            .map_err(|e| match e {
                FtpError::SecureError(detail) => SourceError::Tls {
                    endpoint: endpoint.clone(),
                    name: settings.host.clone(),
                    detail,
                },
                other => connect_error(format!(
                    "the server did not accept AUTH TLS: {}",
                    describe(&other)
                )),
            })?;
        // EPSV names only a port, so a server behind NAT cannot send us to a private address.
        ftp.set_mode(Mode::ExtendedPassive);
        bounded
            .run(
                "logging in",
                ftp.login(settings.user.as_str(), settings.password.expose()),
            )
            .await?
            .map_err(|e| SourceError::LoginRefused {
                endpoint: endpoint.clone(),
                user: settings.user.clone(),
                detail: describe(&e),
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
            home,
        })
    }
}

impl FtpsSource {
    /// The files directly in `folder`; its subfolders go to `subfolders` if given.
    async fn list_folder(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
        subfolders: Option<&mut Vec<String>>,
    ) -> Result<u64, SourceError> {
        // Some servers (vsftpd) answer LIST of a missing folder with an empty listing;
        // changing into it first tells "missing" from "empty".
        self.server
            .run("opening a folder (CWD)", self.ftp.cwd(folder))
            .await?
            .map_err(|e| self.server.refused("CWD", folder, &e))?;
        let listed = self.list_here(folder, each, subfolders).await;
        self.server
            .run(
                "returning to the login folder (CWD)",
                self.ftp.cwd(&self.home),
            )
            .await?
            .map_err(|e| self.server.refused("CWD", &self.home, &e))?;
        listed
    }

    /// Streams `LIST` of the current folder line by line into `each`; its subfolders
    /// go to `subfolders` if given.
    async fn list_here(
        &mut self,
        folder: &str,
        each: &mut (dyn FnMut(RemoteFile) + Send),
        mut subfolders: Option<&mut Vec<String>>,
    ) -> Result<u64, SourceError> {
        let server = &self.server;
        let (_, stream) = server
            .run(
                "listing a folder (LIST)",
                self.ftp
                    .custom_data_command("LIST", &[Status::AboutToSend, Status::AlreadyOpen]),
            )
            .await?
            .map_err(|e| server.refused("LIST", folder, &e))?;
        let broke_off = |detail: String| SourceError::Transfer {
            endpoint: server.endpoint.clone(),
            path: folder.to_string(),
            detail,
        };
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        let mut files = 0;
        loop {
            line.clear();
            let n = server
                .run("listing a folder", lines.read_line(&mut line))
                .await?
                .map_err(|e| broke_off(e.to_string()))?;
            if n == 0 {
                break;
            }
            let Ok(file) = suppaftp::list::ListParser::parse_posix(line.trim_end()) else {
                continue; // "total 12" and the like
            };
            if file.is_file() {
                each(RemoteFile {
                    path: format!("{folder}/{}", file.name()),
                    size: file.size() as u64,
                    modified: Some(DateTime::<Utc>::from(file.modified())),
                    etag: None,
                });
                files += 1;
            } else if file.is_directory() && file.name() != "." && file.name() != ".." {
                if let Some(subfolders) = subfolders.as_deref_mut() {
                    subfolders.push(format!("{folder}/{}", file.name()));
                }
            }
        }
        server
            .run("finishing a listing", lines.into_inner().finish())
            .await?
            .map_err(|e| broke_off(describe(&e)))?;
        Ok(files)
    }
}

/// The server's name for messages, and the time limit for each call to it.
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
        tokio::time::timeout(self.timeout, future)
            .await
            .map_err(|_| SourceError::Timeout {
                endpoint: self.endpoint.clone(),
                during: during.to_string(),
                seconds: self.timeout.as_secs(),
            })
    }

    fn refused(&self, action: &'static str, path: &str, error: &FtpError) -> SourceError {
        match error {
            FtpError::ConnectionError(e) => SourceError::Connect {
                endpoint: self.endpoint.clone(),
                detail: e.to_string(),
            },
            other => SourceError::Refused {
                endpoint: self.endpoint.clone(),
                action,
                path: path.to_string(),
                detail: describe(other),
            },
        }
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
impl Source for FtpsSource {
    async fn stat(&mut self, path: &str) -> Result<Option<RemoteFile>, SourceError> {
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
        let mut to_visit = vec![folder.trim_end_matches('/').to_string()];
        let mut files = 0;
        while let Some(next) = to_visit.pop() {
            files += self.list_folder(&next, each, Some(&mut to_visit)).await?;
        }
        Ok(files)
    }

    async fn download(
        &mut self,
        path: &str,
        offset: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        if offset > 0 {
            self.server
                .run(
                    "asking to resume (REST)",
                    self.ftp.resume_transfer(offset as usize),
                )
                .await?
                .map_err(|e| self.server.refused("REST", path, &e))?;
        }
        let server = &self.server;
        let broke_off = |detail: String| SourceError::Transfer {
            endpoint: server.endpoint.clone(),
            path: path.to_string(),
            detail,
        };
        let mut stream = match server
            .run("starting a download (RETR)", self.ftp.retr_as_stream(path))
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
        let mut buffer = vec![0u8; READ_CHUNK];
        let mut copied = 0u64;
        loop {
            let n = server
                .run("downloading", stream.read(&mut buffer))
                .await?
                .map_err(|e| broke_off(e.to_string()))?;
            if n == 0 {
                break;
            }
            sink.write(&buffer[..n])
                .await
                .map_err(|e| broke_off(format!("could not take the data: {e}")))?;
            copied += n as u64;
        }
        server
            .run("finishing a download", stream.finish())
            .await?
            .map_err(|e| broke_off(describe(&e)))?;
        Ok(copied)
    }
}
