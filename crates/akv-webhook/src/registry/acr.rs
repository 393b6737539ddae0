//! Azure Container Registry with the webhook's own workload identity: an Entra ID token
//! for `https://containerregistry.azure.net/.default` (client assertion = the federated
//! service-account token), exchanged for an ACR refresh token at
//! `POST https://<registry>/oauth2/exchange`. The refresh token is then the password of the
//! user `00000000-0000-0000-0000-000000000000`, as `az acr login` does.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

/// The user name that goes with an ACR refresh token.
pub const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";
const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";
/// ACR refresh tokens live about three hours; use one for at most this long.
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(45 * 60);
/// Largest token answer read from Entra ID or ACR.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Whether a registry host is an Azure Container Registry.
pub fn is_acr(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    [".azurecr.io", ".azurecr.cn", ".azurecr.us"]
        .iter()
        .any(|s| host.ends_with(s) && host.len() > s.len())
}

/// Gives an ACR refresh token for a registry host.
#[async_trait]
pub trait AcrTokenSource: Send + Sync {
    async fn refresh_token(&self, registry: &str) -> Result<String, String>;
}

/// The webhook's workload identity, from the standard `AZURE_*` variables (akv-core reads
/// them for both binaries).
pub use akv_core::WorkloadIdentity;

/// Exchanges the webhook's workload identity for ACR refresh tokens, cached per registry.
pub struct WorkloadIdentityAcr {
    identity: WorkloadIdentity,
    http: reqwest13::Client,
    tokens: moka::future::Cache<String, String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct ExchangeResponse {
    refresh_token: String,
}

impl WorkloadIdentityAcr {
    /// `http` must trust the registries' and the authority's certificates.
    pub fn new(identity: WorkloadIdentity, http: reqwest13::Client) -> Self {
        WorkloadIdentityAcr {
            identity,
            http,
            tokens: moka::future::Cache::builder()
                .max_capacity(256)
                .time_to_live(REFRESH_TOKEN_TTL)
                .build(),
        }
    }

    async fn entra_token(&self) -> Result<String, String> {
        let id = &self.identity;
        let assertion = tokio::fs::read_to_string(&id.token_file)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the webhook's federated token file {}: {e}",
                    id.token_file.display()
                )
            })?;
        let url = id.token_url();
        let form = [
            ("client_id", id.client_id.as_str()),
            ("scope", ACR_SCOPE),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.trim()),
        ];
        let body: TokenResponse = self
            .post_form(&url, &form, "Entra ID token request", |status| {
                format!(
                    "Entra ID refused a token for the webhook's identity (client id {}): HTTP {status}",
                    id.client_id
                )
            })
            .await?;
        Ok(body.access_token)
    }

    /// POSTs a form and reads the JSON answer; `what` names the call in errors, `refused`
    /// words a non-2xx answer.
    async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        what: &str,
        refused: impl FnOnce(reqwest13::StatusCode) -> String,
    ) -> Result<T, String> {
        let mut response = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| format!("{what} to {url} failed: {}", super::http::classify(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(refused(status));
        }
        // Token answers are small; read at most MAX_ANSWER_BYTES of one.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            format!(
                "{what}: reading the answer from {url} failed: {}",
                super::http::classify(&e)
            )
        })? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "{what}: the answer from {url} is larger than {MAX_ANSWER_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| {
            format!(
                "{what}: the answer from {url} is not the expected JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }

    async fn exchange(&self, registry: &str) -> Result<String, String> {
        let access_token = self.entra_token().await?;
        let url = format!("https://{registry}/oauth2/exchange");
        let form = [
            ("grant_type", "access_token"),
            ("service", registry),
            ("tenant", self.identity.tenant_id.as_str()),
            ("access_token", access_token.as_str()),
        ];
        let body: ExchangeResponse = self
            .post_form(&url, &form, "ACR token exchange", |status| {
                format!(
                    "{registry} refused to exchange the webhook's Entra ID token (client id {}): HTTP {status}; grant the identity the AcrPull role on the registry",
                    self.identity.client_id
                )
            })
            .await?;
        Ok(body.refresh_token)
    }
}

#[async_trait]
impl AcrTokenSource for WorkloadIdentityAcr {
    async fn refresh_token(&self, registry: &str) -> Result<String, String> {
        // No single flight (moka's panics when its waiters see many cancelled inits, which
        // review deadlines can cause): concurrent first lookups may exchange twice.
        if let Some(token) = self.tokens.get(registry).await {
            return Ok(token);
        }
        let token = self.exchange(registry).await?;
        self.tokens
            .insert(registry.to_string(), token.clone())
            .await;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_hosts() {
        assert!(is_acr("myacr.azurecr.io"));
        assert!(is_acr("MyAcr.azurecr.cn"));
        assert!(!is_acr("azurecr.io"));
        assert!(!is_acr("myacr.azurecr.io.evil.example"));
        assert!(!is_acr("docker.io"));
    }
}
