//! What a registry lookup fails with: [`RegistrySetupError`] when the source cannot be
//! made, [`FetchError`] for one lookup (its metric reason and the user's message), and how
//! a raw HTTP or platform error becomes that message ([`describe`]).

use thiserror::Error;

use crate::registry::http::HttpError;
use crate::registry::reference::ImageRef;

/// Why a [`RegistrySource`](super::RegistrySource) cannot be made.
#[derive(Debug, Error)]
pub enum RegistrySetupError {
    #[error("--registry-ca-file holds no PEM certificate")]
    NoCertificate,
    #[error("--registry-ca-file: {0}")]
    BadCertificate(String),
    #[error("cannot make the registry HTTP client: {0}")]
    Client(String),
}

/// Why a lookup failed; the text is the user-facing message (ours only).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(super) enum FetchError {
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Other(String),
}

impl FetchError {
    /// The `reason` label of the lookup error metric.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            FetchError::Auth(_) => "auth",
            FetchError::NotFound(_) => "not_found",
            FetchError::Unreachable(_) => "unreachable",
            FetchError::Refused(_) => "refused",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Timeout(_) => "timeout",
            FetchError::Invalid(_) => "invalid",
            FetchError::Other(_) => "other",
        }
    }
}

/// What the lookup of one manifest and its config can fail with, before it is described.
pub(super) enum RawError {
    Http(HttpError),
    Platform(String),
}

impl From<HttpError> for RawError {
    fn from(e: HttpError) -> Self {
        RawError::Http(e)
    }
}

/// A user-facing message for a failed fetch: which registry, our classification of what
/// happened, which credentials were used, and what was skipped. Nothing the registry
/// wrote is in it beyond a sanitized error code.
pub(super) fn describe(
    error: RawError,
    image: &ImageRef,
    reference: &str,
    source: &str,
    notes: &[String],
) -> FetchError {
    let host = image.host();
    let name = image.name();
    let also = if notes.is_empty() {
        String::new()
    } else {
        format!(" (also: {})", notes.join("; "))
    };
    let e = match error {
        RawError::Platform(msg) => return FetchError::Invalid(msg),
        RawError::Http(e) => e,
    };
    match e {
        HttpError::Unauthorized { .. } => FetchError::Auth(format!(
            "registry {host} refused to serve {name} to {source}: {e}{also}"
        )),
        HttpError::NotFound { .. } => {
            let at = if reference.contains(':') { '@' } else { ':' };
            FetchError::NotFound(format!(
                "{name}{at}{reference} was not found in registry {host}: {e}"
            ))
        }
        HttpError::Refused(refused) => FetchError::Refused(refused.to_string()),
        HttpError::Hop(message) => FetchError::Refused(format!("registry {host}: {message}")),
        HttpError::TooLarge { .. } => FetchError::TooLarge(format!("registry {host}: {e}")),
        HttpError::Timeout => FetchError::Timeout(format!("registry {host}: timeout")),
        HttpError::Connect(words) => {
            FetchError::Unreachable(format!("cannot reach registry {host}: {words}"))
        }
        HttpError::Invalid(message) => FetchError::Invalid(format!("registry {host}: {message}")),
        HttpError::Status { .. } => {
            FetchError::Other(format!("registry {host} answered {e}{also}"))
        }
    }
}
