//! The Kubernetes test bed: `scripts/kube-up DIR` (etcd, kube-apiserver,
//! kube-controller-manager and the Azure Workload Identity webhook; with
//! `AKV_TESTBED_NODE=1` also a node: containerd, the kubelet, kube-scheduler, a CNI bridge
//! and an image registry) into a temp dir, `scripts/kube-down DIR` on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use akv_testkit::{env_lines, repo, testbed_env};
use serde_json::json;

use crate::kubectl::Kubectl;
use crate::tail;

/// A test bed from `scripts/kube-up DIR` (a temp dir); `scripts/kube-down DIR` on drop.
pub struct TestBed {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
    up: bool,
}

impl TestBed {
    /// Panics, naming `scripts/testbed-kube install`, unless the binaries are installed.
    pub fn require_installed() {
        testbed_env(
            "testbed-kube",
            "the Kubernetes test bed binaries are missing: run `scripts/testbed-kube install` \
             (builds and caches etcd, kube-apiserver, kube-controller-manager, the Azure Workload \
             Identity webhook and kubectl; or run scripts/e2e, which does)",
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
        bed.run_script("kube-up", &[], extra_env);
        bed
    }

    /// With a node (`AKV_TESTBED_NODE=1`): builds the images pods run and pushes them to
    /// the node's registry (`scripts/testbed-node push DIR`: akv-injector as the
    /// Dockerfile builds it, and the test app), then reads `DIR/env` again for their
    /// names (`NODE_ENV_IMAGE`, `NODE_APP_IMAGE`).
    pub fn push_node_images(&mut self) {
        self.run_script("testbed-node", &["push"], &[]);
    }

    /// Runs `scripts/SCRIPT ARGS... DIR` with `env`; panics with its stderr unless it
    /// succeeds; then reads `DIR/env`, which it writes or extends.
    fn run_script(&mut self, script: &str, args: &[&str], env: &[(&str, String)]) {
        let mut cmd = Command::new(repo().join("scripts").join(script));
        without_cargo_test_env(&mut cmd);
        let out = cmd
            .args(args)
            .arg(self.dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
        assert!(
            out.status.success(),
            "scripts/{script} {} {} failed:\n{}",
            args.join(" "),
            self.dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(self.dir.path().join("env")).expect("kube-up's env file");
        self.vars = env_lines(&env);
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
        Kubectl::new(
            PathBuf::from(self.var("KUBECTL")),
            PathBuf::from(self.var("KUBECONFIG")),
        )
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

    /// What a stopped test bed left behind on this machine: mounts under its dir (the
    /// node's containers and network namespaces), its node's bridge. Empty when clean.
    pub fn leftovers(&self) -> Vec<String> {
        let dir = format!("{}/", self.dir().display());
        let mut left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .map(|m| format!("mount {m}"))
            .collect();
        let node_env =
            std::fs::read_to_string(self.dir().join("node/node.env")).unwrap_or_default();
        if let Some(bridge) = env_lines(&node_env).get("NODE_BRIDGE") {
            let shown = Command::new("ip").args(["link", "show", bridge]).output();
            if shown.is_ok_and(|o| o.status.success()) {
                left.push(format!("bridge {bridge}"));
            }
        }
        left
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

/// Whether a variable `cargo test` sets for the test must not reach the scripts: the
/// `CARGO_*` (CARGO_PKG_*, CARGO_MANIFEST_DIR, CARGO_ENCODED_RUSTFLAGS, …) and `RUSTC*`
/// ones change the fingerprint of a `cargo build` the scripts run (testbed-node push would
/// rebuild akv-webhook in the dist profile for minutes). CARGO_HOME and CARGO_TARGET_DIR
/// stay: they say where the cache and the already built binaries are.
fn is_cargo_test_var(name: &str) -> bool {
    (name.starts_with("CARGO") || name.starts_with("RUSTC"))
        && name != "CARGO_HOME"
        && name != "CARGO_TARGET_DIR"
}

/// Removes from `cmd` the variables of [`is_cargo_test_var`].
fn without_cargo_test_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_test_var) {
            cmd.env_remove(name);
        }
    }
}

#[cfg(test)]
mod cargo_env_tests {
    use super::is_cargo_test_var;

    #[test]
    fn cargo_test_vars_are_removed_but_home_and_target_dir_stay() {
        for (name, removed) in [
            ("CARGO", true),
            ("CARGO_PKG_NAME", true),
            ("CARGO_MANIFEST_DIR", true),
            ("CARGO_ENCODED_RUSTFLAGS", true),
            ("CARGO_PRIMARY_PACKAGE", true),
            ("CARGO_TARGET_TMPDIR", true),
            ("RUSTC", true),
            ("RUSTC_WRAPPER", true),
            ("CARGO_HOME", false),
            ("CARGO_TARGET_DIR", false),
            ("RUSTUP_TOOLCHAIN", false),
            ("PATH", false),
        ] {
            assert_eq!(is_cargo_test_var(name), removed, "{name}");
        }
    }
}
