//! The registry-backed [`ImageConfigSource`]: reads image configs over the OCI distribution
//! API ([`super::http`]), with the pod's pull secrets, and caches them.
//!
//! - `cache`: the moka caches and the single flights in front of them;
//! - `fetch`: the OCI protocol of one lookup, credential by credential;
//! - `errors`: what a lookup or the source's setup fails with, and the user's message.
//!
//! Concurrent lookups of the same key make one registry round trip ([`SingleFlight`]),
//! which lives as long as some review still waits for it and is cancelled with the last
//! one: no lookup task outlives its reviews' deadlines. Registry work is bounded across all
//! reviews by a semaphore ([`RegistryOptions::max_concurrent`]) and per lookup by a total
//! deadline ([`RegistryOptions::lookup_timeout`]). The cache is shared by all pods: a pod
//! may get the ENTRYPOINT of an image that another pod's credentials read (the kubelet
//! still enforces pull access).

mod cache;
mod errors;
mod fetch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::sync::Semaphore;
use tracing::debug;

use super::acr::AcrTokenSource;
use super::credentials::{PullSecretRefs, PullSecretSource};
use super::flight::SingleFlight;
use super::hosts::HostRules;
use super::http::{self, RegistryHttp};
use super::platform::Platform;
use super::reference::ImageRef;
use super::{ImageConfigSource, LookupError};
use crate::inject::ImageConfig;
use crate::metrics::{Metrics, RegistryMetrics};
use errors::FetchError;

pub use errors::RegistrySetupError;

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
    tags: moka::future::Cache<cache::TagKey, String>,
    configs: moka::future::Cache<cache::ConfigKey, ImageConfig>,
    tag_flights: SingleFlight<cache::TagKey, cache::Fetched>,
    config_flights: SingleFlight<cache::ConfigKey, cache::Fetched>,
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
            tags: cache::tags(options.max_configs, options.tag_ttl),
            configs: cache::configs(options.max_configs),
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

/// One lookup: the image, the platform the pod runs, and whose pull secrets to try;
/// what it needs of the pod, without the pod (which may be large).
#[derive(Clone)]
struct Wanted {
    image: ImageRef,
    platform: Platform,
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
        let limit = inner.options.lookup_timeout;
        let result = match (ImageRef::parse(image), PullSecretRefs::of(pod, namespace)) {
            (Err(e), _) | (_, Err(e)) => Err(FetchError::Invalid(e)),
            (Ok(image), Ok(refs)) => {
                let wanted = Wanted {
                    image,
                    platform: Platform::for_pod(pod, &inner.options.default_platform),
                    refs: Arc::new(refs),
                };
                match tokio::time::timeout(limit, inner.lookup(&wanted)).await {
                    Ok(result) => result,
                    Err(_) => Err(FetchError::Timeout(format!(
                        "timeout: registry {} did not answer within {}",
                        wanted.image.host(),
                        akv_core::settings::format_duration(limit)
                    ))),
                }
            }
        };
        inner.metrics.lookup(
            started.elapsed(),
            result.as_ref().err().map(FetchError::reason),
        );
        if let Err(e) = &result {
            debug!(image, error = %e, "image lookup failed");
        }
        result.map_err(|e| LookupError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca() {
        assert!(matches!(
            parse_ca_pem(b"nothing"),
            Err(RegistrySetupError::NoCertificate)
        ));
    }
}
