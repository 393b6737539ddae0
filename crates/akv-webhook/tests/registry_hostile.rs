//! Registry lookups against hostile registries of this test's own: HTTPS servers on
//! loopback (a test CA) that send 2 GiB behind a 100-byte descriptor, drip, never answer,
//! redirect where they should not, name token realms elsewhere, or put a marker in their
//! error bodies. Loopback is refused by default, so the lookups allow `127.0.0.1` as an
//! operator would allow a private registry (`--registry-allow-host`); nothing here sends a
//! packet outside loopback (refusals of 169.254.0.0/16 are tested where they fail before
//! connecting: `src/registry/hosts.rs`).
//!
//! The last test runs the `akv-webhook` binary under a hostile review mix over 500
//! distinct registry hosts and reports its peak RSS.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akv_webhook::admission::{Admission, Outcome};
use akv_webhook::registry::{
    HostPattern, HostRules, ImageConfigSource, NoPullSecrets, PullSecretSource, RegistryOptions,
    RegistrySource,
};
use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use akv_testkit::free_port;
use akv_testkit::pki::TestCa;
use akv_testkit::registry::{docker_config, sha256, test_ca};
use akv_testkit::review::pod_review;

const MARKER: &str = "MARKER-7f3a9c-internal-admin";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const GIB: u64 = 1 << 30;

/// The tests that measure time or memory run one at a time (the machine has two cores).
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How a hostile registry behaves.
#[derive(Clone)]
enum Mode {
    /// A good image: manifest and config, no auth.
    Good,
    /// A manifest whose config declares 100 bytes; the blob is 2 GiB.
    BigConfig,
    /// A 2 GiB manifest.
    BigManifest,
    /// An index whose entry declares 100 bytes; the entry is 10 MiB.
    BigIndexEntry,
    /// Headers, then one byte of the manifest every 50 ms, forever.
    DripManifest,
    /// A good manifest; the config drips.
    DripConfig,
    /// 403 with a marker in the body (an OCI error envelope).
    Forbidden,
    /// 500 with an HTML page holding the marker.
    ServerError,
    /// 307 to this URL (`{path}` is replaced by the request's path).
    Redirect(String),
    /// Bearer auth with this realm; `/token` issues `good-token`.
    Bearer(String),
}

struct Hostile {
    mode: Mode,
    /// `METHOD path authorization` of each request.
    requests: Mutex<Vec<String>>,
    live: Arc<AtomicUsize>,
}

/// A hostile registry on a loopback port.
struct Server {
    host: String,
    state: Arc<Hostile>,
}

impl Server {
    fn requests(&self) -> Vec<String> {
        self.state.requests.lock().expect("lock").clone()
    }
    fn live(&self) -> usize {
        self.state.live.load(Ordering::SeqCst)
    }
}

fn good_config() -> Vec<u8> {
    br#"{"config":{"Entrypoint":["/hostile"],"Cmd":["run"]}}"#.to_vec()
}

fn manifest_for(config: &[u8], declared: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": declared},
        "layers": [],
    }))
    .expect("json")
}

/// `total` bytes of zeros in 64 KiB chunks, never held at once.
fn endless(total: u64) -> Body {
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let stream = futures::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move { (sent < total).then(|| (Ok::<_, Infallible>(chunk), sent + 64 * 1024)) }
    });
    Body::from_stream(stream)
}

fn drip() -> Body {
    let stream = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, Infallible>(Bytes::from_static(b" ")), ()))
    });
    Body::from_stream(stream)
}

fn json_response(content_type: &str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type.to_string())], body).into_response()
}

async fn handle(State(state): State<Arc<Hostile>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("{} {path} {auth}", request.method()));
    let is_manifest = path.contains("/manifests/");
    let is_blob = path.contains("/blobs/");
    let config = good_config();
    match &state.mode {
        Mode::Good => serve_good(&path, &config),
        Mode::BigConfig if is_manifest => json_response(OCI_MANIFEST, manifest_for(&config, 100)),
        Mode::BigConfig => Response::new(endless(2 * GIB)),
        Mode::BigManifest => {
            let mut r = Response::new(endless(2 * GIB));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, OCI_MANIFEST.parse().expect("type"));
            r
        }
        Mode::BigIndexEntry if path.contains("/manifests/sha256:") => {
            Response::new(endless(10 << 20))
        }
        Mode::BigIndexEntry => {
            let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
                "mediaType": OCI_MANIFEST, "digest": sha256(b"entry"), "size": 100,
                "platform": {"os": "linux", "architecture": "amd64"}}]});
            json_response(OCI_INDEX, serde_json::to_vec(&index).expect("json"))
        }
        Mode::DripManifest => {
            let mut r = Response::new(drip());
            r.headers_mut()
                .insert(header::CONTENT_TYPE, OCI_MANIFEST.parse().expect("type"));
            r
        }
        Mode::DripConfig if is_manifest => {
            json_response(OCI_MANIFEST, manifest_for(&config, 100_000))
        }
        Mode::DripConfig => Response::new(drip()),
        Mode::Forbidden => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            format!(
                r#"{{"errors":[{{"code":"DENIED","message":"{MARKER}","detail":"{MARKER}"}}]}}"#
            ),
        )
            .into_response(),
        Mode::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            format!("<html><body>{MARKER} secrets of the internal service</body></html>"),
        )
            .into_response(),
        Mode::Redirect(target) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, target.replace("{path}", &path))],
        )
            .into_response(),
        Mode::Bearer(_) if path == "/token" => json_response(
            "application/json",
            br#"{"token":"good-token","expires_in":300}"#.to_vec(),
        ),
        Mode::Bearer(realm) if auth != "Bearer good-token" => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!(r#"Bearer realm="{realm}",service="hostile""#),
            )],
        )
            .into_response(),
        Mode::Bearer(_) if is_manifest || is_blob => serve_good(&path, &config),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve_good(path: &str, config: &[u8]) -> Response {
    if path.contains("/manifests/") {
        json_response(OCI_MANIFEST, manifest_for(config, config.len()))
    } else if path.contains("/blobs/") {
        json_response("application/octet-stream", config.to_vec())
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// The leaf for every hostile server: 127.0.0.1, 127.0.0.2 and localhost.
fn tls_config(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    akv_webhook::tls::install_default_provider();
    ca.leaf("hostile", &["127.0.0.1", "127.0.0.2", "localhost"])
        .server_config()
}

/// Counts a connection while it is open.
struct Open(Arc<AtomicUsize>);
impl Open {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Open(Arc::clone(live))
    }
}
impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(mode: Mode, tls: &Arc<rustls::ServerConfig>, ip: &str) -> Server {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(Hostile {
        mode,
        requests: Mutex::new(Vec::new()),
        live: Arc::new(AtomicUsize::new(0)),
    });
    let router = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&state));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
    let live = Arc::clone(&state.live);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router, live) = (acceptor.clone(), router.clone(), Arc::clone(&live));
            tokio::spawn(async move {
                let _open = Open::new(&live);
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        host: addr.to_string(),
        state,
    }
}

/// Accepts TCP connections and never says a word (no TLS handshake either); counts the
/// connections still open.
async fn silent() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (l, p) = (Arc::clone(&live), Arc::clone(&peak));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let open = Open::new(&l);
            p.fetch_max(l.load(Ordering::SeqCst), Ordering::SeqCst);
            tokio::spawn(async move {
                let _open = open;
                let mut buf = [0u8; 1024];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr.to_string(), live, peak)
}

fn rules(extra_allow: &[&str], redirect: &[&str]) -> HostRules {
    HostRules {
        allow: std::iter::once("127.0.0.1")
            .chain(extra_allow.iter().copied())
            .map(|h| HostPattern::parse(h).expect("host"))
            .collect(),
        deny: Vec::new(),
        redirect: redirect
            .iter()
            .map(|h| HostPattern::parse(h).expect("host"))
            .collect(),
    }
}

fn source_with(
    ca: &TestCa,
    hosts: HostRules,
    secrets: Arc<dyn PullSecretSource>,
) -> RegistrySource {
    RegistrySource::new(
        RegistryOptions {
            ca_pem: Some(ca.pem.as_bytes().to_vec()),
            hosts,
            ..RegistryOptions::default()
        },
        secrets,
        None,
        None,
    )
    .expect("source")
}

fn pod(extra: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "app", "image": "x"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
}

async fn lookup(source: &RegistrySource, image: &str, extra: Value) -> Result<Vec<String>, String> {
    source
        .image_config(image, &pod(extra), "team")
        .await
        .map(|c| c.entrypoint)
        .map_err(|e| e.to_string())
}

/// One pull secret, `team/regcred`, for every host.
struct OneSecret {
    hosts: Vec<String>,
}

#[async_trait]
impl PullSecretSource for OneSecret {
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
        if ns != "team" || name != "regcred" {
            return Ok(None);
        }
        let mut auths = serde_json::Map::new();
        for host in &self.hosts {
            auths.extend(
                docker_config(host, "pod-user", "pod-pass")["auths"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        let config = json!({"auths": auths});
        Ok(Some(Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    k8s_openapi::ByteString(serde_json::to_vec(&config).expect("json")),
                )]
                .into(),
            ),
            ..Secret::default()
        }))
    }
    async fn service_account(&self, _: &str, _: &str) -> Result<Option<ServiceAccount>, String> {
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_cut_off() {
    let ca = test_ca();
    let tls = tls_config(&ca);
    let source = source_with(&ca, rules(&[], &[]), Arc::new(NoPullSecrets));
    let cases = [
        (
            Mode::BigConfig,
            "too large: the image config is larger than 100 bytes (its declared size)",
        ),
        (
            Mode::BigManifest,
            "too large: the manifest is larger than 4194304 bytes (the webhook's limit)",
        ),
        (
            Mode::BigIndexEntry,
            "too large: the manifest is larger than 100 bytes (its declared size)",
        ),
    ];
    for (mode, want) in cases {
        let server = serve(mode, &tls, "127.0.0.1").await;
        let started = Instant::now();
        let err = lookup(&source, &format!("{}/team/app:1", server.host), json!({}))
            .await
            .expect_err("too large");
        assert!(err.contains(want), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // The process is still here, and its memory did not grow by gigabytes.
    let rss = vm_kib("self", "VmHWM");
    println!(
        "test process peak RSS after 2 GiB answers: {} MiB",
        rss / 1024
    );
    assert!(rss < 256 * 1024, "{rss} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_text_never_reaches_the_denial() {
    let ca = test_ca();
    let tls = tls_config(&ca);
    let forbidden = serve(Mode::Forbidden, &tls, "127.0.0.1").await;
    let broken = serve(Mode::ServerError, &tls, "127.0.0.1").await;
    let source = source_with(&ca, rules(&[], &[]), Arc::new(NoPullSecrets));
    let admission = admission(source, Duration::from_secs(2));
    for (server, want) in [
        (&forbidden, "unauthorized (HTTP 403, code DENIED)"),
        (&broken, "answered HTTP 500"),
    ] {
        let image = format!("{}/team/app:1", server.host);
        let reviewed = admission
            .review(&review(&[image.as_str()]))
            .await
            .expect("review");
        let (allowed, message) = answer(&reviewed.body);
        assert!(!allowed);
        assert!(message.contains(want), "{message}");
        assert!(
            !message.contains(MARKER),
            "registry text in the denial: {message}"
        );
        assert!(!message.contains("internal"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_and_realms_stay_within_the_rules() {
    let ca = test_ca();
    let tls = tls_config(&ca);
    let good = serve(Mode::Good, &tls, "127.0.0.1").await;
    let good_port = good.host.rsplit_once(':').expect("port").1.to_string();
    let token = serve(Mode::Bearer("unused".into()), &tls, "127.0.0.1").await;
    let token_port = token.host.rsplit_once(':').expect("port").1.to_string();

    let secrets =
        |hosts: Vec<String>| -> Arc<dyn PullSecretSource> { Arc::new(OneSecret { hosts }) };
    let cases: Vec<(Mode, &[&str], &str)> = vec![
        (
            Mode::Redirect(format!("http://127.0.0.1:{good_port}{{path}}")),
            &[],
            "leads to a http URL on 127.0.0.1; only https is followed",
        ),
        (
            Mode::Redirect(format!("https://localhost:{good_port}{{path}}")),
            &[],
            "leads to another host, localhost, which the operator has not allowed (--registry-redirect-host)",
        ),
        (
            // Allowed as a redirect target, but localhost is loopback: the resolver refuses it.
            Mode::Redirect(format!("https://localhost:{good_port}{{path}}")),
            &["localhost"],
            "registry host localhost is a loopback address (",
        ),
        (
            Mode::Redirect(format!("https://127.0.0.2:{good_port}{{path}}")),
            &["127.0.0.2"],
            "registry host 127.0.0.2:",
        ),
        (
            Mode::Bearer(format!("http://127.0.0.1:{token_port}/token")),
            &[],
            "the registry's token realm leads to a http URL",
        ),
        (
            Mode::Bearer(format!("https://localhost:{token_port}/token")),
            &[],
            "the registry's token realm leads to another host, localhost",
        ),
    ];
    for (mode, redirect_hosts, want) in cases {
        let server = serve(mode, &tls, "127.0.0.1").await;
        let source = source_with(
            &ca,
            rules(&[], redirect_hosts),
            secrets(vec![server.host.clone()]),
        );
        let before = (good.requests().len(), token.requests().len());
        let err = lookup(
            &source,
            &format!("{}/team/app:1", server.host),
            json!({"imagePullSecrets": [{"name": "regcred"}]}),
        )
        .await
        .expect_err("refused");
        assert!(err.contains(want), "{want}: {err}");
        assert_eq!(
            (good.requests().len(), token.requests().len()),
            before,
            "nothing reached the refused target: {err}"
        );
    }

    // A realm on the registry's own host gets the pull secret's credentials, over https.
    let server = serve_bearer_on_itself(&tls).await;
    let source = source_with(&ca, rules(&[], &[]), secrets(vec![server.host.clone()]));
    let entrypoint = lookup(
        &source,
        &format!("{}/team/app:1", server.host),
        json!({"imagePullSecrets": [{"name": "regcred"}]}),
    )
    .await
    .expect("bearer on the same host");
    assert_eq!(entrypoint, ["/hostile"]);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "pod-user:pod-pass"
        )
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /token ") && r.ends_with(&basic)),
        "{requests:?}"
    );

    // A realm on another host gets them only when the operator allows that host.
    let realm_host = serve(Mode::Bearer("unused".into()), &tls, "127.0.0.1").await;
    let realm_port = realm_host
        .host
        .rsplit_once(':')
        .expect("port")
        .1
        .to_string();
    let registry = serve(
        Mode::Bearer(format!("https://localhost:{realm_port}/token")),
        &tls,
        "127.0.0.1",
    )
    .await;
    let source = source_with(
        &ca,
        rules(&["localhost"], &["localhost"]),
        secrets(vec![registry.host.clone()]),
    );
    let entrypoint = lookup(
        &source,
        &format!("{}/team/app:1", registry.host),
        json!({"imagePullSecrets": [{"name": "regcred"}]}),
    )
    .await
    .expect("operator-allowed realm");
    assert_eq!(entrypoint, ["/hostile"]);
    assert!(realm_host.requests().iter().any(|r| r.ends_with(&basic)));
}

/// A registry whose token realm is its own `/token`.
async fn serve_bearer_on_itself(tls: &Arc<rustls::ServerConfig>) -> Server {
    // The port is known only after binding: bind, then build the realm from it.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
    let state = Arc::new(Hostile {
        mode: Mode::Bearer(format!("https://{addr}/token")),
        requests: Mutex::new(Vec::new()),
        live: Arc::new(AtomicUsize::new(0)),
    });
    let router = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&state));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        host: addr.to_string(),
        state,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_refused_unless_allowed() {
    let ca = test_ca();
    let tls = tls_config(&ca);
    let good = serve(Mode::Good, &tls, "127.0.0.1").await;
    let port = good.host.rsplit_once(':').expect("port").1;
    let refusing = source_with(&ca, HostRules::default(), Arc::new(NoPullSecrets));
    let admission = admission(refusing, Duration::from_secs(2));
    for image in [
        format!("127.0.0.1:{port}/team/app:1"),
        format!("localhost:{port}/team/app:1"),
    ] {
        let reviewed = admission
            .review(&review(&[image.as_str()]))
            .await
            .expect("review");
        let (allowed, message) = answer(&reviewed.body);
        assert!(!allowed);
        assert!(
            message.contains(&format!("the entrypoint of image '{image}' could not be read from its registry: registry host")),
            "{message}"
        );
        assert!(message.contains("is a loopback address ("), "{message}");
        assert!(message.contains("--registry-allow-host"), "{message}");
        assert!(
            message.ends_with("Set `command` in the container spec to avoid the registry lookup"),
            "{message}"
        );
    }
    assert!(good.requests().is_empty(), "{:?}", good.requests());
    // Allowed by the operator: looked up.
    let allowed = source_with(&ca, rules(&[], &[]), Arc::new(NoPullSecrets));
    let entrypoint = lookup(&allowed, &format!("{}/team/app:1", good.host), json!({}))
        .await
        .expect("allowed");
    assert_eq!(entrypoint, ["/hostile"]);
    // A denied network, given as a CIDR.
    let denied = source_with(
        &ca,
        HostRules {
            allow: Vec::new(),
            deny: vec!["10.96.0.0/12".parse().expect("cidr")],
            redirect: Vec::new(),
        },
        Arc::new(NoPullSecrets),
    );
    let err = lookup(&denied, "10.96.0.10:443/team/app:1", json!({}))
        .await
        .expect_err("denied");
    assert!(
        err.contains("is in 10.96.0.0/12, denied by --registry-deny-cidr"),
        "{err}"
    );
}

fn admission(source: RegistrySource, deadline: Duration) -> Admission {
    common::admission(Arc::new(source)).with_lookup_deadline(deadline)
}

/// A review of a pod in `team` whose containers run `images`, none with `command`.
fn review(images: &[&str]) -> Vec<u8> {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            json!({"name": format!("c{i}"), "image": image,
                   "env": [{"name": "DB", "value": "akv://kv-1/db-password"}]})
        })
        .collect();
    pod_review(
        "u-1",
        "team",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}, "spec": {"containers": containers}}),
    )
}

fn answer(body: &[u8]) -> (bool, String) {
    let v: Value = serde_json::from_slice(body).expect("json");
    (
        v["response"]["allowed"].as_bool().expect("allowed"),
        v["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// One deadline for all of a review's lookups, met within ±100 ms at 1, 50 and 500
/// images, on a registry that never answers and on one that drips; no lookup or
/// connection is left once the review is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deadline_per_review_at_any_number_of_images() {
    let _alone = MEASURING.lock().await;
    let ca = test_ca();
    let tls = tls_config(&ca);
    let (silent_host, silent_live, silent_peak) = silent().await;
    let dripping = serve(Mode::DripManifest, &tls, "127.0.0.1").await;
    let drip_config = serve(Mode::DripConfig, &tls, "127.0.0.1").await;
    let deadline = Duration::from_millis(1000);
    let mut figures = BTreeMap::new();
    for (name, host) in [
        ("never answers", silent_host.as_str()),
        ("drips the manifest", dripping.host.as_str()),
        ("drips the config", drip_config.host.as_str()),
    ] {
        for count in [1usize, 50, 500] {
            let source = source_with(&ca, rules(&[], &[]), Arc::new(NoPullSecrets));
            let admission = admission(source.clone(), deadline);
            let images: Vec<String> = (0..count)
                .map(|i| format!("{host}/team/app{i}:1"))
                .collect();
            let refs: Vec<&str> = images.iter().map(String::as_str).collect();
            let body = review(&refs);
            let started = Instant::now();
            let reviewed = admission.review(&body).await.expect("review");
            let elapsed = started.elapsed();
            let (allowed, message) = answer(&reviewed.body);
            assert_eq!(reviewed.outcome, Outcome::Denied);
            assert!(!allowed);
            assert!(
                message.contains("timeout: the registry did not answer within 1s (the webhook's --registry-timeout). Set `command`"),
                "{message}"
            );
            let off = elapsed.as_millis() as i64 - deadline.as_millis() as i64;
            figures.insert(format!("{name}, {count} images"), off);
            assert!(
                off.abs() <= 100,
                "{name}, {count} images: answered after {elapsed:?}"
            );
            assert_eq!(source.in_flight(), 0, "no lookup outlives the review");
        }
    }
    // Connections of cancelled lookups are closed, not left to the registry.
    let settle = Instant::now();
    while (silent_live.load(Ordering::SeqCst) > 0 || dripping.live() > 0 || drip_config.live() > 0)
        && settle.elapsed() < Duration::from_millis(500)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        silent_live.load(Ordering::SeqCst),
        0,
        "silent registry connections left open"
    );
    assert_eq!(
        dripping.live(),
        0,
        "dripping registry connections left open"
    );
    assert_eq!(
        drip_config.live(),
        0,
        "dripping config connections left open"
    );
    // At most 8 lookups of one review at once.
    assert!(
        silent_peak.load(Ordering::SeqCst) <= 8,
        "{}",
        silent_peak.load(Ordering::SeqCst)
    );
    println!("deadline 1s: answered this many ms off it:");
    for (case, off) in figures {
        println!("  {case}: {off:+} ms");
    }
}

/// One pod cannot occupy the webhook: its lookups take at most 8 of the shared slots, and
/// all reviews together at most `max_concurrent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_bounded_per_review_and_across_reviews() {
    let _alone = MEASURING.lock().await;
    let ca = test_ca();
    let tls = tls_config(&ca);
    let (silent_host, _, silent_peak) = silent().await;
    let good = serve(Mode::Good, &tls, "127.0.0.1").await;
    let source = RegistrySource::new(
        RegistryOptions {
            ca_pem: Some(ca.pem.as_bytes().to_vec()),
            hosts: rules(&[], &[]),
            max_concurrent: 12,
            ..RegistryOptions::default()
        },
        Arc::new(NoPullSecrets),
        None,
        None,
    )
    .expect("source");
    let admission = Arc::new(admission(source, Duration::from_millis(1500)));
    let hostile: Vec<String> = (0..500)
        .map(|i| format!("{silent_host}/team/h{i}:1"))
        .collect();
    let refs: Vec<&str> = hostile.iter().map(String::as_str).collect();
    let body = Arc::new(review(&refs));
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let (admission, body) = (Arc::clone(&admission), Arc::clone(&body));
            tokio::spawn(async move { admission.review(&body).await.expect("review") })
        })
        .collect();
    let started = Instant::now();
    while silent_peak.load(Ordering::SeqCst) < 8 && started.elapsed() < Duration::from_millis(1200)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        silent_peak.load(Ordering::SeqCst) >= 8,
        "the lookups did start"
    );
    for task in pending {
        let reviewed = task.await.expect("task");
        assert_eq!(reviewed.outcome, Outcome::Denied);
    }
    // Three reviews of 500 images: 8 each at most, 12 in all.
    let peak = silent_peak.load(Ordering::SeqCst);
    assert!(peak <= 12, "{peak} connections at once");
    // With the slots free again, a good review goes through at once.
    let started = Instant::now();
    let reviewed = admission
        .review(&review(&[format!("{}/team/app:1", good.host).as_str()]))
        .await
        .expect("review");
    assert_eq!(
        reviewed.outcome,
        Outcome::Patched,
        "{}",
        answer(&reviewed.body).1
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// `VmHWM`/`VmRSS` of a process, in KiB.
fn vm_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field")
}

/// The webhook binary under a hostile mix: 500 distinct registry hosts (loopback ports)
/// that send 2 GiB, drip, never answer, redirect, refuse with big bodies or answer well,
/// 40 reviews of 25–500 images each, 8 at a time. Its peak RSS must stay far under the
/// 128 MiB limit of its Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_memory_under_a_hostile_mix_of_500_hosts() {
    let _alone = MEASURING.lock().await;
    let ca = test_ca();
    let tls = tls_config(&ca);
    let mut hosts = Vec::new();
    let mut keep = Vec::new();
    for i in 0..500 {
        let mode = match i % 6 {
            0 => Mode::BigConfig,
            1 => Mode::BigManifest,
            2 => Mode::DripConfig,
            3 => Mode::Forbidden,
            4 => Mode::Redirect("https://localhost:1{path}".to_string()),
            _ => Mode::Good,
        };
        let server = serve(mode, &tls, "127.0.0.1").await;
        hosts.push(server.host.clone());
        keep.push(server);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::File::create(&ca_file)
        .and_then(|mut f| f.write_all(ca.pem.as_bytes()))
        .expect("write ca");
    // The webhook's own serving certificate, from the same CA.
    ca.leaf("webhook", &["127.0.0.1"]).write_pem(dir.path());
    let port = free_port();
    // AKV_WEBHOOK_BIN measures another build (e.g. target/release/akv-webhook).
    let bin = std::env::var("AKV_WEBHOOK_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_akv-webhook").to_string());
    let mut child = std::process::Command::new(&bin)
        .args([
            &format!("--listen=127.0.0.1:{port}"),
            &format!("--metrics-listen=127.0.0.1:{}", free_port()),
            "--registry-allow-host=127.0.0.1",
            "--registry-timeout=2s",
        ])
        .arg("--registry-ca-file")
        .arg(&ca_file)
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("AZURE_CLIENT_ID")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("webhook starts");
    let pid = child.id().to_string();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("ca"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{port}/mutate");
    let started = Instant::now();
    while client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the webhook did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let baseline = vm_kib(&pid, "VmRSS");
    // 40 reviews: each names a window of the 500 hosts, every host many times over.
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|r| {
            let count = if r % 10 == 0 {
                500
            } else {
                25 + (r * 13) % 100
            };
            let images: Vec<String> = (0..count)
                .map(|i| format!("{}/team/app{r}-{i}:1", hosts[(r * 37 + i) % hosts.len()]))
                .collect();
            let refs: Vec<&str> = images.iter().map(String::as_str).collect();
            review(&refs)
        })
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let results = futures::stream::iter(bodies.into_iter().map(|body| {
        let (client, url, answered) = (client.clone(), url.clone(), Arc::clone(&answered));
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .expect("answered");
            let status = response.status();
            let text = response.text().await.expect("body");
            answered.fetch_add(1, Ordering::SeqCst);
            (status, started.elapsed(), text)
        }
    }))
    .buffer_unordered(8);
    let results: Vec<_> = results.collect().await;
    let peak = vm_kib(&pid, "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let slowest = results.iter().map(|(_, d, _)| *d).max().unwrap_or_default();
    println!(
        "webhook {bin} under the hostile mix (500 hosts, 40 reviews, 8 at a time): RSS at start {} MiB, peak {} MiB; slowest review {slowest:?}",
        baseline / 1024,
        peak / 1024
    );
    for (status, elapsed, text) in &results {
        assert_eq!(*status, StatusCode::OK, "{text}");
        // The deadline is 2 s; the apiserver gives up at 5 s (this machine is shared).
        assert!(*elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert!(!text.contains(MARKER), "registry text in an answer");
        let (allowed, message) = answer(text.as_bytes());
        assert!(!allowed, "every review names a hostile registry");
        assert!(
            message.contains("could not be read from its registry"),
            "{message}"
        );
    }
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
    drop(keep);
}
