//! akv-env's one HTTP client, shared by the token exchange and every vault: reqwest set up
//! as the Azure SDK sets up its own (20 s connect, 60 s read, no redirects, HTTP/2 by
//! ALPN, platform roots), with every response body capped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::CONTENT_LENGTH;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport};
use futures::StreamExt;

/// The largest response body akv-env reads, from Key Vault or from Entra ID. A Key Vault
/// secret is at most 25 KiB (a certificate's PKCS#12 with its chain is stored as one);
/// a token response is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

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

/// An answer longer than [`MAX_BODY`]; found in an error's source chain by `classify`.
#[derive(Debug, thiserror::Error)]
#[error("the answer from {host} is larger than {} KiB, which no Key Vault or Entra ID answer is (a secret is at most 25 KiB); akv-env stopped reading it", .limit / 1024)]
pub struct BodyTooLarge {
    pub host: String,
    pub limit: usize,
}

/// A reqwest client that cuts every response body at `limit` bytes (after decompression).
#[derive(Debug)]
pub struct CappedHttp {
    client: reqwest::Client,
    limit: usize,
}

impl CappedHttp {
    pub fn new(setup: &HttpSetup, limit: usize) -> Result<Self, String> {
        // reqwest's `rustls-no-provider` takes the process-wide provider: `ring` (see
        // Cargo.toml for why not aws-lc-rs). An `Err` means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::ClientBuilder::new()
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        for (host, addr) in &setup.resolve {
            builder = builder.resolve(host, *addr);
        }
        for pem in &setup.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("bad extra root certificate: {e}"))?;
            builder = builder.tls_certs_merge(certs);
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

fn too_large(host: &str, limit: usize) -> Error {
    Error::new(
        ErrorKind::Other,
        BodyTooLarge {
            host: host.to_string(),
            limit,
        },
    )
}

#[async_trait::async_trait]
impl HttpClient for CappedHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let host = request.url().host_str().unwrap_or_default().to_string();
        let limit = self.limit;
        let (status, headers, body) = self.client.execute_request(request).await?.deconstruct();
        let declared = headers
            .get_optional_str(&CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large(&host, limit));
        }
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
}
