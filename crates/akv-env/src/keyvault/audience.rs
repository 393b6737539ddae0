//! Which token a vault may ask for. Key Vault's 401 challenge names the token audience
//! (`resource="https://vault.azure.net"`); akv-env never takes that on trust: a host under
//! a Key Vault suffix gets its cloud's audience without asking, and an operator-allowed
//! host may name only a Key Vault audience.
//!
//! Audiences per DNS suffix: Azure PowerShell's cloud table (AllEnvironments:
//! `AzureKeyVaultDnsSuffix` → `AzureKeyVaultServiceEndpointResourceId`, e.g. vault.azure.cn
//! → https://vault.azure.cn), go-autorest's `environments.go` (`KeyVaultEndpoint` for US
//! Gov and Germany), and Managed HSM's challenge (`resource="https://managedhsm.azure.net"`).

use std::fmt;

/// (DNS suffix, token audience) of Key Vault and Managed HSM in each cloud; the same
/// suffixes as `akv_core::vault::KEY_VAULT_SUFFIXES`.
pub const KEY_VAULT_AUDIENCES: [(&str, &str); 5] = [
    ("vault.azure.net", "https://vault.azure.net"),
    ("vault.azure.cn", "https://vault.azure.cn"),
    ("vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"),
    ("vault.microsoftazure.de", "https://vault.microsoftazure.de"),
    ("managedhsm.azure.net", "https://managedhsm.azure.net"),
];

/// The audience of a host under a Key Vault suffix (one per cloud); `None` for any other
/// host (operator-allowed), which must say in its challenge which one it wants.
pub fn known_audience(host: &str) -> Option<&'static str> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    KEY_VAULT_AUDIENCES
        .iter()
        .find(|(suffix, _)| {
            host.strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
        })
        .map(|(_, audience)| *audience)
}

/// The audiences a vault host may ask for: the one of its cloud for a Key Vault host; any
/// Key Vault audience for a host the operator allowed (a private DNS name, a proxy).
pub fn audiences_for(host: &str) -> Vec<&'static str> {
    match known_audience(host) {
        Some(audience) => vec![audience],
        None => KEY_VAULT_AUDIENCES.iter().map(|(_, a)| *a).collect(),
    }
}

/// The scope a challenge's resource becomes (`{resource}/.default`).
pub fn scope_of(audience: &str) -> String {
    format!("{audience}/.default")
}

/// A token request for anything but the vault's Key Vault audience.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ChallengeRefused {
    pub host: String,
    /// The resource or scope the challenge named.
    pub asked: String,
    pub allowed: Vec<&'static str>,
}

impl fmt::Display for ChallengeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server at {} challenged for a token for '{}', which is not {} ({}); akv-env asks Entra ID only for Key Vault tokens, so no token was requested",
            self.host,
            self.asked.trim_end_matches("/.default"),
            if self.allowed.len() == 1 {
                "the Key Vault audience of that host"
            } else {
                "a Key Vault audience"
            },
            self.allowed.join(", ")
        )
    }
}

/// Checks the scopes of one token request.
pub fn check_scopes(host: &str, scopes: &[&str]) -> Result<(), ChallengeRefused> {
    let allowed = audiences_for(host);
    match scopes
        .iter()
        .find(|s| !allowed.iter().any(|a| **s == scope_of(a)))
    {
        None if !scopes.is_empty() => Ok(()),
        found => Err(ChallengeRefused {
            host: host.to_string(),
            asked: found.map(|s| s.to_string()).unwrap_or_default(),
            allowed,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_per_host() {
        let all: Vec<&str> = KEY_VAULT_AUDIENCES.iter().map(|(_, a)| *a).collect();
        let cases: &[(&str, Vec<&str>)] = &[
            ("kv1.vault.azure.net", vec!["https://vault.azure.net"]),
            ("KV1.Vault.Azure.Net", vec!["https://vault.azure.net"]),
            ("kv1.vault.azure.cn", vec!["https://vault.azure.cn"]),
            (
                "kv1.vault.usgovcloudapi.net",
                vec!["https://vault.usgovcloudapi.net"],
            ),
            (
                "kv1.vault.microsoftazure.de",
                vec!["https://vault.microsoftazure.de"],
            ),
            (
                "hsm1.managedhsm.azure.net",
                vec!["https://managedhsm.azure.net"],
            ),
            // not under a Key Vault suffix: an operator-allowed host
            ("vault.azure.net", all.clone()),
            ("kv1.vault.azure.net.evil.example", all.clone()),
            ("kv1.myvault.azure.net", all.clone()),
            ("127.0.0.1", all.clone()),
            ("kv.internal.example.com", all.clone()),
        ];
        for (host, want) in cases {
            assert_eq!(&audiences_for(host), want, "{host}");
        }
    }

    #[test]
    fn scopes_checked() {
        let ok: &[(&str, &[&str])] = &[
            ("kv.vault.azure.net", &["https://vault.azure.net/.default"]),
            ("kv.vault.azure.cn", &["https://vault.azure.cn/.default"]),
            (
                "hsm.managedhsm.azure.net",
                &["https://managedhsm.azure.net/.default"],
            ),
            ("127.0.0.1", &["https://vault.azure.net/.default"]),
            (
                "kv.example.com",
                &["https://vault.usgovcloudapi.net/.default"],
            ),
        ];
        for (host, scopes) in ok {
            assert_eq!(check_scopes(host, scopes), Ok(()), "{host} {scopes:?}");
        }
        let refused: &[(&str, &[&str])] = &[
            (
                "kv.vault.azure.net",
                &["https://management.azure.com/.default"],
            ),
            (
                "kv.vault.azure.net",
                &["https://graph.microsoft.com/.default"],
            ),
            // the SDK's own check passes these (the host ends with .azure.net); ours does not
            ("kv.vault.azure.net", &["https://azure.net/.default"]),
            ("kv.vault.azure.net", &["https://vault.azure.cn/.default"]),
            ("kv.vault.azure.net", &["https://vault.azure.net//.default"]),
            ("kv.vault.azure.net", &["https://vault.azure.net"]),
            ("kv.vault.azure.net", &[]),
            ("127.0.0.1", &["https://management.azure.com/.default"]),
            ("127.0.0.1", &["https://graph.microsoft.com/.default"]),
            (
                "127.0.0.1",
                &[
                    "https://vault.azure.net/.default",
                    "https://management.azure.com/.default",
                ],
            ),
        ];
        for (host, scopes) in refused {
            assert!(check_scopes(host, scopes).is_err(), "{host} {scopes:?}");
        }
        assert_eq!(
            check_scopes("127.0.0.1", &["https://management.azure.com/.default"])
                .expect_err("refused")
                .to_string(),
            "the server at 127.0.0.1 challenged for a token for 'https://management.azure.com', which is not a Key Vault audience (https://vault.azure.net, https://vault.azure.cn, https://vault.usgovcloudapi.net, https://vault.microsoftazure.de, https://managedhsm.azure.net); akv-env asks Entra ID only for Key Vault tokens, so no token was requested"
        );
    }
}
