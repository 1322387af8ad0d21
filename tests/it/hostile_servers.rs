//! Broken or hostile FTPS servers, each a small server inside the test: one that sends
//! garbage instead of a greeting, a greeting without end, a listing line without end,
//! garbage as a listing, and a listing of ten million entries. Each ends within the
//! configured limits with bounded memory and a message that says what the server did.
//! (A server that accepts and never answers: `conformance::*::a_silent_server_times_out`.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cdr_ingest::config::Settings;
use cdr_ingest::source::{self, SourceError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// What the server does wrong.
#[derive(Clone, Copy)]
enum Fault {
    /// Answers the connection with text that is not FTP.
    GarbageGreeting,
    /// A greeting line that never ends.
    EndlessGreeting,
    /// A listing whose first line never ends.
    EndlessListingLine,
    /// A listing of lines that are in no listing format.
    GarbageListing,
    /// A listing of ten million files.
    TenMillionEntries,
}

/// Bytes the server sends in one write of an endless answer.
const BLOCK: usize = 64 * 1024;

/// Starts the server; returns its port. It serves one connection after another.
async fn serve(fault: Fault) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let work = std::path::PathBuf::from(env("CDR_TEST_WORK_DIR"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&work)));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(session(socket, fault, acceptor.clone()));
        }
    });
    port
}

/// The test servers' certificate (name localhost, signed by the test CA).
fn server_config(work: &Path) -> rustls::ServerConfig {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(work.join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(work.join("server.key")).unwrap();
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap()
}

async fn session(socket: tokio::net::TcpStream, fault: Fault, acceptor: tokio_rustls::TlsAcceptor) {
    let mut socket = socket;
    match fault {
        Fault::GarbageGreeting => {
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            return;
        }
        Fault::EndlessGreeting => {
            let _ = socket.write_all(b"220-").await;
            endless(&mut socket).await;
            return;
        }
        _ => {}
    }
    let mut control = BufReader::new(socket);
    if reply(&mut control, "220 hostile test server")
        .await
        .is_none()
        || command(&mut control).await.as_deref() != Some("AUTH TLS")
        || reply(&mut control, "234 go ahead").await.is_none()
    {
        return;
    }
    let Ok(tls) = acceptor.accept(control.into_inner()).await else {
        return;
    };
    let mut control = BufReader::new(tls);
    let mut data: Option<TcpListener> = None;
    while let Some(line) = command(&mut control).await {
        let verb = line.split(' ').next().unwrap_or_default().to_uppercase();
        let answer = match verb.as_str() {
            "PBSZ" | "PROT" | "TYPE" => "200 ok".to_string(),
            "USER" => "331 password please".to_string(),
            "PASS" => "230 logged in".to_string(),
            "PWD" => "257 \"/\" is the current directory".to_string(),
            "CWD" => "250 ok".to_string(),
            "MLSD" => "500 unknown command".to_string(),
            "EPSV" => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                data = Some(listener);
                format!("229 Entering Extended Passive Mode (|||{port}|)")
            }
            "LIST" => {
                let Some(listener) = data.take() else { return };
                if reply(&mut control, "150 here it comes").await.is_none() {
                    return;
                }
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                listing(&mut tls, fault).await;
                let _ = tls.shutdown().await;
                "226 done".to_string()
            }
            "QUIT" => {
                let _ = reply(&mut control, "221 bye").await;
                return;
            }
            _ => "502 not here".to_string(),
        };
        if reply(&mut control, &answer).await.is_none() {
            return;
        }
    }
}

/// Writes the faulty listing until it is done or the client stops reading.
async fn listing(out: &mut (impl AsyncWrite + Unpin), fault: Fault) {
    match fault {
        Fault::EndlessListingLine => {
            let _ = out.write_all(b"-rw-r--r-- 1 u g 10 Mar 02  2024 ").await;
            endless(out).await;
        }
        Fault::GarbageListing => {
            let _ = out
                .write_all(
                    b"<html><body>Hello there\r\nthis is not a listing\r\n</body></html>\r\n",
                )
                .await;
        }
        Fault::TenMillionEntries => {
            let mut block = String::with_capacity(BLOCK + 100);
            for i in 0..10_000_000u32 {
                block.push_str(&format!(
                    "-rw-r--r-- 1 u g 10 Mar 02  2024 2024_03_01_00_00_00-u-1-2-{i}.mp3\r\n"
                ));
                if block.len() >= BLOCK {
                    if out.write_all(block.as_bytes()).await.is_err() {
                        return;
                    }
                    block.clear();
                }
            }
            let _ = out.write_all(block.as_bytes()).await;
        }
        Fault::GarbageGreeting | Fault::EndlessGreeting => unreachable!(),
    }
}

/// Sends the same letter until the client hangs up.
async fn endless(out: &mut (impl AsyncWrite + Unpin)) {
    let block = vec![b'a'; BLOCK];
    while out.write_all(&block).await.is_ok() {}
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(control: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match control.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_string()),
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    control: &mut BufReader<S>,
    text: &str,
) -> Option<()> {
    let out = control.get_mut();
    out.write_all(format!("{text}\r\n").as_bytes()).await.ok()?;
    out.flush().await.ok()
}

/// Connects to the server on `port` and lists a folder, with a listing cap of 1,000.
async fn list_from(port: u16) -> SourceError {
    let text = format!(
        "[source]\nurl = \"ftps://user@localhost:{port}\"\nca_file = \"{}\"\ntimeout_secs = 5\nmax_listing_entries = 1000\n[destination]\nurl = \"memory://\"\n",
        env("CDR_TEST_CA_FILE")
    );
    let settings = Settings::parse(&text, &|name| {
        (name == "CDR_INGEST_SOURCE_PASSWORD").then(|| "secret".to_string())
    })
    .unwrap_or_else(|issues| panic!("{issues:?}"))
    .source;
    let attempt = async {
        let mut source = source::connect(&settings).await?;
        source.list("recordings", &mut |_| {}).await
    };
    // Far above the 5 s limit of each call: the failure must come from the client.
    match tokio::time::timeout(Duration::from_secs(60), attempt).await {
        Ok(Ok(files)) => panic!("listed {files} files from a broken server"),
        Ok(Err(e)) => e,
        Err(_) => panic!("the client did not give up on the broken server"),
    }
}

fn protocol_error(error: SourceError) -> String {
    assert!(matches!(error, SourceError::Protocol { .. }), "{error:?}");
    error.to_string()
}

#[tokio::test]
async fn garbage_instead_of_a_greeting_is_named() {
    let message = protocol_error(list_from(serve(Fault::GarbageGreeting).await).await);
    assert!(
        message.contains("it answered with \"HTTP/1.1 400 Bad Request")
            && message.contains("not an FTP greeting"),
        "{message}"
    );
}

#[tokio::test]
async fn a_greeting_without_end_is_cut_off() {
    let message = protocol_error(list_from(serve(Fault::EndlessGreeting).await).await);
    assert!(
        message.contains("greeting goes on past 256 KiB"),
        "{message}"
    );
}

#[tokio::test]
async fn a_listing_line_without_end_is_cut_off() {
    let message = protocol_error(list_from(serve(Fault::EndlessListingLine).await).await);
    assert!(
        message.contains("its listing (LIST) of \"recordings\" has a line longer than 16 KiB"),
        "{message}"
    );
}

#[tokio::test]
async fn a_listing_of_garbage_is_refused() {
    let message = protocol_error(list_from(serve(Fault::GarbageListing).await).await);
    assert!(
        message.contains("has no line in a format this client reads")
            && message.contains("<html><body>Hello there"),
        "{message}"
    );
}

#[tokio::test]
async fn a_listing_of_ten_million_entries_stops_at_the_cap() {
    let message = protocol_error(list_from(serve(Fault::TenMillionEntries).await).await);
    assert!(
        message.contains("goes on past 1000 entries")
            && message.contains("source.max_listing_entries"),
        "{message}"
    );
}
