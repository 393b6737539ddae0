//! The admission server: an HTTPS listener (`POST /mutate`, `/healthz`, `/readyz`) and a
//! plain-HTTP metrics listener (`/metrics`, `/healthz`, `/readyz`), with certificate
//! reloading and graceful shutdown.
//!
//! The HTTP handlers only decode and encode: [`Admission::review`] does the work. Every
//! HTTP error is an [`ApiError`], turned into a response in one place.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::admission::{Admission, BadRequest, InjectSettings};
use crate::args::Args;
use crate::metrics::{self, Metrics};
use crate::registry::{
    self, AcrTokenSource, HostRules, KubePullSecrets, NoLookup, NoPullSecrets, Platform,
    PullSecretSource, RegistryOptions, RegistrySetupError, RegistrySource, WorkloadIdentity,
    WorkloadIdentityAcr,
};
use crate::tls::{self, CertFiles, CertResolver, Reloader, TlsError, TlsSource};

mod connections;
use connections::{Closed, ConnectionMetrics, Lease, Table, TrackedBody};
pub use connections::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_STREAMS, METRICS_MAX_CONNECTIONS,
};

/// Largest accepted AdmissionReview. Kubernetes objects are at most ~1.5 MiB; the review
/// carries the object (and, for updates, the old one) plus a little more.
pub const MAX_REVIEW_BYTES: usize = 3 * 1024 * 1024;

/// Errors that stop the server from starting or running.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{given} needs {missing}: give both --tls-cert and --tls-key, or neither for a self-signed certificate (local use only)")]
    TlsPair {
        given: &'static str,
        missing: &'static str,
    },
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

/// A request answered with an HTTP error rather than an AdmissionReview.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    BadReview(#[from] BadRequest),
    #[error("request body too large: an AdmissionReview may be at most {MAX_REVIEW_BYTES} bytes")]
    TooLarge,
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("no Content-Type: POST the AdmissionReview as application/json")]
    NoContentType,
    #[error(
        "Content-Type {0:?} is not application/json: POST the AdmissionReview as application/json"
    )]
    WrongContentType(String),
    #[error("the request was not answered within {0:?}")]
    Timeout(Duration),
    #[error("not found")]
    NotFound,
    #[error("cannot encode the metrics: {0}")]
    Metrics(std::fmt::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadReview(_) | ApiError::Body(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoContentType | ApiError::WrongContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Metrics(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` label of `akv_webhook_bad_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadReview(_) => "invalid_review",
            ApiError::TooLarge => "too_large",
            ApiError::Body(_) => "unreadable_body",
            ApiError::NoContentType | ApiError::WrongContentType(_) => "unsupported_media_type",
            ApiError::Timeout(_) => "timeout",
            ApiError::NotFound => "not_found",
            ApiError::Metrics(_) => "metrics",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let headers = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
        (self.status(), headers, self.to_string()).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::Body(rejection.body_text())
        }
    }
}

/// What the HTTPS handlers share.
#[derive(Clone)]
pub struct AppState {
    pub admission: Arc<Admission>,
    pub metrics: Arc<Metrics>,
    /// Longest time one request may take, body reading included.
    pub request_timeout: Duration,
}

impl AppState {
    pub fn new(admission: Arc<Admission>, metrics: Arc<Metrics>) -> Self {
        AppState {
            admission,
            metrics,
            request_timeout: Tuning::default().request_timeout,
        }
    }

    /// Counts, logs and answers an error.
    fn fail(&self, error: ApiError) -> Response {
        self.metrics.bad_request(error.reason());
        warn!(status = error.status().as_u16(), %error, "request refused");
        error.into_response()
    }
}

/// The HTTPS side: `POST /mutate`, `GET /healthz`, `GET /readyz`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/mutate",
            post(mutate).layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES)),
        )
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .with_state(state)
}

/// The metrics side (plain HTTP): `GET /metrics`, `GET /healthz`, `GET /readyz`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .with_state(metrics)
}

async fn ok() -> &'static str {
    "ok\n"
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::Metrics(e).into_response(),
    }
}

async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => state.fail(ApiError::Timeout(state.request_timeout)),
    }
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    match review(&state, request).await {
        Ok(response) => response,
        Err(error) => state.fail(error),
    }
}

async fn review(state: &AppState, request: Request) -> Result<Response, ApiError> {
    check_content_type(request.headers())?;
    let body = Bytes::from_request(request, &()).await?;
    let started = Instant::now();
    let reviewed = state.admission.review(&body).await?;
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_review(reviewed.outcome, elapsed, reviewed.patch_bytes);
    // Never log the body: a pod's env can hold values.
    info!(
        uid = %reviewed.subject.uid,
        namespace = %reviewed.subject.namespace,
        pod = %reviewed.subject.pod,
        outcome = reviewed.outcome.as_str(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        patch_bytes = reviewed.patch_bytes,
        "review"
    );
    Ok(([(CONTENT_TYPE, "application/json")], reviewed.body).into_response())
}

/// Accepts `application/json` with or without parameters (`; charset=utf-8`).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(CONTENT_TYPE).ok_or(ApiError::NoContentType)?;
    let is_json = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::WrongContentType(
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ))
    }
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
    /// Most connections open at once on the HTTPS listener (the metrics listener takes at
    /// most [`METRICS_MAX_CONNECTIONS`]); at the cap the one idle the longest is closed.
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
    https: TcpListener,
    https_addr: SocketAddr,
    metrics_listener: TcpListener,
    metrics_addr: SocketAddr,
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
        let tls = tls::server_config(provider, resolver)?;
        let (https, https_addr) = bind("HTTPS", listen).await?;
        let (metrics_listener, metrics_addr) = bind("metrics", metrics_listen).await?;
        let mut state = AppState::new(admission, metrics);
        state.request_timeout = tuning.request_timeout;
        Ok(Server {
            https,
            https_addr,
            metrics_listener,
            metrics_addr,
            tls,
            reloader,
            state,
            tuning,
        })
    }

    /// Where the HTTPS listener is bound (useful with port 0).
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Where the metrics listener is bound.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish within the grace period, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            https,
            https_addr,
            metrics_listener,
            metrics_addr,
            tls,
            reloader,
            state,
            tuning,
        } = self;
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
            https,
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
            metrics_listener,
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

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServerError> {
    let fail = |error| ServerError::Bind { what, addr, error };
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

/// Starts the webhook as configured by `args` and serves until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), ServerError> {
    let Args {
        listen,
        tls_cert,
        tls_key,
        env_image,
        metrics_listen,
        log_format: _, // used by telemetry::init, before this
        max_connections,
        idle_timeout,
        max_streams_per_connection,
        allow_vault_host,
        registry_lookup,
        registry_ca_file,
        default_platform,
        registry_timeout,
        registry_tag_ttl,
        registry_allow_host,
        registry_deny_cidr,
        registry_redirect_host,
    } = args;
    let shutdown = shutdown_signal()?;
    tls::install_default_provider();
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files { cert, key },
        (None, None) => TlsSource::SelfSigned,
        (Some(_), None) => {
            return Err(ServerError::TlsPair {
                given: "--tls-cert",
                missing: "--tls-key",
            })
        }
        (None, Some(_)) => {
            return Err(ServerError::TlsPair {
                given: "--tls-key",
                missing: "--tls-cert",
            })
        }
    };
    let allow_vault_hosts =
        akv_core::HostPolicy::new(&allow_vault_host).map_err(ServerError::AllowVaultHost)?;
    info!(
        env_image,
        allow_vault_hosts = allow_vault_hosts.to_list(),
        "settings"
    );
    let metrics = Arc::new(Metrics::new());
    let registry = RegistryFlags {
        lookup: registry_lookup,
        ca_file: registry_ca_file,
        default_platform,
        timeout: registry_timeout,
        tag_ttl: registry_tag_ttl,
        hosts: HostRules {
            allow: registry_allow_host,
            deny: registry_deny_cidr,
            redirect: registry_redirect_host,
        },
    };
    let admission = Arc::new(
        admission(
            InjectSettings {
                env_image,
                allow_vault_hosts,
            },
            registry,
            &metrics,
        )
        .await?,
    );
    let server = Server::bind(Options {
        listen,
        metrics_listen,
        tls,
        admission,
        metrics,
        tuning: Tuning {
            max_connections: connections::fit_fd_limit(max_connections),
            idle_timeout,
            max_streams_per_connection,
            ..Tuning::default()
        },
    })
    .await?;
    server.serve(shutdown).await
}

/// The `--registry-*` flags and `--default-platform`.
struct RegistryFlags {
    lookup: bool,
    ca_file: Option<std::path::PathBuf>,
    default_platform: Platform,
    timeout: Duration,
    tag_ttl: Duration,
    hosts: HostRules,
}

/// The one place where the admission handler is put together.
async fn admission(
    settings: InjectSettings,
    flags: RegistryFlags,
    metrics: &Metrics,
) -> Result<Admission, ServerError> {
    let RegistryFlags {
        lookup,
        ca_file,
        default_platform,
        timeout,
        tag_ttl,
        hosts,
    } = flags;
    if !lookup {
        info!("--registry-lookup=false: containers without `command` are denied");
        return Ok(Admission::new(settings, Arc::new(NoLookup)));
    }
    let ca_pem = match &ca_file {
        Some(path) => {
            Some(
                tokio::fs::read(path)
                    .await
                    .map_err(|error| ServerError::RegistryCaFile {
                        path: path.clone(),
                        error,
                    })?,
            )
        }
        None => None,
    };
    info!(
        allow_hosts = ?hosts.allow,
        deny_cidrs = ?hosts.deny.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        redirect_hosts = ?hosts.redirect,
        "registry lookups refuse loopback, link-local and unspecified addresses and the denied networks, except for the allowed hosts"
    );
    let options = RegistryOptions {
        default_platform,
        ca_pem,
        tag_ttl,
        // One lookup never takes longer than the review that waits for it.
        lookup_timeout: timeout,
        hosts,
        ..RegistryOptions::default()
    };
    let secrets: Arc<dyn PullSecretSource> = match kube::Client::try_default().await {
        Ok(client) => Arc::new(KubePullSecrets::new(client)),
        Err(e) => {
            warn!(
                error = %e,
                "no Kubernetes API configuration (in-cluster or kubeconfig): image pull secrets \
                 are unavailable, registry lookups are anonymous"
            );
            Arc::new(NoPullSecrets)
        }
    };
    let acr: Option<Arc<dyn AcrTokenSource>> = match WorkloadIdentity::from_env()? {
        Some(identity) => {
            let roots = match &options.ca_pem {
                Some(pem) => registry::oci::parse_ca_pem(pem)?,
                None => Vec::new(),
            };
            let http = registry::oci::http_client(&roots, &options)?;
            info!(client_id = %identity.client_id, "ACR registries without a matching pull secret are read with the webhook's workload identity");
            Some(Arc::new(WorkloadIdentityAcr::new(identity, http)))
        }
        None => None,
    };
    info!(
        default_platform = %options.default_platform,
        timeout = ?timeout,
        tag_ttl = ?tag_ttl,
        ca_file = ?ca_file,
        "registry lookups for containers without `command` are on"
    );
    let source = RegistrySource::new(options, secrets, acr, Some(metrics))?;
    Ok(Admission::new(settings, Arc::new(source)).with_lookup_deadline(timeout))
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

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// HTTP/2 keep-alive pings, so that dead peers are noticed.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long a connection asked to close may take to do so while it has no request in
/// flight (an HTTP/2 peer has to answer the GOAWAY's ping) before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` (over TLS when `tls` is given, with HTTP/2 or HTTP/1.1
/// by ALPN; plain HTTP/1.1 otherwise) until `shutdown` is cancelled, with at most
/// `tuning.max_connections` connections open (see [`Table`]). Then it stops accepting,
/// asks every connection to close once its in-flight requests are answered, and waits for
/// that up to `tuning.grace_period` before dropping the rest.
pub async fn serve_listener(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    tuning: Tuning,
    shutdown: CancellationToken,
) {
    let table = Table::new(connections::HTTPS, tuning.max_connections, None);
    serve_limited(listener, tls, router, tuning, shutdown, table).await;
}

async fn serve_limited(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    tuning: Tuning,
    shutdown: CancellationToken,
    table: Arc<Table>,
) {
    let connections = TaskTracker::new();
    let abort = CancellationToken::new();
    loop {
        // At the cap with nothing idle to evict, new clients wait in the accept queue.
        tokio::select! {
            () = table.room() => {}
            () = shutdown.cancelled() => break,
        }
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // The table may have changed since `room`: wait for a slot (bounded, as for a
        // handshake) rather than go over the cap.
        let lease = tokio::select! {
            lease = table.admit() => lease,
            () = tokio::time::sleep(tuning.handshake_timeout) => {
                debug!(%peer, "no room for the connection in time: closed");
                continue;
            }
            () = shutdown.cancelled() => break,
        };
        let connection = serve_connection(
            tcp,
            peer,
            tls.clone(),
            router.clone(),
            tuning,
            shutdown.clone(),
            lease,
        );
        let abort = abort.clone();
        connections.spawn(async move {
            tokio::select! {
                () = connection => {}
                () = abort.cancelled() => {}
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(tuning.grace_period, connections.wait())
        .await
        .is_err()
    {
        warn!(
            connections = connections.len(),
            "grace period over: closing connections with requests still in flight"
        );
        abort.cancel();
        connections.wait().await;
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    tuning: Tuning,
    shutdown: CancellationToken,
    lease: Lease,
) {
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let Some(acceptor) = tls else {
        return serve_http(tcp, false, peer, router, tuning, shutdown, lease).await;
    };
    let handshake = tokio::time::timeout(tuning.handshake_timeout, acceptor.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // TCP probes and port checks.
                debug!(%peer, "connection closed before the TLS handshake ended");
                return;
            }
            Ok(Err(e)) => {
                // A client that does not trust the certificate (a wrong caBundle) shows here.
                info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = lease.slot().evicted() => {
            debug!(%peer, "connection closed during its TLS handshake to make room");
            return;
        }
        () = shutdown.cancelled() => return,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_http(stream, h2, peer, router, tuning, shutdown, lease).await;
}

async fn serve_http<I>(
    io: I,
    h2: bool,
    peer: SocketAddr,
    router: Router,
    tuning: Tuning,
    shutdown: CancellationToken,
    lease: Lease,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let lease = Arc::new(lease);
    let service = Tracked {
        inner: TowerToHyperService::new(router),
        lease: Arc::clone(&lease),
    };
    let result = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE)
            .max_concurrent_streams(tuning.max_streams_per_connection);
        drive(
            builder.serve_connection(io, service),
            tuning,
            &shutdown,
            &lease,
        )
        .await
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // hyper runs this timer while waiting for the next request too, so an idle
            // HTTP/1.1 connection closes after the shorter of this and the idle timeout.
            .header_read_timeout(tuning.header_read_timeout);
        drive(
            builder.serve_connection(io, service),
            tuning,
            &shutdown,
            &lease,
        )
        .await
    };
    match result {
        // hyper's HTTP/1.1 header read timer, which also runs between requests: the
        // connection had no request in flight.
        Err(e) if e.is_timeout() => lease.count(Closed::Idle),
        Err(e) => debug!(%peer, error = %e, "connection closed with an error"),
        Ok(()) => {}
    }
}

/// The router, marking each request in flight on its connection until its response body
/// has been sent.
struct Tracked {
    inner: TowerToHyperService<Router>,
    lease: Arc<Lease>,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Tracked {
    type Response = Response<TrackedBody<axum::body::Body>>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let busy = self.lease.request();
        let response = hyper::service::Service::call(&self.inner, request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody::new(body, busy)))
        })
    }
}

/// Runs a connection until it ends, closing it gracefully on shutdown, when it is older
/// than `tuning.max_connection_age`, when it has had no request in flight for
/// `tuning.idle_timeout`, or when its listener evicts it to make room.
async fn drive<C>(
    conn: C,
    tuning: Tuning,
    shutdown: &CancellationToken,
    lease: &Lease,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    tokio::pin!(conn);
    let (reason, linger) = tokio::select! {
        result = conn.as_mut() => return result,
        () = shutdown.cancelled() => (None, CLOSE_LINGER),
        () = tokio::time::sleep(tuning.max_connection_age) => (Some(Closed::MaxAge), CLOSE_LINGER),
        () = lease.idle_for(tuning.idle_timeout) => (Some(Closed::Idle), CLOSE_LINGER),
        // Counted by the table when it chose this connection; a newcomer waits for it.
        () = lease.slot().evicted() => (None, connections::EVICT_LINGER),
    };
    if let Some(reason) = reason {
        lease.count(reason);
    }
    conn.as_mut().graceful_shutdown();
    // In-flight requests are answered (until the grace period is over); a connection with
    // none left that is still open after `linger` is dropped.
    let deadline = Instant::now() + tuning.grace_period;
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            () = tokio::time::sleep(linger) => {
                if lease.slot().is_idle() || Instant::now() >= deadline {
                    return Ok(());
                }
            }
        }
    }
}
