//! The caches of a [`RegistrySource`](super::RegistrySource) (moka) and the single
//! flights in front of them: image configs by `(registry, repository, manifest digest,
//! platform)`, immutable and kept until evicted by size; tag -> digest for a short TTL.
//! Concurrent lookups of one key make one registry round trip.

use std::sync::Arc;

use futures::FutureExt;

use super::errors::FetchError;
use super::{Inner, Wanted};
use crate::inject::ImageConfig;
use crate::registry::flight::SingleFlight;
use crate::registry::platform::Platform;

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(super) struct TagKey {
    pub(super) host: String,
    pub(super) repository: String,
    pub(super) tag: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(super) struct ConfigKey {
    pub(super) host: String,
    pub(super) repository: String,
    pub(super) digest: String,
    pub(super) platform: Platform,
}

/// What one flight gives its waiters: the manifest digest and the config.
pub(super) type Fetched = Result<(String, ImageConfig), FetchError>;

/// Tags -> digests, kept for `tag_ttl`, at most `max_configs` of them.
pub(super) fn tags(
    max_configs: u64,
    tag_ttl: std::time::Duration,
) -> moka::future::Cache<TagKey, String> {
    moka::future::Cache::builder()
        .max_capacity(max_configs)
        .time_to_live(tag_ttl)
        .build()
}

/// Image configs, weighed in bytes: at most `max_configs` KiB of ENTRYPOINT/CMD strings.
pub(super) fn configs(max_configs: u64) -> moka::future::Cache<ConfigKey, ImageConfig> {
    moka::future::Cache::builder()
        .max_capacity(max_configs.saturating_mul(1024))
        .weigher(|k: &ConfigKey, v: &ImageConfig| {
            let strings: usize = v
                .entrypoint
                .iter()
                .chain(&v.cmd)
                .map(|s| s.len() + 24)
                .sum();
            u32::try_from(strings + k.host.len() + k.repository.len() + k.digest.len() + 128)
                .unwrap_or(u32::MAX)
        })
        .build()
}

impl Inner {
    /// The config of the image for the platform: from the caches, or read in a single
    /// flight.
    pub(super) async fn lookup(
        self: &Arc<Self>,
        wanted: &Wanted,
    ) -> Result<ImageConfig, FetchError> {
        let (image, platform) = (&wanted.image, &wanted.platform);
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
                        self.metrics.cache("tag", true);
                        digest
                    }
                    None => {
                        let (_, config, hit) =
                            self.shared(&self.tag_flights, key, wanted, &tag).await?;
                        self.metrics.cache("tag", hit);
                        if hit {
                            // Read by another review's flight: a config cache hit too.
                            self.metrics.cache("config", true);
                        }
                        return Ok(config);
                    }
                }
            }
        };
        let key = config_key(&digest);
        if let Some(config) = self.configs.get(&key).await {
            self.metrics.cache("config", true);
            return Ok(config);
        }
        let (_, config, hit) = self
            .shared(&self.config_flights, key, wanted, &digest)
            .await?;
        self.metrics.cache("config", hit);
        Ok(config)
    }

    /// Fetches `reference` in a single flight for `key`: `(digest, config, hit)`, both
    /// stored in the caches. When another caller's flight was refused or found nothing
    /// (with its pod's credentials), this caller tries once more with its own.
    async fn shared<K>(
        self: &Arc<Self>,
        flights: &SingleFlight<K, Fetched>,
        key: K,
        wanted: &Wanted,
        reference: &str,
    ) -> Result<(String, ImageConfig, bool), FetchError>
    where
        K: std::hash::Hash + Eq + Clone,
    {
        let start = || {
            let (me, wanted, reference) = (Arc::clone(self), wanted.clone(), reference.to_string());
            async move { me.fetch_and_keep(&wanted, &reference).await }.boxed()
        };
        let (result, started) = flights.run(key, start).await;
        match result {
            Ok((digest, config)) => Ok((digest, config, !started)),
            Err(FetchError::Auth(_) | FetchError::NotFound(_)) if !started => {
                let (digest, config) = self.fetch_and_keep(wanted, reference).await?;
                Ok((digest, config, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches and fills both caches.
    async fn fetch_and_keep(&self, wanted: &Wanted, reference: &str) -> Fetched {
        let (image, platform) = (&wanted.image, &wanted.platform);
        let (digest, config) = self.fetch(wanted, reference).await?;
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
}
