//! The pod's `akv-injector.io/*` annotations, checked. A bad value is an error that names
//! the annotation and what is allowed; it is never replaced by a default.

use std::collections::BTreeMap;

use akv_core::settings::{self, SettingError};
use akv_core::{PodSettings, ReferenceError, Template, VaultError, VaultUrl};
use thiserror::Error;

use super::{ANNOTATION_PREFIX, STATUS_ANNOTATION};

const VAULT: &str = "akv-injector.io/vault";
const CONTAINERS: &str = "akv-injector.io/containers";
const CLIENT_ID: &str = "akv-injector.io/client-id";
const TENANT_ID: &str = "akv-injector.io/tenant-id";
const IGNORE_MISSING: &str = "akv-injector.io/ignore-missing";
const TIMEOUT: &str = "akv-injector.io/timeout";
const ENV_PREFIX: &str = "akv-injector.io/env.";
/// `akv-injector.io/file.<FILENAME>` (see `files.rs`).
pub const FILE_PREFIX: &str = "akv-injector.io/file.";
/// `akv-injector.io/files-path`.
pub const FILES_PATH: &str = "akv-injector.io/files-path";

/// What the pod's annotations ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodConfig {
    /// The settings passed down to akv-env (`vault`, `client-id`, `tenant-id`,
    /// `ignore-missing`, `timeout`), in the codec both binaries share. The operator's
    /// allowlist is added when the patch is built.
    pub settings: PodSettings,
    /// `env.<NAME>` annotations: the variable name, its value (a reference), and the
    /// parsed template, ordered by name.
    pub env: Vec<AnnotatedEnv>,
    /// Containers to inject, when the pod lists them.
    pub containers: Option<Vec<String>>,
    /// `akv-injector.io/*` keys this version does not know (likely typos).
    pub unknown: Vec<String>,
    /// `auth`, `client-id.<VAULT>`, `keep-credentials` (see `super::identity`).
    pub identity: super::identity::IdentityConfig,
    /// `file.<FILENAME>` annotations and `files-path` (see `files.rs`).
    pub files: super::files::FilesConfig,
}

/// One `akv-injector.io/env.<NAME>` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedEnv {
    pub name: String,
    pub value: String,
    pub template: Template,
}

/// An annotation whose value is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnnotationError {
    #[error("annotation {key}: {reason}")]
    Setting { key: String, reason: SettingError },
    #[error("annotation {key}: {reason}")]
    Vault { key: String, reason: VaultError },
    #[error("annotation {key}: {reason}")]
    Reference { key: String, reason: ReferenceError },
    #[error("annotation {key}: '{name}' is not a valid environment variable name: use letters, digits and '_', not starting with a digit")]
    EnvName { key: String, name: String },
    #[error(
        "annotation {key}: AKV_INJECTOR_* variables are reserved for the webhook's own settings"
    )]
    ReservedEnvName { key: String },
    #[error("annotation {key}: {reason}")]
    Identity { key: String, reason: String },
    #[error("annotation {key}: {reason}")]
    File {
        key: String,
        reason: akv_core::files::FileError,
    },
    #[error("annotation {CONTAINERS}: '{0}' is not a list of container names: write names separated by commas, e.g. app,worker")]
    Containers(String),
}

impl PodConfig {
    /// Reads every `akv-injector.io/*` annotation. Other annotations are ignored.
    pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Self, AnnotationError> {
        let mut config = PodConfig::default();
        for (key, value) in annotations {
            if !key.starts_with(ANNOTATION_PREFIX) {
                continue;
            }
            let setting = |reason| AnnotationError::Setting {
                key: key.clone(),
                reason,
            };
            match key.as_str() {
                VAULT => {
                    let vault =
                        VaultUrl::parse_spec(value).map_err(|reason| AnnotationError::Vault {
                            key: key.clone(),
                            reason,
                        })?;
                    config.settings.vault = Some(vault);
                }
                CONTAINERS => config.containers = Some(parse_containers(value)?),
                CLIENT_ID => {
                    config.settings.client_id = Some(settings::parse_guid(value).map_err(setting)?)
                }
                TENANT_ID => {
                    config.settings.tenant_id =
                        Some(settings::parse_tenant(value).map_err(setting)?)
                }
                IGNORE_MISSING => {
                    config.settings.ignore_missing =
                        Some(settings::parse_bool(value).map_err(setting)?)
                }
                TIMEOUT => {
                    config.settings.timeout = Some(settings::parse_timeout(value).map_err(setting)?)
                }
                super::refresh::REFRESH => {
                    config.settings.refresh = Some(super::refresh::parse(value)?)
                }
                STATUS_ANNOTATION => {}
                FILES_PATH => config.files.set_path(key, value)?,
                _ => match (key.strip_prefix(ENV_PREFIX), key.strip_prefix(FILE_PREFIX)) {
                    (Some(name), _) => config.env.push(parse_env(key, name, value)?),
                    (_, Some(name)) => config.files.add(key, name, value)?,
                    _ if config.identity.read(key, value)? => {}
                    _ => config.unknown.push(key.clone()),
                },
            }
        }
        Ok(config)
    }

    /// Whether the pod declares env vars or files through annotations.
    pub fn has_env(&self) -> bool {
        !self.env.is_empty() || !self.files.is_empty()
    }
}

fn parse_env(key: &str, name: &str, value: &str) -> Result<AnnotatedEnv, AnnotationError> {
    if !is_env_name(name) {
        return Err(AnnotationError::EnvName {
            key: key.to_string(),
            name: name.to_string(),
        });
    }
    if name.starts_with(akv_core::settings::ENV_PREFIX) {
        return Err(AnnotationError::ReservedEnvName {
            key: key.to_string(),
        });
    }
    let value = value.trim();
    let value = if value.starts_with(akv_core::reference::PREFIX) || value.contains("${akv:") {
        value.to_string()
    } else {
        format!("{}{value}", akv_core::reference::PREFIX)
    };
    let reference_error = |reason| AnnotationError::Reference {
        key: key.to_string(),
        reason,
    };
    let template = Template::scan(&value)
        .map_err(reference_error)?
        .ok_or_else(|| reference_error(ReferenceError::MissingPrefix))?;
    Ok(AnnotatedEnv {
        name: name.to_string(),
        value,
        template,
    })
}

/// A C identifier: what every shell and runtime accepts as a variable name.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_containers(value: &str) -> Result<Vec<String>, AnnotationError> {
    let mut names: Vec<String> = Vec::new();
    // A set, not a scan of `names`: the work stays linear in the annotation's length.
    let mut seen = std::collections::HashSet::new();
    for name in value.split(',').map(str::trim) {
        if !is_dns_label(name) {
            return Err(AnnotationError::Containers(value.to_string()));
        }
        if seen.insert(name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// An RFC 1123 label, as Kubernetes requires of container names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<PodConfig, String> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PodConfig::parse(&map).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_every_annotation() {
        let config = parse(&[
            ("akv-injector.io/vault", "my-vault"),
            ("akv-injector.io/containers", "app, worker,app"),
            (
                "akv-injector.io/client-id",
                "00000000-0000-0000-0000-0000000000AA",
            ),
            ("akv-injector.io/tenant-id", "contoso.onmicrosoft.com"),
            ("akv-injector.io/ignore-missing", "true"),
            ("akv-injector.io/timeout", "1m30s"),
            ("akv-injector.io/env.DB_PASSWORD", "db-password"),
            ("akv-injector.io/env.API_KEY", "akv://other-vault/api-key"),
            (
                "akv-injector.io/env.DSN",
                "postgres://u:${akv:db-password}@db/app",
            ),
            ("akv-injector.io/status", "injected"),
            ("akv-injector.io/vualt", "typo"),
            ("app.kubernetes.io/name", "web"),
        ])
        .expect("valid annotations");
        assert_eq!(
            config.settings.vault.map(|v| v.url()),
            Some("https://my-vault.vault.azure.net".into())
        );
        assert_eq!(config.containers, Some(vec!["app".into(), "worker".into()]));
        assert_eq!(
            config.settings.client_id.as_deref(),
            Some("00000000-0000-0000-0000-0000000000aa")
        );
        assert_eq!(
            config.settings.tenant_id.as_deref(),
            Some("contoso.onmicrosoft.com")
        );
        assert_eq!(config.settings.ignore_missing, Some(true));
        assert_eq!(
            config.settings.timeout,
            Some(std::time::Duration::from_secs(90))
        );
        let env: Vec<(&str, &str)> = config
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("API_KEY", "akv://other-vault/api-key"),
                ("DB_PASSWORD", "akv:db-password"),
                ("DSN", "postgres://u:${akv:db-password}@db/app"),
            ]
        );
        assert_eq!(config.unknown, ["akv-injector.io/vualt"]);
    }

    #[test]
    fn bad_values_name_the_annotation() {
        let cases: &[(&str, &str, &str)] = &[
            ("akv-injector.io/vault", "kv", "annotation akv-injector.io/vault: 'kv' is not a vault: use a vault name such as my-vault (a vault name has 3 to 24 letters, digits or '-', starts with a letter, ends with a letter or digit, and has no '--'), a DNS name such as my-vault.vault.azure.cn, or an https:// URL"),
            ("akv-injector.io/vault", "http://kv.vault.azure.net", "annotation akv-injector.io/vault: 'http://kv.vault.azure.net' uses http: Key Vault is only reached over https"),
            ("akv-injector.io/containers", "", "annotation akv-injector.io/containers: '' is not a list of container names: write names separated by commas, e.g. app,worker"),
            ("akv-injector.io/containers", "app,,worker", "annotation akv-injector.io/containers: 'app,,worker' is not a list of container names: write names separated by commas, e.g. app,worker"),
            ("akv-injector.io/containers", "App", "annotation akv-injector.io/containers: 'App' is not a list of container names: write names separated by commas, e.g. app,worker"),
            ("akv-injector.io/client-id", "my-app", "annotation akv-injector.io/client-id: 'my-app' is not a GUID such as 00000000-0000-0000-0000-000000000000"),
            ("akv-injector.io/tenant-id", "contoso", "annotation akv-injector.io/tenant-id: 'contoso' is not a tenant: give its GUID or its domain (contoso.onmicrosoft.com)"),
            ("akv-injector.io/ignore-missing", "yes", "annotation akv-injector.io/ignore-missing: 'yes' is not a boolean: write \"true\" or \"false\""),
            ("akv-injector.io/timeout", "30", "annotation akv-injector.io/timeout: '30' is not a duration: write a number and a unit (ms, s, m, h), e.g. 30s, 2m or 1m30s"),
            ("akv-injector.io/timeout", "0s", "annotation akv-injector.io/timeout: '0s' is out of range: the timeout must be between 1s and 1h"),
            ("akv-injector.io/env.1X", "db", "annotation akv-injector.io/env.1X: '1X' is not a valid environment variable name: use letters, digits and '_', not starting with a digit"),
            ("akv-injector.io/env.A-B", "db", "annotation akv-injector.io/env.A-B: 'A-B' is not a valid environment variable name: use letters, digits and '_', not starting with a digit"),
            ("akv-injector.io/env.", "db", "annotation akv-injector.io/env.: '' is not a valid environment variable name: use letters, digits and '_', not starting with a digit"),
            ("akv-injector.io/env.AKV_INJECTOR_VAULT", "db", "annotation akv-injector.io/env.AKV_INJECTOR_VAULT: AKV_INJECTOR_* variables are reserved for the webhook's own settings"),
            ("akv-injector.io/env.DB", "db_password", "annotation akv-injector.io/env.DB: object name 'db_password' contains '_'; Key Vault object names use only letters, digits and '-'"),
            ("akv-injector.io/env.DB", "", "annotation akv-injector.io/env.DB: the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password"),
            ("akv-injector.io/env.DB", "x${akv:db", "annotation akv-injector.io/env.DB: '${akv:' at byte 1 is not closed: write ${akv:NAME}"),
        ];
        for (key, value, want) in cases {
            assert_eq!(
                parse(&[(key, value)]).expect_err(key),
                *want,
                "{key}={value}"
            );
        }
    }

    fn guid() -> impl proptest::strategy::Strategy<Value = String> {
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    }

    proptest::proptest! {
        /// Whatever the webhook admits, akv-env reads back with the same meaning: the
        /// annotations' settings, written with `to_env`, parse to the same settings
        /// through the `from_env` that akv-env calls.
        #[test]
        fn admitted_settings_reach_akv_env_unchanged(
            vault in proptest::option::of(proptest::prop_oneof![
                "[a-z][a-z0-9]{2,20}",
                "[a-z][a-z0-9]{2,10}\\.vault\\.azure\\.(net|cn)",
                "https://[a-z][a-z0-9]{2,10}\\.vault\\.usgovcloudapi\\.net(:[1-9][0-9]{0,3})?/?",
            ]),
            client in proptest::option::of(guid()),
            tenant in proptest::option::of(proptest::prop_oneof![
                guid(),
                "[a-zA-Z0-9]{1,10}(\\.[a-zA-Z0-9][a-zA-Z0-9-]{0,8}[a-zA-Z0-9]){1,3}",
            ]),
            ignore in proptest::option::of("true|false"),
            timeout in proptest::option::of("[1-9][0-9]{0,2}(s|m)|1h|[1-5]m[1-5]0s|[1-9][0-9]{3}ms"),
        ) {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            for (key, value) in [
                (VAULT, vault),
                (CLIENT_ID, client),
                (TENANT_ID, tenant),
                (IGNORE_MISSING, ignore),
                (TIMEOUT, timeout),
            ] {
                if let Some(value) = value {
                    pairs.push((key, value));
                }
            }
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let Ok(config) = parse(&refs) else {
                // Refused at admission: nothing reaches a pod.
                return Ok(());
            };
            let read = PodSettings::from_pairs(&config.settings.to_env());
            proptest::prop_assert_eq!(read, Ok(config.settings));
        }
    }
}
