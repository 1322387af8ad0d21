//! The TLS stream under an FTPS connection: rustls's, made to send a command before
//! waiting for its reply.
//!
//! suppaftp sends each command with `write_all` and never `flush`. A TLS stream is
//! buffered like a `BufWriter`: when the socket is not writable at that instant,
//! tokio-rustls keeps the encrypted bytes and still reports them written, and the
//! server never sees the command we then wait on. Seen in benchmarks: about one
//! download in several thousand, over 4–8 connections, stalled until the timeout with
//! the server idle after its last reply. Flushing before every read means that
//! waiting for a reply always implies the command went out.
//!
//! A stream that is dropped also says goodbye: suppaftp drops the control connection
//! (after `QUIT`, or when the connection is given up) and an unfinished data connection
//! without a TLS close_notify, and servers log the bare TCP close as an error (ProFTPD:
//! `SSL_shutdown error … unexpected eof`).
//!
//! And what it reads is acknowledged at once. A server that writes a file's last bytes
//! and then its TLS close_notify as two small writes, without `TCP_NODELAY` (libunftp
//! does so, and the demo's server is libunftp), has the close_notify held back by
//! Nagle's algorithm until the data is acknowledged, and Linux delays that ACK by
//! 40 ms on a connection it sees as interactive: 40 ms added to every small download.
//! The demo's 345 session files took 16 s that way, 1 s without.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use rustls::pki_types::ServerName;
use suppaftp::tokio::{AsyncTlsConnector, TokioTlsStream};
use suppaftp::{FtpError, FtpResult};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Opens [`FlushingStream`]s, for the control connection and every data connection.
pub struct FlushingConnector(pub tokio_rustls::TlsConnector);

impl fmt::Debug for FlushingConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlushingConnector")
    }
}

#[async_trait]
impl AsyncTlsConnector for FlushingConnector {
    type Stream = FlushingStream<TlsStream<TcpStream>>;

    async fn connect(&self, domain: &str, stream: TcpStream) -> FtpResult<Self::Stream> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| FtpError::SecureError(e.to_string()))?;
        self.0
            .connect(name, stream)
            .await
            .map(FlushingStream)
            .map_err(|e| FtpError::SecureError(e.to_string()))
    }
}

/// A stream that flushes what was written before it reads, acknowledges what it read
/// at once, and sends a TLS close_notify when dropped.
#[derive(Debug)]
pub struct FlushingStream<S: CloseNotify>(pub(super) S);

/// A stream that can send its goodbye without waiting.
pub trait CloseNotify {
    /// Queues a TLS close_notify and writes it if the socket takes it now.
    fn close_notify_now(&mut self);

    /// Has what was received acknowledged now rather than after the delayed-ACK wait.
    fn acknowledge_now(&self);
}

impl CloseNotify for TlsStream<TcpStream> {
    fn acknowledge_now(&self) {
        acknowledge_now(self.get_ref().0);
    }

    fn close_notify_now(&mut self) {
        let (tcp, tls) = self.get_mut();
        // Sends nothing if it was sent already (a finished data connection's shutdown).
        tls.send_close_notify();
        // A few dozen bytes into an idle socket's buffer: this only fails on a socket
        // that is full or broken, where a goodbye would not arrive anyway.
        while tls.wants_write() {
            match tls.write_tls(&mut WriteNow(tcp)) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Sends the ACK of what was received now (`TCP_QUICKACK`, which Linux clears again by
/// itself, so it is set after every read). Elsewhere the system's delayed ACK stays.
fn acknowledge_now(tcp: &TcpStream) {
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    #[cfg(not(target_os = "linux"))]
    let _ = tcp;
}

/// Writes to a socket only what it takes without waiting.
struct WriteNow<'a>(&'a TcpStream);

impl io::Write for WriteNow<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: CloseNotify> Drop for FlushingStream<S> {
    fn drop(&mut self) {
        self.0.close_notify_now();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + CloseNotify> AsyncRead for FlushingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Pending only means the socket cannot take the rest yet: the flush is then
        // registered for writability and the read for data, and either wakes us to
        // come back here and try both again.
        if let Poll::Ready(Err(e)) = Pin::new(&mut self.0).poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.0.acknowledge_now();
        }
        read
    }
}

impl<S: AsyncWrite + Unpin + CloseNotify> AsyncWrite for FlushingStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TokioTlsStream for FlushingStream<TlsStream<TcpStream>> {
    type InnerStream = TlsStream<TcpStream>;

    /// Only `CCC` (back to plain text on the control connection) needs this, and it is
    /// never sent: the stream says goodbye when dropped, so it cannot give its socket up.
    fn tcp_stream(self) -> FtpResult<TcpStream> {
        Err(FtpError::SecureError(
            "the control connection stays encrypted (no CCC)".into(),
        ))
    }

    fn get_ref(&self) -> &TcpStream {
        self.0.get_ref().0
    }

    fn mut_ref(&mut self) -> &mut Self::InnerStream {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter, DuplexStream};

    impl CloseNotify for BufWriter<DuplexStream> {
        fn close_notify_now(&mut self) {}
        fn acknowledge_now(&self) {}
    }

    /// After an exchange that makes Linux treat the connection as interactive (and so
    /// delay its ACKs), acknowledging now switches the delay off.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn what_was_read_is_acknowledged_at_once() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            let mut byte = [0u8; 1];
            for _ in 0..4 {
                peer.read_exact(&mut byte).await.unwrap();
                peer.write_all(&byte).await.unwrap();
            }
            peer
        });
        let mut client = TcpStream::connect(address).await.unwrap();
        let mut byte = [0u8; 1];
        for _ in 0..4 {
            client.write_all(b"x").await.unwrap();
            client.read_exact(&mut byte).await.unwrap();
        }
        let quick = || socket2::SockRef::from(&client).tcp_quickack().unwrap();
        assert!(!quick(), "the exchange should have made the ACKs delayed");
        acknowledge_now(&client);
        assert!(quick());
        drop(server.await.unwrap());
    }

    /// A command written without a flush into a buffered stream (as suppaftp does)
    /// reaches the server once we wait for the reply; without the flush the reply
    /// never comes.
    #[tokio::test(start_paused = true)]
    async fn a_command_written_without_flush_is_sent_before_the_reply_is_awaited() {
        for flushing in [true, false] {
            let (client, server) = tokio::io::duplex(1024);
            tokio::spawn(async move {
                let mut server = BufReader::new(server);
                let mut line = String::new();
                if server.read_line(&mut line).await.is_ok() && line == "EPSV\r\n" {
                    let reply = b"229 Entering Extended Passive Mode (|||10000|)\r\n";
                    let _ = server.get_mut().write_all(reply).await;
                }
            });
            let reply = async {
                let mut line = String::new();
                if flushing {
                    let mut control = BufReader::new(FlushingStream(BufWriter::new(client)));
                    control.get_mut().write_all(b"EPSV\r\n").await.unwrap();
                    control.read_line(&mut line).await.unwrap();
                } else {
                    let mut control = BufReader::new(BufWriter::new(client));
                    control.get_mut().write_all(b"EPSV\r\n").await.unwrap();
                    control.read_line(&mut line).await.unwrap();
                }
                line
            };
            let reply = tokio::time::timeout(std::time::Duration::from_secs(30), reply).await;
            if flushing {
                assert!(reply.unwrap().starts_with("229 "));
            } else {
                assert!(reply.is_err(), "a buffered command is never sent");
            }
        }
    }
}
