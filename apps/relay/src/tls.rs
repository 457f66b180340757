//! TLS server configuration from PEM files (rustls with ring).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor for the certificate chain and key in `cert` and `key`.
/// Errors name the file and the setting: these are the relay's own
/// certificate and key, not something a peer sent.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("tls_cert {}: cannot read it", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("tls_cert {}: malformed PEM", cert.display()))?;
    if certs.is_empty() {
        bail!(
            "tls_cert {}: no PEM certificate in it (the relay's own TLS certificate chain)",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "tls_key {}: no readable PEM private key (the relay's own TLS key)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| format!("tls_cert {} with tls_key", cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
