//! akv-env's integration test bed: one Key Vault [`Harness`] per test binary (started on
//! first use, stopped when the process ends and its stdin closes), pods — a workload
//! identity registered with the harness's token endpoint, its federated token file and a
//! scratch directory — that run the akv-env binary, and openssl for test certificates.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::harness::Harness;
/// Re-exported: akv-env's tests name their objects and identities with them.
pub use crate::ids::{guid, random_hex, unique};

/// The harness and the akv-env binary under test.
pub struct Testbed {
    harness: Harness,
    /// The akv-env binary pods run (`CARGO_BIN_EXE_akv-env` of akv-env's tests).
    pub bin: &'static str,
}

static TESTBED: OnceLock<Testbed> = OnceLock::new();

impl Testbed {
    /// The test bed of this test binary, started on first use with akv-env binary `bin`;
    /// panics (never skips) when it cannot be had.
    pub fn shared(bin: &'static str) -> &'static Testbed {
        TESTBED.get_or_init(|| Testbed {
            harness: Harness::start(Stdio::inherit()),
            bin,
        })
    }
}

impl Deref for Testbed {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.harness
    }
}

/// A pod: a workload identity registered with the token endpoint, its federated token
/// file, a scratch directory, and the environment akv-env runs with.
pub struct Pod {
    pub client_id: String,
    pub tenant_id: String,
    pub subject: String,
    pub dir: PathBuf,
    pub token_file: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Pod {
    /// A pod whose identity lives in the vaults' tenant.
    pub fn new(tb: &Testbed) -> Pod {
        Pod::with_identity(tb, &tb.tenant, json!({}))
    }

    /// A pod whose identity lives in `tenant`; `extra` adds harness identity options
    /// (`issuer`, `hugeTokenBody`).
    pub fn with_identity(tb: &Testbed, tenant: &str, extra: Value) -> Pod {
        let client_id = guid();
        let tenant_id = tenant.to_string();
        let subject = format!("system:serviceaccount:ns-{}:app", random_hex(6));
        let mut identity = json!({"client_id": client_id, "tenant": tenant_id, "subject": subject});
        if let (Some(o), Some(e)) = (identity.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        tb.control("/identity", identity);
        let dir = std::env::temp_dir().join(format!("akv-env-test-{}", random_hex(12)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let token_file = dir.join("azure-identity-token");
        let token = tb.control("/mint", json!({"subject": subject}))["token"]
            .as_str()
            .expect("token")
            .to_string();
        std::fs::write(&token_file, token).expect("write token");
        let env = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("SSL_CERT_FILE", tb.path("AKV_TESTBED_CA").to_string()),
            ("AZURE_CLIENT_ID", client_id.clone()),
            ("AZURE_TENANT_ID", tenant_id.clone()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            (
                "AZURE_AUTHORITY_HOST",
                format!("https://localhost:{}/", tb.token),
            ),
            ("AKV_INJECTOR_VAULT", tb.vault_url("a")),
            (
                "AKV_INJECTOR_ALLOW_VAULT_HOSTS",
                "127.0.0.1,127.0.0.2".to_string(),
            ),
            ("AKV_INJECTOR_TIMEOUT", "20s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Pod {
            client_id,
            tenant_id,
            subject,
            dir,
            token_file,
            env,
        }
    }

    /// Grants the pod's identity read access to `vault`.
    pub fn grant(&self, tb: &Testbed, vault: &str) -> &Self {
        tb.control(
            &format!("/vault/{vault}/grant"),
            json!({"client_id": self.client_id}),
        );
        self
    }

    /// Sets (or with `None` removes) one env var of the pod.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_string(), v.to_string()));
        }
        self
    }

    /// `akv-env -- ARGV...` with the pod's environment (nothing else) and `vars`.
    pub fn command(&self, tb: &Testbed, vars: &[(&str, &str)], argv: &[&str]) -> Command {
        let mut cmd = Command::new(tb.bin);
        cmd.env_clear()
            .envs(self.env.iter().cloned())
            .envs(vars.iter().copied())
            .arg("--")
            .args(argv);
        cmd
    }

    /// Runs `akv-env -- node app.mjs dump OUT ARGS...`; returns the output, what the
    /// application saw (None when it did not start) and akv-env's pid.
    pub fn run_app(
        &self,
        tb: &Testbed,
        vars: &[(&str, &str)],
        args: &[&str],
    ) -> (Output, Option<Value>, u32) {
        let out_file = self.dir.join(format!("app-{}.json", random_hex(6)));
        let app = tb.app_path();
        let mut argv = vec![
            tb.path("AKV_TESTBED_NODE"),
            app.as_str(),
            "dump",
            out_file.to_str().expect("utf-8"),
        ];
        argv.extend_from_slice(args);
        let child = self
            .command(tb, vars, &argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn akv-env");
        let pid = child.id();
        let output = child.wait_with_output().expect("wait");
        let seen = std::fs::read_to_string(&out_file)
            .ok()
            .map(|s| serde_json::from_str(&s).expect("app json"));
        (output, seen, pid)
    }
}

/// A process's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the test bed's openssl in `dir`; panics unless it succeeds; returns stdout.
pub fn openssl(tb: &Harness, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(tb.path("AKV_TESTBED_OPENSSL"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A self-signed RSA certificate made by openssl in `dir`: `key` and `cert` (PEM), valid
/// for 2 days, with `extra` arguments (e.g. `-addext ...`).
pub fn self_signed(tb: &Harness, dir: &Path, key: &str, cert: &str, subject: &str, extra: &[&str]) {
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days",
        "2", "-subj", subject,
    ];
    args.extend_from_slice(extra);
    openssl(tb, dir, &args);
}
