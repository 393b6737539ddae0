//! `#pfx`: a certificate with its private key and chain as a PKCS#12 archive (RFC 7292)
//! without a password, in the modern form `openssl pkcs12 -export -passout pass:` (3.x)
//! writes, minus the pointless encryption of the public certificates:
//! - the key in a PKCS#8 shrouded key bag, PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
//!   PBKDF2 over the zero-length password (the UTF-8 bytes of "");
//! - the certificates, leaf first, in plain certificate bags; the leaf and the key share a
//!   `localKeyId`, and both carry the Key Vault name as `friendlyName` (Java's alias);
//! - an HMAC-SHA256 MAC keyed by the RFC 7292 appendix B derivation over the empty
//!   BMPString (two zero bytes), which is what `openssl ... -passin pass:` and Java's
//!   `KeyStore.load(in, "".toCharArray())` derive.
//!
//! DER is written with the small helpers of `parts.rs`; the cipher, PBKDF2 and the MAC
//! are RustCrypto's (`pkcs5`, `pkcs12::kdf`, `hmac`, `sha2`), already linked for reading.

use der::oid::ObjectIdentifier;
use hmac::{KeyInit, Mac};
use pkcs12::kdf::{derive_key, Pkcs12KeyType};
use sha2::{Digest, Sha256};

use super::{seq, tlv, CertSecret, PartError};

/// openssl 3's default, for the MAC and PBKDF2 alike.
const ITERATIONS: u32 = 2048;
/// RFC 7292 B.1: the empty password as a BMPString with its terminator.
const MAC_PASSWORD: &[u8] = &[0, 0];
/// PBES2's PBKDF2 takes the password's octets: none.
const PBKDF2_PASSWORD: &[u8] = &[];

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const X509_CERTIFICATE: &str = "1.2.840.113549.1.9.22.1";
const FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
const LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// Where salts and IVs come from (the system's random source; a fixed one in tests).
pub trait Random {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), PartError>;
}

/// The operating system's random source.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), PartError> {
        getrandom::getrandom(buf).map_err(|e| PartError::Pfx(format!("no random bytes: {e}")))
    }
}

fn oid(dotted: &str) -> Vec<u8> {
    match ObjectIdentifier::new(dotted) {
        Ok(o) => tlv(0x06, o.as_bytes()),
        // Every OID here is a constant that parses; an empty TLV would fail the readers.
        Err(_) => Vec::new(),
    }
}

fn octets(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

fn set(content: &[u8]) -> Vec<u8> {
    tlv(0x31, content)
}

/// `[0] EXPLICIT`.
fn explicit0(content: &[u8]) -> Vec<u8> {
    tlv(0xa0, content)
}

fn integer(n: u32) -> Vec<u8> {
    super::der_uint(&n.to_be_bytes())
}

fn bmp_string(s: &str) -> Vec<u8> {
    let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
    tlv(0x1e, &bytes)
}

/// PKCS#8 from the key as stored: PKCS#8 as it is; PKCS#1 (RSA) and SEC1 (EC, with its
/// curve) wrapped.
pub fn to_pkcs8(label: &str, der: &[u8]) -> Result<Vec<u8>, PartError> {
    let wrap = |algorithm: Vec<u8>| seq(&[integer(0), seq(&algorithm), octets(der)].concat());
    match label {
        "PRIVATE KEY" => Ok(der.to_vec()),
        "RSA PRIVATE KEY" => Ok(wrap([oid(RSA_ENCRYPTION), vec![0x05, 0x00]].concat())),
        "EC PRIVATE KEY" => {
            use der::{Decode, Tagged};
            let items = Vec::<der::asn1::AnyRef<'_>>::from_der(der)
                .map_err(|_| PartError::Pfx("the EC private key is not valid DER".into()))?;
            let curve = items
                .iter()
                .find(|i| {
                    i.tag()
                        == der::Tag::ContextSpecific {
                            constructed: true,
                            number: der::TagNumber(0),
                        }
                })
                .map(|i| i.value().to_vec())
                .ok_or_else(|| {
                    PartError::Pfx("the EC private key does not name its curve".into())
                })?;
            Ok(wrap([oid(EC_PUBLIC_KEY), curve].concat()))
        }
        other => Err(PartError::Pfx(format!(
            "unsupported private key type {other}"
        ))),
    }
}

/// Builds the archive from the certificate's backing secret (key and chain, leaf first).
/// `name` becomes the `friendlyName` of the key and the leaf.
pub fn build(secret: &CertSecret, name: &str, rng: &mut dyn Random) -> Result<Vec<u8>, PartError> {
    let key_pem = secret.key_pem.as_deref().ok_or(PartError::NoKey)?;
    let (label, key_der) = super::pem_blocks(key_pem)?
        .into_iter()
        .next()
        .ok_or(PartError::NoKey)?;
    let key = to_pkcs8(&label, &key_der)?;
    let leaf = secret.chain.first().ok_or(PartError::NoChain)?;
    let key_id = Sha256::digest(leaf).to_vec();

    let attributes = |with_id: bool| {
        let mut attrs = seq(&[oid(FRIENDLY_NAME), set(&bmp_string(name))].concat());
        if with_id {
            attrs.extend(seq(&[oid(LOCAL_KEY_ID), set(&octets(&key_id))].concat()));
        }
        set(&attrs)
    };
    let cert_bags: Vec<u8> = secret
        .chain
        .iter()
        .enumerate()
        .flat_map(|(i, cert)| {
            let bag = seq(&[oid(X509_CERTIFICATE), explicit0(&octets(cert))].concat());
            let attrs = if i == 0 { attributes(true) } else { Vec::new() };
            seq(&[oid(CERT_BAG), explicit0(&bag), attrs].concat())
        })
        .collect();

    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt)?;
    rng.fill(&mut iv)?;
    let params = pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(ITERATIONS, &salt, iv)
        .map_err(|e| PartError::Pfx(format!("PBES2 parameters: {e}")))?;
    let encrypted = params
        .encrypt(PBKDF2_PASSWORD, &key)
        .map_err(|e| PartError::Pfx(format!("cannot encrypt the key: {e}")))?;
    let algorithm = der::Encode::to_der(&pkcs5::EncryptionScheme::from(params))
        .map_err(|e| PartError::Pfx(format!("PBES2 parameters: {e}")))?;
    let shrouded = seq(&[algorithm, octets(&encrypted)].concat());
    let key_bag = seq(&[
        oid(SHROUDED_KEY_BAG),
        explicit0(&shrouded),
        attributes(true),
    ]
    .concat());

    let data = |content: &[u8]| seq(&[oid(ID_DATA), explicit0(&octets(content))].concat());
    let auth_safe = seq(&[data(&seq(&cert_bags)), data(&seq(&key_bag))].concat());

    let mut mac_salt = [0u8; 16];
    rng.fill(&mut mac_salt)?;
    let mac_key = derive_key::<Sha256>(
        MAC_PASSWORD,
        &mac_salt,
        Pkcs12KeyType::Mac,
        ITERATIONS as i32,
        32,
    );
    let mut hmac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&mac_key)
        .map_err(|_| PartError::Pfx("MAC key".into()))?;
    hmac.update(&auth_safe);
    let digest = hmac.finalize().into_bytes();
    let mac_data = seq(&[
        seq(&[
            seq(&[oid(SHA256_OID), vec![0x05, 0x00]].concat()),
            octets(&digest),
        ]
        .concat()),
        octets(&mac_salt),
        integer(ITERATIONS),
    ]
    .concat());
    Ok(seq(&[integer(3), data(&auth_safe), mac_data].concat()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts up: salts and IVs that differ and repeat from run to run.
    pub struct Counter(u8);

    impl Random for Counter {
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), PartError> {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
            Ok(())
        }
    }

    /// A well-formed PKCS#8 (Ed25519) key.
    fn key() -> Vec<u8> {
        let algorithm = seq(&oid("1.3.101.112"));
        seq(&[integer(0), algorithm, octets(&octets(&[9; 32]))].concat())
    }

    fn secret() -> CertSecret {
        CertSecret {
            key_pem: Some(super::super::pem("PRIVATE KEY", &key())),
            chain: vec![vec![0x30, 0x00], vec![0x30, 0x01, 0x00]],
        }
    }

    #[test]
    fn our_own_reader_reads_it() {
        let der = build(&secret(), "tls", &mut Counter(0)).expect("builds");
        let archive = super::super::pkcs12::read(&der).expect("reads");
        assert_eq!(archive.keys.len(), 1);
        assert_eq!(archive.keys[0].der, key());
        let certs: Vec<&[u8]> = archive.certs.iter().map(|c| c.der.as_slice()).collect();
        assert_eq!(certs, [&[0x30, 0x00][..], &[0x30, 0x01, 0x00][..]]);
        assert_eq!(archive.keys[0].local_key_id, archive.certs[0].local_key_id);
        assert!(archive.keys[0].local_key_id.is_some());
        assert_eq!(archive.certs[1].local_key_id, None);
    }

    #[test]
    fn refuses_what_it_cannot_build() {
        let mut no_key = secret();
        no_key.key_pem = None;
        assert_eq!(build(&no_key, "x", &mut Counter(0)), Err(PartError::NoKey));
        let mut no_chain = secret();
        no_chain.chain.clear();
        assert_eq!(
            build(&no_chain, "x", &mut Counter(0)),
            Err(PartError::NoChain)
        );
        assert_eq!(
            to_pkcs8("DSA PRIVATE KEY", &[])
                .expect_err("dsa")
                .to_string(),
            "cannot build the PKCS#12 archive: unsupported private key type DSA PRIVATE KEY"
        );
        assert_eq!(
            to_pkcs8("EC PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x01])
                .expect_err("no curve")
                .to_string(),
            "cannot build the PKCS#12 archive: the EC private key does not name its curve"
        );
    }

    #[test]
    fn wraps_pkcs1_and_sec1() {
        let rsa = to_pkcs8("RSA PRIVATE KEY", &[0x30, 0x00]).expect("rsa");
        let info = pkcs8::PrivateKeyInfoRef::try_from(rsa.as_slice()).expect("pkcs8");
        assert_eq!(info.algorithm.oid.to_string(), RSA_ENCRYPTION);
        assert_eq!(info.private_key.as_bytes(), [0x30, 0x00]);
        // ECPrivateKey { 1, OCTET STRING, [0] prime256v1 }
        let p256 = oid("1.2.840.10045.3.1.7");
        let sec1 = seq(&[vec![0x02, 0x01, 0x01], octets(&[7; 32]), explicit0(&p256)].concat());
        let ec = to_pkcs8("EC PRIVATE KEY", &sec1).expect("ec");
        let info = pkcs8::PrivateKeyInfoRef::try_from(ec.as_slice()).expect("pkcs8");
        assert_eq!(info.algorithm.oid.to_string(), EC_PUBLIC_KEY);
        assert_eq!(info.private_key.as_bytes(), sec1.as_slice());
    }
}
