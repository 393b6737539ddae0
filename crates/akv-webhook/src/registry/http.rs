//! The registry's HTTP side: the few OCI distribution requests a lookup needs (a manifest,
//! a config blob, a token), on one shared reqwest client, with every answer bounded.
//!
//! Written here rather than through `oci-client` because a registry named by a pod
//! author is hostile: `oci-client` reads whole bodies into memory whatever their size,
//! follows redirects anywhere, sends Basic credentials to any token realm, gives no way to
//! pass a client (one per registry held a root store each), and puts registry text into
//! its errors. Here:
//! - bodies are read up to their declared descriptor size or a fixed cap, whichever is
//!   smaller, and a larger one fails ("too large"); error and token bodies up to 64 KiB;
//! - redirects and token realms must pass [`HostRules::check_hop`]; names resolve through
//!   [`GuardedResolver`]; no proxy is used (a proxy would connect where we cannot check);
//! - errors are [`HttpError`]s: our classification, a status, and at most a sanitized
//!   OCI error code, never the registry's text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest13::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest13::{Response, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha512};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::hosts::{GuardedResolver, HostRules, Refused};

/// Largest manifest or image index read.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest image config read (real ones are a few KiB; long histories, ~100 KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Largest error or token answer read.
const MAX_SMALL_BYTES: u64 = 64 * 1024;
const MAX_REDIRECTS: usize = 5;
/// Body buffers of all lookups together, in KiB (each body at most its cap).
const MAX_BUFFERED_KIB: usize = 8 * 1024;
/// Longest bearer token accepted.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest a token or Basic authorization is reused.
const AUTH_TTL: Duration = Duration::from_secs(300);

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
struct HopRefused(String);

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

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct AuthKey {
    host: String,
    repository: String,
    credentials: [u8; 32],
}

#[derive(Clone)]
struct CachedAuth {
    header: HeaderValue,
    until: Instant,
}

/// How much of a body to read.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub what: &'static str,
    /// The descriptor's size, when one declares it: the body must be exactly this long.
    pub declared: Option<u64>,
    pub cap: u64,
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

/// A body read into memory, holding its share of the buffer budget until dropped.
pub struct Body {
    data: Vec<u8>,
    _budget: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

/// KiB of `bytes`, rounded up, as semaphore permits.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Reads a body up to `limit`: too large past the cap or the declared size, invalid when
/// shorter than declared. Every byte of buffer capacity is first taken from `budget`,
/// shared by all lookups, so that many large answers at once wait rather than add up.
async fn read_body(
    mut response: Response,
    limit: Limit,
    budget: &Arc<Semaphore>,
) -> Result<Body, HttpError> {
    let (max, declared) = match limit.declared {
        Some(size) if size <= limit.cap => (size, true),
        Some(_) => {
            return Err(HttpError::TooLarge {
                what: limit.what,
                limit: limit.cap,
                declared: false,
            })
        }
        None => (limit.cap, false),
    };
    let too_large = HttpError::TooLarge {
        what: limit.what,
        limit: max,
        declared,
    };
    if response.content_length().is_some_and(|len| len > max) {
        return Err(too_large);
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        let needed = out.len() + chunk.len();
        if needed > max {
            return Err(too_large);
        }
        if needed > out.capacity() {
            let target = needed
                .max(out.capacity().saturating_mul(2))
                .max(16 * 1024)
                .min(max);
            let have = held.as_ref().map_or(0, |p| p.num_permits());
            let more = kib(target).saturating_sub(u32::try_from(have).unwrap_or(u32::MAX));
            if more > 0 {
                let permit = Arc::clone(budget)
                    .acquire_many_owned(more)
                    .await
                    .map_err(|_| HttpError::Connect("the webhook is stopping".to_string()))?;
                match held.as_mut() {
                    Some(h) => h.merge(permit),
                    None => held = Some(permit),
                }
            }
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk);
    }
    if declared && out.len() != max {
        return Err(HttpError::Invalid(format!(
            "the {} the registry sent is {} bytes, not the {max} its descriptor declares",
            limit.what,
            out.len()
        )));
    }
    Ok(Body {
        data: out,
        _budget: held,
    })
}

/// A non-success answer, classified; only the OCI error code of its body is kept.
async fn status_error(response: Response, budget: &Arc<Semaphore>) -> HttpError {
    let status = response.status().as_u16();
    let limit = Limit {
        what: "error answer",
        declared: None,
        cap: MAX_SMALL_BYTES,
    };
    let code = match read_body(response, limit, budget).await {
        Ok(body) => error_code(&body),
        Err(_) => None,
    };
    match status {
        401 | 403 => HttpError::Unauthorized { status, code },
        404 => HttpError::NotFound { code },
        _ => HttpError::Status { status, code },
    }
}

/// The parts of a `WWW-Authenticate` challenge that are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The challenge of a 401: Bearer when offered, else Basic.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut basic = false;
    for challenge in http_auth::ChallengeParser::new(value).flatten() {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if let Some(realm) = param("realm") {
                return Some(Challenge::Bearer {
                    realm,
                    service: param("service"),
                });
            }
        } else if challenge.scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
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

    /// The `Authorization` for a challenge, and how long it may be reused.
    async fn authorize(
        &self,
        origin: &Url,
        repository: &str,
        credentials: &Credentials,
        challenge: Option<Challenge>,
    ) -> Result<(HeaderValue, Duration), HttpError> {
        let unauthorized = HttpError::Unauthorized {
            status: 401,
            code: None,
        };
        match (challenge, credentials) {
            (None, _) | (Some(Challenge::Basic), Credentials::Anonymous) => Err(unauthorized),
            (Some(Challenge::Basic), Credentials::Basic { username, password }) => {
                let raw = BASE64.encode(format!("{username}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {raw}")).map_err(|_| {
                    HttpError::Invalid("the pull secret's credentials cannot be sent".to_string())
                })?;
                value.set_sensitive(true);
                Ok((value, AUTH_TTL))
            }
            (Some(Challenge::Bearer { realm, service }), credentials) => {
                self.token(origin, repository, credentials, &realm, service.as_deref())
                    .await
            }
        }
    }

    async fn token(
        &self,
        origin: &Url,
        repository: &str,
        credentials: &Credentials,
        realm: &str,
        service: Option<&str>,
    ) -> Result<(HeaderValue, Duration), HttpError> {
        let mut url = Url::parse(realm)
            .map_err(|_| HttpError::Hop("the registry's token realm is not a URL".to_string()))?;
        self.rules
            .check_hop(origin, &url, "token realm")
            .map_err(HttpError::Hop)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &format!("repository:{repository}:pull"));
        }
        let basic = match credentials {
            Credentials::Basic { username, password } => {
                Some((username.as_str(), password.as_str()))
            }
            Credentials::Anonymous => None,
        };
        let response = self.send(&url, "application/json", None, basic).await?;
        if !response.status().is_success() {
            return Err(status_error(response, &self.budget).await);
        }
        let limit = Limit {
            what: "token answer",
            declared: None,
            cap: MAX_SMALL_BYTES,
        };
        let body = read_body(response, limit, &self.budget).await?;
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let unusable =
            || HttpError::Invalid("the registry's token service sent no usable token".to_string());
        let answer: Token = serde_json::from_slice(&body).map_err(|_| unusable())?;
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token)
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES)
            .ok_or_else(unusable)?;
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| unusable())?;
        value.set_sensitive(true);
        // Registries default to 60 s; reuse for at most 90 % of the lifetime, ≤ 5 min.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(10, 300));
        Ok((value, lifetime.mul_f32(0.9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let cases = [
            (r#"Basic realm="test""#, Some(Challenge::Basic)),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                }),
            ),
            (
                r#"Basic realm="x", Bearer realm="https://r.example/token""#,
                Some(Challenge::Bearer {
                    realm: "https://r.example/token".into(),
                    service: None,
                }),
            ),
            (r#"Bearer service="no-realm""#, None),
            ("Negotiate", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_challenge(header), want, "{header}");
        }
    }

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
