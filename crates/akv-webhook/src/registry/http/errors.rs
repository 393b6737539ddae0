//! What a registry request fails with: an [`HttpError`] is our classification, a status,
//! and at most a sanitized OCI error code ([`error_code`]), never the registry's text;
//! [`classify`] turns a reqwest, rustls or I/O error into our words.

use serde::Deserialize;

use crate::registry::hosts::Refused;

/// Why a request failed, in our words only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Refused(Refused),
    #[error("{0}")]
    Hop(String),
    #[error("unauthorized (HTTP {status}{})", code_text(code))]
    Unauthorized { status: u16, code: Option<String> },
    #[error("not found (HTTP 404{})", code_text(code))]
    NotFound { code: Option<String> },
    #[error("HTTP {status}{}", code_text(code))]
    Status { status: u16, code: Option<String> },
    #[error("too large: the {what} is larger than {limit} bytes{}", if *declared { " (its declared size)" } else { " (the webhook's limit)" })]
    TooLarge {
        what: &'static str,
        limit: u64,
        declared: bool,
    },
    #[error("timeout")]
    Timeout,
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Invalid(String),
}

fn code_text(code: &Option<String>) -> String {
    match code {
        Some(c) => format!(", code {c}"),
        None => String::new(),
    }
}

/// A redirect that [`HostRules::check_hop`] refused, carried through reqwest's error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct HopRefused(pub(super) String);

/// The first OCI error code of an error body, if it looks like one (`[A-Z0-9_]`, ≤ 40).
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let code = envelope.errors.into_iter().find_map(|e| match e.code {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    })?;
    let ok = !code.is_empty()
        && code.len() <= 40
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(code)
}

/// Our words for a failed request: what kind of failure, never text from the other side
/// (a TLS error's names, a body).
pub fn classify(error: &reqwest13::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(hop) = e.downcast_ref::<HopRefused>() {
            return HttpError::Hop(hop.0.clone());
        }
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return HttpError::Refused(refused.clone());
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return HttpError::Connect(tls_words(tls));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            let words = match io.kind() {
                K::ConnectionRefused => Some("connection refused"),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    Some("the connection was closed")
                }
                K::TimedOut => return HttpError::Timeout,
                _ if io.to_string().contains("lookup address") => {
                    Some("its host name does not resolve")
                }
                _ => None,
            };
            if let Some(words) = words {
                return HttpError::Connect(words.to_string());
            }
        }
        source = e.source();
    }
    if error.is_timeout() {
        HttpError::Timeout
    } else if error.is_connect() {
        HttpError::Connect("cannot connect".to_string())
    } else if error.is_redirect() {
        HttpError::Hop("the registry's redirects could not be followed".to_string())
    } else if error.is_body() || error.is_decode() {
        HttpError::Connect("the connection broke while reading the answer".to_string())
    } else {
        HttpError::Connect("the request failed".to_string())
    }
}

fn tls_words(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => {
                "its TLS certificate is not trusted (a private CA goes in --registry-ca-file)"
                    .to_string()
            }
            C::Expired | C::ExpiredContext { .. } => "its TLS certificate has expired".to_string(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its TLS certificate is not valid for the registry's host name".to_string()
            }
            _ => "its TLS certificate was refused".to_string(),
        },
        _ => "the TLS handshake failed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_sanitized() {
        let cases: [(&str, Option<&str>); 7] = [
            (
                r#"{"errors":[{"code":"DENIED","message":"MARKER"}]}"#,
                Some("DENIED"),
            ),
            (
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#,
                Some("MANIFEST_UNKNOWN"),
            ),
            (r#"{"errors":[{"code":"<script>MARKER"}]}"#, None),
            (r#"{"errors":[{"code":"denied"}]}"#, None),
            (r#"{"errors":[{"code":7}]}"#, None),
            ("MARKER internal page", None),
            (
                r#"{"errors":[{"code":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#,
                None,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(error_code(body.as_bytes()).as_deref(), want, "{body}");
        }
    }

    #[test]
    fn messages_are_ours() {
        let cases = [
            (
                HttpError::Unauthorized {
                    status: 403,
                    code: Some("DENIED".into()),
                },
                "unauthorized (HTTP 403, code DENIED)",
            ),
            (HttpError::NotFound { code: None }, "not found (HTTP 404)"),
            (
                HttpError::Status {
                    status: 500,
                    code: None,
                },
                "HTTP 500",
            ),
            (
                HttpError::TooLarge {
                    what: "image config",
                    limit: 100,
                    declared: true,
                },
                "too large: the image config is larger than 100 bytes (its declared size)",
            ),
            (HttpError::Timeout, "timeout"),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }
}
