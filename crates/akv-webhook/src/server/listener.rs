//! The connection loop of a listener: accept (within the connection limits of
//! [`super::connections`]), the TLS handshake, hyper's HTTP/1.1 or HTTP/2 on each
//! connection, and the graceful close of every connection on shutdown, age, idleness or
//! eviction.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::connections::{self, Closed, Lease, Table, TrackedBody};
use super::Tuning;

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

pub(super) async fn serve_limited(
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
        let conn = builder.serve_connection(io, service);
        drive(conn, tuning, &shutdown, &lease).await
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // hyper runs this timer while waiting for the next request too, so an idle
            // HTTP/1.1 connection closes after the shorter of this and the idle timeout.
            .header_read_timeout(tuning.header_read_timeout);
        let conn = builder.serve_connection(io, service);
        drive(conn, tuning, &shutdown, &lease).await
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
