//! One vault's HTTP/2 connection, opened by akv-env itself (TCP, rustls, hyper's HTTP/2
//! handshake) and shared by every request to that vault, as the SDK's [`HttpClient`].
//!
//! Why not reqwest here: its pool opens a new connection for each request that waits
//! while the first connection's TLS handshake has not yet said (by ALPN) that HTTP/2 is
//! spoken, so N concurrent first requests meant N connections, unless the first went
//! alone and the others waited one round trip for its answer. Here the connection is
//! opened once, during the token exchange ([`VaultHttp::connect`]), and every request is
//! a new stream on it. Why at the `HttpClient` seam: what comes back is the SDK's own
//! [`AsyncRawResponse`], so `check_success`, the SDK's error shapes and our `classify`
//! (status, `Retry-After`, transport errors retried) read it exactly as they read
//! reqwest's; transport failures are the SDK's `Connection` (not sent) and `Io` kinds.
//!
//! A vault that answers ALPN with anything but `h2` (a proxy speaking HTTP/1.1) is left to
//! the shared reqwest client ([`super::http::CappedHttp`]), which pools HTTP/1.1
//! connections. A closed connection (GOAWAY, reset, idle) is opened again by the next
//! request, once, however many wait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use akv_core::error_chain;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::response::PinnedStream;
use azure_core::http::{AsyncRawResponse, Body, HttpClient, Request, Url};
use azure_core::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::http::{capped, HttpSetup, CONNECT_TIMEOUT, READ_TIMEOUT};

/// How requests reach the vault.
#[derive(Clone)]
enum Link {
    /// A stream each on the vault's one HTTP/2 connection.
    H2(SendRequest<Full<Bytes>>),
    /// The vault did not choose HTTP/2: the shared reqwest client.
    Fallback,
}

/// One vault's connection, opened when first needed (see the module's text).
pub struct VaultHttp {
    host: String,
    port: u16,
    /// Where the test set-up resolves the host; `None`: the system resolver.
    addr: Option<SocketAddr>,
    tls: Arc<rustls::ClientConfig>,
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
        setup: &HttpSetup,
        tls: Arc<rustls::ClientConfig>,
        fallback: Arc<dyn HttpClient>,
        limit: usize,
    ) -> Self {
        let (host, port) = origin(url);
        VaultHttp {
            addr: setup.resolved(&host, url.port()),
            port,
            host,
            tls,
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
        let opened = timeout(CONNECT_TIMEOUT, Box::pin(self.open()))
            .await
            .unwrap_or_else(|_| {
                Err(Error::with_message(
                    ErrorKind::Connection,
                    format!(
                        "no connection to {}:{} within {} s",
                        self.host,
                        self.port,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            });
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

    /// TCP to the first address that answers, TLS, then HTTP/2 if the server chose it.
    async fn open(&self) -> azure_core::Result<Link> {
        let addrs: Vec<SocketAddr> = match self.addr {
            Some(addr) => vec![addr],
            None => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| self.connection(e, "cannot resolve"))?
                .collect(),
        };
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            self.connection(
                last.unwrap_or_else(|| std::io::Error::other("no address")),
                "cannot connect to",
            )
        })?;
        // Requests are small and sent at once: no Nagle delay (as reqwest sets it).
        tcp.set_nodelay(true)
            .map_err(|e| self.connection(e, "cannot set up the connection to"))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| self.connection(e, "not a TLS server name:"))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| self.connection(e, "TLS handshake failed with"))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Ok(Link::Fallback);
        }
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.connection(e, "HTTP/2 handshake failed with"))?;
        // Drives the connection until it closes; its end shows in `is_closed` and in the
        // requests that were on it.
        tokio::spawn(connection);
        Ok(Link::H2(send))
    }

    fn connection(
        &self,
        error: impl std::error::Error + Send + Sync + 'static,
        what: &str,
    ) -> Error {
        Error::with_error(
            ErrorKind::Connection,
            error,
            format!("{what} {}:{}", self.host, self.port),
        )
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
        let (parts, body) = answer.into_parts();
        let headers = to_headers(&parts.headers);
        capped(
            &self.host,
            self.limit,
            parts.status.as_u16().into(),
            headers,
            body_stream(body, self.host.clone()),
        )
    }
}

/// The URL's host as DNS, TLS and the resolver overrides name it (an IPv6 address
/// without its brackets), and its port (443 unless given).
fn origin(url: &Url) -> (String, u16) {
    let host = url.host_str().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host.to_string(), url.port_or_known_default().unwrap_or(443))
}

impl VaultHttp {
    fn read_timeout(&self) -> Error {
        read_timeout(&self.host)
    }
}

fn read_timeout(host: &str) -> Error {
    Error::with_message(
        ErrorKind::Io,
        format!(
            "{host} sent nothing for {} s while akv-env waited for its answer",
            READ_TIMEOUT.as_secs()
        ),
    )
}

/// The SDK's request as hyper's: the absolute URL (HTTP/2's `:scheme` and `:authority`),
/// the method, the headers and a body of bytes (akv-env streams no request bodies).
fn to_hyper(request: &Request) -> azure_core::Result<http::Request<Full<Bytes>>> {
    let unusable = |why: String| Error::with_message(ErrorKind::Other, why);
    let body = match request.body() {
        Body::Bytes(bytes) => bytes.clone(),
        _ => return Err(unusable("akv-env sends no streamed request bodies".into())),
    };
    let method = http::Method::from_bytes(request.method().as_ref().as_bytes())
        .map_err(|e| unusable(format!("unusable request method: {e}")))?;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(request.url().as_str());
    for (name, value) in request.headers().iter() {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(body))
        .map_err(|e| unusable(format!("unusable request: {e}")))
}

fn to_headers(map: &http::HeaderMap) -> Headers {
    map.iter()
        .filter_map(|(k, v)| {
            let value = v.to_str().ok()?;
            Some((
                HeaderName::from(k.as_str().to_owned()),
                HeaderValue::from(value.to_owned()),
            ))
        })
        .collect::<HashMap<_, _>>()
        .into()
}

/// The answer's body as the SDK's stream of chunks, each read within [`READ_TIMEOUT`];
/// it ends at the first error.
fn body_stream(body: hyper::body::Incoming, host: String) -> PinnedStream {
    Box::pin(futures::stream::unfold(Some(body), move |state| {
        let host = host.clone();
        async move {
            let mut body = state?;
            loop {
                let frame = match timeout(READ_TIMEOUT, body.frame()).await {
                    Err(_) => return Some((Err(read_timeout(&host)), None)),
                    Ok(None) => return None,
                    Ok(Some(frame)) => frame,
                };
                match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => return Some((Ok(data), Some(body))),
                        Err(_trailers) => continue,
                    },
                    Err(e) => {
                        let e = Error::with_error(
                            ErrorKind::Io,
                            e,
                            format!("the answer from {host} was cut off"),
                        );
                        return Some((Err(e), None));
                    }
                }
            }
        }
    }))
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
