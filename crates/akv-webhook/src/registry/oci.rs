//! The registry-backed [`ImageConfigSource`]: reads image configs over the OCI distribution
//! API (`oci-client`), with the pod's pull secrets, and caches them.
//!
//! Caches (moka): image configs by `(registry, repository, manifest digest, platform)` —
//! immutable, kept until evicted by size; and tag -> digest for a short TTL. Concurrent
//! lookups of the same key make one registry round trip (moka coalesces the inits). A
//! lookup runs in its own task, so a review whose deadline passes still fills the cache
//! for the next try. The cache is shared by all pods: a pod may get the ENTRYPOINT of an
//! image that another pod's credentials read (the kubelet still enforces pull access).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use thiserror::Error;
use tracing::debug;

use super::acr::{self, AcrTokenSource, ACR_USER};
use super::credentials::{credentials_for, PullSecretSource};
use super::platform::Platform;
use super::reference::ImageRef;
use super::{ImageConfigSource, LookupError};
use crate::inject::ImageConfig;
use crate::metrics::Metrics;

/// Largest image config read (real ones are a few KiB; ones with long histories, ~100 KiB).
pub const MAX_CONFIG_BYTES: i64 = 8 * 1024 * 1024;

const USER_AGENT: &str = concat!("akv-injector-webhook/", env!("CARGO_PKG_VERSION"));

/// Tuning of [`RegistrySource`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Platform of pods that do not constrain `kubernetes.io/os`/`arch` (`--default-platform`).
    pub default_platform: Platform,
    /// Extra trusted CA certificates, PEM (`--registry-ca-file`), besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a tag -> digest answer is reused (`--registry-tag-ttl`).
    pub tag_ttl: Duration,
    /// How many image configs are kept.
    pub max_configs: u64,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for a response to read; a lookup task gives up after this even when no
    /// review waits for it any more.
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            default_platform: Platform::default(),
            ca_pem: None,
            tag_ttl: Duration::from_secs(60),
            max_configs: 4096,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a [`RegistrySource`] cannot be made.
#[derive(Debug, Error)]
pub enum RegistrySetupError {
    #[error("--registry-ca-file holds no PEM certificate")]
    NoCertificate,
    #[error("--registry-ca-file: {0}")]
    BadCertificate(String),
    #[error("cannot make the registry HTTP client: {0}")]
    Client(String),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// `akv_webhook_registry_*` metrics.
#[derive(Debug, Clone)]
struct RegistryMetrics {
    hits: Family<CacheLabels, Counter>,
    misses: Family<CacheLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    duration: Histogram,
}

impl RegistryMetrics {
    fn new(metrics: Option<&Metrics>) -> Self {
        let m = RegistryMetrics {
            hits: Family::default(),
            misses: Family::default(),
            errors: Family::default(),
            duration: Histogram::new([
                0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        };
        for cache in ["tag", "config"] {
            let _ = m.hits.get_or_create(&CacheLabels { cache });
            let _ = m.misses.get_or_create(&CacheLabels { cache });
        }
        if let Some(metrics) = metrics {
            metrics.register(
                "registry_cache_hits",
                "Image lookups answered from a cache (tag: tag -> digest; config: digest -> ENTRYPOINT/CMD), waiters on an in-flight lookup included",
                m.hits.clone(),
            );
            metrics.register(
                "registry_cache_misses",
                "Image lookups that had to ask the registry, by cache",
                m.misses.clone(),
            );
            metrics.register(
                "registry_lookup_errors",
                "Image lookups that failed, by reason (auth, not_found, unreachable, invalid, other)",
                m.errors.clone(),
            );
            metrics.register(
                "registry_lookup_duration_seconds",
                "Time to read one image's ENTRYPOINT/CMD, cache hits included, in seconds",
                m.duration.clone(),
            );
        }
        m
    }
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum FetchError {
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Other(String),
}

impl FetchError {
    fn reason(&self) -> &'static str {
        match self {
            FetchError::Auth(_) => "auth",
            FetchError::NotFound(_) => "not_found",
            FetchError::Unreachable(_) => "unreachable",
            FetchError::Invalid(_) => "invalid",
            FetchError::Other(_) => "other",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum AuthKey {
    Anonymous,
    Basic(String, String),
}

impl AuthKey {
    fn registry_auth(&self) -> RegistryAuth {
        match self {
            AuthKey::Anonymous => RegistryAuth::Anonymous,
            AuthKey::Basic(u, p) => RegistryAuth::Basic(u.clone(), p.clone()),
        }
    }
}

/// One way to authenticate, and how to name it in messages.
struct Candidate {
    auth: AuthKey,
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct TagKey {
    host: String,
    repository: String,
    tag: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct ConfigKey {
    host: String,
    repository: String,
    digest: String,
    platform: Platform,
}

/// Reads image configs from registries. Cheap to clone.
#[derive(Clone)]
pub struct RegistrySource {
    inner: Arc<Inner>,
}

struct Inner {
    options: RegistryOptions,
    roots: Vec<Vec<u8>>,
    secrets: Arc<dyn PullSecretSource>,
    acr: Option<Arc<dyn AcrTokenSource>>,
    clients: moka::sync::Cache<(String, AuthKey), Client>,
    tags: moka::future::Cache<TagKey, String>,
    configs: moka::future::Cache<ConfigKey, ImageConfig>,
    metrics: RegistryMetrics,
}

/// The certificates of a PEM bundle, DER-encoded.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, RegistrySetupError> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| RegistrySetupError::BadCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(RegistrySetupError::NoCertificate);
    }
    Ok(certs)
}

/// An HTTP client for Entra ID and ACR token exchanges, trusting the system roots and `roots`.
pub fn http_client(
    roots: &[Vec<u8>],
    options: &RegistryOptions,
) -> Result<reqwest13::Client, RegistrySetupError> {
    crate::tls::install_default_provider();
    let certs = roots
        .iter()
        .map(|der| reqwest13::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RegistrySetupError::BadCertificate(e.to_string()))?;
    reqwest13::Client::builder()
        .tls_certs_merge(certs)
        .connect_timeout(options.connect_timeout)
        .timeout(options.read_timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| RegistrySetupError::Client(error_chain(&e)))
}

impl RegistrySource {
    /// A source that reads pull secrets from `secrets` and uses `acr` for `*.azurecr.io`
    /// registries that no pull secret matches. Metrics are registered into `metrics`.
    pub fn new(
        options: RegistryOptions,
        secrets: Arc<dyn PullSecretSource>,
        acr: Option<Arc<dyn AcrTokenSource>>,
        metrics: Option<&Metrics>,
    ) -> Result<Self, RegistrySetupError> {
        crate::tls::install_default_provider();
        let roots = match &options.ca_pem {
            Some(pem) => parse_ca_pem(pem)?,
            None => Vec::new(),
        };
        let inner = Inner {
            roots,
            secrets,
            acr,
            clients: moka::sync::Cache::builder()
                .max_capacity(512)
                .time_to_idle(Duration::from_secs(15 * 60))
                .build(),
            tags: moka::future::Cache::builder()
                .max_capacity(options.max_configs)
                .time_to_live(options.tag_ttl)
                .build(),
            configs: moka::future::Cache::builder()
                .max_capacity(options.max_configs)
                .build(),
            metrics: RegistryMetrics::new(metrics),
            options,
        };
        // Fail at start, not at the first lookup, if the client cannot be made.
        inner.make_client()?;
        Ok(RegistrySource {
            inner: Arc::new(inner),
        })
    }
}

#[async_trait]
impl ImageConfigSource for RegistrySource {
    async fn image_config(&self, image: &str, pod: &Pod) -> Result<ImageConfig, LookupError> {
        let started = Instant::now();
        let inner = Arc::clone(&self.inner);
        let platform = Platform::for_pod(pod, &inner.options.default_platform);
        let result = match ImageRef::parse(image) {
            Err(e) => Err(FetchError::Invalid(e)),
            Ok(image_ref) => {
                let pod = pod.clone();
                // Its own task: a review that stops waiting does not stop the lookup.
                let task = tokio::spawn(async move {
                    let inner2 = Arc::clone(&inner);
                    inner2.lookup(&image_ref, &platform, &pod).await
                });
                match task.await {
                    Ok(result) => result,
                    Err(e) => Err(FetchError::Other(format!("the lookup task failed: {e}"))),
                }
            }
        };
        let metrics = &self.inner.metrics;
        metrics.duration.observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics
                .errors
                .get_or_create(&ReasonLabels { reason: e.reason() })
                .inc();
            debug!(image, error = %e, "image lookup failed");
        }
        result.map_err(|e| LookupError::Failed(e.to_string()))
    }
}

impl Inner {
    fn make_client(&self) -> Result<Client, RegistrySetupError> {
        let config = ClientConfig {
            protocol: ClientProtocol::Https,
            extra_root_certificates: self
                .roots
                .iter()
                .map(|der| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: der.clone(),
                })
                .collect(),
            connect_timeout: Some(self.options.connect_timeout),
            read_timeout: Some(self.options.read_timeout),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        Client::try_from(config).map_err(|e| RegistrySetupError::Client(error_chain(&e)))
    }

    /// One client per registry and credential: `oci-client` keeps one auth per registry.
    fn client(&self, host: &str, auth: &AuthKey) -> Result<Client, FetchError> {
        let key = (host.to_string(), auth.clone());
        if let Some(client) = self.clients.get(&key) {
            return Ok(client);
        }
        let client = self
            .make_client()
            .map_err(|e| FetchError::Other(e.to_string()))?;
        self.clients.insert(key, client.clone());
        Ok(client)
    }

    fn count(&self, cache: &'static str, hit: bool) {
        let family = if hit {
            &self.metrics.hits
        } else {
            &self.metrics.misses
        };
        family.get_or_create(&CacheLabels { cache }).inc();
    }

    async fn lookup(
        &self,
        image: &ImageRef,
        platform: &Platform,
        pod: &Pod,
    ) -> Result<ImageConfig, FetchError> {
        let host = image.host().to_string();
        let repository = image.repository().to_string();
        let mut tag_fetched_config = false;
        let digest = match (image.digest(), image.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, tag) => {
                let key = TagKey {
                    host: host.clone(),
                    repository: repository.clone(),
                    tag: tag.unwrap_or("latest").to_string(),
                };
                let (digest, hit) = self
                    .cached(&self.tags, key, || async {
                        let (digest, config) =
                            self.fetch(image, image.reference(), platform, pod).await?;
                        self.configs
                            .insert(
                                ConfigKey {
                                    host: host.clone(),
                                    repository: repository.clone(),
                                    digest: digest.clone(),
                                    platform: platform.clone(),
                                },
                                config,
                            )
                            .await;
                        Ok(digest)
                    })
                    .await?;
                self.count("tag", hit);
                tag_fetched_config = !hit;
                digest
            }
        };
        let key = ConfigKey {
            host,
            repository,
            digest: digest.clone(),
            platform: platform.clone(),
        };
        let by_digest = image.with_digest(&digest);
        let (config, hit) = self
            .cached(&self.configs, key, || async {
                Ok(self.fetch(image, &by_digest, platform, pod).await?.1)
            })
            .await?;
        if !tag_fetched_config {
            self.count("config", hit);
        }
        Ok(config)
    }

    /// `cache`'s value for `key`, made by `init` on a miss; concurrent callers for the same
    /// key share one `init`. `(value, hit)`. When another caller's `init` failed (with its
    /// pod's credentials), this caller tries once more with its own.
    async fn cached<K, V, F, Fut>(
        &self,
        cache: &moka::future::Cache<K, V>,
        key: K,
        init: F,
    ) -> Result<(V, bool), FetchError>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<V, FetchError>>,
    {
        let mut last = None;
        for _ in 0..2 {
            let ran = AtomicBool::new(false);
            let entry = cache
                .entry(key.clone())
                .or_try_insert_with(async {
                    ran.store(true, Ordering::Relaxed);
                    init().await
                })
                .await;
            match entry {
                Ok(entry) => {
                    let hit = !entry.is_fresh();
                    return Ok((entry.into_value(), hit));
                }
                Err(e) => {
                    if ran.load(Ordering::Relaxed) {
                        return Err((*e).clone());
                    }
                    last = Some((*e).clone());
                }
            }
        }
        Err(last.unwrap_or_else(|| FetchError::Other("lookup failed".to_string())))
    }

    /// Who to be: the pod's matching pull secrets, in order; else the webhook's workload
    /// identity for ACR; else anonymous. `notes` say what was skipped and why.
    async fn candidates(&self, image: &ImageRef, pod: &Pod) -> (Vec<Candidate>, Vec<String>) {
        let (creds, mut notes) =
            credentials_for(&*self.secrets, pod, image.registry(), image.repository()).await;
        if !creds.is_empty() {
            let list = creds
                .into_iter()
                .map(|c| Candidate {
                    auth: AuthKey::Basic(c.username, c.password),
                    source: format!("the credentials of {}", c.source),
                })
                .collect();
            return (list, notes);
        }
        if acr::is_acr(image.host()) {
            match &self.acr {
                Some(acr) => match acr.refresh_token(image.host()).await {
                    Ok(token) => {
                        let candidate = Candidate {
                            auth: AuthKey::Basic(ACR_USER.to_string(), token),
                            source: "the webhook's workload identity".to_string(),
                        };
                        return (vec![candidate], notes);
                    }
                    Err(e) => notes.push(e),
                },
                None => notes.push(
                    "the webhook has no Azure workload identity for ACR (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)"
                        .to_string(),
                ),
            }
        }
        let anonymous = Candidate {
            auth: AuthKey::Anonymous,
            source: format!(
                "anonymous access (no pull secret of the pod or its service account matches {})",
                image.registry()
            ),
        };
        (vec![anonymous], notes)
    }

    /// Reads `reference` (a tag or a digest of `image`'s repository) and the config of its
    /// manifest for `platform`, trying each candidate credential until one is accepted.
    async fn fetch(
        &self,
        image: &ImageRef,
        reference: &Reference,
        platform: &Platform,
        pod: &Pod,
    ) -> Result<(String, ImageConfig), FetchError> {
        let (candidates, notes) = self.candidates(image, pod).await;
        let mut last = FetchError::Other("no credentials to try".to_string());
        let count = candidates.len();
        for (i, candidate) in candidates.into_iter().enumerate() {
            let client = self.client(image.host(), &candidate.auth)?;
            let auth = candidate.auth.registry_auth();
            let known = Known {
                configs: &self.configs,
                host: image.host(),
                repository: image.repository(),
            };
            match fetch_config(&client, &auth, image, reference, platform, known).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    let e = describe(e, image, &candidate.source, &notes);
                    let retry = matches!(e, FetchError::Auth(_)) && i + 1 < count;
                    last = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

/// What the lookup of one manifest and its config can fail with, before it is described.
enum RawError {
    Oci(OciDistributionError),
    Invalid(String),
}

impl From<OciDistributionError> for RawError {
    fn from(e: OciDistributionError) -> Self {
        RawError::Oci(e)
    }
}

/// The configs already cached: a tag whose digest expired costs one manifest request.
struct Known<'a> {
    configs: &'a moka::future::Cache<ConfigKey, ImageConfig>,
    host: &'a str,
    repository: &'a str,
}

async fn fetch_config(
    client: &Client,
    auth: &RegistryAuth,
    image: &ImageRef,
    reference: &Reference,
    platform: &Platform,
    known: Known<'_>,
) -> Result<(String, ImageConfig), RawError> {
    let (manifest, digest) = client.pull_manifest(reference, auth).await?;
    let key = ConfigKey {
        host: known.host.to_string(),
        repository: known.repository.to_string(),
        digest: digest.clone(),
        platform: platform.clone(),
    };
    if let Some(config) = known.configs.get(&key).await {
        return Ok((digest, config));
    }
    let manifest: OciImageManifest = match manifest {
        OciManifest::Image(m) => m,
        OciManifest::ImageIndex(index) => {
            let Some(entry) = platform.pick(&index.manifests) else {
                let have: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|e| e.platform.as_ref())
                    .map(|p| match &p.variant {
                        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    })
                    .collect();
                return Err(RawError::Invalid(format!(
                    "the image index has no manifest for the pod's platform {platform} (it has: {}); set the pod's kubernetes.io/arch node selector or the webhook's --default-platform",
                    have.join(", ")
                )));
            };
            match client
                .pull_manifest(&image.with_digest(&entry.digest), auth)
                .await?
            {
                (OciManifest::Image(m), _) => m,
                (OciManifest::ImageIndex(_), _) => {
                    return Err(RawError::Invalid(format!(
                        "the {platform} entry of the image index is another index"
                    )))
                }
            }
        }
    };
    if manifest.config.size > MAX_CONFIG_BYTES {
        return Err(RawError::Invalid(format!(
            "the image config is {} bytes, more than the {MAX_CONFIG_BYTES} this webhook reads",
            manifest.config.size
        )));
    }
    let mut data: Vec<u8> = Vec::with_capacity(usize::try_from(manifest.config.size).unwrap_or(0));
    client
        .pull_blob(
            &image.with_digest(&manifest.config.digest),
            &manifest.config,
            &mut data,
        )
        .await?;
    Ok((digest, parse_config(&data).map_err(RawError::Invalid)?))
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize)]
struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
}

/// ENTRYPOINT and CMD of an image config (OCI or Docker; absent or null means none).
pub fn parse_config(data: &[u8]) -> Result<ImageConfig, String> {
    let file: ConfigFile = serde_json::from_slice(data)
        .map_err(|e| format!("the image config is not valid JSON: {e}"))?;
    let run = file.config.unwrap_or(RunConfig {
        entrypoint: None,
        cmd: None,
    });
    Ok(ImageConfig {
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
    })
}

/// A user-facing message for a failed fetch: which registry, what it said, which
/// credentials were used, and what was skipped.
fn describe(error: RawError, image: &ImageRef, source: &str, notes: &[String]) -> FetchError {
    let host = image.host();
    let name = image.name();
    let also = if notes.is_empty() {
        String::new()
    } else {
        format!(" (also: {})", notes.join("; "))
    };
    let auth = |what: &str| {
        FetchError::Auth(format!(
            "registry {host} refused to serve {name} to {source}: {what}{also}"
        ))
    };
    let not_found = |what: &str| {
        FetchError::NotFound(format!(
            "{} was not found in registry {host}: {what}",
            image.reference()
        ))
    };
    let e = match error {
        RawError::Invalid(msg) => return FetchError::Invalid(msg),
        RawError::Oci(e) => e,
    };
    match e {
        OciDistributionError::UnauthorizedError { .. } => auth("HTTP 401 unauthorized"),
        OciDistributionError::AuthenticationFailure(reason) => {
            auth(&format!("authentication failed: {}", reason.trim()))
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let text = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                auth(&text)
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found(&text)
            } else {
                FetchError::Other(format!("registry {host} answered an error: {text}{also}"))
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let message: String = message.trim().chars().take(200).collect();
            match code {
                401 | 403 => auth(&format!("HTTP {code} {message}")),
                404 => not_found(&format!("HTTP 404 {message}")),
                _ => FetchError::Other(format!(
                    "registry {host} answered HTTP {code}: {message}{also}"
                )),
            }
        }
        OciDistributionError::RequestError(e) => {
            FetchError::Unreachable(format!("cannot reach registry {host}: {}", error_chain(&e)))
        }
        other => FetchError::Other(format!("registry {host}: {}", error_chain(&other))),
    }
}

/// An error with its sources, `a: b: c`, without repeats.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs() {
        let cases: [(&str, &[&str], &[&str]); 5] = [
            (
                r#"{"config":{"Entrypoint":["/e"],"Cmd":["c"]}}"#,
                &["/e"],
                &["c"],
            ),
            (
                r#"{"config":{"Entrypoint":null,"Cmd":["c","d"]}}"#,
                &[],
                &["c", "d"],
            ),
            (r#"{"config":{}}"#, &[], &[]),
            (r#"{"architecture":"amd64"}"#, &[], &[]),
            (
                r#"{"config":{"Entrypoint":["/e"],"Env":["A=1"],"Labels":{"x":"y"}},"rootfs":{}}"#,
                &["/e"],
                &[],
            ),
        ];
        for (json, entrypoint, cmd) in cases {
            let c = parse_config(json.as_bytes()).expect(json);
            assert_eq!(c.entrypoint, entrypoint, "{json}");
            assert_eq!(c.cmd, cmd, "{json}");
        }
        assert!(parse_config(b"[").is_err());
    }

    #[test]
    fn bad_ca() {
        assert!(matches!(
            parse_ca_pem(b"nothing"),
            Err(RegistrySetupError::NoCertificate)
        ));
    }
}
