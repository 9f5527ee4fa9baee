//! HTTPS for the mocks: a CA and a server certificate for `localhost`/`127.0.0.1`
//! generated at start (or a certificate and key loaded from PEM files), the CA written to
//! a PEM file clients can be told to trust.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Result};

/// A generated CA and the server configuration built on it.
pub struct Tls {
    /// The CA certificate in PEM, to be trusted by clients.
    pub ca_pem: String,
    /// The rustls server configuration (ALPN h2 and http/1.1).
    pub config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Generates a CA and a leaf for the given host names and IP addresses.
    pub fn generate(names: &[&str]) -> Result<Self> {
        let tls = |e: rcgen::Error| Error::Tls(e.to_string());
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "l2f mocks local CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(tls)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(tls)?;

        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut leaf = CertificateParams::new(names).map_err(tls)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "l2f mocks");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let leaf_key = KeyPair::generate().map_err(tls)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(tls)?;

        let chain: Vec<CertificateDer<'static>> =
            vec![leaf_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        Ok(Self {
            ca_pem: ca_cert.pem(),
            config: server_config(chain, key)?,
        })
    }

    /// Loads a certificate chain and its private key from PEM files (for a certificate
    /// issued elsewhere); the chain stands in for the CA that clients are told to trust.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        use rustls::pki_types::pem::PemObject;
        let bad = |what: &Path, e: rustls::pki_types::pem::Error| {
            Error::Tls(format!("{}: {e}", what.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, e))?;
        if chain.is_empty() {
            return Err(Error::Tls(format!("{}: no certificate", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
        Ok(Self {
            ca_pem: std::fs::read_to_string(cert)?,
            config: server_config(chain, key)?,
        })
    }

    /// Writes the CA certificate to `path` (PEM).
    pub fn write_ca(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &self.ca_pem)?;
        Ok(())
    }
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
