//! The admission server: an HTTPS listener (`POST /mutate`, `/healthz`, `/readyz`) and a
//! plain-HTTP metrics listener (`/metrics`, `/healthz`, `/readyz`), with certificate
//! reloading and graceful shutdown.
//!
//! - `http`: routes, handlers and the HTTP errors they answer with;
//! - `listener`: the accept loop, each connection's TLS and HTTP, graceful close;
//! - `connections`: the connection cap, idle tracking and the open-file limit;
//! - here: the two listeners bound and served together, and their tuning.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::metrics::Metrics;
use crate::registry::RegistrySetupError;
use crate::telemetry::TelemetryError;
use crate::tls::{self, CertFiles, CertResolver, Reloader, TlsError, TlsSource};

mod connections;
mod http;
mod listener;

pub(crate) use connections::{
    fit_fd_limit, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_STREAMS,
};
use connections::{ConnectionMetrics, Table, METRICS_MAX_CONNECTIONS};
pub use http::{metrics_router, router, AppState};
use listener::serve_limited;
pub use listener::serve_listener;

/// Errors that stop the server from starting or running.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot set up logging")]
    Logging(#[source] TelemetryError),
    #[error("invalid --allow-vault-host: {0}")]
    AllowVaultHost(akv_core::VaultError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot read --registry-ca-file {}: {error}", path.display())]
    RegistryCaFile {
        path: std::path::PathBuf,
        error: io::Error,
    },
    #[error(transparent)]
    Registry(#[from] RegistrySetupError),
    #[error("the webhook's workload identity: {0}")]
    Identity(#[from] akv_core::VarError),
    #[error("cannot listen on {addr} ({what}): {error}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
    #[error("cannot listen for {name}: {error}")]
    Signal {
        name: &'static str,
        error: io::Error,
    },
    #[error("a server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Timeouts and intervals. `Default` is what the binary uses; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Longest time one request may take, body reading included (answered 408).
    pub request_timeout: Duration,
    /// Longest time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest time for an HTTP/1.1 request's headers to arrive, counted from when the
    /// connection starts waiting for them (hyper starts it at the end of the previous
    /// response, so it also bounds how long an HTTP/1.1 connection stays idle).
    pub header_read_timeout: Duration,
    /// After this long a connection is closed gracefully (HTTP/2 included), so that no
    /// client holds one forever.
    pub max_connection_age: Duration,
    /// How long in-flight requests may go on after a shutdown signal.
    pub grace_period: Duration,
    /// How often the certificate files are checked for changes.
    pub tls_reload_interval: Duration,
    /// Most connections open at once on the HTTPS listener (the metrics listener has a
    /// lower cap of its own); at the cap the one idle the longest is closed.
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and 2).
    pub idle_timeout: Duration,
    /// SETTINGS_MAX_CONCURRENT_STREAMS of HTTP/2 connections; more streams are refused.
    pub max_streams_per_connection: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            request_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(600),
            grace_period: Duration::from_secs(20),
            tls_reload_interval: tls::DEFAULT_RELOAD_INTERVAL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_streams_per_connection: DEFAULT_MAX_STREAMS,
        }
    }
}

/// Everything [`Server::bind`] needs.
pub struct Options {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls: TlsSource,
    pub admission: Arc<Admission>,
    pub metrics: Arc<Metrics>,
    pub tuning: Tuning,
}

/// Both listeners, bound, with the serving certificate loaded.
pub struct Server {
    https: Bound,
    metrics_listener: Bound,
    tls: Arc<rustls::ServerConfig>,
    reloader: Option<Reloader>,
    state: AppState,
    tuning: Tuning,
}

impl Server {
    /// Loads (or makes) the certificate and binds both listeners.
    pub async fn bind(options: Options) -> Result<Self, ServerError> {
        let Options {
            listen,
            metrics_listen,
            tls,
            admission,
            metrics,
            tuning,
        } = options;
        let provider = tls::provider();
        let (resolver, reloader) = match tls {
            TlsSource::Files { cert, key } => {
                let reloader =
                    Reloader::load(CertFiles { cert, key }, Arc::clone(&provider)).await?;
                (reloader.resolver(), Some(reloader))
            }
            TlsSource::SelfSigned => {
                let key = tls::self_signed(&provider)?;
                warn!(
                    names = ?tls::SELF_SIGNED_NAMES,
                    "no --tls-cert/--tls-key given: serving a self-signed certificate made at start; \
                     it is for local use only, the Kubernetes API server will not trust it"
                );
                (Arc::new(CertResolver::new(key)), None)
            }
        };
        metrics.certificate_in_use(tls::expires_at(&resolver.current()));
        Ok(Server {
            tls: tls::server_config(provider, resolver)?,
            reloader,
            https: Bound::new("HTTPS", listen).await?,
            metrics_listener: Bound::new("metrics", metrics_listen).await?,
            state: AppState::new(admission, metrics, tuning.request_timeout),
            tuning,
        })
    }

    /// Where the HTTPS listener is bound (useful with port 0).
    pub fn https_addr(&self) -> SocketAddr {
        self.https.addr
    }

    /// Where the metrics listener is bound.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish within the grace period, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            https,
            metrics_listener,
            tls,
            reloader,
            state,
            tuning,
        } = self;
        let (https_addr, metrics_addr) = (https.addr, metrics_listener.addr);
        let stop = CancellationToken::new();
        let metrics = Arc::clone(&state.metrics);
        let reload = reloader.map(|reloader| {
            tokio::spawn(reloader.watch(
                tuning.tls_reload_interval,
                Arc::clone(&metrics),
                stop.clone(),
            ))
        });
        let counted = ConnectionMetrics::register(&metrics);
        let https_task = tokio::spawn(serve_limited(
            https.listener,
            Some(TlsAcceptor::from(tls)),
            router(state),
            tuning,
            stop.clone(),
            Table::new(
                connections::HTTPS,
                tuning.max_connections,
                Some(counted.clone()),
            ),
        ));
        let metrics_cap = tuning.max_connections.min(METRICS_MAX_CONNECTIONS);
        let metrics_task = tokio::spawn(serve_limited(
            metrics_listener.listener,
            None,
            metrics_router(metrics),
            tuning,
            stop.clone(),
            Table::new(connections::METRICS, metrics_cap, Some(counted)),
        ));
        info!(
            https = %https_addr,
            metrics = %metrics_addr,
            max_connections = tuning.max_connections,
            idle_timeout = ?tuning.idle_timeout,
            max_streams_per_connection = tuning.max_streams_per_connection,
            "akv-webhook is serving"
        );

        shutdown.await;
        info!(
            grace_period = ?tuning.grace_period,
            "shutting down: no new connections, in-flight requests may finish"
        );
        stop.cancel();
        https_task.await?;
        metrics_task.await?;
        if let Some(reload) = reload {
            reload.await?;
        }
        info!("stopped");
        Ok(())
    }
}

/// A bound listener and where it is bound (the port chosen for port 0).
struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Bound {
    /// Binds `addr`; `what` names the listener in the error.
    async fn new(what: &'static str, addr: SocketAddr) -> Result<Self, ServerError> {
        let fail = |error| ServerError::Bind { what, addr, error };
        let listener = TcpListener::bind(addr).await.map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(Bound { listener, addr })
    }
}

/// Listens for SIGTERM and SIGINT from now on, so that none is missed while starting;
/// the future completes on the first one.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind, name| signal(kind).map_err(|error| ServerError::Signal { name, error });
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received"),
            _ = interrupt.recv() => info!("SIGINT received"),
        }
    })
}
