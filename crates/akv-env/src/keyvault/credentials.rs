//! One token credential per distinct client id of the pod's [`Identities`]: workload
//! identity and a service principal's certificate through azure_identity's
//! `ClientAssertionCredential` (the token file, or [`CertificateAssertion`]), a
//! service principal's secret through `ClientSecretCredential`, a managed identity
//! through [`ImdsCredential`]. Each comes wrapped in [`SharedTokens`] (one token per
//! audience), and vaults that share a client id share it; vaults with different client
//! ids exchange their tokens concurrently, each as its vault's first request needs it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_core::{error_chain, AuthKind, VaultUrl};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, HttpClient, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions,
};

use crate::error::ConfigError;
use crate::identities::{Identities, Proof};

use super::certificate::{Certificate, CertificateAssertion};
use super::classify::one_line;
use super::imds::ImdsCredential;
use super::token_file::{self, TokenFile};
use super::tokens::SharedTokens;

/// What every credential of one start shares: the proof read once (token file,
/// certificate), the HTTP client, the budget.
pub struct CredentialSet {
    ids: Identities,
    http: Arc<dyn HttpClient>,
    token: Option<String>,
    certificate: Option<Arc<Certificate>>,
    deadline: Instant,
    timeout: Duration,
    /// The credential of each client id: it lives as long as this set and keeps its own
    /// token until that nears expiry (restart on change asks again every interval).
    credentials: BTreeMap<Option<String>, Arc<dyn TokenCredential>>,
    /// One token per audience for this round (a start, or one check of restart on change).
    by_client: BTreeMap<Option<String>, Arc<SharedTokens>>,
}

impl CredentialSet {
    /// Reads the proof (the token file or the certificate) before any network traffic.
    pub fn new(
        ids: &Identities,
        http: Arc<dyn HttpClient>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Self, crate::Error> {
        let mut token = None;
        let mut certificate = None;
        match &ids.proof {
            Proof::TokenFile(path) => match token_file::read(path, timeout) {
                Err(source) => {
                    return Err(ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    }
                    .into())
                }
                Ok(t) if t.trim().is_empty() => {
                    return Err(ConfigError::EmptyTokenFile { path: path.clone() }.into())
                }
                Ok(t) => token = Some(t),
            },
            Proof::Certificate { path, password } => {
                let loaded = Certificate::load(path, password.as_ref().map(|p| p.secret()))
                    .map_err(|e| {
                        ConfigError::ServicePrincipal(format!(
                            "cannot use the certificate {} (AZURE_CLIENT_CERTIFICATE_PATH): {e}",
                            path.display()
                        ))
                    })?;
                certificate = Some(Arc::new(loaded));
            }
            Proof::Secret(_) | Proof::Imds { .. } => {}
        }
        Ok(CredentialSet {
            ids: ids.clone(),
            http,
            token,
            certificate,
            deadline,
            timeout,
            credentials: BTreeMap::new(),
            by_client: BTreeMap::new(),
        })
    }

    /// The tokens for `vault`'s client id, made on first use.
    pub fn tokens_for(&mut self, vault: &VaultUrl) -> Result<Arc<SharedTokens>, crate::Error> {
        let client_id = self.ids.client_id_for(vault).map(str::to_string);
        if let Some(tokens) = self.by_client.get(&client_id) {
            return Ok(tokens.clone());
        }
        let credential = match self.credentials.get(&client_id) {
            Some(c) => c.clone(),
            None => {
                let c = self.credential(client_id.as_deref())?;
                self.credentials.insert(client_id.clone(), c.clone());
                c
            }
        };
        let tokens = Arc::new(SharedTokens::new(credential, self.deadline, self.timeout));
        self.by_client.insert(client_id, tokens.clone());
        Ok(tokens)
    }

    /// A new round inside a new budget (one check of restart on change): the credentials
    /// stay, with the tokens they keep until near expiry; the per-round tokens go.
    pub fn new_round(&mut self, deadline: Instant, timeout: Duration) {
        self.deadline = deadline;
        self.timeout = timeout;
        self.by_client.clear();
    }

    /// How many distinct credentials were made (one per client id).
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    fn client_options(&self) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.ids.authority_host.clone();
        ClientOptions {
            retry: RetryOptions::none(),
            transport: Some(Transport::new(self.http.clone())),
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            ..Default::default()
        }
    }

    fn credential(
        &self,
        client_id: Option<&str>,
    ) -> Result<Arc<dyn TokenCredential>, crate::Error> {
        let sdk = |e: azure_core::Error| crate::Error::Identity(one_line(&error_chain(&e)));
        let needed = || -> Result<String, crate::Error> {
            client_id
                .map(str::to_string)
                .ok_or_else(|| match self.ids.kind {
                    AuthKind::ServicePrincipal => ConfigError::ServicePrincipal(
                        "AZURE_CLIENT_ID is not set in the container".into(),
                    )
                    .into(),
                    _ => ConfigError::NoClientId.into(),
                })
        };
        let tenant = self.ids.tenant_id.clone();
        let assertion_options = || {
            Some(ClientAssertionCredentialOptions {
                client_options: self.client_options(),
            })
        };
        let credential: Arc<dyn TokenCredential> = match &self.ids.proof {
            Proof::TokenFile(path) => ClientAssertionCredential::new(
                tenant,
                needed()?,
                TokenFile::new(
                    path.clone(),
                    self.token.as_deref().unwrap_or_default(),
                    self.timeout,
                ),
                assertion_options(),
            )
            .map_err(sdk)?,
            Proof::Certificate { path, .. } => {
                let certificate = self.certificate.clone().ok_or_else(|| {
                    crate::Error::Identity("the certificate was not loaded".into())
                })?;
                ClientAssertionCredential::new(
                    tenant,
                    needed()?,
                    CertificateAssertion {
                        certificate,
                        client_id: needed()?,
                        audience: self.ids.token_url(),
                        path: path.clone(),
                    },
                    assertion_options(),
                )
                .map_err(sdk)?
            }
            Proof::Secret(secret) => ClientSecretCredential::new(
                &tenant,
                needed()?,
                secret.clone(),
                Some(ClientSecretCredentialOptions {
                    client_options: self.client_options(),
                }),
            )
            .map_err(sdk)?,
            Proof::Imds { endpoint } => Arc::new(
                ImdsCredential::new(endpoint, client_id.map(str::to_string), self.http.clone())
                    .map_err(crate::Error::Identity)?,
            ),
        };
        Ok(credential)
    }
}
