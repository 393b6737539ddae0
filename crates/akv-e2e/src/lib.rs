//! Helpers for the end-to-end tests (`tests/e2e.rs`): guards for the processes a run
//! starts, each stopped on drop — the Kubernetes test bed (`scripts/kube-up` /
//! `scripts/kube-down`), `akv-webhook`, and akv-env's Key Vault harness with a token
//! endpoint front that trusts the test bed's service-account issuer — plus `kubectl`
//! and small HTTP helpers. [`registry`] is the image registry test bed (Debian's
//! `docker-registry` with TLS and htpasswd), shared with akv-webhook's registry tests.
//! Nothing here is skipped: a missing piece is a panic whose message says how to install it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Key Vault harness's control API, shared with akv-env's integration tests.
#[path = "../../akv-env/tests/common/harness_api.rs"]
pub mod harness_api;
pub mod kubelet;
pub mod registry;

pub use registry::free_port;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Polls `f` until it returns `Some`, every 200 ms, for at most `timeout`; panics naming
/// `what` otherwise.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of a file (for failure messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One plain HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, None)
}

/// One plain HTTP/1.0 request with an optional JSON body: (status, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Runs `cmd`; panics with its stderr unless it succeeds. Returns stdout.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `KEY=value` lines (optionally `export KEY=value`), as the test bed scripts print them.
fn parse_env_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches("export "))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- binaries -----------------------------------------------------------------------------

/// The path of a workspace binary: `$VAR` when set (scripts/e2e builds the binaries and
/// sets it), else built here with `cargo build -p PACKAGE --bin NAME` (cargo sets `$CARGO`
/// for the tests it runs), so that a plain `cargo test -p akv-e2e` never tests a stale
/// binary.
pub fn workspace_binary(var: &str, package: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{var}={} does not exist: build it (cargo build -p {package} --bin {name}) or unset {var}",
            path.display()
        );
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = run_ok(
        Command::new(cargo).current_dir(repo()).args([
            "build",
            "--locked",
            "-p",
            package,
            "--bin",
            name,
            "--message-format=json-render-diagnostics",
        ]),
        &format!("cargo build -p {package} --bin {name} (or set {var} to a built binary)"),
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build -p {package} --bin {name} named no executable"))
}

// ---- the Kubernetes test bed ----------------------------------------------------------------

/// A test bed from `scripts/kube-up DIR` (a temp dir); `scripts/kube-down DIR` on drop.
pub struct TestBed {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
    up: bool,
}

impl TestBed {
    /// Panics, naming `scripts/testbed-kube install`, unless the binaries are installed.
    pub fn require_installed() {
        let script = repo().join("scripts/testbed-kube");
        let out = Command::new(&script)
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "the Kubernetes test bed binaries are missing: run `scripts/testbed-kube install` \
             (builds and caches etcd, kube-apiserver, kube-controller-manager, the Azure Workload \
             Identity webhook and kubectl; or run scripts/e2e, which does). scripts/testbed-kube env said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a test bed (`scripts/kube-up` into a temp dir) with `extra_env` (e.g.
    /// `AKV_TESTBED_AUTHORITY_HOST`). Fails (panics) when the binaries are not installed,
    /// naming `scripts/testbed-kube install`; it does not build them (a cold build takes
    /// many minutes).
    pub fn start(extra_env: &[(&str, String)]) -> TestBed {
        Self::require_installed();
        let dir = tempfile::Builder::new()
            .prefix("akv-e2e.")
            .tempdir()
            .expect("temp dir for the test bed");
        let mut bed = TestBed {
            dir,
            vars: BTreeMap::new(),
            up: true, // kube-down is harmless when nothing was started
        };
        let out = Command::new(repo().join("scripts/kube-up"))
            .arg(bed.dir.path())
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/kube-up");
        assert!(
            out.status.success(),
            "scripts/kube-up {} failed:\n{}",
            bed.dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(bed.dir.path().join("env")).expect("kube-up's env file");
        bed.vars = parse_env_lines(&env);
        bed
    }

    /// A variable of `DIR/env` (KUBECONFIG, KUBE_CA_FILE, …).
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the test bed's env file"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl {
            bin: PathBuf::from(self.var("KUBECTL")),
            kubeconfig: PathBuf::from(self.var("KUBECONFIG")),
        }
    }

    /// Writes `path`, a kubeconfig that authenticates to this API server as service account
    /// `namespace/name` (a bound token from `kubectl create token`, valid for `duration`,
    /// e.g. `2h`), as a workload in a cluster would with its mounted token.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        duration: &str,
        path: &Path,
    ) -> PathBuf {
        let token = self.kubectl().ok(&[
            "-n",
            namespace,
            "create",
            "token",
            name,
            "--duration",
            duration,
        ]);
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testbed", "cluster": {
                "server": self.var("KUBE_APISERVER_URL"),
                "certificate-authority": self.var("KUBE_CA_FILE"),
            }}],
            "users": [{"name": user, "user": {"token": token.trim()}}],
            "contexts": [{"name": user, "context": {"cluster": "testbed", "user": user}}],
            "current-context": user,
        });
        std::fs::write(path, config.to_string()).expect("write the kubeconfig");
        path.to_path_buf()
    }

    /// The last lines of every component's log, for failure reports.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir().join("logs")) {
            for e in entries.flatten() {
                out.push_str(&format!(
                    "\n----- last lines of {} -----\n{}\n",
                    e.path().display(),
                    tail(&e.path(), n)
                ));
            }
        }
        out
    }

    /// Stops the test bed now (also done on drop).
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.up) {
            let out = Command::new(repo().join("scripts/kube-down"))
                .arg(self.dir.path())
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "e2e: scripts/kube-down failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("e2e: cannot run scripts/kube-down: {e}"),
            }
        }
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("AKV_E2E_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("e2e: AKV_E2E_KEEP: kept {}", dir.keep().display());
        }
    }
}

// ---- kubectl --------------------------------------------------------------------------------

/// What one kubectl run printed.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl --kubeconfig TESTBED` runs.
#[derive(Debug, Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// The same kubectl with another kubeconfig (e.g. a service account's).
    pub fn with_kubeconfig(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl {
            bin: self.bin.clone(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        let mut child = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write kubectl's stdin");
        }
        let out = child.wait_with_output().expect("wait for kubectl");
        KubectlOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl; panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(out.ok, "kubectl {} failed:\n{}", args.join(" "), out.stderr);
        out.stdout
    }

    /// `kubectl ARGS -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {a:?}: not JSON ({e})"))
    }

    /// `kubectl apply -f -` of one object (JSON); not checked.
    pub fn apply(&self, obj: &Value, extra: &[&str]) -> KubectlOutput {
        let mut a = vec!["apply", "-f", "-"];
        a.extend_from_slice(extra);
        self.run(&a, Some(&obj.to_string()))
    }

    /// `kubectl apply -f -`; panics unless it succeeds.
    pub fn apply_ok(&self, obj: &Value) -> KubectlOutput {
        let out = self.apply(obj, &[]);
        assert!(
            out.ok,
            "kubectl apply of {} {} failed:\n{}",
            obj["kind"], obj["metadata"]["name"], out.stderr
        );
        out
    }

    /// Creates a namespace with labels and waits for its `default` service account (the
    /// ServiceAccount admission plugin refuses pods until it exists).
    pub fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.apply_ok(&json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }));
        wait_until(
            &format!("service account {name}/default"),
            Duration::from_secs(30),
            || {
                self.run(&["-n", name, "get", "serviceaccount", "default"], None)
                    .ok
                    .then_some(())
            },
        );
    }

    /// The pods of namespace `ns` matching `selector`, once there are exactly `n`.
    /// On time-out the panic shows the ReplicaSets' conditions and the namespace's events.
    pub fn wait_pods(&self, ns: &str, selector: &str, n: usize) -> Vec<Value> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let list = self.json(&["-n", ns, "get", "pods", "-l", selector]);
            let items = list["items"].as_array().cloned().unwrap_or_default();
            if items.len() == n {
                return items;
            }
            if Instant::now() > end {
                let rs = self.run(
                    &["-n", ns, "get", "replicasets", "-l", selector, "-o",
                      "jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{\"\\n\"}{end}"],
                    None,
                );
                let events = self.run(&["-n", ns, "get", "events"], None);
                panic!(
                    "timed out after 60s waiting for {n} pods {selector} in namespace {ns} (have {}):\nReplicaSets: {}{}\nevents:\n{}",
                    items.len(),
                    rs.stdout,
                    rs.stderr,
                    events.stdout
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

// ---- akv-webhook ----------------------------------------------------------------------------

/// How to run `akv-webhook`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub bin: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub env_image: String,
    pub allow_vault_hosts: Vec<String>,
    /// `--registry-ca-file`: the CA of private registries (the test registry's).
    pub registry_ca_file: Option<PathBuf>,
    /// `KUBECONFIG` of the process: the API server its image pull secret lookups read
    /// (`kube::Client::try_default`); unset, the variable is inherited.
    pub kubeconfig: Option<PathBuf>,
    pub log: PathBuf,
}

/// A running `akv-webhook` on 127.0.0.1 (HTTPS and metrics ports fixed for its lifetime, so
/// it can be stopped and started again behind the same registration); stopped on drop.
pub struct Webhook {
    config: WebhookConfig,
    port: u16,
    metrics_port: u16,
    child: Option<Child>,
}

impl Webhook {
    pub fn start(config: WebhookConfig) -> Webhook {
        let mut w = Webhook {
            config,
            port: free_port(),
            metrics_port: free_port(),
            child: None,
        };
        w.resume();
        w
    }

    /// `https://127.0.0.1:PORT/mutate`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process (again) and waits until `/readyz` answers on the metrics port.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "akv-webhook is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.log)
            .expect("webhook log file");
        let mut cmd = Command::new(&self.config.bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--tls-cert")
            .arg(&self.config.tls_cert)
            .arg("--tls-key")
            .arg(&self.config.tls_key)
            .arg("--env-image")
            .arg(&self.config.env_image)
            .args(["--log-format", "text"]);
        for h in &self.config.allow_vault_hosts {
            cmd.arg("--allow-vault-host").arg(h);
        }
        if let Some(ca) = &self.config.registry_ca_file {
            // The test registry lives on loopback, which lookups refuse unless allowed.
            cmd.arg("--registry-ca-file")
                .arg(ca)
                .args(["--registry-allow-host", "127.0.0.1"]);
        }
        if let Some(kubeconfig) = &self.config.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.config.bin.display()));
        self.child = Some(child);
        let metrics_port = self.metrics_port;
        wait_until("akv-webhook /readyz", Duration::from_secs(20), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "akv-webhook exited at start ({status}):\n{}",
                    tail(&self.config.log, 30)
                );
            }
            matches!(http_get(metrics_port, "/readyz"), Ok((200, _))).then_some(())
        });
    }

    /// Stops the process: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("e2e: akv-webhook did not stop on SIGTERM within 10s: SIGKILL");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        match http_get(self.metrics_port, "/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics of akv-webhook: {other:?}"),
        }
    }

    /// `akv_webhook_reviews_total` by outcome.
    pub fn reviews(&self) -> BTreeMap<String, u64> {
        self.metrics()
            .lines()
            .filter_map(|l| l.strip_prefix("akv_webhook_reviews_total{outcome=\""))
            .filter_map(|l| l.split_once("\"} "))
            .map(|(k, v)| {
                let n: f64 = v.trim().parse().expect("counter value");
                (k.to_string(), n as u64)
            })
            .collect()
    }

    /// Every review answered, whatever the outcome.
    pub fn reviews_total(&self) -> u64 {
        self.reviews().values().sum()
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.config.log, n)
    }

    /// The whole log, every start included.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.config.log).unwrap_or_default()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- Key Vault: akv-env's harness and the token endpoint front -----------------------------

/// A node process that prints one JSON line when ready and exits when its stdin closes.
struct NodeProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl NodeProcess {
    fn start(
        node: &str,
        script: &Path,
        env: &BTreeMap<String, String>,
        log: &Path,
    ) -> (Self, Value) {
        let log = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(node)
            .arg(script)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {node} {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the first line");
        let stdin = child.stdin.take();
        let mut p = NodeProcess { child, stdin };
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            p.stop();
            panic!("{} did not start ({e}): {line:?}", script.display())
        });
        (p, ready)
    }

    fn stop(&mut self) {
        drop(self.stdin.take()); // it exits when its stdin closes
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// akv-env's Key Vault harness (`crates/akv-env/tests/testbed/harness.mjs`, installed by
/// `scripts/testbed-keyvault`): a token endpoint and two vaults on loopback.
pub struct KeyVault {
    pub paths: BTreeMap<String, String>,
    pub ports: harness_api::HarnessPorts,
    process: NodeProcess,
    front: Option<NodeProcess>,
}

impl std::ops::Deref for KeyVault {
    type Target = harness_api::HarnessPorts;

    fn deref(&self) -> &harness_api::HarnessPorts {
        &self.ports
    }
}

impl KeyVault {
    /// Fails (panics) naming `scripts/testbed-keyvault` when it is not installed.
    pub fn start(log_dir: &Path) -> KeyVault {
        let paths = harness_api::testbed_paths(&repo());
        let harness = PathBuf::from(&paths["AKV_TESTBED_HARNESS"]);
        let (process, ports) = NodeProcess::start(
            &paths["AKV_TESTBED_NODE"],
            &harness,
            &paths,
            &log_dir.join("keyvault-harness.log"),
        );
        KeyVault {
            ports: harness_api::HarnessPorts::from_ready_line(&ports.to_string()),
            paths,
            process,
            front: None,
        }
    }

    pub fn path(&self, key: &str) -> &str {
        &self.paths[key]
    }

    /// Starts `tests/testbed/k8s-token-front.mjs` on `port`: the token endpoint that checks
    /// a pod's assertion against the API server's JWKS (`jwks_file`) and `issuer`.
    pub fn start_front(&mut self, port: u16, jwks_file: &Path, issuer: &str, log_dir: &Path) {
        let mut env = self.paths.clone();
        env.insert("AKV_E2E_FRONT_PORT".into(), port.to_string());
        env.insert("AKV_E2E_JWKS_FILE".into(), jwks_file.display().to_string());
        env.insert("AKV_E2E_ISSUER".into(), issuer.to_string());
        env.insert("AKV_E2E_HARNESS_TOKEN_PORT".into(), self.token.to_string());
        env.insert(
            "AKV_E2E_HARNESS_CONTROL_PORT".into(),
            self.control.to_string(),
        );
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/k8s-token-front.mjs");
        let (front, _) = NodeProcess::start(
            &self.paths["AKV_TESTBED_NODE"],
            &script,
            &env,
            &log_dir.join("k8s-token-front.log"),
        );
        self.front = Some(front);
    }

    pub fn stop(&mut self) {
        if let Some(mut f) = self.front.take() {
            f.stop();
        }
        self.process.stop();
    }
}

impl Drop for KeyVault {
    fn drop(&mut self) {
        self.stop();
    }
}
