//! The demo's FTPS server: libunftp serving the generated drop over explicit TLS on a
//! free loopback port, with a CA and a server certificate made on the spot and trusted
//! for this run only. Nothing is installed; the server stops with the process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libunftp::options::FtpsRequired;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use unftp_sbe_fs::Filesystem;

/// How long the server may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A running demo server and the CA its certificate is signed by.
pub struct DemoServer {
    pub port: u16,
    pub ca_file: PathBuf,
}

/// Serves `root` over explicit FTPS; certificates are written to `certs`.
pub async fn start(root: PathBuf, certs: &Path) -> anyhow::Result<DemoServer> {
    std::fs::create_dir_all(certs)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cdr-ingest demo CA (this run only)");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut server_params = CertificateParams::new(vec!["localhost".to_string()])?;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &ca)?;
    let (ca_file, cert_file, key_file) = (
        certs.join("demo-ca.pem"),
        certs.join("server.pem"),
        certs.join("server.key"),
    );
    std::fs::write(&ca_file, ca.pem())?;
    std::fs::write(&cert_file, server_cert.pem())?;
    std::fs::write(&key_file, server_key.serialize_pem())?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = libunftp::ServerBuilder::new(Box::new(move || {
        Filesystem::new(root.clone()).expect("the drop folder exists")
    }))
    .ftps(cert_file, key_file)
    .ftps_required(FtpsRequired::All, FtpsRequired::All)
    .greeting("cdr-ingest demo drop")
    .build()?;
    tokio::spawn(async move {
        if let Err(e) = server.listen(format!("127.0.0.1:{port}")).await {
            tracing::error!(error = %e, "the demo FTPS server stopped");
        }
    });
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(
            started.elapsed() < START_DEADLINE,
            "the demo FTPS server did not start listening on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(DemoServer { port, ca_file })
}
