//! The registry's HTTP side: the few OCI distribution requests a lookup needs (a manifest,
//! a config blob, a token), on one shared reqwest client, with every answer bounded.
//!
//! Written here rather than through `oci-client` because a registry named by a pod
//! author is hostile: `oci-client` reads whole bodies into memory whatever their size,
//! follows redirects anywhere, sends Basic credentials to any token realm, gives no way to
//! pass a client (one per registry held a root store each), and puts registry text into
//! its errors. Here:
//! - bodies are read up to their declared descriptor size or a fixed cap, whichever is
//!   smaller, and a larger one fails ("too large"); error and token bodies up to 64 KiB
//!   (`body`);
//! - redirects and token realms must pass [`HostRules::check_hop`]; names resolve through
//!   [`GuardedResolver`]; no proxy is used (a proxy would connect where we cannot check)
//!   ([`guarded_client`] here, the token realm in `auth`);
//! - errors are [`HttpError`]s: our classification, a status, and at most a sanitized
//!   OCI error code, never the registry's text (`errors`);
//! - digests named by the registry are checked before they go into URLs, and bodies
//!   against them (`digests`).
//!
//! This file holds the client and its requests ([`RegistryHttp`]) and the credentials
//! they carry; `auth` the challenge, token exchange and authorization cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest13::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest13::{Response, StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::hosts::{GuardedResolver, HostRules};

mod auth;
mod body;
mod digests;
mod errors;

pub use auth::{parse_challenge, Challenge};
pub use body::{Body, Limit, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
pub use digests::{sha256_digest, valid_digest, verify_digest};
pub use errors::{classify, error_code, HttpError};

use auth::{AuthKey, CachedAuth, AUTH_TTL};
use body::{read_body, status_error, MAX_BUFFERED_KIB};
use errors::HopRefused;

const MAX_REDIRECTS: usize = 5;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How a lookup authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl Credentials {
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        if let Credentials::Basic { username, password } = self {
            hash.update(username.as_bytes());
            hash.update([0]);
            hash.update(password.as_bytes());
        }
        hash.finalize().into()
    }
}

/// The shared registry HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct RegistryHttp {
    client: reqwest13::Client,
    rules: Arc<HostRules>,
    auth: moka::sync::Cache<AuthKey, CachedAuth>,
    /// KiB of body buffers all lookups may hold at once.
    budget: Arc<Semaphore>,
}

/// An HTTP client that resolves through [`GuardedResolver`], follows only redirects
/// that `rules` allow, uses no proxy, and trusts the system roots and `roots`.
pub fn guarded_client(
    rules: &Arc<HostRules>,
    roots: &[Vec<u8>],
    connect_timeout: Duration,
    user_agent: &str,
) -> Result<reqwest13::Client, String> {
    crate::tls::install_default_provider();
    let certs = roots
        .iter()
        .map(|der| reqwest13::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let hop_rules = Arc::clone(rules);
    let policy = reqwest13::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(HopRefused(format!(
                "the registry redirected more than {MAX_REDIRECTS} times"
            )));
        }
        let checked = match attempt.previous().first() {
            Some(origin) => hop_rules.check_hop(origin, attempt.url(), "redirect"),
            None => Ok(()),
        };
        match checked {
            Ok(()) => attempt.follow(),
            Err(message) => attempt.error(HopRefused(message)),
        }
    });
    reqwest13::Client::builder()
        .tls_certs_merge(certs)
        .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(rules))))
        .redirect(policy)
        .no_proxy()
        .https_only(true)
        .connect_timeout(connect_timeout)
        // Few idle connections, not kept long: a hostile review mix names many hosts.
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(5))
        .user_agent(user_agent)
        .build()
        .map_err(|e| akv_core::error_chain(&e))
}

impl RegistryHttp {
    pub fn new(client: reqwest13::Client, rules: Arc<HostRules>) -> Self {
        RegistryHttp {
            client,
            rules,
            // Weighed by the header's size: at most 4 MiB of tokens.
            auth: moka::sync::Cache::builder()
                .max_capacity(4 * 1024 * 1024)
                .weigher(|k: &AuthKey, v: &CachedAuth| {
                    u32::try_from(k.host.len() + k.repository.len() + v.header.len() + 64)
                        .unwrap_or(u32::MAX)
                })
                .time_to_live(AUTH_TTL)
                .build(),
            budget: Arc::new(Semaphore::new(MAX_BUFFERED_KIB)),
        }
    }

    pub fn rules(&self) -> &HostRules {
        &self.rules
    }

    /// A manifest or index by tag or digest; `declared` is its descriptor's size when an
    /// index names it.
    pub async fn manifest(
        &self,
        host: &str,
        repository: &str,
        reference: &str,
        declared: Option<u64>,
        credentials: &Credentials,
    ) -> Result<Body, HttpError> {
        let limit = Limit {
            what: "manifest",
            declared,
            cap: MAX_MANIFEST_BYTES,
        };
        self.get(
            host,
            repository,
            &format!("manifests/{reference}"),
            MANIFEST_TYPES,
            limit,
            credentials,
        )
        .await
    }

    /// A blob of exactly `size` bytes.
    pub async fn blob(
        &self,
        host: &str,
        repository: &str,
        digest: &str,
        size: u64,
        credentials: &Credentials,
    ) -> Result<Body, HttpError> {
        valid_digest(digest)?;
        let limit = Limit {
            what: "image config",
            declared: Some(size),
            cap: MAX_CONFIG_BYTES,
        };
        self.get(
            host,
            repository,
            &format!("blobs/{digest}"),
            "*/*",
            limit,
            credentials,
        )
        .await
    }

    async fn get(
        &self,
        host: &str,
        repository: &str,
        path: &str,
        accept: &str,
        limit: Limit,
        credentials: &Credentials,
    ) -> Result<Body, HttpError> {
        self.rules.check_host(host).map_err(HttpError::Refused)?;
        let url = Url::parse(&format!("https://{host}/v2/{repository}/{path}"))
            .map_err(|_| HttpError::Invalid("the image does not make a valid URL".to_string()))?;
        let key = AuthKey {
            host: host.to_string(),
            repository: repository.to_string(),
            credentials: credentials.fingerprint(),
        };
        let mut header = self
            .auth
            .get(&key)
            .filter(|a| a.until > Instant::now())
            .map(|a| a.header);
        for attempt in 0..2 {
            let response = self.send(&url, accept, header.as_ref(), None).await?;
            let status = response.status();
            if status.is_success() {
                return read_body(response, limit, &self.budget).await;
            }
            if status != StatusCode::UNAUTHORIZED || attempt == 1 {
                return Err(status_error(response, &self.budget).await);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let (value, ttl) = self
                .authorize(&url, repository, credentials, challenge)
                .await?;
            self.auth.insert(
                key.clone(),
                CachedAuth {
                    header: value.clone(),
                    until: Instant::now() + ttl,
                },
            );
            header = Some(value);
        }
        Err(HttpError::Unauthorized {
            status: 401,
            code: None,
        })
    }

    async fn send(
        &self,
        url: &Url,
        accept: &str,
        authorization: Option<&HeaderValue>,
        basic: Option<(&str, &str)>,
    ) -> Result<Response, HttpError> {
        let mut request = self.client.get(url.clone()).header(ACCEPT, accept);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some((user, pass)) = basic {
            request = request.basic_auth(user, Some(pass));
        }
        let response = request.send().await.map_err(|e| classify(&e))?;
        if let Some(addr) = response.remote_addr() {
            let final_url = response.url();
            let host = match final_url.port() {
                Some(port) => format!("{}:{port}", final_url.host_str().unwrap_or_default()),
                None => final_url.host_str().unwrap_or_default().to_string(),
            };
            self.rules
                .check_connected(&host, addr)
                .map_err(HttpError::Refused)?;
        }
        Ok(response)
    }
}
