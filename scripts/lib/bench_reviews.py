#!/usr/bin/env python3
"""Writes examples/bench/: the AdmissionReviews scripts/bench sends to every webhook.

Three pods, each in three dialects (the same pod, only the reference syntax and the
pod-level settings differ):
  akv-injector/           env values `akv:NAME`, annotation akv-injector.io/vault
  vault-secrets-webhook/  env values `vault:secret/data/shop/NAME#value`, annotations
                          vault.security.banzaicloud.io/vault-addr and -role
  akv2k8s/                env values `NAME@azurekeyvault` (NAME is an AzureKeyVaultSecret);
                          akv2k8s selects namespaces by label, not by pod annotation

Every container has an explicit `command`, so no webhook needs a registry lookup.
Run from the repository root: python3 scripts/lib/bench_reviews.py
"""
import copy
import json
import os
import uuid

DIALECTS = {
    "akv-injector": {
        "ref": lambda name: f"akv:{name}",
        "annotations": {"akv-injector.io/vault": "shop-kv", "akv-injector.io/timeout": "30s"},
    },
    "vault-secrets-webhook": {
        "ref": lambda name: f"vault:secret/data/shop/{name}#value",
        "annotations": {
            "vault.security.banzaicloud.io/vault-addr": "https://vault.vault:8200",
            "vault.security.banzaicloud.io/vault-role": "shop",
        },
    },
    "akv2k8s": {
        "ref": lambda name: f"{name}@azurekeyvault",
        "annotations": {},
    },
}


def container(name, command, args, plain, refs, dialect):
    env = [{"name": k, "value": v} for k, v in plain]
    env += [{"name": var, "value": DIALECTS[dialect]["ref"](obj)} for var, obj in refs]
    c = {
        "name": name,
        "image": f"registry.example/shop/{name}:3.2.0",
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if args:
        c["args"] = args
    return c


def refs(prefix, n, start=0):
    return [(f"{prefix.upper().replace('-', '_')}_{i}", f"{prefix}-{i}") for i in range(start, start + n)]


def pod_1(d):
    return {"containers": [container("api", ["/app/api"], ["--port", "8080"], [("LOG_LEVEL", "info")],
                                     [("DB_PASSWORD", "db-password"), ("STRIPE_KEY", "stripe-key")], d)]}


def pod_3x20(d):
    # 20 references over 3 containers: 8 + 7 + 5 (two objects shared between containers).
    return {"containers": [
        container("api", ["/app/api"], ["--port", "8080"], [("LOG_LEVEL", "info")],
                  refs("api-secret", 7) + [("DB_PASSWORD", "db-password")], d),
        container("worker", ["/app/worker"], [], [("QUEUE", "orders")],
                  refs("worker-secret", 6) + [("DB_PASSWORD", "db-password")], d),
        container("envoy", ["/usr/local/bin/envoy"], ["-c", "/etc/envoy/envoy.yaml"], [],
                  refs("envoy-secret", 5), d),
    ]}


def pod_init_sidecar(d):
    return {
        "initContainers": [container("migrate", ["/app/migrate"], ["up"], [],
                                     [("DB_ADMIN_PASSWORD", "db-admin-password")], d)],
        "containers": [
            container("api", ["/app/api"], ["--port", "8080"], [("LOG_LEVEL", "info")],
                      [("DB_PASSWORD", "db-password"), ("STRIPE_KEY", "stripe-key"), ("SESSION_KEY", "session-key")], d),
            container("log-shipper", ["/bin/fluent-bit"], ["-c", "/fluent-bit/etc/fluent-bit.conf"], [],
                      [("SHIPPER_TOKEN", "shipper-token")], d),
        ],
    }


PODS = {"review-1-container": pod_1, "review-3-containers-20-refs": pod_3x20, "review-init-sidecar": pod_init_sidecar}


def review(name, spec_fn, dialect):
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"akv-injector/bench/{name}"))
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    spec = spec_fn(dialect)
    spec.update({"serviceAccountName": "web", "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                 "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "enableServiceLinks": True})
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "7c1a7a4e-0000-4000-8000-000000000001",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "generateName": "shop-7d9c6b8f5d-", "namespace": "team-a",
                    "labels": {"app": "shop", "pod-template-hash": "7d9c6b8f5d", "azure.workload.identity/use": "true"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-7d9c6b8f5d",
                                         "uid": "5b0b2c1e-1111-4222-8333-444455556666", "controller": True,
                                         "blockOwnerDeletion": True}],
                    "annotations": copy.deepcopy(DIALECTS[dialect]["annotations"]),
                },
                "spec": spec,
            },
            "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "bench")
    for dialect in DIALECTS:
        os.makedirs(os.path.join(root, dialect), exist_ok=True)
        for name, fn in PODS.items():
            with open(os.path.join(root, dialect, f"{name}.json"), "w") as f:
                json.dump(review(name, fn, dialect), f, indent=2)
                f.write("\n")


if __name__ == "__main__":
    main()
