//! Putting a certificate chain in order, leaf first (pure): which certificate is the leaf
//! (the one of the private key), then each issuer by subject.

use super::seq;

/// What chain ordering needs of a certificate (DER of the names, the public key bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CertInfo {
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub public_key: Vec<u8>,
}

pub(super) fn cert_info(der: &[u8]) -> Option<CertInfo> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    Some(CertInfo {
        subject: tbs.subject().to_der().ok()?,
        issuer: tbs.issuer().to_der().ok()?,
        public_key: tbs
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            .to_vec(),
    })
}

const OID_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The public key bits (as in a certificate's SubjectPublicKeyInfo) of a private key:
/// PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). None
/// when the key does not carry it (an EC key without its optional public key).
pub(super) fn key_public(label: &str, der: &[u8]) -> Option<Vec<u8>> {
    match label {
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfoRef::try_from(der).ok()?;
            if let Some(public) = info.public_key {
                return Some(public.raw_bytes().to_vec());
            }
            match info.algorithm.oid {
                OID_RSA => rsa_public(info.private_key.as_bytes()),
                OID_EC => ec_public(info.private_key.as_bytes()),
                _ => None,
            }
        }
        "RSA PRIVATE KEY" => rsa_public(der),
        "EC PRIVATE KEY" => ec_public(der),
        _ => None,
    }
}

/// RSAPrivateKey (version, n, e, ...) -> RSAPublicKey (n, e), DER.
fn rsa_public(private: &[u8]) -> Option<Vec<u8>> {
    use der::{Decode, Encode};
    let items = Vec::<der::asn1::AnyRef<'_>>::from_der(private).ok()?;
    let (n, e) = (items.get(1)?.to_der().ok()?, items.get(2)?.to_der().ok()?);
    Some(seq(&[n, e].concat()))
}

/// ECPrivateKey's optional `[1] publicKey`.
fn ec_public(private: &[u8]) -> Option<Vec<u8>> {
    use der::{Decode, Tagged};
    let items = Vec::<der::asn1::AnyRef<'_>>::from_der(private).ok()?;
    let tagged = items.iter().find(|i| {
        i.tag()
            == der::Tag::ContextSpecific {
                constructed: true,
                number: der::TagNumber(1),
            }
    })?;
    let bits = der::asn1::BitStringRef::from_der(tagged.value()).ok()?;
    Some(bits.raw_bytes().to_vec())
}

/// Which certificate is the leaf: the certificate's `cer` when present; else the one the
/// archive links to the key (`localKeyId`); else the one whose public key is the private
/// key's; else the one that issued no other; else the first.
pub(super) fn leaf_index(
    certs: &[Vec<u8>],
    infos: &[Option<CertInfo>],
    cer: Option<&[u8]>,
    linked: Option<usize>,
    key_public: Option<Vec<u8>>,
) -> usize {
    let by_cer = cer.and_then(|cer| certs.iter().position(|c| c == cer));
    let by_key = || {
        let public = key_public.as_ref()?;
        infos
            .iter()
            .position(|i| i.as_ref().is_some_and(|i| &i.public_key == public))
    };
    let issued_none = || {
        (0..infos.len()).find(|&i| {
            infos[i].as_ref().is_some_and(|ci| {
                !infos
                    .iter()
                    .enumerate()
                    .any(|(j, cj)| j != i && cj.as_ref().is_some_and(|cj| cj.issuer == ci.subject))
            })
        })
    };
    by_cer
        .or(linked)
        .or_else(by_key)
        .or_else(issued_none)
        .unwrap_or(0)
}

/// The chain from `start`: each next certificate is the issuer (subject = the current
/// one's issuer) until a self-signed one or no issuer is found; certificates off that
/// path follow in the order stored.
pub(super) fn order_chain(
    certs: Vec<Vec<u8>>,
    infos: &[Option<CertInfo>],
    start: usize,
) -> Vec<Vec<u8>> {
    if start >= certs.len() {
        return certs;
    }
    let mut order = vec![start];
    let mut cur = start;
    while let Some(ci) = &infos[cur] {
        if ci.issuer == ci.subject {
            break;
        }
        let next = (0..certs.len()).find(|j| {
            !order.contains(j) && infos[*j].as_ref().is_some_and(|cj| cj.subject == ci.issuer)
        });
        match next {
            Some(j) => {
                order.push(j);
                cur = j;
            }
            None => break,
        }
    }
    let rest: Vec<usize> = (0..certs.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    let mut slots: Vec<Option<Vec<u8>>> = certs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/data/pkcs12/", $name)).as_slice()
        };
    }

    #[test]
    fn public_key_of_each_private_key_form() {
        let info = |der: &[u8]| cert_info(der).expect("certificate").public_key;
        let rsa = fixture!("leaf.key.der");
        let ec = fixture!("ec-leaf.key.der");
        assert_eq!(
            key_public("PRIVATE KEY", rsa),
            Some(info(fixture!("leaf.der")))
        );
        assert_eq!(
            key_public("PRIVATE KEY", ec),
            Some(info(fixture!("ec-leaf.der")))
        );
        // PKCS#1 and SEC1: the PKCS#8 privateKey octets.
        let inner = |der: &[u8]| {
            pkcs8::PrivateKeyInfoRef::try_from(der)
                .expect("pkcs8")
                .private_key
                .as_bytes()
                .to_vec()
        };
        assert_eq!(
            key_public("RSA PRIVATE KEY", &inner(rsa)),
            Some(info(fixture!("leaf.der")))
        );
        assert_eq!(
            key_public("EC PRIVATE KEY", &inner(ec)),
            Some(info(fixture!("ec-leaf.der")))
        );
        assert_eq!(key_public("PRIVATE KEY", &[0x30, 0x00]), None);
    }
}
