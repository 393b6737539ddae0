//! Whether a vault is reached through an HTTP proxy from the container's environment
//! (`HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`/`all_proxy`, `NO_PROXY`/`no_proxy`, read as
//! curl and reqwest read them: hyper-util's [`Matcher`], the one reqwest uses). Clusters
//! with an egress proxy (AKS's HTTP proxy feature sets these variables in every pod) reach
//! Key Vault only through it: a vault the proxy covers is sent to the shared reqwest
//! client, which tunnels through the proxy (CONNECT), instead of the vault's own direct
//! HTTP/2 connection ([`super::vault_http`]).

use azure_core::http::Url;
pub use hyper_util::client::proxy::matcher::Matcher;

/// The proxy settings of akv-env's own environment.
pub fn from_env() -> Matcher {
    Matcher::from_env()
}

/// True when requests to `url` go through a proxy under `matcher`.
pub fn is_proxied(matcher: &Matcher, url: &Url) -> bool {
    url.as_str()
        .parse::<http::Uri>()
        .is_ok_and(|uri| matcher.intercept(&uri).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_vaults_go_through_the_proxy() {
        let matcher = |https: &str, all: &str, no: &str| {
            Matcher::builder().https(https).all(all).no(no).build()
        };
        let cases = [
            // (HTTPS_PROXY, ALL_PROXY, NO_PROXY, vault, proxied)
            ("", "", "", "https://kv.vault.azure.net", false),
            (
                "http://proxy:3128",
                "",
                "",
                "https://kv.vault.azure.net",
                true,
            ),
            (
                "",
                "http://proxy:3128",
                "",
                "https://kv.vault.azure.net",
                true,
            ),
            (
                "http://proxy:3128",
                "",
                "kv.vault.azure.net",
                "https://kv.vault.azure.net",
                false,
            ),
            (
                "http://proxy:3128",
                "",
                ".vault.azure.net",
                "https://kv.vault.azure.net",
                false,
            ),
            (
                "http://proxy:3128",
                "",
                "vault.azure.net",
                "https://kv.vault.azure.net",
                false,
            ),
            (
                "http://proxy:3128",
                "",
                "*",
                "https://kv.vault.azure.net",
                false,
            ),
            (
                "http://proxy:3128",
                "",
                "other.example.com,localhost",
                "https://kv.vault.azure.net",
                true,
            ),
            (
                "http://proxy:3128",
                "",
                "127.0.0.0/8",
                "https://127.0.0.1:8443",
                false,
            ),
            (
                "http://proxy:3128",
                "",
                "",
                "https://kv.privatelink.vaultcore.azure.net:8443",
                true,
            ),
        ];
        for (https, all, no, vault, want) in cases {
            let url = Url::parse(vault).expect("url");
            assert_eq!(
                is_proxied(&matcher(https, all, no), &url),
                want,
                "HTTPS_PROXY={https} ALL_PROXY={all} NO_PROXY={no} {vault}"
            );
        }
    }
}
