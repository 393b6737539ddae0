//! Test certificates made with rcgen: a CA, leaves it signs, and rustls server
//! configurations that serve them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names of a server on loopback: `localhost` and `127.0.0.1`.
pub const LOOPBACK: &[&str] = &["localhost", "127.0.0.1"];

/// A CA: its certificate and what signs leaves with it.
pub struct TestCa {
    pub pem: String,
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA (fresh key) whose subject is `CN=common_name`.
    pub fn new(common_name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), subject
    /// `CN=common_name`, signed by this CA, with a fresh key.
    pub fn leaf(&self, common_name: &str, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl Leaf {
    /// A rustls server configuration (ring, no client authentication) serving this leaf.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("server configuration");
        Arc::new(config)
    }

    /// Writes `DIR/tls.crt` and `DIR/tls.key` (PEM), as a Kubernetes TLS Secret names
    /// them; returns their paths.
    pub fn write_pem(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, &self.cert_pem)
            .unwrap_or_else(|e| panic!("write {}: {e}", cert.display()));
        std::fs::write(&key, &self.key_pem)
            .unwrap_or_else(|e| panic!("write {}: {e}", key.display()));
        (cert, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_served_by_its_config() {
        let ca = TestCa::new("testkit CA");
        assert!(ca.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = ca.leaf("server", LOOPBACK);
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        let config = leaf.server_config();
        assert!(config.alpn_protocols.is_empty());
    }
}
