//! FTPS through a cutting proxy, as `sftp.rs` does for SFTP: the proxy ends TLS on both
//! sides (towards us with vsftpd's own certificate, towards vsftpd as a client that
//! resumes the control connection's TLS session on data connections, as vsftpd
//! requires), relays the control connection line by line, rewrites EPSV and PASV
//! replies so that every data connection goes through it too, and cuts the data or the
//! control connection once in the middle of a download. The download must resume with
//! REST, and the day land as in an uninterrupted run.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cdr_ingest::generate::{DropSpec, write_drop};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::util::{Case, dataset, difference, json};

/// Which connection the proxy cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The data connection, once `after` bytes of the file have passed.
    Data,
    /// The control connection at that moment; the data connection goes on.
    Control,
}

/// What the proxy was told and what it saw.
struct Shared {
    cut: Cut,
    /// The file (end of its path) whose first download is cut.
    file: String,
    after: u64,
    server_port: u16,
    cut_done: AtomicBool,
    commands: Mutex<Vec<String>>,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// Starts the proxy in front of vsftpd on its own thread; returns its port.
fn start(cut: Cut, file: &str, after: u64) -> (u16, Arc<Shared>) {
    let work = Path::new(&env("CDR_TEST_WORK_DIR")).to_path_buf();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(work.join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(work.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(env("CDR_TEST_CA_FILE")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    // One client configuration for every connection to vsftpd: its session cache is
    // what lets a data connection resume the control connection's session.
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let shared = Arc::new(Shared {
        cut,
        file: file.to_string(),
        after,
        server_port: env("CDR_TEST_FTPS_PORT").parse().unwrap(),
        cut_done: AtomicBool::new(false),
        commands: Mutex::new(Vec::new()),
        acceptor: TlsAcceptor::from(Arc::new(server_config)),
        connector: TlsConnector::from(Arc::new(client_config)),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = Arc::clone(&shared);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(control(client, Arc::clone(&serving)));
            }
        });
    });
    (port, shared)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Reads one reply (all lines of a multi-line one) from `from` and passes it to `to`.
async fn relay_reply(
    from: &mut (impl AsyncBufReadExt + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
) -> std::io::Result<String> {
    loop {
        let mut line = String::new();
        if from.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(line.as_bytes()).await?;
        to.flush().await?;
        if line.len() > 3 && line.as_bytes()[3] == b' ' {
            return Ok(line);
        }
    }
}

/// One control connection: plain until `AUTH TLS` is accepted, then TLS on both sides.
async fn control(client: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", shared.server_port)).await?;
    let (mut client, mut server) = (BufReader::new(client), BufReader::new(server));
    relay_reply(&mut server, client.get_mut()).await?;
    loop {
        let mut command = String::new();
        if client.read_line(&mut command).await? == 0 {
            return Ok(());
        }
        server.get_mut().write_all(command.as_bytes()).await?;
        let reply = relay_reply(&mut server, client.get_mut()).await?;
        if command.to_ascii_uppercase().starts_with("AUTH TLS") && reply.starts_with("234") {
            break;
        }
    }
    let client = shared.acceptor.accept(client.into_inner()).await?;
    let server = shared
        .connector
        .connect(localhost(), server.into_inner())
        .await?;
    let (client_read, mut client_write) = tokio::io::split(client);
    let (server_read, mut server_write) = tokio::io::split(server);
    let retrieving = Arc::new(Mutex::new(String::new()));
    let cut = Arc::new(Notify::new());
    let commands = async {
        let mut lines = BufReader::new(client_read);
        loop {
            let mut command = String::new();
            if lines.read_line(&mut command).await? == 0 {
                return Ok::<(), std::io::Error>(());
            }
            let text = command.trim_end().to_string();
            if let Some(path) = text.strip_prefix("RETR ") {
                *retrieving.lock().unwrap() = path.to_string();
            }
            if !text.starts_with("PASS ") {
                shared.commands.lock().unwrap().push(text);
            }
            server_write.write_all(command.as_bytes()).await?;
            server_write.flush().await?;
        }
    };
    let replies = async {
        let mut lines = BufReader::new(server_read);
        loop {
            let mut reply = String::new();
            if lines.read_line(&mut reply).await? == 0 {
                return Ok::<(), std::io::Error>(());
            }
            if let Some(port) = passive_port(&reply) {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let ours = listener.local_addr()?.port();
                tokio::spawn(data(
                    listener,
                    port,
                    Arc::clone(&shared),
                    Arc::clone(&retrieving),
                    Arc::clone(&cut),
                ));
                reply = if reply.starts_with("229") {
                    format!("229 Entering Extended Passive Mode (|||{ours}|)\r\n")
                } else {
                    format!(
                        "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
                        ours >> 8,
                        ours & 0xff
                    )
                };
            }
            client_write.write_all(reply.as_bytes()).await?;
            client_write.flush().await?;
        }
    };
    // Dropping both connections here, without a TLS goodbye, is the cut.
    tokio::select! {
        result = commands => result,
        result = replies => result,
        () = cut.notified() => Ok(()),
    }
}

/// The server's data port in an EPSV (`229 … (|||port|)`) or PASV
/// (`227 … (h1,h2,h3,h4,p1,p2)`) reply.
fn passive_port(reply: &str) -> Option<u16> {
    let inside = reply.split_once('(')?.1.split_once(')')?.0;
    if reply.starts_with("229") {
        return inside.trim_matches('|').parse().ok();
    }
    if reply.starts_with("227") {
        let numbers: Vec<u16> = inside.split(',').filter_map(|n| n.parse().ok()).collect();
        return (numbers.len() == 6).then(|| numbers[4] << 8 | numbers[5]);
    }
    None
}

/// One data connection: TLS on both sides, the server's bytes counted on the way to us.
async fn data(
    listener: TcpListener,
    server_port: u16,
    shared: Arc<Shared>,
    retrieving: Arc<Mutex<String>>,
    cut: Arc<Notify>,
) -> std::io::Result<()> {
    let (client, _) = listener.accept().await?;
    let server = TcpStream::connect(("127.0.0.1", server_port)).await?;
    // The client starts its handshake only after the server's 150 to RETR or LIST.
    let client = shared.acceptor.accept(client).await?;
    let server = shared.connector.connect(localhost(), server).await?;
    let cutting = retrieving.lock().unwrap().ends_with(&shared.file)
        && !shared.cut_done.load(Ordering::SeqCst);
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
    let upstream = tokio::spawn(pass_on(client_read, server_write));
    let mut from = server_read;
    let mut to = client_write;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            to.shutdown().await?;
            let _ = upstream.await;
            return Ok(());
        }
        to.write_all(&buffer[..n]).await?;
        sent += n as u64;
        if cutting && sent >= shared.after && !shared.cut_done.swap(true, Ordering::SeqCst) {
            match shared.cut {
                Cut::Data => {
                    upstream.abort();
                    return Ok(());
                }
                Cut::Control => cut.notify_one(),
            }
        }
    }
}

async fn pass_on(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    tokio::io::copy(&mut from, &mut to).await?;
    to.shutdown().await
}

/// A day of CDRs downloaded through the proxy, cut once at about a third of the file.
fn cut_mid_download(name: &str, cut: Cut) {
    let case = Case::new(name);
    let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let mut spec = DropSpec::new(5, day, day);
    spec.cdr_rows_per_day = 20_000;
    spec.recordings_per_day = Some(0);
    spec.queue = false;
    write_drop(&case.remote, &spec).unwrap();
    let csv = std::fs::read(case.remote.join("CDRs/2024-03-01.csv")).unwrap();
    let size = csv.len() as u64;

    let direct = case.config("");
    let reference = case.run_days(&direct, "2024-03-01", "2024-03-01");
    assert_eq!(reference.code, 0, "{reference:?}");
    let want = dataset(&case.out());
    std::fs::remove_dir_all(case.out()).unwrap();

    let (port, proxy) = start(cut, "CDRs/2024-03-01.csv", size / 3);
    let text = std::fs::read_to_string(&direct).unwrap().replace(
        &format!("localhost:{}\"", case.server.port),
        &format!("localhost:{port}\""),
    );
    std::fs::write(&direct, text).unwrap();
    let run = case.run_days(&direct, "2024-03-01", "2024-03-01");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(proxy.cut_done.load(Ordering::SeqCst), "never cut: {run:?}");
    assert!(
        run.stderr
            .contains("source operation failed; connecting again to retry"),
        "{run:?}"
    );
    let commands = proxy.commands.lock().unwrap().clone();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("EPSV") || c.starts_with("PASV")),
        "{commands:?}"
    );
    let resumed_at: Vec<u64> = commands
        .iter()
        .filter_map(|c| c.strip_prefix("REST ")?.parse().ok())
        .collect();
    match cut {
        // Resumed from what had arrived: past the cut, not from the start.
        Cut::Data => assert!(
            resumed_at.len() == 1 && resumed_at[0] >= size / 3 && resumed_at[0] < size,
            "{resumed_at:?} of {size}: {commands:?}"
        ),
        // The data went on to the end; only the closing reply was lost.
        Cut::Control => assert!(
            resumed_at == [size],
            "{resumed_at:?} of {size}: {commands:?}"
        ),
    }
    let ledger = json(&case.out().join("_state/ledger/cdr/2024-03-01.json"));
    let sha = cdr_ingest::pipeline::hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &csv).as_ref(),
    );
    assert_eq!(ledger["sha256"], sha);
    let got = dataset(&case.out());
    assert!(got == want, "{}", difference(&got, &want));
}

#[test]
fn a_data_connection_cut_mid_download_resumes_with_rest() {
    cut_mid_download("proxy-cut-data", Cut::Data);
}

#[test]
fn a_control_connection_cut_mid_download_resumes_with_rest() {
    cut_mid_download("proxy-cut-control", Cut::Control);
}

#[test]
fn passive_replies_are_read_in_both_forms() {
    assert_eq!(
        passive_port("229 Entering Extended Passive Mode (|||40012|)\r\n"),
        Some(40012)
    );
    assert_eq!(
        passive_port("227 Entering Passive Mode (127,0,0,1,156,76).\r\n"),
        Some(156 * 256 + 76)
    );
    assert_eq!(passive_port("226 Transfer complete.\r\n"), None);
}
