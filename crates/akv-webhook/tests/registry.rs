//! Registry lookups against a real registry: Debian's `docker-registry` (distribution 2.8),
//! started here on a free loopback port with TLS (a CA made with rcgen) and htpasswd auth.
//! Test images are pushed by this file (oci-client). Registry requests are counted from
//! the registry's own access log (stdout, one line per HTTP request). The registry and
//! push helpers live in `akv_testkit::registry`, shared with the e2e suite.
//!
//! Needs `docker-registry` and `htpasswd`: `scripts/testbed-registry` installs them. A
//! missing tool fails the tests; nothing is skipped.
//!
//! The pull secrets of pods and service accounts come from an in-memory
//! `PullSecretSource` (the Kubernetes-backed one is a thin `kube::Api::get_opt`).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akv_webhook::admission::{Admission, Outcome};
use akv_webhook::inject::ImageConfig;
use akv_webhook::metrics::Metrics;
use akv_webhook::registry::{
    HostPattern, HostRules, ImageConfigSource, Platform, PullSecretSource, RegistryOptions,
    RegistrySource,
};
use async_trait::async_trait;
use base64::Engine;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use akv_testkit::free_port;
use akv_testkit::registry::{
    docker_config, push_image, push_index, test_ca, Registry, PASSWORD, USER,
};
use akv_testkit::review::pod_review;

/// Secrets and service accounts of a pretend cluster.
#[derive(Default)]
struct FakeCluster {
    secrets: BTreeMap<(String, String), Secret>,
    accounts: BTreeMap<(String, String), ServiceAccount>,
    reads: AtomicUsize,
}

impl FakeCluster {
    fn pull_secret(mut self, ns: &str, name: &str, host: &str, user: &str, pass: &str) -> Self {
        let config = docker_config(host, user, pass);
        let secret = Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(serde_json::to_vec(&config).expect("json")),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        self.secrets.insert((ns.into(), name.into()), secret);
        self
    }

    fn account(mut self, ns: &str, name: &str, pull_secrets: &[&str]) -> Self {
        let account: ServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "imagePullSecrets": pull_secrets.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        }))
        .expect("sa");
        self.accounts.insert((ns.into(), name.into()), account);
        self
    }
}

#[async_trait]
impl PullSecretSource for FakeCluster {
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.secrets.get(&(ns.into(), name.into())).cloned())
    }
    async fn service_account(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<ServiceAccount>, String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.accounts.get(&(ns.into(), name.into())).cloned())
    }
}

/// The test registries live on loopback, which lookups refuse unless allowed.
fn loopback_allowed() -> HostRules {
    HostRules {
        allow: vec![HostPattern::parse("127.0.0.1").expect("host")],
        ..HostRules::default()
    }
}

fn options(registry: &Registry) -> RegistryOptions {
    RegistryOptions {
        ca_pem: Some(registry.ca_pem.as_bytes().to_vec()),
        hosts: loopback_allowed(),
        ..RegistryOptions::default()
    }
}

fn source(registry: &Registry, cluster: FakeCluster, metrics: Option<&Metrics>) -> RegistrySource {
    RegistrySource::new(options(registry), Arc::new(cluster), None, metrics).expect("source")
}

fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "team"}, "spec": spec}))
        .expect("pod")
}

fn app_pod(image: &str, extra: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "app", "image": image}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    pod(spec)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The cluster where pod `team/*` has pull secret `regcred` for `registry`.
fn cluster_with_secret(registry: &Registry) -> FakeCluster {
    FakeCluster::default().pull_secret("team", "regcred", &registry.host, USER, PASSWORD)
}

fn with_pull_secret() -> Value {
    json!({"imagePullSecrets": [{"name": "regcred"}]})
}

async fn lookup(source: &RegistrySource, image: &str, extra: Value) -> Result<ImageConfig, String> {
    source
        .image_config(image, &app_pod(image, extra), "team")
        .await
        .map_err(|e| e.to_string())
}

fn admission(source: RegistrySource, deadline: Duration) -> Admission {
    common::admission(Arc::new(source)).with_lookup_deadline(deadline)
}

/// An AdmissionReview for a pod whose container `app` runs `image` with no `command` and
/// has one reference; the pod object has no namespace, as in a real CREATE.
fn review(image: &str, extra: Value) -> Vec<u8> {
    let mut spec = json!({"containers": [{
        "name": "app", "image": image, "args": ["--flag"],
        "env": [{"name": "DB", "value": "akv://kv-1/db-password"}]
    }]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    pod_review(
        "u-1",
        "team",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-", "labels": {"azure.workload.identity/use": "true"}}, "spec": spec}),
    )
}

/// `(allowed, message, decoded patch)`.
fn answer(body: &[u8]) -> (bool, String, Value) {
    let v: Value = serde_json::from_slice(body).expect("json");
    let patch = v["response"]["patch"]
        .as_str()
        .map(|p| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p)
                .expect("b64");
            serde_json::from_slice(&bytes).expect("patch json")
        })
        .unwrap_or(Value::Null);
    (
        v["response"]["allowed"].as_bool().expect("allowed"),
        v["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        patch,
    )
}

fn args_in_patch(patch: &Value) -> Value {
    patch
        .as_array()
        .expect("ops")
        .iter()
        .find(|op| op["path"] == "/spec/containers/0/args")
        .map(|op| op["value"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entrypoint_and_cmd_of_real_images() {
    let registry = Registry::start(true);
    push_image(
        &registry,
        true,
        "team/entry:1",
        Some(&["/entry"]),
        None,
        0,
        "amd64",
    )
    .await;
    push_image(
        &registry,
        true,
        "team/cmd:1",
        None,
        Some(&["/cmd", "-x"]),
        0,
        "amd64",
    )
    .await;
    push_image(
        &registry,
        true,
        "team/both:1",
        Some(&["/entry"]),
        Some(&["serve"]),
        0,
        "amd64",
    )
    .await;
    push_image(&registry, true, "team/neither:1", None, None, 0, "amd64").await;
    push_image(
        &registry,
        true,
        "team/large:1",
        Some(&["/big"]),
        Some(&["c"]),
        1 << 20,
        "amd64",
    )
    .await;
    let source = source(&registry, cluster_with_secret(&registry), None);
    let cases: [(&str, &[&str], &[&str]); 5] = [
        ("team/entry:1", &["/entry"], &[]),
        ("team/cmd:1", &[], &["/cmd", "-x"]),
        ("team/both:1", &["/entry"], &["serve"]),
        ("team/neither:1", &[], &[]),
        ("team/large:1", &["/big"], &["c"]),
    ];
    for (name, entrypoint, cmd) in cases {
        let config = lookup(&source, &registry.image(name), with_pull_secret())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.entrypoint, strings(entrypoint), "{name}");
        assert_eq!(config.cmd, strings(cmd), "{name}");
    }

    // Through the admission path: ENTRYPOINT + the spec's args (which replace CMD).
    let admission = admission(source, Duration::from_secs(3));
    let cases = [
        ("team/both:1", json!(["--", "/entry", "--flag"])),
        ("team/cmd:1", json!(["--", "--flag"])),
    ];
    for (name, want) in cases {
        let reviewed = admission
            .review(&review(&registry.image(name), with_pull_secret()))
            .await
            .expect("review");
        let (allowed, message, patch) = answer(&reviewed.body);
        assert!(allowed, "{name}: {message}");
        assert_eq!(args_in_patch(&patch), want, "{name}");
    }
    let reviewed = admission
        .review(&review(
            &registry.image("team/neither:1"),
            json!({"imagePullSecrets": [{"name": "regcred"}]}),
        ))
        .await
        .expect("review");
    assert_eq!(
        reviewed.outcome,
        Outcome::Patched,
        "args given: the argv is the args"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_forms_and_multi_arch() {
    let registry = Registry::start(true);
    let single = push_image(
        &registry,
        true,
        "ns/sub/app:v1",
        Some(&["/single"]),
        None,
        0,
        "amd64",
    )
    .await;
    let index = push_index(&registry, "ns/multi:v2").await;
    let source = source(&registry, cluster_with_secret(&registry), None);
    let forms = [
        format!("{}/ns/sub/app:v1", registry.host),
        format!("{}/ns/sub/app@{single}", registry.host),
        format!("{}/ns/sub/app:v1@{single}", registry.host),
        // The digest wins over a tag that does not exist.
        format!("{}/ns/sub/app:gone@{single}", registry.host),
    ];
    for image in &forms {
        let config = lookup(&source, image, with_pull_secret())
            .await
            .unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(config.entrypoint, ["/single"], "{image}");
    }
    let multi = registry.image("ns/multi:v2");
    let by_digest = format!("{}/ns/multi@{index}", registry.host);
    let on = |arch: &str| json!({"imagePullSecrets": [{"name": "regcred"}], "nodeSelector": {"kubernetes.io/arch": arch}});
    let affinity = json!({"imagePullSecrets": [{"name": "regcred"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]}}}});
    for (image, extra, want) in [
        (&multi, with_pull_secret(), "/amd64-app"),
        (&multi, on("arm64"), "/arm64-app"),
        (&multi, affinity, "/arm64-app"),
        (&by_digest, on("arm64"), "/arm64-app"),
        (&by_digest, on("amd64"), "/amd64-app"),
    ] {
        let config = lookup(&source, image, extra.clone())
            .await
            .unwrap_or_else(|e| panic!("{image} {extra}: {e}"));
        assert_eq!(config.entrypoint, [want], "{image} {extra}");
    }
    let err = lookup(&source, &multi, on("s390x"))
        .await
        .expect_err("no s390x");
    assert!(
        err.contains("no manifest for the pod's platform linux/s390x (it has: linux/amd64, linux/arm64/v8, unknown/unknown)"),
        "{err}"
    );
    // --default-platform decides for pods that do not say.
    let arm = RegistrySource::new(
        RegistryOptions {
            default_platform: "linux/arm64".parse::<Platform>().expect("platform"),
            ..options(&registry)
        },
        Arc::new(cluster_with_secret(&registry)),
        None,
        None,
    )
    .expect("source");
    let config = lookup(&arm, &multi, with_pull_secret())
        .await
        .expect("arm64");
    assert_eq!(config.entrypoint, ["/arm64-app"]);
    let err = lookup(&source, &registry.image("ns/missing:1"), with_pull_secret())
        .await
        .expect_err("missing");
    assert!(err.contains("was not found in registry"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_pod_service_account_or_none() {
    let ca = test_ca();
    let registry = Registry::start_with(true, &ca);
    let open = Registry::start_with(false, &ca);
    push_image(
        &registry,
        true,
        "team/app:1",
        Some(&["/app"]),
        None,
        0,
        "amd64",
    )
    .await;
    push_image(
        &open,
        false,
        "team/app:1",
        Some(&["/open-app"]),
        None,
        0,
        "amd64",
    )
    .await;
    let image = registry.image("team/app:1");

    // The service account's pull secret.
    let cluster = cluster_with_secret(&registry).account("team", "builder", &["regcred"]);
    let source = source(&registry, cluster, None);
    let config = lookup(&source, &image, json!({"serviceAccountName": "builder"}))
        .await
        .expect("via SA");
    assert_eq!(config.entrypoint, ["/app"]);

    // The pod's pull secret, first in order even when the SA's is wrong.
    let cluster = cluster_with_secret(&registry)
        .pull_secret("team", "stale", &registry.host, USER, "wrong")
        .account("team", "default", &["stale"]);
    let source =
        RegistrySource::new(options(&registry), Arc::new(cluster), None, None).expect("source");
    let config = lookup(&source, &image, with_pull_secret())
        .await
        .expect("pod secret");
    assert_eq!(config.entrypoint, ["/app"]);

    // Wrong credentials only: a clear denial that names the secret.
    let cluster =
        FakeCluster::default().pull_secret("team", "regcred", &registry.host, USER, "wrong");
    let admission = admission(
        RegistrySource::new(options(&registry), Arc::new(cluster), None, None).expect("source"),
        Duration::from_secs(3),
    );
    let reviewed = admission
        .review(&review(&image, with_pull_secret()))
        .await
        .expect("review");
    let (allowed, message, _) = answer(&reviewed.body);
    assert!(!allowed);
    let want = format!(
        "container 'app' has no command, and the entrypoint of image '{image}' could not be read from its registry: registry {} refused to serve {}/team/app to the credentials of pull secret team/regcred",
        registry.host, registry.host
    );
    assert!(message.starts_with(&want), "{message}");
    assert!(
        message.ends_with("Set `command` in the container spec to avoid the registry lookup"),
        "{message}"
    );
    assert!(
        !message.contains("wrong"),
        "no password in messages: {message}"
    );

    // No pull secret at all: anonymous, refused by this registry, and said so.
    let source = RegistrySource::new(
        options(&registry),
        Arc::new(FakeCluster::default().account("team", "default", &["absent"])),
        None,
        None,
    )
    .expect("source");
    let err = lookup(&source, &image, json!({}))
        .await
        .expect_err("anonymous refused");
    assert!(
        err.contains("anonymous access (no pull secret of the pod or its service account matches"),
        "{err}"
    );
    assert!(
        err.contains("pull secret team/absent does not exist"),
        "{err}"
    );

    // Anonymous against a registry that allows it.
    let config = lookup(&source, &open.image("team/app:1"), json!({}))
        .await
        .expect("open registry");
    assert_eq!(config.entrypoint, ["/open-app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_or_hanging_is_denied_within_the_deadline() {
    let ca = test_ca();
    // Nothing listens: connection refused, denied at once.
    let closed = format!("127.0.0.1:{}/team/app:1", free_port());
    let opts = RegistryOptions {
        ca_pem: Some(ca.pem.as_bytes().to_vec()),
        hosts: loopback_allowed(),
        ..RegistryOptions::default()
    };
    let source = RegistrySource::new(opts.clone(), Arc::new(FakeCluster::default()), None, None)
        .expect("source");
    let admission_down = admission(source.clone(), Duration::from_millis(800));
    let started = Instant::now();
    let reviewed = admission_down
        .review(&review(&closed, json!({})))
        .await
        .expect("review");
    let (allowed, message, _) = answer(&reviewed.body);
    assert!(!allowed);
    assert!(
        message.contains("cannot reach registry 127.0.0.1:"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );

    // Accepts connections and never answers: denied when the deadline passes.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = hanging.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((socket, _)) = hanging.accept().await {
            keep.lock().expect("lock").push(socket);
        }
    });
    let image = format!("{addr}/team/app:1");
    let started = Instant::now();
    let reviewed = admission_down
        .review(&review(&image, json!({})))
        .await
        .expect("review");
    let elapsed = started.elapsed();
    let (allowed, message, _) = answer(&reviewed.body);
    assert!(!allowed);
    assert!(
        message.contains(&format!("the entrypoint of image '{image}' could not be read from its registry: timeout: the registry did not answer within 800ms (the webhook's --registry-timeout). Set `command`")),
        "{message}"
    );
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_millis(1300),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_by_digest_and_tag() {
    let registry = Registry::start(true);
    let digest = push_image(
        &registry,
        true,
        "team/cached:1",
        Some(&["/c"]),
        None,
        0,
        "amd64",
    )
    .await;
    let metrics = Metrics::new();
    let cluster = cluster_with_secret(&registry);
    let source = RegistrySource::new(
        RegistryOptions {
            tag_ttl: Duration::from_millis(1500),
            ..options(&registry)
        },
        Arc::new(cluster),
        None,
        Some(&metrics),
    )
    .expect("source");
    let image = registry.image("team/cached:1");
    let before = registry.settled_requests().await;
    lookup(&source, &image, with_pull_secret())
        .await
        .expect("cold");
    let cold = registry.settled_requests().await - before;
    // GET /v2/ (auth challenge), GET manifest by tag, GET config blob.
    assert_eq!(cold, 3, "{:?}", registry.log.lock().expect("lock"));

    let before = registry.settled_requests().await;
    for _ in 0..5 {
        lookup(&source, &image, with_pull_secret())
            .await
            .expect("tag cached");
        let by_digest = format!("{}/team/cached@{digest}", registry.host);
        lookup(&source, &by_digest, with_pull_secret())
            .await
            .expect("digest cached");
    }
    assert_eq!(
        registry.settled_requests().await - before,
        0,
        "cache hits ask nothing"
    );

    // The tag's digest expires; its config does not: one manifest request.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let before = registry.settled_requests().await;
    lookup(&source, &image, with_pull_secret())
        .await
        .expect("tag expired");
    let after_expiry = registry.settled_requests().await - before;
    assert_eq!(after_expiry, 1, "{:?}", registry.log.lock().expect("lock"));

    let text = metrics.encode().expect("metrics");
    for line in [
        "akv_webhook_registry_cache_misses_total{cache=\"tag\"} 2",
        "akv_webhook_registry_cache_hits_total{cache=\"tag\"} 5",
        "akv_webhook_registry_cache_hits_total{cache=\"config\"} 10",
        "akv_webhook_registry_cache_misses_total{cache=\"config\"} 0",
        "akv_webhook_registry_lookup_duration_seconds_count 12",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_reviews_make_one_lookup() {
    let registry = Registry::start(true);
    push_image(
        &registry,
        true,
        "team/popular:1",
        Some(&["/p"]),
        None,
        0,
        "amd64",
    )
    .await;
    let metrics = Metrics::new();
    let cluster = cluster_with_secret(&registry);
    let admission = Arc::new(admission(
        RegistrySource::new(options(&registry), Arc::new(cluster), None, Some(&metrics))
            .expect("source"),
        Duration::from_secs(4),
    ));
    let body = Arc::new(review(
        &registry.image("team/popular:1"),
        with_pull_secret(),
    ));
    let before = registry.settled_requests().await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (admission, body) = (Arc::clone(&admission), Arc::clone(&body));
            tokio::spawn(async move { admission.review(&body).await.expect("review") })
        })
        .collect();
    for task in tasks {
        let reviewed = task.await.expect("task");
        let (allowed, message, patch) = answer(&reviewed.body);
        assert!(allowed, "{message}");
        assert_eq!(args_in_patch(&patch), json!(["--", "/p", "--flag"]));
    }
    let requests = registry.settled_requests().await - before;
    assert_eq!(
        requests,
        3,
        "one cold lookup's requests: {:?}",
        registry.log.lock().expect("lock")
    );
    let text = metrics.encode().expect("metrics");
    assert!(
        text.contains("akv_webhook_registry_cache_misses_total{cache=\"tag\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("akv_webhook_registry_cache_hits_total{cache=\"tag\"} 49"),
        "{text}"
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// What lookups cost: registry requests per cold lookup (bounded) and none for cached
/// ones, checked on every run; admission latencies are printed, not asserted.
/// `scripts/bench-registry` runs it in a release build with more rounds
/// (`AKV_BENCH_ROUNDS`) for the figures in BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_lookup_costs() {
    let rounds: usize = std::env::var("AKV_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let registry = Registry::start(true);
    let mut digests = Vec::new();
    for i in 0..rounds {
        let d = push_image(
            &registry,
            true,
            &format!("bench/app{i}:1"),
            Some(&["/app"]),
            Some(&["run"]),
            2048,
            "amd64",
        )
        .await;
        digests.push(d);
    }
    let admission = admission(
        RegistrySource::new(
            options(&registry),
            Arc::new(cluster_with_secret(&registry)),
            None,
            None,
        )
        .expect("source"),
        Duration::from_secs(3),
    );
    let time = |body: Vec<u8>| {
        let admission = &admission;
        async move {
            let started = Instant::now();
            let reviewed = admission.review(&body).await.expect("review");
            let elapsed = started.elapsed();
            let (allowed, message, _) = answer(&reviewed.body);
            assert!(allowed, "{message}");
            elapsed
        }
    };
    let (mut cold, mut tag, mut digest) = (Vec::new(), Vec::new(), Vec::new());
    let before = registry.settled_requests().await;
    for i in 0..rounds {
        // Each a different repository: a fresh client-side auth challenge too, as for a
        // first image of a registry's repository.
        cold.push(
            time(review(
                &registry.image(&format!("bench/app{i}:1")),
                with_pull_secret(),
            ))
            .await,
        );
    }
    let cold_requests = registry.settled_requests().await - before;
    let before_cached = registry.settled_requests().await;
    for (i, manifest_digest) in digests.iter().enumerate() {
        tag.push(
            time(review(
                &registry.image(&format!("bench/app{i}:1")),
                with_pull_secret(),
            ))
            .await,
        );
        let by_digest = format!("{}/bench/app{i}@{manifest_digest}", registry.host);
        digest.push(time(review(&by_digest, with_pull_secret())).await);
    }
    let cached_requests = registry.settled_requests().await - before_cached;
    assert_eq!(
        cached_requests, 0,
        "cached lookups must not reach the registry"
    );
    assert!(
        cold_requests >= rounds && cold_requests <= 4 * rounds,
        "{cold_requests} registry requests for {rounds} cold lookups"
    );
    // A review with no lookup at all (command set), for comparison.
    let mut none = Vec::new();
    for _ in 0..rounds {
        let mut body: Value =
            serde_json::from_slice(&review(&registry.image("bench/app0:1"), json!({})))
                .expect("json");
        body["request"]["object"]["spec"]["containers"][0]["command"] = json!(["/app"]);
        none.push(time(serde_json::to_vec(&body).expect("json")).await);
    }
    println!(
        "registry benchmark ({rounds} rounds, docker-registry 2.8 on loopback, TLS + htpasswd):"
    );
    println!(
        "  admission latency, cold lookup (median):          {:?}",
        median(cold)
    );
    println!(
        "  admission latency, tag-cached lookup (median):    {:?}",
        median(tag)
    );
    println!(
        "  admission latency, digest-cached lookup (median): {:?}",
        median(digest)
    );
    println!(
        "  admission latency, no lookup (command set):       {:?}",
        median(none)
    );
    println!(
        "  registry requests per cold lookup: {:.2}",
        cold_requests as f64 / rounds as f64
    );
}
