//! The OCI distribution protocol of a lookup: which credentials to try, the manifest (or
//! the index and the pod's platform's manifest), and the image config's ENTRYPOINT and
//! CMD, every body bounded and checked against its digest.

use serde::Deserialize;

use super::cache::{ConfigKey, Fetched};
use super::errors::{describe, FetchError, RawError};
use super::{Inner, Wanted};
use crate::inject::ImageConfig;
use crate::registry::acr::{self, ACR_USER};
use crate::registry::bounded::at_most;
use crate::registry::credentials::credentials_for;
use crate::registry::http::{
    self, Credentials, HttpError, RegistryHttp, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES,
};
use crate::registry::platform::{IndexEntry, Platform};
use crate::registry::reference::ImageRef;

/// One way to authenticate, and how to name it in messages.
struct Candidate {
    credentials: Credentials,
    source: String,
}

impl Inner {
    /// Who to be: the pod's matching pull secrets, in order; else the webhook's workload
    /// identity for ACR; else anonymous. `notes` say what was skipped and why.
    async fn candidates(&self, wanted: &Wanted) -> (Vec<Candidate>, Vec<String>) {
        let image = &wanted.image;
        let (creds, mut notes) = credentials_for(
            &*self.secrets,
            &wanted.refs,
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
    pub(super) async fn fetch(&self, wanted: &Wanted, reference: &str) -> Fetched {
        let image = &wanted.image;
        let _turn = self
            .permits
            .acquire()
            .await
            .map_err(|_| FetchError::Other("the webhook is stopping".to_string()))?;
        if let Err(refused) = self.http.rules().check_host(image.host()) {
            return Err(FetchError::Refused(refused.to_string()));
        }
        let (candidates, notes) = self.candidates(wanted).await;
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
                &wanted.platform,
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

/// The configs already cached: a tag whose digest expired costs one manifest request.
pub(super) struct Known<'a> {
    pub(super) configs: &'a moka::future::Cache<ConfigKey, ImageConfig>,
    pub(super) host: &'a str,
    pub(super) repository: &'a str,
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
fn parse_config(data: &[u8]) -> Result<ImageConfig, String> {
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
}
