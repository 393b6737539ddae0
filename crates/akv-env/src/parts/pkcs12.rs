//! Reading a PKCS#12 archive that has no password (RFC 7292), as Key Vault and openssl
//! write them.
//!
//! "No password" has two encodings in RFC 7292 and both are in use: a zero-length
//! string (appendix B.2 step 3; Key Vault, Windows and .NET write it, for the MAC and the
//! bags alike) and the empty BMPString with its two-byte terminator (appendix B.1;
//! `openssl pkcs12 -passout pass:`, Java). The MAC and every encrypted part are tried with
//! both, each on its own (writers have been seen to mix them). Archives without a MAC are
//! read too. Bags: PKCS#12 PBE (3DES, 2-key 3DES, RC2-40, RC2-128) and PBES2 (PBKDF2 with
//! AES or 3DES, as openssl 3 writes by default).

use der::asn1::{AnyRef, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Tag, TagNumber, Tagged};
use hmac::digest::block_api::{BlockSizeUser, EagerHash};
use hmac::digest::{Digest, FixedOutputReset};
use hmac::{KeyInit, Mac};
use pkcs12::kdf::{derive_key, Pkcs12KeyType};

/// The two readings of "no password" for the PKCS#12 key derivation.
const EMPTY_PASSWORDS: [&[u8]; 2] = [&[], &[0, 0]];
/// PBKDF2 (PBES2) takes the password's bytes: none.
const EMPTY_PBKDF2_PASSWORD: &[u8] = &[];
/// The password readings to try: the two empty ones, or a given password (as a
/// BMPString with its terminator for the PKCS#12 derivation, as UTF-8 for PBKDF2).
struct Passwords {
    pkcs12: Vec<Vec<u8>>,
    pbkdf2: Vec<u8>,
    given: bool,
}

impl Passwords {
    fn new(password: Option<&str>) -> Passwords {
        match password.filter(|p| !p.is_empty()) {
            None => Passwords {
                pkcs12: EMPTY_PASSWORDS.iter().map(|p| p.to_vec()).collect(),
                pbkdf2: EMPTY_PBKDF2_PASSWORD.to_vec(),
                given: false,
            },
            Some(p) => {
                let mut bmp: Vec<u8> = p.encode_utf16().flat_map(u16::to_be_bytes).collect();
                bmp.extend_from_slice(&[0, 0]);
                Passwords {
                    pkcs12: vec![bmp],
                    pbkdf2: p.as_bytes().to_vec(),
                    given: true,
                }
            }
        }
    }

    fn mac_error(&self) -> Pkcs12Error {
        if self.given {
            Pkcs12Error::WrongPassword
        } else {
            Pkcs12Error::Mac
        }
    }

    fn decrypt_error(&self) -> Pkcs12Error {
        if self.given {
            Pkcs12Error::WrongPassword
        } else {
            Pkcs12Error::Decrypt
        }
    }
}

/// Above this, an archive would keep the pod from starting for minutes; Key Vault uses
/// 2000 and openssl 2048.
const MAX_ITERATIONS: i32 = 1_000_000;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA1_2DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.4");
const PBE_SHA1_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// A bag's content and its `localKeyId` attribute (which links a key to its certificate).
#[derive(Clone, PartialEq, Eq)]
pub struct Bag {
    pub der: Vec<u8>,
    pub local_key_id: Option<Vec<u8>>,
}

impl std::fmt::Debug for Bag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bag({} bytes)", self.der.len())
    }
}

/// What an archive holds, in bag order: PKCS#8 private keys and X.509 certificates (DER).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Archive {
    pub keys: Vec<Bag>,
    pub certs: Vec<Bag>,
}

/// Why an archive cannot be read. No key material in messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs12Error {
    #[error("malformed DER in {0}")]
    Der(&'static str),
    #[error("the PFX version is not 3")]
    Version,
    #[error("its MAC does not verify with an empty password (tried the zero-length and the empty-BMPString forms): the archive has a password or is damaged")]
    Mac,
    #[error("unsupported MAC digest {0}")]
    MacDigest(String),
    #[error("unsupported content type {0}")]
    ContentType(String),
    #[error("unsupported encryption {0}")]
    Cipher(String),
    #[error("an encrypted part does not decrypt with an empty password: the archive has a password or is damaged")]
    Decrypt,
    #[error(
        "it does not open with the given password: the password is wrong or the archive is damaged"
    )]
    WrongPassword,
    #[error("iteration count {0} is above the limit of {MAX_ITERATIONS}")]
    Iterations(i64),
}

fn der<'a, T: Decode<'a>>(bytes: &'a [u8], what: &'static str) -> Result<T, Pkcs12Error> {
    T::from_der(bytes).map_err(|_| Pkcs12Error::Der(what))
}

fn check_iterations(n: i64) -> Result<(), Pkcs12Error> {
    if n > i64::from(MAX_ITERATIONS) {
        return Err(Pkcs12Error::Iterations(n));
    }
    Ok(())
}

/// Reads an archive: verifies the MAC (when there is one) and decrypts every part.
pub fn read(data: &[u8]) -> Result<Archive, Pkcs12Error> {
    read_with_password(data, None)
}

/// [`read`] with a password (`None` or empty: no password, both readings of it).
pub fn read_with_password(data: &[u8], password: Option<&str>) -> Result<Archive, Pkcs12Error> {
    let pw = Passwords::new(password);
    let pfx: pkcs12::Pfx = der(data, "the PFX")?;
    if pfx.version != pkcs12::pfx::Version::V3 {
        return Err(Pkcs12Error::Version);
    }
    if pfx.auth_safe.content_type != ID_DATA {
        return Err(Pkcs12Error::ContentType(
            pfx.auth_safe.content_type.to_string(),
        ));
    }
    let auth_safe: OctetString = pfx
        .auth_safe
        .content
        .decode_as()
        .map_err(|_| Pkcs12Error::Der("the authenticated safe"))?;
    if let Some(mac) = &pfx.mac_data {
        verify_mac(mac, auth_safe.as_bytes(), &pw)?;
    }
    let safes: Vec<cms::content_info::ContentInfo> =
        der(auth_safe.as_bytes(), "the authenticated safe")?;
    let mut out = Archive::default();
    for safe in safes {
        let contents = match safe.content_type {
            ID_DATA => safe
                .content
                .decode_as::<OctetString>()
                .map_err(|_| Pkcs12Error::Der("a safe"))?
                .into_bytes()
                .into_vec(),
            ID_ENCRYPTED_DATA => {
                let enc: cms::encrypted_data::EncryptedData = safe
                    .content
                    .decode_as()
                    .map_err(|_| Pkcs12Error::Der("an encrypted safe"))?;
                let info = enc.enc_content_info;
                let Some(ciphertext) = info.encrypted_content else {
                    continue;
                };
                decrypt(&info.content_enc_alg, ciphertext.as_bytes(), &pw, |plain| {
                    Vec::<pkcs12::SafeBag>::from_der(plain).is_ok()
                })?
            }
            other => return Err(Pkcs12Error::ContentType(other.to_string())),
        };
        let bags: Vec<pkcs12::SafeBag> = der(&contents, "a safe's bags")?;
        for bag in bags {
            read_bag(&bag, &mut out, &pw)?;
        }
    }
    Ok(out)
}

fn read_bag(bag: &pkcs12::SafeBag, out: &mut Archive, pw: &Passwords) -> Result<(), Pkcs12Error> {
    // bagValue is `[0] EXPLICIT`: the bag's content is inside.
    let wrapper: AnyRef<'_> = der(&bag.bag_value, "a bag")?;
    if wrapper.tag()
        != (Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(0),
        })
    {
        return Err(Pkcs12Error::Der("a bag"));
    }
    let value = wrapper.value();
    let local_key_id = local_key_id(bag);
    match bag.bag_id {
        KEY_BAG => out.keys.push(Bag {
            der: pkcs8_without_attributes(value)?,
            local_key_id,
        }),
        SHROUDED_KEY_BAG => {
            let enc: pkcs12::pbe_params::EncryptedPrivateKeyInfo =
                der(value, "a shrouded key bag")?;
            let key = decrypt(
                &enc.encryption_algorithm,
                enc.encrypted_data.as_bytes(),
                pw,
                |plain| pkcs8::PrivateKeyInfoRef::try_from(plain).is_ok(),
            )?;
            out.keys.push(Bag {
                der: pkcs8_without_attributes(&key)?,
                local_key_id,
            });
        }
        CERT_BAG => {
            let cert: pkcs12::CertBag = der(value, "a certificate bag")?;
            // Other certificate types (SDSI) carry no X.509 certificate.
            if cert.cert_id == X509_CERTIFICATE {
                out.certs.push(Bag {
                    der: cert.cert_value.into_bytes().into_vec(),
                    local_key_id,
                });
            }
        }
        // CRL, secret and nested safe-contents bags hold nothing akv-env serves.
        _ => {}
    }
    Ok(())
}

/// The PKCS#8 key re-encoded without its attributes: Key Vault adds a Windows key-usage
/// attribute that neither its PEM form of the same certificate nor `openssl pkcs12
/// -nocerts` shows; without it `#key` is the same whichever content type was chosen.
fn pkcs8_without_attributes(der: &[u8]) -> Result<Vec<u8>, Pkcs12Error> {
    let key =
        pkcs8::PrivateKeyInfoRef::try_from(der).map_err(|_| Pkcs12Error::Der("a private key"))?;
    key.to_der().map_err(|_| Pkcs12Error::Der("a private key"))
}

fn local_key_id(bag: &pkcs12::SafeBag) -> Option<Vec<u8>> {
    let attrs = bag.bag_attributes.as_ref()?;
    let attr = attrs.iter().find(|a| a.oid == LOCAL_KEY_ID)?;
    let value = attr.values.iter().next()?;
    Some(value.value().to_vec())
}

fn verify_mac(mac: &pkcs12::MacData, data: &[u8], pw: &Passwords) -> Result<(), Pkcs12Error> {
    check_iterations(i64::from(mac.iterations))?;
    let salt = mac.mac_salt.as_bytes();
    let want = mac.mac.digest.as_bytes();
    let alg = mac.mac.algorithm.oid;
    let ok = pw.pkcs12.iter().any(|pw| {
        let rounds = mac.iterations;
        match alg {
            SHA1 => hmac_ok::<sha1::Sha1>(pw, salt, rounds, data, want),
            SHA224 => hmac_ok::<sha2::Sha224>(pw, salt, rounds, data, want),
            SHA256 => hmac_ok::<sha2::Sha256>(pw, salt, rounds, data, want),
            SHA384 => hmac_ok::<sha2::Sha384>(pw, salt, rounds, data, want),
            SHA512 => hmac_ok::<sha2::Sha512>(pw, salt, rounds, data, want),
            _ => false,
        }
    });
    match alg {
        SHA1 | SHA224 | SHA256 | SHA384 | SHA512 if ok => Ok(()),
        SHA1 | SHA224 | SHA256 | SHA384 | SHA512 => Err(pw.mac_error()),
        other => Err(Pkcs12Error::MacDigest(other.to_string())),
    }
}

fn hmac_ok<D>(password: &[u8], salt: &[u8], rounds: i32, data: &[u8], want: &[u8]) -> bool
where
    D: Digest + FixedOutputReset + BlockSizeUser + EagerHash,
{
    let key = derive_key::<D>(
        password,
        salt,
        Pkcs12KeyType::Mac,
        rounds,
        <D as Digest>::output_size(),
    );
    match hmac::Hmac::<D>::new_from_slice(&key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.verify_slice(want).is_ok()
        }
        Err(_) => false,
    }
}

/// Decrypts with each empty-password reading; `valid` says whether a plaintext parses as
/// what is expected there (a wrong key can still leave valid padding).
fn decrypt(
    alg: &spki::AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    pw: &Passwords,
    valid: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, Pkcs12Error> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or(Pkcs12Error::Der("encryption parameters"))?
        .to_der()
        .map_err(|_| Pkcs12Error::Der("encryption parameters"))?;
    if alg.oid == PBES2 {
        let params: pkcs5::pbes2::Parameters = der(&params, "PBES2 parameters")?;
        if let pkcs5::pbes2::Kdf::Pbkdf2(p) = &params.kdf {
            check_iterations(i64::from(p.iteration_count))?;
        }
        if let pkcs5::pbes2::Kdf::Scrypt(_) = &params.kdf {
            return Err(Pkcs12Error::Cipher("PBES2 with scrypt".into()));
        }
        return match params.decrypt(&pw.pbkdf2, ciphertext) {
            Ok(plain) if valid(&plain) => Ok(plain),
            Ok(_) => Err(pw.decrypt_error()),
            Err(e) => match e {
                pkcs5::Error::AlgorithmParametersInvalid { .. }
                | pkcs5::Error::UnsupportedAlgorithm { .. } => {
                    Err(Pkcs12Error::Cipher(format!("PBES2 ({e})")))
                }
                _ => Err(pw.decrypt_error()),
            },
        };
    }
    let pbe: pkcs12::pbe_params::Pkcs12PbeParams = der(&params, "PBE parameters")?;
    check_iterations(i64::from(pbe.iterations))?;
    let salt = pbe.salt.as_bytes();
    for pw_bytes in &pw.pkcs12 {
        let pw_bytes = pw_bytes.as_slice();
        let plain = match alg.oid {
            PBE_SHA1_3DES => {
                pbe_cbc::<des::TdesEde3>(pw_bytes, salt, pbe.iterations, 24, ciphertext)
            }
            PBE_SHA1_2DES => {
                pbe_cbc::<des::TdesEde2>(pw_bytes, salt, pbe.iterations, 16, ciphertext)
            }
            PBE_SHA1_RC2_128 => pbe_cbc::<rc2::Rc2>(pw_bytes, salt, pbe.iterations, 16, ciphertext),
            PBE_SHA1_RC2_40 => pbe_cbc::<rc2::Rc2>(pw_bytes, salt, pbe.iterations, 5, ciphertext),
            other => return Err(Pkcs12Error::Cipher(other.to_string())),
        };
        if let Some(plain) = plain.filter(|p| valid(p)) {
            return Ok(plain);
        }
    }
    Err(pw.decrypt_error())
}

/// PKCS#12 PBE (RFC 7292 appendix B, SHA-1): key and IV from the password, then CBC.
fn pbe_cbc<C>(
    password: &[u8],
    salt: &[u8],
    rounds: i32,
    key_len: usize,
    ciphertext: &[u8],
) -> Option<Vec<u8>>
where
    C: cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
{
    use cbc::cipher::{block_padding::Pkcs7, BlockModeDecrypt, KeyIvInit};
    let key = derive_key::<sha1::Sha1>(
        password,
        salt,
        Pkcs12KeyType::EncryptionKey,
        rounds,
        key_len,
    );
    let iv = derive_key::<sha1::Sha1>(password, salt, Pkcs12KeyType::Iv, rounds, 8);
    let cipher = cbc::Decryptor::<C>::new_from_slices(&key, &iv).ok()?;
    cipher.decrypt_padded_vec::<Pkcs7>(ciphertext).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures: crates/akv-env/tests/data/pkcs12/ (made by make.sh there).
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/data/pkcs12/", $name)).as_slice()
        };
    }

    #[test]
    fn reads_every_empty_password_form() {
        // (fixture, key bags, certificate bags, key linked to a certificate by localKeyId)
        let cases: [(&str, &[u8], usize, usize, bool); 7] = [
            (
                "Key Vault: zero-length password, 3DES, SHA-1 MAC",
                fixture!("keyvault.p12"),
                1,
                1,
                true,
            ),
            (
                "openssl -legacy: RC2-40 + 3DES, empty BMPString",
                fixture!("legacy.p12"),
                1,
                3,
                true,
            ),
            (
                "openssl -legacy -descert: 3DES",
                fixture!("legacy-3des.p12"),
                1,
                3,
                true,
            ),
            (
                "openssl 3 default: PBES2 AES-256, SHA-256 MAC",
                fixture!("aes.p12"),
                1,
                3,
                true,
            ),
            ("openssl -nomac", fixture!("nomac.p12"), 1, 3, true),
            (
                "plain bags, key last",
                fixture!("scrambled.p12"),
                1,
                3,
                false,
            ),
            (
                "plain bags, EC key last",
                fixture!("ec-key-last.p12"),
                1,
                2,
                false,
            ),
        ];
        for (what, data, keys, certs, linked) in cases {
            let archive = read(data).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(archive.keys.len(), keys, "{what}");
            assert_eq!(archive.certs.len(), certs, "{what}");
            let key_id = archive.keys[0].local_key_id.clone();
            let link = key_id.is_some() && archive.certs.iter().any(|c| c.local_key_id == key_id);
            assert_eq!(link, linked, "{what}");
        }
    }

    #[test]
    fn key_vault_mac_is_over_a_zero_length_password() {
        let pfx = pkcs12::Pfx::from_der(fixture!("keyvault.p12")).expect("pfx");
        let mac = pfx.mac_data.expect("mac");
        let data: OctetString = pfx.auth_safe.content.decode_as().expect("data");
        let (salt, want) = (mac.mac_salt.as_bytes(), mac.mac.digest.as_bytes());
        let check =
            |pw: &[u8]| hmac_ok::<sha1::Sha1>(pw, salt, mac.iterations, data.as_bytes(), want);
        assert!(check(&[]), "zero-length password");
        assert!(
            !check(&[0, 0]),
            "the empty BMPString is not what Key Vault uses"
        );
    }

    #[test]
    fn reads_an_archive_with_its_password() {
        // password.p12: openssl with password "secret" (make.sh).
        let archive = read_with_password(fixture!("password.p12"), Some("secret")).expect("opens");
        assert_eq!((archive.keys.len(), archive.certs.len()), (1, 1));
        assert_eq!(
            read_with_password(fixture!("password.p12"), Some("wrong")),
            Err(Pkcs12Error::WrongPassword)
        );
        assert!(read_with_password(fixture!("keyvault.p12"), Some("")).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let kv = fixture!("keyvault.p12");
        let mut tampered = kv.to_vec();
        let last = tampered.len() - 30;
        tampered[last] ^= 1; // inside the MAC digest
        let cases: [(&str, &[u8], Pkcs12Error); 4] = [
            ("a password", fixture!("password.p12"), Pkcs12Error::Mac),
            ("a damaged MAC", &tampered, Pkcs12Error::Mac),
            (
                "truncated",
                &kv[..kv.len() / 2],
                Pkcs12Error::Der("the PFX"),
            ),
            ("not DER", b"-----BEGIN", Pkcs12Error::Der("the PFX")),
        ];
        for (what, data, want) in cases {
            assert_eq!(read(data).expect_err(what), want, "{what}");
        }
        assert_eq!(
            Pkcs12Error::Mac.to_string(),
            "its MAC does not verify with an empty password (tried the zero-length and the empty-BMPString forms): the archive has a password or is damaged"
        );
    }
}
