//! End to end on a real Kubernetes API server (issue 4): one test bed per run
//! (`scripts/kube-up`: etcd, kube-apiserver, kube-controller-manager and the real Azure
//! Workload Identity webhook), our `akv-webhook` registered beside it, akv-env's Key Vault
//! harness behind a token endpoint that trusts the API server's service-account issuer,
//! and a kubelet stand-in that runs the stored pods with the real `akv-env`. For
//! containers without `command` (issue 5), a real image registry (Debian's
//! `docker-registry`, TLS + htpasswd) holds test images; our webhook reads their
//! ENTRYPOINT/CMD with the pull secrets it reads from the API server as the service
//! account of `manifests/base`, with only the RBAC given there.
//!
//! A single `#[test]` runs named steps in order and reports each (they share one test bed,
//! which takes seconds to start, and some build on earlier ones); a failing step does not
//! stop the others, the test fails at the end naming every failed step. Every process
//! started here is stopped by a guard on drop, on failure too.
//!
//! Run it with `scripts/e2e` (builds the binaries, then `cargo test -p akv-e2e`).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use akv_e2e::harness_api::random_hex;
use akv_e2e::kubelet::Kubelet;
use akv_e2e::registry::{self as registry_bed, Registry};
use akv_e2e::{
    free_port, repo, wait_until, workspace_binary, KeyVault, Kubectl, TestBed, Webhook,
    WebhookConfig,
};
use base64::Engine as _;
use serde_json::{json, Value};

const ENV_IMAGE: &str = "registry.example/akv-injector:0.1.0";
const APP_IMAGE: &str = "registry.example/shop/api:3.2.0";
const OUR_WEBHOOK: &str = "pods.akv-injector.io";
const OUR_CONFIG: &str = "akv-injector";
const DENIED: &str = "admission webhook \"pods.akv-injector.io\" denied the request";
const CLIENT_ID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const NS_A: &str = "e2e-team-a";
const NS_B: &str = "e2e-team-b";
const NS_PLAIN: &str = "e2e-plain";
const INJECT: (&str, &str) = ("akv-injector.io/injection", "enabled");
/// Where the images without `command` are pulled from (our registry, opted in).
const NS_REG: &str = "e2e-registry";
/// Images pushed to the test registry: (repository:tag, ENTRYPOINT, CMD). Each case uses
/// its own image: the webhook's caches are shared by all pods, so an image read once
/// would not need credentials again.
const IMG_POD_SECRET: (&str, &[&str], &[&str]) = (
    "e2e/shop:1.0",
    &["/usr/local/bin/shop", "serve"],
    &["--port", "8080"],
);
const IMG_SA_SECRET: (&str, &[&str], &[&str]) = (
    "e2e/web:2.1",
    &["/docker-entrypoint.sh"],
    &["nginx", "-g", "daemon off;"],
);
const IMG_WRONG_CREDENTIALS: (&str, &[&str], &[&str]) = ("e2e/private:3", &["/private"], &[]);
/// The webhook's service account and namespace, as in manifests/base.
const WEBHOOK_NS: &str = "akv-injector";
const WEBHOOK_SA: &str = "akv-webhook";

/// Everything one run shares. Fields drop in order: webhook, harness, then the test bed.
struct Ctx {
    webhook: Webhook,
    registry: Registry,
    /// The webhook's KUBECONFIG: service account akv-injector/akv-webhook.
    webhook_kubeconfig: PathBuf,
    kv: KeyVault,
    bed: TestBed,
    k: Kubectl,
    work: tempfile::TempDir,
    akv_env: PathBuf,
    /// `certs/make-certs.sh` output: our webhook's serving certificate and the caBundle.
    certs: PathBuf,
    /// Secret values stored in the vaults: none may appear in any stored object.
    secrets: BTreeMap<&'static str, String>,
    node: String,
    app_mjs: String,
}

fn main_setup() -> Ctx {
    TestBed::require_installed(); // first: fail at once, naming scripts/testbed-kube install
    let webhook_bin = workspace_binary("AKV_WEBHOOK_BIN", "akv-webhook", "akv-webhook");
    let akv_env = workspace_binary("AKV_ENV_BIN", "akv-env", "akv-env");
    let work = tempfile::Builder::new()
        .prefix("akv-e2e-work.")
        .tempdir()
        .expect("work dir");

    // The Key Vault side first: the token endpoint's address must be known to kube-up,
    // which makes the Workload Identity webhook inject it as AZURE_AUTHORITY_HOST.
    let mut kv = KeyVault::start(work.path());
    let front_port = free_port();
    let bed = TestBed::start(&[(
        "AKV_TESTBED_AUTHORITY_HOST",
        format!("https://localhost:{front_port}/"),
    )]);
    let k = bed.kubectl();
    let jwks = work.path().join("apiserver-jwks.json");
    std::fs::write(&jwks, k.ok(&["get", "--raw", "/openid/v1/jwks"])).expect("jwks");
    kv.start_front(front_port, &jwks, bed.var("KUBE_SA_ISSUER"), work.path());

    // Our serving certificate and caBundle come from the shipped script (item 8: its
    // output is accepted by the API server), with 127.0.0.1 as an extra name.
    let certs = work.path().join("webhook-tls");
    let out = Command::new(repo().join("certs/make-certs.sh"))
        .arg("--out")
        .arg(&certs)
        .args(["--san", "127.0.0.1", "--base"])
        .arg(repo().join("manifests/base"))
        .output()
        .expect("run certs/make-certs.sh");
    assert!(
        out.status.success(),
        "certs/make-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The image registry (TLS with its own CA, htpasswd) and the test images in it.
    let registry = Registry::start(true);
    let registry_ca = work.path().join("registry-ca.crt");
    std::fs::write(&registry_ca, &registry.ca_pem).expect("registry CA");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (repo_tag, entrypoint, cmd) in [IMG_POD_SECRET, IMG_SA_SECRET, IMG_WRONG_CREDENTIALS] {
        let cmd = (!cmd.is_empty()).then_some(cmd);
        runtime.block_on(registry_bed::push_image(
            &registry,
            true,
            repo_tag,
            Some(entrypoint),
            cmd,
            0,
            "amd64",
        ));
    }
    // Our webhook reads pull secrets as its service account of manifests/base, with the
    // ClusterRole and binding of manifests/base/rbac.yaml and nothing more, through a
    // kubeconfig holding a token of that service account (in a cluster: the mounted
    // token, found by kube's in-cluster configuration).
    k.namespace(WEBHOOK_NS, &[]);
    let base = repo().join("manifests/base");
    for file in ["serviceaccount.yaml", "rbac.yaml"] {
        k.ok(&["apply", "-f", base.join(file).to_str().expect("utf-8")]);
    }
    let webhook_kubeconfig = bed.service_account_kubeconfig(
        WEBHOOK_NS,
        WEBHOOK_SA,
        "2h",
        &work.path().join("akv-webhook.kubeconfig"),
    );

    let webhook = Webhook::start(WebhookConfig {
        bin: webhook_bin,
        tls_cert: certs.join("tls.crt"),
        tls_key: certs.join("tls.key"),
        env_image: ENV_IMAGE.into(),
        allow_vault_hosts: vec!["127.0.0.1".into(), "127.0.0.2".into()],
        registry_ca_file: Some(registry_ca),
        kubeconfig: Some(webhook_kubeconfig.clone()),
        log: work.path().join("akv-webhook.log"),
    });

    let secrets: BTreeMap<&'static str, String> = [
        ("db-password", format!("db-pw-{}", random_hex(16))),
        ("stripe-key", format!("sk_live_{}", random_hex(16))),
        ("partner-token", format!("partner-{}", random_hex(16))),
    ]
    .into_iter()
    .collect();
    kv.secret("a", "db-password", &secrets["db-password"]);
    kv.secret("a", "stripe-key", &secrets["stripe-key"]);
    kv.secret("b", "partner-token", &secrets["partner-token"]);
    let node = kv.path("AKV_TESTBED_NODE").to_string();
    let app_mjs = Path::new(kv.path("AKV_TESTBED_HARNESS"))
        .with_file_name("app.mjs")
        .display()
        .to_string();
    Ctx {
        webhook,
        registry,
        webhook_kubeconfig,
        kv,
        k,
        bed,
        work,
        akv_env,
        certs,
        secrets,
        node,
        app_mjs,
    }
}

#[test]
fn e2e() {
    let t0 = Instant::now();
    let mut ctx = main_setup();
    eprintln!(
        "e2e: set up in {:.1}s (test bed {}, work {})",
        t0.elapsed().as_secs_f64(),
        ctx.bed.dir().display(),
        ctx.work.path().display()
    );
    type Step = fn(&mut Ctx);
    let steps: &[(&str, Step)] = &[
        (
            "0. our webhook registered as manifests/base says (clientConfig aside)",
            step_register,
        ),
        (
            "1. Deployment in an opted-in namespace: injected pods, no secret stored",
            step_injected_deployment,
        ),
        (
            "1b. both orders with the Workload Identity webhook end in the same pod",
            step_both_orders,
        ),
        (
            "2. unlabelled namespace, kube-system, akv-injector, opt-out label: untouched, webhook not called",
            step_not_sent,
        ),
        (
            "3. a namespace enforcing the restricted Pod Security Standard admits injected pods",
            step_restricted,
        ),
        (
            "4. kubectl apply --dry-run=server: works, no side effects",
            step_dry_run,
        ),
        (
            "5. bad reference / bad annotation: refused with our message",
            step_denials,
        ),
        (
            "5b. no `command`, Deployment with imagePullSecrets: ENTRYPOINT/CMD from the TLS + htpasswd registry",
            step_registry_pod_secret,
        ),
        (
            "5c. no `command`, pull secret on the service account: read from the API server with the manifests' RBAC",
            step_registry_sa_secret,
        ),
        (
            "5d. no `command`, wrong registry credentials: refused with our message",
            step_registry_wrong_credentials,
        ),
        (
            "5e. pull secret names that escape: refused; the webhook reads only in the pod's namespace (audit log)",
            step_registry_names_cannot_escape,
        ),
        (
            "6. webhook down: opted-in namespaces fail (failurePolicy Fail), others work; back up: works",
            step_webhook_down,
        ),
        (
            "7. kubelet stand-in: the application sees the secrets; an untrusted service account fails",
            step_kubelet,
        ),
        (
            "8. the shipped manifests and the certs script's overlay apply to the API server",
            step_manifests,
        ),
    ];
    let mut failed = Vec::new();
    for (name, step) in steps {
        let t = Instant::now();
        eprintln!("e2e: --- {name}");
        let result = catch_unwind(AssertUnwindSafe(|| step(&mut ctx)));
        let secs = t.elapsed().as_secs_f64();
        match result {
            Ok(()) => eprintln!("e2e: ok   {name} ({secs:.1}s)"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("e2e: FAIL {name} ({secs:.1}s): {msg}");
                failed.push(name.to_string());
                // a step may have left our webhook stopped: later steps need it
                if !ctx.webhook.is_running() {
                    ctx.webhook.resume();
                }
            }
        }
    }
    if !failed.is_empty() {
        eprintln!(
            "e2e: akv-webhook log (last lines):\n{}\n{}",
            ctx.webhook.log_tail(40),
            ctx.bed.log_tails(20)
        );
    }
    eprintln!(
        "e2e: {} steps, {} failed, {:.1}s",
        steps.len(),
        failed.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "failed steps:\n  {}",
        failed.join("\n  ")
    );
}

// ---- objects ------------------------------------------------------------------------------

/// A security context that passes the `restricted` Pod Security Standard.
fn restricted_container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The pod template of the contract's example Deployment, made runnable by the kubelet
/// stand-in: the app is akv-env's test app (`node app.mjs dump OUT ARGS...`), which writes
/// what it sees (argv, env) to the `out` volume.
fn shop_template(ctx: &Ctx, sa: &str) -> Value {
    let vault_a = ctx.kv.vault_url("a");
    let vault_b_host = format!("127.0.0.2:{}", ctx.kv.vault_b);
    json!({
        "metadata": {
            "labels": {"app": "shop-api", "azure.workload.identity/use": "true"},
            "annotations": {
                "akv-injector.io/vault": vault_a,
                "akv-injector.io/env.STRIPE_KEY": "stripe-key",
                "akv-injector.io/timeout": "30s",
            },
        },
        "spec": {
            "serviceAccountName": sa,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{
                "name": "migrate",
                "image": APP_IMAGE,
                "command": ["/bin/true"],
                "securityContext": restricted_container_security(),
            }],
            "containers": [
                {
                    "name": "api",
                    "image": APP_IMAGE,
                    "command": [ctx.node, ctx.app_mjs, "dump", "/out/api.json"],
                    "args": ["$(DB_PASSWORD)", "--url=$(DATABASE_URL)", "--not-a-reference=$(DB_PASSWORD)", "--port", "8080"],
                    "env": [
                        {"name": "DB_PASSWORD", "value": "akv:db-password"},
                        {"name": "DATABASE_URL", "value": "postgres://shop:${akv:db-password}@db:5432/shop"},
                        {"name": "PARTNER_TOKEN", "value": format!("akv://{vault_b_host}/partner-token")},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                    "securityContext": restricted_container_security(),
                },
                {
                    "name": "sidecar",
                    "image": APP_IMAGE,
                    "command": [ctx.node, ctx.app_mjs, "dump", "/out/sidecar.json"],
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                    "securityContext": restricted_container_security(),
                },
            ],
            "volumes": [{"name": "out", "emptyDir": {}}],
        },
    })
}

fn deployment(name: &str, replicas: u32, template: &Value) -> Value {
    let mut template = template.clone();
    template["metadata"]["labels"]["app"] = json!(name);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    })
}

fn pod(name: &str, template: &Value) -> Value {
    let mut p = template.clone();
    p["apiVersion"] = json!("v1");
    p["kind"] = json!("Pod");
    p["metadata"]["name"] = json!(name);
    // its own app label: a ReplicaSet whose selector matched would adopt it
    p["metadata"]["labels"]["app"] = json!(name);
    p
}

fn in_ns(obj: &Value, ns: &str) -> Value {
    let mut o = obj.clone();
    o["metadata"]["namespace"] = json!(ns);
    o
}

/// A namespace opted in (or not), with service account `sa` bound to our identity.
fn namespace_with_identity(ctx: &Ctx, ns: &str, labels: &[(&str, &str)], sa: &str) {
    ctx.k.namespace(ns, labels);
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": sa, "namespace": ns,
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}},
    }));
}

// ---- checks -------------------------------------------------------------------------------

fn env_of(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("pod {} has no {list} entry {name}", pod["metadata"]["name"]))
}

fn mount<'a>(c: &'a Value, volume: &str) -> Option<&'a Value> {
    c["volumeMounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == volume))
}

fn pod_name(p: &Value) -> &str {
    p["metadata"]["name"].as_str().unwrap_or("?")
}

/// The contract's "What the webhook does to a pod that has references", on a stored pod
/// made from [`shop_template`].
fn check_injected(ctx: &Ctx, p: &Value, template: &Value) {
    let name = pod_name(p);
    assert_eq!(
        p["metadata"]["annotations"]["akv-injector.io/status"], "injected",
        "pod {name}: status annotation"
    );
    // 1. the volume
    let vol = p["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "akv-injector"))
        .unwrap_or_else(|| panic!("pod {name}: no volume akv-injector"));
    assert_eq!(
        vol["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "16Mi"}),
        "pod {name}: volume akv-injector"
    );
    // 2. the init container, first
    let init = &p["spec"]["initContainers"][0];
    assert_eq!(
        init["name"], "akv-injector-install",
        "pod {name}: initContainers[0]"
    );
    assert_eq!(
        init["image"], ENV_IMAGE,
        "pod {name}: init image (--env-image)"
    );
    assert_eq!(
        init["command"],
        json!(["/usr/local/bin/akv-env", "install", "/akv-injector"]),
        "pod {name}: init command"
    );
    let m = mount(init, "akv-injector").unwrap_or_else(|| panic!("pod {name}: init mount"));
    assert_eq!(m["mountPath"], "/akv-injector");
    assert_ne!(
        m["readOnly"], true,
        "pod {name}: the install mount must be writable"
    );
    let sc = &init["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "pod {name}: init runAsNonRoot");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for part in ["requests", "limits"] {
        assert!(
            init["resources"][part]["memory"].is_string(),
            "pod {name}: init resources.{part}: {}",
            init["resources"]
        );
    }
    // the app's own init container has no references and is not listed: untouched
    let migrate = container(p, "initContainers", "migrate");
    assert_eq!(
        migrate["command"],
        json!(["/bin/true"]),
        "pod {name}: migrate"
    );
    assert!(mount(migrate, "akv-injector").is_none());
    assert!(env_of(migrate)
        .keys()
        .all(|k| !k.starts_with("AKV_INJECTOR_")));
    // 3. every app container (references, or env.* annotations)
    for tc in template["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        let cname = tc["name"].as_str().expect("name");
        let c = container(p, "containers", cname);
        assert_eq!(
            c["command"],
            json!(["/akv-injector/akv-env"]),
            "pod {name}/{cname}: command"
        );
        let mut argv = vec![json!("--")];
        argv.extend(tc["command"].as_array().cloned().unwrap_or_default());
        argv.extend(tc["args"].as_array().cloned().unwrap_or_default());
        assert_eq!(c["args"], Value::Array(argv), "pod {name}/{cname}: args");
        let m = mount(c, "akv-injector").unwrap_or_else(|| panic!("pod {name}/{cname}: mount"));
        assert_eq!(m["mountPath"], "/akv-injector");
        assert_eq!(m["readOnly"], true, "pod {name}/{cname}: read-only mount");
        let env = env_of(c);
        for (k, v) in env_of(tc) {
            assert_eq!(
                env.get(&k),
                Some(&v),
                "pod {name}/{cname}: env {k} as written"
            );
        }
        assert_eq!(
            env.get("STRIPE_KEY").map(String::as_str),
            Some("akv:stripe-key")
        );
        assert_eq!(
            env.get("AKV_INJECTOR_VAULT"),
            Some(&ctx.kv.vault_url("a")),
            "pod {name}/{cname}: AKV_INJECTOR_VAULT"
        );
        assert!(
            env.contains_key("AKV_INJECTOR_TIMEOUT"),
            "pod {name}/{cname}: {env:?}"
        );
        // and the Workload Identity webhook did its part
        assert_eq!(
            env.get("AZURE_CLIENT_ID").map(String::as_str),
            Some(CLIENT_ID)
        );
        assert!(env.contains_key("AZURE_FEDERATED_TOKEN_FILE"), "{env:?}");
    }
    assert_no_secret(ctx, &p.to_string(), &format!("pod {name}"));
}

fn assert_no_secret(ctx: &Ctx, text: &str, what: &str) {
    for (name, value) in &ctx.secrets {
        assert!(
            !text.contains(value.as_str()),
            "{what} holds the value of secret {name}"
        );
    }
}

/// The pod was not touched by our webhook.
fn check_untouched(p: &Value, template: &Value) {
    let name = pod_name(p);
    assert!(
        p["metadata"]["annotations"]
            .get("akv-injector.io/status")
            .is_none(),
        "pod {name} was injected"
    );
    let vols = p["spec"]["volumes"].to_string();
    assert!(!vols.contains("\"akv-injector\""), "pod {name}: {vols}");
    let inits: Vec<&str> = p["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(inits, ["migrate"], "pod {name}: init containers");
    for tc in template["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        let c = container(p, "containers", tc["name"].as_str().expect("name"));
        assert_eq!(c["command"], tc["command"], "pod {name}: command changed");
        assert_eq!(c["args"], tc["args"], "pod {name}: args changed");
    }
}

// ---- registration -------------------------------------------------------------------------

/// The MutatingWebhookConfiguration of `manifests/base/mutatingwebhookconfiguration.yaml`,
/// parsed by kubectl (no YAML parser of our own), with ONLY `clientConfig` replaced:
/// `url: https://127.0.0.1:PORT/mutate` + `caBundle` instead of the in-cluster `service`.
/// That is the one difference from the shipped file, and it is forced by the test bed:
/// there is no kube-proxy (and no cluster network), so the API server cannot reach a
/// Service's ClusterIP; the webhook runs as a process on loopback.
fn our_registration(ctx: &Ctx) -> (Value, Value) {
    let file = repo().join("manifests/base/mutatingwebhookconfiguration.yaml");
    let shipped: Value = serde_json::from_str(&ctx.k.ok(&[
        "create",
        "--dry-run=client",
        "-o",
        "json",
        "-f",
        file.to_str().expect("utf-8"),
    ]))
    .expect("kubectl printed JSON");
    assert_eq!(shipped["metadata"]["name"], OUR_CONFIG);
    let hooks = shipped["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1, "one webhook in {}", file.display());
    assert_eq!(hooks[0]["name"], OUR_WEBHOOK);
    assert!(
        hooks[0]["clientConfig"]["service"].is_object(),
        "the shipped file keeps the in-cluster service reference"
    );
    let bundle = std::fs::read(ctx.certs.join("ca-bundle.crt")).expect("ca-bundle.crt");
    let mut ours = shipped.clone();
    ours["webhooks"][0]["clientConfig"] = json!({
        "url": ctx.webhook.url(),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(bundle),
    });
    (shipped, ours)
}

fn step_register(ctx: &mut Ctx) {
    let (shipped, ours) = our_registration(ctx);
    ctx.k.apply_ok(&ours);
    let stored = ctx
        .k
        .json(&["get", "mutatingwebhookconfiguration", OUR_CONFIG]);
    let (want, got) = (&shipped["webhooks"][0], &stored["webhooks"][0]);
    for (key, value) in want.as_object().expect("webhook") {
        if key != "clientConfig" {
            assert_eq!(&got[key], value, "stored webhook field {key}");
        }
    }
    assert_eq!(got["clientConfig"]["url"], ctx.webhook.url());
    // The API server calls mutating webhooks ordered by configuration name: ours
    // ("akv-injector") before the Workload Identity webhook's ("azure-wi-...").
    let awi = ctx.bed.var("AWI_WEBHOOK_CONFIGURATION").to_string();
    assert!(OUR_CONFIG < awi.as_str());
}

// ---- 1 ------------------------------------------------------------------------------------

fn step_injected_deployment(ctx: &mut Ctx) {
    namespace_with_identity(ctx, NS_A, &[INJECT], "shop-api");
    // the federated credential: only NS_A's shop-api may use the identity
    ctx.kv.identity(
        CLIENT_ID,
        ctx.bed.var("AWI_TENANT_ID"),
        &format!("system:serviceaccount:{NS_A}:shop-api"),
    );
    ctx.kv.grant("a", CLIENT_ID);
    ctx.kv.grant("b", CLIENT_ID);
    let template = shop_template(ctx, "shop-api");
    let before = ctx.webhook.reviews();
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-api", 2, &template), NS_A));
    let pods = ctx.k.wait_pods(NS_A, "app=shop-api", 2);
    let after = ctx.webhook.reviews();
    let rs = ctx
        .k
        .json(&["-n", NS_A, "get", "replicasets", "-l", "app=shop-api"]);
    assert_eq!(
        rs["items"].as_array().map(Vec::len),
        Some(1),
        "one ReplicaSet"
    );
    let mut template = template;
    template["metadata"]["labels"]["app"] = json!("shop-api");
    for p in &pods {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        check_injected(ctx, p, &template);
    }
    let deploy = ctx
        .k
        .ok(&["-n", NS_A, "get", "deployment,replicaset", "-o", "json"]);
    assert_no_secret(ctx, &deploy, "the Deployment or ReplicaSet");
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    eprintln!(
        "e2e:      our webhook first: reviews patched +{}, skipped +{} for 2 pods",
        delta("patched"),
        delta("skipped")
    );
    // Ours ran first, the WI webhook changed the pod after it, so ours was called again
    // (reinvocationPolicy: IfNeeded) and left the already injected pod alone.
    assert_eq!(delta("patched"), 2, "{before:?} -> {after:?}");
    assert_eq!(
        delta("skipped"),
        2,
        "reinvocations: {before:?} -> {after:?}"
    );
}

/// A pod as a set of facts: env, mounts and volumes as sets, generated names neutralised.
fn normalise(p: &Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                for prefix in ["kube-api-access-", "azure-workload-identity-reserved-"] {
                    if s.starts_with(prefix) {
                        *s = format!("{prefix}*");
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => {
                for (key, val) in map.iter_mut() {
                    walk(val);
                    let sort_by = match key.as_str() {
                        "env" | "volumes" => Some("name"),
                        "volumeMounts" => Some("mountPath"),
                        _ => None,
                    };
                    if let (Some(field), Value::Array(items)) = (sort_by, val) {
                        items.sort_by_key(|i| i[field].as_str().unwrap_or_default().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let mut labels = p["metadata"]["labels"].clone();
    if let Some(l) = labels.as_object_mut() {
        l.remove("pod-template-hash");
    }
    let mut v = json!({
        "annotations": p["metadata"]["annotations"],
        "labels": labels,
        "spec": p["spec"],
    });
    walk(&mut v);
    v
}

fn step_both_orders(ctx: &mut Ctx) {
    // Make the Workload Identity webhook come first: the API server orders mutating
    // webhooks by configuration name, so re-register ITS configuration under a name that
    // sorts before "akv-injector" (ours stays exactly as derived from manifests/).
    let awi = ctx.bed.var("AWI_WEBHOOK_CONFIGURATION").to_string();
    let stored = ctx.k.json(&["get", "mutatingwebhookconfiguration", &awi]);
    let first = format!("aa-{awi}");
    assert!(first.as_str() < OUR_CONFIG);
    let mut moved = json!({
        "apiVersion": stored["apiVersion"],
        "kind": stored["kind"],
        "metadata": {"name": first, "labels": stored["metadata"]["labels"]},
        "webhooks": stored["webhooks"],
    });
    moved["metadata"]["labels"]["e2e-order"] = json!("wi-first");
    ctx.k.apply_ok(&moved);
    ctx.k
        .ok(&["delete", "mutatingwebhookconfiguration", &awi, "--wait"]);

    namespace_with_identity(ctx, NS_B, &[INJECT], "shop-api");
    let template = shop_template(ctx, "shop-api");
    let before = ctx.webhook.reviews();
    let created = catch_unwind(AssertUnwindSafe(|| {
        ctx.k
            .apply_ok(&in_ns(&deployment("shop-api", 1, &template), NS_B));
        ctx.k.wait_pods(NS_B, "app=shop-api", 1)
    }));
    let after = ctx.webhook.reviews();
    // restore the test bed's order whatever happened
    let mut back = stored.clone();
    back["metadata"] = json!({"name": awi, "labels": stored["metadata"]["labels"]});
    ctx.k.apply_ok(&back);
    ctx.k
        .ok(&["delete", "mutatingwebhookconfiguration", &first]);
    let b_pods = created.unwrap_or_else(|e| std::panic::resume_unwind(e));

    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    eprintln!(
        "e2e:      WI webhook first: reviews patched +{}, skipped +{} for 1 pod",
        delta("patched"),
        delta("skipped")
    );
    assert_eq!(delta("patched"), 1);
    let a_pods = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-api"]);
    let a = normalise(&a_pods["items"][0]);
    let b = normalise(&b_pods[0]);
    if a != b {
        panic!(
            "the two orders stored different pods:\n ours first: {}\n WI first:   {}",
            serde_json::to_string_pretty(&a).unwrap_or_default(),
            serde_json::to_string_pretty(&b).unwrap_or_default()
        );
    }
    let mut template = template;
    template["metadata"]["labels"]["app"] = json!("shop-api");
    check_injected(ctx, &b_pods[0], &template);
}

// ---- 2 ------------------------------------------------------------------------------------

fn step_not_sent(ctx: &mut Ctx) {
    namespace_with_identity(ctx, NS_PLAIN, &[], "shop-api");
    // kube-system and akv-injector are excluded by name, even when labelled
    namespace_with_identity(ctx, "akv-injector", &[INJECT], "shop-api");
    namespace_with_identity(ctx, "kube-system", &[INJECT], "shop-api");
    namespace_with_identity(ctx, "e2e-optout", &[INJECT], "shop-api");

    let template = shop_template(ctx, "shop-api");
    let mut optout = template.clone();
    optout["metadata"]["labels"]["akv-injector.io/inject"] = json!("false");
    let cases = [
        (NS_PLAIN, &template),
        ("kube-system", &template),
        ("akv-injector", &template),
        ("e2e-optout", &optout),
    ];
    let before = ctx.webhook.reviews_total();
    for (ns, t) in cases {
        ctx.k.apply_ok(&in_ns(&deployment("shop-api", 2, t), ns));
    }
    for (ns, t) in cases {
        let mut t = t.clone();
        t["metadata"]["labels"]["app"] = json!("shop-api");
        for p in ctx.k.wait_pods(ns, "app=shop-api", 2) {
            check_untouched(&p, &t);
        }
    }
    // The pods exist, so every admission is over: our webhook was not even called.
    let after = ctx.webhook.reviews_total();
    assert_eq!(before, after, "akv_webhook_reviews_total changed");
    for ns in ["kube-system", "akv-injector"] {
        ctx.k
            .ok(&["-n", ns, "delete", "deployment", "shop-api", "--wait"]);
    }
    ctx.k.ok(&[
        "label",
        "namespace",
        "kube-system",
        "akv-injector.io/injection-",
    ]);
}

// ---- 3 ------------------------------------------------------------------------------------

fn step_restricted(ctx: &mut Ctx) {
    let ns = "e2e-restricted";
    namespace_with_identity(
        ctx,
        ns,
        &[
            INJECT,
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
        "shop-api",
    );
    let template = shop_template(ctx, "shop-api");
    // A bare pod: kubectl shows any PodSecurity refusal or warning directly.
    let out = ctx.k.apply(&in_ns(&pod("shop-pod", &template), ns), &[]);
    assert!(
        out.ok,
        "injected pod refused in a restricted namespace:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("PodSecurity"),
        "PodSecurity warning: {}",
        out.stderr
    );
    let p = ctx.k.json(&["-n", ns, "get", "pod", "shop-pod"]);
    check_injected(ctx, &p, &template);
    // And through a Deployment (the controller-manager creates the pods).
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-api", 1, &template), ns));
    let pods = ctx.k.wait_pods(ns, "app=shop-api", 1);
    assert_eq!(
        pods[0]["metadata"]["annotations"]["akv-injector.io/status"],
        "injected"
    );
    // The namespace does enforce: the same pod without its security contexts is refused.
    let mut loose = pod("loose", &template);
    for c in loose["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
    {
        c.as_object_mut()
            .expect("container")
            .remove("securityContext");
    }
    let out = ctx.k.apply(&in_ns(&loose, ns), &[]);
    assert!(!out.ok, "a non-compliant pod was admitted");
    assert!(
        out.stderr.contains("violates PodSecurity \"restricted"),
        "{}",
        out.stderr
    );
}

// ---- 4 ------------------------------------------------------------------------------------

fn step_dry_run(ctx: &mut Ctx) {
    let template = shop_template(ctx, "shop-api");
    let before = ctx.webhook.reviews();
    // A Deployment: validated and defaulted by the server, nothing stored or created.
    let out = ctx.k.apply(
        &in_ns(&deployment("shop-dry", 1, &template), NS_A),
        &["--dry-run=server", "-o", "json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let d: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(d["kind"], "Deployment");
    // A Pod: our webhook is called (sideEffects: None allows dry runs) and the answer is
    // the injected pod, which is not stored.
    let out = ctx.k.apply(
        &in_ns(&pod("shop-dry-pod", &template), NS_A),
        &["--dry-run=server", "-o", "json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let p: Value = serde_json::from_str(&out.stdout).expect("JSON");
    check_injected(ctx, &p, &template);
    std::thread::sleep(Duration::from_secs(2)); // give a controller time to act, if it would
    for (kind, name) in [("deployment", "shop-dry"), ("pod", "shop-dry-pod")] {
        let got = ctx.k.run(&["-n", NS_A, "get", kind, name], None);
        assert!(
            !got.ok && got.stderr.contains("NotFound"),
            "{kind} {name} was stored"
        );
    }
    let rs = ctx
        .k
        .json(&["-n", NS_A, "get", "replicasets", "-l", "app=shop-dry"]);
    assert_eq!(rs["items"], json!([]), "a ReplicaSet was created");
    let after = ctx.webhook.reviews();
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    assert_eq!(
        delta("patched"),
        1,
        "our webhook answered the dry-run pod once"
    );
}

// ---- 5 ------------------------------------------------------------------------------------

fn step_denials(ctx: &mut Ctx) {
    let template = shop_template(ctx, "shop-api");
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation, &str); 3] = [
        (
            "bad-ref",
            |p| p["spec"]["containers"][0]["env"][0]["value"] = json!("akv:db password"),
            "container 'api', env DB_PASSWORD: ",
        ),
        (
            "bad-timeout",
            |p| p["metadata"]["annotations"]["akv-injector.io/timeout"] = json!("forever"),
            "annotation akv-injector.io/timeout: 'forever'",
        ),
        (
            "bad-containers",
            |p| p["metadata"]["annotations"]["akv-injector.io/containers"] = json!("api,nope"),
            "akv-injector.io/containers names 'nope'",
        ),
    ];
    for (name, mutate, message) in cases {
        let mut p = pod(name, &template);
        mutate(&mut p);
        let out = ctx.k.apply(&in_ns(&p, NS_A), &[]);
        assert!(!out.ok, "pod {name} was admitted");
        assert!(
            out.stderr.contains(DENIED) && out.stderr.contains(message),
            "pod {name}: kubectl said:\n{}\nexpected `{DENIED}: ...{message}...`",
            out.stderr
        );
        eprintln!("e2e:      {name}: {}", out.stderr.trim());
    }
    // Through a Deployment the user sees it on the ReplicaSet (README troubleshooting).
    let mut t = template.clone();
    t["spec"]["containers"][0]["env"][0]["value"] = json!("akv:db password");
    ctx.k.apply_ok(&in_ns(&deployment("shop-bad", 1, &t), NS_A));
    let message = wait_until(
        "ReplicaFailure on shop-bad's ReplicaSet",
        Duration::from_secs(30),
        || {
            let rs = ctx
                .k
                .json(&["-n", NS_A, "get", "replicasets", "-l", "app=shop-bad"]);
            rs["items"][0]["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure"))
                .and_then(|c| c["message"].as_str().map(String::from))
        },
    );
    assert!(
        message.contains(DENIED) && message.contains("env DB_PASSWORD"),
        "{message}"
    );
    let pods = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-bad"]);
    assert_eq!(pods["items"], json!([]));
    ctx.k.ok(&["-n", NS_A, "delete", "deployment", "shop-bad"]);
}

// ---- 5b-5d: containers without `command` ---------------------------------------------------

/// The opted-in namespace of the registry steps (idempotent: each step may run alone).
fn registry_namespace(ctx: &Ctx) {
    ctx.k.namespace(NS_REG, &[INJECT]);
}

/// A `kubernetes.io/dockerconfigjson` Secret for registry `server` (user
/// `registry_bed::USER`), made as users make them, with `kubectl create secret docker-registry`.
fn docker_registry_secret(ctx: &Ctx, name: &str, server: &str, password: &str) {
    let server = format!("--docker-server={server}");
    let user = format!("--docker-username={}", registry_bed::USER);
    let password = format!("--docker-password={password}");
    let out = ctx.k.run(
        &[
            "-n",
            NS_REG,
            "create",
            "secret",
            "docker-registry",
            name,
            &server,
            &user,
            &password,
        ],
        None,
    );
    assert!(
        out.ok || out.stderr.contains("AlreadyExists"),
        "kubectl create secret docker-registry {name}:\n{}",
        out.stderr
    );
    let secret = ctx.k.json(&["-n", NS_REG, "get", "secret", name]);
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
}

/// A pod template whose containers have an image of the test registry and no `command`;
/// `args` per container (`None`: none).
fn registry_template(ctx: &Ctx, image: &str, containers: &[(&str, Option<&[&str]>)]) -> Value {
    let image = ctx.registry.image(image);
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, args)| {
            let mut c = json!({
                "name": name,
                "image": image,
                "env": [{"name": "DB_PASSWORD", "value": "akv:db-password"}],
                "securityContext": restricted_container_security(),
            });
            if let Some(args) = args {
                c["args"] = json!(args);
            }
            c
        })
        .collect();
    json!({
        "metadata": {
            "labels": {},
            "annotations": {"akv-injector.io/vault": ctx.kv.vault_url("a")},
        },
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532},
            "containers": containers,
        },
    })
}

/// A stored pod from [`registry_template`]: injected, each container running
/// `akv-env -- ENTRYPOINT... (args or CMD)...` as Docker would have run the image.
fn check_registry_pod(
    p: &Value,
    image: (&str, &[&str], &[&str]),
    containers: &[(&str, Option<&[&str]>)],
) {
    let name = pod_name(p);
    assert_eq!(
        p["metadata"]["annotations"]["akv-injector.io/status"], "injected",
        "pod {name}: status annotation"
    );
    assert_eq!(
        p["spec"]["initContainers"][0]["name"], "akv-injector-install",
        "pod {name}: initContainers[0]"
    );
    let (_, entrypoint, cmd) = image;
    for (cname, args) in containers {
        let c = container(p, "containers", cname);
        assert_eq!(
            c["command"],
            json!(["/akv-injector/akv-env"]),
            "pod {name}/{cname}: command"
        );
        let mut argv = vec!["--"];
        argv.extend_from_slice(entrypoint);
        argv.extend_from_slice(args.unwrap_or(cmd));
        assert_eq!(c["args"], json!(argv), "pod {name}/{cname}: args");
        let m = mount(c, "akv-injector").unwrap_or_else(|| panic!("pod {name}/{cname}: mount"));
        assert_eq!(m["readOnly"], true);
        assert_eq!(
            env_of(c).get("DB_PASSWORD").map(String::as_str),
            Some("akv:db-password")
        );
    }
}

/// `akv_webhook_registry_cache_misses` by cache, for the step reports.
fn registry_misses(ctx: &Ctx) -> String {
    ctx.webhook
        .metrics()
        .lines()
        .filter(|l| l.starts_with("akv_webhook_registry_cache_misses_total"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn step_registry_pod_secret(ctx: &mut Ctx) {
    // The webhook's kube client is configured (it would warn and look up anonymously).
    let log = ctx.webhook.log_text();
    assert!(
        !log.contains("image pull secrets are unavailable"),
        "akv-webhook has no Kubernetes API configuration:\n{}",
        ctx.webhook.log_tail(20)
    );
    // Its service account may `get` secrets and service accounts, and no more
    // (manifests/base/rbac.yaml): what works below works with exactly that.
    let as_webhook = ctx.k.with_kubeconfig(&ctx.webhook_kubeconfig);
    for (verb, resource, want) in [
        ("get", "secrets", "yes"),
        ("get", "serviceaccounts", "yes"),
        ("list", "secrets", "no"),
        ("watch", "secrets", "no"),
        ("get", "pods", "no"),
    ] {
        let out = as_webhook.run(&["-n", NS_REG, "auth", "can-i", verb, resource], None);
        assert_eq!(
            out.stdout.trim(),
            want,
            "service account {WEBHOOK_NS}/{WEBHOOK_SA}: can-i {verb} {resource}: {}",
            out.stderr
        );
    }

    registry_namespace(ctx);
    docker_registry_secret(ctx, "regcred", &ctx.registry.host, registry_bed::PASSWORD);
    // `api` runs the image as built; `worker` replaces its CMD with `args`.
    let containers: &[(&str, Option<&[&str]>)] =
        &[("api", None), ("worker", Some(&["--queue", "orders"]))];
    let mut template = registry_template(ctx, IMG_POD_SECRET.0, containers);
    template["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let before = ctx.webhook.reviews();
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-registry", 2, &template), NS_REG));
    let pods = ctx.k.wait_pods(NS_REG, "app=shop-registry", 2);
    let after = ctx.webhook.reviews();
    for p in &pods {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
        check_registry_pod(p, IMG_POD_SECRET, containers);
    }
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    assert_eq!(delta("patched"), 2, "{before:?} -> {after:?}");
    eprintln!(
        "e2e:      2 pods of {}: args {}; {}",
        ctx.registry.image(IMG_POD_SECRET.0),
        container(&pods[0], "containers", "api")["args"],
        registry_misses(ctx)
    );
}

fn step_registry_sa_secret(ctx: &mut Ctx) {
    registry_namespace(ctx);
    docker_registry_secret(
        ctx,
        "regcred-sa",
        &ctx.registry.host,
        registry_bed::PASSWORD,
    );
    // A pull secret for another registry, on the pods below: the API server's
    // ServiceAccount admission plugin copies the service account's imagePullSecrets into
    // a pod only when the pod has none, so with this one the service account's secret
    // reaches the webhook by no other way than its own lookup (ServiceAccount, then
    // Secret, from the API server).
    docker_registry_secret(ctx, "other-registry", "registry.example.com", "elsewhere");
    let containers: &[(&str, Option<&[&str]>)] = &[("web", Some(&["nginx", "-T"]))];
    let mut template = registry_template(ctx, IMG_SA_SECRET.0, containers);
    template["spec"]["imagePullSecrets"] = json!([{"name": "other-registry"}]);

    // With the `default` service account (no pull secrets) the lookup is anonymous and
    // this registry refuses it.
    let out = ctx
        .k
        .apply(&in_ns(&pod("web-anonymous", &template), NS_REG), &[]);
    assert!(!out.ok, "a pod was admitted with anonymous registry access");
    assert!(
        out.stderr.contains(DENIED) && out.stderr.contains("anonymous access"),
        "{}",
        out.stderr
    );

    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "puller", "namespace": NS_REG},
        "imagePullSecrets": [{"name": "regcred-sa"}],
    }));
    template["spec"]["serviceAccountName"] = json!("puller");
    ctx.k
        .apply_ok(&in_ns(&deployment("web-registry", 1, &template), NS_REG));
    let pods = ctx.k.wait_pods(NS_REG, "app=web-registry", 1);
    let p = &pods[0];
    assert_eq!(
        p["spec"]["imagePullSecrets"],
        json!([{"name": "other-registry"}]),
        "the pod's own pull secrets, not the service account's"
    );
    check_registry_pod(p, IMG_SA_SECRET, containers);
    eprintln!(
        "e2e:      pod of {} with service account puller's pull secret: args {}",
        ctx.registry.image(IMG_SA_SECRET.0),
        container(p, "containers", "web")["args"]
    );

    // Without pull secrets of its own the pod gets the service account's from the
    // ServiceAccount admission plugin, before the webhooks are called.
    let mut t = template.clone();
    t["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("imagePullSecrets");
    ctx.k.apply_ok(&in_ns(&pod("web-sa-copied", &t), NS_REG));
    let p = ctx.k.json(&["-n", NS_REG, "get", "pod", "web-sa-copied"]);
    assert_eq!(
        p["spec"]["imagePullSecrets"],
        json!([{"name": "regcred-sa"}])
    );
    check_registry_pod(&p, IMG_SA_SECRET, containers);
}

fn step_registry_wrong_credentials(ctx: &mut Ctx) {
    registry_namespace(ctx);
    let wrong = "not-the-password-1f3c";
    docker_registry_secret(ctx, "badcred", &ctx.registry.host, wrong);
    let containers: &[(&str, Option<&[&str]>)] = &[("app", None)];
    let mut template = registry_template(ctx, IMG_WRONG_CREDENTIALS.0, containers);
    template["spec"]["imagePullSecrets"] = json!([{"name": "badcred"}]);
    let image = ctx.registry.image(IMG_WRONG_CREDENTIALS.0);
    let out = ctx
        .k
        .apply(&in_ns(&pod("private-app", &template), NS_REG), &[]);
    assert!(
        !out.ok,
        "a pod was admitted with wrong registry credentials"
    );
    let err = out.stderr.trim();
    eprintln!("e2e:      wrong credentials: {err}");
    for want in [
        DENIED.to_string(),
        "container 'app' has no command".to_string(),
        format!("image '{image}'"),
        format!("pull secret {NS_REG}/badcred"),
        "Set `command` in the container spec to avoid the registry lookup".to_string(),
    ] {
        assert!(
            err.contains(&want),
            "kubectl said:\n{err}\nexpected: {want}"
        );
    }
    assert!(
        !err.contains(wrong),
        "the password is in the message: {err}"
    );
    let got = ctx
        .k
        .run(&["-n", NS_REG, "get", "pod", "private-app"], None);
    assert!(!got.ok, "the pod was stored");
}

/// The webhook's Secret and ServiceAccount reads in the API server's audit log (scripts/kube-up
/// enables it) from byte `from` on: `(verb, resource, namespace, name)`.
fn webhook_reads(ctx: &Ctx, from: usize) -> Vec<(String, String, String, String)> {
    let path = ctx.bed.var("KUBE_AUDIT_LOG");
    let log = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the audit log {path}: {e}"));
    let user = format!("system:serviceaccount:{WEBHOOK_NS}:{WEBHOOK_SA}");
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .map(|e| {
            let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let o = &e["objectRef"];
            (
                field(&e["verb"]),
                field(&o["resource"]),
                field(&o["namespace"]),
                field(&o["name"]),
            )
        })
        .collect()
}

fn audit_log_len(ctx: &Ctx) -> usize {
    std::fs::metadata(ctx.bed.var("KUBE_AUDIT_LOG"))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

fn step_registry_names_cannot_escape(ctx: &mut Ctx) {
    registry_namespace(ctx);
    // The registry's real credentials, in kube-system only.
    let out = ctx.k.run(
        &[
            "-n",
            "kube-system",
            "create",
            "secret",
            "docker-registry",
            "admin-pull",
            &format!("--docker-server={}", ctx.registry.host),
            &format!("--docker-username={}", registry_bed::USER),
            &format!("--docker-password={}", registry_bed::PASSWORD),
        ],
        None,
    );
    assert!(
        out.ok || out.stderr.contains("AlreadyExists"),
        "{}",
        out.stderr
    );
    let from = audit_log_len(ctx);
    let containers: &[(&str, Option<&[&str]>)] = &[("app", None)];
    let cases = [
        (
            "../../../kube-system/secrets/admin-pull",
            "spec.imagePullSecrets[0].name '../../../kube-system/secrets/admin-pull' is not a valid Kubernetes object name".to_string(),
        ),
        (
            "admin-pull",
            format!("pull secret {NS_REG}/admin-pull does not exist"),
        ),
    ];
    for (name, want) in cases {
        let mut template = registry_template(ctx, IMG_WRONG_CREDENTIALS.0, containers);
        template["spec"]["imagePullSecrets"] = json!([{ "name": name }]);
        let out = ctx.k.apply(&in_ns(&pod("escape", &template), NS_REG), &[]);
        assert!(!out.ok, "admitted with pull secret {name}");
        let err = out.stderr.trim();
        eprintln!("e2e:      pull secret {name}: {err}");
        assert!(
            err.contains(DENIED) && err.contains(&want),
            "kubectl said:\n{err}\nexpected: {want}"
        );
    }
    let reads = webhook_reads(ctx, from);
    eprintln!("e2e:      the webhook's reads (audit log): {reads:?}");
    assert!(
        reads.iter().any(|(verb, res, ns, name)| verb == "get"
            && res == "secrets"
            && ns == NS_REG
            && name == "admin-pull"),
        "the audit log shows no read of {NS_REG}/admin-pull: {reads:?}"
    );
    for (verb, res, ns, name) in &reads {
        assert_eq!(ns, NS_REG, "the webhook read {res} {ns}/{name} ({verb})");
    }
    let everything = webhook_reads(ctx, 0);
    assert!(
        everything.iter().all(|(_, _, ns, _)| ns != "kube-system"),
        "the webhook read in kube-system: {everything:?}"
    );
}

// ---- 6 ------------------------------------------------------------------------------------

fn step_webhook_down(ctx: &mut Ctx) {
    let template = shop_template(ctx, "shop-api");
    ctx.webhook.stop();
    let out = ctx
        .k
        .apply(&in_ns(&pod("while-down", &template), NS_A), &[]);
    assert!(
        !out.ok,
        "a pod was admitted in an opted-in namespace with the webhook down"
    );
    assert!(
        out.stderr
            .contains(&format!("failed calling webhook \"{OUR_WEBHOOK}\""))
            && out.stderr.contains("connection refused"),
        "{}",
        out.stderr
    );
    eprintln!("e2e:      webhook down: {}", out.stderr.trim());
    // A Deployment created meanwhile gets its pods once the webhook is back.
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-later", 1, &template), NS_A));
    // Other namespaces are not affected.
    ctx.k
        .apply_ok(&in_ns(&pod("while-down", &template), NS_PLAIN));
    std::thread::sleep(Duration::from_secs(1));
    let none = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-later"]);
    assert_eq!(none["items"], json!([]));

    ctx.webhook.resume();
    ctx.k
        .apply_ok(&in_ns(&pod("after-restart", &template), NS_A));
    let p = ctx.k.json(&["-n", NS_A, "get", "pod", "after-restart"]);
    check_injected(ctx, &p, &template);
    // the ReplicaSet controller retries with backoff
    let pods = ctx.k.wait_pods(NS_A, "app=shop-later", 1);
    assert_eq!(
        pods[0]["metadata"]["annotations"]["akv-injector.io/status"],
        "injected"
    );
}

// ---- 7 ------------------------------------------------------------------------------------

fn kubelet(ctx: &Ctx) -> Kubelet {
    Kubelet::new(ctx.k.clone(), &ctx.work.path().join("kubelet"))
        .image_file(ENV_IMAGE, "/usr/local/bin/akv-env", &ctx.akv_env)
        .image_env("SSL_CERT_FILE", ctx.kv.path("AKV_TESTBED_CA"))
}

fn step_kubelet(ctx: &mut Ctx) {
    let kubelet = kubelet(ctx);
    let pods = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-api"]);
    let p = &pods["items"][0];
    let runs = kubelet.run_pod(p);
    let summary: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}: {}", r.name, r.output.status, r.stderr().trim()))
        .collect();
    assert_eq!(
        runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["akv-injector-install", "migrate", "api", "sidecar"],
        "{summary:#?}"
    );
    for r in &runs {
        assert!(
            r.output.status.success(),
            "container {}:\n{summary:#?}",
            r.name
        );
    }
    let installed = kubelet.volume_dir(p, "akv-injector").join("akv-env");
    assert!(
        installed.is_file(),
        "akv-env install wrote no {}",
        installed.display()
    );

    let out = kubelet.volume_dir(p, "out");
    let seen = |file: &str| -> Value {
        let text = std::fs::read_to_string(out.join(file))
            .unwrap_or_else(|e| panic!("the application did not write {file} ({e}): {summary:#?}"));
        serde_json::from_str(&text).expect("app JSON")
    };
    let api = seen("api.json");
    let s = &ctx.secrets;
    let env = &api["env"];
    assert_eq!(env["DB_PASSWORD"], s["db-password"].as_str());
    assert_eq!(
        env["DATABASE_URL"],
        format!("postgres://shop:{}@db:5432/shop", s["db-password"])
    );
    assert_eq!(env["PARTNER_TOKEN"], s["partner-token"].as_str());
    assert_eq!(env["STRIPE_KEY"], s["stripe-key"].as_str());
    assert_eq!(env["LOG_LEVEL"], "info");
    assert_eq!(env["AZURE_CLIENT_ID"], CLIENT_ID);
    let own: Vec<&String> = env
        .as_object()
        .expect("env")
        .keys()
        .filter(|k| k.starts_with("AKV_INJECTOR_"))
        .collect();
    assert!(
        own.is_empty(),
        "akv-env left {own:?} in the application's env"
    );
    // argv after the kubelet's $(VAR) expansion: whole references and ${akv:...} are
    // resolved; a value that merely contains akv: is left alone (the contract).
    assert_eq!(
        api["argv"],
        json!([
            s["db-password"],
            format!("--url=postgres://shop:{}@db:5432/shop", s["db-password"]),
            "--not-a-reference=akv:db-password",
            "--port",
            "8080"
        ])
    );
    let sidecar = seen("sidecar.json");
    assert_eq!(sidecar["env"]["STRIPE_KEY"], s["stripe-key"].as_str());

    // A pod whose service account is not trusted by the identity's federated credential:
    // same identity claimed through its annotation, different subject.
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "intruder", "namespace": NS_A,
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}},
    }));
    let mut t = shop_template(ctx, "intruder");
    t["spec"]["containers"][0]["command"][3] = json!("/out/intruder.json");
    t["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .truncate(1);
    ctx.k.apply_ok(&in_ns(&pod("intruder", &t), NS_A));
    let p = ctx.k.json(&["-n", NS_A, "get", "pod", "intruder"]);
    let runs = kubelet.run_pod(&p);
    let api = runs.iter().find(|r| r.name == "api").expect("api ran");
    let err = api.stderr();
    eprintln!(
        "e2e:      untrusted service account, akv-env said: {}",
        err.trim()
    );
    assert!(
        !api.output.status.success(),
        "akv-env succeeded for an untrusted service account"
    );
    assert!(
        !kubelet.volume_dir(&p, "out").join("intruder.json").exists(),
        "the application started"
    );
    assert!(err.contains(CLIENT_ID), "stderr names the client id: {err}");
    assert!(
        err.contains("AADSTS700213") || err.contains("federated"),
        "stderr gives the token endpoint's reason: {err}"
    );
    assert_no_secret(ctx, &err, "akv-env's stderr");
}

// ---- 8 ------------------------------------------------------------------------------------

fn step_manifests(ctx: &mut Ctx) {
    // The shipped configuration replaces ours (same name) and points at a Service that
    // nothing routes to: remove ours first; pod creation is not tested after this step.
    ctx.k.ok(&[
        "delete",
        "mutatingwebhookconfiguration",
        OUR_CONFIG,
        "--wait",
    ]);
    // A copy of manifests/, and the certs script writing its overlay into the copy:
    // nothing is written into the repository.
    let copy = ctx.work.path().join("manifests");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("manifests"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let tls = copy.join("tls");
    let out = Command::new(repo().join("certs/make-certs.sh"))
        .arg("--out")
        .arg(&tls)
        .arg("--base")
        .arg(copy.join("base"))
        .output()
        .expect("certs/make-certs.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy_s = copy.to_str().expect("utf-8");
    let tls_s = tls.to_str().expect("utf-8");

    // The base, applied for real (a server dry run of it cannot work: the namespace it
    // creates would not exist for the namespaced objects), with strict server-side
    // field validation.
    let out = ctx
        .k
        .run(&["apply", "--validate=strict", "-k", copy_s], None);
    assert!(out.ok, "kubectl apply -k manifests/:\n{}", out.stderr);
    eprintln!(
        "e2e:      kubectl apply -k manifests/:\n{}",
        out.stdout.trim_end()
    );
    // The certs overlay: first a server dry run (the namespace exists now), then for real.
    let out = ctx.k.run(
        &[
            "apply",
            "--validate=strict",
            "--dry-run=server",
            "-k",
            tls_s,
        ],
        None,
    );
    assert!(
        out.ok,
        "kubectl apply --dry-run=server -k manifests/tls:\n{}",
        out.stderr
    );
    let out = ctx
        .k
        .run(&["apply", "--validate=strict", "-k", tls_s], None);
    assert!(out.ok, "kubectl apply -k manifests/tls:\n{}", out.stderr);

    let mwc = ctx
        .k
        .json(&["get", "mutatingwebhookconfiguration", OUR_CONFIG]);
    let bundle = std::fs::read(tls.join("ca-bundle.crt")).expect("ca-bundle.crt");
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["caBundle"],
        base64::engine::general_purpose::STANDARD.encode(bundle),
        "caBundle from the certs script"
    );
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["service"]["name"],
        "akv-webhook"
    );
    let secret = ctx
        .k
        .json(&["-n", "akv-injector", "get", "secret", "akv-webhook-tls"]);
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let crt = std::fs::read(tls.join("tls.crt")).expect("tls.crt");
    assert_eq!(
        secret["data"]["tls.crt"],
        base64::engine::general_purpose::STANDARD.encode(crt)
    );
    // The webhook's own Deployment gets its pods in its `restricted` namespace.
    let pods = ctx
        .k
        .wait_pods("akv-injector", "app.kubernetes.io/name=akv-webhook", 2);
    for p in &pods {
        assert!(p["metadata"]["annotations"]
            .get("akv-injector.io/status")
            .is_none());
    }
    let out = ctx.k.run(&["delete", "-k", tls_s, "--wait=false"], None);
    assert!(out.ok, "kubectl delete -k manifests/tls:\n{}", out.stderr);
}
