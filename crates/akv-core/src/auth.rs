//! Which identity `akv-env` reads the vaults with, and how the webhook tells it: the
//! kinds of the `akv-injector.io/auth` annotation, the per-vault client ids of
//! `akv-injector.io/client-id.<VAULT>`, and whether the credential variables are kept for
//! the application (`akv-injector.io/keep-credentials`). The webhook writes them with
//! [`IdentitySettings::to_env`] and `akv-env` reads them back with
//! [`IdentitySettings::from_env`]; both parse through the functions here.
//!
//! These variables are written only when the pod asks for something other than the
//! default (workload identity, one client id, credentials removed), so a pod without the
//! annotations gets exactly the variables it got before.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::settings::{self, SettingError};
use crate::{VaultError, VaultUrl};

/// `workload-identity`, `service-principal` or `managed-identity`.
pub const ENV_AUTH: &str = "AKV_INJECTOR_AUTH";
/// Per-vault client ids: `https://VAULT=GUID,https://VAULT=GUID` (vault URLs as
/// [`VaultUrl::url`] writes them, sorted).
pub const ENV_VAULT_CLIENT_IDS: &str = "AKV_INJECTOR_VAULT_CLIENT_IDS";
/// `true`: the credential variables reach the application.
pub const ENV_KEEP_CREDENTIALS: &str = "AKV_INJECTOR_KEEP_CREDENTIALS";

/// The service principal's secret (`ClientSecretCredential`).
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
/// The service principal's certificate: a PEM file with the key, or PKCS#12.
pub const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
/// The PKCS#12 file's password, if it has one.
pub const AZURE_CLIENT_CERTIFICATE_PASSWORD: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";

/// The variables a service principal reads, and that `akv-env` removes from the
/// application's environment unless the pod keeps them.
pub const SERVICE_PRINCIPAL_VARS: [&str; 5] = [
    crate::identity::AZURE_CLIENT_ID,
    crate::identity::AZURE_TENANT_ID,
    AZURE_CLIENT_SECRET,
    AZURE_CLIENT_CERTIFICATE_PATH,
    AZURE_CLIENT_CERTIFICATE_PASSWORD,
];

/// How `akv-env` authenticates to Entra ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthKind {
    /// Azure workload identity: the projected service-account token, exchanged.
    #[default]
    WorkloadIdentity,
    /// An app registration's secret or certificate, from the container's environment.
    ServicePrincipal,
    /// The node's managed identity, through IMDS.
    ManagedIdentity,
}

impl AuthKind {
    pub const ALL: [AuthKind; 3] = [
        AuthKind::WorkloadIdentity,
        AuthKind::ServicePrincipal,
        AuthKind::ManagedIdentity,
    ];

    /// The annotation's value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::WorkloadIdentity => "workload-identity",
            AuthKind::ServicePrincipal => "service-principal",
            AuthKind::ManagedIdentity => "managed-identity",
        }
    }

    /// For messages: "workload identity", "service principal", "managed identity".
    pub fn words(self) -> &'static str {
        match self {
            AuthKind::WorkloadIdentity => "workload identity",
            AuthKind::ServicePrincipal => "service principal",
            AuthKind::ManagedIdentity => "managed identity",
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value of `auth` that is none of the kinds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{0}' is not an identity kind: write workload-identity (the default), service-principal or managed-identity")]
pub struct BadAuth(pub String);

impl FromStr for AuthKind {
    type Err = BadAuth;

    fn from_str(s: &str) -> Result<Self, BadAuth> {
        AuthKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| BadAuth(s.to_string()))
    }
}

/// A per-vault client id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VaultClientIdError {
    #[error("{0}")]
    Vault(VaultError),
    #[error("{0}")]
    ClientId(SettingError),
    #[error("'{0}' is not VAULT=CLIENT_ID")]
    Entry(String),
}

/// The vault of a `client-id.<VAULT>` annotation (a vault name or DNS name) and its
/// client id (a GUID), checked; both sides use this.
pub fn parse_vault_client_id(
    vault: &str,
    client_id: &str,
) -> Result<(VaultUrl, String), VaultClientIdError> {
    let url = VaultUrl::parse_spec(vault).map_err(VaultClientIdError::Vault)?;
    let id = settings::parse_guid(client_id.trim()).map_err(VaultClientIdError::ClientId)?;
    Ok((url, id))
}

/// Writes per-vault client ids as [`ENV_VAULT_CLIENT_IDS`] holds them.
pub fn format_vault_client_ids(ids: &BTreeMap<VaultUrl, String>) -> String {
    ids.iter()
        .map(|(vault, id)| format!("{}={id}", vault.url()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads [`ENV_VAULT_CLIENT_IDS`] back; a vault named twice keeps its last client id.
pub fn parse_vault_client_ids(
    list: &str,
) -> Result<BTreeMap<VaultUrl, String>, VaultClientIdError> {
    let mut out = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (vault, id) = entry
            .rsplit_once('=')
            .ok_or_else(|| VaultClientIdError::Entry(entry.to_string()))?;
        let (url, id) = parse_vault_client_id(vault.trim(), id)?;
        out.insert(url, id);
    }
    Ok(out)
}

/// What a pod asked for about its identity. `Default` is what a pod without the
/// annotations gets, and writes no variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentitySettings {
    /// `akv-injector.io/auth`; `None`: workload identity.
    pub auth: Option<AuthKind>,
    /// `akv-injector.io/client-id.<VAULT>`, by vault.
    pub vault_client_ids: BTreeMap<VaultUrl, String>,
    /// `akv-injector.io/keep-credentials`.
    pub keep_credentials: Option<bool>,
}

/// A variable of this codec that does not parse, named with its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentitySettingsError {
    #[error("{ENV_AUTH}={0:?}: {1}")]
    Auth(String, BadAuth),
    #[error("{ENV_VAULT_CLIENT_IDS}={0:?}: {1}")]
    VaultClientIds(String, VaultClientIdError),
    #[error("{ENV_KEEP_CREDENTIALS}={0:?}: {1}")]
    KeepCredentials(String, SettingError),
    #[error("{ENV_AUTH} is set more than once in the environment: it comes only from the webhook (annotation akv-injector.io/auth). Hint: remove {ENV_AUTH} from the container's envFrom sources")]
    RepeatedAuth,
}

impl IdentitySettings {
    /// Every variable of the codec.
    pub const VARS: [&'static str; 3] = [ENV_AUTH, ENV_VAULT_CLIENT_IDS, ENV_KEEP_CREDENTIALS];

    /// The kind, the default when not set.
    pub fn kind(&self) -> AuthKind {
        self.auth.unwrap_or_default()
    }

    /// The variables, in a fixed order; those not set are left out.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(auth) = self.auth {
            env.push((ENV_AUTH, auth.to_string()));
        }
        if !self.vault_client_ids.is_empty() {
            env.push((
                ENV_VAULT_CLIENT_IDS,
                format_vault_client_ids(&self.vault_client_ids),
            ));
        }
        if let Some(keep) = self.keep_credentials {
            env.push((ENV_KEEP_CREDENTIALS, keep.to_string()));
        }
        env
    }

    /// Reads the variables back; `values(name)` gives every value the environment holds
    /// for `name`, in order; empty counts as not set.
    pub fn from_env<'a, F, I>(values: F) -> Result<Self, IdentitySettingsError>
    where
        F: Fn(&str) -> I,
        I: IntoIterator<Item = &'a str>,
    {
        let one = |var: &str| settings::last_set(values(var));
        if values(ENV_AUTH).into_iter().count() > 1 {
            return Err(IdentitySettingsError::RepeatedAuth);
        }
        let auth = one(ENV_AUTH)
            .map(|v| {
                v.parse::<AuthKind>()
                    .map_err(|e| IdentitySettingsError::Auth(v.clone(), e))
            })
            .transpose()?;
        let vault_client_ids = match one(ENV_VAULT_CLIENT_IDS) {
            Some(v) => parse_vault_client_ids(&v)
                .map_err(|e| IdentitySettingsError::VaultClientIds(v.clone(), e))?,
            None => BTreeMap::new(),
        };
        let keep_credentials = one(ENV_KEEP_CREDENTIALS)
            .map(|v| {
                settings::parse_bool(&v)
                    .map_err(|e| IdentitySettingsError::KeepCredentials(v.clone(), e))
            })
            .transpose()?;
        Ok(IdentitySettings {
            auth,
            vault_client_ids,
            keep_credentials,
        })
    }

    /// [`IdentitySettings::from_env`] over name/value pairs.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: &[(K, V)],
    ) -> Result<Self, IdentitySettingsError> {
        IdentitySettings::from_env(|name: &str| crate::settings::values_in(pairs, name))
    }

    /// The variables `akv-env` removes from the application's environment besides its
    /// own `AKV_INJECTOR_*`: a service principal's, unless the pod keeps them.
    pub fn credential_vars_to_remove(&self) -> &'static [&'static str] {
        match (self.kind(), self.keep_credentials) {
            (_, Some(true)) => &[],
            (AuthKind::ServicePrincipal, _) => &SERVICE_PRINCIPAL_VARS,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "11111111-1111-1111-1111-111111111111";
    const C2: &str = "22222222-2222-2222-2222-2222222222AA";

    #[test]
    fn kinds() {
        let cases = [
            ("workload-identity", Ok(AuthKind::WorkloadIdentity)),
            ("service-principal", Ok(AuthKind::ServicePrincipal)),
            (" managed-identity ", Ok(AuthKind::ManagedIdentity)),
            ("ManagedIdentity", Err(())),
            ("pod-identity", Err(())),
            ("", Err(())),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<AuthKind>().map_err(|_| ()), want, "{s}");
        }
        assert_eq!(
            "msi".parse::<AuthKind>().expect_err("unknown").to_string(),
            "'msi' is not an identity kind: write workload-identity (the default), service-principal or managed-identity"
        );
        for k in AuthKind::ALL {
            assert_eq!(k.to_string().parse::<AuthKind>(), Ok(k));
        }
    }

    #[test]
    fn vault_client_ids() {
        let (url, id) = parse_vault_client_id("shop-kv", C2).expect("valid");
        assert_eq!(url.url(), "https://shop-kv.vault.azure.net");
        assert_eq!(id, C2.to_ascii_lowercase());
        let same = parse_vault_client_id("shop-kv.vault.azure.net", C2).expect("valid");
        assert_eq!(same.0, url, "a name and its DNS name are one vault");
        let bad: [(&str, &str, &str); 3] = [
            ("shop-kv", "me", "'me' is not a GUID"),
            ("kv", C1, "'kv' is not a vault"),
            (
                "http://kv.vault.azure.net",
                C1,
                "'http://kv.vault.azure.net' uses http",
            ),
        ];
        for (vault, id, want) in bad {
            let err = parse_vault_client_id(vault, id)
                .expect_err(want)
                .to_string();
            assert!(err.starts_with(want), "{err}");
        }
        let list = format!("https://a-kv.vault.azure.net={C1}, https://127.0.0.1:8443={C2}");
        let parsed = parse_vault_client_ids(&list).expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parse_vault_client_ids(&format_vault_client_ids(&parsed)),
            Ok(parsed)
        );
        assert!(matches!(
            parse_vault_client_ids("a-kv"),
            Err(VaultClientIdError::Entry(_))
        ));
    }

    #[test]
    fn the_default_writes_nothing_and_everything_round_trips() {
        assert!(IdentitySettings::default().to_env().is_empty());
        assert_eq!(
            IdentitySettings::from_pairs::<&str, &str>(&[]),
            Ok(IdentitySettings::default())
        );
        let settings = IdentitySettings {
            auth: Some(AuthKind::ManagedIdentity),
            vault_client_ids: [parse_vault_client_id("b-kv", C2).expect("valid")]
                .into_iter()
                .collect(),
            keep_credentials: Some(true),
        };
        let env = settings.to_env();
        let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, IdentitySettings::VARS);
        assert_eq!(IdentitySettings::from_pairs(&env), Ok(settings));
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ENV_AUTH, "msi")], "AKV_INJECTOR_AUTH=\"msi\": 'msi' is not an identity kind"),
            (&[(ENV_KEEP_CREDENTIALS, "yes")], "AKV_INJECTOR_KEEP_CREDENTIALS=\"yes\": 'yes' is not a boolean"),
            (&[(ENV_VAULT_CLIENT_IDS, "https://a-kv.vault.azure.net=me")], "AKV_INJECTOR_VAULT_CLIENT_IDS=\"https://a-kv.vault.azure.net=me\": 'me' is not a GUID"),
            (&[(ENV_AUTH, "managed-identity"), (ENV_AUTH, "managed-identity")], "AKV_INJECTOR_AUTH is set more than once"),
        ];
        for (pairs, want) in cases {
            let err = IdentitySettings::from_pairs(pairs)
                .expect_err(want)
                .to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn credentials_removed_for_a_service_principal_unless_kept() {
        let with = |auth, keep| IdentitySettings {
            auth,
            keep_credentials: keep,
            ..Default::default()
        };
        let cases = [
            (with(None, None), 0),
            (with(Some(AuthKind::ManagedIdentity), None), 0),
            (with(Some(AuthKind::ServicePrincipal), None), 5),
            (with(Some(AuthKind::ServicePrincipal), Some(false)), 5),
            (with(Some(AuthKind::ServicePrincipal), Some(true)), 0),
        ];
        for (settings, removed) in cases {
            assert_eq!(
                settings.credential_vars_to_remove().len(),
                removed,
                "{settings:?}"
            );
        }
    }
}
