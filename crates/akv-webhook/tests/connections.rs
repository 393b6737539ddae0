//! Connection limits on loopback: the cap on open connections (the one idle the longest
//! makes room, a busy one never does), the idle timeout, and the HTTP/2 stream cap (seen
//! on the wire, with frames written by hand so that no client library hides a refusal).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_testkit::pki::{TestCa, LOOPBACK};
use akv_testkit::wait::eventually;
use akv_webhook::admission::Admission;
use akv_webhook::metrics::Metrics;
use akv_webhook::registry::NoLookup;
use akv_webhook::server::{serve_listener, Options, Server, Tuning};
use akv_webhook::tls::{self, CertFiles, CertResolver, TlsSource};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- helpers

/// A CA and a serving certificate for localhost and 127.0.0.1 issued by it.
struct Pki {
    ca_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca = TestCa::new("connections test CA");
    let leaf = ca.leaf("webhook", LOOPBACK);
    Pki {
        ca_der: ca.der,
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    }
}

fn acceptor(pki: &Pki) -> TlsAcceptor {
    let files = CertFiles {
        cert: "tls.crt".into(),
        key: "tls.key".into(),
    };
    let provider = tls::provider();
    let key = tls::parse_pair(
        pki.cert_pem.as_bytes(),
        pki.key_pem.as_bytes(),
        &files,
        &provider,
    )
    .expect("pair");
    TlsAcceptor::from(
        tls::server_config(provider, Arc::new(CertResolver::new(key))).expect("config"),
    )
}

/// A TLS client that trusts the test CA and offers `alpn`.
fn connector(pki: &Pki, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca_der.clone()))
        .expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(connector: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("handshake")
}

fn reqwest_client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&pki.ca_der).expect("der"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn admission() -> Arc<Admission> {
    Arc::new(common::admission(Arc::new(NoLookup)))
}

fn tuning() -> Tuning {
    Tuning {
        request_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_secs(10),
        grace_period: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(60),
        ..Tuning::default()
    }
}

/// The whole server (both listeners, metrics) with the certificate of `pki`.
async fn start_server(
    pki: &Pki,
    tuning: Tuning,
) -> (
    SocketAddr,
    Arc<Metrics>,
    CancellationToken,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &pki.cert_pem).expect("write");
    std::fs::write(&key, &pki.key_pem).expect("write");
    let metrics = Arc::new(Metrics::new());
    let server = Server::bind(Options {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: "127.0.0.1:0".parse().expect("addr"),
        tls: TlsSource::Files { cert, key },
        admission: admission(),
        metrics: Arc::clone(&metrics),
        tuning,
    })
    .await
    .expect("binds");
    let addr = server.https_addr();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone().cancelled_owned()));
    (addr, metrics, stop, dir)
}

/// `serve_listener` with `router`, for handlers that a test controls.
async fn start_listener(
    pki: &Pki,
    router: Router,
    tuning: Tuning,
) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(serve_listener(
        listener,
        Some(acceptor(pki)),
        router,
        tuning,
        stop.clone(),
    ));
    (addr, stop)
}

/// The value of one sample line (`name{labels} value`) in Prometheus text.
fn sample(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.encode().expect("encodes");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

const OPEN: &str = "akv_webhook_open_connections{listener=\"https\"}";
const EVICTED: &str = "akv_webhook_connections_closed_total{listener=\"https\",reason=\"evicted\"}";
const IDLE: &str = "akv_webhook_connections_closed_total{listener=\"https\",reason=\"idle\"}";

/// Whether the peer closes the stream within `limit` (reading and dropping what it sends).
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends `GET /healthz` over HTTP/1.1 keep-alive and reads the whole answer.
async fn healthz_h1<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.ends_with(b"ok\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// A Pod CREATE review of a pod without references: allowed without a patch.
const REVIEW: &str = r#"{
  "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
  "request": {
    "uid": "5c1f0d0e-8a4e-4b8c-9a43-0d7f1f2b9c01",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": "team-a", "operation": "CREATE",
    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
    "object": {"apiVersion": "v1", "kind": "Pod",
      "metadata": {"name": "web", "namespace": "team-a"},
      "spec": {"containers": [{"name": "app", "image": "registry.example/web:1", "command": ["/web"]}]}}
  }
}"#;

async fn review_is_answered(client: &reqwest::Client, addr: SocketAddr) {
    let response = client
        .post(format!("https://127.0.0.1:{}/mutate", addr.port()))
        .header("content-type", "application/json")
        .body(REVIEW)
        .send()
        .await
        .expect("the review gets through");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.expect("body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["response"]["allowed"], true, "{body}");
    assert_eq!(
        body["response"]["uid"], "5c1f0d0e-8a4e-4b8c-9a43-0d7f1f2b9c01",
        "{body}"
    );
}

// ---------------------------------------------------------------- the cap

#[tokio::test]
async fn idle_connections_beyond_the_cap_cannot_lock_out_a_new_client() {
    const CAP: usize = 16;
    let pki = pki();
    let tuning = Tuning {
        max_connections: CAP,
        ..tuning()
    };
    let (addr, metrics, stop, _dir) = start_server(&pki, tuning).await;
    let h1 = connector(&pki, b"http/1.1");

    // 40 idle connections, oldest first: TLS ones that made one request and keep the
    // connection, and bare TCP ones that never start their TLS handshake.
    let mut tls_idle = Vec::new();
    let mut tcp_idle = Vec::new();
    for i in 0..40 {
        if i % 3 == 2 {
            tcp_idle.push((i, TcpStream::connect(addr).await.expect("connect")));
        } else {
            let mut stream = tls_connect(&h1, addr).await;
            healthz_h1(&mut stream).await;
            tls_idle.push((i, stream));
        }
    }
    eventually("the webhook holds no more than the cap", || async {
        sample(&metrics, OPEN) == CAP as f64
    })
    .await;

    // A new client (the API server) still gets its review answered.
    let apiserver = reqwest_client(&pki);
    review_is_answered(&apiserver, addr).await;

    // The webhook closed the 25 connections idle the longest and kept the newest 15 (and
    // the API server's).
    let survivors = 40 - (40 + 1 - CAP);
    for (i, stream) in &mut tls_idle {
        let closed = closed_within(stream, Duration::from_millis(150)).await;
        assert_eq!(closed, *i < 40 - survivors, "TLS connection {i}");
    }
    for (i, stream) in &mut tcp_idle {
        let closed = closed_within(stream, Duration::from_millis(150)).await;
        assert_eq!(closed, *i < 40 - survivors, "TCP connection {i}");
    }
    assert_eq!(sample(&metrics, EVICTED), (40 + 1 - CAP) as f64);
    eventually("the gauge settles at the cap", || async {
        sample(&metrics, OPEN) == CAP as f64
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn busy_connections_are_never_evicted_and_a_newcomer_waits_for_room() {
    let pki = pki();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let router = {
        let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
        Router::new().route(
            "/slow",
            get(move || async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let _permit = gate.acquire().await.expect("open");
                "done"
            }),
        )
    };
    let tuning = Tuning {
        max_connections: 2,
        ..tuning()
    };
    let (addr, stop) = start_listener(&pki, router, tuning).await;
    let url = format!("https://127.0.0.1:{}/slow", addr.port());
    let request = |url: String| {
        // One client each: separate connections.
        let client = reqwest_client(&pki);
        tokio::spawn(async move {
            let response = client.get(url).send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        })
    };
    let first = request(url.clone());
    let second = request(url.clone());
    eventually("both requests are in flight", || async {
        entered.load(Ordering::SeqCst) == 2
    })
    .await;
    let third = request(url);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        entered.load(Ordering::SeqCst),
        2,
        "the third client waits: both connections are busy"
    );
    assert!(!first.is_finished() && !second.is_finished() && !third.is_finished());

    gate.add_permits(3);
    for (name, task) in [("first", first), ("second", second), ("third", third)] {
        let (status, body) = task.await.expect("joins").expect(name);
        assert_eq!((status, body.as_str()), (StatusCode::OK, "done"), "{name}");
    }
    stop.cancel();
}

// ---------------------------------------------------------------- idle timeout

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let pki = pki();
    let idle = Duration::from_millis(400);
    let tuning = Tuning {
        idle_timeout: idle,
        ..tuning()
    };
    let (addr, metrics, stop, _dir) = start_server(&pki, tuning).await;

    // HTTP/1.1: closed `idle` after the end of the last answer, not before.
    let mut h1 = tls_connect(&connector(&pki, b"http/1.1"), addr).await;
    tokio::time::sleep(idle / 2).await;
    healthz_h1(&mut h1).await; // the timer starts again from here
    let answered = Instant::now();
    assert!(
        closed_within(&mut h1, Duration::from_secs(3)).await,
        "HTTP/1.1"
    );
    let after = answered.elapsed();
    assert!(
        after >= idle - Duration::from_millis(20),
        "closed after {after:?}"
    );
    assert!(
        after < idle + Duration::from_millis(500),
        "closed after {after:?}"
    );

    // HTTP/2: a GOAWAY, then the connection is closed.
    let mut h2 = tls_connect(&connector(&pki, b"h2"), addr).await;
    let opened = Instant::now();
    h2_start(&mut h2).await;
    let mut goaway = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(3), read_frame(&mut h2)).await {
            Ok(Some(frame)) => goaway |= frame.kind == GOAWAY,
            Ok(None) => break,
            Err(_) => panic!("the idle HTTP/2 connection is still open"),
        }
    }
    let after = opened.elapsed();
    assert!(goaway, "a GOAWAY before the close");
    assert!(
        after >= idle - Duration::from_millis(20),
        "closed after {after:?}"
    );
    assert!(
        after < idle + Duration::from_millis(1500),
        "closed after {after:?}"
    );

    eventually("both idle closes are counted", || async {
        sample(&metrics, IDLE) == 2.0
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn the_http11_header_read_timeout_counts_as_idle() {
    let pki = pki();
    let tuning = Tuning {
        header_read_timeout: Duration::from_millis(300),
        ..tuning()
    };
    let (addr, metrics, stop, _dir) = start_server(&pki, tuning).await;
    let mut h1 = tls_connect(&connector(&pki, b"http/1.1"), addr).await;
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost:")
        .await
        .expect("write");
    assert!(
        closed_within(&mut h1, Duration::from_secs(3)).await,
        "slow headers"
    );
    eventually("the close is counted as idle", || async {
        sample(&metrics, IDLE) == 1.0
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn a_request_longer_than_the_idle_timeout_is_answered() {
    let pki = pki();
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            "done"
        }),
    );
    let tuning = Tuning {
        idle_timeout: Duration::from_millis(300),
        ..tuning()
    };
    let (addr, stop) = start_listener(&pki, router, tuning).await;
    let mut stream = tls_connect(&connector(&pki, b"http/1.1"), addr).await;
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), async {
        let mut buf = [0u8; 512];
        while !answer.ends_with(b"done") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed while the request was in flight: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    stop.cancel();
}

// ---------------------------------------------------------------- HTTP/2 streams

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

struct H2Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

async fn write_frame<S: AsyncWrite + Unpin>(
    io: &mut S,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) {
    let len = u32::try_from(payload.len())
        .expect("small frame")
        .to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    io.write_all(&frame).await.expect("write frame");
}

/// The next frame, or `None` once the peer has closed the connection.
async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> Option<H2Frame> {
    let mut head = [0u8; 9];
    io.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.ok()?;
    Some(H2Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Sends the client preface and an empty SETTINGS frame.
async fn h2_start<S: AsyncWrite + Unpin>(io: &mut S) {
    io.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    write_frame(io, SETTINGS, 0, 0, &[]).await;
}

/// A HEADERS block (HPACK, no Huffman) for `GET https://localhost{path}`.
fn get_headers(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87]; // :method GET, :scheme https (static table)
    block.push(0x04); // :path, literal without indexing
    block.push(u8::try_from(path.len()).expect("short path"));
    block.extend_from_slice(path.as_bytes());
    block.push(0x01); // :authority
    block.push(9);
    block.extend_from_slice(b"localhost");
    block
}

#[tokio::test]
async fn http2_streams_beyond_the_cap_are_refused() {
    const STREAMS: u32 = 4;
    let pki = pki();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let router = {
        let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
        Router::new().route(
            "/slow",
            get(move || async move {
                entered.fetch_add(1, Ordering::SeqCst);
                let _permit = gate.acquire().await.expect("open");
                "done"
            }),
        )
    };
    let tuning = Tuning {
        max_streams_per_connection: STREAMS,
        ..tuning()
    };
    let (addr, stop) = start_listener(&pki, router, tuning).await;
    let mut io = tls_connect(&connector(&pki, b"h2"), addr).await;
    assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2_start(&mut io).await;

    // The server announces the cap in its SETTINGS.
    let settings = loop {
        let frame = read_frame(&mut io).await.expect("server SETTINGS");
        if frame.kind == SETTINGS && frame.flags & 0x1 == 0 {
            break frame.payload;
        }
    };
    let announced = settings.chunks_exact(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    });
    assert_eq!(announced, Some(STREAMS));
    write_frame(&mut io, SETTINGS, 0x1, 0, &[]).await; // ACK

    // Open two more streams than allowed, without waiting (a client that ignores SETTINGS).
    let ids: Vec<u32> = (0..STREAMS + 2).map(|i| 2 * i + 1).collect();
    for &id in &ids {
        // END_STREAM | END_HEADERS
        write_frame(&mut io, HEADERS, 0x5, id, &get_headers("/slow")).await;
    }
    let mut refused = Vec::new();
    while refused.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(3), read_frame(&mut io))
            .await
            .expect("the extra streams are refused at once")
            .expect("connection open");
        if frame.kind == RST_STREAM {
            let code = u32::from_be_bytes(frame.payload[..4].try_into().expect("4 bytes"));
            assert_eq!(code, REFUSED_STREAM, "stream {}", frame.stream);
            refused.push(frame.stream);
        }
    }
    assert_eq!(refused, ids[STREAMS as usize..]);
    eventually("the allowed streams reach the handler", || async {
        entered.load(Ordering::SeqCst) == STREAMS as usize
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(entered.load(Ordering::SeqCst), STREAMS as usize);

    // Once released, the allowed ones are answered 200 on the same connection.
    gate.add_permits(STREAMS as usize);
    let mut answered = Vec::new();
    while answered.len() < STREAMS as usize {
        let frame = tokio::time::timeout(Duration::from_secs(3), read_frame(&mut io))
            .await
            .expect("answers")
            .expect("connection open");
        if frame.kind == HEADERS {
            assert_eq!(frame.payload.first(), Some(&0x88), ":status 200");
            answered.push(frame.stream);
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, ids[..STREAMS as usize]);
    stop.cancel();
}
