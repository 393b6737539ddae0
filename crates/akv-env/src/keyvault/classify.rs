//! What a failed SDK call means for akv-env: our own refusals (a foreign challenge, a
//! body over the cap) found anywhere in the error, the vault's status with its error code
//! and `Retry-After`, transport and token errors; and whether each is worth retrying.

use akv_core::error_chain;
use azure_core::error::ErrorKind;

use crate::error::Cause;

use super::audience::ChallengeRefused;
use super::http::BodyTooLarge;
use super::retry::{parse_retry_after, Failure};

/// The first error of type `T` in `err`'s source chain.
fn find<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// akv-env's own refusals, found anywhere in an SDK error: never retried.
fn refusal(err: &azure_core::Error) -> Option<Cause> {
    if let Some(r) = find::<ChallengeRefused>(err) {
        return Some(Cause::Challenge(r.to_string()));
    }
    find::<BodyTooLarge>(err).map(|b| Cause::TooLarge(b.to_string()))
}

/// Classifies an SDK error.
pub fn classify(err: &azure_core::Error) -> Failure {
    let retryable_status = |s: u16| matches!(s, 408 | 429 | 500 | 502 | 503 | 504);
    if let Some(cause) = refusal(err) {
        return Failure {
            cause,
            retryable: false,
            retry_after: None,
        };
    }
    match err.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let status = u16::from(*status);
            let (code, message, retry_after) = match raw_response {
                Some(r) => {
                    let h = r.headers();
                    let get = |name: &'static str| {
                        h.get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                            name,
                        ))
                    };
                    let ms = get("retry-after-ms").or_else(|| get("x-ms-retry-after-ms"));
                    let (code, message) = error_body(r.body().as_ref());
                    (code, message, parse_retry_after(get("retry-after"), ms))
                }
                None => (None, String::new(), None),
            };
            Failure {
                cause: Cause::Status {
                    status,
                    code,
                    message,
                },
                retryable: retryable_status(status),
                retry_after: if status == 429 || status == 503 {
                    retry_after
                } else {
                    None
                },
            }
        }
        ErrorKind::Io | ErrorKind::Connection => Failure {
            cause: Cause::Transport(error_chain(err)),
            retryable: true,
            retry_after: None,
        },
        ErrorKind::Credential => {
            let inner = inner_azure(err);
            let status = inner.and_then(|e| e.http_status()).map(u16::from);
            let transport =
                inner.is_some_and(|e| matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection));
            Failure {
                cause: Cause::Token {
                    status,
                    message: one_line(&error_chain(err)),
                },
                retryable: transport || status.is_some_and(retryable_status),
                retry_after: None,
            }
        }
        _ => Failure {
            cause: Cause::Content(one_line(&error_chain(err))),
            retryable: false,
            retry_after: None,
        },
    }
}

/// The innermost azure_core error under a wrapper.
fn inner_azure(err: &azure_core::Error) -> Option<&azure_core::Error> {
    let mut found = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(a) = e.downcast_ref::<azure_core::Error>() {
            found = Some(a);
        }
        cur = e.source();
    }
    found
}

/// Collapses whitespace (an SDK message may span lines) into one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `{"error":{"code":..., "message":..., "innererror":{"code":...}}}` → (code, message).
fn error_body(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
        innererror: Option<Box<Inner>>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => {
            let code = match (
                &error.code,
                error.innererror.as_ref().and_then(|i| i.code.clone()),
            ) {
                (Some(c), Some(i)) => Some(format!("{c}/{i}")),
                (c, None) => c.clone(),
                (None, i) => i,
            };
            (code, one_line(error.message.as_deref().unwrap_or_default()))
        }
        Err(_) => (
            None,
            one_line(&String::from_utf8_lossy(&body[..body.len().min(300)])),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyvault::audience;
    use crate::keyvault::http::MAX_BODY;

    #[test]
    fn own_refusals_are_classified_and_never_retried() {
        use azure_core::error::Error;
        let too_large = Error::new(
            ErrorKind::Other,
            BodyTooLarge {
                host: "kv.vault.azure.net".into(),
                limit: MAX_BODY,
            },
        );
        let refused = ChallengeRefused {
            host: "127.0.0.1".into(),
            asked: "https://management.azure.com/.default".into(),
            allowed: audience::audiences_for("127.0.0.1"),
        };
        // as the credential wraps them
        let wrapped = Error::with_error(
            ErrorKind::Credential,
            Error::new(ErrorKind::Other, refused.clone()),
            "ClientAssertionCredential authentication failed",
        );
        let cases = [
            (too_large, Cause::TooLarge("the answer from kv.vault.azure.net is larger than 1024 KiB, which no Key Vault or Entra ID answer is (a secret is at most 25 KiB); akv-env stopped reading it".into())),
            (wrapped, Cause::Challenge(refused.to_string())),
        ];
        for (err, want) in cases {
            let got = classify(&err);
            assert_eq!(got.cause, want);
            assert!(!got.retryable);
        }
    }

    #[test]
    fn error_bodies() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized.\n Vault: kv1","innererror":{"code":"ForbiddenByRbac"}}}"#;
        assert_eq!(
            error_body(body),
            (
                Some("Forbidden/ForbiddenByRbac".into()),
                "Caller is not authorized. Vault: kv1".into()
            )
        );
        assert_eq!(error_body(b"oops"), (None, "oops".into()));
    }
}
