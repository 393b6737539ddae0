//! One Entra ID token per audience for the whole start, shared by every fetch: the first
//! fetch that needs it asks (retrying inside the budget), the others wait for that answer,
//! success or failure. So 200 objects, or a storm of 429s on them, cost one token request
//! per identity and audience, not one per object or per retry.
//!
//! The token is not refreshed: a start lasts at most the fetch budget (`MAX_TIMEOUT`, 1 h)
//! and a workload identity token is issued for at least that long.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use tokio::sync::OnceCell;

use crate::error::Cause;

use super::classify::classify;
use super::retry::with_retries;

/// One scope's token: fetched by the first fetch that needs it, awaited by the others.
type TokenCell = Arc<OnceCell<Result<String, Cause>>>;

/// The pod's credential and the tokens it got, by scope.
pub struct SharedTokens {
    credential: Arc<dyn TokenCredential>,
    by_scope: Mutex<BTreeMap<String, TokenCell>>,
    deadline: Instant,
    timeout: Duration,
}

impl SharedTokens {
    pub fn new(credential: Arc<dyn TokenCredential>, deadline: Instant, timeout: Duration) -> Self {
        SharedTokens {
            credential,
            by_scope: Mutex::new(BTreeMap::new()),
            deadline,
            timeout,
        }
    }

    /// The access token for `scope` (already checked against the vault's host by the
    /// caller), fetched at most once per start.
    pub async fn get(&self, scope: &str) -> Result<String, Cause> {
        let cell = {
            let mut map = self
                .by_scope
                .lock()
                .map_err(|_| Cause::Content("the token cache is poisoned".into()))?;
            map.entry(scope.to_string()).or_default().clone()
        };
        cell.get_or_init(|| async {
            with_retries(self.deadline, self.timeout, || async {
                self.credential
                    .get_token(&[scope], None)
                    .await
                    .map(|t| t.token.secret().to_string())
                    .map_err(|e| classify(&e))
            })
            .await
        })
        .await
        .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    use azure_core::credentials::{AccessToken, Secret, TokenRequestOptions};
    use azure_core::error::{Error, ErrorKind};
    use azure_core::time::OffsetDateTime;

    /// Fails the first `failures` requests with a retryable error, then answers.
    #[derive(Debug)]
    struct Counting {
        calls: AtomicU32,
        failures: u32,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n < self.failures {
                return Err(Error::new(ErrorKind::Io, std::io::Error::other("reset")));
            }
            Ok(AccessToken::new(
                Secret::new(format!("token-for-{}", scopes.join(" "))),
                OffsetDateTime::now_utc(),
            ))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn many_waiters_one_request_per_scope_even_after_a_failure() {
        let credential = Arc::new(Counting {
            calls: AtomicU32::new(0),
            failures: 1,
        });
        let tokens = SharedTokens::new(
            credential.clone(),
            Instant::now() + Duration::from_secs(30),
            Duration::from_secs(30),
        );
        let scope = "https://vault.azure.net/.default";
        let got = futures::future::join_all((0..200).map(|_| tokens.get(scope))).await;
        assert!(got
            .iter()
            .all(|t| t.as_deref() == Ok("token-for-https://vault.azure.net/.default")));
        // one failed attempt, one retry, shared by all 200
        assert_eq!(credential.calls.load(Ordering::SeqCst), 2);
        tokens
            .get("https://vault.azure.cn/.default")
            .await
            .expect("other scope");
        assert_eq!(credential.calls.load(Ordering::SeqCst), 3);
    }
}
