//! akv-env's one TLS configuration, for Entra ID, the token endpoint and every vault:
//! rustls on `ring` (not aws-lc-rs: see Cargo.toml), the platform's roots
//! (rustls-platform-verifier: SSL_CERT_FILE, the system store) plus the test set-up's
//! extra ones, ALPN `h2` then `http/1.1`, TLS 1.3 and 1.2.
//!
//! The provider is ring's with the AES-GCM cipher suites only. Key Vault, Entra ID and
//! every TLS 1.2+ server that the platform's roots can vouch for offer AES-GCM (TLS 1.3
//! requires it); ChaCha20-Poly1305 is the choice of clients without AES hardware, which
//! akv-env's platforms (x86-64, arm64 servers) all have. Naming the suites here, instead
//! of taking ring's default provider, keeps the ChaCha20-Poly1305 code out of the binary
//! that every injected pod downloads.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use webpki::ring as alg;

use super::http::HttpSetup;

/// The one TLS configuration: built once, so the platform's roots are read once per start
/// (rustls-platform-verifier loads them when the verifier is made).
pub fn tls_config(setup: &HttpSetup) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(provider());
    let mut extra = Vec::new();
    for pem in &setup.extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            extra.push(cert.map_err(|e| format!("bad extra root certificate: {e}"))?);
        }
    }
    let verifier: Arc<dyn ServerCertVerifier> = Arc::new(
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| format!("cannot load the trusted root certificates: {e}"))?,
    );
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// ring, with the suites and groups akv-env offers (see the module's text).
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURES,
        secure_random: &SystemRandom,
        key_provider: &NoClientKeys,
    }
}

/// The server signatures akv-env verifies: ECDSA on P-256 and P-384, Ed25519, RSA
/// (PKCS#1 v1.5 and PSS, 2048 to 8192 bits), each TLS signature scheme mapped to the
/// webpki algorithms that check it.
static SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        // TLS 1.2 does not tie an ECDSA scheme to one curve (TLS 1.3 does): both curves.
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// The operating system's random numbers (getrandom), through ring.
#[derive(Debug)]
struct SystemRandom;

impl SecureRandom for SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
            .map_err(|_| GetRandomFailed)
    }
}

/// akv-env presents no client certificate in TLS (a service principal's certificate
/// signs an assertion instead, `super::certificate`), so it loads no TLS keys.
#[derive(Debug)]
struct NoClientKeys;

impl KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "akv-env uses no TLS client certificate".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_consistent_and_offers_no_chacha() {
        let p = provider();
        // Every scheme in the mapping is checked by algorithms that are in `all`.
        for (scheme, algs) in SIGNATURES.mapping {
            for a in *algs {
                assert!(
                    SIGNATURES
                        .all
                        .iter()
                        .any(|b| std::ptr::addr_eq(*a as *const _, *b as *const _)),
                    "{scheme:?}"
                );
            }
        }
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert!(names.iter().all(|n| n.contains("AES")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("TLS13_")), "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("TLS_ECDHE_RSA")),
            "{names:?}"
        );
        let mut buf = [0u8; 32];
        p.secure_random.fill(&mut buf).expect("random");
        assert_ne!(buf, [0u8; 32]);
    }

    #[test]
    fn the_configuration_offers_h2_then_http11() {
        let config = tls_config(&HttpSetup::default()).expect("tls");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
