//! One client per vault, speaking Key Vault's REST API (`GET /secrets|certificates|keys/
//! NAME/[VERSION]?api-version=...`) over the vault's own HTTP/2 connection
//! ([`super::vault_http`], the SDK's `HttpClient`), with the SDK's own success check and
//! error shape (`azure_core::error::check_success`), so errors classify as they did
//! through the SDK clients. The connection is opened while the token is fetched, so a
//! start costs max(token exchange, TCP+TLS) and one round trip for all its GETs.
//!
//! Why not the SDK's SecretClient, CertificateClient and KeyClient: each learns the token
//! scope from a 401 challenge to its first request, so a start paid one unauthenticated
//! round trip per client and had to send each client's first request alone before the
//! others (three per vault). Here a host under a Key Vault suffix gets its cloud's audience
//! from the table in [`super::audience`] and the token on its first request; only an
//! operator-allowed host (private DNS, a proxy) still learns its audience from the
//! challenge, once per vault, and a challenge naming anything but a Key Vault audience is
//! refused before any token is asked for.

use std::sync::Arc;

use akv_core::VaultUrl;
use azure_core::error::{check_success, CheckSuccessOptions, Error, ErrorKind};
use azure_core::http::headers::WWW_AUTHENTICATE;
use azure_core::http::{HttpClient, Method, Request, Url};
use azure_core::Bytes;
use futures::future::join;
use tokio::sync::OnceCell;

use crate::error::Cause;

use super::audience::{self, ChallengeRefused};
use super::classify::classify;
use super::retry::{with_retries, Failure};
use super::tokens::SharedTokens;
use super::vault_http::VaultHttp;

/// The REST API version the SDK clients (1.x) send.
pub const API_VERSION: &str = "2025-07-01";

/// Where a vault's token audience comes from.
enum Scope {
    /// A Key Vault host: its cloud's audience, known from the host.
    Known(String),
    /// Any other allowed host: learned from its first challenge, once.
    Learned(OnceCell<Result<String, Cause>>),
}

pub struct VaultClient {
    url: VaultUrl,
    http: VaultHttp,
    tokens: Arc<SharedTokens>,
    scope: Scope,
    deadline: std::time::Instant,
    timeout: std::time::Duration,
}

impl VaultClient {
    pub fn new(
        url: VaultUrl,
        http: VaultHttp,
        tokens: Arc<SharedTokens>,
        deadline: std::time::Instant,
        timeout: std::time::Duration,
    ) -> Self {
        let scope = match audience::known_audience(url.host()) {
            Some(a) => Scope::Known(audience::scope_of(a)),
            None => Scope::Learned(OnceCell::new()),
        };
        VaultClient {
            url,
            http,
            tokens,
            scope,
            deadline,
            timeout,
        }
    }

    /// `GET {vault}/{collection}/{name}/{version}`: the answer's body (status 200), or the
    /// failed attempt, classified. `collection` is `secrets`, `certificates` or `keys`.
    pub async fn get(
        &self,
        collection: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Bytes, Failure> {
        let url = self.object_url(collection, name, version)?;
        let scope = self.scope(&url).await.map_err(final_failure)?;
        // The vault's connection opens during the token exchange (Entra ID is another
        // host): by the time the token is here, TCP and TLS are done.
        let (token, connected) = join(self.tokens.get(&scope), self.http.connect()).await;
        let token = token.map_err(final_failure)?;
        connected.map_err(|e| classify(&e))?;
        self.send(&url, Some(&token)).await
    }

    fn object_url(
        &self,
        collection: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Url, Failure> {
        // As the SDK writes it: a trailing slash when no version is given.
        let text = format!(
            "{}/{collection}/{name}/{}?api-version={API_VERSION}",
            self.url.url(),
            version.unwrap_or_default()
        );
        Url::parse(&text)
            .map_err(|e| final_failure(Cause::Content(format!("cannot form the URL {text}: {e}"))))
    }

    async fn send(&self, url: &Url, token: Option<&str>) -> Result<Bytes, Failure> {
        let mut request = Request::new(url.clone(), Method::Get);
        request.insert_header("accept", "application/json");
        request.insert_header("user-agent", concat!("akv-env/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = token {
            request.insert_header("authorization", format!("Bearer {token}"));
        }
        let answer = async {
            let response = self.http.execute_request(&request).await?;
            let response = check_success(
                response,
                Some(CheckSuccessOptions {
                    success_codes: &[200],
                }),
            )
            .await?;
            response.into_body().collect().await
        };
        answer.await.map_err(|e| classify(&e))
    }

    /// The scope to ask Entra ID for: the host's own, or the one its first challenge
    /// names, checked against the Key Vault audiences before it is used.
    async fn scope(&self, url: &Url) -> Result<String, Cause> {
        let cell = match &self.scope {
            Scope::Known(scope) => return Ok(scope.clone()),
            Scope::Learned(cell) => cell,
        };
        cell.get_or_init(|| with_retries(self.deadline, self.timeout, || self.challenge(url)))
            .await
            .clone()
    }

    /// Sends `url` without a token and reads the scope from the 401 challenge.
    async fn challenge(&self, url: &Url) -> Result<String, Failure> {
        let mut request = Request::new(url.clone(), Method::Get);
        request.insert_header("accept", "application/json");
        request.insert_header("user-agent", concat!("akv-env/", env!("CARGO_PKG_VERSION")));
        let response = self
            .http
            .execute_request(&request)
            .await
            .map_err(|e| classify(&e))?;
        // Anything but the challenge classifies as the service's answer.
        let response = check_success(
            response,
            Some(CheckSuccessOptions {
                success_codes: &[401],
            }),
        )
        .await
        .map_err(|e| classify(&e))?;
        let header = response
            .headers()
            .get_optional_str(&WWW_AUTHENTICATE)
            .unwrap_or_default()
            .to_string();
        let scope = scope_in_challenge(&header).ok_or_else(|| {
            final_failure(Cause::Challenge(format!(
                "the server at {} answered 401 without a Key Vault challenge (WWW-Authenticate: {header:?}); akv-env asks Entra ID only for Key Vault tokens, so no token was requested",
                self.url.host()
            )))
        })?;
        let host = self.url.host();
        audience::check_scopes(host, &[&scope]).map_err(|refused: ChallengeRefused| {
            classify(&Error::new(ErrorKind::Other, refused))
        })?;
        Ok(scope)
    }
}

/// A failure already retried (or never worth retrying): the caller gives up on it.
fn final_failure(cause: Cause) -> Failure {
    Failure {
        cause,
        retryable: false,
        retry_after: None,
    }
}

/// The scope a `WWW-Authenticate: Bearer ...` challenge names: `scope="S"` as given, or
/// `resource="R"` as `R/.default` (how the SDK reads Key Vault's challenge).
pub fn scope_in_challenge(header: &str) -> Option<String> {
    let rest = header.trim().strip_prefix("Bearer")?;
    let param = |name: &str| {
        rest.split(',').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_string())
                .filter(|v| !v.is_empty())
        })
    };
    param("scope").or_else(|| param("resource").map(|r| audience::scope_of(&r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
    use azure_core::http::AsyncRawResponse;

    use crate::keyvault::dial::Dialer;
    use crate::keyvault::http::HttpSetup;
    use crate::keyvault::proxy::Matcher;
    use crate::keyvault::tls::tls_config;

    /// Never called: the test below only measures futures.
    #[derive(Debug)]
    struct Unused;

    #[async_trait::async_trait]
    impl TokenCredential for Unused {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Err(Error::with_message(ErrorKind::Other, "unused"))
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for Unused {
        async fn execute_request(&self, _: &Request) -> azure_core::Result<AsyncRawResponse> {
            Err(Error::with_message(ErrorKind::Other, "unused"))
        }
    }

    /// Every object's fetch is alive at once (200 objects: 200 of these futures), and
    /// each once carried the whole connection set-up inline (TLS state, the HTTP/2
    /// handshake: ~9 KiB in the release build, ~1.8 MiB of peak heap for 200 objects,
    /// seen with massif). Opening the connection is boxed since; this keeps it so.
    #[test]
    fn a_fetch_does_not_carry_the_connection_set_up() {
        const LIMIT: usize = 2048;
        let url = VaultUrl::parse_spec("https://kv-size.vault.azure.net").expect("vault url");
        let setup = HttpSetup::default();
        let tls = tls_config(&setup).expect("tls");
        let parsed = Url::parse(&url.url()).expect("url");
        let dialer = Arc::new(Dialer::new(&setup, tls, Matcher::builder().build()));
        let http = VaultHttp::new(&parsed, dialer, Arc::new(Unused), 1024);
        let deadline = Instant::now() + Duration::from_secs(1);
        let tokens = Arc::new(SharedTokens::new(
            Arc::new(Unused),
            deadline,
            Duration::from_secs(1),
        ));
        let client = VaultClient::new(url, http, tokens, deadline, Duration::from_secs(1));
        let fetch = client.get("secrets", "db", None);
        let size = std::mem::size_of_val(&fetch);
        assert!(
            size <= LIMIT,
            "a fetch's future is {size} bytes (limit {LIMIT})"
        );
    }

    #[test]
    fn challenges() {
        let cases = [
            (
                r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#,
                Some("https://vault.azure.net/.default"),
            ),
            (
                r#"Bearer authorization="https://login.microsoftonline.com/t", scope="https://management.azure.com/.default""#,
                Some("https://management.azure.com/.default"),
            ),
            (
                r#"Bearer authorization="https://login.microsoftonline.com/t""#,
                None,
            ),
            (r#"Basic realm="x""#, None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(scope_in_challenge(header).as_deref(), want, "{header}");
        }
    }
}
