//! akv-env's Key Vault harness for the end-to-end suite, with a token endpoint front
//! (`tests/testbed/k8s-token-front.mjs`) that checks a pod's assertion against the test
//! bed API server's service-account issuer.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::process::Stdio;

use akv_testkit::harness::Harness;
use akv_testkit::node::NodeProcess;

/// The harness (`crates/akv-env/tests/testbed/harness.mjs`, installed by
/// `scripts/testbed-keyvault`: a token endpoint and two vaults on loopback) and, once
/// started, the front; both stopped on drop.
pub struct KeyVault {
    harness: Harness,
    front: Option<NodeProcess>,
}

impl Deref for KeyVault {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

fn log_file(path: &Path) -> Stdio {
    File::create(path)
        .unwrap_or_else(|e| panic!("cannot create the log file {}: {e}", path.display()))
        .into()
}

impl KeyVault {
    /// Starts the harness, logging into `log_dir`. Fails (panics) naming
    /// `scripts/testbed-keyvault` when it is not installed.
    pub fn start(log_dir: &Path) -> KeyVault {
        KeyVault {
            harness: Harness::start(log_file(&log_dir.join("keyvault-harness.log"))),
            front: None,
        }
    }

    /// Starts `tests/testbed/k8s-token-front.mjs` on `port`: the token endpoint that checks
    /// a pod's assertion against the API server's JWKS (`jwks_file`) and `issuer`,
    /// serving `tls` (certificate, key) when given, else the test bed's certificate.
    pub fn start_front(
        &mut self,
        port: u16,
        jwks_file: &Path,
        issuer: &str,
        log_dir: &Path,
        tls: Option<(&Path, &Path)>,
    ) {
        let mut env = self.paths.clone();
        if let Some((cert, key)) = tls {
            env.insert("AKV_TESTBED_CERT".into(), cert.display().to_string());
            env.insert("AKV_TESTBED_KEY".into(), key.display().to_string());
        }
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
            self.path("AKV_TESTBED_NODE"),
            &script,
            &env,
            log_file(&log_dir.join("k8s-token-front.log")),
        );
        self.front = Some(front);
    }

    /// Stops the front, then the harness (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut f) = self.front.take() {
            f.stop();
        }
        self.harness.stop();
    }
}

impl Drop for KeyVault {
    fn drop(&mut self) {
        self.stop();
    }
}
