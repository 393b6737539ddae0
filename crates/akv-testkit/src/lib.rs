//! Test support for akv-injector's test suites, in one place instead of files included by
//! path across crates:
//!
//! - [`harness`]: the Key Vault harness (`crates/akv-env/tests/testbed/harness.mjs`) as
//!   Rust tests see it: where the test bed is installed, starting it, its control API.
//! - [`keyvault_bed`]: akv-env's integration test bed on top of it: one harness per test
//!   binary, and pods (workload identities) that run the akv-env binary.
//! - [`review`]: AdmissionReview builders for the webhook's tests.
//! - [`pki`] (feature `pki`): test CAs and leaf certificates made with rcgen.
//! - [`registry`] (feature `registry`): a real image registry with test images in it.
//! - [`wait`] (feature `wait`): polling in async tests.
//! - [`net`], [`ids`], [`node`]: loopback HTTP, unique names, node processes.
//!
//! Nothing here skips a test: a missing test bed is a panic that names the script that
//! installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod harness;
pub mod ids;
pub mod keyvault_bed;
pub mod net;
pub mod node;
#[cfg(feature = "pki")]
pub mod pki;
#[cfg(feature = "registry")]
pub mod registry;
pub mod review;
#[cfg(feature = "wait")]
pub mod wait;

pub use ids::random_hex;
pub use net::free_port;

/// The repository root.
pub fn repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `KEY=value` lines (optionally `export KEY=value`; `#` comments skipped), as the test
/// bed scripts print them.
pub fn env_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches("export "))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `scripts/NAME env` (a test bed script) and returns the variables it prints.
/// Panics (never skips) with `missing` and what the script said when it fails: the test
/// bed is not installed.
pub fn testbed_env(name: &str, missing: &str) -> BTreeMap<String, String> {
    let script = repo().join("scripts").join(name);
    let out = Command::new(&script)
        .arg("env")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{missing}. scripts/{name} env said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env_lines(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::env_lines;

    #[test]
    fn env_lines_read_plain_and_exported_variables() {
        let vars = env_lines("# comment\nA=1\nexport B=x=y\n  C=\nnot a variable\n");
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, [("A", "1"), ("B", "x=y"), ("C", "")]);
    }
}
