"""Writes the fuzz targets' seed corpora from what the tree already holds.

Usage: fuzz_seeds.py REPO OUT_DIR
  admission:   every AdmissionReview fixture and the fuzz findings' JSON files
  reference:   every env value and annotation value of the fixtures, plus the findings'
               .bin inputs and a few durations
  annotations: each fixture's annotations as key=value lines
  parts:       the certificate secrets and keys of ../shared/vectors/keyvault (one
               selector byte for the content type, then the value)
  retry_after: Retry-After forms the service and RFC 9110 use
Also copies fuzz/regressions/TARGET/* (inputs that once failed) into each corpus.
"""
import hashlib
import json
import pathlib
import sys


def main() -> None:
    repo = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2])
    shared = repo.parent / "shared" / "vectors"
    seeds: dict[str, list[bytes]] = {t: [] for t in ("admission", "reference", "annotations", "parts", "retry_after")}

    for review in sorted((repo / "crates/akv-webhook/tests/data").glob("*.review.json")):
        raw = review.read_bytes()
        seeds["admission"].append(raw)
        pod = json.loads(raw).get("request", {}).get("object") or {}
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if annotations:
            seeds["annotations"].append("\n".join(f"{k}={v}" for k, v in annotations.items()).encode())
        for value in annotations.values():
            seeds["reference"].append(str(value).encode())
        spec = pod.get("spec") or {}
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for env in container.get("env") or []:
                if isinstance(env.get("value"), str):
                    seeds["reference"].append(env["value"].encode())
            for arg in (container.get("args") or []) + (container.get("command") or []):
                seeds["reference"].append(str(arg).encode())

    findings = shared / "fuzz-findings"
    if not findings.is_dir():
        sys.exit(f"fuzz_seeds: {findings} is missing: the shared/ folder must sit beside the repository")
    for f in sorted(findings.iterdir()):
        if f.suffix == ".json":
            seeds["admission"].append(f.read_bytes())
        elif f.suffix == ".bin":
            seeds["reference"].append(f.read_bytes())
    seeds["reference"] += [b"30s", b"1m30s", b"1500ms", b"1h", b"akv://kv-1.vault.azure.net:443/n/0123456789abcdef0123456789abcdef#chain"]

    content_types = {"application/x-pem-file": 0, "application/x-pkcs12": 1}
    for f in sorted((shared / "keyvault").glob("*.json")):
        doc = json.loads(f.read_text())
        entries = doc.get("Entries") or doc.get("recordings") or []
        for entry in entries:
            body = entry.get("ResponseBody") or entry.get("response")
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except ValueError:
                    continue
            if not isinstance(body, dict):
                continue
            if isinstance(body.get("value"), str):
                selector = content_types.get(body.get("contentType"), 2)
                seeds["parts"].append(bytes([selector]) + body["value"].encode())
            if isinstance(body.get("cer"), str):
                seeds["parts"].append(b"\x02" + body["cer"].encode())
            key = body.get("key")
            if isinstance(key, dict):
                members = [key.get(m, "").encode() for m in ("n", "e", "crv", "x", "y")]
                seeds["parts"].append(b"\x00" + b"\xff".join(members))
    seeds["retry_after"] += [b"0", b"5", b"120", b"Wed, 21 Oct 2015 07:28:00 GMT", b"5\n1500", b"\n250", b"soon"]

    for target, inputs in seeds.items():
        regressions = repo / "fuzz" / "regressions" / target
        if regressions.is_dir():
            inputs += [p.read_bytes() for p in sorted(regressions.iterdir()) if p.is_file()]
        if not inputs:
            sys.exit(f"fuzz_seeds: no seeds for {target}")
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"fuzz_seeds: {target}: {len(inputs)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
