//! Where a vault lives, and which vault hosts `akv-env` may send a token to.

use std::fmt;

use thiserror::Error;

use crate::reference::{check_host, VaultRef};

/// DNS suffixes of Azure Key Vault and Managed HSM in the public and sovereign clouds.
pub const KEY_VAULT_SUFFIXES: [&str; 5] = [
    "vault.azure.net",
    "vault.azure.cn",
    "vault.usgovcloudapi.net",
    "vault.microsoftazure.de",
    "managedhsm.azure.net",
];

/// The suffix a bare vault name gets (`my-vault` → `my-vault.vault.azure.net`).
pub const DEFAULT_SUFFIX: &str = "vault.azure.net";

/// A vault's address: always https, a host and an optional port, no path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultUrl {
    /// `host` or `host:port`, lower case.
    authority: String,
}

/// Why a vault setting is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VaultError {
    #[error("'{0}' is not a vault: use a vault name (my-vault), a DNS name (my-vault.vault.azure.cn) or an https:// URL")]
    BadSpec(String),
    #[error("'{0}' uses http: Key Vault is only reached over https")]
    NotHttps(String),
    #[error("'{0}' has a path, query or credentials: give only https://HOST[:PORT]")]
    ExtraUrlParts(String),
    #[error("vault host '{host}' is not a Key Vault host ({suffixes}) and the webhook operator did not allow it with --allow-vault-host; the pod's Key Vault token is never sent to other hosts")]
    HostNotAllowed { host: String, suffixes: String },
    #[error("'{0}' is not an allowed vault host: give a DNS name such as kv.example.com, or .example.com for every host under it")]
    BadAllowEntry(String),
}

impl VaultUrl {
    /// Parses the `akv-injector.io/vault` annotation: a vault name, a DNS name, or an
    /// `https://HOST[:PORT]` URL (a trailing `/` is allowed).
    pub fn parse_spec(spec: &str) -> Result<Self, VaultError> {
        let spec = spec.trim();
        if let Some(rest) = strip_prefix_ignore_case(spec, "https://") {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if authority.contains(['/', '?', '#', '@']) {
                return Err(VaultError::ExtraUrlParts(spec.to_string()));
            }
            check_host(authority).map_err(|_| VaultError::BadSpec(spec.to_string()))?;
            return Ok(VaultUrl {
                authority: authority.to_ascii_lowercase(),
            });
        }
        if strip_prefix_ignore_case(spec, "http://").is_some() {
            return Err(VaultError::NotHttps(spec.to_string()));
        }
        VaultRef::parse(spec)
            .map(|v| VaultUrl::from_ref(&v))
            .map_err(|_| VaultError::BadSpec(spec.to_string()))
    }

    /// The address of a vault named inside a reference.
    pub fn from_ref(vault: &VaultRef) -> Self {
        let authority = match vault {
            VaultRef::Name(name) => format!("{name}.{DEFAULT_SUFFIX}"),
            VaultRef::Host(host) => host.clone(),
        };
        VaultUrl { authority }
    }

    /// The host name, without port.
    pub fn host(&self) -> &str {
        match self.authority.rsplit_once(':') {
            Some((host, _)) => host,
            None => &self.authority,
        }
    }

    /// `https://host[:port]`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("https://{}", self.authority)
    }
}

impl fmt::Display for VaultUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.authority)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Which vault hosts may receive a Key Vault token: the Key Vault suffixes, plus the
/// hosts the webhook operator allowed (an exact host, or `.example.com` for every host
/// under `example.com`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    extra: Vec<String>,
}

impl HostPolicy {
    /// Builds a policy from the operator's entries, checking each.
    pub fn new<I, S>(entries: I) -> Result<Self, VaultError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut extra = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let host = entry.strip_prefix("*.").or(entry.strip_prefix('.'));
            let bare = host.unwrap_or(entry);
            if bare.contains(':') || check_host(bare).is_err() {
                return Err(VaultError::BadAllowEntry(entry.to_string()));
            }
            let normal = bare.to_ascii_lowercase();
            extra.push(if host.is_some() {
                format!(".{normal}")
            } else {
                normal
            });
        }
        Ok(HostPolicy { extra })
    }

    /// Parses the comma-separated form passed down to akv-env.
    pub fn from_list(list: &str) -> Result<Self, VaultError> {
        HostPolicy::new(list.split(','))
    }

    /// The comma-separated form passed down to akv-env.
    pub fn to_list(&self) -> String {
        self.extra.join(",")
    }

    /// Whether the operator allowed any host beyond the Key Vault suffixes.
    pub fn is_default(&self) -> bool {
        self.extra.is_empty()
    }

    /// Refuses a vault whose host is neither under a Key Vault suffix nor allowed.
    pub fn check(&self, vault: &VaultUrl) -> Result<(), VaultError> {
        let host = vault.host();
        let under = |suffix: &str| {
            host.strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
        };
        let allowed = KEY_VAULT_SUFFIXES.iter().any(|s| under(s))
            || self.extra.iter().any(|e| match e.strip_prefix('.') {
                Some(suffix) => under(suffix),
                None => host == e,
            });
        if allowed {
            Ok(())
        } else {
            Err(VaultError::HostNotAllowed {
                host: host.to_string(),
                suffixes: KEY_VAULT_SUFFIXES.join(", "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_settings() {
        let cases = [
            ("my-vault", "https://my-vault.vault.azure.net"),
            ("My-Vault", "https://my-vault.vault.azure.net"),
            ("my-vault.vault.azure.cn", "https://my-vault.vault.azure.cn"),
            (
                "https://my-vault.vault.azure.net",
                "https://my-vault.vault.azure.net",
            ),
            (
                "https://my-vault.vault.azure.net/",
                "https://my-vault.vault.azure.net",
            ),
            ("HTTPS://KV.vault.azure.net", "https://kv.vault.azure.net"),
            ("https://localhost:8443", "https://localhost:8443"),
            (" kv1 ", "https://kv1.vault.azure.net"),
        ];
        for (spec, url) in cases {
            let v = VaultUrl::parse_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(v.url(), url, "{spec}");
        }
    }

    #[test]
    fn rejects_bad_vault_settings() {
        let cases = [
            ("", "'' is not a vault: use a vault name (my-vault), a DNS name (my-vault.vault.azure.cn) or an https:// URL"),
            ("kv", "'kv' is not a vault: use a vault name (my-vault), a DNS name (my-vault.vault.azure.cn) or an https:// URL"),
            ("my_vault", "'my_vault' is not a vault: use a vault name (my-vault), a DNS name (my-vault.vault.azure.cn) or an https:// URL"),
            ("http://kv.vault.azure.net", "'http://kv.vault.azure.net' uses http: Key Vault is only reached over https"),
            ("https://kv.vault.azure.net/secrets", "'https://kv.vault.azure.net/secrets' has a path, query or credentials: give only https://HOST[:PORT]"),
            ("https://u:p@kv.vault.azure.net", "'https://u:p@kv.vault.azure.net' has a path, query or credentials: give only https://HOST[:PORT]"),
            ("https://", "'https://' is not a vault: use a vault name (my-vault), a DNS name (my-vault.vault.azure.cn) or an https:// URL"),
        ];
        for (spec, want) in cases {
            let err = VaultUrl::parse_spec(spec).expect_err(spec);
            assert_eq!(err.to_string(), want, "{spec:?}");
        }
    }

    #[test]
    fn host_policy() {
        let policy =
            HostPolicy::new(["localhost", ".example.com", "*.corp.internal"]).expect("valid");
        let allowed = [
            "https://kv.vault.azure.net",
            "https://kv.vault.azure.cn",
            "https://kv.vault.usgovcloudapi.net",
            "https://kv.vault.microsoftazure.de",
            "https://hsm.managedhsm.azure.net",
            "https://localhost:8443",
            "https://kv.example.com",
            "https://a.b.corp.internal",
        ];
        for url in allowed {
            let v = VaultUrl::parse_spec(url).expect(url);
            assert!(policy.check(&v).is_ok(), "{url}");
        }
        let refused = [
            "https://vault.azure.net",
            "https://kv.vault.azure.net.evil.com",
            "https://evilvault.azure.net",
            "https://example.com",
            "https://localhost.evil.com",
            "https://127.0.0.1:8443",
        ];
        for url in refused {
            let v = VaultUrl::parse_spec(url).expect(url);
            assert!(policy.check(&v).is_err(), "{url}");
        }
        let default = HostPolicy::default();
        let err = default
            .check(&VaultUrl::parse_spec("https://localhost").expect("valid"))
            .expect_err("localhost is not a Key Vault host");
        assert!(err.to_string().contains("--allow-vault-host"), "{err}");
    }

    #[test]
    fn host_policy_round_trips_and_rejects_bad_entries() {
        let policy = HostPolicy::new(["LocalHost", "*.Example.com"]).expect("valid");
        assert_eq!(policy.to_list(), "localhost,.example.com");
        assert_eq!(HostPolicy::from_list(&policy.to_list()), Ok(policy));
        for bad in ["https://x.com", "host:8443", "a b", "-x.com"] {
            assert!(HostPolicy::new([bad]).is_err(), "{bad}");
        }
    }
}
