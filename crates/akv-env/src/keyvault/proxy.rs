//! Whether an origin is reached through an HTTP proxy from the container's environment
//! (`HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`/`all_proxy`, `NO_PROXY`/`no_proxy`, read as
//! curl reads them: hyper-util's [`Matcher`]). Clusters with an egress proxy (AKS's HTTP
//! proxy feature sets these variables in every pod) reach Entra ID and Key Vault only
//! through it: [`super::dial`] then opens a CONNECT tunnel through the proxy, and TLS and
//! HTTP/2 run inside it as on a direct connection.

use http::{HeaderValue, Uri};
pub use hyper_util::client::proxy::matcher::Matcher;

use super::dial::bracketed;

/// The proxy settings of akv-env's own environment.
pub fn from_env() -> Matcher {
    Matcher::from_env()
}

/// The proxy (its URL, and its `Proxy-Authorization` from the URL's user and password)
/// for `https://HOST:PORT` under `matcher`, or `None` for a direct connection.
pub fn intercept(matcher: &Matcher, host: &str, port: u16) -> Option<(Uri, Option<HeaderValue>)> {
    let uri = format!("https://{}:{port}", bracketed(host))
        .parse::<Uri>()
        .ok()?;
    let found = matcher.intercept(&uri)?;
    Some((found.uri().clone(), found.basic_auth().cloned()))
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
            let url = azure_core::http::Url::parse(vault).expect("url");
            let host = url.host_str().expect("host");
            let port = url.port_or_known_default().expect("port");
            assert_eq!(
                intercept(&matcher(https, all, no), host, port).is_some(),
                want,
                "HTTPS_PROXY={https} ALL_PROXY={all} NO_PROXY={no} {vault}"
            );
        }
    }

    #[test]
    fn the_proxy_urls_user_and_password_become_its_authorization() {
        use base64::Engine as _;
        let with_user = Matcher::builder()
            .https("http://team:s3cret@proxy.corp:3128")
            .build();
        let (uri, auth) = intercept(&with_user, "kv.vault.azure.net", 443).expect("proxied");
        assert_eq!(uri.host(), Some("proxy.corp"));
        assert_eq!(uri.port_u16(), Some(3128));
        let auth = auth
            .expect("an authorization")
            .to_str()
            .expect("ascii")
            .to_string();
        let encoded = auth.strip_prefix("Basic ").expect("basic");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        assert_eq!(decoded, b"team:s3cret");

        let without = Matcher::builder().https("http://proxy.corp:3128").build();
        let (_, auth) = intercept(&without, "kv.vault.azure.net", 443).expect("proxied");
        assert!(auth.is_none());
    }
}
