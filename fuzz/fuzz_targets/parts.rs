//! Taking parts out of Key Vault objects: certificate secrets (PEM and PKCS#12 in any
//! content type), certificates' DER and keys' JWK members. Never a panic.
#![no_main]

use akv_env::parts::{self, CertSecret, PublicJwk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let content_type = match selector % 4 {
        0 => Some(parts::PEM_CONTENT_TYPE),
        1 => Some(parts::PKCS12_CONTENT_TYPE),
        2 => None,
        _ => Some("application/octet-stream"),
    };
    if let Ok(secret) = CertSecret::parse(content_type, &text, Some(rest)) {
        let _ = secret.key();
        let _ = secret.chain_pem();
    }
    let _ = parts::cert_pem(Some(rest));
    let _ = parts::pem_blocks(&text);
    // A JWK from the bytes: split into members at 0xff.
    let mut members = rest.split(|b| *b == 0xff).map(<[u8]>::to_vec);
    let kty = ["RSA", "EC", "RSA-HSM", "EC-HSM", "oct"][usize::from(selector) % 5];
    let jwk = PublicJwk {
        kty: kty.to_string(),
        n: members.next(),
        e: members.next(),
        crv: members
            .next()
            .map(|c| String::from_utf8_lossy(&c).into_owned()),
        x: members.next(),
        y: members.next(),
    };
    let _ = parts::pubkey_pem(&jwk);
});
