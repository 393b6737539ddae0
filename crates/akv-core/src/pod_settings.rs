//! The one codec for the pod's settings: the webhook writes them into the injected
//! containers as `AKV_INJECTOR_*` variables with [`PodSettings::to_env`], and `akv-env`
//! reads them back with [`PodSettings::from_env`]. Both sides go through this type, so a
//! value the webhook admits is a value `akv-env` accepts, with the same meaning.
//!
//! The operator's vault host allowlist travels here too, and is always written (empty
//! when the operator allowed no extra host): in Kubernetes an `env` entry wins over a
//! variable of the same name from `envFrom`, so a pod's ConfigMap cannot widen it.

use std::time::Duration;

use thiserror::Error;

use crate::refresh::{self, ENV_GRACE, ENV_REFRESH};
use crate::settings::{
    self, SettingError, ENV_ALLOW_VAULT_HOSTS, ENV_CLIENT_ID, ENV_IGNORE_MISSING, ENV_TENANT_ID,
    ENV_TIMEOUT, ENV_VAULT,
};
use crate::{HostPolicy, VaultError, VaultUrl};

/// What one pod asked for in its annotations, plus the operator's allowlist. `None`
/// means "not set": `akv-env` then uses its default (or the `AZURE_*` variable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSettings {
    /// Default vault for references that name none (`akv-injector.io/vault`).
    pub vault: Option<VaultUrl>,
    /// Client id overriding `AZURE_CLIENT_ID` (a GUID, lower case).
    pub client_id: Option<String>,
    /// Tenant overriding `AZURE_TENANT_ID` (a GUID or a domain, lower case).
    pub tenant_id: Option<String>,
    /// A missing object resolves to an empty string.
    pub ignore_missing: Option<bool>,
    /// Total fetch budget.
    pub timeout: Option<Duration>,
    /// Extra vault hosts the operator allowed (`akv-webhook --allow-vault-host`).
    pub allow_vault_hosts: HostPolicy,
    /// Restart on change: how often akv-env checks for new versions (`akv-injector.io/refresh`).
    pub refresh: Option<Duration>,
    /// Restart on change: the SIGTERM-to-SIGKILL wait (from `terminationGracePeriodSeconds`).
    pub grace: Option<Duration>,
}

/// A variable that does not hold a setting `akv-env` accepts, named with its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PodSettingsError {
    #[error("{var}={value:?}: {source}")]
    Setting {
        var: &'static str,
        value: String,
        source: SettingError,
    },
    #[error("{var}={value:?}: {source}")]
    Vault {
        var: &'static str,
        value: String,
        source: VaultError,
    },
    #[error("{var} is set more than once in the environment: it is the webhook operator's setting and must come only from the webhook's own variable. Hint: remove {var} from the container's envFrom sources")]
    Repeated { var: &'static str },
}

impl PodSettings {
    /// Every variable of the codec.
    pub const VARS: [&'static str; 8] = [
        ENV_VAULT,
        ENV_CLIENT_ID,
        ENV_TENANT_ID,
        ENV_IGNORE_MISSING,
        ENV_TIMEOUT,
        ENV_ALLOW_VAULT_HOSTS,
        ENV_REFRESH,
        ENV_GRACE,
    ];

    /// The `AKV_INJECTOR_*` variables, in a fixed order. Settings that are not set are
    /// left out, except the allowlist, which is always there.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let optional = [
            (ENV_VAULT, self.vault.as_ref().map(VaultUrl::url)),
            (ENV_CLIENT_ID, self.client_id.clone()),
            (ENV_TENANT_ID, self.tenant_id.clone()),
            (
                ENV_IGNORE_MISSING,
                self.ignore_missing.map(|b| b.to_string()),
            ),
            (ENV_TIMEOUT, self.timeout.map(settings::format_duration)),
            (ENV_REFRESH, self.refresh.map(settings::format_duration)),
            (ENV_GRACE, self.grace.map(settings::format_duration)),
        ];
        let mut env: Vec<(&'static str, String)> = optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v)))
            .collect();
        env.push((ENV_ALLOW_VAULT_HOSTS, self.allow_vault_hosts.to_list()));
        env
    }

    /// Reads back what [`PodSettings::to_env`] wrote (or any list of name/value pairs).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: &[(K, V)],
    ) -> Result<Self, PodSettingsError> {
        PodSettings::from_env(|name: &str| crate::settings::values_in(pairs, name))
    }

    /// Reads the settings back. `values(name)` gives every value the environment holds
    /// for `name`, in order; an empty value counts as not set. The allowlist must appear
    /// at most once, so that nothing but the webhook's own variable can set it.
    pub fn from_env<'a, F, I>(values: F) -> Result<Self, PodSettingsError>
    where
        F: Fn(&str) -> I,
        I: IntoIterator<Item = &'a str>,
    {
        let one = |var: &'static str| settings::last_set(values(var));
        fn parse<T>(
            var: &'static str,
            value: Option<String>,
            f: fn(&str) -> Result<T, SettingError>,
        ) -> Result<Option<T>, PodSettingsError> {
            value
                .map(|v| {
                    f(&v).map_err(|source| PodSettingsError::Setting {
                        var,
                        value: v.clone(),
                        source,
                    })
                })
                .transpose()
        }
        let vault_error = |var: &'static str, value: &str, source| PodSettingsError::Vault {
            var,
            value: value.to_string(),
            source,
        };

        if values(ENV_ALLOW_VAULT_HOSTS).into_iter().count() > 1 {
            return Err(PodSettingsError::Repeated {
                var: ENV_ALLOW_VAULT_HOSTS,
            });
        }
        let allow_vault_hosts = match one(ENV_ALLOW_VAULT_HOSTS) {
            Some(v) => {
                HostPolicy::from_list(&v).map_err(|e| vault_error(ENV_ALLOW_VAULT_HOSTS, &v, e))?
            }
            None => HostPolicy::default(),
        };
        let vault = match one(ENV_VAULT) {
            Some(v) => Some(VaultUrl::parse_spec(&v).map_err(|e| vault_error(ENV_VAULT, &v, e))?),
            None => None,
        };
        Ok(PodSettings {
            vault,
            client_id: parse(ENV_CLIENT_ID, one(ENV_CLIENT_ID), settings::parse_guid)?,
            tenant_id: parse(ENV_TENANT_ID, one(ENV_TENANT_ID), settings::parse_tenant)?,
            ignore_missing: parse(
                ENV_IGNORE_MISSING,
                one(ENV_IGNORE_MISSING),
                settings::parse_bool,
            )?,
            timeout: parse(ENV_TIMEOUT, one(ENV_TIMEOUT), settings::parse_timeout)?,
            allow_vault_hosts,
            refresh: parse(ENV_REFRESH, one(ENV_REFRESH), refresh::parse_refresh_env)?,
            grace: parse(ENV_GRACE, one(ENV_GRACE), refresh::parse_grace)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(pairs: &[(&str, &str)]) -> Result<PodSettings, PodSettingsError> {
        PodSettings::from_pairs(pairs)
    }

    fn round_trip(settings: &PodSettings) -> PodSettings {
        PodSettings::from_pairs(&settings.to_env()).expect("what to_env writes, from_env reads")
    }

    #[test]
    fn the_allowlist_is_always_written() {
        let env = PodSettings::default().to_env();
        assert_eq!(env, [(ENV_ALLOW_VAULT_HOSTS, String::new())]);
        assert_eq!(round_trip(&PodSettings::default()), PodSettings::default());
    }

    #[test]
    fn every_setting_is_written_in_order() {
        let settings = PodSettings {
            vault: VaultUrl::parse_spec("shop-kv").ok(),
            client_id: Some("00000000-0000-0000-0000-0000000000aa".into()),
            tenant_id: Some("contoso.onmicrosoft.com".into()),
            ignore_missing: Some(false),
            timeout: Some(Duration::from_secs(90)),
            allow_vault_hosts: HostPolicy::from_list("kv.internal.example,.example.com")
                .expect("valid"),
            refresh: Some(Duration::from_secs(600)),
            grace: Some(Duration::from_secs(28)),
        };
        let names: Vec<&str> = settings.to_env().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                ENV_VAULT,
                ENV_CLIENT_ID,
                ENV_TENANT_ID,
                ENV_IGNORE_MISSING,
                ENV_TIMEOUT,
                ENV_REFRESH,
                ENV_GRACE,
                ENV_ALLOW_VAULT_HOSTS
            ]
        );
        assert_eq!(round_trip(&settings), settings);
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(ENV_TIMEOUT, "soon")], "AKV_INJECTOR_TIMEOUT=\"soon\": 'soon' is not a duration"),
            (&[(ENV_TENANT_ID, "contoso")], "AKV_INJECTOR_TENANT_ID=\"contoso\": 'contoso' is not a tenant"),
            (&[(ENV_REFRESH, "0s")], "AKV_INJECTOR_REFRESH=\"0s\": '0s' is out of range: write a duration between 1s and 24h"),
            (&[(ENV_GRACE, "2d")], "AKV_INJECTOR_GRACE=\"2d\": '2d' is not a duration"),
            (&[(ENV_CLIENT_ID, "me")], "AKV_INJECTOR_CLIENT_ID=\"me\": 'me' is not a GUID"),
            (&[(ENV_VAULT, "http://kv.vault.azure.net")], "AKV_INJECTOR_VAULT=\"http://kv.vault.azure.net\": 'http://kv.vault.azure.net' uses http"),
            (
                &[(ENV_ALLOW_VAULT_HOSTS, ""), (ENV_ALLOW_VAULT_HOSTS, "evil.example")],
                "AKV_INJECTOR_ALLOW_VAULT_HOSTS is set more than once in the environment",
            ),
        ];
        for (pairs, want) in cases {
            let err = read(pairs).expect_err(want).to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn domain_tenants_are_accepted_on_both_sides() {
        let s = read(&[(ENV_TENANT_ID, "Contoso.OnMicrosoft.com")]).expect("a domain tenant");
        assert_eq!(s.tenant_id.as_deref(), Some("contoso.onmicrosoft.com"));
    }

    fn vault_spec() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9]{2,10}",
            "[a-z][a-z0-9]{2,10}\\.vault\\.azure\\.(net|cn)",
            "https://[a-z][a-z0-9]{2,10}\\.vault\\.azure\\.net(:[1-9][0-9]{0,3})?",
        ]
    }

    fn tenant() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "[a-zA-Z0-9][a-zA-Z0-9-]{0,10}(\\.[a-zA-Z0-9][a-zA-Z0-9-]{0,10}){1,3}",
        ]
    }

    proptest! {
        /// Every setting that parses is written in a form that reads back to the same value.
        #[test]
        fn settings_round_trip(
            vault in proptest::option::of(vault_spec()),
            client in proptest::option::of("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
            tenant in proptest::option::of(tenant()),
            ignore in proptest::option::of(any::<bool>()),
            timeout_ms in proptest::option::of(1_000u64..=3_600_000),
            hosts in proptest::collection::vec("\\.?[a-z][a-z0-9]{0,8}\\.example", 0..3),
        ) {
            let settings = PodSettings {
                vault: vault.and_then(|v| VaultUrl::parse_spec(&v).ok()),
                client_id: client.map(|c| settings::parse_guid(&c).expect("generated GUID")),
                tenant_id: tenant.and_then(|t| settings::parse_tenant(&t).ok()),
                ignore_missing: ignore,
                timeout: timeout_ms.map(Duration::from_millis),
                allow_vault_hosts: HostPolicy::new(&hosts).expect("generated hosts"),
                refresh: None,
                grace: None,
            };
            prop_assert_eq!(round_trip(&settings), settings);
        }
    }
}
