//! How akv-env reaches an origin, for the token exchange and for every vault alike: the
//! address (the system resolver, or the test set-up's override), TCP to the first
//! address that answers, through the environment's HTTP proxy when it covers the origin
//! (a CONNECT tunnel, hyper-util's [`Tunnel`]), then TLS with the one configuration
//! ([`super::tls`]). All of it within [`CONNECT_TIMEOUT`].
//!
//! Plain `http://` origins (only the instance metadata endpoint, IMDS, which is
//! link-local) are dialled directly and never through a proxy: a proxy outside the node
//! cannot reach the node's own metadata endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use azure_core::error::{Error, ErrorKind};
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use super::http::{HttpSetup, CONNECT_TIMEOUT};
use super::proxy::{self, Matcher};

/// An open connection: TLS (with the protocol the server chose by ALPN; boxed, it is a
/// kilobyte of state), or plain TCP.
pub enum Dialled {
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl Dialled {
    /// The server chose HTTP/2 (ALPN `h2`).
    pub fn is_h2(&self) -> bool {
        match self {
            Dialled::Tls(tls) => negotiated_h2(tls),
            Dialled::Plain(_) => false,
        }
    }

    /// The TLS stream, if the server chose HTTP/2 on it.
    pub fn into_h2(self) -> Option<Box<TlsStream<TcpStream>>> {
        match self {
            Dialled::Tls(tls) if negotiated_h2(&tls) => Some(tls),
            _ => None,
        }
    }
}

fn negotiated_h2(tls: &TlsStream<TcpStream>) -> bool {
    tls.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// Opens connections; one per process, shared (see the module's text).
pub struct Dialer {
    setup: HttpSetup,
    tls: Arc<rustls::ClientConfig>,
    proxies: Matcher,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

impl Dialer {
    pub fn new(setup: &HttpSetup, tls: Arc<rustls::ClientConfig>, proxies: Matcher) -> Self {
        Dialer {
            setup: setup.clone(),
            tls,
            proxies,
        }
    }

    /// A connection to `host` (as DNS and TLS name it: an IPv6 address without
    /// brackets) on the URL's port, if it names one (`explicit_port`), else 443 (TLS) or
    /// 80; TLS unless `tls` is false.
    pub async fn dial(
        &self,
        host: &str,
        explicit_port: Option<u16>,
        tls: bool,
    ) -> azure_core::Result<Dialled> {
        let port = explicit_port.unwrap_or(if tls { 443 } else { 80 });
        timeout(CONNECT_TIMEOUT, self.open(host, port, explicit_port, tls))
            .await
            .unwrap_or_else(|_| {
                Err(Error::with_message(
                    ErrorKind::Connection,
                    format!(
                        "no connection to {host}:{port} within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            })
    }

    async fn open(
        &self,
        host: &str,
        port: u16,
        explicit_port: Option<u16>,
        tls: bool,
    ) -> azure_core::Result<Dialled> {
        let failed = |error: Box<dyn std::error::Error + Send + Sync>, what: &str| {
            Error::with_error(
                ErrorKind::Connection,
                error,
                format!("{what} {host}:{port}"),
            )
        };
        let proxy = if tls {
            proxy::intercept(&self.proxies, host, port)
        } else {
            None
        };
        let tcp = match proxy {
            Some((proxy_uri, auth)) => self
                .tunnel(proxy_uri.clone(), auth, host, port)
                .await
                .map_err(|e| failed(e, &format!("the proxy {proxy_uri} gave no tunnel to")))?,
            None => self
                .tcp(host, port, explicit_port)
                .await
                .map_err(|e| failed(e.into(), "cannot connect to"))?,
        };
        // Requests are small and sent at once: no Nagle delay.
        tcp.set_nodelay(true)
            .map_err(|e| failed(e.into(), "cannot set up the connection to"))?;
        if !tls {
            return Ok(Dialled::Plain(tcp));
        }
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| failed(e.into(), "not a TLS server name:"))?;
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| failed(e.into(), "TLS handshake failed with"))?;
        Ok(Dialled::Tls(Box::new(stream)))
    }

    /// TCP to the first address of `host` that answers (the test set-up's override
    /// first, on its own port unless the URL names one).
    async fn tcp(
        &self,
        host: &str,
        port: u16,
        explicit_port: Option<u16>,
    ) -> std::io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = match self.setup.resolved(host, explicit_port) {
            Some(addr) => vec![addr],
            None => tokio::net::lookup_host((host, port)).await?.collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the name has no address")))
    }

    /// A CONNECT tunnel to `host:port` through the proxy at `proxy_uri`.
    async fn tunnel(
        &self,
        proxy_uri: Uri,
        auth: Option<HeaderValue>,
        host: &str,
        port: u16,
    ) -> Result<TcpStream, Box<dyn std::error::Error + Send + Sync>> {
        if proxy_uri.scheme_str() != Some("http") {
            return Err(format!(
                "akv-env reaches proxies over plain http:// only (HTTPS_PROXY={proxy_uri}); \
                 name the proxy as http://HOST:PORT, or leave Key Vault out of it with NO_PROXY"
            )
            .into());
        }
        let mut to_proxy = HttpConnector::new();
        to_proxy.set_nodelay(true);
        let mut tunnel = Tunnel::new(proxy_uri, to_proxy);
        if let Some(auth) = auth {
            tunnel = tunnel.with_auth(auth);
        }
        let dst: Uri = format!("https://{}:{port}", bracketed(host)).parse()?;
        let io: TokioIo<TcpStream> = tunnel.call(dst).await?;
        Ok(io.into_inner())
    }
}

/// A host as it goes into a URL or a CONNECT line: an IPv6 address in brackets.
pub fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A URL's host as DNS, TLS and the resolver overrides name it: an IPv6 address without
/// its brackets.
pub fn unbracketed(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_in_urls() {
        assert_eq!(bracketed("kv.vault.azure.net"), "kv.vault.azure.net");
        assert_eq!(bracketed("127.0.0.1"), "127.0.0.1");
        assert_eq!(bracketed("::1"), "[::1]");
        for host in ["kv.vault.azure.net", "127.0.0.1", "::1"] {
            assert_eq!(unbracketed(&bracketed(host)), host);
        }
    }

    #[tokio::test]
    async fn an_https_proxy_url_is_refused_with_what_to_do() {
        let tls = super::super::tls::tls_config(&HttpSetup::default()).expect("tls");
        let proxies = Matcher::builder()
            .https("https://proxy.example:3128")
            .build();
        let dialer = Dialer::new(&HttpSetup::default(), tls, proxies);
        let err = match dialer.dial("kv.vault.azure.net", None, true).await {
            Err(e) => akv_core::error_chain(&e),
            Ok(_) => panic!("an https:// proxy was used"),
        };
        assert!(err.contains("plain http:// only"), "{err}");
        assert!(err.contains("NO_PROXY"), "{err}");
    }
}
