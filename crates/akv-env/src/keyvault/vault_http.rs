//! One vault's HTTP/2 connection, opened by akv-env itself ([`super::dial`]: TCP, the
//! proxy's tunnel if any, rustls; then hyper's HTTP/2 handshake) and shared by every
//! request to that vault, as the SDK's [`HttpClient`].
//!
//! Why not a pool here: a pool opens a new connection for each request that waits while
//! the first connection's TLS handshake has not yet said (by ALPN) that HTTP/2 is spoken,
//! so N concurrent first requests meant N connections, unless the first went alone and
//! the others waited one round trip for its answer. Here the connection is opened once,
//! during the token exchange ([`VaultHttp::connect`]), and every request is a new stream
//! on it. Why at the `HttpClient` seam: what comes back is the SDK's own
//! [`AsyncRawResponse`], so `check_success`, the SDK's error shapes and our `classify`
//! (status, `Retry-After`, transport errors retried) read it as they read any answer;
//! transport failures are the SDK's `Connection` (not sent) and `Io` kinds.
//!
//! A vault that answers ALPN with anything but `h2` is left to the shared pooling client
//! ([`super::http::CappedHttp`]), which keeps HTTP/1.1 connections. A closed connection
//! (GOAWAY, reset, idle) is opened again by the next request, once, however many wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use akv_core::error_chain;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Url};
use azure_core::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::timeout;

use super::dial::{unbracketed, Dialer};
use super::http::{from_hyper, read_timeout, to_hyper, READ_TIMEOUT};

/// How requests reach the vault.
#[derive(Clone)]
enum Link {
    /// A stream each on the vault's one HTTP/2 connection.
    H2(SendRequest<Full<Bytes>>),
    /// The vault did not choose HTTP/2: the shared pooling client.
    Fallback,
}

/// One vault's connection, opened when first needed (see the module's text).
pub struct VaultHttp {
    host: String,
    port: u16,
    /// The port the vault URL names, if any (the test set-up's overrides keep their own
    /// otherwise).
    explicit_port: Option<u16>,
    dialer: Arc<Dialer>,
    fallback: Arc<dyn HttpClient>,
    limit: usize,
    link: tokio::sync::Mutex<LinkState>,
    /// How many times a connection was tried (also in [`LinkState`], readable unlocked).
    attempts: AtomicU64,
}

#[derive(Default)]
struct LinkState {
    link: Option<Link>,
    attempts: u64,
    /// How the last attempt failed: given to every request that waited for that attempt,
    /// so a dead vault costs one connection attempt per round of retries, not one per
    /// waiting request, one after the other.
    failed: Option<(ErrorKind, String)>,
}

impl std::fmt::Debug for VaultHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultHttp({}:{})", self.host, self.port)
    }
}

impl VaultHttp {
    /// For the vault at `url` (`https://HOST[:PORT]`). No network traffic yet.
    pub fn new(
        url: &Url,
        dialer: Arc<Dialer>,
        fallback: Arc<dyn HttpClient>,
        limit: usize,
    ) -> Self {
        let (host, port) = origin(url);
        VaultHttp {
            port,
            host,
            explicit_port: url.port(),
            dialer,
            fallback,
            limit,
            link: tokio::sync::Mutex::new(LinkState::default()),
            attempts: AtomicU64::new(0),
        }
    }

    /// Opens the vault's connection unless one is open; concurrent callers wait for the
    /// one being opened instead of opening their own. A failure is not kept: the next
    /// call tries again.
    pub async fn connect(&self) -> azure_core::Result<()> {
        self.link().await.map(drop)
    }

    async fn link(&self) -> azure_core::Result<Link> {
        let seen = self.attempts.load(Ordering::SeqCst);
        let mut state = self.link.lock().await;
        match &state.link {
            Some(Link::H2(send)) if !send.is_closed() => return Ok(Link::H2(send.clone())),
            Some(Link::Fallback) => return Ok(Link::Fallback),
            _ => {}
        }
        if state.attempts != seen {
            if let Some((kind, message)) = &state.failed {
                return Err(Error::with_message(kind.clone(), message.clone()));
            }
        }
        // Boxed: every request's future holds `link`'s, and opening a connection (TLS
        // state, the HTTP/2 handshake) is several KiB inline; 200 concurrent fetches
        // carried it 200 times (peak heap, measured with massif) though only one opens.
        let opened = Box::pin(self.open()).await;
        state.attempts += 1;
        self.attempts.store(state.attempts, Ordering::SeqCst);
        match opened {
            Ok(link) => {
                state.link = Some(link.clone());
                state.failed = None;
                Ok(link)
            }
            Err(e) => {
                state.link = None;
                state.failed = Some((e.kind().clone(), error_chain(&e)));
                Err(e)
            }
        }
    }

    /// The connection ([`Dialer::dial`], within its connect timeout), then HTTP/2 if the
    /// server chose it.
    async fn open(&self) -> azure_core::Result<Link> {
        let dialled = self
            .dialer
            .dial(&self.host, self.explicit_port, true)
            .await?;
        let Some(tls) = dialled.into_h2() else {
            return Ok(Link::Fallback);
        };
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| {
                Error::with_error(
                    ErrorKind::Connection,
                    e,
                    format!("HTTP/2 handshake failed with {}:{}", self.host, self.port),
                )
            })?;
        // Drives the connection until it closes; its end shows in `is_closed` and in the
        // requests that were on it.
        tokio::spawn(connection);
        Ok(Link::H2(send))
    }

    fn same_origin(&self, url: &Url) -> bool {
        origin(url) == (self.host.clone(), self.port)
    }
}

#[async_trait::async_trait]
impl HttpClient for VaultHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        if !self.same_origin(request.url()) {
            return self.fallback.execute_request(request).await;
        }
        let mut send = match self.link().await? {
            Link::H2(send) => send,
            Link::Fallback => return self.fallback.execute_request(request).await,
        };
        let request = to_hyper(request)?;
        let answer = timeout(READ_TIMEOUT, async {
            send.ready().await?;
            send.send_request(request).await
        })
        .await
        .map_err(|_| self.read_timeout())?
        .map_err(|e: hyper::Error| {
            Error::with_error(
                ErrorKind::Io,
                e,
                format!("no answer from {}:{}", self.host, self.port),
            )
        })?;
        from_hyper(&self.host, self.limit, answer)
    }
}

/// The URL's host as DNS, TLS and the resolver overrides name it (an IPv6 address
/// without its brackets), and its port (443 unless given).
fn origin(url: &Url) -> (String, u16) {
    let host = unbracketed(url.host_str().unwrap_or_default());
    (host.to_string(), url.port_or_known_default().unwrap_or(443))
}

impl VaultHttp {
    fn read_timeout(&self) -> Error {
        read_timeout(&self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let cases = [
            ("https://kv.vault.azure.net", "kv.vault.azure.net", 443),
            (
                "https://kv.vault.azure.net/secrets/x/?api-version=1",
                "kv.vault.azure.net",
                443,
            ),
            (
                "https://kv.vault.azure.net:443/secrets/x",
                "kv.vault.azure.net",
                443,
            ),
            ("https://127.0.0.1:8443", "127.0.0.1", 8443),
            ("https://[::1]:8443/keys/k", "::1", 8443),
        ];
        for (url, host, port) in cases {
            let url = Url::parse(url).expect("url");
            assert_eq!(origin(&url), (host.to_string(), port), "{url}");
        }
    }
}
