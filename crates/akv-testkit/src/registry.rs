//! A real image registry for tests: Debian's `docker-registry` (CNCF distribution 2.8),
//! started on a free loopback port with TLS (a certificate from [`crate::pki`]) and,
//! optionally, htpasswd auth (`USER`/`PASSWORD`); test images pushed with oci-client.
//! Registry requests are counted from the registry's own access log (stdout, one line per
//! request). Used by akv-webhook's registry lookup tests and the end-to-end suite.
//!
//! Needs `docker-registry` and `htpasswd`: `scripts/testbed-registry` installs them. A
//! missing tool fails the tests; nothing is skipped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::net::free_port;
use crate::pki::{TestCa, LOOPBACK};

/// The htpasswd user of a registry started with auth, and its password.
pub const USER: &str = "pusher";
pub const PASSWORD: &str = "s3cret-pass";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The path of `name`: `$env` when set, else from `PATH`; panics naming
/// `scripts/testbed-registry` when it is missing.
pub fn tool(env: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} is not installed (nor set in {env}): run scripts/testbed-registry to install it"
    );
}

/// The CA of a registry test bed (`--registry-ca-file`).
pub fn test_ca() -> TestCa {
    TestCa::new("akv registry test CA")
}

/// A running `docker-registry`, stopped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, as image references and pull secrets name it.
    pub host: String,
    /// The CA that signed the registry's certificate (`--registry-ca-file`).
    pub ca_pem: String,
    /// Requests served, from the access log.
    pub requests: Arc<AtomicUsize>,
    /// The access log's request lines.
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// With htpasswd auth (`USER`/`PASSWORD`) when `auth`, anonymous otherwise.
    pub fn start(auth: bool) -> Registry {
        let ca = test_ca();
        Registry::start_with(auth, &ca)
    }

    /// With its certificate signed by `ca`.
    pub fn start_with(auth: bool, ca: &TestCa) -> Registry {
        let binary = tool("AKV_TESTBED_REGISTRY", "docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        ca.leaf("registry", LOOPBACK).write_pem(dir.path());
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/tls.crt\n    key: {d}/tls.key\n",
            root = dir.path().join("data").display(),
            d = dir.path().display()
        );
        if auth {
            let htpasswd = tool("AKV_TESTBED_HTPASSWD", "htpasswd");
            let out = Command::new(&htpasswd)
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd runs");
            assert!(out.status.success(), "htpasswd failed: {out:?}");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("write");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}/htpasswd\n",
                dir.path().display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write");
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let requests = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let (counter, lines) = (Arc::clone(&requests), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // distribution's access log: one Apache combined-format line per request.
                if line.contains("\" ") && line.contains(" HTTP/") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    lines.lock().expect("lock").push(line);
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("docker-registry: {line}");
            }
        });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("docker-registry exited at start: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "docker-registry did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            ca_pem: ca.pem.clone(),
            requests,
            log,
            _dir: dir,
        }
    }

    /// Requests served so far, once the access log has caught up (it is written after the
    /// response; wait until the count stops changing).
    pub async fn settled_requests(&self) -> usize {
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.requests.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// `HOST/repo_tag`.
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// An oci-client that trusts the registry's CA.
    pub fn pusher(&self) -> Client {
        // oci-client is built without a rustls provider: the process-wide one (ring).
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            extra_root_certificates: vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: self.ca_pem.as_bytes().to_vec(),
            }],
            ..ClientConfig::default()
        };
        Client::try_from(config).expect("client")
    }
}

/// `sha256:HEX` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hash = sha2::Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Pushes an image whose config has `entrypoint` and `cmd` (null when `None`) and `pad`
/// bytes of labels; returns the manifest's digest.
pub async fn push_image(
    registry: &Registry,
    auth: bool,
    repo_tag: &str,
    entrypoint: Option<&[&str]>,
    cmd: Option<&[&str]>,
    pad: usize,
    arch: &str,
) -> String {
    let client = registry.pusher();
    let reference: Reference = registry.image(repo_tag).parse().expect("reference");
    let credentials = if auth {
        RegistryAuth::Basic(USER.to_string(), PASSWORD.to_string())
    } else {
        RegistryAuth::Anonymous
    };
    client
        .auth(&reference, &credentials, RegistryOperation::Push)
        .await
        .expect("auth");
    let layer = format!("layer of {repo_tag} {arch}").into_bytes();
    let layer_digest = sha256(&layer);
    client
        .push_blob(&reference, layer.clone(), &layer_digest)
        .await
        .expect("push layer");
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Env": ["PATH=/usr/bin"],
            "Labels": {"padding": "x".repeat(pad)},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = sha256(&config);
    client
        .push_blob(&reference, config.clone(), &config_digest)
        .await
        .expect("push config");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let digest = sha256(&manifest);
    client
        .push_manifest_raw(
            &reference,
            manifest,
            OCI_MANIFEST.parse().expect("content type"),
        )
        .await
        .expect("push manifest");
    digest
}

/// Pushes a two-platform index (amd64: `/amd64-app`, arm64: `/arm64-app`) under `repo_tag`.
pub async fn push_index(registry: &Registry, repo_tag: &str) -> String {
    let mut entries = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let entry = format!("/{arch}-app");
        let tag = format!("{}-{arch}", repo_tag);
        let digest = push_image(registry, true, &tag, Some(&[entry.as_str()]), None, 0, arch).await;
        let reference: Reference = registry.image(&tag).parse().expect("reference");
        let (body, _) = registry
            .pusher()
            .pull_manifest_raw(
                &reference,
                &RegistryAuth::Basic(USER.into(), PASSWORD.into()),
                &[OCI_MANIFEST],
            )
            .await
            .expect("pull");
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len(), "platform": platform}));
    }
    entries.push(json!({
        "mediaType": OCI_MANIFEST, "digest": entries[0]["digest"], "size": entries[0]["size"],
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}
    }));
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )
    .expect("json");
    let reference: Reference = registry.image(repo_tag).parse().expect("reference");
    let client = registry.pusher();
    client
        .auth(
            &reference,
            &RegistryAuth::Basic(USER.into(), PASSWORD.into()),
            RegistryOperation::Push,
        )
        .await
        .expect("auth");
    client
        .push_manifest_raw(
            &reference,
            index.clone(),
            OCI_INDEX.parse().expect("content type"),
        )
        .await
        .expect("push index");
    sha256(&index)
}

/// A `.dockerconfigjson` (as in a `kubernetes.io/dockerconfigjson` Secret) with one entry:
/// `user`/`password` for registry `host`.
pub fn docker_config(host: &str, user: &str, password: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    json!({"auths": {host: {"auth": auth}}})
}
