//! The Key Vault test harness (`crates/akv-env/tests/testbed/harness.mjs`: a token
//! endpoint and two vaults on loopback) as Rust tests see it: where the test bed is
//! installed, the running harness, and its control API. akv-env's integration tests
//! ([`crate::keyvault_bed`]) and the end-to-end suite each start one.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::net::http_request;
use crate::node::NodeProcess;

/// The `AKV_TESTBED_*` paths printed by `scripts/testbed-keyvault env`. Panics (never
/// skips) with what to run when the test bed is not installed.
pub fn testbed_paths() -> BTreeMap<String, String> {
    crate::testbed_env(
        "testbed-keyvault",
        "the Key Vault test bed is missing: run scripts/testbed-keyvault first (it installs \
         oauth2-mock-server from npm and makes the test certificates; needs node >= 20.19, \
         npm and openssl)",
    )
}

/// A running harness: its test bed paths, ports and tenant; stopped on drop.
pub struct Harness {
    /// `AKV_TESTBED_*`, from [`testbed_paths`].
    pub paths: BTreeMap<String, String>,
    pub ports: HarnessPorts,
    /// The tenant every harness vault belongs to.
    pub tenant: String,
    process: NodeProcess,
}

impl Harness {
    /// Starts the harness with its stderr going to `stderr`. Panics naming
    /// `scripts/testbed-keyvault` when the test bed is not installed.
    pub fn start(stderr: Stdio) -> Harness {
        let paths = testbed_paths();
        let (process, ready) = NodeProcess::start(
            &paths["AKV_TESTBED_NODE"],
            Path::new(&paths["AKV_TESTBED_HARNESS"]),
            &paths,
            stderr,
        );
        Harness {
            ports: HarnessPorts::from_ready(&ready),
            tenant: ready["tenant"]
                .as_str()
                .expect("the harness names its tenant")
                .to_string(),
            paths,
            process,
        }
    }

    /// One `AKV_TESTBED_*` path.
    pub fn path(&self, key: &str) -> &str {
        &self.paths[key]
    }

    /// `tests/testbed/app.mjs` of akv-env, next to the harness: the application that
    /// writes what it sees (`node app.mjs dump OUT ARGS...`).
    pub fn app_path(&self) -> String {
        Path::new(self.path("AKV_TESTBED_HARNESS"))
            .with_file_name("app.mjs")
            .display()
            .to_string()
    }

    /// Stops the harness now (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Deref for Harness {
    type Target = HarnessPorts;

    fn deref(&self) -> &HarnessPorts {
        &self.ports
    }
}

/// Where a running harness listens, and its control API.
#[derive(Debug, Clone, Copy)]
pub struct HarnessPorts {
    pub control: u16,
    pub token: u16,
    /// The IMDS-shaped endpoint (plain HTTP on 127.0.0.1).
    pub imds: u16,
    pub vault_a: u16,
    pub vault_b: u16,
}

impl HarnessPorts {
    /// Reads the JSON line the harness prints when it is ready.
    pub fn from_ready(ports: &Value) -> HarnessPorts {
        let port = |v: &Value| {
            v.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("the harness did not start: no ports in {ports}"))
        };
        HarnessPorts {
            control: port(&ports["control"]),
            token: port(&ports["token"]),
            imds: port(&ports["imds"]),
            vault_a: port(&ports["vaults"]["a"]),
            vault_b: port(&ports["vaults"]["b"]),
        }
    }

    /// POST to the control API; panics unless it answers 200.
    pub fn control(&self, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let (status, answer) = http_request(
            self.control,
            "POST",
            path,
            Some(&body),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("control {path}: {e}"));
        assert_eq!(status, 200, "control {path}: {answer}");
        serde_json::from_str(&answer).unwrap_or(Value::Null)
    }

    /// `https://HOST:PORT` of vault `a` (127.0.0.1) or `b` (127.0.0.2).
    pub fn vault_url(&self, vault: &str) -> String {
        match vault {
            "a" => format!("https://127.0.0.1:{}", self.vault_a),
            "b" => format!("https://127.0.0.2:{}", self.vault_b),
            _ => panic!("no vault {vault}"),
        }
    }

    /// `127.0.0.2:PORT`, for `akv://VAULT/...` references to vault b.
    pub fn vault_b_host(&self) -> String {
        format!("127.0.0.2:{}", self.vault_b)
    }

    /// Stores a secret; returns its version.
    pub fn secret(&self, vault: &str, name: &str, value: &str) -> String {
        self.control(
            &format!("/vault/{vault}/secret"),
            json!({"name": name, "value": value}),
        )["version"]
            .as_str()
            .expect("version")
            .to_string()
    }

    /// Registers a federated identity credential: `client_id` in `tenant` trusts `subject`.
    pub fn identity(&self, client_id: &str, tenant: &str, subject: &str) {
        self.control(
            "/identity",
            json!({"client_id": client_id, "tenant": tenant, "subject": subject}),
        );
    }

    /// Grants `client_id` read access to a vault.
    pub fn grant(&self, vault: &str, client_id: &str) {
        self.control(
            &format!("/vault/{vault}/grant"),
            json!({"client_id": client_id}),
        );
    }

    /// Makes requests to `path` of a vault fail as `f` says (`status`, `times`, ...).
    pub fn fault(&self, vault: &str, path: &str, f: Value) {
        let mut f = f;
        f["path"] = json!(path);
        self.control(&format!("/vault/{vault}/fault"), f);
    }

    /// Request and token counters.
    pub fn stats(&self) -> Value {
        self.control("/stats", json!({}))
    }

    /// Requests to one path of a vault: (total, unauthenticated, statuses).
    pub fn requests(&self, vault: &str, path: &str) -> (u64, u64, BTreeMap<String, u64>) {
        let s = &self.stats()["vaults"][vault][format!("GET {}", path.to_ascii_lowercase())];
        let statuses = s["statuses"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        (
            s["total"].as_u64().unwrap_or(0),
            s["unauthenticated"].as_u64().unwrap_or(0),
            statuses,
        )
    }

    /// Tokens issued to and refused for `client_id`: (issued, failures).
    pub fn tokens(&self, client_id: &str) -> (u64, u64) {
        let s = self.stats();
        (
            s["tokens"][client_id].as_u64().unwrap_or(0),
            s["tokenFailures"][client_id].as_u64().unwrap_or(0),
        )
    }
}
