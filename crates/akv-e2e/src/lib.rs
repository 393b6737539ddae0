//! Helpers for the end-to-end suite (`tests/e2e/`): guards for the processes a run starts,
//! each stopped on drop — the Kubernetes test bed ([`kube_bed`]: `scripts/kube-up` /
//! `scripts/kube-down`), `akv-webhook` ([`webhook`]), and akv-env's Key Vault harness with
//! a token endpoint front that trusts the test bed's service-account issuer
//! ([`keyvault`]) — plus [`kubectl`], the way pods on the node reach those
//! ([`pod_network`]) and the [`runner`] of the named steps. The image registry test bed and the harness client are
//! `akv_testkit`'s, shared with the webhook's and akv-env's tests.
//! Nothing here is skipped: a missing piece is a panic whose message says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod app_output;
pub mod keyvault;
pub mod kube_bed;
pub mod kubectl;
pub mod pod_network;
pub mod runner;
pub mod webhook;

pub use akv_testkit::{free_port, repo};
pub use keyvault::KeyVault;
pub use kube_bed::TestBed;
pub use kubectl::{Kubectl, KubectlOutput};
pub use webhook::{Webhook, WebhookConfig};

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
