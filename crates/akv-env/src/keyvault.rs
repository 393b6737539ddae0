//! Reading objects from Key Vault: the [`SecretSource`] seam, and its parts: the retry
//! policy, pure ([`retry`]); what a failed call means ([`classify`]); the Azure
//! implementation ([`azure`]) with its one client per vault ([`vault`]) and one token per
//! audience ([`tokens`]); and akv-env's own limits: one way to open connections
//! ([`dial`]), HTTP clients with capped bodies ([`http`]) and one TLS set-up ([`tls`]), tokens only for Key Vault audiences ([`audience`]), and a bounded
//! read of the federated token file ([`token_file`]).

pub mod audience;
pub mod azure;
pub mod certificate;
pub mod classify;
pub mod credentials;
pub mod current;
pub mod dial;
pub mod http;
pub mod imds;
pub mod proxy;
pub mod retry;
pub mod tls;
pub mod token_file;
pub mod tokens;
pub mod vault;
pub mod vault_http;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;

use akv_core::Part;

use crate::error::Cause;
use crate::parts::PublicJwk;
use crate::plan::ObjectId;

pub use azure::{backing_secret, AzureSource};
pub use classify::classify;
pub use retry::{next_step, parse_retry_after, with_retries, Failure, Next};

/// What was read for one object. Its `Debug` shows no value.
pub enum Fetched {
    Secret {
        value: String,
    },
    Certificate {
        cer: Option<Vec<u8>>,
        /// The backing secret (content type, value), read when `#key` or `#chain` is asked for.
        secret: Option<(Option<String>, String)>,
    },
    Key(PublicJwk),
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetched::Secret { .. } => f.write_str("Secret(<redacted>)"),
            Fetched::Certificate { secret, .. } => {
                write!(f, "Certificate(secret: {})", secret.is_some())
            }
            Fetched::Key(jwk) => write!(f, "Key({})", jwk.kty),
        }
    }
}

/// Where objects come from.
pub trait SecretSource {
    /// Reads one object (retrying inside the budget). `parts` says which parts are needed.
    fn fetch(
        &self,
        id: &ObjectId,
        parts: &BTreeSet<Part>,
    ) -> impl Future<Output = Result<Fetched, Cause>>;
}
