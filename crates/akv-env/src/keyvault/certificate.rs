//! A service principal's certificate as a client assertion (RFC 7523, as Entra ID takes
//! it): a JWT signed RS256 with the certificate's key, naming the certificate by its
//! SHA-256 thumbprint (`x5t#S256`) and, for older endpoints, its SHA-1 one (`x5t`),
//! handed to azure_identity's `ClientAssertionCredential`.
//!
//! Why not azure_identity's `ClientCertificateCredential`: it needs its
//! `client_certificate` feature, which links OpenSSL, and akv-env is a small static
//! binary (scripts/check-akv-env-deps refuses openssl in its graph). The signature is
//! made with `ring` (already linked: rustls's crypto provider); PKCS#12 files are read by
//! akv-env's own reader ([`crate::parts::pkcs12`]), PEM files by [`crate::parts::pem_blocks`].
//!
//! Claims, as Entra ID documents them ("Microsoft identity platform application
//! authentication certificate credentials"): `aud` = the token endpoint, `iss` = `sub` =
//! the client id, `jti` unique, `nbf` and `exp` (10 minutes here).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::error::{Error, ErrorKind};
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use der::Decode;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use sha1::Digest;

use crate::parts::{pem_blocks, pkcs12};

/// A certificate file is a few KiB, with its chain.
pub const MAX_CERTIFICATE_FILE: u64 = 256 * 1024;
/// How long an assertion is valid.
const LIFETIME: Duration = Duration::from_secs(600);

/// The certificate's key and thumbprints, loaded once.
pub struct Certificate {
    key: RsaKeyPair,
    /// base64url SHA-256 and SHA-1 of the certificate's DER.
    x5t_s256: String,
    x5t: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads `path`: PEM with the certificate and its unencrypted private key, or PKCS#12
    /// (DER, with `password` when it has one). The error says what is wrong with the file,
    /// never its content.
    pub fn load(path: &Path, password: Option<&str>) -> Result<Certificate, String> {
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("it is not a regular file".into());
        }
        if meta.len() > MAX_CERTIFICATE_FILE {
            return Err(format!(
                "it holds {} bytes, more than the {} KiB a certificate file takes",
                meta.len(),
                MAX_CERTIFICATE_FILE / 1024
            ));
        }
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        Certificate::from_bytes(&data, password)
    }

    /// [`Certificate::load`] on the file's bytes.
    pub fn from_bytes(data: &[u8], password: Option<&str>) -> Result<Certificate, String> {
        let (keys, certs) = match std::str::from_utf8(data) {
            Ok(text) if text.contains("-----BEGIN ") => from_pem(text)?,
            _ => {
                let archive = pkcs12::read_with_password(data, password).map_err(|e| {
                    format!("it is neither PEM nor a PKCS#12 archive that opens: {e}")
                })?;
                (
                    archive.keys.into_iter().map(|k| (true, k.der)).collect(),
                    archive.certs.into_iter().map(|c| c.der).collect(),
                )
            }
        };
        let (pkcs8, der) = keys
            .first()
            .ok_or("it holds no private key: the file must hold the certificate and its key")?;
        let key = if *pkcs8 {
            RsaKeyPair::from_pkcs8(der)
        } else {
            RsaKeyPair::from_der(der)
        }
        .map_err(|e| {
            format!("its private key is not an RSA key that can sign ({e}): Entra ID takes RSA certificates as client credentials")
        })?;
        let public = key.public().as_ref().to_vec();
        let leaf = certs
            .iter()
            .find(|c| rsa_public_key(c).as_deref() == Some(public.as_slice()))
            .ok_or("it holds no certificate for its private key")?;
        Ok(Certificate {
            key,
            x5t_s256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(leaf)),
            x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(leaf)),
            rng: SystemRandom::new(),
        })
    }

    /// The SHA-256 thumbprint, base64url (what `x5t#S256` carries).
    pub fn thumbprint_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// A signed assertion for `client_id` at the token endpoint `audience`, at `now`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<String, String> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| "no random numbers for the assertion id".to_string())?;
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.x5t,
            "x5t#S256": self.x5t_s256,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "nbf": now,
            "iat": now,
            "exp": now + LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "cannot sign the assertion with the certificate's key".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// (is PKCS#8, DER) of each private key, and each certificate's DER, of a PEM file.
type KeysAndCerts = (Vec<(bool, Vec<u8>)>, Vec<Vec<u8>>);

fn from_pem(text: &str) -> Result<KeysAndCerts, String> {
    let blocks = pem_blocks(text).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    for (label, der) in blocks {
        match label.as_str() {
            "CERTIFICATE" => certs.push(der),
            "PRIVATE KEY" => keys.push((true, der)),
            "RSA PRIVATE KEY" => keys.push((false, der)),
            "ENCRYPTED PRIVATE KEY" => {
                return Err("its private key is encrypted: give the key unencrypted in the PEM file, or use a PKCS#12 file with AZURE_CLIENT_CERTIFICATE_PASSWORD".into())
            }
            _ => {}
        }
    }
    Ok((keys, certs))
}

/// The RSAPublicKey DER of a certificate's subject public key (what ring's public key is).
fn rsa_public_key(cert: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(cert).ok()?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    Some(spki.subject_public_key.raw_bytes().to_vec())
}

/// The client assertion the credential asks for: a fresh JWT each time.
#[derive(Debug)]
pub struct CertificateAssertion {
    pub certificate: Arc<Certificate>,
    pub client_id: String,
    /// The token endpoint: `{authority}/{tenant}/oauth2/v2.0/token`.
    pub audience: String,
    pub path: PathBuf,
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.certificate
            .assertion(&self.client_id, &self.audience, SystemTime::now())
            .map_err(|e| {
                Error::with_message(
                    ErrorKind::Credential,
                    format!(
                        "cannot make the client assertion from the certificate {}: {e}",
                        self.path.display()
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/data/pkcs12/", $name)).as_slice()
        };
    }

    fn pem(label: &str, der: &[u8]) -> String {
        crate::parts::pem(label, der)
    }

    #[test]
    fn pem_and_pkcs12_give_the_same_thumbprint_and_a_verifiable_signature() {
        let leaf = fixture!("leaf.der");
        let text = format!(
            "{}{}{}",
            pem("CERTIFICATE", fixture!("intermediate.der")),
            pem("PRIVATE KEY", fixture!("leaf.key.der")),
            pem("CERTIFICATE", leaf)
        );
        let from_pem = Certificate::from_bytes(text.as_bytes(), None).expect("PEM");
        let from_p12 =
            Certificate::from_bytes(fixture!("password.p12"), Some("secret")).expect("PKCS#12");
        let want = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(leaf));
        assert_eq!(
            from_pem.thumbprint_s256(),
            want,
            "the leaf, not the intermediate"
        );
        assert_eq!(from_p12.thumbprint_s256(), want);

        let jwt = from_pem
            .assertion(
                "c1",
                "https://login.example/t/oauth2/v2.0/token",
                UNIX_EPOCH + Duration::from_secs(1000),
            )
            .expect("signed");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t#S256"], want);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "c1");
        assert_eq!(claims["sub"], "c1");
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(
            (claims["nbf"].as_u64(), claims["exp"].as_u64()),
            (Some(1000), Some(1600))
        );
        let public = rsa_public_key(leaf).expect("RSA");
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public,
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies with the certificate's public key");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases: [(Vec<u8>, Option<&str>, &str); 5] = [
            (pem("CERTIFICATE", fixture!("leaf.der")).into_bytes(), None, "it holds no private key"),
            (pem("PRIVATE KEY", fixture!("leaf.key.der")).into_bytes(), None, "it holds no certificate for its private key"),
            (
                format!("{}{}", pem("PRIVATE KEY", fixture!("ec-leaf.key.der")), pem("CERTIFICATE", fixture!("ec-leaf.der"))).into_bytes(),
                None,
                "its private key is not an RSA key",
            ),
            (fixture!("password.p12").to_vec(), Some("wrong"), "it is neither PEM nor a PKCS#12 archive that opens: it does not open with the given password"),
            (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n".to_vec(), None, "its private key is encrypted"),
        ];
        for (data, password, want) in cases {
            let err = Certificate::from_bytes(&data, password).expect_err(want);
            assert!(err.starts_with(want), "{err}");
        }
    }
}
