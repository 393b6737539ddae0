//! The test bed for akv-env's integration tests: the harness (token endpoint + two vaults,
//! crates/akv-env/tests/testbed/harness.mjs) started once per test binary, and helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};

#[path = "harness_api.rs"]
mod harness_api;
pub use harness_api::{random_hex, HarnessPorts};

pub const BIN: &str = env!("CARGO_BIN_EXE_akv-env");

pub struct Testbed {
    pub paths: BTreeMap<String, String>,
    pub ports: HarnessPorts,
    /// The tenant every harness vault belongs to.
    pub tenant: String,
    // Held open: the harness exits when the test process ends and this closes.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static TESTBED: OnceLock<Testbed> = OnceLock::new();

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared test bed; panics (never skips) when it cannot be had.
pub fn testbed() -> &'static Testbed {
    TESTBED.get_or_init(|| {
        let paths = harness_api::testbed_paths(&repo());
        let mut child = Command::new(&paths["AKV_TESTBED_NODE"])
            .arg(&paths["AKV_TESTBED_HARNESS"])
            .envs(&paths)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test bed harness (node)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the harness ports");
        let ready: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        Testbed {
            ports: HarnessPorts::from_ready_line(&line),
            tenant: ready["tenant"]
                .as_str()
                .expect("the harness names its tenant")
                .to_string(),
            paths,
            _stdin: Mutex::new(child.stdin.take().expect("stdin")),
            _child: Mutex::new(child),
        }
    })
}

impl Deref for Testbed {
    type Target = HarnessPorts;

    fn deref(&self) -> &HarnessPorts {
        &self.ports
    }
}

impl Testbed {
    pub fn path(&self, key: &str) -> &str {
        &self.paths[key]
    }

    /// `127.0.0.2:PORT`, for `akv://VAULT/...` references to vault b.
    pub fn vault_b_host(&self) -> String {
        format!("127.0.0.2:{}", self.vault_b)
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

    pub fn tokens(&self, client_id: &str) -> (u64, u64) {
        let s = self.stats();
        (
            s["tokens"][client_id].as_u64().unwrap_or(0),
            s["tokenFailures"][client_id].as_u64().unwrap_or(0),
        )
    }

    pub fn fault(&self, vault: &str, path: &str, f: Value) {
        let mut f = f;
        f["path"] = json!(path);
        self.control(&format!("/vault/{vault}/fault"), f);
    }
}

pub fn guid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A unique object name for one test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(8))
}

/// A pod: a workload identity registered with the token endpoint, its federated token
/// file, and a scratch directory.
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
        let env = vec![
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            (
                "SSL_CERT_FILE".to_string(),
                tb.path("AKV_TESTBED_CA").to_string(),
            ),
            ("AZURE_CLIENT_ID".to_string(), client_id.clone()),
            ("AZURE_TENANT_ID".to_string(), tenant_id.clone()),
            (
                "AZURE_FEDERATED_TOKEN_FILE".to_string(),
                token_file.display().to_string(),
            ),
            (
                "AZURE_AUTHORITY_HOST".to_string(),
                format!("https://localhost:{}/", tb.token),
            ),
            ("AKV_INJECTOR_VAULT".to_string(), tb.vault_url("a")),
            (
                "AKV_INJECTOR_ALLOW_VAULT_HOSTS".to_string(),
                "127.0.0.1,127.0.0.2".to_string(),
            ),
            ("AKV_INJECTOR_TIMEOUT".to_string(), "20s".to_string()),
        ];
        Pod {
            client_id,
            tenant_id,
            subject,
            dir,
            token_file,
            env,
        }
    }

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

    pub fn command(&self, tb: &Testbed, vars: &[(&str, &str)], argv: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .envs(self.env.iter().cloned())
            .envs(vars.iter().copied())
            .arg("--")
            .args(argv);
        let _ = tb;
        cmd
    }

    /// Runs `akv-env -- node app.mjs dump OUT ARGS...`; returns the output and what the
    /// application saw (None when it did not start).
    pub fn run_app(
        &self,
        tb: &Testbed,
        vars: &[(&str, &str)],
        args: &[&str],
    ) -> (Output, Option<Value>, u32) {
        let out_file = self.dir.join(format!("app-{}.json", random_hex(6)));
        let app = app_path();
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

pub fn app_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testbed/app.mjs")
        .display()
        .to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs openssl; returns stdout.
pub fn openssl(tb: &Testbed, dir: &Path, args: &[&str]) -> String {
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
pub fn self_signed(tb: &Testbed, dir: &Path, key: &str, cert: &str, subject: &str, extra: &[&str]) {
    let mut args = vec![
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days",
        "2", "-subj", subject,
    ];
    args.extend_from_slice(extra);
    openssl(tb, dir, &args);
}
