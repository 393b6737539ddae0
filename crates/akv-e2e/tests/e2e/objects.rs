//! The objects the admission steps create: the contract's example Deployment (stored,
//! its pods checked as the API server keeps them; the node steps run their own pods,
//! `node_pods`), and namespaces bound to our identity.

use serde_json::{json, Value};

use crate::bed::{Ctx, APP_IMAGE, CLIENT_ID};

/// A security context that passes the `restricted` Pod Security Standard.
pub(crate) fn restricted_container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The pod template of the contract's example Deployment: the app is akv-env's test app
/// (`node app.mjs dump OUT ARGS...`). Its images are not in any registry: on the node
/// these pods stay unpulled; the admission steps check them as stored.
pub(crate) fn shop_template(ctx: &Ctx, sa: &str) -> Value {
    let vault_a = ctx.kv.vault_url("a");
    let vault_b_host = format!("127.0.0.2:{}", ctx.kv.vault_b);
    json!({
        "metadata": {
            "labels": {"app": "shop-api", "azure.workload.identity/use": "true"},
            "annotations": {
                "akv-injector.io/vault": vault_a,
                "akv-injector.io/env.STRIPE_KEY": "stripe-key",
                "akv-injector.io/timeout": "30s",
            },
        },
        "spec": {
            "serviceAccountName": sa,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{
                "name": "migrate",
                "image": APP_IMAGE,
                "command": ["/bin/true"],
                "securityContext": restricted_container_security(),
            }],
            "containers": [
                {
                    "name": "api",
                    "image": APP_IMAGE,
                    "command": [ctx.node, ctx.app_mjs, "dump", "/out/api.json"],
                    "args": ["$(DB_PASSWORD)", "--url=$(DATABASE_URL)", "--not-a-reference=$(DB_PASSWORD)", "--port", "8080"],
                    "env": [
                        {"name": "DB_PASSWORD", "value": "akv:db-password"},
                        {"name": "DATABASE_URL", "value": "postgres://shop:${akv:db-password}@db:5432/shop"},
                        {"name": "PARTNER_TOKEN", "value": format!("akv://{vault_b_host}/partner-token")},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                    "securityContext": restricted_container_security(),
                },
                {
                    "name": "sidecar",
                    "image": APP_IMAGE,
                    "command": [ctx.node, ctx.app_mjs, "dump", "/out/sidecar.json"],
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                    "securityContext": restricted_container_security(),
                },
            ],
            "volumes": [{"name": "out", "emptyDir": {}}],
        },
    })
}

pub(crate) fn deployment(name: &str, replicas: u32, template: &Value) -> Value {
    let mut template = template.clone();
    template["metadata"]["labels"]["app"] = json!(name);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    })
}

pub(crate) fn pod(name: &str, template: &Value) -> Value {
    let mut p = template.clone();
    p["apiVersion"] = json!("v1");
    p["kind"] = json!("Pod");
    p["metadata"]["name"] = json!(name);
    // its own app label: a ReplicaSet whose selector matched would adopt it
    p["metadata"]["labels"]["app"] = json!(name);
    p
}

pub(crate) fn in_ns(obj: &Value, ns: &str) -> Value {
    let mut o = obj.clone();
    o["metadata"]["namespace"] = json!(ns);
    o
}

/// A namespace opted in (or not), with service account `sa` bound to our identity.
pub(crate) fn namespace_with_identity(ctx: &Ctx, ns: &str, labels: &[(&str, &str)], sa: &str) {
    ctx.k.namespace(ns, labels);
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": sa, "namespace": ns,
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}},
    }));
}
