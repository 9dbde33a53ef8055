//! `/cert status`: a TLS handshake with the domain on the VPS, showing what a visitor gets:
//! issuer, names, expiry, and whether the chain validates against the configured roots.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

/// What the served certificate says.
#[derive(Debug, Clone, Serialize)]
pub struct CertStatus {
    pub domain: String,
    pub issuer: String,
    pub subject_alt_names: Vec<String>,
    pub apex_covered: bool,
    pub www_covered: bool,
    pub not_after: String,
    pub days_left: i64,
    /// `Ok` when the chain validates for the domain against the configured roots, else why not.
    pub chain: Result<(), String>,
}

impl CertStatus {
    pub fn is_good(&self) -> bool {
        self.apex_covered && self.www_covered && self.days_left > 0 && self.chain.is_ok()
    }

    pub fn render(&self) -> String {
        format!(
            "certificate of {}\n  issuer:     {}\n  names:      {} (apex {}, www {})\n  not after:  {} ({} days left)\n  chain:      {}\n",
            self.domain,
            self.issuer,
            self.subject_alt_names.join(", "),
            if self.apex_covered { "yes" } else { "NO" },
            if self.www_covered { "yes" } else { "NO" },
            self.not_after,
            self.days_left,
            match &self.chain {
                Ok(()) => "valid against the configured roots".to_owned(),
                Err(e) => format!("INVALID: {e}"),
            }
        )
    }
}

/// Accepts any certificate during the handshake but keeps the chain, so it can be inspected
/// and verified separately (an expired or untrusted certificate is still worth showing).
#[derive(Debug)]
struct Recorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        // Poisoned only by a panic while the chain was stored: it is replaced whole anyway.
        *self.chain.lock().unwrap_or_else(PoisonError::into_inner) = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn roots(trusted: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match trusted {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading trusted roots {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                store.add(cert?)?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// Handshakes with `domain` at `ip:443` and reports on the certificate it serves.
pub async fn status(
    domain: &str,
    ip: IpAddr,
    trusted: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<CertStatus> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        chain: Mutex::new(Vec::new()),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(domain.to_owned())?;
    tokio::time::timeout(timeout, async {
        let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, 443))
            .await
            .with_context(|| format!("connecting to {ip}:443"))?;
        connector
            .connect(name.clone(), tcp)
            .await
            .with_context(|| format!("TLS handshake with {domain} at {ip}:443"))
    })
    .await
    .map_err(|_| anyhow!("TLS handshake with {domain} at {ip}:443 timed out"))??;
    let chain = recorder
        .chain
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| anyhow!("{domain} sent no certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| anyhow!("cannot parse the certificate: {e}"))?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let not_after = cert.validity().not_after;
    let days_left = (not_after.timestamp() - chrono::Utc::now().timestamp()) / 86_400;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(trusted)?),
        provider,
    )
    .build()?;
    let now = UnixTime::now();
    let chain_result = verifier
        .verify_server_cert(leaf, intermediates, &name, &[], now)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let www = format!("www.{domain}");
    Ok(CertStatus {
        domain: domain.to_owned(),
        issuer: cert.issuer().to_string(),
        apex_covered: sans.iter().any(|s| s == domain),
        www_covered: sans.contains(&www),
        subject_alt_names: sans,
        not_after: not_after
            .to_rfc2822()
            .unwrap_or_else(|_| not_after.to_string()),
        days_left,
        chain: chain_result,
    })
}
