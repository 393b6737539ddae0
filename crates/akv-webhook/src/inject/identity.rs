//! The identity annotations (`auth`, `client-id.<VAULT>`, `keep-credentials`) and what
//! admission checks about them (pure): an unknown kind is a denial naming the allowed
//! ones; a service principal needs an injected container that can carry its variables;
//! a managed identity needs the operator's `--allow-managed-identity` and always gets a
//! warning; per-vault client ids must be GUIDs, and a vault the pod does not read is a
//! warning naming the annotation.

use std::collections::BTreeSet;

use akv_core::auth::{
    self, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_CLIENT_SECRET, ENV_KEEP_CREDENTIALS,
};
use akv_core::identity::{AZURE_CLIENT_ID, AZURE_TENANT_ID};
use akv_core::{settings, AuthKind, IdentitySettings, VaultUrl};
use k8s_openapi::api::core::v1::Container;

use super::annotations::AnnotationError;
use super::cost::Warnings;
use super::denial::Denial;

pub const AUTH: &str = "akv-injector.io/auth";
pub const KEEP_CREDENTIALS: &str = "akv-injector.io/keep-credentials";
pub const VAULT_CLIENT_ID_PREFIX: &str = "akv-injector.io/client-id.";

/// The identity annotations as read, with the key of each per-vault client id (for
/// warnings that name it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityConfig {
    pub settings: IdentitySettings,
    pub vault_keys: Vec<(VaultUrl, String)>,
}

impl IdentityConfig {
    /// Reads `key` if it is an identity annotation; `Ok(false)` when it is not one.
    pub fn read(&mut self, key: &str, value: &str) -> Result<bool, AnnotationError> {
        let bad = |reason: String| AnnotationError::Identity {
            key: key.to_string(),
            reason,
        };
        if key == AUTH {
            let kind: AuthKind = value
                .parse()
                .map_err(|e: auth::BadAuth| bad(e.to_string()))?;
            self.settings.auth = Some(kind);
        } else if key == KEEP_CREDENTIALS {
            let keep = settings::parse_bool(value).map_err(|e| bad(e.to_string()))?;
            self.settings.keep_credentials = Some(keep);
        } else if let Some(vault) = key.strip_prefix(VAULT_CLIENT_ID_PREFIX) {
            let (url, id) =
                auth::parse_vault_client_id(vault, value).map_err(|e| bad(e.to_string()))?;
            self.settings.vault_client_ids.insert(url.clone(), id);
            self.vault_keys.push((url, key.to_string()));
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    pub fn kind(&self) -> AuthKind {
        self.settings.kind()
    }
}

/// Whether a container can hold a service principal's variables: it sets the secret or
/// the certificate path itself (a value or a `valueFrom`), or takes variables from
/// `envFrom` (which admission cannot see into).
fn carries_credentials(container: &Container, has_client_id: bool, has_tenant: bool) -> bool {
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return true;
    }
    let sets = |name: &str| container.env.iter().flatten().any(|e| e.name == name);
    (sets(AZURE_CLIENT_SECRET) || sets(AZURE_CLIENT_CERTIFICATE_PATH))
        && (has_client_id || sets(AZURE_CLIENT_ID))
        && (has_tenant || sets(AZURE_TENANT_ID))
}

/// What the pod's identity needs of its injected containers and vaults. `referenced`:
/// every vault the pod reads.
pub fn check<'a>(
    identity: &IdentityConfig,
    pod_client_id: bool,
    pod_tenant: bool,
    containers: impl Iterator<Item = (String, &'a Container)>,
    referenced: &BTreeSet<VaultUrl>,
    warnings: &mut Warnings,
) -> Result<(), Denial> {
    match identity.kind() {
        AuthKind::ServicePrincipal => {
            if !identity.settings.vault_client_ids.is_empty() {
                return Err(Denial::PerVaultServicePrincipal);
            }
            let mut without = Vec::new();
            let mut any = false;
            for (name, c) in containers {
                if carries_credentials(c, pod_client_id, pod_tenant) {
                    any = true;
                } else {
                    without.push(name);
                }
            }
            if !any {
                return Err(Denial::NoServicePrincipalCredentials);
            }
            for name in without {
                warnings.push_with(|| format!(
                    "{name} gets no service principal variables ({AZURE_CLIENT_SECRET} or {AZURE_CLIENT_CERTIFICATE_PATH}, {AZURE_CLIENT_ID}, {AZURE_TENANT_ID}, nor envFrom), so akv-env will fail to start it"
                ));
            }
        }
        AuthKind::ManagedIdentity => warnings.push_with(|| {
            "akv-injector.io/auth: managed-identity: every pod on the node can use the node's managed identity, not only this one; prefer workload identity".to_string()
        }),
        AuthKind::WorkloadIdentity => {}
    }
    if identity.settings.keep_credentials == Some(true)
        && identity.kind() != AuthKind::ServicePrincipal
    {
        warnings.push_with(|| format!(
            "annotation {KEEP_CREDENTIALS} has no effect without akv-injector.io/auth: service-principal ({ENV_KEEP_CREDENTIALS} only keeps a service principal's variables)"
        ));
    }
    for (vault, key) in &identity.vault_keys {
        if !referenced.contains(vault) {
            warnings.push_with(|| format!(
                "annotation {key} names vault {}, which no reference of this pod reads; check its spelling (write the vault as the references or akv-injector.io/vault do)",
                vault.url()
            ));
        }
    }
    Ok(())
}

/// The operator's policy: a managed identity only with `--allow-managed-identity`.
pub fn check_operator(
    identity: &IdentityConfig,
    allow_managed_identity: bool,
) -> Result<(), Denial> {
    if identity.kind() == AuthKind::ManagedIdentity && !allow_managed_identity {
        return Err(Denial::ManagedIdentityNotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "11111111-1111-1111-1111-111111111111";

    fn read(pairs: &[(&str, &str)]) -> Result<IdentityConfig, String> {
        let mut config = IdentityConfig::default();
        for (k, v) in pairs {
            assert!(config.read(k, v).map_err(|e| e.to_string())?, "{k}");
        }
        Ok(config)
    }

    #[test]
    fn annotations() {
        let config = read(&[
            (AUTH, "managed-identity"),
            ("akv-injector.io/client-id.shop-kv", C1),
            (KEEP_CREDENTIALS, "true"),
        ])
        .expect("valid");
        assert_eq!(config.kind(), AuthKind::ManagedIdentity);
        assert_eq!(config.vault_keys.len(), 1);
        assert!(!IdentityConfig::default()
            .read("akv-injector.io/client-id", C1)
            .expect("not ours"));
        let cases: &[(&str, &str, &str)] = &[
            (AUTH, "msi", "annotation akv-injector.io/auth: 'msi' is not an identity kind: write workload-identity (the default), service-principal or managed-identity"),
            ("akv-injector.io/client-id.shop-kv", "shop", "annotation akv-injector.io/client-id.shop-kv: 'shop' is not a GUID such as 00000000-0000-0000-0000-000000000000"),
            ("akv-injector.io/client-id.kv", C1, "annotation akv-injector.io/client-id.kv: 'kv' is not a vault"),
            (KEEP_CREDENTIALS, "yes", "annotation akv-injector.io/keep-credentials: 'yes' is not a boolean"),
        ];
        for (key, value, want) in cases {
            let err = read(&[(key, value)]).expect_err(want);
            assert!(err.starts_with(want), "{err}");
        }
    }

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).expect("container")
    }

    #[test]
    fn service_principal_needs_a_container_with_its_variables() {
        let sp = read(&[(AUTH, "service-principal")]).expect("valid");
        let secret_ref = container(serde_json::json!({"name": "app", "env": [
            {"name": "AZURE_CLIENT_ID", "value": C1},
            {"name": "AZURE_TENANT_ID", "value": C1},
            {"name": "AZURE_CLIENT_SECRET", "valueFrom": {"secretKeyRef": {"name": "sp", "key": "secret"}}}]}));
        let env_from = container(
            serde_json::json!({"name": "app", "envFrom": [{"secretRef": {"name": "sp"}}]}),
        );
        let secret_only = container(
            serde_json::json!({"name": "app", "env": [{"name": "AZURE_CLIENT_SECRET", "value": "x"}]}),
        );
        let bare = container(serde_json::json!({"name": "side"}));
        let none = BTreeSet::new();
        let run = |cs: &[&Container], client, tenant| {
            let mut w = Warnings::default();
            let r = check(
                &sp,
                client,
                tenant,
                cs.iter().map(|c| (format!("container '{}'", c.name), *c)),
                &none,
                &mut w,
            );
            (r, w.into_vec())
        };
        assert_eq!(run(&[&secret_ref], false, false), (Ok(()), vec![]));
        assert_eq!(run(&[&env_from], false, false), (Ok(()), vec![]));
        assert_eq!(run(&[&secret_only], true, true), (Ok(()), vec![]));
        assert_eq!(
            run(&[&secret_only], false, false).0,
            Err(Denial::NoServicePrincipalCredentials)
        );
        assert_eq!(
            run(&[&bare], true, true).0,
            Err(Denial::NoServicePrincipalCredentials)
        );
        let (ok, warnings) = run(&[&secret_ref, &bare], false, false);
        assert_eq!(ok, Ok(()));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("container 'side' gets no service principal variables"),
            "{warnings:?}"
        );
        assert!(Denial::NoServicePrincipalCredentials.to_string().contains("set AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH to a mounted certificate), AZURE_CLIENT_ID and AZURE_TENANT_ID"));
    }

    #[test]
    fn managed_identity_and_unused_vaults() {
        let mi = read(&[
            (AUTH, "managed-identity"),
            ("akv-injector.io/client-id.other-kv", C1),
        ])
        .expect("valid");
        assert_eq!(
            check_operator(&mi, false),
            Err(Denial::ManagedIdentityNotAllowed)
        );
        assert_eq!(check_operator(&mi, true), Ok(()));
        let referenced: BTreeSet<VaultUrl> =
            [VaultUrl::parse_spec("shop-kv").expect("vault")].into();
        let mut w = Warnings::default();
        check(&mi, false, false, std::iter::empty(), &referenced, &mut w).expect("allowed here");
        let w = w.into_vec();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("every pod on the node can use"), "{w:?}");
        assert!(w[1].starts_with("annotation akv-injector.io/client-id.other-kv names vault https://other-kv.vault.azure.net, which no reference of this pod reads"), "{w:?}");
    }
}
