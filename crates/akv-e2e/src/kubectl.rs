//! `kubectl --kubeconfig FILE` runs against the test bed's API server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::wait_until;

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
    /// `kubectl` at `bin`, talking to the API server of `kubeconfig`.
    pub fn new(bin: PathBuf, kubeconfig: PathBuf) -> Kubectl {
        Kubectl { bin, kubeconfig }
    }

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
