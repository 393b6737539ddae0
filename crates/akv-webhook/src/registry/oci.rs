//! The registry-backed [`ImageConfigSource`]: reads image configs over the OCI distribution
//! API ([`super::http`]), with the pod's pull secrets, and caches them.
//!
//! Caches (moka): image configs by `(registry, repository, manifest digest, platform)` —
//! immutable, kept until evicted by size; and tag -> digest for a short TTL. Concurrent
//! lookups of the same key make one registry round trip ([`SingleFlight`]), which lives as
//! long as some review still waits for it and is cancelled with the last one: no lookup
//! task outlives its reviews' deadlines. Registry work is bounded across all reviews by a
//! semaphore ([`RegistryOptions::max_concurrent`]) and per lookup by a total deadline
//! ([`RegistryOptions::lookup_timeout`]). The cache is shared by all pods: a pod may get the
//! ENTRYPOINT of an image that another pod's credentials read (the kubelet still enforces
//! pull access).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::debug;

use super::acr::{self, AcrTokenSource, ACR_USER};
use super::bounded::at_most;
use super::credentials::{credentials_for, PullSecretRefs, PullSecretSource};
use super::flight::SingleFlight;
use super::hosts::HostRules;
use super::http::{
    self, Credentials, HttpError, RegistryHttp, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES,
};
use super::platform::{IndexEntry, Platform};
use super::reference::ImageRef;
use super::{ImageConfigSource, LookupError};
use crate::inject::ImageConfig;
use crate::metrics::Metrics;

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
    /// How many KiB of image configs (their ENTRYPOINT and CMD) are kept.
    pub max_configs: u64,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest one lookup may take in all (every request and body together), even when
    /// the review's own deadline is longer.
    pub lookup_timeout: Duration,
    /// Registry lookups in flight at once across all reviews; more wait for a turn
    /// (within their review's deadline).
    pub max_concurrent: usize,
    /// Which hosts and addresses may be contacted, and redirected to.
    pub hosts: HostRules,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            default_platform: Platform::default(),
            ca_pem: None,
            tag_ttl: Duration::from_secs(60),
            max_configs: 4096,
            connect_timeout: Duration::from_secs(3),
            lookup_timeout: Duration::from_secs(10),
            max_concurrent: 32,
            hosts: HostRules::default(),
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
                "Image lookups that failed, by reason (auth, not_found, unreachable, refused, too_large, timeout, invalid, other)",
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

/// Why a lookup failed; the text is the user-facing message (ours only).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum FetchError {
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
    fn reason(&self) -> &'static str {
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

/// One way to authenticate, and how to name it in messages.
struct Candidate {
    credentials: Credentials,
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

type Fetched = Result<(String, ImageConfig), FetchError>;

/// Reads image configs from registries. Cheap to clone.
#[derive(Clone)]
pub struct RegistrySource {
    inner: Arc<Inner>,
}

struct Inner {
    options: RegistryOptions,
    secrets: Arc<dyn PullSecretSource>,
    acr: Option<Arc<dyn AcrTokenSource>>,
    http: RegistryHttp,
    permits: Semaphore,
    tags: moka::future::Cache<TagKey, String>,
    configs: moka::future::Cache<ConfigKey, ImageConfig>,
    tag_flights: SingleFlight<TagKey, Fetched>,
    config_flights: SingleFlight<ConfigKey, Fetched>,
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

/// An HTTP client for Entra ID and ACR token exchanges, trusting the system roots and
/// `roots`, with the same host rules as registry lookups (`options.hosts`).
pub fn http_client(
    roots: &[Vec<u8>],
    options: &RegistryOptions,
) -> Result<reqwest13::Client, RegistrySetupError> {
    http::guarded_client(
        &Arc::new(options.hosts.clone()),
        roots,
        options.connect_timeout,
        USER_AGENT,
    )
    .map_err(RegistrySetupError::Client)
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
        let roots = match &options.ca_pem {
            Some(pem) => parse_ca_pem(pem)?,
            None => Vec::new(),
        };
        let rules = Arc::new(options.hosts.clone());
        let client = http::guarded_client(&rules, &roots, options.connect_timeout, USER_AGENT)
            .map_err(RegistrySetupError::Client)?;
        let inner = Inner {
            secrets,
            acr,
            http: RegistryHttp::new(client, rules),
            permits: Semaphore::new(options.max_concurrent.max(1)),
            tags: moka::future::Cache::builder()
                .max_capacity(options.max_configs)
                .time_to_live(options.tag_ttl)
                .build(),
            // Weighed in bytes: at most `max_configs` KiB of ENTRYPOINT/CMD strings.
            configs: moka::future::Cache::builder()
                .max_capacity(options.max_configs.saturating_mul(1024))
                .weigher(|k: &ConfigKey, v: &ImageConfig| {
                    let strings: usize = v
                        .entrypoint
                        .iter()
                        .chain(&v.cmd)
                        .map(|s| s.len() + 24)
                        .sum();
                    u32::try_from(
                        strings + k.host.len() + k.repository.len() + k.digest.len() + 128,
                    )
                    .unwrap_or(u32::MAX)
                })
                .build(),
            tag_flights: SingleFlight::default(),
            config_flights: SingleFlight::default(),
            metrics: RegistryMetrics::new(metrics),
            options,
        };
        Ok(RegistrySource {
            inner: Arc::new(inner),
        })
    }

    /// How many lookups are in flight (a test hook: none may outlive its reviews).
    pub fn in_flight(&self) -> usize {
        self.inner.tag_flights.len() + self.inner.config_flights.len()
    }
}

/// What a lookup needs of the pod, without the pod (which may be large).
#[derive(Clone)]
struct Who {
    refs: Arc<PullSecretRefs>,
}

#[async_trait]
impl ImageConfigSource for RegistrySource {
    async fn image_config(
        &self,
        image: &str,
        pod: &Pod,
        namespace: &str,
    ) -> Result<ImageConfig, LookupError> {
        let started = Instant::now();
        let inner = &self.inner;
        let platform = Platform::for_pod(pod, &inner.options.default_platform);
        let limit = inner.options.lookup_timeout;
        let result = match (ImageRef::parse(image), PullSecretRefs::of(pod, namespace)) {
            (Err(e), _) | (_, Err(e)) => Err(FetchError::Invalid(e)),
            (Ok(image_ref), Ok(refs)) => {
                let who = Who {
                    refs: Arc::new(refs),
                };
                match tokio::time::timeout(limit, inner.lookup(&image_ref, &platform, &who)).await {
                    Ok(result) => result,
                    Err(_) => Err(FetchError::Timeout(format!(
                        "timeout: registry {} did not answer within {}",
                        image_ref.host(),
                        akv_core::settings::format_duration(limit)
                    ))),
                }
            }
        };
        let metrics = &inner.metrics;
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
    fn count(&self, cache: &'static str, hit: bool) {
        let family = if hit {
            &self.metrics.hits
        } else {
            &self.metrics.misses
        };
        family.get_or_create(&CacheLabels { cache }).inc();
    }

    async fn lookup(
        self: &Arc<Self>,
        image: &ImageRef,
        platform: &Platform,
        who: &Who,
    ) -> Result<ImageConfig, FetchError> {
        let host = image.host().to_string();
        let repository = image.repository().to_string();
        let config_key = |digest: &str| ConfigKey {
            host: host.clone(),
            repository: repository.clone(),
            digest: digest.to_string(),
            platform: platform.clone(),
        };
        let digest = match (image.digest(), image.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, tag) => {
                let tag = tag.unwrap_or("latest").to_string();
                let key = TagKey {
                    host: host.clone(),
                    repository: repository.clone(),
                    tag: tag.clone(),
                };
                match self.tags.get(&key).await {
                    Some(digest) => {
                        self.count("tag", true);
                        digest
                    }
                    None => {
                        let (_, config, hit) = self
                            .shared(&self.tag_flights, key, image, &tag, platform, who)
                            .await?;
                        self.count("tag", hit);
                        if hit {
                            // Read by another review's flight: a config cache hit too.
                            self.count("config", true);
                        }
                        return Ok(config);
                    }
                }
            }
        };
        let key = config_key(&digest);
        if let Some(config) = self.configs.get(&key).await {
            self.count("config", true);
            return Ok(config);
        }
        let (_, config, hit) = self
            .shared(&self.config_flights, key, image, &digest, platform, who)
            .await?;
        self.count("config", hit);
        Ok(config)
    }

    /// Fetches `reference` in a single flight for `key`: `(digest, config, hit)`, both
    /// stored in the caches. When another caller's flight was refused or found nothing
    /// (with its pod's credentials), this caller tries once more with its own.
    async fn shared<K>(
        self: &Arc<Self>,
        flights: &SingleFlight<K, Fetched>,
        key: K,
        image: &ImageRef,
        reference: &str,
        platform: &Platform,
        who: &Who,
    ) -> Result<(String, ImageConfig, bool), FetchError>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        let start = || {
            let (me, image, reference, platform, who) = (
                Arc::clone(self),
                image.clone(),
                reference.to_string(),
                platform.clone(),
                who.clone(),
            );
            async move { me.fetch_and_keep(&image, &reference, &platform, &who).await }.boxed()
        };
        let (result, started) = flights.run(key, start).await;
        match result {
            Ok((digest, config)) => Ok((digest, config, !started)),
            Err(FetchError::Auth(_) | FetchError::NotFound(_)) if !started => {
                let (digest, config) = self.fetch_and_keep(image, reference, platform, who).await?;
                Ok((digest, config, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches and fills both caches.
    async fn fetch_and_keep(
        &self,
        image: &ImageRef,
        reference: &str,
        platform: &Platform,
        who: &Who,
    ) -> Fetched {
        let (digest, config) = self.fetch(image, reference, platform, who).await?;
        let host = image.host().to_string();
        let repository = image.repository().to_string();
        self.configs
            .insert(
                ConfigKey {
                    host: host.clone(),
                    repository: repository.clone(),
                    digest: digest.clone(),
                    platform: platform.clone(),
                },
                config.clone(),
            )
            .await;
        if image.digest().is_none() {
            let tag = image.tag().unwrap_or("latest").to_string();
            self.tags
                .insert(
                    TagKey {
                        host,
                        repository,
                        tag,
                    },
                    digest.clone(),
                )
                .await;
        }
        Ok((digest, config))
    }

    /// Who to be: the pod's matching pull secrets, in order; else the webhook's workload
    /// identity for ACR; else anonymous. `notes` say what was skipped and why.
    async fn candidates(&self, image: &ImageRef, who: &Who) -> (Vec<Candidate>, Vec<String>) {
        let (creds, mut notes) = credentials_for(
            &*self.secrets,
            &who.refs,
            image.registry(),
            image.repository(),
        )
        .await;
        if !creds.is_empty() {
            let list = creds
                .into_iter()
                .map(|c| Candidate {
                    credentials: Credentials::Basic {
                        username: c.username,
                        password: c.password,
                    },
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
                            credentials: Credentials::Basic {
                                username: ACR_USER.to_string(),
                                password: token,
                            },
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
            credentials: Credentials::Anonymous,
            source: format!(
                "anonymous access (no pull secret of the pod or its service account matches {})",
                image.registry()
            ),
        };
        (vec![anonymous], notes)
    }

    /// Reads `reference` (a tag or a digest of `image`'s repository) and the config of its
    /// manifest for `platform`, trying each candidate credential until one is accepted.
    /// Waits for a turn among all reviews' lookups first.
    async fn fetch(
        &self,
        image: &ImageRef,
        reference: &str,
        platform: &Platform,
        who: &Who,
    ) -> Fetched {
        let _turn = self
            .permits
            .acquire()
            .await
            .map_err(|_| FetchError::Other("the webhook is stopping".to_string()))?;
        if let Err(refused) = self.http.rules().check_host(image.host()) {
            return Err(FetchError::Refused(refused.to_string()));
        }
        let (candidates, notes) = self.candidates(image, who).await;
        let mut last = FetchError::Other("no credentials to try".to_string());
        let count = candidates.len();
        for (i, candidate) in candidates.into_iter().enumerate() {
            let known = Known {
                configs: &self.configs,
                host: image.host(),
                repository: image.repository(),
            };
            match fetch_config(
                &self.http,
                &candidate.credentials,
                image,
                reference,
                platform,
                known,
            )
            .await
            {
                Ok(found) => return Ok(found),
                Err(e) => {
                    let e = describe(e, image, reference, &candidate.source, &notes);
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
    Http(HttpError),
    Platform(String),
}

impl From<HttpError> for RawError {
    fn from(e: HttpError) -> Self {
        RawError::Http(e)
    }
}

/// The configs already cached: a tag whose digest expired costs one manifest request.
struct Known<'a> {
    configs: &'a moka::future::Cache<ConfigKey, ImageConfig>,
    host: &'a str,
    repository: &'a str,
}

/// Most entries read of an image index (real ones have a few dozen at most).
const MAX_INDEX_ENTRIES: usize = 256;
/// Most items of an ENTRYPOINT or CMD, and their total size, that are kept.
const MAX_ARGV_ITEMS: usize = 1024;
const MAX_ARGV_BYTES: usize = 64 * 1024;

/// A descriptor, as far as it is read.
#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: i64,
}

/// An image manifest or an index, whichever the registry sent; nothing else is kept.
#[derive(Deserialize)]
struct AnyManifest {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default, deserialize_with = "at_most::<_, _, MAX_INDEX_ENTRIES>")]
    manifests: Option<Vec<IndexEntry>>,
}

fn parse_manifest(body: &[u8]) -> Result<AnyManifest, HttpError> {
    serde_json::from_slice(body).map_err(|e| {
        HttpError::Invalid(format!(
            "the manifest is not a valid OCI or Docker manifest ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// A descriptor's size as a read limit; `too large` beyond `cap`.
fn declared_size(size: i64, what: &'static str, cap: u64) -> Result<u64, HttpError> {
    let size = u64::try_from(size)
        .map_err(|_| HttpError::Invalid(format!("the {what}'s descriptor has a negative size")))?;
    if size > cap {
        return Err(HttpError::TooLarge {
            what,
            limit: cap,
            declared: false,
        });
    }
    Ok(size)
}

/// A platform name from an index, if it is short and plain (it reaches messages).
fn plain(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    ok.then_some(s)
}

async fn fetch_config(
    http: &RegistryHttp,
    credentials: &Credentials,
    image: &ImageRef,
    reference: &str,
    platform: &Platform,
    known: Known<'_>,
) -> Result<(String, ImageConfig), RawError> {
    let (host, repository) = (image.host(), image.repository());
    let by_digest = reference.contains(':');
    if by_digest {
        http::valid_digest(reference)?;
    }
    let body = http
        .manifest(host, repository, reference, None, credentials)
        .await?;
    let digest = if by_digest {
        http::verify_digest(reference, &body, "manifest")?;
        reference.to_string()
    } else {
        http::sha256_digest(&body)
    };
    let key = ConfigKey {
        host: known.host.to_string(),
        repository: known.repository.to_string(),
        digest: digest.clone(),
        platform: platform.clone(),
    };
    if let Some(config) = known.configs.get(&key).await {
        return Ok((digest, config));
    }
    let manifest = parse_manifest(&body)?;
    drop(body);
    let config = match (manifest.manifests, manifest.config) {
        (Some(entries), _) => {
            let Some(entry) = platform.pick(&entries) else {
                let have: Vec<String> = entries
                    .iter()
                    .filter_map(|e| e.platform.as_ref())
                    .filter_map(|p| {
                        let (os, arch) = (plain(&p.os)?, plain(&p.architecture)?);
                        Some(match p.variant.as_deref().and_then(plain) {
                            Some(v) => format!("{os}/{arch}/{v}"),
                            None => format!("{os}/{arch}"),
                        })
                    })
                    .take(16)
                    .collect();
                return Err(RawError::Platform(format!(
                    "the image index has no manifest for the pod's platform {platform} (it has: {}); set the pod's kubernetes.io/arch node selector or the webhook's --default-platform",
                    have.join(", ")
                )));
            };
            http::valid_digest(&entry.digest)?;
            let size = declared_size(entry.size, "manifest", MAX_MANIFEST_BYTES)?;
            let body = http
                .manifest(host, repository, &entry.digest, Some(size), credentials)
                .await?;
            http::verify_digest(&entry.digest, &body, "manifest")?;
            match parse_manifest(&body)? {
                AnyManifest {
                    config: Some(config),
                    manifests: None,
                } => config,
                _ => {
                    return Err(RawError::Http(HttpError::Invalid(format!(
                        "the {platform} entry of the image index is not an image manifest"
                    ))))
                }
            }
        }
        (None, Some(config)) => config,
        (None, None) => {
            return Err(RawError::Http(HttpError::Invalid(
                "the manifest has neither a config nor manifests".to_string(),
            )))
        }
    };
    http::valid_digest(&config.digest)?;
    let size = declared_size(config.size, "image config", MAX_CONFIG_BYTES)?;
    let data = http
        .blob(host, repository, &config.digest, size, credentials)
        .await?;
    http::verify_digest(&config.digest, &data, "image config")?;
    let config = parse_config(&data).map_err(|e| RawError::Http(HttpError::Invalid(e)))?;
    Ok((digest, config))
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize)]
struct RunConfig {
    #[serde(
        rename = "Entrypoint",
        default,
        deserialize_with = "at_most::<_, _, MAX_ARGV_ITEMS>"
    )]
    entrypoint: Option<Vec<String>>,
    #[serde(
        rename = "Cmd",
        default,
        deserialize_with = "at_most::<_, _, MAX_ARGV_ITEMS>"
    )]
    cmd: Option<Vec<String>>,
}

/// ENTRYPOINT and CMD of an image config (OCI or Docker; absent or null means none). The
/// error names the position only: the config is the registry's text.
pub fn parse_config(data: &[u8]) -> Result<ImageConfig, String> {
    let file: ConfigFile = serde_json::from_slice(data).map_err(|e| {
        format!(
            "the image config is not valid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let run = file.config.unwrap_or(RunConfig {
        entrypoint: None,
        cmd: None,
    });
    let bytes: usize = [&run.entrypoint, &run.cmd]
        .into_iter()
        .flatten()
        .flatten()
        .map(String::len)
        .sum();
    if bytes > MAX_ARGV_BYTES {
        return Err(format!(
            "too large: the image's ENTRYPOINT and CMD hold {bytes} bytes, more than the {MAX_ARGV_BYTES} a pod spec can carry here"
        ));
    }
    Ok(ImageConfig {
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
    })
}

/// A user-facing message for a failed fetch: which registry, our classification of what
/// happened, which credentials were used, and what was skipped. Nothing the registry
/// wrote is in it beyond a sanitized error code.
fn describe(
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
