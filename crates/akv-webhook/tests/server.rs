//! The admission server: routes (with `oneshot`), real TLS on loopback (certificates made
//! here with rcgen), certificate reloads the way kubelet updates a Secret volume, timeouts,
//! graceful shutdown, and the binary's flags.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akv_testkit::pki::{TestCa, LOOPBACK};
use akv_testkit::review::pod_review;
use akv_testkit::wait::eventually;
use akv_webhook::admission::Admission;
use akv_webhook::metrics::Metrics;
use akv_webhook::registry::NoLookup;
use akv_webhook::server::{
    self, metrics_router, router, serve_listener, AppState, Options, Server, Tuning,
};
use akv_webhook::tls::{self, CertFiles, CertResolver, TlsSource};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

// ---------------------------------------------------------------- helpers

fn admission() -> Arc<Admission> {
    Arc::new(common::admission(Arc::new(NoLookup)))
}

fn state() -> AppState {
    let request_timeout = Tuning::default().request_timeout;
    AppState::new(admission(), Arc::new(Metrics::new()), request_timeout)
}

fn post_mutate(body: impl Into<Body>, content_type: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri("/mutate");
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).expect("request")
}

fn get_req(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request")
}

/// Sends one request through the router; returns the status, content type and body.
async fn call(router: Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

async fn mutate(body: &str) -> (StatusCode, String, String) {
    call(
        router(state()),
        post_mutate(body.to_string(), Some("application/json")),
    )
    .await
}

/// A Pod CREATE review whose pod has no references and no annotations.
const PLAIN_POD_REVIEW: &str = r#"{
  "apiVersion": "admission.k8s.io/v1",
  "kind": "AdmissionReview",
  "request": {
    "uid": "0a3f6c52-2b8e-4d5f-9d1e-1c0a7f3e9b11",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
    "requestResource": {"group": "", "version": "v1", "resource": "pods"},
    "name": "plain",
    "namespace": "team-a",
    "operation": "CREATE",
    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
    "object": {
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {"name": "plain", "namespace": "team-a"},
      "spec": {"containers": [{
        "name": "app",
        "image": "registry.example/team-a/web:1.4.2",
        "command": ["/app/web"],
        "env": [{"name": "GREETING", "value": "hello akv: not a reference"}]
      }]}
    },
    "oldObject": null,
    "dryRun": false,
    "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
  }
}"#;

/// The value of one sample line (`name{labels} value`) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn fast_tuning() -> Tuning {
    Tuning {
        request_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(2),
        header_read_timeout: Duration::from_secs(2),
        max_connection_age: Duration::from_secs(60),
        grace_period: Duration::from_secs(5),
        tls_reload_interval: Duration::from_millis(50),
        ..Tuning::default()
    }
}

/// A directory laid out like a Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory and renames a
/// new `..data` symlink over the old one, as kubelet's atomic writer does.
struct SecretVolume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl SecretVolume {
    fn new(cert_pem: &str, key_pem: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut volume = SecretVolume { dir, generation: 0 };
        volume.update(cert_pem, key_pem);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(
                Path::new("..data").join(name),
                volume.dir.path().join(name),
            )
            .expect("symlink");
        }
        volume
    }

    fn update(&mut self, cert_pem: &str, key_pem: &str) {
        let root = self.dir.path();
        let old = format!("..2025_01_01_00_00_00.{:09}", self.generation);
        self.generation += 1;
        let new = format!("..2025_01_01_00_00_00.{:09}", self.generation);
        std::fs::create_dir(root.join(&new)).expect("mkdir");
        std::fs::write(root.join(&new).join("tls.crt"), cert_pem).expect("write");
        std::fs::write(root.join(&new).join("tls.key"), key_pem).expect("write");
        std::os::unix::fs::symlink(&new, root.join("..data_tmp")).expect("symlink");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("rename");
        if self.generation > 1 {
            std::fs::remove_dir_all(root.join(old)).expect("remove the old data");
        }
    }

    fn files(&self) -> TlsSource {
        TlsSource::Files {
            cert: self.dir.path().join("tls.crt"),
            key: self.dir.path().join("tls.key"),
        }
    }
}

async fn bind(tls: TlsSource, metrics: Arc<Metrics>) -> Result<Server, server::ServerError> {
    Server::bind(Options {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: "127.0.0.1:0".parse().expect("addr"),
        tls,
        admission: admission(),
        metrics,
        tuning: fast_tuning(),
    })
    .await
}

/// Serves in the background; cancel the token to stop, then await the handle.
fn start(
    server: Server,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), server::ServerError>>,
) {
    let stop = CancellationToken::new();
    let handle = tokio::spawn(server.serve(stop.clone().cancelled_owned()));
    (stop, handle)
}

/// An HTTPS client that trusts only `roots`.
fn client(roots: &[&[u8]]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .timeout(Duration::from_secs(5));
    for root in roots {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(root).expect("der"));
    }
    builder.build().expect("client")
}

/// The leaf certificate the server presents on a new connection.
async fn served_cert(client: &reqwest::Client, addr: SocketAddr) -> Vec<u8> {
    let response = client
        .get(format!("https://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec()
}

// ---------------------------------------------------------------- routes (oneshot)

#[tokio::test]
async fn empty_body_is_400() {
    let (status, content_type, body) = mutate("").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(body.contains("empty request body"), "{body}");
}

#[tokio::test]
async fn garbage_is_400_not_valid_json() {
    let (status, _, body) = mutate("{this is not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not valid JSON"), "{body}");
}

#[tokio::test]
async fn review_without_request_is_400() {
    let (status, _, body) =
        mutate(r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no request"), "{body}");
}

#[tokio::test]
async fn wrong_kind_is_400() {
    let (status, _, body) = mutate(r#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("admission.k8s.io/v1"), "{body}");
}

#[tokio::test]
async fn pod_without_references_is_allowed_without_patch() {
    let state = state();
    let metrics = Arc::clone(&state.metrics);
    let (status, content_type, body) = call(
        router(state),
        post_mutate(PLAIN_POD_REVIEW, Some("application/json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/json");
    let review: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let response = &review["response"];
    assert_eq!(response["uid"], "0a3f6c52-2b8e-4d5f-9d1e-1c0a7f3e9b11");
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none_or(Value::is_null), "{body}");

    let text = metrics.encode().expect("encodes");
    assert_eq!(
        sample(&text, "akv_webhook_reviews_total{outcome=\"skipped\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "akv_webhook_review_duration_seconds_count"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let body = vec![b' '; 5 * 1024 * 1024];
    let (status, _, message) =
        call(router(state()), post_mutate(body, Some("application/json"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("too large"), "{message}");
}

#[tokio::test]
async fn content_type_must_be_json() {
    let (status, _, body) = call(router(state()), post_mutate("{}", None)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body.contains("application/json"), "{body}");

    let (status, _, body) = call(router(state()), post_mutate("{}", Some("text/plain"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body.contains("text/plain"), "{body}");

    // Parameters and case do not matter: this gets past the check to the review.
    let (status, _, body) = call(
        router(state()),
        post_mutate("", Some("Application/JSON; charset=utf-8")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("empty request body"), "{body}");
}

#[tokio::test]
async fn methods_paths_and_probes() {
    let (status, _, _) = call(router(state()), get_req("/mutate")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = call(router(state()), get_req("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(router(state()), get_req("/metrics")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "metrics are on the metrics port only"
    );

    let metrics = Arc::new(Metrics::new());
    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = call(router(state()), get_req(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let (status, _, _) = call(metrics_router(Arc::clone(&metrics)), get_req(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _, _) = call(metrics_router(metrics), get_req("/mutate")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no reviews on the metrics port"
    );
}

#[tokio::test]
async fn metrics_are_served_after_a_review() {
    let state = state();
    let metrics = Arc::clone(&state.metrics);
    let app = router(state);
    let _ = call(
        app.clone(),
        post_mutate(PLAIN_POD_REVIEW, Some("application/json")),
    )
    .await;
    let _ = call(app, post_mutate("nonsense", Some("application/json"))).await;

    let (status, content_type, text) = call(metrics_router(metrics), get_req("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for name in [
        "akv_webhook_reviews_total",
        "akv_webhook_review_duration_seconds_bucket",
        "akv_webhook_patch_bytes_bucket",
        "akv_webhook_bad_requests_total",
        "akv_webhook_tls_reloads_total",
        "akv_webhook_build_info",
    ] {
        assert!(text.contains(name), "no {name} in\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            "akv_webhook_bad_requests_total{reason=\"invalid_review\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

// ---------------------------------------------------------------- real TLS

#[tokio::test]
async fn serves_the_given_certificate_and_follows_secret_volume_updates() {
    let (ca1, ca2) = (TestCa::new("test CA one"), TestCa::new("test CA two"));
    let (one, two, three) = (
        ca1.leaf("one", LOOPBACK),
        ca2.leaf("two", LOOPBACK),
        ca2.leaf("three", LOOPBACK),
    );
    let mut volume = SecretVolume::new(&one.cert_pem, &one.key_pem);
    let metrics = Arc::new(Metrics::new());
    let server = bind(volume.files(), Arc::clone(&metrics))
        .await
        .expect("binds");
    let addr = server.https_addr();
    let (stop, serving) = start(server);
    // A new client for each look, so that each look is a new connection.
    let roots: [&[u8]; 2] = [&ca1.der, &ca2.der];

    assert_eq!(served_cert(&client(&roots), addr).await, one.der);
    // Only the CA that issued the served certificate is needed.
    assert_eq!(served_cert(&self::client(&[&ca1.der]), addr).await, one.der);

    volume.update(&two.cert_pem, &two.key_pem);
    eventually("the new certificate is served", || async {
        served_cert(&client(&roots), addr).await == two.der
    })
    .await;
    let text = metrics.encode().expect("encodes");
    assert_eq!(
        sample(&text, "akv_webhook_tls_reloads_total{result=\"ok\"}"),
        Some(1.0),
        "{text}"
    );

    // A key that does not match: counted as an error, the previous certificate stays.
    volume.update(&three.cert_pem, &one.key_pem);
    eventually("the bad pair is counted", || async {
        let text = metrics.encode().expect("encodes");
        sample(&text, "akv_webhook_tls_reloads_total{result=\"error\"}") == Some(1.0)
    })
    .await;
    assert_eq!(served_cert(&client(&roots), addr).await, two.der);

    // Garbage too; then a good pair again.
    volume.update("not PEM", "not PEM either");
    eventually("the garbage is counted", || async {
        let text = metrics.encode().expect("encodes");
        sample(&text, "akv_webhook_tls_reloads_total{result=\"error\"}") == Some(2.0)
    })
    .await;
    assert_eq!(served_cert(&client(&roots), addr).await, two.der);
    volume.update(&three.cert_pem, &three.key_pem);
    eventually("the good pair is served", || async {
        served_cert(&client(&roots), addr).await == three.der
    })
    .await;

    stop.cancel();
    serving.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn speaks_http2_and_http11_and_serves_metrics_over_plain_http() {
    let ca = TestCa::new("test CA");
    let cert = ca.leaf("webhook", LOOPBACK);
    let volume = SecretVolume::new(&cert.cert_pem, &cert.key_pem);
    let server = bind(volume.files(), Arc::new(Metrics::new()))
        .await
        .expect("binds");
    let (addr, metrics_addr) = (server.https_addr(), server.metrics_addr());
    let (stop, serving) = start(server);

    let url = format!("https://localhost:{}/mutate", addr.port());
    let h2 = client(&[&ca.der]);
    let response = h2
        .post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(PLAIN_POD_REVIEW)
        .send()
        .await
        .expect("h2 request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let h11 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&ca.der).expect("der"))
        .http1_only()
        .resolve("localhost", addr)
        .build()
        .expect("client");
    let response = h11
        .get(format!("https://localhost:{}/readyz", addr.port()))
        .send()
        .await
        .expect("http/1.1 request");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);

    let plain = reqwest::Client::new();
    let text = plain
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(text.contains("akv_webhook_reviews_total"), "{text}");
    let status = plain
        .get(format!("http://{metrics_addr}/healthz"))
        .send()
        .await
        .expect("probe")
        .status();
    assert_eq!(status, StatusCode::OK);

    stop.cancel();
    serving.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn self_signed_default_works_for_localhost_and_127_0_0_1() {
    let server = bind(TlsSource::SelfSigned, Arc::new(Metrics::new()))
        .await
        .expect("binds");
    let addr = server.https_addr();
    let (stop, serving) = start(server);

    let trusting_nothing = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .expect("client");
    let der = served_cert(&trusting_nothing, addr).await;

    let trusting_it = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&der).expect("der"))
        .resolve("localhost", addr)
        .build()
        .expect("client");
    for host in ["localhost", "127.0.0.1"] {
        let response = trusting_it
            .get(format!("https://{host}:{}/healthz", addr.port()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }

    stop.cancel();
    serving.await.expect("joins").expect("stops cleanly");
}

#[tokio::test]
async fn bad_certificate_files_stop_the_start() {
    let ca = TestCa::new("test CA");
    let (one, two) = (ca.leaf("one", LOOPBACK), ca.leaf("two", LOOPBACK));
    let cases = [
        (None, "cannot read certificate"),
        (
            Some((one.cert_pem.as_str(), two.key_pem.as_str())),
            "does not match",
        ),
        (
            Some((one.key_pem.as_str(), one.key_pem.as_str())),
            "no PEM certificate",
        ),
    ];
    for (pair, want) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        if let Some((cert, key)) = pair {
            std::fs::write(&files.cert, cert).expect("write");
            std::fs::write(&files.key, key).expect("write");
        }
        let tls = TlsSource::Files {
            cert: files.cert,
            key: files.key,
        };
        let Err(err) = bind(tls, Arc::new(Metrics::new())).await else {
            panic!("started with {want:?}");
        };
        assert!(err.to_string().contains(want), "{err} (want {want})");
    }
}

// ---------------------------------------------------------------- timeouts and shutdown

/// A TLS acceptor serving a certificate from `ca`, for tests that drive `serve_listener`.
fn acceptor(ca: &TestCa) -> TlsAcceptor {
    let cert = ca.leaf("webhook", LOOPBACK);
    let files = CertFiles {
        cert: PathBuf::from("tls.crt"),
        key: PathBuf::from("tls.key"),
    };
    let provider = tls::provider();
    let key = tls::parse_pair(
        cert.cert_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        &files,
        &provider,
    )
    .expect("pair");
    let config = tls::server_config(provider, Arc::new(CertResolver::new(key))).expect("config");
    TlsAcceptor::from(config)
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Whether the server closes the connection (without answering) within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let tuning = Tuning {
        request_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(300),
        ..fast_tuning()
    };
    let mut state = state();
    state.request_timeout = tuning.request_timeout;
    let metrics = Arc::clone(&state.metrics);
    let stop = CancellationToken::new();

    // Plain HTTP, to write by hand.
    let (plain, plain_addr) = listener().await;
    let plain_task = tokio::spawn(serve_listener(
        plain,
        None,
        router(state),
        tuning,
        stop.clone(),
    ));
    // A body that never comes: 408.
    let mut stream = TcpStream::connect(plain_addr).await.expect("connect");
    stream
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .expect("write");
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let text = metrics.encode().expect("encodes");
    assert_eq!(
        sample(&text, "akv_webhook_bad_requests_total{reason=\"timeout\"}"),
        Some(1.0),
        "{text}"
    );
    // Headers that never end: the connection is closed.
    let mut stream = TcpStream::connect(plain_addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost:")
        .await
        .expect("write");
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "slow headers"
    );
    // An idle connection is closed too.
    let mut stream = TcpStream::connect(plain_addr).await.expect("connect");
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "idle"
    );

    // TLS: a client that never says hello.
    let (tls_listener, tls_addr) = listener().await;
    let tls_task = tokio::spawn(serve_listener(
        tls_listener,
        Some(acceptor(&TestCa::new("test CA"))),
        router(self::state()),
        tuning,
        stop.clone(),
    ));
    let mut stream = TcpStream::connect(tls_addr).await.expect("connect");
    assert!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        "no handshake"
    );

    stop.cancel();
    plain_task.await.expect("joins");
    tls_task.await.expect("joins");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let ca = TestCa::new("test CA");
    let started = Arc::new(Notify::new());
    let slow = {
        let started = Arc::clone(&started);
        Router::new().route(
            "/slow",
            get(move || async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
    };
    let (listener, addr) = listener().await;
    let stop = CancellationToken::new();
    let serving = tokio::spawn(serve_listener(
        listener,
        Some(acceptor(&ca)),
        slow,
        fast_tuning(),
        stop.clone(),
    ));

    let client = client(&[&ca.der]);
    let url = format!("https://127.0.0.1:{}/slow", addr.port());
    let in_flight = tokio::spawn(async move {
        let response = client.get(url).send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.text().await?))
    });
    started.notified().await;
    stop.cancel();

    let (status, body) = in_flight.await.expect("joins").expect("answered");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    tokio::time::timeout(Duration::from_secs(3), serving)
        .await
        .expect("stops after the last request")
        .expect("joins");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let ca = TestCa::new("test CA");
    let started = Arc::new(Notify::new());
    let stuck = {
        let started = Arc::clone(&started);
        Router::new().route(
            "/stuck",
            get(move || async move {
                started.notify_one();
                std::future::pending::<()>().await;
            }),
        )
    };
    let (listener, addr) = listener().await;
    let stop = CancellationToken::new();
    let tuning = Tuning {
        grace_period: Duration::from_millis(200),
        ..fast_tuning()
    };
    let serving = tokio::spawn(serve_listener(
        listener,
        Some(acceptor(&ca)),
        stuck,
        tuning,
        stop.clone(),
    ));

    let client = client(&[&ca.der]);
    let url = format!("https://127.0.0.1:{}/stuck", addr.port());
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    started.notified().await;
    let stopping = Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), serving)
        .await
        .expect("stops after the grace period")
        .expect("joins");
    assert!(stopping.elapsed() >= Duration::from_millis(200));
    assert!(
        in_flight.await.expect("joins").is_err(),
        "the stuck request is cut off"
    );
}

// ---------------------------------------------------------------- the binary

fn webhook() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_akv-webhook"));
    command
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("AKV_WEBHOOK_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs the binary to completion; returns (success, stderr).
fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn startup_errors_are_clear() {
    let loopback = ["--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"];
    let cases: Vec<(Command, &str)> = vec![
        (
            {
                let mut c = webhook();
                c.arg("--tls-cert=/nonexistent/tls.crt");
                c
            },
            "--tls-key",
        ),
        (
            {
                let mut c = webhook();
                c.env("AKV_WEBHOOK_TLS_KEY", "/nonexistent/tls.key");
                c
            },
            "--tls-cert",
        ),
        (
            {
                let mut c = webhook();
                c.arg("--allow-vault-host=https://kv.example.com");
                c
            },
            "--allow-vault-host",
        ),
        (
            {
                let mut c = webhook();
                c.env("AKV_WEBHOOK_ALLOW_VAULT_HOST", "kv.example.com,bad host");
                c
            },
            "'bad host' is not an allowed vault host",
        ),
        (
            {
                let mut c = webhook();
                c.env("AKV_WEBHOOK_LISTEN", "nowhere");
                c
            },
            "--listen",
        ),
        (
            {
                let mut c = webhook();
                c.env("AKV_WEBHOOK_LOG_FORMAT", "yaml");
                c
            },
            "--log-format",
        ),
        (
            {
                let mut c = webhook();
                c.args(loopback)
                    .env("AKV_WEBHOOK_TLS_CERT", "/nonexistent/tls.crt")
                    .env("AKV_WEBHOOK_TLS_KEY", "/nonexistent/tls.key");
                c
            },
            "cannot read certificate /nonexistent/tls.crt",
        ),
        (
            {
                let mut c = webhook();
                c.args(loopback).env("RUST_LOG", "=[bad");
                c
            },
            "RUST_LOG",
        ),
    ];
    for (mut command, want) in cases {
        let (success, stderr) = run(&mut command);
        assert!(!success, "{command:?} started");
        assert!(
            stderr.contains(want),
            "{command:?}: want {want:?} in\n{stderr}"
        );
    }
}

/// The binary, started on free loopback ports with `env` set, once it answers /readyz.
struct Running {
    child: tokio::process::Child,
    https_addr: SocketAddr,
}

impl Running {
    async fn start(env: &[(&str, &str)]) -> Running {
        // Ask the OS for free ports, then let the webhook bind them.
        let (https, https_addr) = listener().await;
        let (metrics, metrics_addr) = listener().await;
        drop((https, metrics));
        let child = tokio::process::Command::from({
            let mut c = webhook();
            c.arg(format!("--listen={https_addr}"))
                .env("AKV_WEBHOOK_METRICS_LISTEN", metrics_addr.to_string())
                .envs(env.iter().copied())
                .stderr(Stdio::piped());
            c
        })
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
        let plain = reqwest::Client::new();
        eventually("the webhook answers /readyz", || async {
            plain
                .get(format!("http://{metrics_addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        Running { child, https_addr }
    }

    /// A client that accepts the self-signed certificate.
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("client")
    }

    /// Sends SIGTERM and waits (at most 5 s) for the exit.
    async fn stop(self) -> std::process::Output {
        let pid = self.child.id().expect("running").to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(5), self.child.wait_with_output())
            .await
            .expect("exits in time")
            .expect("waits")
    }
}

#[tokio::test]
async fn the_binary_serves_and_exits_0_on_sigterm() {
    let webhook = Running::start(&[("AKV_WEBHOOK_LOG_FORMAT", "json")]).await;
    let status = Running::client()
        .get(format!("https://{}/healthz", webhook.https_addr))
        .send()
        .await
        .expect("HTTPS with the self-signed certificate")
        .status();
    assert_eq!(status, StatusCode::OK);
    let output = webhook.stop().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}\n{stderr}", output.status);
    let logs: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let messages: Vec<&str> = logs.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("self-signed")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("SIGTERM")),
        "{messages:?}"
    );
}

/// A review of a pod whose plain env values, annotations and labels hold `marker`, with a
/// reference so that it is injected.
fn review_with_marker(marker: &str, uid: &str, annotations: Value) -> Vec<u8> {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "leaky",
            "namespace": "team-a",
            "labels": {"azure.workload.identity/use": "true", "note": "x"},
            "annotations": annotations,
        },
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.example/app:1",
            "command": ["/app", format!("--password={marker}")],
            "env": [
                {"name": "PLAIN_PASSWORD", "value": marker},
                {"name": "DB", "value": "akv:db-password"},
                {"name": "DSN", "value": format!("postgres://u:{marker}@db/${{akv:db-password}}")},
            ],
        }]},
    });
    pod_review(uid, "team-a", pod)
}

#[tokio::test]
async fn values_never_reach_the_logs_even_at_debug_level() {
    let marker = "MARKER-3f9a1c7e";
    let webhook = Running::start(&[("RUST_LOG", "debug")]).await;
    let client = Running::client();
    let bodies: Vec<Vec<u8>> = vec![
        // Injected: the marker is in plain env values, argv and a non-akv annotation.
        review_with_marker(marker, "u1", serde_json::json!({"team/note": marker})),
        // Denied: a bad setting next to the marker.
        review_with_marker(
            marker,
            "u2",
            serde_json::json!({"team/note": marker, "akv-injector.io/timeout": "soon"}),
        ),
        // Not JSON, with the marker inside.
        format!("{{\"apiVersion\": \"admission.k8s.io/v1\", \"password\": \"{marker}\"")
            .into_bytes(),
        // A review whose pod does not deserialize, with the marker in the bad field.
        String::from_utf8(review_with_marker(marker, "u3", serde_json::json!({})))
            .expect("utf-8")
            .replace(
                "\"containers\":[",
                &format!("\"containers\":\"{marker}\",\"x\":["),
            )
            .into_bytes(),
    ];
    let mut answers = String::new();
    for body in bodies {
        let response = client
            .post(format!("https://{}/mutate", webhook.https_addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answered");
        answers.push_str(&response.text().await.expect("body"));
    }
    assert!(
        answers.contains("u1") && answers.contains("u2"),
        "{answers}"
    );

    let output = webhook.stop().await;
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("review") && logs.contains("DEBUG"),
        "the webhook logged at debug level:\n{logs}"
    );
    assert!(!logs.contains(marker), "a value reached the logs:\n{logs}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains(marker),
        "a value reached stdout"
    );
}
