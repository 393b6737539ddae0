//! akv-env's HTTP set-up, shared by the token exchange and every vault: one TLS
//! configuration (rustls with `ring`, the platform's roots and the test set-up's extra
//! ones, ALPN h2 then http/1.1), the SDK's timeouts (20 s to connect, 60 s per read), and
//! every response body capped. [`CappedHttp`] is reqwest over it, set up as the Azure SDK
//! sets up its own (no redirects); the vaults' own HTTP/2 connections are in
//! [`super::vault_http`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{Headers, CONTENT_LENGTH};
use azure_core::http::{AsyncRawResponse, HttpClient, Request, StatusCode, Transport};
use azure_core::Bytes;
use futures::{Stream, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The largest response body akv-env reads, from Key Vault or from Entra ID. A Key Vault
/// secret is at most 25 KiB (a certificate's PKCS#12 with its chain is stored as one);
/// a token response is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// As the SDK's own reqwest client: the time to open a connection (TCP and TLS), and the
/// longest wait for any read of an answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How akv-env's HTTP client is built. The binary always uses the default; only a program
/// that links akv-env's library (its integration tests) can set the fields, and no
/// environment variable reaches them.
#[derive(Debug, Clone, Default)]
pub struct HttpSetup {
    /// DNS overrides (host → address), e.g. a real vault name resolved to a loopback
    /// test server. Ports in the URL win over the port given here.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Extra trusted root certificates (PEM bundles), on top of the platform's.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl HttpSetup {
    /// The address `host` is overridden to, if any, with the port of the URL when it
    /// names one (`explicit_port`), else the override's own (as reqwest's `resolve`).
    pub fn resolved(&self, host: &str, explicit_port: Option<u16>) -> Option<SocketAddr> {
        let (_, addr) = self
            .resolve
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))?;
        let mut addr = *addr;
        if let Some(port) = explicit_port {
            addr.set_port(port);
        } else if addr.port() == 0 {
            addr.set_port(443);
        }
        Some(addr)
    }
}

/// The one TLS configuration: built once, so the platform's roots are read once per start
/// (rustls-platform-verifier loads them when the verifier is made).
pub fn tls_config(setup: &HttpSetup) -> Result<Arc<rustls::ClientConfig>, String> {
    // `ring`, not aws-lc-rs: see Cargo.toml. Also the process-wide default, for any reqwest
    // client built without this configuration (`rustls-no-provider` takes that one); an
    // `Err` means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut extra = Vec::new();
    for pem in &setup.extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            extra.push(cert.map_err(|e| format!("bad extra root certificate: {e}"))?);
        }
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| format!("cannot load the trusted root certificates: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An answer longer than [`MAX_BODY`]; found in an error's source chain by `classify`.
#[derive(Debug, thiserror::Error)]
#[error("the answer from {host} is larger than {} KiB, which no Key Vault or Entra ID answer is (a secret is at most 25 KiB); akv-env stopped reading it", .limit / 1024)]
pub struct BodyTooLarge {
    pub host: String,
    pub limit: usize,
}

fn too_large(host: &str, limit: usize) -> Error {
    Error::new(
        ErrorKind::Other,
        BodyTooLarge {
            host: host.to_string(),
            limit,
        },
    )
}

/// The SDK's response with its body cut at `limit` bytes: refused at once when the
/// declared length is over, else failed by the chunk that passes it.
pub fn capped(
    host: &str,
    limit: usize,
    status: StatusCode,
    headers: Headers,
    body: impl Stream<Item = azure_core::Result<Bytes>> + Send + 'static,
) -> azure_core::Result<AsyncRawResponse> {
    let declared = headers
        .get_optional_str(&CONTENT_LENGTH)
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(host, limit));
    }
    let host = host.to_string();
    let mut seen = 0usize;
    let body = body.map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            Err(too_large(&host, limit))
        } else {
            Ok(chunk)
        }
    });
    Ok(AsyncRawResponse::new(status, headers, Box::pin(body)))
}

/// A reqwest client that cuts every response body at `limit` bytes: the token exchange,
/// and any vault that does not speak HTTP/2.
#[derive(Debug)]
pub struct CappedHttp {
    client: reqwest::Client,
    limit: usize,
}

impl CappedHttp {
    pub fn new(
        setup: &HttpSetup,
        tls: &rustls::ClientConfig,
        limit: usize,
    ) -> Result<Self, String> {
        let mut builder = reqwest::ClientBuilder::new()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // The same TLS configuration (and verifier) as the vaults' connections.
            .tls_backend_preconfigured(tls.clone());
        for (host, addr) in &setup.resolve {
            builder = builder.resolve(host, *addr);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(CappedHttp { client, limit })
    }

    /// The SDK transport over this client.
    pub fn transport(self) -> Transport {
        Transport::new(Arc::new(self))
    }
}

#[async_trait::async_trait]
impl HttpClient for CappedHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let host = request.url().host_str().unwrap_or_default().to_string();
        let (status, headers, body) = self.client.execute_request(request).await?.deconstruct();
        capped(&host, self.limit, status, headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_overrides_keep_the_url_port() {
        let setup = HttpSetup {
            resolve: vec![
                (
                    "kv.vault.azure.net".into(),
                    "127.0.0.1:8443".parse().expect("addr"),
                ),
                (
                    "zero.vault.azure.net".into(),
                    "127.0.0.2:0".parse().expect("addr"),
                ),
            ],
            extra_roots_pem: vec![],
        };
        let cases = [
            ("kv.vault.azure.net", None, Some("127.0.0.1:8443")),
            ("KV.Vault.Azure.Net", Some(9443), Some("127.0.0.1:9443")),
            ("zero.vault.azure.net", None, Some("127.0.0.2:443")),
            ("other.vault.azure.net", None, None),
        ];
        for (host, port, want) in cases {
            let want = want.map(|a| a.parse::<SocketAddr>().expect("addr"));
            assert_eq!(setup.resolved(host, port), want, "{host} {port:?}");
        }
    }
}
