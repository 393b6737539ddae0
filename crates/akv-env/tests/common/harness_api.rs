//! The Key Vault test harness (`crates/akv-env/tests/testbed/harness.mjs`: token endpoint
//! and two vaults) as Rust tests see it: where the test bed is installed, the ports the
//! harness prints when it is ready, and its control API. Shared by akv-env's integration
//! tests and the end-to-end suite (`crates/akv-e2e`, which includes this file by path);
//! each starts and stops the harness process its own way.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// The `AKV_TESTBED_*` paths printed by `scripts/testbed-keyvault env`. Panics (never
/// skips) with what to run when the test bed is not installed.
pub fn testbed_paths(repo: &Path) -> BTreeMap<String, String> {
    let script = repo.join("scripts/testbed-keyvault");
    let out = Command::new(&script)
        .arg("env")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "the Key Vault test bed is missing: run scripts/testbed-keyvault first (it installs \
         oauth2-mock-server from npm and makes the test certificates; needs node >= 20.19, \
         npm and openssl). It said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Where a running harness listens.
#[derive(Debug, Clone, Copy)]
pub struct HarnessPorts {
    pub control: u16,
    pub token: u16,
    pub vault_a: u16,
    pub vault_b: u16,
}

impl HarnessPorts {
    /// Reads the JSON line the harness prints when it is ready.
    pub fn from_ready_line(line: &str) -> HarnessPorts {
        let ports: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the harness did not start ({e}): {line:?}"));
        let port = |v: &Value| v.as_u64().expect("port") as u16;
        HarnessPorts {
            control: port(&ports["control"]),
            token: port(&ports["token"]),
            vault_a: port(&ports["vaults"]["a"]),
            vault_b: port(&ports["vaults"]["b"]),
        }
    }

    /// POST to the control API; panics unless it answers 200.
    pub fn control(&self, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let mut s =
            TcpStream::connect(("127.0.0.1", self.control)).expect("connect to control API");
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: control\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        let (head, body) = resp.split_once("\r\n\r\n").expect("http response");
        assert!(head.contains(" 200 "), "control {path}: {resp}");
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    /// `https://HOST:PORT` of vault `a` (127.0.0.1) or `b` (127.0.0.2).
    pub fn vault_url(&self, vault: &str) -> String {
        match vault {
            "a" => format!("https://127.0.0.1:{}", self.vault_a),
            "b" => format!("https://127.0.0.2:{}", self.vault_b),
            _ => panic!("no vault {vault}"),
        }
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

    /// Request and token counters.
    pub fn stats(&self) -> Value {
        self.control("/stats", json!({}))
    }
}

/// `n` random hexadecimal digits, for secret values and ids that must not repeat.
pub fn random_hex(n: usize) -> String {
    let mut out = String::new();
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}
