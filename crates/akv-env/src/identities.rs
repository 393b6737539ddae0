//! Which identity reads each vault (pure: from the settings and the environment passed
//! in): workload identity (the default), a service principal's secret or certificate
//! from the container's own `AZURE_*` variables, or the node's managed identity; with
//! the per-vault client ids of `akv-injector.io/client-id.<VAULT>`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use akv_core::auth::{
    AZURE_CLIENT_CERTIFICATE_PASSWORD, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_CLIENT_SECRET,
};
use akv_core::identity::text_var;
use akv_core::{AuthKind, VaultUrl, WorkloadIdentity};
use azure_core::credentials::Secret;

use crate::config::{lookup, EnvConfig};
use crate::error::ConfigError;
use crate::hints::{Identifies, Who};

/// What proves the identity.
#[derive(Debug, Clone)]
pub enum Proof {
    /// Workload identity: the projected service-account token file.
    TokenFile(PathBuf),
    /// A service principal's client secret (`AZURE_CLIENT_SECRET`).
    Secret(Secret),
    /// A service principal's certificate file, and its PKCS#12 password.
    Certificate {
        path: PathBuf,
        password: Option<Secret>,
    },
    /// The node's managed identity, at this IMDS endpoint.
    Imds { endpoint: String },
}

/// The pod's identities: one kind, a client id for every vault (the pod's, or the
/// vault's own), and the proof they share.
#[derive(Debug, Clone)]
pub struct Identities {
    pub kind: AuthKind,
    /// The pod's client id; `None` for a managed identity the node picks.
    pub client_id: Option<String>,
    /// Empty for a managed identity.
    pub tenant_id: String,
    /// `https://HOST[:PORT]/`.
    pub authority_host: String,
    pub proof: Proof,
    /// `akv-injector.io/client-id.<VAULT>`.
    pub per_vault: BTreeMap<VaultUrl, String>,
}

impl Identities {
    /// One workload identity for every vault (the way before per-vault client ids).
    pub fn workload(identity: &WorkloadIdentity) -> Identities {
        Identities {
            kind: AuthKind::WorkloadIdentity,
            client_id: Some(identity.client_id.clone()),
            tenant_id: identity.tenant_id.clone(),
            authority_host: identity.authority_host.clone(),
            proof: Proof::TokenFile(identity.token_file.clone()),
            per_vault: BTreeMap::new(),
        }
    }

    /// From akv-env's settings and its environment. `imds_endpoint` is where a managed
    /// identity asks (see `keyvault::imds::endpoint`).
    /// The identities of this process: [`Identities::from_config`] with the IMDS endpoint
    /// akv-env uses ([`crate::keyvault::imds::endpoint`]).
    pub fn of_process(
        cfg: &EnvConfig,
        env: &[(OsString, OsString)],
    ) -> Result<Identities, ConfigError> {
        let imds = crate::keyvault::imds::endpoint(|name| {
            lookup(env, name)
                .and_then(|v| v.to_str())
                .map(str::to_string)
        });
        Identities::from_config(cfg, env, imds)
    }

    pub fn from_config(
        cfg: &EnvConfig,
        env: &[(OsString, OsString)],
        imds_endpoint: String,
    ) -> Result<Identities, ConfigError> {
        let kind = cfg.auth.kind();
        let per_vault = cfg.auth.vault_client_ids.clone();
        let var = |name: &'static str| {
            text_var(&|n: &str| lookup(env, n).map(|v| v.to_os_string()), name)
        };
        match kind {
            AuthKind::WorkloadIdentity => {
                let token_file = cfg.token_file.clone().ok_or(ConfigError::NoTokenFile)?;
                if cfg.client_id.is_none() && per_vault.is_empty() {
                    return Err(ConfigError::NoClientId);
                }
                Ok(Identities {
                    kind,
                    client_id: cfg.client_id.clone(),
                    tenant_id: cfg.tenant_id.clone().ok_or(ConfigError::NoTenantId)?,
                    authority_host: cfg.authority_host.clone(),
                    proof: Proof::TokenFile(token_file),
                    per_vault,
                })
            }
            AuthKind::ServicePrincipal => {
                if !per_vault.is_empty() {
                    return Err(ConfigError::ServicePrincipal(
                        "per-vault client ids (akv-injector.io/client-id.<VAULT>) need workload-identity or managed-identity: a service principal's secret or certificate belongs to one app registration".into(),
                    ));
                }
                let missing = |what: &str| {
                    ConfigError::ServicePrincipal(format!(
                        "{what} is not set in the container. Hint: map it from your Secret (env[].valueFrom.secretKeyRef, or envFrom)"
                    ))
                };
                let client_id = cfg.client_id.clone().ok_or_else(|| {
                    missing("AZURE_CLIENT_ID (or the pod annotation akv-injector.io/client-id)")
                })?;
                let tenant_id = cfg.tenant_id.clone().ok_or_else(|| {
                    missing("AZURE_TENANT_ID (or the pod annotation akv-injector.io/tenant-id)")
                })?;
                let proof = match (var(AZURE_CLIENT_SECRET)?, var(AZURE_CLIENT_CERTIFICATE_PATH)?) {
                    (Some(secret), _) => Proof::Secret(Secret::new(secret)),
                    (None, Some(path)) => Proof::Certificate {
                        path: PathBuf::from(path),
                        password: var(AZURE_CLIENT_CERTIFICATE_PASSWORD)?.map(Secret::new),
                    },
                    (None, None) => {
                        return Err(ConfigError::ServicePrincipal(
                            "neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set in the container. Hint: map AZURE_CLIENT_SECRET from your Secret (env[].valueFrom.secretKeyRef, or envFrom), or mount the certificate and set AZURE_CLIENT_CERTIFICATE_PATH".into(),
                        ))
                    }
                };
                Ok(Identities {
                    kind,
                    client_id: Some(client_id),
                    tenant_id,
                    authority_host: cfg.authority_host.clone(),
                    proof,
                    per_vault,
                })
            }
            AuthKind::ManagedIdentity => Ok(Identities {
                kind,
                client_id: cfg.client_id.clone(),
                tenant_id: String::new(),
                authority_host: cfg.authority_host.clone(),
                proof: Proof::Imds {
                    endpoint: imds_endpoint,
                },
                per_vault,
            }),
        }
    }

    /// The client id that reads `vault`: its own, else the pod's.
    pub fn client_id_for(&self, vault: &VaultUrl) -> Option<&str> {
        self.per_vault
            .get(vault)
            .or(self.client_id.as_ref())
            .map(String::as_str)
    }

    /// Entra ID's token endpoint.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.trim_end_matches('/'),
            self.tenant_id
        )
    }
}

impl Identifies for Identities {
    fn who(&self, vault: &VaultUrl) -> Who {
        Who {
            auth: self.kind,
            client_id: self.client_id_for(vault).unwrap_or_default().to_string(),
            per_vault: self.per_vault.contains_key(vault),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "11111111-1111-1111-1111-111111111111";
    const C2: &str = "22222222-2222-2222-2222-222222222222";

    use crate::config::test_env as env;

    fn read(pairs: &[(&str, &str)]) -> Result<Identities, String> {
        let env = env(pairs);
        let cfg = EnvConfig::from_env(&env).map_err(|e| e.to_string())?;
        Identities::from_config(&cfg, &env, "http://imds.test/token".into())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn kinds_and_their_proofs() {
        let wi = read(&[
            ("AZURE_CLIENT_ID", C1),
            ("AZURE_TENANT_ID", C1),
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
            (
                "AKV_INJECTOR_VAULT_CLIENT_IDS",
                &format!("https://b-kv.vault.azure.net={C2}"),
            ),
        ])
        .expect("workload identity");
        assert!(matches!(wi.proof, Proof::TokenFile(_)));
        let a = VaultUrl::parse_spec("a-kv").expect("vault");
        let b = VaultUrl::parse_spec("b-kv").expect("vault");
        assert_eq!(wi.client_id_for(&a), Some(C1));
        assert_eq!(wi.client_id_for(&b), Some(C2));
        assert!(wi.who(&b).per_vault && !wi.who(&a).per_vault);

        let secret = read(&[
            ("AKV_INJECTOR_AUTH", "service-principal"),
            ("AZURE_CLIENT_ID", C1),
            ("AZURE_TENANT_ID", C1),
            ("AZURE_CLIENT_SECRET", "s3cr3t"),
        ])
        .expect("secret");
        assert!(matches!(&secret.proof, Proof::Secret(s) if s.secret() == "s3cr3t"));
        assert!(
            !format!("{secret:?}").contains("s3cr3t"),
            "Debug hides the secret"
        );
        let cert = read(&[
            ("AKV_INJECTOR_AUTH", "service-principal"),
            ("AKV_INJECTOR_CLIENT_ID", C2),
            ("AZURE_TENANT_ID", C1),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/certs/sp.pfx"),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pw"),
        ])
        .expect("certificate");
        assert_eq!(cert.client_id.as_deref(), Some(C2));
        assert!(
            matches!(&cert.proof, Proof::Certificate { path, password: Some(_) } if path.to_str() == Some("/certs/sp.pfx"))
        );

        let mi = read(&[("AKV_INJECTOR_AUTH", "managed-identity")]).expect("managed identity");
        assert_eq!(mi.client_id, None);
        assert!(
            matches!(&mi.proof, Proof::Imds { endpoint } if endpoint == "http://imds.test/token")
        );
        assert_eq!(
            mi.who(&a).label(),
            "the node's managed identity (no client id given)"
        );
        let user = read(&[
            ("AKV_INJECTOR_AUTH", "managed-identity"),
            ("AKV_INJECTOR_CLIENT_ID", C2),
        ])
        .expect("user-assigned");
        assert_eq!(user.client_id.as_deref(), Some(C2));
    }

    #[test]
    fn what_is_missing_is_named() {
        let sp = ("AKV_INJECTOR_AUTH", "service-principal");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[sp, ("AZURE_TENANT_ID", C1), ("AZURE_CLIENT_SECRET", "s")], "service principal: AZURE_CLIENT_ID (or the pod annotation akv-injector.io/client-id) is not set in the container"),
            (&[sp, ("AZURE_CLIENT_ID", C1), ("AZURE_CLIENT_SECRET", "s")], "service principal: AZURE_TENANT_ID (or the pod annotation akv-injector.io/tenant-id) is not set"),
            (&[sp, ("AZURE_CLIENT_ID", C1), ("AZURE_TENANT_ID", C1)], "service principal: neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set"),
            (&[sp, ("AZURE_CLIENT_ID", C1), ("AZURE_TENANT_ID", C1), ("AZURE_CLIENT_SECRET", "s"), ("AKV_INJECTOR_VAULT_CLIENT_IDS", "https://b-kv.vault.azure.net=22222222-2222-2222-2222-222222222222")], "service principal: per-vault client ids"),
            (&[("AZURE_TENANT_ID", C1), ("AZURE_FEDERATED_TOKEN_FILE", "/t")], "no workload identity client id"),
            (&[("AKV_INJECTOR_AUTH", "kerberos")], "AKV_INJECTOR_AUTH=\"kerberos\": 'kerberos' is not an identity kind"),
        ];
        for (pairs, want) in cases {
            let err = read(pairs).expect_err(want);
            assert!(err.starts_with(want), "{err}");
        }
    }
}
