//! akv-env's settings, read from its environment (pure: the environment is passed in).
//!
//! The webhook passes the pod's settings down as `AKV_INJECTOR_*` variables; Azure
//! Workload Identity sets the standard `AZURE_*` ones. The pod's annotations win.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use akv_core::identity::text_var;
use akv_core::settings::DEFAULT_TIMEOUT;
use akv_core::{AzureVars, HostPolicy, IdentitySettings, PodSettings, VaultUrl, WorkloadIdentity};

use crate::error::ConfigError;

pub use akv_core::identity::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID,
    DEFAULT_AUTHORITY_HOST,
};

/// The environment as a list of pairs, in order.
pub type Env = Vec<(OsString, OsString)>;

/// akv-env's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvConfig {
    /// Vault for references that name none (`AKV_INJECTOR_VAULT`).
    pub default_vault: Option<VaultUrl>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub token_file: Option<PathBuf>,
    /// `https://host[:port]/`, from `AZURE_AUTHORITY_HOST`.
    pub authority_host: String,
    pub ignore_missing: bool,
    pub timeout: Duration,
    pub hosts: HostPolicy,
    /// Which identity (`akv-injector.io/auth`, per-vault client ids, keep-credentials).
    pub auth: IdentitySettings,
    /// Restart on change (`AKV_INJECTOR_REFRESH`): `None` is off, and akv-env `execve`s.
    pub refresh: Option<Duration>,
    /// SIGTERM-to-SIGKILL wait of a restart (`AKV_INJECTOR_GRACE`).
    pub grace: Duration,
}

/// The identity used to read the vaults.
pub type Identity = WorkloadIdentity;

/// Looks a variable up; empty counts as unset.
pub fn lookup<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a OsStr> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_os_str())
        .filter(|v| !v.is_empty())
}

/// [`lookup`] as the closure akv-core's readers take.
fn lookup_in(env: &[(OsString, OsString)]) -> impl Fn(&str) -> Option<OsString> + '_ {
    move |name| lookup(env, name).map(OsStr::to_os_string)
}

impl EnvConfig {
    /// Reads and checks every setting. Identity variables are only checked by
    /// [`EnvConfig::identity`], since a container without references needs none.
    pub fn from_env(env: &[(OsString, OsString)]) -> Result<Self, ConfigError> {
        // Every AKV_INJECTOR_* setting goes through the codec the webhook wrote it with;
        // a value that is not UTF-8 is named first.
        for var in PodSettings::VARS.into_iter().chain(IdentitySettings::VARS) {
            text_var(&lookup_in(env), var)?;
        }
        let values = |name: &str| {
            env.iter()
                .filter(|(k, _)| k == name)
                .filter_map(|(_, v)| v.to_str())
                .collect::<Vec<_>>()
        };
        let pod = PodSettings::from_env(values)?;
        let auth = IdentitySettings::from_env(values)?;
        // An annotation hides the AZURE_* variable it overrides (which is then not read).
        let azure = AzureVars::read(|name| match name {
            AZURE_CLIENT_ID if pod.client_id.is_some() => None,
            AZURE_TENANT_ID if pod.tenant_id.is_some() => None,
            _ => lookup_in(env)(name),
        })?;
        Ok(EnvConfig {
            default_vault: pod.vault,
            client_id: pod.client_id.or(azure.client_id),
            tenant_id: pod.tenant_id.or(azure.tenant_id),
            token_file: azure.token_file,
            authority_host: azure.authority_host,
            ignore_missing: pod.ignore_missing.unwrap_or(false),
            timeout: pod.timeout.unwrap_or(DEFAULT_TIMEOUT),
            hosts: pod.allow_vault_hosts,
            auth,
            refresh: pod.refresh,
            grace: pod.grace.unwrap_or(akv_core::refresh::DEFAULT_GRACE),
        })
    }

    /// The identity, or what is missing.
    pub fn identity(&self) -> Result<Identity, ConfigError> {
        Ok(Identity {
            client_id: self.client_id.clone().ok_or(ConfigError::NoClientId)?,
            tenant_id: self.tenant_id.clone().ok_or(ConfigError::NoTenantId)?,
            token_file: self.token_file.clone().ok_or(ConfigError::NoTokenFile)?,
            authority_host: self.authority_host.clone(),
        })
    }
}

/// An environment from name/value pairs, for the table tests of the modules that read one.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_env as env;

    const C1: &str = "11111111-1111-1111-1111-111111111111";
    const C2: &str = "22222222-2222-2222-2222-222222222222";

    #[test]
    fn defaults() {
        let cfg = EnvConfig::from_env(&env(&[])).expect("empty env is fine");
        assert_eq!(cfg.default_vault, None);
        assert_eq!(cfg.timeout, Duration::from_secs(60));
        assert!(!cfg.ignore_missing);
        assert!(cfg.hosts.is_default());
        assert_eq!(cfg.authority_host, DEFAULT_AUTHORITY_HOST);
        assert_eq!(
            cfg.identity().unwrap_err().to_string().split(':').next(),
            Some("no workload identity client id")
        );
    }

    #[test]
    fn refresh_is_off_unless_asked_for() {
        let off = EnvConfig::from_env(&env(&[])).expect("valid");
        assert_eq!(off.refresh, None);
        assert_eq!(off.grace, Duration::from_secs(28));
        let on = EnvConfig::from_env(&env(&[
            ("AKV_INJECTOR_REFRESH", "2s"),
            ("AKV_INJECTOR_GRACE", "5s"),
        ]))
        .expect("valid");
        assert_eq!(on.refresh, Some(Duration::from_secs(2)));
        assert_eq!(on.grace, Duration::from_secs(5));
        let err = EnvConfig::from_env(&env(&[("AKV_INJECTOR_REFRESH", "25h")])).unwrap_err();
        assert!(err.to_string().contains("AKV_INJECTOR_REFRESH"), "{err}");
    }

    #[test]
    fn pod_settings_win_over_azure_variables() {
        let cfg = EnvConfig::from_env(&env(&[
            ("AZURE_CLIENT_ID", C1),
            ("AZURE_TENANT_ID", C1),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
            ("AKV_INJECTOR_CLIENT_ID", &C2.to_uppercase()),
            ("AKV_INJECTOR_TENANT_ID", C2),
            ("AKV_INJECTOR_VAULT", "https://kv1.vault.azure.net"),
            ("AKV_INJECTOR_IGNORE_MISSING", "true"),
            ("AKV_INJECTOR_TIMEOUT", "1m30s"),
            ("AKV_INJECTOR_ALLOW_VAULT_HOSTS", "localhost,.example.com"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
        ]))
        .expect("valid");
        assert_eq!(
            cfg.default_vault.as_ref().map(|v| v.url()),
            Some("https://kv1.vault.azure.net".into())
        );
        assert!(cfg.ignore_missing);
        assert_eq!(cfg.timeout, Duration::from_secs(90));
        assert_eq!(cfg.hosts.to_list(), "localhost,.example.com");
        let id = cfg.identity().expect("complete");
        assert_eq!(id.client_id, C2);
        assert_eq!(id.tenant_id, C2);
        assert_eq!(id.authority_host, "https://login.microsoftonline.us/");
        assert_eq!(
            id.token_file,
            PathBuf::from("/var/run/secrets/azure/tokens/azure-identity-token")
        );
    }

    #[test]
    fn azure_variables_alone() {
        let cfg = EnvConfig::from_env(&env(&[
            ("AZURE_CLIENT_ID", C1),
            ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
            ("AKV_INJECTOR_CLIENT_ID", ""),
        ]))
        .expect("valid");
        let id = cfg.identity().expect("complete");
        assert_eq!(
            (id.client_id.as_str(), id.tenant_id.as_str()),
            (C1, "contoso.onmicrosoft.com")
        );
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("AKV_INJECTOR_TIMEOUT", "soon")], "AKV_INJECTOR_TIMEOUT=\"soon\": 'soon' is not a duration"),
            (&[("AKV_INJECTOR_TIMEOUT", "2h")], "AKV_INJECTOR_TIMEOUT=\"2h\": '2h' is out of range"),
            (&[("AKV_INJECTOR_IGNORE_MISSING", "yes")], "AKV_INJECTOR_IGNORE_MISSING=\"yes\": 'yes' is not a boolean"),
            (&[("AKV_INJECTOR_CLIENT_ID", "me")], "AKV_INJECTOR_CLIENT_ID=\"me\": 'me' is not a GUID"),
            (&[("AKV_INJECTOR_VAULT", "http://kv.vault.azure.net")], "AKV_INJECTOR_VAULT=\"http://kv.vault.azure.net\": 'http://kv.vault.azure.net' uses http"),
            (&[("AKV_INJECTOR_ALLOW_VAULT_HOSTS", "a b")], "AKV_INJECTOR_ALLOW_VAULT_HOSTS=\"a b\": 'a b' is not an allowed vault host"),
            (&[("AZURE_AUTHORITY_HOST", "http://login.example")], "AZURE_AUTHORITY_HOST=\"http://login.example\": the authority host must be an https:// URL"),
            (&[("AZURE_AUTHORITY_HOST", "https://login.example/tenant")], "AZURE_AUTHORITY_HOST=\"https://login.example/tenant\": give only https://HOST[:PORT]/"),
        ];
        for (pairs, want) in cases {
            let err = EnvConfig::from_env(&env(pairs))
                .expect_err(want)
                .to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn a_domain_tenant_from_the_annotation_is_used() {
        let cfg = EnvConfig::from_env(&env(&[
            ("AZURE_TENANT_ID", C1),
            ("AKV_INJECTOR_TENANT_ID", "contoso.onmicrosoft.com"),
        ]))
        .expect("the webhook admits domain tenants, so akv-env must read them");
        assert_eq!(cfg.tenant_id.as_deref(), Some("contoso.onmicrosoft.com"));
    }

    #[test]
    fn the_allowlist_comes_only_from_the_webhook() {
        // envFrom cannot override the webhook's own `env` entry in Kubernetes; a second
        // copy in the environment means something else tried to set it.
        let err = EnvConfig::from_env(&env(&[
            ("AKV_INJECTOR_ALLOW_VAULT_HOSTS", "evil.example"),
            ("AKV_INJECTOR_ALLOW_VAULT_HOSTS", ""),
        ]))
        .expect_err("a repeated allowlist");
        assert!(
            err.to_string()
                .starts_with("AKV_INJECTOR_ALLOW_VAULT_HOSTS is set more than once"),
            "{err}"
        );
        let empty = EnvConfig::from_env(&env(&[("AKV_INJECTOR_ALLOW_VAULT_HOSTS", "")]))
            .expect("the webhook writes an empty allowlist when the operator allowed none");
        assert!(empty.hosts.is_default());
    }

    #[test]
    fn missing_identity_parts() {
        let only_client = EnvConfig::from_env(&env(&[("AZURE_CLIENT_ID", C1)])).expect("valid");
        assert!(matches!(
            only_client.identity(),
            Err(ConfigError::NoTenantId)
        ));
        let no_file =
            EnvConfig::from_env(&env(&[("AZURE_CLIENT_ID", C1), ("AZURE_TENANT_ID", C1)]))
                .expect("valid");
        let err = no_file.identity().expect_err("no token file");
        assert!(
            err.to_string()
                .starts_with("AZURE_FEDERATED_TOKEN_FILE is not set"),
            "{err}"
        );
    }
}
