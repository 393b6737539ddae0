//! How pods on the test bed's node reach the Key Vault harness and the token endpoint:
//! they listen on loopback, and pods reach this machine only at the node bridge's gateway
//! address (the pod network has no default route; never 169.254.0.0/16, no hostNetwork).
//! `scripts/lib/node/tcp_relay.py` forwards the gateway's ports to the loopback ones
//! (bytes only: TLS stays end to end), and one certificate, from a CA the pods trust
//! through a ConfigMap, names loopback, the gateway and the vault's DNS name (pods resolve
//! it to the gateway with `hostAliases`).

use std::path::{Path, PathBuf};
use std::process::Command;

use akv_testkit::node::NodeProcess;
use akv_testkit::pki::TestCa;

use crate::repo;

/// The pod network's /24 prefix (`AKV_TESTBED_POD_NET` of scripts/kube-up): the bridge is
/// `.1`, pods `.2`-`.254`.
pub const POD_NET: &str = "10.211.0";

/// The vault pods use: a Key Vault DNS name (allowed without `--allow-vault-host`).
pub const VAULT_HOST: &str = "akvnode.vault.azure.net";
/// A second vault, for pods that read two (one client id per vault), at port 443 of the
/// bridge's second address ([`gateway2`]; pods resolve the name to it with `hostAliases`).
pub const VAULT2_HOST: &str = "akvnode2.vault.azure.net";

/// The bridge's gateway address: where pods reach this machine.
pub fn gateway() -> String {
    format!("{POD_NET}.1")
}

/// The bridge's second address (`NODE_GATEWAY2_IP` of scripts/kube-up): this machine too.
pub fn gateway2() -> String {
    format!("{POD_NET}.253")
}

/// The pods' certificates: a CA of their own and one serving certificate.
pub struct PodTls {
    /// The CA, PEM: what pods trust (`SSL_CERT_FILE`).
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl PodTls {
    /// A fresh CA and a certificate for loopback, the gateway, [`VAULT_HOST`] and
    /// [`VAULT2_HOST`], written
    /// to `dir/tls.crt` and `dir/tls.key`.
    pub fn new(dir: &Path) -> PodTls {
        std::fs::create_dir_all(dir).expect("pod TLS dir");
        let ca = TestCa::new("akv-e2e pod network CA");
        let gw = gateway();
        let leaf = ca.leaf(
            VAULT_HOST,
            &[
                "localhost",
                "127.0.0.1",
                "127.0.0.2",
                &gw,
                &gateway2(),
                VAULT_HOST,
                VAULT2_HOST,
            ],
        );
        let (cert, key) = leaf.write_pem(dir);
        PodTls {
            ca_pem: ca.pem,
            cert,
            key,
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
        }
    }
}

/// `tcp_relay.py GATEWAY:PORT=127.0.0.1:PORT...`; stopped on drop (stdin closed, then
/// killed).
pub struct Relay(NodeProcess);

impl Relay {
    /// Relays each `(address on the bridge, port, loopback port)`; waits for its `ready`
    /// line. Panics with its log when it does not start (e.g. the bridge is not up).
    pub fn start(pairs: &[(String, u16, u16)], log: &Path) -> Relay {
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("scripts/lib/node/tcp_relay.py")).args(
            pairs
                .iter()
                .map(|(ip, listen, target)| format!("{ip}:{listen}=127.0.0.1:{target}")),
        );
        let stderr = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let (mut process, line) = NodeProcess::spawn(cmd, stderr.into());
        if line.trim() != "ready" {
            process.stop();
            panic!(
                "tcp_relay.py did not start on {:?} (is the node's bridge up?): {}",
                pairs
                    .iter()
                    .map(|(ip, port, _)| format!("{ip}:{port}"))
                    .collect::<Vec<_>>(),
                crate::tail(log, 20)
            );
        }
        Relay(process)
    }

    /// Stops the relay now (also done on drop).
    pub fn stop(&mut self) {
        self.0.stop();
    }
}
