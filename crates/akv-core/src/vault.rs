//! Where a vault lives, and which vault hosts `akv-env` may send a token to.

use std::fmt;

use thiserror::Error;

use crate::reference::{check_host, check_vault_host, ReferenceError, VaultRef, VAULT_NAME_RULE};

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
    #[error("'{0}' is not a vault: use a vault name such as my-vault ({VAULT_NAME_RULE}), a DNS name such as my-vault.vault.azure.cn, or an https:// URL")]
    BadSpec(String),
    #[error("'{spec}' names vault '{name}', which Azure does not allow: {VAULT_NAME_RULE}")]
    BadName { spec: String, name: String },
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
            check_vault_host(authority).map_err(|e| spec_error(spec, e))?;
            return Ok(VaultUrl {
                authority: authority.to_ascii_lowercase(),
            });
        }
        if strip_prefix_ignore_case(spec, "http://").is_some() {
            return Err(VaultError::NotHttps(spec.to_string()));
        }
        VaultRef::parse(spec)
            .map(|v| VaultUrl::from_ref(&v))
            .map_err(|e| spec_error(spec, e))
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

fn spec_error(spec: &str, error: ReferenceError) -> VaultError {
    match error {
        ReferenceError::BadVaultNameInHost { name, .. } => VaultError::BadName {
            spec: spec.to_string(),
            name,
        },
        _ => VaultError::BadSpec(spec.to_string()),
    }
}

/// The part of `host` before a Key Vault or Managed HSM suffix (`kv1` of
/// `kv1.vault.azure.net`, any case), when the host is under one.
pub(crate) fn name_under_suffix(host: &str) -> Option<&str> {
    KEY_VAULT_SUFFIXES.iter().find_map(|suffix| {
        let cut = host.len().checked_sub(suffix.len() + 1)?;
        let tail = host.get(cut..)?;
        let under = tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(suffix);
        under.then(|| &host[..cut])
    })
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
            ("HTTPS://KV1.vault.azure.net", "https://kv1.vault.azure.net"),
            (
                "https://my-hsm.managedhsm.azure.net",
                "https://my-hsm.managedhsm.azure.net",
            ),
            ("a1b", "https://a1b.vault.azure.net"),
            (
                "abcdefghijklmnopqrstuvwx",
                "https://abcdefghijklmnopqrstuvwx.vault.azure.net",
            ),
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
        let spec = |s: &str| {
            format!("'{s}' is not a vault: use a vault name such as my-vault ({VAULT_NAME_RULE}), a DNS name such as my-vault.vault.azure.cn, or an https:// URL")
        };
        let name = |s: &str, n: &str| {
            format!("'{s}' names vault '{n}', which Azure does not allow: {VAULT_NAME_RULE}")
        };
        let cases = [
            ("", spec("")),
            ("kv", spec("kv")),
            ("my_vault", spec("my_vault")),
            ("akak-", spec("akak-")),
            ("1vault", spec("1vault")),
            ("my--vault", spec("my--vault")),
            ("abcdefghijklmnopqrstuvwxy", spec("abcdefghijklmnopqrstuvwxy")),
            ("akak-.vault.azure.net", name("akak-.vault.azure.net", "akak-")),
            ("https://akak-.vault.azure.net", name("https://akak-.vault.azure.net", "akak-")),
            ("https://kv.vault.azure.net/", name("https://kv.vault.azure.net/", "kv")),
            ("https://a--b.vault.azure.cn", name("https://a--b.vault.azure.cn", "a--b")),
            ("https://hsm-.managedhsm.azure.net", name("https://hsm-.managedhsm.azure.net", "hsm-")),
            ("https://9hsm.MANAGEDHSM.azure.net:443", name("https://9hsm.MANAGEDHSM.azure.net:443", "9hsm")),
            ("a.b1c.vault.azure.net", name("a.b1c.vault.azure.net", "a.b1c")),
            ("http://kv.vault.azure.net", "'http://kv.vault.azure.net' uses http: Key Vault is only reached over https".into()),
            ("https://kv1.vault.azure.net/secrets", "'https://kv1.vault.azure.net/secrets' has a path, query or credentials: give only https://HOST[:PORT]".into()),
            ("https://u:p@kv1.vault.azure.net", "'https://u:p@kv1.vault.azure.net' has a path, query or credentials: give only https://HOST[:PORT]".into()),
            ("https://", spec("https://")),
            ("https://-x.example.com", spec("https://-x.example.com")),
        ];
        for (input, want) in cases {
            let err = VaultUrl::parse_spec(input).expect_err(input);
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    proptest::proptest! {
        /// Every accepted vault spec round-trips through its URL (and through its DNS
        /// form when it has one): no vault is accepted in one form and refused in another.
        #[test]
        fn accepted_specs_round_trip_through_their_url(
            s in "(https://|HTTPS://)?[a-zA-Z0-9_-]{0,26}(\\.(vault\\.azure\\.net|managedhsm\\.azure\\.net|vault\\.azure\\.cn|Vault\\.Azure\\.Net|[a-z0-9-]{1,8})){0,2}(:[0-9]{1,5})?/?"
        ) {
            if let Ok(vault) = VaultUrl::parse_spec(&s) {
                let url = vault.url();
                proptest::prop_assert_eq!(VaultUrl::parse_spec(&url), Ok(vault.clone()), "{} -> {}", s, url);
                let authority = &url["https://".len()..];
                if authority.contains('.') {
                    proptest::prop_assert_eq!(VaultUrl::parse_spec(authority), Ok(vault.clone()), "{} -> {}", s, authority);
                }
                if let Some(name) = name_under_suffix(vault.host()) {
                    proptest::prop_assert!(crate::reference::is_vault_name(name), "{} accepted with name {}", s, name);
                }
            }
        }
    }

    #[test]
    fn names_under_a_suffix() {
        assert_eq!(name_under_suffix("kv1.vault.azure.net"), Some("kv1"));
        assert_eq!(name_under_suffix("KV1.Vault.Azure.NET"), Some("KV1"));
        assert_eq!(name_under_suffix("hsm.managedhsm.azure.net"), Some("hsm"));
        assert_eq!(name_under_suffix("a.b.vault.azure.cn"), Some("a.b"));
        assert_eq!(name_under_suffix(".vault.azure.net"), Some(""));
        for other in [
            "vault.azure.net",
            "kv1.vault.azure.net.evil.com",
            "evilvault.azure.net",
            "kv1.privatelink.vaultcore.azure.net",
            "localhost",
            "",
        ] {
            assert_eq!(name_under_suffix(other), None, "{other}");
        }
    }

    #[test]
    fn host_policy() {
        let policy =
            HostPolicy::new(["localhost", ".example.com", "*.corp.internal"]).expect("valid");
        let allowed = [
            "https://kv1.vault.azure.net",
            "https://kv1.vault.azure.cn",
            "https://kv1.vault.usgovcloudapi.net",
            "https://kv1.vault.microsoftazure.de",
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
            "https://kv1.vault.azure.net.evil.com",
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
