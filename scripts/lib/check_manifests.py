"""Checks rendered akv-injector manifests (run by scripts/check-manifests).

Every object is schema-checked: built-in kinds with kubernetes-validate (strict: unknown
fields are errors) against each requested Kubernetes version; cert-manager.io/v1 kinds,
for which kubernetes-validate has no schema, with cloudcoil's cert-manager models
(generated from cert-manager's CRDs: types and enums), plus a round trip that reports
any field the models do not know. A kind with no schema at all is a failure.

Then the contract (design/interface.md) and the install's own requirements are asserted
field by field, and the selectors are evaluated on sample namespaces and pods.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

import kubernetes_validate.utils as kv

try:
    from cloudcoil.models.cert_manager import v1 as cm_v1
except ImportError:  # pragma: no cover - the venv pins it
    cm_v1 = None
try:
    from cloudcoil.models.prometheus_operator import v1 as prom_v1
except ImportError:  # pragma: no cover - the venv pins it
    prom_v1 = None

# CRD kinds kubernetes-validate has no schema for: apiVersion -> (models, where they come from).
CRD_MODELS: dict[str, tuple[Any, str]] = {
    "cert-manager.io/v1": (cm_v1, "cert-manager.io/v1 (cloudcoil models 1.17)"),
    "monitoring.coreos.com/v1": (prom_v1, "monitoring.coreos.com/v1 (cloudcoil prometheus-operator models 0.80)"),
}

NS = "akv-injector"
WEBHOOK = "pods.akv-injector.io"
SERVICE_DNS = ["akv-webhook.akv-injector.svc", "akv-webhook.akv-injector.svc.cluster.local"]

passed = 0
failed = 0
verbose = False
schema_checked: dict[str, set[str]] = {}


def ok(msg: str) -> None:
    global passed
    passed += 1
    if verbose:
        print(f"  ok    {msg}")


def fail(msg: str) -> None:
    global failed
    failed += 1
    print(f"  FAIL  {msg}", file=sys.stderr)


def check(msg: str, cond: Any, detail: str = "") -> bool:
    if cond:
        ok(msg)
        return True
    fail(f"{msg}{': ' + detail if detail else ''}")
    return False


def expect(msg: str, got: Any, want: Any) -> bool:
    return check(msg, got == want, f"got {got!r}, want {want!r}")


def dig(obj: Any, *path: Any, default: Any = None) -> Any:
    for p in path:
        try:
            obj = obj[p]
        except (KeyError, IndexError, TypeError):
            return default
    return obj


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def index(objs: list[dict]) -> dict[tuple[str, str, str], dict]:
    out = {}
    for o in objs:
        key = (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        if key in out:
            fail(f"duplicate object {key}")
        out[key] = o
    return out


# ---- schemas ---------------------------------------------------------------------------

def unknown_fields(given: Any, dumped: Any, path: str = "") -> list[str]:
    """Fields of `given` that the model dropped (it ignores unknown ones) or changed."""
    out: list[str] = []
    if isinstance(given, dict):
        if not isinstance(dumped, dict):
            return [f"{path or '.'}: not an object"]
        for k, v in given.items():
            if k not in dumped:
                out.append(f"{path}.{k}: unknown field")
            else:
                out += unknown_fields(v, dumped[k], f"{path}.{k}")
    elif isinstance(given, list):
        if not isinstance(dumped, list) or len(given) != len(dumped):
            return [f"{path}: list changed"]
        for i, (a, b) in enumerate(zip(given, dumped)):
            out += unknown_fields(a, b, f"{path}[{i}]")
    elif given != dumped:
        out.append(f"{path}: {given!r} read as {dumped!r}")
    return out


def schema_check(variant: str, objs: list[dict], versions: list[str]) -> None:
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        group = o["apiVersion"].split("/")[0]
        if group in ("cert-manager.io", "monitoring.coreos.com"):
            models, where = CRD_MODELS.get(o["apiVersion"], (None, ""))
            if models is None or not hasattr(models, o["kind"]):
                fail(f"[{variant}] {name}: no schema for {o['apiVersion']} {o['kind']}")
                continue
            try:
                model = getattr(models, o["kind"]).model_validate(o)
            except Exception as e:  # pydantic.ValidationError
                fail(f"[{variant}] {name}: {group} schema: {e}")
                continue
            dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
            problems = unknown_fields(o, dumped)
            if check(f"[{variant}] {name} matches the {o['apiVersion']} schema (CRD models, strict)",
                     not problems, "; ".join(problems)):
                schema_checked.setdefault(where, set()).add(o["kind"])
            continue
        for v in versions:
            try:
                got = kv.validate(o, v, strict=True)
            except kv.SchemaNotFoundError as e:
                fail(f"[{variant}] {name}: {e.message}")
            except kv.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                fail(f"[{variant}] {name} against Kubernetes {e.version}: {where}: {e.message}")
            else:
                ok(f"[{variant}] {name} valid for Kubernetes {got} (strict)")
                schema_checked.setdefault(f"Kubernetes {got} (kubernetes-validate, strict)", set()).add(o["kind"])


# ---- label selectors -------------------------------------------------------------------

def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (an empty selector selects everything)."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


# ---- the contract ----------------------------------------------------------------------

def check_webhook(variant: str, mwc: dict, ns: str = NS, svc: str = "akv-webhook") -> dict:
    p = f"[{variant}] webhook"
    whs = mwc.get("webhooks") or []
    if not expect(f"{p}: exactly one webhook", len(whs), 1):
        return {}
    w = whs[0]
    expect(f"{p}: name", w.get("name"), WEBHOOK)
    expect(f"{p}: admissionReviewVersions", w.get("admissionReviewVersions"), ["v1"])
    expect(f"{p}: sideEffects", w.get("sideEffects"), "None")
    expect(f"{p}: failurePolicy", w.get("failurePolicy"), "Fail")
    expect(f"{p}: timeoutSeconds", w.get("timeoutSeconds"), 5)
    expect(f"{p}: reinvocationPolicy", w.get("reinvocationPolicy"), "IfNeeded")
    expect(f"{p}: matchPolicy", w.get("matchPolicy"), "Equivalent")
    expect(f"{p}: rules (CREATE pods, core v1, Namespaced)", w.get("rules"), [{
        "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
        "resources": ["pods"], "scope": "Namespaced"}])
    expect(f"{p}: clientConfig.service", dig(w, "clientConfig", "service"),
           {"namespace": ns, "name": svc, "path": "/mutate", "port": 443})
    check(f"{p}: no clientConfig.url", "url" not in (w.get("clientConfig") or {}))
    nsel = w.get("namespaceSelector") or {}
    expect(f"{p}: namespaceSelector.matchLabels", nsel.get("matchLabels"),
           {"akv-injector.io/injection": "enabled"})
    exprs = nsel.get("matchExpressions") or []
    expect(f"{p}: namespaceSelector excludes kube-system and {ns} by name",
           [(e.get("key"), e.get("operator"), sorted(e.get("values") or [])) for e in exprs],
           [("kubernetes.io/metadata.name", "NotIn", sorted(["kube-system", ns]))])
    expect(f"{p}: objectSelector", w.get("objectSelector"), {"matchExpressions": [
        {"key": "akv-injector.io/inject", "operator": "NotIn", "values": ["false"]}]})

    def ns_labels(name: str, **extra: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": name, **extra}

    on = {"akv-injector.io/injection": "enabled"}
    cases = [
        ("an opted-in namespace is sent", ns_labels("apps", **on), True),
        ("a namespace without the label is not sent", ns_labels("apps"), False),
        ("injection=disabled is not sent", ns_labels("apps", **{"akv-injector.io/injection": "disabled"}), False),
        ("kube-system is never sent, even if labelled", ns_labels("kube-system", **on), False),
        (f"{ns} is never sent, even if labelled", ns_labels(ns, **on), False),
    ]
    for desc, labels, want in cases:
        expect(f"{p}: namespaceSelector: {desc}", selects(nsel, labels), want)
    osel = w.get("objectSelector")
    for desc, labels, want in [
        ("a pod without the label is sent", {"app": "x"}, True),
        ('inject="true" is sent', {"akv-injector.io/inject": "true"}, True),
        ('inject="false" is not sent', {"akv-injector.io/inject": "false"}, False),
    ]:
        expect(f"{p}: objectSelector: {desc}", selects(osel, labels), want)
    return w


def restricted_problems(pod: dict) -> list[str]:
    """The `restricted` Pod Security Standard (latest) for a pod spec, plus read-only root."""
    out = []
    psc = pod.get("securityContext") or {}
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(k) is True:
            out.append(f"{k}: true")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}
    for v in pod.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            out.append(f"volume {v['name']}: {sorted(kinds - allowed_volumes)} not allowed")
    if dig(psc, "seccompProfile", "type") not in ("RuntimeDefault", "Localhost", None):
        out.append("pod seccompProfile")
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        sc = c.get("securityContext") or {}
        n = c["name"]
        if sc.get("privileged"):
            out.append(f"{n}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{n}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            out.append(f"{n}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{n}: runAsUser 0")
        seccomp = dig(sc, "seccompProfile", "type") or dig(psc, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{n}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{n}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{n}: adds capabilities {caps['add']}")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{n}: readOnlyRootFilesystem must be true")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{n}: hostPort")
    return out


def check_common(variant: str, objs: list[dict], ns: str = NS, svc: str = "akv-webhook",
                 image: str = "akv-injector:0.1.0") -> dict:
    idx = index(objs)
    p = f"[{variant}]"
    for o in objs:
        if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                             "MutatingWebhookConfiguration"):
            expect(f"{p} {o['kind']}/{o['metadata']['name']} is in namespace {ns}",
                   o["metadata"].get("namespace"), ns)

    nso = idx.get(("Namespace", "", ns))
    if check(f"{p} Namespace {ns}", nso):
        expect(f"{p} Namespace enforces the restricted Pod Security Standard",
               dig(nso, "metadata", "labels", "pod-security.kubernetes.io/enforce"), "restricted")
    check(f"{p} ServiceAccount akv-webhook", idx.get(("ServiceAccount", ns, "akv-webhook")))

    cr = idx.get(("ClusterRole", "", "akv-webhook"))
    if check(f"{p} ClusterRole akv-webhook", cr):
        rules = [(tuple(r.get("apiGroups") or []), tuple(sorted(r.get("resources") or [])),
                  tuple(sorted(r.get("verbs") or []))) for r in cr.get("rules") or []]
        expect(f"{p} ClusterRole grants only get on secrets and serviceaccounts", rules,
               [(("",), ("secrets", "serviceaccounts"), ("get",))])
    crb = idx.get(("ClusterRoleBinding", "", "akv-webhook"))
    if check(f"{p} ClusterRoleBinding akv-webhook", crb):
        expect(f"{p} ClusterRoleBinding roleRef", crb.get("roleRef"),
               {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "akv-webhook"})
        expect(f"{p} ClusterRoleBinding subject", crb.get("subjects"),
               [{"kind": "ServiceAccount", "name": "akv-webhook", "namespace": ns}])

    dep = idx.get(("Deployment", ns, "akv-webhook"))
    pod_labels: dict[str, str] = {}
    ports: dict[str, int] = {}
    if check(f"{p} Deployment akv-webhook", dep):
        spec = dep["spec"]
        pod = dig(spec, "template", "spec", default={})
        pod_labels = dig(spec, "template", "metadata", "labels", default={})
        expect(f"{p} Deployment replicas", spec.get("replicas"), 2)
        check(f"{p} Deployment selector selects its pods", selects(spec.get("selector"), pod_labels))
        expect(f"{p} webhook pods opt out of injection",
               pod_labels.get("akv-injector.io/inject"), "false")
        expect(f"{p} rolling update never drops a ready replica",
               dig(spec, "strategy", "rollingUpdate", "maxUnavailable"), 0)
        expect(f"{p} serviceAccountName", pod.get("serviceAccountName"), "akv-webhook")
        terms = dig(pod, "affinity", "podAntiAffinity",
                    "preferredDuringSchedulingIgnoredDuringExecution", default=[])
        check(f"{p} preferred pod anti-affinity on kubernetes.io/hostname against its own pods",
              any(dig(t, "podAffinityTerm", "topologyKey") == "kubernetes.io/hostname"
                  and selects(dig(t, "podAffinityTerm", "labelSelector"), pod_labels) for t in terms))
        check(f"{p} no required anti-affinity (2 replicas must schedule on 1 node too)",
              not dig(pod, "affinity", "podAntiAffinity",
                      "requiredDuringSchedulingIgnoredDuringExecution"))
        problems = restricted_problems(pod)
        check(f"{p} pod passes the restricted Pod Security Standard, read-only root",
              not problems, "; ".join(problems))
        cs = pod.get("containers") or []
        if expect(f"{p} one container", len(cs), 1):
            c = cs[0]
            sc = c.get("securityContext") or {}
            psc = pod.get("securityContext") or {}
            expect(f"{p} runs as user 65532", sc.get("runAsUser", psc.get("runAsUser")), 65532)
            expect(f"{p} image", c.get("image"), image)
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            expect(f"{p} --env-image is the webhook's own image (AKV_WEBHOOK_ENV_IMAGE)",
                   env.get("AKV_WEBHOOK_ENV_IMAGE"), c.get("image"))
            expect(f"{p} args", c.get("args"), [
                "--tls-cert=/etc/akv-webhook/tls/tls.crt",
                "--tls-key=/etc/akv-webhook/tls/tls.key",
                "--env-image=$(AKV_WEBHOOK_ENV_IMAGE)",
                "--log-format=json"])
            check(f"{p} no command override (the image's ENTRYPOINT is akv-webhook)", "command" not in c)
            ports = {pt.get("name"): pt["containerPort"] for pt in c.get("ports") or []}
            expect(f"{p} container ports", ports, {"https": 8443, "metrics": 9090})
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                g = dig(c, probe, "httpGet", default={})
                port = ports.get(g.get("port"), g.get("port"))
                expect(f"{p} {probe}: GET {path} over HTTPS on 8443",
                       (g.get("path"), g.get("scheme"), port), (path, "HTTPS", 8443))
            res = c.get("resources") or {}
            check(f"{p} cpu and memory requests, memory limit",
                  dig(res, "requests", "cpu") and dig(res, "requests", "memory")
                  and dig(res, "limits", "memory"), repr(res))
            mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/etc/akv-webhook/tls"]
            vols = {v["name"]: v for v in pod.get("volumes") or []}
            if check(f"{p} TLS volume mounted at /etc/akv-webhook/tls", len(mounts) == 1):
                m = mounts[0]
                check(f"{p} TLS mount is read-only", m.get("readOnly") is True)
                expect(f"{p} TLS volume is Secret akv-webhook-tls",
                       dig(vols, m["name"], "secret", "secretName"), "akv-webhook-tls")

    s = idx.get(("Service", ns, svc))
    if check(f"{p} Service {svc}", s):
        check(f"{p} Service selects the webhook pods",
              s["spec"].get("selector") and selects({"matchLabels": s["spec"]["selector"]}, pod_labels))
        sp = {(pt["port"], ports.get(pt.get("targetPort"), pt.get("targetPort")))
              for pt in s["spec"].get("ports") or []}
        expect(f"{p} Service ports 443->8443 and 9090->9090", sp, {(443, 8443), (9090, 9090)})

    pdb = idx.get(("PodDisruptionBudget", ns, "akv-webhook"))
    if check(f"{p} PodDisruptionBudget akv-webhook", pdb):
        expect(f"{p} PodDisruptionBudget minAvailable", pdb["spec"].get("minAvailable"), 1)
        check(f"{p} PodDisruptionBudget selects the webhook pods", selects(pdb["spec"].get("selector"), pod_labels))

    mwc = idx.get(("MutatingWebhookConfiguration", "", "akv-injector"))
    w = {}
    if check(f"{p} MutatingWebhookConfiguration akv-injector", mwc):
        w = check_webhook(variant, mwc, ns, svc)
    return {"idx": idx, "mwc": mwc or {}, "webhook": w}


def kinds_are(variant: str, objs: list[dict], extra: list[str]) -> None:
    base = ["ClusterRole", "ClusterRoleBinding", "Deployment", "MutatingWebhookConfiguration",
            "Namespace", "PodDisruptionBudget", "Service", "ServiceAccount"]
    expect(f"[{variant}] exactly the expected objects", sorted(o["kind"] for o in objs), sorted(base + extra))


def pem_certs(data: bytes) -> list[bytes]:
    out, cur = [], []
    for line in data.decode().splitlines():
        cur.append(line)
        if line.startswith("-----END CERTIFICATE-----"):
            out.append(("\n".join(cur) + "\n").encode())
            cur = []
    return out


def check_tls(variant: str, objs: list[dict], tls_dir: Path, ns: str = NS) -> None:
    r = check_common(variant, objs, ns=ns)
    kinds_are(variant, objs, ["Secret"])
    p = f"[{variant}]"
    sec = r["idx"].get(("Secret", ns, "akv-webhook-tls"))
    if check(f"{p} Secret akv-webhook-tls", sec):
        expect(f"{p} Secret type", sec.get("type"), "kubernetes.io/tls")
        data = sec.get("data") or {}
        for key in ("tls.crt", "tls.key"):
            got = base64.b64decode(data.get(key, ""))
            expect(f"{p} Secret {key} is certs/make-certs.sh's {key}", got, (tls_dir / key).read_bytes())
    bundle = base64.b64decode(dig(r["webhook"], "clientConfig", "caBundle", default=""))
    expect(f"{p} caBundle is the CA that issued the serving certificate",
           pem_certs(bundle)[:1], pem_certs((tls_dir / "ca.crt").read_bytes()))
    check(f"{p} no cert-manager annotation",
          "cert-manager.io/inject-ca-from" not in (dig(r["mwc"], "metadata", "annotations") or {}))


def check_cert_manager(variant: str, objs: list[dict]) -> None:
    r = check_common(variant, objs)
    kinds_are(variant, objs, ["Certificate", "Certificate", "Issuer", "Issuer"])
    p = f"[{variant}]"
    idx = r["idx"]
    check(f"{p} no Secret (cert-manager makes it)", not any(k[0] == "Secret" for k in idx))
    check(f"{p} no static caBundle (the cainjector sets it)",
          "caBundle" not in (dig(r["webhook"], "clientConfig") or {}))
    ann = dig(r["mwc"], "metadata", "annotations", "cert-manager.io/inject-ca-from")
    if not expect(f"{p} cert-manager.io/inject-ca-from", ann, f"{NS}/akv-webhook-tls"):
        return
    cns, cname = ann.split("/", 1)
    serving = idx.get(("Certificate", cns, cname))
    if not check(f"{p} inject-ca-from names a Certificate", serving):
        return
    ss = serving["spec"]
    expect(f"{p} serving Certificate secretName", ss.get("secretName"), "akv-webhook-tls")
    check(f"{p} serving Certificate names both service DNS names",
          set(SERVICE_DNS) <= set(ss.get("dnsNames") or []), repr(ss.get("dnsNames")))
    check(f"{p} serving Certificate is for server auth", "server auth" in (ss.get("usages") or []))
    check(f"{p} serving Certificate is not a CA", not ss.get("isCA"))
    ca_issuer = idx.get((dig(ss, "issuerRef", "kind", default="Issuer"), cns, dig(ss, "issuerRef", "name")))
    if not check(f"{p} serving Certificate's issuer exists in the namespace", ca_issuer):
        return
    ca_secret = dig(ca_issuer, "spec", "ca", "secretName")
    if not check(f"{p} that issuer is a CA issuer", ca_secret):
        return
    ca_certs = [o for k, o in idx.items() if k[0] == "Certificate" and k[1] == cns
                and o["spec"].get("secretName") == ca_secret]
    if not check(f"{p} a Certificate makes the CA issuer's Secret {ca_secret}", len(ca_certs) == 1):
        return
    ca = ca_certs[0]["spec"]
    check(f"{p} the CA Certificate is a CA", ca.get("isCA") is True)
    root = idx.get((dig(ca, "issuerRef", "kind", default="Issuer"), cns, dig(ca, "issuerRef", "name")))
    check(f"{p} the CA Certificate is issued by a self-signed Issuer",
          root is not None and dig(root, "spec", "selfSigned") is not None)


def check_base(variant: str, objs: list[dict]) -> None:
    r = check_common(variant, objs)
    kinds_are(variant, objs, [])
    check(f"[{variant}] no caBundle in the base", "caBundle" not in (dig(r["webhook"], "clientConfig") or {}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s", action="append", required=True, help="Kubernetes version(s) to validate against")
    ap.add_argument("--base", required=True)
    ap.add_argument("--tls", required=True)
    ap.add_argument("--tls-dir", required=True, type=Path)
    ap.add_argument("--tls-ns", required=True, help="rendered tls overlay made with --namespace kv-system --service kv-hook")
    ap.add_argument("--tls-ns-dir", required=True, type=Path)
    ap.add_argument("--cert-manager", required=True)
    ap.add_argument("--retarget", required=True, help="base with images: registry.example.com/akv-injector:9.9.9")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every passed check too")
    a = ap.parse_args()
    global verbose
    verbose = a.verbose

    variants: list[tuple[str, str, Callable[[str, list[dict]], None]]] = [
        ("manifests", a.base, check_base),
        ("tls", a.tls, lambda v, o: check_tls(v, o, a.tls_dir)),
        ("cert-manager", a.cert_manager, check_cert_manager),
        ("tls kv-system/kv-hook", a.tls_ns, None),
        ("retarget", a.retarget, lambda v, o: check_common(v, o, image="registry.example.com/akv-injector:9.9.9")),
    ]
    for name, path, fn in variants:
        objs = load(path)
        before = (passed, failed)
        schema_check(name, objs, a.k8s)
        if fn:
            fn(name, objs)
        print(f"check-manifests: {name}: {len(objs)} objects "
              f"({', '.join(sorted({o['kind'] for o in objs}))}): "
              f"{passed - before[0]} checks passed, {failed - before[1]} failed")

    # The certs script's --namespace/--service really move the install.
    objs = load(a.tls_ns)
    idx = index(objs)
    p = "[tls kv-system/kv-hook]"
    mwc = idx.get(("MutatingWebhookConfiguration", "", "akv-injector"), {})
    check_webhook("tls kv-system/kv-hook", mwc, ns="kv-system", svc="kv-hook")
    check(f"{p} Service kv-hook in kv-system", ("Service", "kv-system", "kv-hook") in idx)
    check(f"{p} Secret akv-webhook-tls in kv-system", ("Secret", "kv-system", "akv-webhook-tls") in idx)
    check(f"{p} Namespace kv-system", ("Namespace", "", "kv-system") in idx)
    check(f"{p} nothing left in namespace {NS}",
          not any(o["metadata"].get("namespace") == NS for o in objs))
    bundle = base64.b64decode(dig(mwc, "webhooks", 0, "clientConfig", "caBundle", default=""))
    expect(f"{p} caBundle is its CA", pem_certs(bundle), pem_certs((a.tls_ns_dir / "ca.crt").read_bytes()))

    print("check-manifests: schema-checked kinds:")
    for where, kinds in sorted(schema_checked.items()):
        print(f"  {where}: {', '.join(sorted(kinds))}")
    print(f"check-manifests: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
