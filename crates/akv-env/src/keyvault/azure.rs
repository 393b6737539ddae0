//! The Azure source: the pod's identities (one credential per client id, one token per
//! audience: [`super::credentials`], [`super::tokens::SharedTokens`]) and one
//! Key Vault client per vault ([`VaultClient`]; why not the SDK's three clients is written
//! there) on its own HTTP/2 connection ([`VaultHttp`]), the token exchange over the shared
//! pooling client ([`CappedHttp`]), both through one [`Dialer`] (one TLS set-up, the
//! environment's proxy) and with capped bodies. The objects are decoded with
//! the azure_security_keyvault_* models.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_core::{ObjectKind, Part, VaultUrl};
use azure_core::http::{HttpClient, Url};
use azure_security_keyvault_certificates::models::Certificate;
use azure_security_keyvault_keys::models::Key;
use azure_security_keyvault_secrets::models::Secret;

use crate::config::Identity;
use crate::error::Cause;
use crate::identities::Identities;
use crate::parts::PublicJwk;
use crate::plan::{ObjectId, Plan};

use super::classify::classify;
use super::credentials::CredentialSet;
use super::dial::Dialer;
use super::http::{CappedHttp, HttpSetup, MAX_BODY};
use super::proxy;
use super::retry::with_retries;
use super::tls::tls_config;
use super::vault::VaultClient;
use super::vault_http::VaultHttp;
use super::{Fetched, SecretSource};

/// Reads objects with the pod's workload identity.
pub struct AzureSource {
    vaults: BTreeMap<VaultUrl, VaultClient>,
    deadline: Instant,
    timeout: Duration,
    /// The version of every object read, from its id (restart on change watches them).
    seen: super::current::Seen,
}

impl AzureSource {
    /// Checks the token file, builds one credential (one token per audience for the
    /// whole start, see [`SharedTokens`]) and one client per vault. No network traffic yet.
    pub fn new(identity: &Identity, plan: &Plan, timeout: Duration) -> Result<Self, crate::Error> {
        Self::with_http(identity, plan, timeout, &HttpSetup::default())
    }

    /// [`AzureSource::new`] with a non-default HTTP client set-up (tests: a real vault
    /// name resolved to loopback). The akv-env binary never calls this.
    pub fn with_http(
        identity: &Identity,
        plan: &Plan,
        timeout: Duration,
        setup: &HttpSetup,
    ) -> Result<Self, crate::Error> {
        Self::with_identities(&Identities::workload(identity), plan, timeout, setup)
    }

    /// Reads objects with the pod's identities (any kind, per-vault client ids).
    pub fn for_identities(
        identities: &Identities,
        plan: &Plan,
        timeout: Duration,
    ) -> Result<Self, crate::Error> {
        Self::with_identities(identities, plan, timeout, &HttpSetup::default())
    }

    /// [`AzureSource::for_identities`] with a non-default HTTP client set-up.
    pub fn with_identities(
        identities: &Identities,
        plan: &Plan,
        timeout: Duration,
        http: &HttpSetup,
    ) -> Result<Self, crate::Error> {
        let deadline = Instant::now() + timeout;
        let mut clients = Clients::new(identities, deadline, timeout, http)?;
        let vaults = plan
            .objects
            .keys()
            .map(|id| id.vault.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|url| {
                let parsed = Url::parse(&url.url()).map_err(|e| {
                    crate::Error::Identity(format!("cannot use the vault URL {url}: {e}"))
                })?;
                let connection = clients.connection(&parsed);
                let tokens = clients.credentials.tokens_for(&url)?;
                let client = VaultClient::new(url.clone(), connection, tokens, deadline, timeout);
                Ok((url, client))
            })
            .collect::<Result<_, crate::Error>>()?;
        Ok(AzureSource {
            vaults,
            deadline,
            timeout,
            seen: Default::default(),
        })
    }

    /// The object versions read so far (ids and versions only, never a value).
    pub fn versions_seen(&self) -> Vec<super::current::Watched> {
        self.seen.list()
    }

    /// One object's JSON answer, read and decoded with the SDK's model, retried inside the
    /// budget.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        vault: &VaultClient,
        collection: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<T, Cause> {
        with_retries(self.deadline, self.timeout, || async {
            let body = vault.get(collection, name, version).await?;
            azure_core::json::from_json::<_, T>(body).map_err(|e| classify(&e))
        })
        .await
    }

    async fn secret(
        &self,
        vault: &VaultClient,
        name: &str,
        version: Option<&str>,
    ) -> Result<(Option<String>, String), Cause> {
        let secret: Secret = self.read(vault, "secrets", name, version).await?;
        Ok((secret.content_type, secret.value.unwrap_or_default()))
    }
}

/// What every Key Vault call of the pod's identities shares: one credential per distinct
/// client id ([`CredentialSet`]: each keeps its token until that nears expiry, and the
/// workload identity one reads the token file again when Kubernetes has rotated it), the
/// HTTP client of the token exchange, and the dialer (the one TLS set-up, the
/// environment's proxies).
pub struct Clients {
    pub credentials: CredentialSet,
    pub http: Arc<dyn HttpClient>,
    pub dialer: Arc<Dialer>,
}

impl Clients {
    /// Reads the proof (token file, certificate) and sets up TLS and HTTP. No network
    /// traffic yet.
    pub fn new(
        identities: &Identities,
        deadline: Instant,
        timeout: Duration,
        setup: &HttpSetup,
    ) -> Result<Self, crate::Error> {
        // One TLS set-up and the container's HTTPS_PROXY/NO_PROXY, in one dialer; the
        // token exchange (and any vault that does not speak HTTP/2) on the pooling
        // client; each other vault on its own HTTP/2 connection; every body capped.
        let tls = tls_config(setup).map_err(crate::Error::Identity)?;
        let dialer = Arc::new(Dialer::new(setup, tls, proxy::from_env()));
        let http: Arc<dyn HttpClient> = Arc::new(CappedHttp::new(dialer.clone(), MAX_BODY));
        // One credential per distinct client id (see `credentials`), checked and read
        // (token file, certificate) before any network traffic.
        let credentials = CredentialSet::new(identities, http.clone(), deadline, timeout)?;
        Ok(Clients {
            credentials,
            http,
            dialer,
        })
    }

    /// The connection to `vault` (not opened yet).
    pub fn connection(&self, vault: &Url) -> VaultHttp {
        VaultHttp::new(vault, self.dialer.clone(), self.http.clone(), MAX_BODY)
    }
}

impl SecretSource for AzureSource {
    async fn fetch(&self, id: &ObjectId, parts: &BTreeSet<Part>) -> Result<Fetched, Cause> {
        let vault = self
            .vaults
            .get(&id.vault)
            .ok_or_else(|| Cause::Content(format!("no client for vault {}", id.vault)))?;
        let (name, version) = (id.name.as_str(), id.version.as_deref());
        match id.kind {
            ObjectKind::Secret => {
                let secret: Secret = self.read(vault, "secrets", name, version).await?;
                self.seen.note(id, secret.id.as_deref());
                Ok(Fetched::Secret {
                    value: secret.value.unwrap_or_default(),
                })
            }
            ObjectKind::Certificate => {
                let cert: Certificate = self.read(vault, "certificates", name, version).await?;
                self.seen.note(id, cert.id.as_deref());
                let secret = if parts.iter().any(Part::needs_certificate_secret) {
                    // The backing secret, read from the same vault (never from the host in `sid`).
                    let (sname, sversion) = backing_secret(cert.sid.as_deref(), name)?;
                    Some(self.secret(vault, &sname, sversion.as_deref()).await?)
                } else {
                    None
                };
                Ok(Fetched::Certificate {
                    cer: cert.cer,
                    secret,
                })
            }
            ObjectKind::Key => {
                let key: Key = self.read(vault, "keys", name, version).await?;
                self.seen
                    .note(id, key.key.as_ref().and_then(|k| k.kid.as_deref()));
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
}
