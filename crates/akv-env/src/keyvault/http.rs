//! akv-env's HTTP set-up, shared by the token exchange and every vault: one TLS
//! configuration ([`super::tls`]), the SDK's timeouts (20 s to connect, 60 s per read), and
//! every response body capped. [`CappedHttp`] is hyper-util's pooling client over
//! [`super::dial`], for the token exchange and any vault that does not speak HTTP/2, and
//! follows no redirects (as the SDK's own client); each vault's own HTTP/2 connection is
//! in [`super::vault_http`]. Both turn the SDK's requests into hyper's and hyper's answers
//! into the SDK's with the functions here, so `check_success`, the SDK's error shapes and
//! our `classify` read every answer the same way.
//!
//! Why not reqwest (which the SDK offers): it carried a second HTTP stack (its own
//! connector, TLS glue and pool, with hyper and h2 compiled again for its types) in a
//! binary that every injected pod downloads; with it gone akv-env is about 0.3 MB smaller.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers, CONTENT_LENGTH};
use azure_core::http::response::PinnedStream;
use azure_core::http::{AsyncRawResponse, Body, HttpClient, Request, StatusCode};
use azure_core::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::timeout;

use super::dial::{unbracketed, Dialer, Dialled};

/// The largest response body akv-env reads, from Key Vault or from Entra ID. A Key Vault
/// secret is at most 25 KiB (a certificate's PKCS#12 with its chain is stored as one);
/// a token response is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// As the SDK's own reqwest client: the time to open a connection (TCP and TLS), and the
/// longest wait for any read of an answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the shared client keeps an idle connection (90 s, reqwest's default, which the
/// SDK's own client has).
pub const POOL_IDLE: Duration = Duration::from_secs(90);

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

/// The shared client: hyper-util's pool over [`Dialer`], every body cut at `limit`
/// bytes. For the token exchange, and any vault that does not speak HTTP/2.
pub struct CappedHttp {
    client: Client<Connector, Full<Bytes>>,
    limit: usize,
}

impl std::fmt::Debug for CappedHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CappedHttp")
    }
}

impl CappedHttp {
    pub fn new(dialer: Arc<Dialer>, limit: usize) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // An idle connection is closed after POOL_IDLE (the timer enforces it): the
            // restart-on-change parent asks for a token once per interval and keeps
            // nothing open in between.
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(Connector(dialer));
        CappedHttp { client, limit }
    }
}

#[async_trait::async_trait]
impl HttpClient for CappedHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let host = request.url().host_str().unwrap_or_default().to_string();
        let answer = timeout(READ_TIMEOUT, self.client.request(to_hyper(request)?))
            .await
            .map_err(|_| read_timeout(&host))?
            .map_err(|e| {
                // Not connected: nothing was sent. Else the answer did not come.
                let kind = if e.is_connect() {
                    ErrorKind::Connection
                } else {
                    ErrorKind::Io
                };
                Error::with_error(kind, e, format!("no answer from {host}"))
            })?;
        from_hyper(&host, self.limit, answer)
    }
}

/// hyper-util's connector: [`Dialer::dial`] for the request's origin.
#[derive(Clone)]
struct Connector(Arc<Dialer>);

impl tower_service::Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dialer = self.0.clone();
        Box::pin(async move {
            let tls = uri.scheme_str() != Some("http");
            let host = unbracketed(uri.host().unwrap_or_default());
            let dialled = dialer.dial(host, uri.port_u16(), tls).await?;
            Ok(Conn::new(dialled))
        })
    }
}

/// A dialled connection as hyper-util's pool takes it: HTTP/2 when ALPN said so.
struct Conn {
    h2: bool,
    io: ConnIo,
}

enum ConnIo {
    Tls(TokioIo<Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
    Plain(TokioIo<tokio::net::TcpStream>),
}

impl Conn {
    fn new(dialled: Dialled) -> Self {
        let h2 = dialled.is_h2();
        let io = match dialled {
            Dialled::Tls(s) => ConnIo::Tls(TokioIo::new(s)),
            Dialled::Plain(s) => ConnIo::Plain(TokioIo::new(s)),
        };
        Conn { h2, io }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

/// Both kinds of stream, read and written alike.
macro_rules! each_io {
    ($self:ident, $io:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            ConnIo::Tls($io) => {
                let $io = Pin::new($io);
                $e
            }
            ConnIo::Plain($io) => {
                let $io = Pin::new($io);
                $e
            }
        }
    };
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        each_io!(self, io => io.poll_read(cx, buf))
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each_io!(self, io => io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_io!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_io!(self, io => io.poll_shutdown(cx))
    }
}

/// The wait for an answer (or the next part of one) that took longer than
/// [`READ_TIMEOUT`].
pub fn read_timeout(host: &str) -> Error {
    Error::with_message(
        ErrorKind::Io,
        format!(
            "{host} sent nothing for {} s while akv-env waited for its answer",
            READ_TIMEOUT.as_secs()
        ),
    )
}

/// The SDK's request as hyper's: the absolute URL (HTTP/2's `:scheme` and `:authority`,
/// HTTP/1.1's `Host`), the method, the headers and a body of bytes (akv-env streams no
/// request bodies).
pub fn to_hyper(request: &Request) -> azure_core::Result<http::Request<Full<Bytes>>> {
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

/// hyper's answer as the SDK's, its body capped at `limit` bytes and each part of it
/// read within [`READ_TIMEOUT`].
pub fn from_hyper(
    host: &str,
    limit: usize,
    answer: http::Response<hyper::body::Incoming>,
) -> azure_core::Result<AsyncRawResponse> {
    let (parts, body) = answer.into_parts();
    capped(
        host,
        limit,
        parts.status.as_u16().into(),
        to_headers(&parts.headers),
        body_stream(body, host.to_string()),
    )
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
