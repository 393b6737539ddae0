//! Reading objects from Key Vault: the [`SecretSource`] seam, the retry policy (pure), and
//! the Azure implementation (workload identity through azure_identity's
//! `ClientAssertionCredential`, and the azure_security_keyvault_* clients), with akv-env's own limits: one HTTP client with
//! capped bodies ([`http`]), tokens only for Key Vault audiences ([`audience`]), and a
//! bounded read of the federated token file ([`token_file`]).

pub mod audience;
pub mod http;
pub mod token_file;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_core::vault::KEY_VAULT_SUFFIXES;
use akv_core::{ObjectKind, Part, VaultUrl};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{ClientAssertionCredential, ClientAssertionCredentialOptions};
use azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions;
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::KeyClientGetKeyOptions;
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use crate::config::Identity;
use crate::error::{Cause, ConfigError};
use crate::parts::PublicJwk;
use crate::plan::{ObjectId, Plan};

use self::audience::{ChallengeRefused, ScopeGuard};
use self::http::{BodyTooLarge, CappedHttp, HttpSetup, MAX_BODY};

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

/// One failed attempt, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: Cause,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Wait(Duration),
    GiveUp(Cause),
}

/// The retry policy (pure): 429 waits what `Retry-After` asks; 429 without it, 408, 5xx
/// and transport errors back off exponentially (200 ms doubling, at most 5 s) with jitter
/// (`jitter` in 0..=1 scales the wait between 50 % and 100 %). Everything else, and any
/// wait that would pass the deadline, gives up.
pub fn next_step(
    failure: Failure,
    attempt: u32,
    remaining: Duration,
    timeout: Duration,
    jitter: f64,
) -> Next {
    if !failure.retryable {
        return Next::GiveUp(failure.cause);
    }
    let wait = match failure.retry_after {
        Some(wait) => wait,
        None => {
            let base =
                Duration::from_millis(200).saturating_mul(1u32 << attempt.min(8).saturating_sub(1));
            base.min(Duration::from_secs(5))
                .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        }
    };
    if wait >= remaining {
        return Next::GiveUp(Cause::Budget {
            timeout,
            attempts: attempt,
            last: Some(Box::new(failure.cause)),
            retry_after: failure.retry_after,
        });
    }
    Next::Wait(wait)
}

/// A number in 0..=1 that differs per call (for jitter), without a random-number crate.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() % 10_001) as f64 / 10_000.0
}

/// Parses `Retry-After` (seconds or an HTTP date), `retry-after-ms` and `x-ms-retry-after-ms`.
pub fn parse_retry_after(
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    let v = retry_after?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = azure_core::time::parse_rfc7231(v).ok()?;
    let now = azure_core::time::OffsetDateTime::now_utc();
    Some(if when > now {
        (when - now).try_into().unwrap_or_default()
    } else {
        Duration::ZERO
    })
}

/// Runs `attempt` until it succeeds, gives up, or the deadline passes.
pub async fn with_retries<T, F, Fut>(
    deadline: Instant,
    timeout: Duration,
    mut attempt: F,
) -> Result<T, Cause>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut n = 0;
    let mut last: Option<Failure> = None;
    loop {
        n += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let failure = match tokio::time::timeout(remaining, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failure)) => failure,
            Err(_) => {
                return Err(Cause::Budget {
                    timeout,
                    attempts: n,
                    last: last.map(|f| Box::new(f.cause)),
                    retry_after: None,
                })
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match next_step(failure.clone(), n, remaining, timeout, jitter()) {
            Next::Wait(wait) => tokio::time::sleep(wait).await,
            Next::GiveUp(cause) => return Err(cause),
        }
        last = Some(failure);
    }
}

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
    if let Some(b) = find::<BodyTooLarge>(err) {
        return Some(Cause::TooLarge(b.to_string()));
    }
    // The SDK's own check of the challenge (Key Vault hosts) runs before ours.
    let (resource, host) = audience::sdk_refusal(&chain(err))?;
    Some(Cause::Challenge(
        ChallengeRefused {
            allowed: audience::audiences_for(&host),
            host,
            asked: resource,
        }
        .to_string(),
    ))
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
            cause: Cause::Transport(chain(err)),
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
                    message: one_line(&chain(err)),
                },
                retryable: transport || status.is_some_and(retryable_status),
                retry_after: None,
            }
        }
        _ => Failure {
            cause: Cause::Content(one_line(&chain(err))),
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

/// The error and its sources, ": "-joined, repeats dropped.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

fn one_line(s: &str) -> String {
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

/// A client that sends its first request alone: the Key Vault clients learn the token
/// scope from a 401 challenge to their first request, so concurrent first requests would
/// each be challenged. Later requests run concurrently.
struct Gated<C> {
    client: C,
    primed: tokio::sync::Mutex<bool>,
}

impl<C> Gated<C> {
    fn new(client: C) -> Self {
        Gated {
            client,
            primed: tokio::sync::Mutex::new(false),
        }
    }

    async fn call<'a, T, Fut>(&'a self, f: impl FnOnce(&'a C) -> Fut) -> Result<T, Failure>
    where
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let mut primed = self.primed.lock().await;
        let result = if *primed {
            drop(primed);
            f(&self.client).await
        } else {
            let result = f(&self.client).await;
            *primed = true;
            result
        };
        result.map_err(|e| classify(&e))
    }
}

struct VaultClients {
    secrets: Gated<SecretClient>,
    certificates: Gated<CertificateClient>,
    keys: Gated<KeyClient>,
}

/// Reads objects with the pod's workload identity.
pub struct AzureSource {
    vaults: BTreeMap<VaultUrl, VaultClients>,
    deadline: Instant,
    timeout: Duration,
}

impl AzureSource {
    /// Checks the token file, builds one credential (its token cache gives one token per
    /// audience) and one set of clients per vault. No network traffic yet.
    pub fn new(identity: &Identity, plan: &Plan, timeout: Duration) -> Result<Self, crate::Error> {
        Self::with_http(identity, plan, timeout, &HttpSetup::default())
    }

    /// [`AzureSource::new`] with a non-default HTTP client set-up (tests: a real vault
    /// name resolved to loopback). The akv-env binary never calls this.
    pub fn with_http(
        identity: &Identity,
        plan: &Plan,
        timeout: Duration,
        http: &HttpSetup,
    ) -> Result<Self, crate::Error> {
        let deadline = Instant::now() + timeout;
        let token = match token_file::read(&identity.token_file, timeout) {
            Err(source) => {
                return Err(ConfigError::TokenFile {
                    path: identity.token_file.clone(),
                    source,
                }
                .into())
            }
            Ok(t) if t.trim().is_empty() => {
                return Err(ConfigError::EmptyTokenFile {
                    path: identity.token_file.clone(),
                }
                .into())
            }
            Ok(t) => t,
        };
        // One HTTP client for the token exchange and every vault: one connection per host,
        // every body capped.
        let transport: Transport = CappedHttp::new(http, MAX_BODY)
            .map_err(crate::Error::Identity)?
            .transport();
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = identity.authority_host.clone();
        let client_options = |cloud: Option<Arc<CloudConfiguration>>| ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(transport.clone()),
            cloud,
            ..Default::default()
        };
        // Workload identity as WorkloadIdentityCredential does it (a client assertion from
        // the token file), with akv-env's bounded read of that file.
        let credential: Arc<dyn TokenCredential> = ClientAssertionCredential::new(
            identity.tenant_id.clone(),
            identity.client_id.clone(),
            token_file::TokenFile::new(identity.token_file.clone(), &token, timeout),
            Some(ClientAssertionCredentialOptions {
                client_options: client_options(Some(Arc::new(cloud.into()))),
            }),
        )
        .map_err(|e| crate::Error::Identity(one_line(&chain(&e))))?;

        let mut vaults = BTreeMap::new();
        for id in plan.objects.keys() {
            if vaults.contains_key(&id.vault) {
                continue;
            }
            let url = id.vault.url();
            // Key Vault's challenge names the audience (https://vault.azure.net); the SDK
            // checks that the vault's host lies under it. Hosts the operator allowed on top
            // of the Key Vault suffixes (private DNS names, test vaults) cannot pass that
            // check; for every host, the ScopeGuard lets only the Key Vault audience of the
            // host's cloud (any Key Vault audience for an allowed host) reach Entra ID.
            let verify = Some(KEY_VAULT_SUFFIXES.iter().any(|s| {
                id.vault
                    .host()
                    .strip_suffix(s)
                    .is_some_and(|h| h.ends_with('.'))
            }));
            let credential: Arc<dyn TokenCredential> = Arc::new(ScopeGuard {
                inner: credential.clone(),
                host: id.vault.host().to_string(),
            });
            let sdk = |e: azure_core::Error| crate::Error::Identity(one_line(&chain(&e)));
            let clients = VaultClients {
                secrets: Gated::new(
                    SecretClient::new(
                        &url,
                        credential.clone(),
                        Some(SecretClientOptions {
                            client_options: client_options(None),
                            verify_challenge_resource: verify,
                            ..Default::default()
                        }),
                    )
                    .map_err(sdk)?,
                ),
                certificates: Gated::new(
                    CertificateClient::new(
                        &url,
                        credential.clone(),
                        Some(CertificateClientOptions {
                            client_options: client_options(None),
                            verify_challenge_resource: verify,
                            ..Default::default()
                        }),
                    )
                    .map_err(sdk)?,
                ),
                keys: Gated::new(
                    KeyClient::new(
                        &url,
                        credential.clone(),
                        Some(KeyClientOptions {
                            client_options: client_options(None),
                            verify_challenge_resource: verify,
                            ..Default::default()
                        }),
                    )
                    .map_err(sdk)?,
                ),
            };
            vaults.insert(id.vault.clone(), clients);
        }
        Ok(AzureSource {
            vaults,
            deadline,
            timeout,
        })
    }

    async fn secret(
        &self,
        c: &VaultClients,
        name: &str,
        version: Option<&str>,
    ) -> Result<(Option<String>, String), Cause> {
        with_retries(self.deadline, self.timeout, || async {
            let options = SecretClientGetSecretOptions {
                secret_version: version.map(str::to_string),
                ..Default::default()
            };
            let secret =
                c.secrets
                    .call(|client| async move {
                        client.get_secret(name, Some(options)).await?.into_model()
                    })
                    .await?;
            Ok((secret.content_type, secret.value.unwrap_or_default()))
        })
        .await
    }
}

impl SecretSource for AzureSource {
    async fn fetch(&self, id: &ObjectId, parts: &BTreeSet<Part>) -> Result<Fetched, Cause> {
        let c = self
            .vaults
            .get(&id.vault)
            .ok_or_else(|| Cause::Content(format!("no client for vault {}", id.vault)))?;
        let (name, version) = (id.name.as_str(), id.version.as_deref());
        match id.kind {
            ObjectKind::Secret => {
                let (_, value) = self.secret(c, name, version).await?;
                Ok(Fetched::Secret { value })
            }
            ObjectKind::Certificate => {
                let cert = with_retries(self.deadline, self.timeout, || async {
                    let options = CertificateClientGetCertificateOptions {
                        certificate_version: version.map(str::to_string),
                        ..Default::default()
                    };
                    c.certificates
                        .call(|client| async move {
                            client
                                .get_certificate(name, Some(options))
                                .await?
                                .into_model()
                        })
                        .await
                })
                .await?;
                let secret = if parts.contains(&Part::Key) || parts.contains(&Part::Chain) {
                    // The backing secret, read from the same vault (never from the host in `sid`).
                    let (sname, sversion) = backing_secret(cert.sid.as_deref(), name)?;
                    Some(self.secret(c, &sname, sversion.as_deref()).await?)
                } else {
                    None
                };
                Ok(Fetched::Certificate {
                    cer: cert.cer,
                    secret,
                })
            }
            ObjectKind::Key => {
                let key = with_retries(self.deadline, self.timeout, || async {
                    let options = KeyClientGetKeyOptions {
                        key_version: version.map(str::to_string),
                        ..Default::default()
                    };
                    c.keys
                        .call(|client| async move {
                            client.get_key(name, Some(options)).await?.into_model()
                        })
                        .await
                })
                .await?;
                let jwk = key
                    .key
                    .ok_or_else(|| Cause::Content("the key has no key material (key)".into()))?;
                Ok(Fetched::Key(PublicJwk {
                    kty: jwk.kty.map(|k| k.to_string()).unwrap_or_default(),
                    n: jwk.n,
                    e: jwk.e,
                    crv: jwk.crv.map(|c| c.to_string()),
                    x: jwk.x,
                    y: jwk.y,
                }))
            }
        }
    }
}

/// The backing secret's name and version from a certificate's `sid`
/// (`https://VAULT/secrets/NAME/VERSION`); the certificate's own name when absent.
pub fn backing_secret(
    sid: Option<&str>,
    cert_name: &str,
) -> Result<(String, Option<String>), Cause> {
    let Some(sid) = sid else {
        return Ok((cert_name.to_string(), None));
    };
    let path = sid.split_once("://").map_or(sid, |(_, rest)| rest);
    let mut segments = path.split('/').skip(1);
    match (segments.next(), segments.next(), segments.next()) {
        (Some("secrets"), Some(name), version) if !name.is_empty() => Ok((
            name.to_string(),
            version.filter(|v| !v.is_empty()).map(str::to_string),
        )),
        _ => Err(Cause::Content(format!(
            "the certificate's secret id '{sid}' is not a Key Vault secret URL"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(status: u16, retryable: bool, retry_after: Option<u64>) -> Failure {
        Failure {
            cause: Cause::Status {
                status,
                code: None,
                message: String::new(),
            },
            retryable,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retry_policy() {
        let t = Duration::from_secs(60);
        let rem = Duration::from_secs(30);
        let cases = [
            (fail(404, false, None), 1, rem, 0.0, None),
            (fail(403, false, None), 1, rem, 0.0, None),
            (
                fail(429, true, Some(2)),
                1,
                rem,
                0.5,
                Some(Duration::from_secs(2)),
            ),
            (
                fail(503, true, None),
                1,
                rem,
                1.0,
                Some(Duration::from_millis(200)),
            ),
            (
                fail(503, true, None),
                1,
                rem,
                0.0,
                Some(Duration::from_millis(100)),
            ),
            (
                fail(500, true, None),
                3,
                rem,
                1.0,
                Some(Duration::from_millis(800)),
            ),
            (
                fail(500, true, None),
                20,
                rem,
                1.0,
                Some(Duration::from_secs(5)),
            ),
            (fail(429, true, Some(40)), 2, rem, 1.0, None),
        ];
        for (failure, attempt, remaining, j, want) in cases {
            let got = next_step(failure.clone(), attempt, remaining, t, j);
            match (want, got) {
                (Some(w), Next::Wait(d)) => assert_eq!(d, w, "{failure:?}"),
                (None, Next::GiveUp(_)) => {}
                (want, got) => panic!("{failure:?} attempt {attempt}: want {want:?}, got {got:?}"),
            }
        }
        match next_step(fail(429, true, Some(40)), 2, rem, t, 0.0) {
            Next::GiveUp(c) => assert_eq!(
                c.to_string(),
                "gave up after 2 attempt(s): the timeout of 60s ran out (the server asked to retry after 40s); last answer: HTTP 429"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(Some("3"), None),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(Some("3"), Some("1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(Some("soon"), None), None);
        assert_eq!(parse_retry_after(None, None), None);
    }

    #[test]
    fn backing_secret_ids() {
        let v = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            backing_secret(
                Some(&format!("https://kv.vault.azure.net/secrets/tls/{v}")),
                "tls"
            )
            .expect("valid"),
            ("tls".to_string(), Some(v.to_string()))
        );
        assert_eq!(
            backing_secret(Some("https://kv.vault.azure.net/secrets/tls"), "x").expect("valid"),
            ("tls".to_string(), None)
        );
        assert_eq!(
            backing_secret(None, "tls").expect("valid"),
            ("tls".to_string(), None)
        );
        assert!(backing_secret(Some("https://kv.vault.azure.net/keys/tls/1"), "tls").is_err());
    }

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
        let sdk = Error::with_message(
            ErrorKind::Other,
            "challenge resource 'https://graph.microsoft.com/.default' doesn't match the requested domain 'kv.vault.azure.net'. Set verify_challenge_resource in client options to disable this validation if necessary.",
        );
        let cases = [
            (too_large, Cause::TooLarge("the answer from kv.vault.azure.net is larger than 1024 KiB, which no Key Vault or Entra ID answer is (a secret is at most 25 KiB); akv-env stopped reading it".into())),
            (wrapped, Cause::Challenge(refused.to_string())),
            (sdk, Cause::Challenge("the server at kv.vault.azure.net challenged for a token for 'https://graph.microsoft.com', which is not the Key Vault audience of that host (https://vault.azure.net); akv-env asks Entra ID only for Key Vault tokens, so no token was requested".into())),
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
