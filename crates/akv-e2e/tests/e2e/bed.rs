//! The bed every step shares: the Kubernetes test bed with its node (a real kubelet and
//! containerd), akv-env's Key Vault harness behind a token endpoint front that trusts the
//! API server's service-account issuer (both reachable from the pod network through a
//! relay on the bridge's gateway), the image registries with the test images, and our
//! `akv-webhook`, set up once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use akv_e2e::pod_network::{gateway, gateway2, PodTls, Relay, POD_NET, VAULT2_HOST, VAULT_HOST};
use akv_e2e::runner::Bed;
use akv_e2e::{
    free_port, repo, workspace_binary, KeyVault, Kubectl, TestBed, Webhook, WebhookConfig,
};
use akv_testkit::random_hex;
use akv_testkit::registry::{self as registry_bed, Registry};

pub(crate) const APP_IMAGE: &str = "registry.example/shop/api:3.2.0";
pub(crate) const OUR_WEBHOOK: &str = "pods.akv-injector.io";
pub(crate) const OUR_CONFIG: &str = "akv-injector";
pub(crate) const DENIED: &str = "admission webhook \"pods.akv-injector.io\" denied the request";
pub(crate) const CLIENT_ID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
pub(crate) const NS_A: &str = "e2e-team-a";
pub(crate) const NS_B: &str = "e2e-team-b";
pub(crate) const NS_PLAIN: &str = "e2e-plain";
pub(crate) const INJECT: (&str, &str) = ("akv-injector.io/injection", "enabled");
/// Where the images without `command` are pulled from (our registry, opted in).
pub(crate) const NS_REG: &str = "e2e-registry";
/// Images pushed to the test registry: (repository:tag, ENTRYPOINT, CMD). Each case uses
/// its own image: the webhook's caches are shared by all pods, so an image read once
/// would not need credentials again.
pub(crate) const IMG_POD_SECRET: (&str, &[&str], &[&str]) = (
    "e2e/shop:1.0",
    &["/usr/local/bin/shop", "serve"],
    &["--port", "8080"],
);
pub(crate) const IMG_SA_SECRET: (&str, &[&str], &[&str]) = (
    "e2e/web:2.1",
    &["/docker-entrypoint.sh"],
    &["nginx", "-g", "daemon off;"],
);
pub(crate) const IMG_WRONG_CREDENTIALS: (&str, &[&str], &[&str]) =
    ("e2e/private:3", &["/private"], &[]);
/// The webhook's service account and namespace, as in manifests/base.
pub(crate) const WEBHOOK_NS: &str = "akv-injector";
pub(crate) const WEBHOOK_SA: &str = "akv-webhook";

/// Everything one run shares. Fields drop in order: webhook, relay, harness, then the
/// test bed.
pub(crate) struct Ctx {
    pub(crate) webhook: Webhook,
    /// The node's view of the harness: the relay from the gateway, and what pods trust.
    pub(crate) relay: Relay,
    pub(crate) pod_tls: PodTls,
    /// `https://akvnode.vault.azure.net`: the vault pods on the node read.
    pub(crate) node_vault: String,
    /// `https://akvnode2.vault.azure.net`: the second one (harness vault `node2`).
    pub(crate) node_vault2: String,
    /// The token endpoint as pods reach it (`AZURE_AUTHORITY_HOST`): the front, through the
    /// relay on the gateway.
    pub(crate) authority_host: String,
    /// The akv-injector image in the node's registry (`--env-image`) and the test app.
    pub(crate) env_image: String,
    pub(crate) node_app_image: String,
    pub(crate) registry: Registry,
    /// The webhook's KUBECONFIG: service account akv-injector/akv-webhook.
    pub(crate) webhook_kubeconfig: PathBuf,
    pub(crate) kv: KeyVault,
    pub(crate) bed: TestBed,
    pub(crate) k: Kubectl,
    pub(crate) work: tempfile::TempDir,
    /// `certs/make-certs.sh` output: our webhook's serving certificate and the caBundle.
    pub(crate) certs: PathBuf,
    /// Secret values stored in the vaults: none may appear in any stored object.
    pub(crate) secrets: BTreeMap<&'static str, String>,
    pub(crate) node: String,
    pub(crate) app_mjs: String,
}

pub(crate) fn setup() -> Ctx {
    TestBed::require_installed(); // first: fail at once, naming scripts/testbed-kube install
    let webhook_bin = workspace_binary("AKV_WEBHOOK_BIN", "akv-webhook", "akv-webhook");
    let work = tempfile::Builder::new()
        .prefix("akv-e2e-work.")
        .tempdir()
        .expect("work dir");

    // The Key Vault side first: the token endpoint's address must be known to kube-up,
    // which makes the Workload Identity webhook inject it as AZURE_AUTHORITY_HOST: the
    // bridge's gateway, where pods reach this machine (relayed to the front on loopback).
    let mut kv = KeyVault::start(work.path());
    let front_port = free_port();
    let t = std::time::Instant::now();
    let authority_host = format!("https://{}:{front_port}/", gateway());
    let mut bed = TestBed::start(&[
        ("AKV_TESTBED_AUTHORITY_HOST", authority_host.clone()),
        ("AKV_TESTBED_NODE", "1".into()),
        ("AKV_TESTBED_POD_NET", POD_NET.into()),
    ]);
    eprintln!(
        "e2e: kube-up with the node in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let t = std::time::Instant::now();
    bed.push_node_images();
    eprintln!(
        "e2e: images built and pushed to the node's registry in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let k = bed.kubectl();
    let jwks = work.path().join("apiserver-jwks.json");
    std::fs::write(&jwks, k.ok(&["get", "--raw", "/openid/v1/jwks"])).expect("jwks");
    let pod_tls = PodTls::new(&work.path().join("pod-tls"));
    kv.start_front(
        front_port,
        &jwks,
        bed.var("KUBE_SA_ISSUER"),
        work.path(),
        Some((&pod_tls.cert, &pod_tls.key)),
    );
    let vault_port = pod_vault(&kv, "node", VAULT_HOST, &pod_tls);
    let vault2_port = pod_vault(&kv, "node2", VAULT2_HOST, &pod_tls);
    let relay = Relay::start(
        &[
            (gateway(), 443, vault_port),
            (gateway(), front_port, front_port),
            (gateway2(), 443, vault2_port),
        ],
        &work.path().join("tcp-relay.log"),
    );

    // Our serving certificate and caBundle come from the shipped script (item 8: its
    // output is accepted by the API server), with 127.0.0.1 as an extra name.
    let certs = work.path().join("webhook-tls");
    make_certs(
        &certs,
        &["--san", "127.0.0.1"],
        &repo().join("manifests/base"),
    );

    // The image registry (TLS with its own CA, htpasswd) and the test images in it.
    let registry = Registry::start(true);
    // one CA file for both registries: this one's, and the node's (the test bed CA)
    let registry_ca = work.path().join("registry-ca.crt");
    let node_registry_ca =
        std::fs::read_to_string(bed.var("NODE_REGISTRY_CA")).expect("the node registry's CA");
    std::fs::write(
        &registry_ca,
        format!("{}\n{node_registry_ca}", registry.ca_pem),
    )
    .expect("registry CA");
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
        env_image: bed.var("NODE_ENV_IMAGE").into(),
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
    kv.secret("node", "db-password", &secrets["db-password"]);
    kv.secret("node", "stripe-key", &secrets["stripe-key"]);
    let node = kv.path("AKV_TESTBED_NODE").to_string();
    let app_mjs = kv.app_path();
    Ctx {
        webhook,
        relay,
        pod_tls,
        node_vault: format!("https://{VAULT_HOST}"),
        node_vault2: format!("https://{VAULT2_HOST}"),
        authority_host,
        env_image: bed.var("NODE_ENV_IMAGE").into(),
        node_app_image: bed.var("NODE_APP_IMAGE").into(),
        registry,
        webhook_kubeconfig,
        kv,
        k,
        bed,
        work,
        certs,
        secrets,
        node,
        app_mjs,
    }
}

/// Adds harness vault `name`, serving `hostname` with the pods' certificate; its port.
fn pod_vault(kv: &KeyVault, name: &str, hostname: &str, tls: &PodTls) -> u16 {
    kv.control(
        "/vault-add",
        serde_json::json!({"name": name, "hostname": hostname,
                           "cert": tls.cert_pem, "key": tls.key_pem}),
    )["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("the harness names vault {name}'s port"))
}

/// Runs the shipped `certs/make-certs.sh --out OUT EXTRA... --base BASE`; panics with its
/// stderr unless it succeeds.
pub(crate) fn make_certs(out: &Path, extra: &[&str], base: &Path) {
    let done = Command::new(repo().join("certs/make-certs.sh"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .arg("--base")
        .arg(base)
        .output()
        .expect("run certs/make-certs.sh");
    assert!(
        done.status.success(),
        "certs/make-certs.sh: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

impl Bed for Ctx {
    fn recover(&mut self) {
        // a step may have left our webhook stopped: later steps need it
        if !self.webhook.is_running() {
            self.webhook.resume();
        }
    }

    fn teardown(&mut self) -> Result<(), String> {
        self.webhook.stop();
        self.relay.stop();
        self.kv.stop();
        self.bed.stop();
        let left = self.bed.leftovers();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "scripts/kube-down {} left {}",
                self.bed.dir().display(),
                left.join(", ")
            ))
        }
    }

    fn failure_report(&self) -> String {
        format!(
            "e2e: akv-webhook log (last lines):\n{}\n{}",
            self.webhook.log_tail(40),
            self.bed.log_tails(20)
        )
    }
}
