//! The Azure source: workload identity through azure_identity's
//! `ClientAssertionCredential` (one token per audience, shared: [`SharedTokens`]) and one
//! Key Vault client per vault ([`VaultClient`]; why not the SDK's three clients is written
//! there) on its own HTTP/2 connection ([`VaultHttp`]), the token exchange over the shared
//! reqwest client, both with one TLS set-up and capped bodies. The objects are decoded with
//! the azure_security_keyvault_* models.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_core::error_chain;
use akv_core::{ObjectKind, Part, VaultUrl};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, HttpClient, RetryOptions, Transport, Url};
use azure_identity::{ClientAssertionCredential, ClientAssertionCredentialOptions};
use azure_security_keyvault_certificates::models::Certificate;
use azure_security_keyvault_keys::models::Key;
use azure_security_keyvault_secrets::models::Secret;

use crate::config::Identity;
use crate::error::{Cause, ConfigError};
use crate::parts::PublicJwk;
use crate::plan::{ObjectId, Plan};

use super::classify::{classify, one_line};
use super::http::{tls_config, CappedHttp, HttpSetup, MAX_BODY};
use super::retry::with_retries;
use super::token_file;
use super::tokens::SharedTokens;
use super::vault::VaultClient;
use super::vault_http::VaultHttp;
use super::{Fetched, SecretSource};

/// Reads objects with the pod's workload identity.
pub struct AzureSource {
    vaults: BTreeMap<VaultUrl, VaultClient>,
    deadline: Instant,
    timeout: Duration,
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
        // One TLS set-up; the token exchange (and any vault that does not speak HTTP/2) on
        // reqwest; each vault on its own HTTP/2 connection; every body capped.
        let setup = http;
        let tls = tls_config(setup).map_err(crate::Error::Identity)?;
        let http: Arc<dyn HttpClient> =
            Arc::new(CappedHttp::new(setup, &tls, MAX_BODY).map_err(crate::Error::Identity)?);
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = identity.authority_host.clone();
        // Workload identity as WorkloadIdentityCredential does it (a client assertion from
        // the token file), with akv-env's bounded read of that file.
        let credential: Arc<dyn TokenCredential> = ClientAssertionCredential::new(
            identity.tenant_id.clone(),
            identity.client_id.clone(),
            token_file::TokenFile::new(identity.token_file.clone(), &token, timeout),
            Some(ClientAssertionCredentialOptions {
                client_options: ClientOptions {
                    retry: RetryOptions::none(),
                    transport: Some(Transport::new(http.clone())),
                    cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
                    ..Default::default()
                },
            }),
        )
        .map_err(|e| crate::Error::Identity(one_line(&error_chain(&e))))?;
        let tokens = Arc::new(SharedTokens::new(credential, deadline, timeout));
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
                let connection =
                    VaultHttp::new(&parsed, setup, tls.clone(), http.clone(), MAX_BODY);
                let client =
                    VaultClient::new(url.clone(), connection, tokens.clone(), deadline, timeout);
                Ok((url, client))
            })
            .collect::<Result<_, crate::Error>>()?;
        Ok(AzureSource {
            vaults,
            deadline,
            timeout,
        })
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

impl SecretSource for AzureSource {
    async fn fetch(&self, id: &ObjectId, parts: &BTreeSet<Part>) -> Result<Fetched, Cause> {
        let vault = self
            .vaults
            .get(&id.vault)
            .ok_or_else(|| Cause::Content(format!("no client for vault {}", id.vault)))?;
        let (name, version) = (id.name.as_str(), id.version.as_deref());
        match id.kind {
            ObjectKind::Secret => {
                let (_, value) = self.secret(vault, name, version).await?;
                Ok(Fetched::Secret { value })
            }
            ObjectKind::Certificate => {
                let cert: Certificate = self.read(vault, "certificates", name, version).await?;
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
