//! The pods the node steps run: the test app of the node's test image
//! (`testbed/node/print-digests`, read with [`akv_e2e::app_output`]) in a namespace
//! enforcing `restricted`, with workload identity and the vault pods reach.

use std::time::{Duration, Instant};

use akv_e2e::pod_network::{gateway, gateway2, VAULT2_HOST, VAULT_HOST};
use serde_json::{json, Value};

use crate::bed::{Ctx, CLIENT_ID, INJECT};
use crate::objects::namespace_with_identity;

/// Opted in, enforcing the `restricted` Pod Security Standard.
pub(crate) const NS_NODE: &str = "e2e-node";
/// The service account the identity's federated credential trusts.
pub(crate) const NODE_SA: &str = "app";
/// Claims the same identity, but no federated credential trusts it.
pub(crate) const UNTRUSTED_SA: &str = "intruder";
pub(crate) const PRINT_DIGESTS: &str = "/usr/local/bin/print-digests";

/// The namespace of the node steps, once: its service accounts, the identity, the pull
/// secret of the node's registry, the CA pods trust, the ConfigMap `refs` of references.
pub(crate) fn node_namespace(ctx: &Ctx) {
    namespace_with_identity(
        ctx,
        NS_NODE,
        &[
            INJECT,
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
        ],
        NODE_SA,
    );
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": UNTRUSTED_SA, "namespace": NS_NODE,
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}},
    }));
    ctx.kv.identity(
        CLIENT_ID,
        &ctx.kv.tenant,
        &format!("system:serviceaccount:{NS_NODE}:{NODE_SA}"),
    );
    ctx.kv.grant("node", CLIENT_ID);
    let b = &ctx.bed;
    let auth = base64_encode(&format!(
        "{}:{}",
        b.var("NODE_REGISTRY_USER"),
        b.var("NODE_REGISTRY_PASSWORD")
    ));
    let docker = json!({"auths": {b.var("NODE_REGISTRY"): {"auth": auth}}});
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": NS_NODE},
        "data": {".dockerconfigjson": base64_encode(&docker.to_string())},
    }));
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "test-ca", "namespace": NS_NODE},
        "data": {"ca.pem": ctx.pod_tls.ca_pem},
    }));
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "refs", "namespace": NS_NODE},
        "data": {"FROM_CONFIGMAP": "akv:db-password", "FROM_ENV_FROM": "key=${akv:stripe-key}"},
    }));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A container of the test app that passes `restricted`, trusts the pods' CA and prints
/// the digests of `digest_vars`; `command` `None` runs the image's ENTRYPOINT/CMD.
pub(crate) fn app_container(
    ctx: &Ctx,
    name: &str,
    command: Option<Value>,
    env: Value,
    digest_vars: &str,
) -> Value {
    let mut env = env.as_array().cloned().unwrap_or_default();
    env.push(json!({"name": "DIGEST_VARS", "value": digest_vars}));
    env.push(json!({"name": "SSL_CERT_FILE", "value": "/etc/test-ca/ca.pem"}));
    let mut c = json!({
        "name": name,
        "image": ctx.node_app_image,
        "env": env,
        "volumeMounts": [{"name": "test-ca", "mountPath": "/etc/test-ca", "readOnly": true}],
        "securityContext": {
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true,
        },
    });
    if let Some(cmd) = command {
        c["command"] = cmd;
    }
    c
}

/// A pod template for the node: workload identity, the vault pods reach, images from the
/// node's registry with its pull secret, the vault's name resolved to the gateway.
pub(crate) fn node_template(ctx: &Ctx, sa: &str, restart: &str, containers: Value) -> Value {
    json!({
        "metadata": {
            "labels": {"azure.workload.identity/use": "true"},
            "annotations": {
                "akv-injector.io/vault": ctx.node_vault,
                "akv-injector.io/timeout": "60s",
            },
        },
        "spec": {
            "serviceAccountName": sa,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "imagePullSecrets": [{"name": "regcred"}],
            "hostAliases": [{"ip": gateway(), "hostnames": [VAULT_HOST]},
                            {"ip": gateway2(), "hostnames": [VAULT2_HOST]}],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": containers,
            "volumes": [{"name": "test-ca", "configMap": {"name": "test-ca"}}],
        },
    })
}

/// `kubectl logs POD -c CONTAINER` (with `--previous`: the last terminated run).
pub(crate) fn logs(ctx: &Ctx, pod: &str, container: &str, previous: bool) -> String {
    let mut args = vec!["-n", NS_NODE, "logs", pod, "-c", container];
    if previous {
        args.push("--previous");
    }
    let out = ctx.k.run(&args, None);
    out.stdout
}

/// Polls pod `name` every 300 ms until `done` returns `Some`; on time-out panics with the
/// pod's status and events.
pub(crate) fn wait_pod<T>(
    ctx: &Ctx,
    name: &str,
    secs: u64,
    what: &str,
    mut done: impl FnMut(&Value) -> Option<T>,
) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let out = ctx
            .k
            .run(&["-n", NS_NODE, "get", "pod", name, "-o", "json"], None);
        if out.ok {
            let pod: Value = serde_json::from_str(&out.stdout).expect("pod JSON");
            if let Some(v) = done(&pod) {
                return v;
            }
            if Instant::now() > end {
                let events = ctx.k.run(
                    &[
                        "-n",
                        NS_NODE,
                        "get",
                        "events",
                        "--field-selector",
                        &format!("involvedObject.name={name}"),
                    ],
                    None,
                );
                panic!(
                    "pod {name}: {what}: not after {secs}s; status: {}\nevents:\n{}",
                    pod["status"], events.stdout
                );
            }
        } else if Instant::now() > end {
            panic!("pod {name}: {what}: kubectl get failed: {}", out.stderr);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The status of container `name` (app or init) of a pod.
pub(crate) fn status_of<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or(&Value::Null)
}
