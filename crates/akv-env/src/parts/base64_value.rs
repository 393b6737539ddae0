//! `#base64`: a secret's value, base64-decoded. Both alphabets (standard `+/` and
//! URL-safe `-_`), with or without `=` padding; ASCII whitespace (line breaks of wrapped
//! base64) is ignored. Messages never show the value.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(false);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Why a value is not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    #[error("the secret's value is not base64: it mixes the standard ('+', '/') and URL-safe ('-', '_') alphabets")]
    MixedAlphabets,
    #[error("the secret's value is not base64: {0} (the value is not shown)")]
    Invalid(String),
}

/// Decodes a value in either alphabet, padded or not.
pub fn decode(value: &str) -> Result<Vec<u8>, Base64Error> {
    let compact: Vec<u8> = value.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let standard = compact.iter().any(|b| matches!(b, b'+' | b'/'));
    let url_safe = compact.iter().any(|b| matches!(b, b'-' | b'_'));
    let engine = match (standard, url_safe) {
        (true, true) => return Err(Base64Error::MixedAlphabets),
        (false, true) => &URL_SAFE,
        _ => &STANDARD,
    };
    engine.decode(&compact).map_err(|e| {
        Base64Error::Invalid(match e {
            base64::DecodeError::InvalidByte(at, _) => {
                format!("an invalid character at offset {at}")
            }
            base64::DecodeError::InvalidLength(n) => {
                format!("{n} base64 characters cannot be a whole number of bytes")
            }
            base64::DecodeError::InvalidLastSymbol(at, _) => {
                format!("the last character (offset {at}) has bits that are not zero")
            }
            base64::DecodeError::InvalidPadding => "its '=' padding is wrong".to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_with_and_without_padding() {
        let bytes: &[u8] = &[0xfb, 0xff, 0xbf, 0x00, 0x61];
        for encoded in [
            "+/+/AGE=",
            "+/+/AGE",
            "-_-_AGE=",
            "-_-_AGE",
            "+/+/\nAGE=\n",
            " -_-_ AGE ",
        ] {
            assert_eq!(decode(encoded).expect(encoded), bytes, "{encoded:?}");
        }
        assert_eq!(decode("aGVsbG8=").expect("ok"), b"hello");
        assert_eq!(decode("aGVsbG8").expect("ok"), b"hello");
        assert_eq!(decode("").expect("empty"), b"");
    }

    #[test]
    fn refuses_what_is_not_base64() {
        for (bad, want) in [
            ("+/-_", "the secret's value is not base64: it mixes the standard ('+', '/') and URL-safe ('-', '_') alphabets"),
            ("ab*d", "the secret's value is not base64: an invalid character at offset 2 (the value is not shown)"),
            ("abcde", "the secret's value is not base64: 5 base64 characters cannot be a whole number of bytes (the value is not shown)"),
            ("aGVsbG9=", "the secret's value is not base64: the last character (offset 6) has bits that are not zero (the value is not shown)"),
        ] {
            assert_eq!(decode(bad).expect_err(bad).to_string(), want, "{bad:?}");
        }
    }
}
