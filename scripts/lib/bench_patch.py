#!/usr/bin/env python3
"""What a webhook's answer does to a pod, for scripts/lib/bench_webhooks.py.

Every webhook in the benchmark must answer each review with a patch that does what ours
does: each container that references a secret runs the injected wrapper with its own
command and arguments after it, from a volume an added init container fills. This module
applies the answer's JSONPatch (RFC 6902, the `jsonpatch` module) to the review's pod
and describes the result in figures, so the report can say where a peer's patch differs.

summarize(review, answer, ref_pattern) -> dict:
  containers_with_refs   containers (init + app) whose env holds a reference
  wrapped                of those, how many now run another binary with the original
                         command and arguments as the tail of their argv
  unwrapped              names of the containers with references left as they were
  mounts_added           of those, how many got a new volume mount
  init_added             names of the init containers the patch added
  volumes_added          names of the volumes the patch added
  env_added              names of env variables added to wrapped containers
  ops, patch_bytes       size of the patch
"""
import base64
import json
import re
import sys

try:
    import jsonpatch
except ImportError:  # pragma: no cover - a missing tool is a failure with the fix
    sys.exit("bench_patch: ERROR: the Python module jsonpatch is missing "
             "(pip install jsonpatch==1.33, or Debian: apt-get install python3-jsonpatch)")


def _argv(c):
    return list(c.get("command") or []) + list(c.get("args") or [])


def _names(items):
    return [i.get("name") for i in items or []]


def summarize(review, answer, ref_pattern):
    pod = review["request"]["object"]
    raw = base64.b64decode(answer["patch"])
    ops = json.loads(raw)
    new = jsonpatch.apply_patch(pod, ops)
    ref = re.compile(ref_pattern)
    old_spec, new_spec = pod["spec"], new["spec"]
    with_refs, wrapped, unwrapped, mounts, env_added = 0, 0, [], 0, set()
    for kind in ("initContainers", "containers"):
        after = {c["name"]: c for c in new_spec.get(kind) or []}
        for c in old_spec.get(kind) or []:
            if not any(ref.search(str(e.get("value", ""))) for e in c.get("env") or []):
                continue
            with_refs += 1
            n = after.get(c["name"], c)
            before_argv, after_argv = _argv(c), _argv(n)
            if (len(after_argv) > len(before_argv) and after_argv[-len(before_argv):] == before_argv
                    and after_argv[0] != before_argv[0]):
                wrapped += 1
            else:
                unwrapped.append(c["name"])
            if len(n.get("volumeMounts") or []) > len(c.get("volumeMounts") or []):
                mounts += 1
            env_added |= set(_names(n.get("env"))) - set(_names(c.get("env")))
    return {
        "containers_with_refs": with_refs,
        "wrapped": wrapped,
        "unwrapped": unwrapped,
        "mounts_added": mounts,
        "init_added": [n for n in _names(new_spec.get("initContainers")) if n not in _names(old_spec.get("initContainers"))],
        "volumes_added": [n for n in _names(new_spec.get("volumes")) if n not in _names(old_spec.get("volumes"))],
        "env_added": sorted(env_added),
        "ops": len(ops),
        "patch_bytes": len(raw),
    }


def describe(s):
    """One line for the report."""
    text = (f"{s['wrapped']}/{s['containers_with_refs']} containers wrapped (own argv kept), "
            f"+{len(s['init_added'])} init, +{len(s['volumes_added'])} volume, "
            f"{s['ops']} ops / {s['patch_bytes']} B")
    if s["env_added"]:
        text += f"; +{len(s['env_added'])} env names ({', '.join(s['env_added'][:2])}{', …' if len(s['env_added']) > 2 else ''})"
    if s["unwrapped"]:
        text += f"; NOT wrapped: {', '.join(s['unwrapped'])}"
    return text
