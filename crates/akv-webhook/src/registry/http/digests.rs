//! Digests of what a registry sends: checking their form before they go into URLs
//! ([`valid_digest`]) and checking bodies against them ([`verify_digest`]).

use sha2::{Digest, Sha256, Sha512};

use super::HttpError;

/// Checks that `data` has `digest` (`sha256:` or `sha512:` and lower-case hex).
pub fn verify_digest(digest: &str, data: &[u8], what: &str) -> Result<(), HttpError> {
    valid_digest(digest)?;
    let actual = match digest.split_once(':') {
        Some(("sha256", _)) => format!("sha256:{}", hex(&Sha256::digest(data))),
        _ => format!("sha512:{}", hex(&Sha512::digest(data))),
    };
    if actual == digest {
        Ok(())
    } else {
        Err(HttpError::Invalid(format!(
            "the {what} the registry sent does not match its digest"
        )))
    }
}

/// Refuses a digest that is not `sha256:<64 hex>` or `sha512:<128 hex>` (it goes into URLs).
pub fn valid_digest(digest: &str) -> Result<(), HttpError> {
    let ok = match digest.split_once(':') {
        Some(("sha256", h)) => h.len() == 64,
        Some(("sha512", h)) => h.len() == 128,
        _ => false,
    } && digest.split_once(':').is_some_and(|(_, h)| {
        h.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if ok {
        Ok(())
    } else {
        Err(HttpError::Invalid(
            "the registry names a digest that is not sha256 or sha512 in hex".to_string(),
        ))
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let data = b"{}";
        let good = sha256_digest(data);
        assert!(verify_digest(&good, data, "x").is_ok());
        assert!(verify_digest(&good, b"{ }", "x").is_err());
        for bad in [
            "sha256:../../etc",
            "md5:0123",
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            "sha256:",
            "nocolon",
        ] {
            assert!(valid_digest(bad).is_err(), "{bad}");
        }
    }
}
