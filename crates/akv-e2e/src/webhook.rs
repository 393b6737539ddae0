//! `akv-webhook` run as a process on loopback, as the API server of the test bed calls it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use akv_testkit::free_port;
use akv_testkit::net::http_request;

use crate::{tail, wait_until};

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

/// One GET to the metrics port.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, None, Duration::from_secs(10))
}
