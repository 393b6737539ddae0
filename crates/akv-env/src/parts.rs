//! Taking a part out of a Key Vault object (pure):
//! - `#cert`: the certificate's `cer` (DER) as PEM;
//! - `#key`, `#chain`: from the certificate's backing secret, stored as PEM
//!   (`application/x-pem-file`) or base64 PKCS#12 (`application/x-pkcs12`, no password;
//!   read by `parts/pkcs12.rs`), the chain put in order leaf first by issuer and subject;
//! - `#pubkey`: a key's public JWK (RSA or EC) as a PEM SubjectPublicKeyInfo.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

pub mod base64_value;
mod chain;
pub mod json_field;
pub mod pfx;
pub mod pkcs12;

use chain::{cert_info, key_public, leaf_index, order_chain, CertInfo};

pub const PEM_CONTENT_TYPE: &str = "application/x-pem-file";
pub const PKCS12_CONTENT_TYPE: &str = "application/x-pkcs12";

/// Why a part cannot be taken. Messages never hold key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error("the certificate has no X.509 data (cer)")]
    NoCer,
    #[error("the certificate's secret holds no private key")]
    NoKey,
    #[error("the certificate's secret holds an encrypted private key; Key Vault certificates have unencrypted ones")]
    EncryptedKey,
    #[error("the certificate's secret holds no certificate")]
    NoChain,
    #[error("the certificate's secret has content type '{0}'; expected application/x-pem-file or application/x-pkcs12")]
    ContentType(String),
    #[error("the certificate's secret is not valid PEM: {0}")]
    Pem(&'static str),
    #[error("the certificate's secret is not a PKCS#12 archive without password: {0}")]
    Pkcs12(String),
    #[error("cannot build the PKCS#12 archive: {0}")]
    Pfx(String),
    #[error("key type '{0}' has no public key in PEM form (only RSA and EC keys do)")]
    KeyType(String),
    #[error("the key lacks its '{0}' component")]
    MissingJwk(&'static str),
    #[error("unsupported EC curve '{0}'")]
    Curve(String),
}

/// The public half of a Key Vault key (JWK members as bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicJwk {
    pub kty: String,
    pub n: Option<Vec<u8>>,
    pub e: Option<Vec<u8>>,
    pub crv: Option<String>,
    pub x: Option<Vec<u8>>,
    pub y: Option<Vec<u8>>,
}

/// PEM text for DER bytes, 64 columns, trailing newline.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The PEM blocks of a text: (label, DER). Text outside blocks is ignored.
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, PartError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                // RFC 1421 headers (Proc-Type: 4,ENCRYPTED) only appear on encrypted keys.
                return Err(PartError::EncryptedKey);
            }
            b64.push_str(line);
        }
        if !closed {
            return Err(PartError::Pem("a BEGIN line has no matching END line"));
        }
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| PartError::Pem("bad base64 in a block"))?;
        blocks.push((label.to_string(), der));
    }
    Ok(blocks)
}

/// `#cert`.
pub fn cert_pem(cer: Option<&[u8]>) -> Result<String, PartError> {
    match cer {
        Some(der) if !der.is_empty() => Ok(pem("CERTIFICATE", der)),
        _ => Err(PartError::NoCer),
    }
}

/// A certificate's backing secret, taken apart.
#[derive(Clone, PartialEq, Eq)]
pub struct CertSecret {
    /// The private key, PEM (label as stored: PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY).
    pub key_pem: Option<String>,
    /// The certificates, DER, leaf first.
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for CertSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSecret")
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .field("chain", &self.chain.len())
            .finish()
    }
}

impl CertSecret {
    /// Parses the secret by its content type (PEM when text with BEGIN lines and no type).
    /// The chain is put in order, leaf first (see [`leaf_index`] and [`order_chain`]);
    /// `leaf` is the certificate's `cer`, the leaf when it is among the certificates.
    pub fn parse(
        content_type: Option<&str>,
        value: &str,
        leaf: Option<&[u8]>,
    ) -> Result<Self, PartError> {
        let ct = content_type.map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let parsed = match ct.as_deref() {
            Some(PEM_CONTENT_TYPE) => parse_pem(value)?,
            Some(PKCS12_CONTENT_TYPE) => parse_pkcs12(value)?,
            None | Some("") if value.contains("-----BEGIN ") => parse_pem(value)?,
            None | Some("") => parse_pkcs12(value)?,
            Some(other) => return Err(PartError::ContentType(other.to_string())),
        };
        let infos: Vec<Option<CertInfo>> = parsed.certs.iter().map(|c| cert_info(c)).collect();
        let key_public = parsed
            .key
            .as_ref()
            .and_then(|(label, der)| key_public(label, der));
        let start = leaf_index(&parsed.certs, &infos, leaf, parsed.linked, key_public);
        Ok(CertSecret {
            key_pem: parsed.key.map(|(label, der)| pem(&label, &der)),
            chain: order_chain(parsed.certs, &infos, start),
        })
    }

    /// `#key`.
    pub fn key(&self) -> Result<String, PartError> {
        self.key_pem.clone().ok_or(PartError::NoKey)
    }

    /// `#chain`: every certificate, PEM, leaf first.
    pub fn chain_pem(&self) -> Result<String, PartError> {
        if self.chain.is_empty() {
            return Err(PartError::NoChain);
        }
        Ok(self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect())
    }
}

/// A secret's content before the chain is ordered.
struct Contents {
    /// (PEM label, DER) of the first private key.
    key: Option<(String, Vec<u8>)>,
    /// Certificates (DER) in the order stored.
    certs: Vec<Vec<u8>>,
    /// The certificate that the archive links to the key (PKCS#12 `localKeyId`).
    linked: Option<usize>,
}

fn parse_pem(value: &str) -> Result<Contents, PartError> {
    let mut out = Contents {
        key: None,
        certs: Vec::new(),
        linked: None,
    };
    for (label, der) in pem_blocks(value)? {
        match label.as_str() {
            "CERTIFICATE" => out.certs.push(der),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" if out.key.is_none() => {
                out.key = Some((label, der));
            }
            "ENCRYPTED PRIVATE KEY" => return Err(PartError::EncryptedKey),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_pkcs12(value: &str) -> Result<Contents, PartError> {
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| PartError::Pkcs12("the value is not base64".into()))?;
    let archive = pkcs12::read(&der).map_err(|e| PartError::Pkcs12(e.to_string()))?;
    let key = archive.keys.into_iter().next();
    let linked = key
        .as_ref()
        .and_then(|k| k.local_key_id.as_ref())
        .and_then(|id| {
            archive
                .certs
                .iter()
                .position(|c| c.local_key_id.as_ref() == Some(id))
        });
    Ok(Contents {
        key: key.map(|k| ("PRIVATE KEY".to_string(), k.der)),
        certs: archive.certs.into_iter().map(|c| c.der).collect(),
        linked,
    })
}

/// `#pubkey`: SubjectPublicKeyInfo PEM for an RSA or EC JWK.
pub fn pubkey_pem(jwk: &PublicJwk) -> Result<String, PartError> {
    let spki = match jwk.kty.as_str() {
        "RSA" | "RSA-HSM" => {
            let n = jwk.n.as_deref().ok_or(PartError::MissingJwk("n"))?;
            let e = jwk.e.as_deref().ok_or(PartError::MissingJwk("e"))?;
            let rsa_key = seq(&[der_uint(n), der_uint(e)].concat());
            let alg = seq(&[OID_RSA_ENCRYPTION, DER_NULL].concat());
            seq(&[alg, bit_string(&rsa_key)].concat())
        }
        "EC" | "EC-HSM" => {
            let crv = jwk.crv.as_deref().ok_or(PartError::MissingJwk("crv"))?;
            let (curve_oid, size) = match crv {
                "P-256" => (OID_P256, 32),
                "P-384" => (OID_P384, 48),
                "P-521" => (OID_P521, 66),
                "P-256K" | "SECP256K1" => (OID_SECP256K1, 32),
                other => return Err(PartError::Curve(other.to_string())),
            };
            let x = jwk.x.as_deref().ok_or(PartError::MissingJwk("x"))?;
            let y = jwk.y.as_deref().ok_or(PartError::MissingJwk("y"))?;
            let mut point = vec![0x04];
            point.extend(left_pad(x, size));
            point.extend(left_pad(y, size));
            let alg = seq(&[OID_EC_PUBLIC_KEY, curve_oid].concat());
            seq(&[alg, bit_string(&point)].concat())
        }
        other => return Err(PartError::KeyType(other.to_string())),
    };
    Ok(pem("PUBLIC KEY", &spki))
}

/// Parses a JWK's base64url member (tests and fixtures).
pub fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

// DER, just enough for SubjectPublicKeyInfo.
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const DER_NULL: &[u8] = &[0x05, 0x00];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(content: &[u8]) -> Vec<u8> {
    tlv(0x30, content)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(content.len() + 1);
    c.push(0);
    c.extend_from_slice(content);
    tlv(0x03, &c)
}

/// A non-negative INTEGER from big-endian bytes.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    let mut c = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        c.push(0);
    }
    c.extend_from_slice(trimmed);
    tlv(0x02, &c)
}

fn left_pad(bytes: &[u8], size: usize) -> Vec<u8> {
    let bytes = if bytes.len() > size {
        &bytes[bytes.len() - size..]
    } else {
        bytes
    };
    let mut out = vec![0; size - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl genrsa 1024 | openssl rsa -pubout` and the JWK of the same key.
    const RSA_N: &str = "z03R5t8lQj2UiZYmgaWkgIR3pQje-q4W0zmVhvq_E9OkHvVCpTRO7W7mkJOoqxmuc-piicIzvs95B28C7bo7Ok9Nr5qyhoPgo0Hczstu80ig5p7ArZEC7XLrXfK00k4I_BC-tsfVhguluwSlfz9zksOl4cIyBOJ70wafhmj_0z0";
    const RSA_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDPTdHm3yVCPZSJliaBpaSAhHel
CN76rhbTOZWG+r8T06Qe9UKlNE7tbuaQk6irGa5z6mKJwjO+z3kHbwLtujs6T02v
mrKGg+CjQdzOy27zSKDmnsCtkQLtcutd8rTSTgj8EL62x9WGC6W7BKV/P3OSw6Xh
wjIE4nvTBp+GaP/TPQIDAQAB
-----END PUBLIC KEY-----
";
    // `openssl ecparam -name prime256v1 -genkey | openssl ec -pubout` and its JWK.
    const EC_X: &str = "QDPvumMewqUmqIpdBuOP2Eap3a21oLdURXm9AeTeNv0";
    const EC_Y: &str = "wrVdmgTDqiP5503d6Cqf8P61adm2ocU8LQ2wS7HaMx8";
    const EC_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQDPvumMewqUmqIpdBuOP2Eap3a21
oLdURXm9AeTeNv3CtV2aBMOqI/nnTd3oKp/w/rVp2bahxTwtDbBLsdozHw==
-----END PUBLIC KEY-----
";

    #[test]
    fn rsa_and_ec_public_keys() {
        let rsa = PublicJwk {
            kty: "RSA".into(),
            n: b64url(RSA_N),
            e: b64url("AQAB"),
            ..Default::default()
        };
        assert_eq!(pubkey_pem(&rsa).expect("rsa"), RSA_SPKI);
        let hsm = PublicJwk {
            kty: "RSA-HSM".into(),
            ..rsa.clone()
        };
        assert_eq!(pubkey_pem(&hsm).expect("rsa-hsm"), RSA_SPKI);
        let ec = PublicJwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: b64url(EC_X),
            y: b64url(EC_Y),
            ..Default::default()
        };
        assert_eq!(pubkey_pem(&ec).expect("ec"), EC_SPKI);
    }

    #[test]
    fn public_key_errors() {
        let cases = [
            (
                PublicJwk {
                    kty: "oct".into(),
                    ..Default::default()
                },
                "key type 'oct' has no public key in PEM form (only RSA and EC keys do)",
            ),
            (
                PublicJwk {
                    kty: "RSA".into(),
                    e: Some(vec![1, 0, 1]),
                    ..Default::default()
                },
                "the key lacks its 'n' component",
            ),
            (
                PublicJwk {
                    kty: "EC".into(),
                    crv: Some("P-999".into()),
                    ..Default::default()
                },
                "unsupported EC curve 'P-999'",
            ),
        ];
        for (jwk, want) in cases {
            assert_eq!(pubkey_pem(&jwk).expect_err(want).to_string(), want);
        }
    }

    #[test]
    fn der_integers() {
        assert_eq!(
            der_uint(&[0x00, 0x01, 0x00, 0x01]),
            vec![0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0, 0]), vec![0x02, 0x01, 0x00]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn pem_round_trip_and_chain_order() {
        let leaf = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        let ca = vec![0x30, 0x03, 0x02, 0x01, 0x02];
        let key = vec![0x30, 0x03, 0x02, 0x01, 0x03];
        let text = format!(
            "{}{}{}",
            pem("CERTIFICATE", &ca),
            pem("PRIVATE KEY", &key),
            pem("CERTIFICATE", &leaf)
        );
        let blocks = pem_blocks(&text).expect("valid");
        assert_eq!(blocks.len(), 3);
        let parsed = CertSecret::parse(
            Some("application/x-pem-file"),
            &text.replace('\n', "\r\n"),
            Some(&leaf),
        )
        .expect("valid");
        assert_eq!(parsed.chain, vec![leaf.clone(), ca.clone()]);
        assert_eq!(parsed.key().expect("key"), pem("PRIVATE KEY", &key));
        assert_eq!(
            parsed.chain_pem().expect("chain"),
            format!("{}{}", pem("CERTIFICATE", &leaf), pem("CERTIFICATE", &ca))
        );
        assert_eq!(
            format!("{parsed:?}"),
            "CertSecret { key_pem: Some(\"<redacted>\"), chain: 2 }"
        );
        // No content type: PEM is recognised.
        assert!(CertSecret::parse(None, &text, None).is_ok());
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../tests/data/pkcs12/", $name)).as_slice()
        };
    }

    fn b64(der: &[u8]) -> String {
        STANDARD.encode(der)
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table
    fn pkcs12_key_and_chain_leaf_first_for_every_form() {
        let (leaf, int, root) = (
            fixture!("leaf.der"),
            fixture!("intermediate.der"),
            fixture!("root.der"),
        );
        let rsa_key = fixture!("leaf.key.der");
        let three = [leaf, int, root];
        // (what, archive, the certificate's `cer` if given, key PKCS#8, chain leaf first)
        let cases: [(&str, &[u8], Option<&[u8]>, &[u8], &[&[u8]]); 9] = [
            (
                "Key Vault's own archive",
                fixture!("keyvault.p12"),
                None,
                fixture!("keyvault.key.der"),
                &[fixture!("keyvault-cer.der")],
            ),
            (
                "Key Vault's own archive with its cer",
                fixture!("keyvault.p12"),
                Some(fixture!("keyvault-cer.der")),
                fixture!("keyvault.key.der"),
                &[fixture!("keyvault-cer.der")],
            ),
            (
                "openssl -legacy (RC2-40, 3DES)",
                fixture!("legacy.p12"),
                None,
                rsa_key,
                &three,
            ),
            (
                "openssl -legacy -descert",
                fixture!("legacy-3des.p12"),
                None,
                rsa_key,
                &three,
            ),
            (
                "openssl default (AES-256, PBES2)",
                fixture!("aes.p12"),
                None,
                rsa_key,
                &three,
            ),
            (
                "openssl -nomac",
                fixture!("nomac.p12"),
                None,
                rsa_key,
                &three,
            ),
            (
                "intermediate, root, leaf, then the key",
                fixture!("scrambled.p12"),
                None,
                rsa_key,
                &three,
            ),
            (
                "the same, cer given",
                fixture!("scrambled.p12"),
                Some(leaf),
                rsa_key,
                &three,
            ),
            (
                "root, EC leaf, then the EC key",
                fixture!("ec-key-last.p12"),
                None,
                fixture!("ec-leaf.key.der"),
                &[fixture!("ec-leaf.der"), root],
            ),
        ];
        for (what, data, cer, key, chain) in cases {
            let parsed = CertSecret::parse(Some(PKCS12_CONTENT_TYPE), &b64(data), cer)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(parsed.key().expect(what), pem("PRIVATE KEY", key), "{what}");
            let want: Vec<Vec<u8>> = chain.iter().map(|c| c.to_vec()).collect();
            assert_eq!(parsed.chain, want, "{what}");
        }
    }

    #[test]
    fn pem_chain_is_ordered_by_issuer_in_every_bag_order() {
        let (leaf, int, root) = (
            fixture!("leaf.der"),
            fixture!("intermediate.der"),
            fixture!("root.der"),
        );
        let key = fixture!("leaf.key.der");
        let orders: [[&[u8]; 3]; 6] = [
            [leaf, int, root],
            [leaf, root, int],
            [int, leaf, root],
            [int, root, leaf],
            [root, leaf, int],
            [root, int, leaf],
        ];
        let want = vec![leaf.to_vec(), int.to_vec(), root.to_vec()];
        for order in orders {
            let certs: String = order.iter().map(|c| pem("CERTIFICATE", c)).collect();
            for (key_first, with_key) in [(true, true), (false, true), (false, false)] {
                let k = if with_key {
                    pem("PRIVATE KEY", key)
                } else {
                    String::new()
                };
                let text = if key_first {
                    format!("{k}{certs}")
                } else {
                    format!("{certs}{k}")
                };
                let parsed = CertSecret::parse(Some(PEM_CONTENT_TYPE), &text, None).expect("pem");
                // Without the key, the leaf is the one that issued no other.
                assert_eq!(
                    parsed.chain,
                    want,
                    "order {:?} key first {key_first} key {with_key}",
                    order.map(|c| c.len())
                );
            }
        }
        // An unrelated certificate stays, after the chain.
        let ec = fixture!("ec-leaf.der");
        let text: String = [ec, root, leaf, int]
            .iter()
            .map(|c| pem("CERTIFICATE", c))
            .collect::<String>()
            + &pem("PRIVATE KEY", key);
        let parsed = CertSecret::parse(Some(PEM_CONTENT_TYPE), &text, None).expect("pem");
        assert_eq!(
            parsed.chain,
            vec![leaf.to_vec(), int.to_vec(), root.to_vec(), ec.to_vec()]
        );
    }

    #[test]
    fn cert_secret_errors() {
        let cases = [
            (Some("text/plain"), "x".to_string(), "the certificate's secret has content type 'text/plain'; expected application/x-pem-file or application/x-pkcs12"),
            (Some("application/x-pem-file"), "-----BEGIN CERTIFICATE-----\nAAAA\n".to_string(), "the certificate's secret is not valid PEM: a BEGIN line has no matching END line"),
            (Some("application/x-pem-file"), pem("ENCRYPTED PRIVATE KEY", &[1, 2]), "the certificate's secret holds an encrypted private key; Key Vault certificates have unencrypted ones"),
            (Some("application/x-pkcs12"), "not base64!".to_string(), "the certificate's secret is not a PKCS#12 archive without password: the value is not base64"),
            (Some("application/x-pkcs12"), b64(fixture!("password.p12")), "the certificate's secret is not a PKCS#12 archive without password: its MAC does not verify with an empty password (tried the zero-length and the empty-BMPString forms): the archive has a password or is damaged"),
        ];
        for (ct, value, want) in cases {
            assert_eq!(
                CertSecret::parse(ct, &value, None)
                    .expect_err(want)
                    .to_string(),
                want
            );
        }
        let no_key = CertSecret::parse(
            Some("application/x-pem-file"),
            &pem("CERTIFICATE", &[0x30, 0]),
            None,
        )
        .expect("valid");
        assert_eq!(no_key.key().expect_err("no key"), PartError::NoKey);
        assert_eq!(cert_pem(None).expect_err("no cer"), PartError::NoCer);
    }
}
