"""The guard's cases on a real API server (run by scripts/check-guard and scripts/check-helm).

Creates pods with `kubectl create --dry-run=server` (every admission step runs, nothing is
stored) in an opted-in namespace where our webhook is NOT registered, and checks which
the ValidatingAdmissionPolicy akv-injector-guard refuses, and with what message.
Prints one line per case and `N passed, N failed`; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time

MESSAGE = "akv-injector guard: this pod holds akv: references"


def pod(name: str, env: dict[str, str] | None = None, **spec_extra) -> dict:
    c = {"name": "app", "image": "registry.example/app:1", "command": ["/app"]}
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
         "spec": {"containers": [c]}}
    p["spec"].update(spec_extra)
    return p


def with_meta(p: dict, labels: dict | None = None, annotations: dict | None = None) -> dict:
    p = copy.deepcopy(p)
    if labels:
        p["metadata"]["labels"] = labels
    if annotations:
        p["metadata"]["annotations"] = annotations
    return p


def create(kubectl: list[str], ns: str, obj: dict) -> tuple[bool, str]:
    r = subprocess.run([*kubectl, "-n", ns, "create", "--dry-run=server", "-o", "name", "-f", "-"],
                       input=json.dumps(obj).encode(), capture_output=True)
    return r.returncode == 0, (r.stdout + r.stderr).decode().strip()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", required=True, help="kubectl command, e.g. 'kubectl --kubeconfig F'")
    ap.add_argument("--opted-in", required=True, help="a namespace labelled akv-injector.io/injection=enabled")
    ap.add_argument("--not-opted-in", required=True, help="a namespace without the label")
    ap.add_argument("--excluded", required=True, help="an excluded namespace, labelled (kube-system)")
    ap.add_argument("--namespace-hint", default="akv-injector",
                    help="the webhook's namespace the message names")
    a = ap.parse_args()
    kubectl = a.kubectl.split()

    ref = pod("ref", {"DB_PASSWORD": "akv:db-password"})
    # The policy is active once the API server has loaded it: wait for the first refusal.
    end = time.time() + 60
    while True:
        allowed, out = create(kubectl, a.opted_in, ref)
        if not allowed and MESSAGE in out:
            break
        if time.time() > end:
            print(f"guard: FAIL  the policy refuses nothing after 60s; last answer: {out}", file=sys.stderr)
            print("guard: 0 passed, 1 failed")
            return 1
        time.sleep(0.5)

    init_ref = pod("init-ref", initContainers=[{
        "name": "migrate", "image": "registry.example/app:1", "command": ["/migrate"],
        "env": [{"name": "DSN", "value": "postgres://app:${akv:db-password}@db:5432/app"}]}])
    args_ref = pod("args-ref")
    args_ref["spec"]["containers"][0]["args"] = ["--password=${akv://kv1/db-password}"]
    command_ref = pod("command-ref")
    command_ref["spec"]["containers"][0]["command"] = ["/app", "akv:api-key"]
    two = pod("two", {"DB_PASSWORD": "akv:db-password"})
    two["spec"]["containers"].append({"name": "side", "image": "registry.example/side:1",
                                      "env": [{"name": "TOKEN", "value": "akv:token#value"}]})
    annotated = with_meta(pod("annotated"), annotations={"akv-injector.io/env.DB_PASSWORD": "db-password"})
    injected = with_meta(ref, annotations={"akv-injector.io/status": "injected"})
    injected["metadata"]["name"] = "injected"
    opted_out = with_meta(ref, labels={"akv-injector.io/inject": "false"})
    opted_out["metadata"]["name"] = "opted-out"
    opted_in_label = with_meta(ref, labels={"akv-injector.io/inject": "true"})
    other_status = with_meta(ref, annotations={"akv-injector.io/status": "pending"})
    from_secret = pod("from-secret")
    from_secret["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]

    hint = f"kubectl -n {a.namespace_hint} get pods"
    cases = [
        # (description, namespace, pod, allowed, texts the refusal must hold)
        ("env value akv:NAME is refused", a.opted_in, ref, False, [MESSAGE, "containers app", hint,
                                                                   "akv-injector.io/inject"]),
        ("${akv:...} in an init container's env value is refused", a.opted_in, init_ref, False,
         [MESSAGE, "containers migrate"]),
        ("${akv://VAULT/NAME} in args is refused", a.opted_in, args_ref, False, [MESSAGE]),
        ("akv:NAME in command is refused", a.opted_in, command_ref, False, [MESSAGE]),
        ("every container with references is named", a.opted_in, two, False, ["containers app, side"]),
        ("an akv-injector.io/env.* annotation is refused", a.opted_in, annotated, False,
         [MESSAGE, "annotations akv-injector.io/env.DB_PASSWORD"]),
        ('pod label akv-injector.io/inject: "true" is still guarded', a.opted_in, opted_in_label, False, [MESSAGE]),
        ("status other than injected is refused", a.opted_in, other_status, False, [MESSAGE]),
        ("an injected pod (akv-injector.io/status: injected) passes", a.opted_in, injected, True, []),
        ('an opted-out pod (akv-injector.io/inject: "false") passes', a.opted_in, opted_out, True, []),
        ("a pod without references passes", a.opted_in, pod("plain", {"MODE": "prod"}), True, []),
        ("a value with akv: inside (not ${akv:...}) passes", a.opted_in,
         pod("inside", {"DOC": "see akv:docs", "URL": "https://x/akv:y"}), True, []),
        ("env from a Secret (valueFrom) passes", a.opted_in, from_secret, True, []),
        ("a namespace that did not opt in is not guarded", a.not_opted_in, ref, True, []),
        (f"{a.excluded} is never guarded, even if labelled", a.excluded, ref, True, []),
    ]
    passed = failed = 0
    for desc, ns, obj, want_allowed, texts in cases:
        allowed, out = create(kubectl, ns, obj)
        problems = []
        if allowed != want_allowed:
            problems.append(f"{'allowed' if allowed else 'refused'}, want {'allowed' if want_allowed else 'refused'}")
        problems += [f"message lacks {t!r}" for t in texts if not allowed and t not in out]
        if problems:
            failed += 1
            print(f"guard: FAIL  {desc}: {'; '.join(problems)}\n        {out}", file=sys.stderr)
        else:
            passed += 1
            print(f"guard: ok    {desc}")
    _, shown = create(kubectl, a.opted_in, ref)
    print(f"guard: the refusal reads: {shown}")
    print(f"guard: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
