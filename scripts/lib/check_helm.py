"""Checks the Helm chart's renders (run by scripts/check-helm).

Each render (`helm template` with one value set) is schema-checked like the kustomize
manifests (check_manifests.schema_check: kubernetes-validate strict, CRD models for
cert-manager and the Prometheus Operator). Then:
- the renders with certificate.source cert-manager and secret must equal
  `kubectl kustomize manifests/cert-manager` and `kubectl kustomize manifests`, each with
  `kubectl kustomize manifests/guard`, object for object, modulo labels (the chart's
  labels must hold kustomize's); the default render (generate) too, but for its Secret
  and the caBundle, which must be a CA that issued the Secret's certificate;
- every AKV_WEBHOOK_* flag of crates/akv-webhook/src/args.rs is settable from values;
- monitoring, dashboard and NetworkPolicy objects select the webhook and name only
  metrics the webhook exports.
"""

from __future__ import annotations

import argparse
import base64
import copy
import difflib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_manifests as cm  # noqa: E402  (the shared checks and their counters)

from check_manifests import check, dig, expect, fail, index, load, selects  # noqa: E402

NS = cm.NS
GUARD = [("ValidatingAdmissionPolicy", "", "akv-injector-guard"),
         ("ValidatingAdmissionPolicyBinding", "", "akv-injector-guard")]
# Flags the chart passes as arguments (fixed paths, or the env var the args refer to).
ARG_FLAGS = {"TLS_CERT": "--tls-cert=", "TLS_KEY": "--tls-key=", "LOG_FORMAT": "--log-format=",
             "ENV_IMAGE": "--env-image="}
# Metrics the alerts and dashboard use that the webhook does not export yet.
PENDING_METRICS: set[str] = set()  # names the alerts may use before the webhook exports them
METRIC_PREFIX = "akv_webhook"  # crates/akv-webhook/src/metrics.rs PREFIX


# ---- modulo labels ---------------------------------------------------------------------

def label_places(o: dict) -> list[tuple[str, ...]]:
    places = [("metadata", "labels")]
    if dig(o, "spec", "template", "metadata") is not None:
        places.append(("spec", "template", "metadata", "labels"))
    return places


def without_labels(o: dict) -> dict:
    o = copy.deepcopy(o)
    for place in label_places(o):
        parent = dig(o, *place[:-1])
        if isinstance(parent, dict):
            parent.pop(place[-1], None)
            if not parent and place[-2] == "metadata" and len(place) > 2:
                dig(o, *place[:-2]).pop("metadata")
    return o


def dump(o: Any) -> list[str]:
    return yaml.safe_dump(o, sort_keys=True, default_flow_style=False).splitlines()


def same_objects(variant: str, chart: list[dict], kustomize: list[dict],
                 chart_only: set[tuple[str, str, str]] = frozenset()) -> None:
    """The chart renders kustomize's objects, modulo labels; chart_only may be extra."""
    p = f"[{variant}] vs kustomize"
    c, k = index(chart), index(kustomize)
    expect(f"{p}: the same objects", sorted(set(c) - chart_only), sorted(k))
    for key in sorted(set(c) & set(k)):
        want, got = k[key], c[key]
        name = "/".join(x for x in key if x)
        a, b = dump(without_labels(want)), dump(without_labels(got))
        check(f"{p}: {name} is the same, modulo labels", a == b,
              "\n" + "\n".join(difflib.unified_diff(a, b, "kustomize", "helm", lineterm="")))
        for place in label_places(want):
            kl, hl = dig(want, *place, default={}) or {}, dig(got, *place, default={}) or {}
            missing = {n: v for n, v in kl.items() if hl.get(n) != v}
            check(f"{p}: {name} {'.'.join(place)} hold kustomize's", not missing, repr(missing))


def without_namespace(objs: list[dict]) -> list[dict]:
    """kustomize's objects but its Namespace: Helm makes the release namespace
    (--create-namespace); the chart renders the same Namespace with namespace.create=true."""
    return [o for o in objs if o["kind"] != "Namespace"]


# ---- certificates ----------------------------------------------------------------------

def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True)


def check_generated_tls(variant: str, objs: list[dict], ns: str = NS) -> None:
    p = f"[{variant}]"
    idx = index(objs)
    sec = idx.get(("Secret", ns, "akv-webhook-tls"))
    if not check(f"{p} generated Secret akv-webhook-tls", sec):
        return
    expect(f"{p} Secret type", sec.get("type"), "kubernetes.io/tls")
    data = {k: base64.b64decode(v) for k, v in (sec.get("data") or {}).items()}
    expect(f"{p} Secret keys", sorted(data), ["ca.crt", "tls.crt", "tls.key"])
    mwc = idx.get(("MutatingWebhookConfiguration", "", "akv-injector"), {})
    bundle = base64.b64decode(dig(mwc, "webhooks", 0, "clientConfig", "caBundle", default=""))
    expect(f"{p} caBundle is the Secret's ca.crt", bundle, data.get("ca.crt"))
    with tempfile.TemporaryDirectory() as d:
        for k, v in data.items():
            Path(d, k).write_bytes(v)
        r = openssl("verify", "-CAfile", f"{d}/ca.crt", "-purpose", "sslserver", f"{d}/tls.crt")
        check(f"{p} the caBundle CA issued the serving certificate (openssl verify, sslserver)",
              r.returncode == 0, (r.stdout + r.stderr).decode().strip())
        r = openssl("x509", "-in", f"{d}/tls.crt", "-noout", "-ext", "subjectAltName")
        sans = set(re.findall(r"DNS:([^,\s]+)", r.stdout.decode()))
        want = {f"akv-webhook.{ns}.svc", f"akv-webhook.{ns}.svc.cluster.local"}
        check(f"{p} serving certificate names the Service's DNS names", want <= sans, repr(sans))
        of_cert = openssl("x509", "-in", f"{d}/tls.crt", "-noout", "-pubkey").stdout
        of_key = openssl("pkey", "-in", f"{d}/tls.key", "-pubout").stdout
        check(f"{p} tls.key is the serving certificate's key", of_cert and of_cert == of_key)


# ---- the guard -------------------------------------------------------------------------

def check_guard_selectors(variant: str, objs: list[dict]) -> None:
    """The guard looks at exactly the pods the webhook is sent."""
    idx = index(objs)
    b = idx.get(GUARD[1])
    w = dig(idx.get(("MutatingWebhookConfiguration", "", "akv-injector")), "webhooks", 0, default={})
    if not check(f"[{variant}] guard binding", b):
        return
    expect(f"[{variant}] guard binding: policy", dig(b, "spec", "policyName"), "akv-injector-guard")
    expect(f"[{variant}] guard binding: Deny", dig(b, "spec", "validationActions"), ["Deny"])
    for sel in ("namespaceSelector", "objectSelector"):
        expect(f"[{variant}] guard binding {sel} is the webhook's",
               dig(b, "spec", "matchResources", sel), w.get(sel))


# ---- flags -----------------------------------------------------------------------------

def webhook_flags(args_rs: Path) -> list[str]:
    return re.findall(r'env = "AKV_WEBHOOK_([A-Z0-9_]+)"', args_rs.read_text())


def container(objs: list[dict], ns: str = NS) -> dict:
    dep = index(objs).get(("Deployment", ns, "akv-webhook"), {})
    return (dig(dep, "spec", "template", "spec", "containers", default=[{}]) or [{}])[0]


def check_flags(variant: str, objs: list[dict], flags: list[str], want_env: dict[str, str],
                all_set: bool) -> None:
    """all_set: the value set sets every flag, so each must show as its env var."""
    p = f"[{variant}]"
    c = container(objs)
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    args = c.get("args") or []
    for flag in flags:
        name = f"AKV_WEBHOOK_{flag}"
        if flag in ARG_FLAGS:
            check(f"{p} --{flag.lower().replace('_', '-')} is passed as an argument",
                  any(a.startswith(ARG_FLAGS[flag]) for a in args), repr(args))
        elif all_set:
            check(f"{p} {name} is settable from values", name in env,
                  "add a value for it to charts/akv-injector (values.yaml, templates/deployment.yaml)")
    for name, value in want_env.items():
        expect(f"{p} env {name}", env.get(name), value)
    names = [e["name"] for e in c.get("env") or []]
    expect(f"{p} no env var twice", sorted(n for n in set(names) if names.count(n) > 1), [])


# ---- monitoring ------------------------------------------------------------------------

def exported_metrics(src: Path) -> set[str]:
    names = set()
    for f in src.rglob("*.rs"):
        names |= set(re.findall(r'register\(\s*"([a-z0-9_]+)"', f.read_text()))
    return {f"{METRIC_PREFIX}_{n}" for n in names}


def check_metric_names(p: str, exprs: list[str], exported: set[str], pending: set[str]) -> None:
    series = set()
    for e in exprs:
        series |= set(re.findall(r"\bakv_webhook_[a-z0-9_]+", e))
    suffixes = ("_total", "_bucket", "_sum", "_count", "_created", "")
    unknown = set()
    for s in sorted(series):
        base = next((s[: len(s) - len(x)] for x in suffixes if x and s.endswith(x)
                     and s[: len(s) - len(x)] in exported), s)
        if base in exported:
            continue
        if base in PENDING_METRICS:
            pending.add(base)
            continue
        unknown.add(s)
    check(f"{p}: names only metrics akv-webhook exports", not unknown and series, repr(sorted(unknown)))


def monitoring_exprs(objs: list[dict]) -> tuple[list[str], list[str]]:
    """PromQL of the PrometheusRule's rules and of the dashboard's panels."""
    rules = [r.get("expr", "") for o in objs if o["kind"] == "PrometheusRule"
             for g in dig(o, "spec", "groups", default=[]) for r in g.get("rules") or []]
    panels = []
    for o in objs:
        if o["kind"] == "ConfigMap" and "akv-webhook.json" in (o.get("data") or {}):
            d = json.loads(o["data"]["akv-webhook.json"])
            panels += [t.get("expr", "") for pn in d.get("panels") or [] for t in pn.get("targets") or []]
    return rules, panels


def scraped_families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+)", text, re.M))


def check_monitoring(variant: str, objs: list[dict], exported: set[str], pending: set[str]) -> None:
    p = f"[{variant}]"
    idx = index(objs)
    dep = idx.get(("Deployment", NS, "akv-webhook"), {})
    pod_labels = dig(dep, "spec", "template", "metadata", "labels", default={})
    svc = idx.get(("Service", NS, "akv-webhook"), {})
    svc_ports = {pt.get("name") for pt in dig(svc, "spec", "ports", default=[])}
    c = container(objs)
    pod_ports = {pt.get("name") for pt in c.get("ports") or []}

    sm = idx.get(("ServiceMonitor", NS, "akv-webhook"))
    if check(f"{p} ServiceMonitor", sm):
        check(f"{p} ServiceMonitor selects the Service",
              selects(dig(sm, "spec", "selector"), dig(svc, "metadata", "labels", default={})))
        expect(f"{p} ServiceMonitor scrapes the metrics port over http",
               [(e.get("port"), e.get("path"), e.get("scheme")) for e in dig(sm, "spec", "endpoints", default=[])],
               [("metrics", "/metrics", "http")])
        check(f"{p} the Service has that port", "metrics" in svc_ports)
    pm = idx.get(("PodMonitor", NS, "akv-webhook"))
    if check(f"{p} PodMonitor", pm):
        check(f"{p} PodMonitor selects the webhook pods", selects(dig(pm, "spec", "selector"), pod_labels))
        expect(f"{p} PodMonitor scrapes the metrics port",
               [e.get("port") for e in dig(pm, "spec", "podMetricsEndpoints", default=[])], ["metrics"])
        check(f"{p} the container has that port", "metrics" in pod_ports)
    pr = idx.get(("PrometheusRule", NS, "akv-webhook"))
    if check(f"{p} PrometheusRule", pr):
        rules = [r for g in dig(pr, "spec", "groups", default=[]) for r in g.get("rules") or []]
        alerts = {r.get("alert") for r in rules}
        for want in ("AkvWebhookReviewErrors", "AkvWebhookReviewLatencyHigh",
                     "AkvWebhookTLSCertificateExpiresSoon", "AkvWebhookRegistryLookupErrors"):
            check(f"{p} alert {want}", want in alerts, repr(sorted(alerts)))
        for r in rules:
            check(f"{p} alert {r.get('alert')} has a summary, description and severity",
                  dig(r, "annotations", "summary") and dig(r, "annotations", "description")
                  and dig(r, "labels", "severity"))
            check(f"{p} alert {r.get('alert')} is scoped to the release namespace",
                  f'namespace="{NS}"' in r.get("expr", ""), r.get("expr", ""))
        check_metric_names(f"{p} PrometheusRule", monitoring_exprs(objs)[0], exported, pending)
    dash = idx.get(("ConfigMap", NS, "akv-webhook-dashboard"))
    if check(f"{p} dashboard ConfigMap", dash):
        expect(f"{p} dashboard ConfigMap has Grafana's sidecar label",
               dig(dash, "metadata", "labels", "grafana_dashboard"), "1")
        try:
            d = json.loads(dig(dash, "data", "akv-webhook.json", default=""))
        except json.JSONDecodeError as e:
            fail(f"{p} dashboard JSON: {e}")
            return
        panels = d.get("panels") or []
        check(f"{p} dashboard has panels with queries",
              panels and all(pn.get("targets") for pn in panels))
        expect(f"{p} dashboard panel ids are unique", len({pn.get("id") for pn in panels}), len(panels))
        check_metric_names(f"{p} dashboard", monitoring_exprs(objs)[1], exported, pending)


def check_network_policy(variant: str, objs: list[dict], egress: bool) -> None:
    p = f"[{variant}]"
    idx = index(objs)
    np_ = idx.get(("NetworkPolicy", NS, "akv-webhook"))
    if not check(f"{p} NetworkPolicy", np_):
        return
    dep = idx.get(("Deployment", NS, "akv-webhook"), {})
    pod_labels = dig(dep, "spec", "template", "metadata", "labels", default={})
    check(f"{p} NetworkPolicy selects the webhook pods", selects(dig(np_, "spec", "podSelector"), pod_labels))
    ports = {pt.get("port") for r in dig(np_, "spec", "ingress", default=[]) for pt in r.get("ports") or []}
    expect(f"{p} NetworkPolicy admits the webhook and metrics ports", ports, {8443, 9090})
    expect(f"{p} NetworkPolicy policyTypes", dig(np_, "spec", "policyTypes"),
           ["Ingress", "Egress"] if egress else ["Ingress"])
    if egress:
        eports = {pt.get("port") for r in dig(np_, "spec", "egress", default=[]) for pt in r.get("ports") or []}
        check(f"{p} egress allows DNS and HTTPS", {53, 443} <= eports, repr(eports))


# ---- the variants ----------------------------------------------------------------------

def check_scraped(renders: Path, scraped: Path) -> int:
    """The monitoring render's metric names against a running webhook's /metrics."""
    pending: set[str] = set()
    objs = load(str(renders / "monitoring.yaml"))
    families = scraped_families(scraped.read_text())
    rules, panels = monitoring_exprs(objs)
    check_metric_names("[scraped /metrics] PrometheusRule", rules, families, pending)
    check_metric_names("[scraped /metrics] dashboard", panels, families, pending)
    print(f"check-helm: {len(families)} metric families on /metrics; "
          f"not there yet: {', '.join(sorted(pending)) or 'none'}")
    return 1 if cm.failed else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--renders", required=True, type=Path, help="directory of NAME.yaml helm template outputs")
    ap.add_argument("--scraped", type=Path, help="only check the monitoring render against this /metrics text")
    ap.add_argument("--k8s", action="append")
    ap.add_argument("--kustomize-base")
    ap.add_argument("--kustomize-cert-manager")
    ap.add_argument("--kustomize-guard")
    ap.add_argument("--repo", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    cm.verbose = a.verbose
    if a.scraped:
        return check_scraped(a.renders, a.scraped)
    for need in ("k8s", "kustomize_base", "kustomize_cert_manager", "kustomize_guard", "repo"):
        if not getattr(a, need):
            ap.error(f"--{need.replace('_', '-')} is required (or --scraped)")

    base, cmgr, guard = load(a.kustomize_base), load(a.kustomize_cert_manager), load(a.kustomize_guard)
    flags = webhook_flags(a.repo / "crates/akv-webhook/src/args.rs")
    exported = exported_metrics(a.repo / "crates/akv-webhook/src")
    pending: set[str] = set()
    secret_key = {("Secret", NS, "akv-webhook-tls")}

    def r(name: str) -> list[dict]:
        return load(str(a.renders / f"{name}.yaml"))

    def defaults(v: str, objs: list[dict]) -> None:
        check_generated_tls(v, objs)
        stripped = copy.deepcopy(objs)
        for o in stripped:
            if o["kind"] == "MutatingWebhookConfiguration":
                o["webhooks"][0]["clientConfig"].pop("caBundle", None)
        same_objects(v, stripped, without_namespace(base) + guard, chart_only=secret_key)
        check_guard_selectors(v, objs)
        check_flags(v, objs, flags, {"AKV_WEBHOOK_ENV_IMAGE": "akv-injector:0.1.0"}, all_set=False)
        expect(f"[{v}] no env var but AKV_WEBHOOK_ENV_IMAGE with the defaults",
               [e["name"] for e in container(objs).get("env") or []], ["AKV_WEBHOOK_ENV_IMAGE"])

    def flags_all(v: str, objs: list[dict]) -> None:
        check_flags(v, objs, flags, {
            "AKV_WEBHOOK_LISTEN": "0.0.0.0:8444", "AKV_WEBHOOK_METRICS_LISTEN": "0.0.0.0:9091",
            "AKV_WEBHOOK_MAX_CONNECTIONS": "512", "AKV_WEBHOOK_IDLE_TIMEOUT": "45s",
            "AKV_WEBHOOK_MAX_STREAMS_PER_CONNECTION": "50",
            "AKV_WEBHOOK_ALLOW_VAULT_HOST": "kv.internal.example,.vault.example",
            "AKV_WEBHOOK_ALLOW_MANAGED_IDENTITY": "true",
            "AKV_WEBHOOK_REGISTRY_LOOKUP": "false",
            "AKV_WEBHOOK_REGISTRY_CA_FILE": "/etc/akv-webhook/registry-ca/ca.crt",
            "AKV_WEBHOOK_DEFAULT_PLATFORM": "linux/arm64", "AKV_WEBHOOK_REGISTRY_TIMEOUT": "2s",
            "AKV_WEBHOOK_REGISTRY_TAG_TTL": "5m",
            "AKV_WEBHOOK_REGISTRY_ALLOW_HOST": "registry.corp.example,.corp.example",
            "AKV_WEBHOOK_REGISTRY_DENY_CIDR": "10.96.0.0/12,10.244.0.0/16",
            "AKV_WEBHOOK_REGISTRY_REDIRECT_HOST": ".blob.corp.example",
            "AKV_WEBHOOK_ENV_IMAGE": "registry.example.com/akv-injector:9.9.9", "RUST_LOG": "debug"},
            all_set=True)
        p = f"[{v}]"
        idx = index(objs)
        c = container(objs)
        expect(f"{p} --log-format", [x for x in c.get("args") or [] if x.startswith("--log-format")],
               ["--log-format=text"])
        expect(f"{p} container ports follow webhook.port/metricsPort",
               {pt["name"]: pt["containerPort"] for pt in c.get("ports") or []}, {"https": 8444, "metrics": 9091})
        pod = dig(idx.get(("Deployment", NS, "akv-webhook")), "spec", "template", "spec", default={})
        expect(f"{p} replicas", dig(idx.get(("Deployment", NS, "akv-webhook")), "spec", "replicas"), 3)
        expect(f"{p} priorityClassName", pod.get("priorityClassName"), "system-cluster-critical")
        expect(f"{p} imagePullSecrets", pod.get("imagePullSecrets"), [{"name": "regcred"}])
        expect(f"{p} zone spread", [(t.get("topologyKey"), t.get("whenUnsatisfiable"))
                                    for t in pod.get("topologySpreadConstraints") or []],
               [("topology.kubernetes.io/zone", "DoNotSchedule")])
        check(f"{p} hard anti-affinity",
              dig(pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"))
        expect(f"{p} resources", c.get("resources"), {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                      "limits": {"memory": "256Mi"}})
        pdb = idx.get(("PodDisruptionBudget", NS, "akv-webhook"), {})
        expect(f"{p} PodDisruptionBudget maxUnavailable", pdb.get("spec", {}).get("maxUnavailable"), 1)
        check(f"{p} PodDisruptionBudget has no minAvailable then", "minAvailable" not in pdb.get("spec", {}))
        ca = idx.get(("ConfigMap", NS, "akv-webhook-registry-ca"))
        check(f"{p} registry CA ConfigMap", ca and "BEGIN CERTIFICATE" in dig(ca, "data", "ca.crt", default=""))
        vols = {vv["name"]: vv for vv in pod.get("volumes") or []}
        expect(f"{p} registry CA volume", dig(vols, "registry-ca", "configMap", "name"), "akv-webhook-registry-ca")
        w = dig(idx.get(("MutatingWebhookConfiguration", "", "akv-injector")), "webhooks", 0, default={})
        expect(f"{p} namespaceSelector extended", w.get("namespaceSelector"), {
            "matchLabels": {"akv-injector.io/injection": "enabled", "team": "payments"},
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                 "values": ["kube-system", NS, "legacy"]},
                {"key": "tier", "operator": "In", "values": ["prod"]}]})
        expect(f"{p} objectSelector extended", w.get("objectSelector"), {"matchExpressions": [
            {"key": "akv-injector.io/inject", "operator": "NotIn", "values": ["false"]},
            {"key": "app", "operator": "Exists"}]})
        for desc, labels, want in [
            ("an opted-in namespace with the extra label and tier is sent",
             {"kubernetes.io/metadata.name": "pay", "akv-injector.io/injection": "enabled",
              "team": "payments", "tier": "prod"}, True),
            ("without the extra label it is not",
             {"kubernetes.io/metadata.name": "pay", "akv-injector.io/injection": "enabled", "tier": "prod"}, False),
            ("an excluded namespace is not, even if labelled",
             {"kubernetes.io/metadata.name": "legacy", "akv-injector.io/injection": "enabled",
              "team": "payments", "tier": "prod"}, False),
        ]:
            expect(f"{p} namespaceSelector: {desc}", selects(w.get("namespaceSelector"), labels), want)
        check_guard_selectors(v, objs)

    def other_namespace(v: str, objs: list[dict]) -> None:
        rest = [o for o in objs if (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
                not in set(GUARD) and o["kind"] != "Secret"]
        cm.check_common(v, rest, ns="kv-system")
        check_generated_tls(v, objs, ns="kv-system")
        check_guard_selectors(v, objs)
        vap = index(objs).get(GUARD[0], {})
        msg = dig(vap, "spec", "validations", 0, "messageExpression", default="")
        check(f"[{v}] guard message names the release namespace", "kubectl -n kv-system get pods" in msg, msg)

    def digest(v: str, objs: list[dict]) -> None:
        d = "sha256:" + "ab" * 32
        c = container(objs)
        expect(f"[{v}] image by digest", c.get("image"), f"registry.example.com/akv-injector@{d}")
        env = {e["name"]: e.get("value") for e in c.get("env") or []}
        expect(f"[{v}] injected init container image by digest too", env.get("AKV_WEBHOOK_ENV_IMAGE"), c.get("image"))

    def url(v: str, objs: list[dict]) -> None:
        w = dig(index(objs).get(("MutatingWebhookConfiguration", "", "akv-injector")), "webhooks", 0, default={})
        expect(f"[{v}] clientConfig (test-only url, caBundle from certificate.secret.caBundle)",
               w.get("clientConfig"), {"url": "https://127.0.0.1:18443/mutate",
                                       "caBundle": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()})

    def no_guard(v: str, objs: list[dict]) -> None:
        check(f"[{v}] no guard objects", not any(k in index(objs) for k in GUARD))

    variants = [
        ("defaults", defaults),
        ("secret", lambda v, o: (same_objects(v, o, without_namespace(base) + guard), check_guard_selectors(v, o))),
        ("cert-manager", lambda v, o: (same_objects(v, o, without_namespace(cmgr) + guard),
                                       check_guard_selectors(v, o))),
        ("secret-namespace", lambda v, o: same_objects(v, o, base + guard)),
        ("monitoring", lambda v, o: check_monitoring(v, o, exported, pending)),
        ("network-policy", lambda v, o: check_network_policy(v, o, egress=True)),
        ("digest", digest),
        ("flags", flags_all),
        ("namespace-kv-system", other_namespace),
        ("url", url),
        ("guard-off", no_guard),
    ]
    for name, fn in variants:
        objs = r(name)
        before = (cm.passed, cm.failed)
        cm.schema_check(name, objs, a.k8s)
        fn(name, objs)
        print(f"check-helm: {name}: {len(objs)} objects ({', '.join(sorted({o['kind'] for o in objs}))}): "
              f"{cm.passed - before[0]} checks passed, {cm.failed - before[1]} failed")
    if pending:
        print(f"check-helm: note: the alerts/dashboard use {', '.join(sorted(pending))}, "
              "which akv-webhook does not export yet")
    print("check-helm: schema-checked kinds:")
    for where, kinds in sorted(cm.schema_checked.items()):
        print(f"  {where}: {', '.join(sorted(kinds))}")
    print(f"check-helm: renders: {cm.passed} passed, {cm.failed} failed")
    return 1 if cm.failed else 0


if __name__ == "__main__":
    sys.exit(main())
