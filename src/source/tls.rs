//! TLS client settings: the system's trusted roots plus an optional provider CA, or,
//! only when the operator asks for it by an option named `insecure…`, no verification.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::SourceError;
use crate::config::TlsVersion;

/// Builds the client configuration, offering TLS 1.2 and versions up to `max_version`.
/// The one crypto provider is named explicitly so that no other crate's choice of
/// default can make rustls panic at first use.
pub fn client_config(
    ca_file: Option<&Path>,
    insecure: bool,
    max_version: TlsVersion,
) -> Result<ClientConfig, SourceError> {
    let mut provider = aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| !is_aes_128(suite));
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(match max_version {
            TlsVersion::Tls13 => rustls::DEFAULT_VERSIONS,
            TlsVersion::Tls12 => TLS_1_2_ONLY,
        })
        .map_err(|e| SourceError::TlsSetup(e.to_string()))?;
    if insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = system_roots().clone();
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect())
            .map_err(|e| {
                SourceError::TlsSetup(format!(
                    "cannot read source.ca_file {}: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(SourceError::TlsSetup(format!(
                "source.ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
        let (_, rejected) = roots.add_parsable_certificates(certs);
        if rejected > 0 {
            return Err(SourceError::TlsSetup(format!(
                "source.ca_file {}: {rejected} certificate(s) could not be parsed",
                path.display()
            )));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// AES-128-GCM is offered first, as Go, Chrome and Firefox do. Every data connection
/// of FTPS is a TLS handshake, and AES-128-GCM's key schedule is SHA-256, which
/// processors compute in hardware, where AES-256-GCM's is SHA-384 (4 % of the CPU of
/// a 2,000-recording copy). On processors without vector AES instructions, its four
/// fewer rounds are also a quarter less work on every byte, on both ends.
static TLS_1_2_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn is_aes_128(suite: &rustls::SupportedCipherSuite) -> bool {
    use rustls::CipherSuite::*;
    matches!(
        suite.suite(),
        TLS13_AES_128_GCM_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}

/// The system's trusted roots, read once per process. Reading them opens and parses
/// every file under `/etc/ssl/certs` (some 300 system calls on Debian), and every
/// control connection needs them: five for a pass with four transfers. A changed
/// system store is seen after a restart, as with most clients. Unreadable system
/// stores are not fatal when a CA file is given.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_is_offered_first_in_each_version() {
        let config = client_config(None, false, TlsVersion::Tls13).unwrap();
        let suites: Vec<_> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let first_of = |tls13: bool| {
            suites
                .iter()
                .copied()
                .find(|s| format!("{s:?}").starts_with("TLS13_") == tls13)
        };
        assert_eq!(
            first_of(true),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        assert!(matches!(
            first_of(false),
            Some(
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                    | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            )
        ));
        // Nothing was dropped: AES-256 and ChaCha20 are still offered after it.
        assert_eq!(
            suites.len(),
            aws_lc_rs::default_provider().cipher_suites.len()
        );
    }
}
